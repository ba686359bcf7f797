-- Runs by status and open waits, counted by triggers as rows change, so that a scrape of
-- /metrics reads a few rows instead of counting every run. Seeded from the rows there are.
-- Each counter is split into 16 shards, chosen by the backend's pid, so that concurrent
-- transactions do not queue on one hot row; a scrape sums the shards.
-- A wait is one row per awaited event name: it counts once, when its first row comes and
-- its last row goes. Waits of cancel_on (kind 'cancel') are not counted, as before.

CREATE TABLE run_counts (
    status           TEXT    NOT NULL,
    shard            INTEGER NOT NULL,
    n                BIGINT  NOT NULL,
    PRIMARY KEY (status, shard)
);
INSERT INTO run_counts (status, shard, n) SELECT status, 0, count(*) FROM runs GROUP BY status;

-- Statement triggers: one upsert per status a statement changes, however many runs it
-- changes (a row trigger would update one counter row once per run, and updating a row
-- many times in one transaction gets slower each time).
CREATE FUNCTION tarry_count_runs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO run_counts AS c (status, shard, n)
        SELECT status, pg_backend_pid() % 16, count(*) FROM new_runs GROUP BY status
        ON CONFLICT (status, shard) DO UPDATE SET n = c.n + EXCLUDED.n;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO run_counts AS c (status, shard, n)
        SELECT status, pg_backend_pid() % 16, sum(d) FROM (
            SELECT status, 1 AS d FROM new_runs UNION ALL SELECT status, -1 AS d FROM old_runs) x
        GROUP BY status HAVING sum(d) != 0
        ON CONFLICT (status, shard) DO UPDATE SET n = c.n + EXCLUDED.n;
    ELSE
        INSERT INTO run_counts AS c (status, shard, n)
        SELECT status, pg_backend_pid() % 16, -count(*) FROM old_runs GROUP BY status
        ON CONFLICT (status, shard) DO UPDATE SET n = c.n + EXCLUDED.n;
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
    shard            INTEGER PRIMARY KEY,
    open_waits       BIGINT  NOT NULL,
    scanned_waits    BIGINT  NOT NULL                     -- of them, with no index term
);
INSERT INTO wait_counts (shard, open_waits, scanned_waits)
SELECT 0, count(DISTINCT (run_id, step_id)), count(DISTINCT (run_id, step_id)) FILTER (WHERE shape = '')
FROM waits WHERE kind != 'cancel';

-- Statement triggers here too: a row trigger runs after the whole statement, when it cannot
-- tell the last row of a wait from the others.
CREATE FUNCTION tarry_count_waits() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    opened BIGINT;
    scanned_ BIGINT;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT count(*), count(*) FILTER (WHERE x.shape = '') INTO opened, scanned_
        FROM (SELECT DISTINCT n.run_id, n.step_id, n.shape FROM new_waits n
              WHERE n.kind != 'cancel' AND NOT EXISTS (
                  SELECT 1 FROM waits w WHERE w.run_id = n.run_id AND w.step_id = n.step_id
                  AND w.id NOT IN (SELECT id FROM new_waits))) x;
    ELSE
        SELECT -count(*), -count(*) FILTER (WHERE x.shape = '') INTO opened, scanned_
        FROM (SELECT DISTINCT o.run_id, o.step_id, o.shape FROM old_waits o
              WHERE o.kind != 'cancel' AND NOT EXISTS (
                  SELECT 1 FROM waits w WHERE w.run_id = o.run_id AND w.step_id = o.step_id)) x;
    END IF;
    IF opened != 0 THEN
        INSERT INTO wait_counts AS c (shard, open_waits, scanned_waits) VALUES (pg_backend_pid() % 16, opened, scanned_)
        ON CONFLICT (shard) DO UPDATE SET open_waits = c.open_waits + opened, scanned_waits = c.scanned_waits + scanned_;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER waits_counted_on_insert AFTER INSERT ON waits
    REFERENCING NEW TABLE AS new_waits FOR EACH STATEMENT EXECUTE FUNCTION tarry_count_waits();
CREATE TRIGGER waits_counted_on_delete AFTER DELETE ON waits
    REFERENCING OLD TABLE AS old_waits FOR EACH STATEMENT EXECUTE FUNCTION tarry_count_waits();
