-- The reruns of a run, newest first (a run's page lists them; the runs list filters by rerun_of): a range
-- scan of this index instead of a scan of every run. Only reruns are in it, so a run that is no rerun
-- costs it nothing, and rerun_of never changes once a run is made.
CREATE INDEX runs_rerun_of ON runs (rerun_of, created_at, id) WHERE rerun_of IS NOT NULL;
