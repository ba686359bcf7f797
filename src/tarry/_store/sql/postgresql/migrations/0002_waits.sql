-- Waits and what matching them needs: the index of waits, the shapes per event name,
-- the event index for looking back, what each run consumed, and resume handles.

CREATE TABLE waits (
    id               BIGSERIAL PRIMARY KEY,              -- registration order
    run_id           TEXT    NOT NULL REFERENCES runs (id),
    step_id          TEXT    NOT NULL,
    kind             TEXT    NOT NULL,
    event_name       TEXT    NOT NULL,
    shape            TEXT    NOT NULL,
    match_key        TEXT    NOT NULL,
    if_exp           TEXT,
    created_at       BIGINT  NOT NULL
);
CREATE INDEX waits_match ON waits (event_name, shape, match_key);
CREATE INDEX waits_run ON waits (run_id, step_id);

CREATE TABLE wait_shapes (
    event_name       TEXT    NOT NULL,
    shape            TEXT    NOT NULL,
    since_seq        BIGINT  NOT NULL,
    PRIMARY KEY (event_name, shape)
);

CREATE TABLE event_keys (
    event_name       TEXT    NOT NULL,
    shape            TEXT    NOT NULL,
    match_key        TEXT    NOT NULL,
    seq              BIGINT  NOT NULL,
    PRIMARY KEY (event_name, shape, match_key, seq)
);

CREATE TABLE consumed (
    run_id           TEXT    NOT NULL,
    event_seq        BIGINT  NOT NULL,
    PRIMARY KEY (run_id, event_seq)
);

CREATE TABLE resume_handles (
    token_hash       TEXT    PRIMARY KEY,
    run_id           TEXT    NOT NULL REFERENCES runs (id),
    step_id          TEXT    NOT NULL,
    expires_at       BIGINT  NOT NULL,
    payload          TEXT,
    redirect_url     TEXT,
    used_at          BIGINT,
    early            TEXT
);

CREATE INDEX events_received ON events (received_at);
CREATE INDEX events_key ON events (key, seq) WHERE key IS NOT NULL;
