-- Schedules (Cron triggers): one row per function, expression and zone, stored when a worker that has
-- the function starts. Its timer (run_id '#schedule', step_id the schedule's id) is due at its next tick.

CREATE TABLE schedules (
    id               BIGSERIAL PRIMARY KEY,
    function_id      TEXT    NOT NULL,
    cron             TEXT    NOT NULL,                   -- the expression as written
    timezone         TEXT    NOT NULL,                   -- an IANA zone
    created_at       BIGINT  NOT NULL,                   -- its ticks count from strictly after this
    UNIQUE (function_id, cron, timezone)
);
