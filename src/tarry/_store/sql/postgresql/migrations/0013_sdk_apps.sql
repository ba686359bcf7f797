-- Apps served by an Inngest SDK (docs/inngest.md), the last sync of each, kept so that every process
-- of the app (a restarted tarry dev, each tarry worker) runs their functions as synced. One row per
-- app id. A sync replaces its row whole, or stores nothing when it is refused or changes nothing.

CREATE TABLE sdk_apps (
    app_id           TEXT    PRIMARY KEY,
    url              TEXT    NOT NULL,                   -- where Tarry calls the SDK, its serve endpoint
    functions        TEXT    NOT NULL,                   -- the functions as the SDK registered them (JSON)
    digest           TEXT    NOT NULL,                   -- of url and functions, to tell a sync that changes nothing
    synced_at        BIGINT NOT NULL
);
