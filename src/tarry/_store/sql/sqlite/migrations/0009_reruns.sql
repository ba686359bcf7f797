-- Reruns: a run made again from a finished one names it, and what a run consumed names the step that
-- consumed it (a rerun from a step keeps consuming what the steps it keeps consumed).

ALTER TABLE runs ADD COLUMN rerun_of TEXT;                        -- the finished run this one reruns
ALTER TABLE consumed ADD COLUMN step_id TEXT;                     -- the wait that took the event
