-- Rows that failed while the engine processed them (an event's delivery, a timer, a claimed run's load):
-- each failure is counted here; after a few, the row is set aside (set_aside_at) and no longer retried.
-- A set-aside event stays in events with delivered = 2 (neither due nor delivered).

CREATE TABLE dead_letters (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    kind             TEXT    NOT NULL,                   -- event | timer | run
    ref              TEXT    NOT NULL,                   -- the row: event id, run id, or run, step and due time
    event_id         TEXT,
    run_id           TEXT,
    step_id          TEXT,
    detail           TEXT,                               -- JSON: what else the row held (a timer's kind, due_at)
    failures         INTEGER NOT NULL,
    error            TEXT    NOT NULL,                   -- JSON {"name", "message"} of the latest failure
    first_failed_at  INTEGER  NOT NULL,
    failed_at        INTEGER  NOT NULL,
    set_aside_at     INTEGER,                               -- NULL while the row is still retried
    UNIQUE (kind, ref)
);
CREATE INDEX dead_letters_set_aside ON dead_letters (id) WHERE set_aside_at IS NOT NULL;
