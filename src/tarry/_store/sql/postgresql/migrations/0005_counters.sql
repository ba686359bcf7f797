-- Runs by status and open waits, counted by triggers as rows change, so that a scrape of
-- /metrics reads a few rows instead of counting every run. Seeded from the rows there are.
-- The triggers only append deltas, one row per status a statement changes: updating one
-- counter row instead would make concurrent transactions queue on it, and a transaction
-- that changes it many times (a batch of 5,000 events starting 5,000 runs) slower with
-- each change. A scrape sums the deltas and folds them into one row per status.
-- A wait is one row per awaited event name: it counts once, when its first row comes and
-- its last row goes. Waits of cancel_on (kind 'cancel') are not counted, as before.

CREATE TABLE run_counts (
    status           TEXT    NOT NULL,
    n                BIGINT  NOT NULL
);
INSERT INTO run_counts (status, n) SELECT status, count(*) FROM runs GROUP BY status;

CREATE FUNCTION tarry_count_runs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO run_counts (status, n) SELECT status, count(*) FROM new_runs GROUP BY status;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO run_counts (status, n)
        SELECT status, sum(d) FROM (
            SELECT status, 1 AS d FROM new_runs UNION ALL SELECT status, -1 AS d FROM old_runs) x
        GROUP BY status HAVING sum(d) != 0;
    ELSE
        INSERT INTO run_counts (status, n) SELECT status, -count(*) FROM old_runs GROUP BY status;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER runs_counted_on_insert AFTER INSERT ON runs
    REFERENCING NEW TABLE AS new_runs FOR EACH STATEMENT EXECUTE FUNCTION tarry_count_runs();
CREATE TRIGGER runs_counted_on_update AFTER UPDATE ON runs
    REFERENCING OLD TABLE AS old_runs NEW TABLE AS new_runs FOR EACH STATEMENT EXECUTE FUNCTION tarry_count_runs();
CREATE TRIGGER runs_counted_on_delete AFTER DELETE ON runs
    REFERENCING OLD TABLE AS old_runs FOR EACH STATEMENT EXECUTE FUNCTION tarry_count_runs();

CREATE TABLE wait_counts (
    open_waits       BIGINT  NOT NULL,
    scanned_waits    BIGINT  NOT NULL                     -- of them, with no index term
);
INSERT INTO wait_counts (open_waits, scanned_waits)
SELECT count(DISTINCT (run_id, step_id)), count(DISTINCT (run_id, step_id)) FILTER (WHERE shape = '')
FROM waits WHERE kind != 'cancel';

-- Statement triggers here too: a row trigger runs after the whole statement, when it cannot
-- tell the last row of a wait from the others.
CREATE FUNCTION tarry_count_waits() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO wait_counts (open_waits, scanned_waits)
        SELECT count(*), count(*) FILTER (WHERE x.shape = '')
        FROM (SELECT DISTINCT n.run_id, n.step_id, n.shape FROM new_waits n
              WHERE n.kind != 'cancel' AND NOT EXISTS (
                  SELECT 1 FROM waits w WHERE w.run_id = n.run_id AND w.step_id = n.step_id
                  AND w.id NOT IN (SELECT id FROM new_waits))) x
        HAVING count(*) > 0;
    ELSE
        INSERT INTO wait_counts (open_waits, scanned_waits)
        SELECT -count(*), -count(*) FILTER (WHERE x.shape = '')
        FROM (SELECT DISTINCT o.run_id, o.step_id, o.shape FROM old_waits o
              WHERE o.kind != 'cancel' AND NOT EXISTS (
                  SELECT 1 FROM waits w WHERE w.run_id = o.run_id AND w.step_id = o.step_id)) x
        HAVING count(*) > 0;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER waits_counted_on_insert AFTER INSERT ON waits
    REFERENCING NEW TABLE AS new_waits FOR EACH STATEMENT EXECUTE FUNCTION tarry_count_waits();
CREATE TRIGGER waits_counted_on_delete AFTER DELETE ON waits
    REFERENCING OLD TABLE AS old_waits FOR EACH STATEMENT EXECUTE FUNCTION tarry_count_waits();
