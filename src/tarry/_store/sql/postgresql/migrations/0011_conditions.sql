-- Steps that wait for several conditions at once (wait_for_all, wait_for_any, collect_events). Each
-- condition's rows in the wait index carry its position; a collect_events condition also how many events
-- it still takes and how many bytes of them its result still has room for. What a condition consumed
-- says which condition took it, so a step's partial result is kept with the events it consumed.
ALTER TABLE waits ADD COLUMN condition INTEGER NOT NULL DEFAULT 0;
ALTER TABLE waits ADD COLUMN take INTEGER NOT NULL DEFAULT 1;
ALTER TABLE waits ADD COLUMN room BIGINT NOT NULL DEFAULT 0;
ALTER TABLE consumed ADD COLUMN condition INTEGER NOT NULL DEFAULT 0;

-- A step of several is one open wait, however many conditions it has, and a scanned one while some
-- condition without an index term is open (its conditions may differ in shape, and one may close
-- before the others). So a wait counts as open from its first row to its last, and as scanned from
-- its first row without an index term to its last; for a single wait, whose rows share one shape,
-- both are what they were.
CREATE OR REPLACE FUNCTION tarry_count_waits() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO wait_counts (open_waits, scanned_waits)
        SELECT x.opened, x.scanned FROM (SELECT
            (SELECT count(*) FROM (SELECT DISTINCT n.run_id, n.step_id FROM new_waits n
                WHERE n.kind != 'cancel' AND NOT EXISTS (
                    SELECT 1 FROM waits w WHERE w.run_id = n.run_id AND w.step_id = n.step_id
                    AND w.id NOT IN (SELECT id FROM new_waits))) o) AS opened,
            (SELECT count(*) FROM (SELECT DISTINCT n.run_id, n.step_id FROM new_waits n
                WHERE n.kind != 'cancel' AND n.shape = '' AND NOT EXISTS (
                    SELECT 1 FROM waits w WHERE w.run_id = n.run_id AND w.step_id = n.step_id AND w.shape = ''
                    AND w.id NOT IN (SELECT id FROM new_waits))) s) AS scanned) x
        WHERE x.opened > 0 OR x.scanned > 0;
    ELSE
        INSERT INTO wait_counts (open_waits, scanned_waits)
        SELECT -x.closed, -x.scanned FROM (SELECT
            (SELECT count(*) FROM (SELECT DISTINCT o.run_id, o.step_id FROM old_waits o
                WHERE o.kind != 'cancel' AND NOT EXISTS (
                    SELECT 1 FROM waits w WHERE w.run_id = o.run_id AND w.step_id = o.step_id)) c) AS closed,
            (SELECT count(*) FROM (SELECT DISTINCT o.run_id, o.step_id FROM old_waits o
                WHERE o.kind != 'cancel' AND o.shape = '' AND NOT EXISTS (
                    SELECT 1 FROM waits w WHERE w.run_id = o.run_id AND w.step_id = o.step_id
                    AND w.shape = '')) s) AS scanned) x
        WHERE x.closed > 0 OR x.scanned > 0;
    END IF;
    RETURN NULL;
END $$;
