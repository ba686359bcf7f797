-- Flow control: what decides when a queued run starts (its place, its partitions, what holds it),
-- what an event's admission counted (rate windows, idempotency keys, skips), and the open debounce
-- bursts and batches. Timers lose their reference to runs: a burst's or a batch's timer has no run.

ALTER TABLE runs ADD COLUMN place INTEGER NOT NULL DEFAULT 0;     -- created_at - priority: the queue's order
UPDATE runs SET place = created_at;                             -- queued_at is no longer read
ALTER TABLE runs ADD COLUMN gated INTEGER NOT NULL DEFAULT 0;     -- 1: starting it needs a look at its limits
ALTER TABLE runs ADD COLUMN ckey1 TEXT;                           -- its concurrency partitions
ALTER TABLE runs ADD COLUMN ckey2 TEXT;
ALTER TABLE runs ADD COLUMN tkey TEXT;                            -- its throttle partition
ALTER TABLE runs ADD COLUMN skey TEXT;                            -- its singleton partition
ALTER TABLE runs ADD COLUMN started_at INTEGER;                   -- its first start
ALTER TABLE runs ADD COLUMN held TEXT;                            -- queued behind this partition; NULL: ready
ALTER TABLE runs ADD COLUMN queued_reason TEXT;                   -- concurrency | throttle
ALTER TABLE runs ADD COLUMN cancel_reason TEXT;                   -- what asked a running run to cancel
ALTER TABLE runs ADD COLUMN last_seq INTEGER;                     -- a batch's or burst's last event
DROP INDEX runs_queued;
CREATE INDEX runs_ready ON runs (gated, place, id) WHERE status = 'queued' AND held IS NULL;
CREATE INDEX runs_held ON runs (held, place, id) WHERE status = 'queued' AND held IS NOT NULL;
CREATE INDEX runs_slot1 ON runs (ckey1) WHERE status = 'running' AND ckey1 IS NOT NULL;
CREATE INDEX runs_slot2 ON runs (ckey2) WHERE status = 'running' AND ckey2 IS NOT NULL;
CREATE INDEX runs_throttle ON runs (tkey, started_at) WHERE tkey IS NOT NULL AND started_at IS NOT NULL;
CREATE INDEX runs_singleton ON runs (skey) WHERE skey IS NOT NULL
    AND status IN ('queued', 'running', 'sleeping', 'waiting');

CREATE TABLE timers_new (
    run_id           TEXT    NOT NULL,                   -- a run, or '#buffer' for a burst's or batch's timer
    step_id          TEXT    NOT NULL,
    kind             TEXT    NOT NULL,
    due_at           INTEGER NOT NULL,
    PRIMARY KEY (run_id, step_id)
) WITHOUT ROWID;
INSERT INTO timers_new (run_id, step_id, kind, due_at) SELECT run_id, step_id, kind, due_at FROM timers;
DROP TABLE timers;
ALTER TABLE timers_new RENAME TO timers;
CREATE INDEX timers_due ON timers (due_at);

-- The events of a batch or burst run, in delivery order (a run of one event has none).
CREATE TABLE run_events (
    run_id           TEXT    NOT NULL,
    pos              INTEGER NOT NULL,
    event_id         TEXT    NOT NULL,
    PRIMARY KEY (run_id, pos)
) WITHOUT ROWID;
CREATE INDEX run_events_event ON run_events (event_id);

-- Open debounce bursts and batches, one per function and partition, and their events.
CREATE TABLE buffers (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    function_id      TEXT    NOT NULL,
    kind             TEXT    NOT NULL,                   -- debounce | batch
    partition        TEXT    NOT NULL,
    first_at         INTEGER NOT NULL,
    last_at          INTEGER NOT NULL,
    due_at           INTEGER NOT NULL,
    size             INTEGER NOT NULL,                   -- events gathered (a burst keeps the newest 1,000)
    bytes            INTEGER NOT NULL,                   -- their JSON's size
    next_pos         INTEGER NOT NULL,
    UNIQUE (function_id, partition)
);
CREATE TABLE buffer_events (
    buffer_id        INTEGER NOT NULL,
    pos              INTEGER NOT NULL,
    event_id         TEXT    NOT NULL,
    PRIMARY KEY (buffer_id, pos)
) WITHOUT ROWID;

-- Admissions a rate limit counts, per partition (older than the period: deleted as new ones come).
CREATE TABLE rate_windows (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    partition        TEXT    NOT NULL,
    at               INTEGER NOT NULL
);
CREATE INDEX rate_windows_partition ON rate_windows (partition, at);

CREATE TABLE idempotency_keys (
    function_id      TEXT    NOT NULL,
    key              TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (function_id, key)
) WITHOUT ROWID;

-- Events a function turned away, and how many per function and reason (for /metrics).
CREATE TABLE skips (
    event_id         TEXT    NOT NULL,
    function_id      TEXT    NOT NULL,
    reason           TEXT    NOT NULL,                   -- rate_limit | idempotency | singleton
    at               INTEGER NOT NULL,
    PRIMARY KEY (event_id, function_id)
) WITHOUT ROWID;
CREATE TABLE skip_counts (
    function_id      TEXT    NOT NULL,
    reason           TEXT    NOT NULL,
    n                INTEGER NOT NULL,
    PRIMARY KEY (function_id, reason)
) WITHOUT ROWID;
