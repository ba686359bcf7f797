-- Every failed attempt of a step keeps its error (JSON: name, message, traceback), one row each, written
-- with the attempt's failure and read only when a run is shown (replay never reads them).
CREATE TABLE step_errors (
    run_id           TEXT    NOT NULL REFERENCES runs (id),
    step_id          TEXT    NOT NULL,
    attempt          INTEGER NOT NULL,              -- 1 for the first attempt; 0 for a wait that failed
    error            TEXT    NOT NULL,
    PRIMARY KEY (run_id, step_id, attempt)
) WITHOUT ROWID;
