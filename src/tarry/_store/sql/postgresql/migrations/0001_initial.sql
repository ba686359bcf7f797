-- Events, runs, step records, timers and workers: the whole durable state.
-- Times are epoch milliseconds on the app's clock, except workers.heartbeat_at (wall clock).

CREATE TABLE events (
    seq              BIGSERIAL PRIMARY KEY,              -- arrival order
    id               TEXT    NOT NULL UNIQUE,            -- the engine's ULID
    name             TEXT    NOT NULL,
    data             TEXT    NOT NULL,                   -- JSON object
    key              TEXT,
    v                TEXT,
    dedup_id         TEXT,                               -- the sender's id, if any
    ts               BIGINT  NOT NULL,                   -- delivery time
    received_at      BIGINT  NOT NULL,
    delivered        INTEGER NOT NULL DEFAULT 0,
    exclude_function TEXT,                               -- system events: never trigger this function
    only_function    TEXT                                -- invoke: trigger this function only
);
CREATE INDEX events_dedup ON events (dedup_id, received_at) WHERE dedup_id IS NOT NULL;
CREATE INDEX events_due ON events (ts) WHERE delivered = 0;
CREATE INDEX events_name ON events (name, seq);

CREATE TABLE runs (
    id               TEXT    PRIMARY KEY,
    function_id      TEXT    NOT NULL,
    event_id         TEXT    NOT NULL REFERENCES events (id),
    status           TEXT    NOT NULL,
    output           TEXT,                               -- JSON
    error            TEXT,                               -- JSON {"name", "message"}
    created_at       BIGINT  NOT NULL,
    ended_at         BIGINT,
    queued_at        BIGINT  NOT NULL,
    owner            TEXT,                               -- worker executing it
    resume_requested INTEGER NOT NULL DEFAULT 0,         -- something resolved while it ran
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_queued ON runs (queued_at, id) WHERE status = 'queued';
CREATE INDEX runs_running ON runs (owner) WHERE status = 'running';
CREATE INDEX runs_event ON runs (event_id);
CREATE INDEX runs_function ON runs (function_id, id);
CREATE INDEX runs_status ON runs (status, id);

CREATE TABLE steps (
    seq              BIGSERIAL PRIMARY KEY,              -- the order steps were first recorded
    run_id           TEXT    NOT NULL REFERENCES runs (id),
    id               TEXT    NOT NULL,
    kind             TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    output           TEXT,
    error            TEXT,
    started_at       BIGINT,
    ended_at         BIGINT,
    UNIQUE (run_id, id)
);

CREATE TABLE timers (
    run_id           TEXT    NOT NULL REFERENCES runs (id),
    step_id          TEXT    NOT NULL,
    kind             TEXT    NOT NULL,
    due_at           BIGINT  NOT NULL,
    PRIMARY KEY (run_id, step_id)
);
CREATE INDEX timers_due ON timers (due_at);

CREATE TABLE workers (
    id               TEXT    PRIMARY KEY,
    started_at       BIGINT  NOT NULL,
    heartbeat_at     BIGINT  NOT NULL
);
