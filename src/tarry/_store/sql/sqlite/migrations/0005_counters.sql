-- Runs by status and open waits, counted by triggers as rows change, so that a scrape of
-- /metrics reads a few rows instead of counting every run. Seeded from the rows there are.
-- A wait is one row per awaited event name: it counts once, when its first row comes and
-- its last row goes. Waits of cancel_on (kind 'cancel') are not counted, as before.

CREATE TABLE run_counts (
    status           TEXT    PRIMARY KEY,
    n                INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO run_counts (status, n) SELECT status, count(*) FROM runs GROUP BY status;

CREATE TRIGGER runs_counted_on_insert AFTER INSERT ON runs
BEGIN
    INSERT INTO run_counts (status, n) VALUES (NEW.status, 1) ON CONFLICT (status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER runs_counted_on_update AFTER UPDATE OF status ON runs WHEN OLD.status IS NOT NEW.status
BEGIN
    UPDATE run_counts SET n = n - 1 WHERE status = OLD.status;
    INSERT INTO run_counts (status, n) VALUES (NEW.status, 1) ON CONFLICT (status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER runs_counted_on_delete AFTER DELETE ON runs
BEGIN
    UPDATE run_counts SET n = n - 1 WHERE status = OLD.status;
END;

CREATE TABLE wait_counts (
    id               INTEGER PRIMARY KEY CHECK (id = 0),  -- one row
    open_waits       INTEGER NOT NULL,
    scanned_waits    INTEGER NOT NULL                     -- of them, with no index term
);
INSERT INTO wait_counts (id, open_waits, scanned_waits)
SELECT 0, count(DISTINCT run_id || char(31) || step_id),
       count(DISTINCT CASE WHEN shape = '' THEN run_id || char(31) || step_id END)
FROM waits WHERE kind != 'cancel';

CREATE TRIGGER waits_counted_on_insert AFTER INSERT ON waits
WHEN NEW.kind != 'cancel' AND NOT EXISTS (
    SELECT 1 FROM waits w WHERE w.run_id = NEW.run_id AND w.step_id = NEW.step_id AND w.id != NEW.id)
BEGIN
    UPDATE wait_counts SET open_waits = open_waits + 1, scanned_waits = scanned_waits + (NEW.shape = '');
END;

CREATE TRIGGER waits_counted_on_delete AFTER DELETE ON waits
WHEN OLD.kind != 'cancel' AND NOT EXISTS (
    SELECT 1 FROM waits w WHERE w.run_id = OLD.run_id AND w.step_id = OLD.step_id)
BEGIN
    UPDATE wait_counts SET open_waits = open_waits - 1, scanned_waits = scanned_waits - (OLD.shape = '');
END;
