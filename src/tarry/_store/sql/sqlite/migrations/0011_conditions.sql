-- Steps that wait for several conditions at once (wait_for_all, wait_for_any, collect_events). Each
-- condition's rows in the wait index carry its position; a collect_events condition also how many events
-- it still takes and how many bytes of them its result still has room for. What a condition consumed
-- says which condition took it, so a step's partial result is kept with the events it consumed.
ALTER TABLE waits ADD COLUMN condition INTEGER NOT NULL DEFAULT 0;
ALTER TABLE waits ADD COLUMN take INTEGER NOT NULL DEFAULT 1;
ALTER TABLE waits ADD COLUMN room BIGINT NOT NULL DEFAULT 0;
ALTER TABLE consumed ADD COLUMN condition INTEGER NOT NULL DEFAULT 0;
