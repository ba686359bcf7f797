-- Lists of runs, newest or oldest first, of one function, of one status or of all, in a time range,
-- paged by the position (created_at, id) of the last run seen: each is a range scan of one index. And
-- the runs an event resumed (counted in every list of events) found by the event.
DROP INDEX runs_function;
DROP INDEX runs_status;
CREATE INDEX runs_created ON runs (created_at, id);
CREATE INDEX runs_function ON runs (function_id, created_at, id);
CREATE INDEX runs_status ON runs (status, created_at, id);
CREATE INDEX consumed_event ON consumed (event_seq);
