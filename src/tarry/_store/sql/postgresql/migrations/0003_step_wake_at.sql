-- When a sleeping or retrying step is due: a replay before then parks instead of running it.
ALTER TABLE steps ADD COLUMN wake_at BIGINT;
