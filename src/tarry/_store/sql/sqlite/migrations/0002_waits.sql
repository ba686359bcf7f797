-- Waits and what matching them needs: the index of waits, the shapes per event name,
-- the event index for looking back, what each run consumed, and resume handles.

CREATE TABLE waits (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,  -- registration order
    run_id           TEXT    NOT NULL REFERENCES runs (id),
    step_id          TEXT    NOT NULL,
    kind             TEXT    NOT NULL,                   -- event | resume | invoke | cancel
    event_name       TEXT    NOT NULL,                   -- '' = any name (key-only)
    shape            TEXT    NOT NULL,                   -- sorted index paths joined by '|'
    match_key        TEXT    NOT NULL,                   -- the trigger's values for them
    if_exp           TEXT,                               -- checked on each candidate
    created_at       INTEGER NOT NULL
);
CREATE INDEX waits_match ON waits (event_name, shape, match_key);
CREATE INDEX waits_run ON waits (run_id, step_id);

-- Every shape ever waited on per event name (insert-only; a stale shape costs one probe).
CREATE TABLE wait_shapes (
    event_name       TEXT    NOT NULL,
    shape            TEXT    NOT NULL,
    since_seq        INTEGER NOT NULL,                   -- events after this are in event_keys
    PRIMARY KEY (event_name, shape)
) WITHOUT ROWID;

-- Delivered events by (name, shape, key), for waits that look back.
CREATE TABLE event_keys (
    event_name       TEXT    NOT NULL,
    shape            TEXT    NOT NULL,
    match_key        TEXT    NOT NULL,
    seq              INTEGER NOT NULL,
    PRIMARY KEY (event_name, shape, match_key, seq)
) WITHOUT ROWID;

-- An event resolves at most one wait of a run.
CREATE TABLE consumed (
    run_id           TEXT    NOT NULL,
    event_seq        INTEGER NOT NULL,
    PRIMARY KEY (run_id, event_seq)
) WITHOUT ROWID;

CREATE TABLE resume_handles (
    token_hash       TEXT    PRIMARY KEY,                -- sha256 of the token; the token is never stored
    run_id           TEXT    NOT NULL REFERENCES runs (id),
    step_id          TEXT    NOT NULL,
    expires_at       INTEGER NOT NULL,
    payload          TEXT,
    redirect_url     TEXT,
    used_at          INTEGER,
    early            TEXT                                -- a resume's data that came before the wait
);

CREATE INDEX events_received ON events (received_at);
CREATE INDEX events_key ON events (key, seq) WHERE key IS NOT NULL;
