-- Steps that wait for several conditions at once (wait_for_all, wait_for_any, collect_events). Each
-- condition's rows in the wait index carry its position; a collect_events condition also how many events
-- it still takes and how many bytes of them its result still has room for. What a condition consumed
-- says which condition took it, so a step's partial result is kept with the events it consumed.
ALTER TABLE waits ADD COLUMN condition INTEGER NOT NULL DEFAULT 0;
ALTER TABLE waits ADD COLUMN take INTEGER NOT NULL DEFAULT 1;
ALTER TABLE waits ADD COLUMN room BIGINT NOT NULL DEFAULT 0;
ALTER TABLE consumed ADD COLUMN condition INTEGER NOT NULL DEFAULT 0;

-- A step of several is one open wait, however many conditions it has, and a scanned one while some
-- condition without an index term is open: its conditions may differ in shape, and one may close before
-- the others. The counters of 0005 see a step's first and last rows; these see its scanned rows.
CREATE TRIGGER waits_scanned_on_insert AFTER INSERT ON waits
WHEN NEW.kind IN ('wait_for_all', 'wait_for_any', 'collect_events') AND NEW.shape = ''
  AND EXISTS (SELECT 1 FROM waits w WHERE w.run_id = NEW.run_id AND w.step_id = NEW.step_id AND w.id != NEW.id)
  AND NOT EXISTS (SELECT 1 FROM waits w WHERE w.run_id = NEW.run_id AND w.step_id = NEW.step_id
                  AND w.shape = '' AND w.id != NEW.id)
BEGIN
    UPDATE wait_counts SET scanned_waits = scanned_waits + 1;
END;

CREATE TRIGGER waits_scanned_on_delete AFTER DELETE ON waits
WHEN OLD.kind IN ('wait_for_all', 'wait_for_any', 'collect_events') AND OLD.shape = ''
  AND EXISTS (SELECT 1 FROM waits w WHERE w.run_id = OLD.run_id AND w.step_id = OLD.step_id)
  AND NOT EXISTS (SELECT 1 FROM waits w WHERE w.run_id = OLD.run_id AND w.step_id = OLD.step_id AND w.shape = '')
BEGIN
    UPDATE wait_counts SET scanned_waits = scanned_waits - 1;
END;
