-- Every SQL statement of the SQLite store, by name. Parameters are named (:x).

-- name: find_duplicate
SELECT id FROM events WHERE dedup_id = :dedup_id AND received_at >= :since ORDER BY seq LIMIT 1;

-- name: insert_event
INSERT INTO events (id, name, data, key, v, dedup_id, ts, received_at, delivered, exclude_function, only_function)
VALUES (:id, :name, :data, :key, :v, :dedup_id, :ts, :received_at, :delivered, :exclude_function, :only_function)
RETURNING seq;

-- name: mark_delivered
UPDATE events SET delivered = 1 WHERE seq = :seq;

-- name: due_events
SELECT seq, id, name, data, key, v, ts, exclude_function, only_function FROM events
WHERE delivered = 0 AND ts <= :now ORDER BY ts, seq LIMIT :limit;

-- name: insert_run
INSERT INTO runs (id, function_id, event_id, status, created_at, queued_at, place, gated, ckey1, ckey2, tkey,
                  skey, last_seq, rerun_of)
VALUES (:id, :function_id, :event_id, 'queued', :now, :now, :place, :gated, :ckey1, :ckey2, :tkey, :skey, :last_seq, :rerun_of);

-- name: claim_runs
-- Runs without limits, the first ready ones, in their place's order.
UPDATE runs SET status = 'running', owner = :owner, resume_requested = 0, started_at = coalesce(started_at, :now)
WHERE id IN (SELECT id FROM runs WHERE status = 'queued' AND held IS NULL AND gated = 0 ORDER BY place, id
             LIMIT :limit)
RETURNING id, function_id, event_id, created_at, cancel_requested, last_seq;

-- name: event_by_id
SELECT id, name, data, key, v, ts FROM events WHERE id = :id;

-- name: steps_of_run
SELECT id, kind, status, attempts, output, error, started_at, ended_at, wake_at FROM steps
WHERE run_id = :run_id ORDER BY rowid;

-- name: run_control
SELECT owner, cancel_requested FROM runs WHERE id = :run_id;

-- name: upsert_step
INSERT INTO steps (run_id, id, kind, status, attempts, output, error, started_at, ended_at, wake_at)
VALUES (:run_id, :id, :kind, :status, :attempts, :output, :error, :started_at, :ended_at, :wake_at)
ON CONFLICT (run_id, id) DO UPDATE SET
    status = excluded.status, attempts = excluded.attempts, output = excluded.output,
    error = excluded.error, started_at = coalesce(steps.started_at, excluded.started_at),
    ended_at = excluded.ended_at, wake_at = excluded.wake_at;

-- name: insert_step_error
INSERT INTO step_errors (run_id, step_id, attempt, error) VALUES (:run_id, :step_id, :attempt, :error)
ON CONFLICT (run_id, step_id, attempt) DO NOTHING;

-- name: step_errors_of_run
SELECT step_id, error FROM step_errors WHERE run_id = :run_id ORDER BY step_id, attempt;

-- name: insert_timer
INSERT INTO timers (run_id, step_id, kind, due_at) VALUES (:run_id, :step_id, :kind, :due_at)
ON CONFLICT (run_id, step_id) DO UPDATE SET kind = excluded.kind, due_at = excluded.due_at;

-- name: park_run
UPDATE runs SET status = :status, owner = NULL
WHERE id = :run_id AND owner = :owner AND resume_requested = 0 AND cancel_requested = 0
RETURNING ckey1, ckey2, skey;

-- name: clear_resume
UPDATE runs SET resume_requested = 0 WHERE id = :run_id;

-- name: requeue_run
UPDATE runs SET status = 'queued', owner = NULL, resume_requested = 0
WHERE id = :run_id AND owner = :owner
RETURNING ckey1, ckey2, skey;

-- name: finish_run
UPDATE runs SET status = :status, output = :output, error = :error, ended_at = :now, owner = NULL
WHERE id = :run_id AND status NOT IN ('completed', 'failed', 'cancelled');

-- name: delete_timers_of_run
DELETE FROM timers WHERE run_id = :run_id;

-- name: due_timers
SELECT run_id, step_id, kind, due_at FROM timers WHERE due_at <= :now ORDER BY due_at LIMIT :limit;

-- name: delete_timer
DELETE FROM timers WHERE run_id = :run_id AND step_id = :step_id;

-- name: complete_sleep
UPDATE steps SET status = 'completed', ended_at = :now
WHERE run_id = :run_id AND id = :step_id AND status = 'sleeping';

-- name: wake_run
UPDATE runs SET
    status = CASE WHEN status IN ('sleeping', 'waiting') THEN 'queued' ELSE status END,
    resume_requested = CASE WHEN status = 'running' THEN 1 ELSE resume_requested END
WHERE id = :run_id;

-- name: next_due
SELECT min(due) AS due FROM (
    SELECT min(due_at) AS due FROM timers
    UNION ALL SELECT min(ts) AS due FROM events WHERE delivered = 0
);

-- name: has_work
SELECT EXISTS (SELECT 1 FROM runs WHERE status = 'running')
    OR EXISTS (SELECT 1 FROM runs INDEXED BY runs_ready WHERE status = 'queued' AND held IS NULL)
    OR EXISTS (SELECT 1 FROM timers WHERE due_at <= :now)
    OR EXISTS (SELECT 1 FROM events WHERE delivered = 0 AND ts <= :now) AS busy;

-- name: get_run
SELECT r.id, r.function_id, r.status, r.output, r.error, r.created_at, r.ended_at, r.cancel_requested, r.queued_reason, r.last_seq, r.ckey1, r.ckey2, r.skey, r.held, r.cancel_reason, r.owner, r.rerun_of,
       e.id AS e_id, e.name AS e_name, e.data AS e_data, e.key AS e_key, e.v AS e_v, e.ts AS e_ts
FROM runs r JOIN events e ON e.id = r.event_id WHERE r.id = :run_id;

-- name: get_run_for_update
-- SQLite's single writer already orders this transaction against a recover.
SELECT r.id, r.function_id, r.status, r.output, r.error, r.created_at, r.ended_at, r.cancel_requested, r.queued_reason, r.last_seq, r.ckey1, r.ckey2, r.skey, r.held, r.cancel_reason, r.owner, r.rerun_of,
       e.id AS e_id, e.name AS e_name, e.data AS e_data, e.key AS e_key, e.v AS e_v, e.ts AS e_ts
FROM runs r JOIN events e ON e.id = r.event_id WHERE r.id = :run_id;

-- name: runs_for_event
SELECT r.id, r.function_id, r.status, r.output, r.error, r.created_at, r.ended_at, r.cancel_requested, r.queued_reason, r.last_seq, r.ckey1, r.ckey2, r.skey, r.held, r.cancel_reason, r.rerun_of,
       e.id AS e_id, e.name AS e_name, e.data AS e_data, e.key AS e_key, e.v AS e_v, e.ts AS e_ts
FROM runs r JOIN events e ON e.id = r.event_id WHERE r.event_id = :event_id
   OR r.id IN (SELECT run_id FROM run_events WHERE event_id = :event_id) ORDER BY r.id;

-- name: request_cancel
UPDATE runs SET cancel_requested = 1, cancel_reason = :why WHERE id = :run_id AND status = 'running';

-- name: upsert_worker
INSERT INTO workers (id, started_at, heartbeat_at) VALUES (:id, :now, :now)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at;

-- name: delete_worker
DELETE FROM workers WHERE id = :id;

-- name: release_runs
UPDATE runs SET status = 'queued', owner = NULL, resume_requested = 0
WHERE status = 'running' AND owner = :owner
RETURNING ckey1, ckey2, skey;

-- name: recover_runs
UPDATE runs SET status = 'queued', owner = NULL, resume_requested = 0
WHERE status = 'running'
  AND (owner IS NULL OR owner NOT IN (SELECT id FROM workers WHERE heartbeat_at >= :alive_since))
RETURNING ckey1, ckey2, skey;

-- name: delete_dead_workers
DELETE FROM workers WHERE heartbeat_at < :alive_since;

-- name: shapes_for_names
SELECT event_name, shape FROM wait_shapes WHERE event_name IN (:name, '');

-- name: scanned_waits
SELECT w.id, w.run_id, w.step_id, w.kind, w.if_exp, w.condition FROM waits w
WHERE w.event_name IN (:name, '') AND w.shape = '' AND w.match_key = '';

-- name: waits_for_key
SELECT w.id, w.run_id, w.step_id, w.kind, w.if_exp, w.condition FROM waits w
WHERE w.event_name = :event_name AND w.shape = :shape AND w.match_key = :match_key ORDER BY w.id;

-- name: insert_event_key
INSERT OR IGNORE INTO event_keys (event_name, shape, match_key, seq) VALUES (:event_name, :shape, :match_key, :seq);

-- name: insert_wait
INSERT INTO waits (run_id, step_id, kind, event_name, shape, match_key, if_exp, created_at, condition, take, room)
VALUES (:run_id, :step_id, :kind, :event_name, :shape, :match_key, :if_exp, :now, :condition, :take, :room);

-- name: insert_shape
INSERT OR IGNORE INTO wait_shapes (event_name, shape, since_seq)
VALUES (:event_name, :shape, (SELECT coalesce(max(seq), 0) FROM events));

-- name: shape_since
SELECT since_seq FROM wait_shapes WHERE event_name = :event_name AND shape = :shape;

-- name: claim_wait
DELETE FROM waits WHERE run_id = :run_id AND step_id = :step_id;

-- name: delete_waits_of_run
DELETE FROM waits WHERE run_id = :run_id;

-- name: complete_step
UPDATE steps SET status = 'completed', output = :output, ended_at = :now WHERE run_id = :run_id AND id = :step_id;

-- name: fail_step
UPDATE steps SET status = 'failed', error = :error, ended_at = :now WHERE run_id = :run_id AND id = :step_id;

-- name: insert_consumed
INSERT OR IGNORE INTO consumed (run_id, event_seq, step_id, condition) VALUES (:run_id, :seq, :step_id, :condition);

-- name: trigger_of_run
SELECT e.seq, r.last_seq, e.id, e.name, e.data, e.key, e.v, e.ts FROM runs r JOIN events e ON e.id = r.event_id
WHERE r.id = :run_id;

-- name: event_by_seq
SELECT seq, id, name, data, key, v, ts FROM events WHERE seq = :seq;

-- name: first_seq_since
SELECT min(seq) AS first FROM events WHERE received_at >= :since;

-- name: lookback_indexed
SELECT k.seq FROM event_keys k
WHERE k.event_name = :event_name AND k.shape = :shape AND k.match_key = :match_key AND k.seq > :after
  AND NOT EXISTS (SELECT 1 FROM consumed c WHERE c.run_id = :run_id AND c.event_seq = k.seq)
ORDER BY k.seq LIMIT :limit;

-- name: lookback_by_name
SELECT e.seq FROM events e
WHERE e.name = :event_name AND e.seq > :after AND e.seq <= :upto AND e.delivered = 1
  AND NOT EXISTS (SELECT 1 FROM consumed c WHERE c.run_id = :run_id AND c.event_seq = e.seq)
ORDER BY e.seq LIMIT :limit;

-- name: backoff_run
UPDATE runs SET status = 'sleeping', owner = NULL WHERE id = :run_id AND owner = :owner AND status = 'running'
RETURNING ckey1, ckey2, skey;

-- name: lookback_by_key
SELECT e.seq FROM events e
WHERE e.key = :key AND e.seq > :after AND e.seq <= :upto AND e.delivered = 1
  AND NOT EXISTS (SELECT 1 FROM consumed c WHERE c.run_id = :run_id AND c.event_seq = e.seq)
ORDER BY e.seq LIMIT :limit;

-- name: insert_handle
INSERT INTO resume_handles (token_hash, run_id, step_id, expires_at, payload, redirect_url)
VALUES (:token_hash, :run_id, :step_id, :expires_at, :payload, :redirect_url)
ON CONFLICT (token_hash) DO NOTHING;

-- name: handle_by_hash
SELECT h.token_hash, h.run_id, h.step_id, h.expires_at, h.payload, h.redirect_url, h.used_at, h.early, r.status
FROM resume_handles h JOIN runs r ON r.id = h.run_id WHERE h.token_hash = :token_hash;

-- name: use_handle
UPDATE resume_handles SET used_at = :now, early = :early WHERE token_hash = :token_hash AND used_at IS NULL;

-- name: list_events
SELECT e.seq, e.id, e.name, e.data, e.key, e.v, e.ts, e.received_at, e.delivered,
       (SELECT count(*) FROM runs r WHERE r.event_id = e.id) AS started,
       (SELECT count(*) FROM consumed c WHERE c.event_seq = e.seq) AS resumed,
       (SELECT group_concat(s.function_id || char(31) || s.reason, char(30)) FROM skips s WHERE s.event_id = e.id) AS skipped
FROM events e
WHERE (:name IS NULL OR e.name = :name) AND (:before IS NULL OR e.seq < :before)
ORDER BY e.seq DESC LIMIT :limit;

-- name: get_event
SELECT e.seq, e.id, e.name, e.data, e.key, e.v, e.ts, e.received_at, e.delivered,
       (SELECT count(*) FROM runs r WHERE r.event_id = e.id) AS started,
       (SELECT count(*) FROM consumed c WHERE c.event_seq = e.seq) AS resumed,
       (SELECT group_concat(s.function_id || char(31) || s.reason, char(30)) FROM skips s WHERE s.event_id = e.id) AS skipped
FROM events e WHERE e.id = :event_id;

-- name: runs_resumed_by_event
SELECT r.id, r.function_id, r.status, r.output, r.error, r.created_at, r.ended_at, r.cancel_requested, r.queued_reason, r.last_seq, r.ckey1, r.ckey2, r.skey, r.held, r.cancel_reason, r.rerun_of,
       e.id AS e_id, e.name AS e_name, e.data AS e_data, e.key AS e_key, e.v AS e_v, e.ts AS e_ts
FROM consumed c JOIN events x ON x.seq = c.event_seq JOIN runs r ON r.id = c.run_id JOIN events e ON e.id = r.event_id
WHERE x.id = :event_id AND (:before IS NULL OR r.id < :before) ORDER BY r.id DESC LIMIT :limit;

-- name: list_waits
-- A wait of several names has a row per name; each is listed at its first row, newest first.
SELECT w.id AS seq, w.run_id, w.step_id, w.kind, w.condition, w.take, w.shape, w.match_key, w.if_exp, w.created_at,
       (SELECT group_concat(n.event_name, char(31)) FROM (SELECT x.event_name FROM waits x
        WHERE x.run_id = w.run_id AND x.step_id = w.step_id AND x.condition = w.condition ORDER BY x.id) n) AS names,
       r.function_id, t.due_at, h.step_id AS handle_step, h.redirect_url
FROM waits w
JOIN runs r ON r.id = w.run_id
LEFT JOIN timers t ON t.run_id = w.run_id AND t.step_id = w.step_id
LEFT JOIN resume_handles h ON w.kind = 'resume' AND h.token_hash = w.match_key
WHERE w.kind != 'cancel' AND w.id < :before
  AND NOT EXISTS (SELECT 1 FROM waits f WHERE f.run_id = w.run_id AND f.step_id = w.step_id AND f.condition = w.condition AND f.id < w.id)
ORDER BY w.id DESC LIMIT :limit;

-- name: list_waits_of_run
SELECT w.id AS seq, w.run_id, w.step_id, w.kind, w.condition, w.take, w.shape, w.match_key, w.if_exp, w.created_at,
       (SELECT group_concat(n.event_name, char(31)) FROM (SELECT x.event_name FROM waits x
        WHERE x.run_id = w.run_id AND x.step_id = w.step_id AND x.condition = w.condition ORDER BY x.id) n) AS names,
       r.function_id, t.due_at, h.step_id AS handle_step, h.redirect_url
FROM waits w
JOIN runs r ON r.id = w.run_id
LEFT JOIN timers t ON t.run_id = w.run_id AND t.step_id = w.step_id
LEFT JOIN resume_handles h ON w.kind = 'resume' AND h.token_hash = w.match_key
WHERE w.run_id = :run_id AND w.kind != 'cancel' AND w.id < :before
  AND NOT EXISTS (SELECT 1 FROM waits f WHERE f.run_id = w.run_id AND f.step_id = w.step_id AND f.condition = w.condition AND f.id < w.id)
ORDER BY w.id DESC LIMIT :limit;

-- name: count_runs_by_status
SELECT status, count(*) AS n FROM runs GROUP BY status;

-- name: count_waits
SELECT count(DISTINCT run_id || char(31) || step_id) AS open,
       count(DISTINCT CASE WHEN shape = '' THEN run_id || char(31) || step_id END) AS scanned
FROM waits WHERE kind != 'cancel';

-- name: schema_present
SELECT count(*) AS present FROM sqlite_master WHERE type = 'table' AND name = 'tarry_migrations';

-- name: schema_versions
SELECT version FROM tarry_migrations ORDER BY version;

-- dead letters. One row's failure costs only that row (a savepoint undoes its writes), is counted, and
-- after a few failures the row is set aside.

-- name: savepoint
SAVEPOINT tarry_row;

-- name: release_savepoint
RELEASE SAVEPOINT tarry_row;

-- name: rollback_to_savepoint
ROLLBACK TO SAVEPOINT tarry_row;

-- name: count_failure
INSERT INTO dead_letters (kind, ref, event_id, run_id, step_id, detail, failures, error, first_failed_at, failed_at)
VALUES (:kind, :ref, :event_id, :run_id, :step_id, :detail, 1, :error, :now, :now)
ON CONFLICT (kind, ref) DO UPDATE SET
    failures = dead_letters.failures + 1, error = excluded.error, failed_at = excluded.failed_at
RETURNING failures;

-- name: set_aside
UPDATE dead_letters SET set_aside_at = :now WHERE kind = :kind AND ref = :ref;

-- name: set_event_aside
UPDATE events SET delivered = 2 WHERE seq = :seq;

-- name: list_dead_letters
SELECT id, kind, event_id, run_id, step_id, failures, error, first_failed_at, set_aside_at FROM dead_letters
WHERE set_aside_at IS NOT NULL AND (:before IS NULL OR id < :before)
ORDER BY id DESC LIMIT :limit;

-- name: count_dead_letters
SELECT count(*) AS n FROM dead_letters WHERE set_aside_at IS NOT NULL;

-- counters

-- name: lock_counts
-- Nothing to fold here (the triggers update the counters in place): SQLite has one writer.
SELECT 1;

-- name: counted_runs
SELECT status, n FROM run_counts;

-- name: counted_waits
SELECT open_waits AS open, scanned_waits AS scanned FROM wait_counts;

-- name: gated_candidates
-- Ready runs whose start needs a look at their limits, in their place's order.
SELECT id, function_id, ckey1, ckey2, tkey, skey, started_at, cancel_requested FROM runs
WHERE status = 'queued' AND held IS NULL AND gated = 1 ORDER BY place, id LIMIT :limit;

-- name: start_run
UPDATE runs SET status = 'running', owner = :owner, resume_requested = 0, started_at = coalesce(started_at, :now),
    queued_reason = NULL
WHERE id = :id AND status = 'queued'
RETURNING id, function_id, event_id, created_at, cancel_requested, last_seq;

-- name: hold_run
UPDATE runs SET held = :held, queued_reason = :reason WHERE id = :id AND status = 'queued';

-- name: unhold_run
UPDATE runs SET held = NULL, queued_reason = NULL WHERE id = :run_id AND status = 'queued' AND held IS NOT NULL;

-- name: release_next
-- The run held longest behind a partition (by place) is ready again, as a slot or a window of it is free.
UPDATE runs SET held = NULL, queued_reason = NULL
WHERE id = (SELECT id FROM runs WHERE status = 'queued' AND held = :held ORDER BY place, id LIMIT 1);

-- name: running_in
SELECT (SELECT count(*) FROM runs WHERE status = 'running' AND ckey1 = :key)
     + (SELECT count(*) FROM runs WHERE status = 'running' AND ckey2 = :key) AS n;

-- name: unfinished_others
SELECT count(*) AS n FROM runs
WHERE skey = :key AND status IN ('queued', 'running', 'sleeping', 'waiting') AND id != :id;

-- name: throttle_window
-- The limit-th newest first start in the window, if there is one (the window is full until it leaves).
SELECT started_at FROM runs WHERE tkey = :key AND started_at IS NOT NULL AND started_at > :since
ORDER BY started_at DESC LIMIT 1 OFFSET :skip;

-- name: unfinished_in
SELECT id FROM runs WHERE skey = :key AND status IN ('queued', 'running', 'sleeping', 'waiting') ORDER BY id;

-- name: rate_count
SELECT count(*) AS n FROM rate_windows WHERE partition = :partition AND at > :since;

-- name: rate_prune
DELETE FROM rate_windows WHERE partition = :partition AND at <= :since;

-- name: rate_insert
INSERT INTO rate_windows (partition, at) VALUES (:partition, :now);

-- name: idempotency_taken
SELECT 1 AS taken FROM idempotency_keys WHERE function_id = :function_id AND key = :key AND created_at > :since;

-- name: idempotency_put
INSERT INTO idempotency_keys (function_id, key, created_at) VALUES (:function_id, :key, :now)
ON CONFLICT (function_id, key) DO UPDATE SET created_at = excluded.created_at;

-- name: insert_skip
INSERT INTO skips (event_id, function_id, reason, at) VALUES (:event_id, :function_id, :reason, :now)
ON CONFLICT (event_id, function_id) DO NOTHING;

-- name: count_skip
INSERT INTO skip_counts (function_id, reason, n) VALUES (:function_id, :reason, 1)
ON CONFLICT (function_id, reason) DO UPDATE SET n = skip_counts.n + 1;

-- name: skip_counts
SELECT function_id, reason, n FROM skip_counts;

-- name: count_held
SELECT queued_reason, count(*) AS n FROM runs INDEXED BY runs_held WHERE status = 'queued' AND held IS NOT NULL
GROUP BY queued_reason;

-- name: buffer_for
SELECT id, kind, first_at, last_at, due_at, size, bytes, next_pos FROM buffers
WHERE function_id = :function_id AND partition = :partition;

-- name: buffer_by_id
SELECT id, function_id, kind, partition, first_at, due_at, size FROM buffers WHERE id = :id;

-- name: insert_buffer
INSERT INTO buffers (function_id, kind, partition, first_at, last_at, due_at, size, bytes, next_pos)
VALUES (:function_id, :kind, :partition, :now, :now, :due_at, 1, :bytes, 1) RETURNING id;

-- name: grow_buffer
UPDATE buffers SET last_at = :now, due_at = :due_at, size = :size, bytes = bytes + :bytes, next_pos = next_pos + 1
WHERE id = :id;

-- name: insert_buffer_event
INSERT INTO buffer_events (buffer_id, pos, event_id) VALUES (:buffer_id, :pos, :event_id);

-- name: drop_buffer_event
DELETE FROM buffer_events WHERE buffer_id = :buffer_id AND pos = :pos;

-- name: buffer_event_ids
SELECT event_id FROM buffer_events WHERE buffer_id = :buffer_id ORDER BY pos;

-- name: delete_buffer
DELETE FROM buffers WHERE id = :id;

-- name: delete_buffer_events
DELETE FROM buffer_events WHERE buffer_id = :buffer_id;

-- name: list_buffers
SELECT id, function_id, kind, partition, first_at, last_at, due_at, size FROM buffers
WHERE (:function_id IS NULL OR function_id = :function_id) AND (:before IS NULL OR id < :before)
ORDER BY id DESC LIMIT :limit;

-- name: insert_run_event
INSERT INTO run_events (run_id, pos, event_id) VALUES (:run_id, :pos, :event_id);

-- name: events_of_run
SELECT e.id, e.name, e.data, e.key, e.v, e.ts FROM run_events x JOIN events e ON e.id = x.event_id
WHERE x.run_id = :run_id ORDER BY x.pos;

-- name: event_row_by_id
SELECT seq, id, name, data, key, v, ts, exclude_function, only_function FROM events WHERE id = :id;

-- name: gated_sample
-- The first gated runs, ready and held (a heartbeat looks whether their function still has limits).
SELECT id, function_id FROM (SELECT id, function_id FROM runs WHERE status = 'queued' AND held IS NULL AND gated = 1
                             ORDER BY place, id LIMIT :limit) ready
UNION ALL
SELECT id, function_id FROM (SELECT id, function_id FROM runs INDEXED BY runs_held WHERE status = 'queued' AND held IS NOT NULL
                             LIMIT :limit) held;

-- name: ungate_run
UPDATE runs SET gated = 0, held = NULL, queued_reason = NULL WHERE id = :run_id AND status = 'queued';

-- name: release_next_after
-- The next run held behind a partition after the given one (which stays held).
UPDATE runs SET held = NULL, queued_reason = NULL
WHERE id = (SELECT r.id FROM runs r, runs me WHERE me.id = :id AND r.status = 'queued' AND r.held = :held
            AND (r.place > me.place OR (r.place = me.place AND r.id > me.id)) ORDER BY r.place, r.id LIMIT 1);

-- name: run_keys
SELECT ckey1, ckey2, skey FROM runs WHERE id = :run_id;

-- name: copy_consumed
-- What a kept step of a rerun consumed stays consumed in the rerun.
INSERT OR IGNORE INTO consumed (run_id, event_seq, step_id, condition)
SELECT :run_id, event_seq, step_id, condition FROM consumed WHERE run_id = :from_run AND step_id = :step_id;

-- name: copy_step_errors
-- A kept step of a rerun keeps every failed attempt's error.
INSERT INTO step_errors (run_id, step_id, attempt, error)
SELECT :run_id, step_id, attempt, error FROM step_errors WHERE run_id = :from_run AND step_id = :step_id
ON CONFLICT (run_id, step_id, attempt) DO NOTHING;

-- Listing runs (query_runs), one query per index that drives it, each in both orders. The range of
-- (created_at, id) always bounded (the store passes the far ends for an open one), so a page is a range scan.

-- name: query_runs_newest
SELECT r.id, r.function_id, r.status, r.output, r.error, r.created_at, r.ended_at, r.cancel_requested, r.queued_reason, r.last_seq, r.ckey1, r.ckey2, r.skey, r.held, r.cancel_reason, r.rerun_of,
       e.id AS e_id, e.name AS e_name, e.data AS e_data, e.key AS e_key, e.v AS e_v, e.ts AS e_ts
FROM runs r INDEXED BY runs_created JOIN events e ON e.id = r.event_id
WHERE (r.created_at, r.id) >= (:lo_at, :lo_id) AND (r.created_at, r.id) < (:hi_at, :hi_id)
  AND r.id <> :skip
  AND (:statuses IS NULL OR r.status IN (SELECT value FROM json_each(:statuses)))
  AND (:function_id IS NULL OR r.function_id = :function_id)
ORDER BY r.created_at DESC, r.id DESC LIMIT :limit;

-- name: query_runs_oldest
SELECT r.id, r.function_id, r.status, r.output, r.error, r.created_at, r.ended_at, r.cancel_requested, r.queued_reason, r.last_seq, r.ckey1, r.ckey2, r.skey, r.held, r.cancel_reason, r.rerun_of,
       e.id AS e_id, e.name AS e_name, e.data AS e_data, e.key AS e_key, e.v AS e_v, e.ts AS e_ts
FROM runs r INDEXED BY runs_created JOIN events e ON e.id = r.event_id
WHERE (r.created_at, r.id) >= (:lo_at, :lo_id) AND (r.created_at, r.id) < (:hi_at, :hi_id)
  AND r.id <> :skip
  AND (:statuses IS NULL OR r.status IN (SELECT value FROM json_each(:statuses)))
  AND (:function_id IS NULL OR r.function_id = :function_id)
ORDER BY r.created_at ASC, r.id ASC LIMIT :limit;

-- name: query_runs_of_function_newest
SELECT r.id, r.function_id, r.status, r.output, r.error, r.created_at, r.ended_at, r.cancel_requested, r.queued_reason, r.last_seq, r.ckey1, r.ckey2, r.skey, r.held, r.cancel_reason, r.rerun_of,
       e.id AS e_id, e.name AS e_name, e.data AS e_data, e.key AS e_key, e.v AS e_v, e.ts AS e_ts
FROM runs r INDEXED BY runs_function JOIN events e ON e.id = r.event_id
WHERE r.function_id = :function_id AND (r.created_at, r.id) >= (:lo_at, :lo_id) AND (r.created_at, r.id) < (:hi_at, :hi_id)
  AND r.id <> :skip
  AND (:statuses IS NULL OR r.status IN (SELECT value FROM json_each(:statuses)))
ORDER BY r.created_at DESC, r.id DESC LIMIT :limit;

-- name: query_runs_of_function_oldest
SELECT r.id, r.function_id, r.status, r.output, r.error, r.created_at, r.ended_at, r.cancel_requested, r.queued_reason, r.last_seq, r.ckey1, r.ckey2, r.skey, r.held, r.cancel_reason, r.rerun_of,
       e.id AS e_id, e.name AS e_name, e.data AS e_data, e.key AS e_key, e.v AS e_v, e.ts AS e_ts
FROM runs r INDEXED BY runs_function JOIN events e ON e.id = r.event_id
WHERE r.function_id = :function_id AND (r.created_at, r.id) >= (:lo_at, :lo_id) AND (r.created_at, r.id) < (:hi_at, :hi_id)
  AND r.id <> :skip
  AND (:statuses IS NULL OR r.status IN (SELECT value FROM json_each(:statuses)))
ORDER BY r.created_at ASC, r.id ASC LIMIT :limit;

-- name: query_runs_by_status_newest
SELECT r.id, r.function_id, r.status, r.output, r.error, r.created_at, r.ended_at, r.cancel_requested, r.queued_reason, r.last_seq, r.ckey1, r.ckey2, r.skey, r.held, r.cancel_reason, r.rerun_of,
       e.id AS e_id, e.name AS e_name, e.data AS e_data, e.key AS e_key, e.v AS e_v, e.ts AS e_ts
FROM runs r INDEXED BY runs_status JOIN events e ON e.id = r.event_id
WHERE r.status = :status AND (r.created_at, r.id) >= (:lo_at, :lo_id) AND (r.created_at, r.id) < (:hi_at, :hi_id)
  AND r.id <> :skip
  AND (:function_id IS NULL OR r.function_id = :function_id)
ORDER BY r.created_at DESC, r.id DESC LIMIT :limit;

-- name: query_runs_by_status_oldest
SELECT r.id, r.function_id, r.status, r.output, r.error, r.created_at, r.ended_at, r.cancel_requested, r.queued_reason, r.last_seq, r.ckey1, r.ckey2, r.skey, r.held, r.cancel_reason, r.rerun_of,
       e.id AS e_id, e.name AS e_name, e.data AS e_data, e.key AS e_key, e.v AS e_v, e.ts AS e_ts
FROM runs r INDEXED BY runs_status JOIN events e ON e.id = r.event_id
WHERE r.status = :status AND (r.created_at, r.id) >= (:lo_at, :lo_id) AND (r.created_at, r.id) < (:hi_at, :hi_id)
  AND r.id <> :skip
  AND (:function_id IS NULL OR r.function_id = :function_id)
ORDER BY r.created_at ASC, r.id ASC LIMIT :limit;

-- name: query_runs_of_event
-- The runs of one event are few, so they are sorted rather than scanned in order.
SELECT r.id, r.function_id, r.status, r.output, r.error, r.created_at, r.ended_at, r.cancel_requested, r.queued_reason, r.last_seq, r.ckey1, r.ckey2, r.skey, r.held, r.cancel_reason, r.rerun_of,
       e.id AS e_id, e.name AS e_name, e.data AS e_data, e.key AS e_key, e.v AS e_v, e.ts AS e_ts
FROM runs r JOIN events e ON e.id = r.event_id
WHERE (r.event_id = :event_id OR r.id IN (SELECT run_id FROM run_events WHERE event_id = :event_id))
  AND (r.created_at, r.id) >= (:lo_at, :lo_id) AND (r.created_at, r.id) < (:hi_at, :hi_id)
  AND r.id <> :skip
  AND (:function_id IS NULL OR r.function_id = :function_id) AND (:statuses IS NULL OR r.status IN (SELECT value FROM json_each(:statuses)))
ORDER BY CASE WHEN :oldest = 1 THEN r.created_at END, CASE WHEN :oldest = 1 THEN r.id END,
         r.created_at DESC, r.id DESC LIMIT :limit;

-- name: schedules_all
SELECT id, function_id, cron, timezone FROM schedules ORDER BY id;

-- name: schedule_by_id
SELECT id, function_id, cron, timezone FROM schedules WHERE id = :id;

-- name: insert_schedule
INSERT INTO schedules (function_id, cron, timezone, created_at) VALUES (:function_id, :cron, :timezone, :now)
RETURNING id;

-- name: delete_schedule
DELETE FROM schedules WHERE id = :id;

-- name: insert_timer_if_absent
INSERT INTO timers (run_id, step_id, kind, due_at) VALUES (:run_id, :step_id, :kind, :due_at)
ON CONFLICT (run_id, step_id) DO NOTHING;

-- Steps of several conditions (wait_for_all, wait_for_any, collect_events).

-- name: lock_timer
-- The row of the deadline first, as a firing timer takes it, so that an event of a condition and the deadline are ordered.
SELECT due_at FROM timers WHERE run_id = :run_id AND step_id = :step_id;

-- name: claim_condition
DELETE FROM waits WHERE run_id = :run_id AND step_id = :step_id AND condition = :condition;

-- name: step_is_open
SELECT 1 AS open FROM waits WHERE run_id = :run_id AND step_id = :step_id LIMIT 1;

-- name: consumed_by_step
SELECT c.condition, e.seq, e.id, e.name, e.data, e.key, e.v, e.ts FROM consumed c JOIN events e ON e.seq = c.event_seq
WHERE c.run_id = :run_id AND c.step_id = :step_id ORDER BY c.event_seq;

-- name: take_event
-- A collect_events condition takes one more event, if its result has room for it.
UPDATE waits SET take = take - 1, room = room - :size
WHERE run_id = :run_id AND step_id = :step_id AND room >= :size RETURNING take;

-- name: open_conditions
SELECT DISTINCT condition FROM waits WHERE run_id = :run_id AND step_id = :step_id;

-- The console's reads (query_runs by run id or by rerun_of, runs by ids, counts by status).

-- name: query_one_run
-- One run by its id, if every other filter holds for it.
SELECT r.id, r.function_id, r.status, r.output, r.error, r.created_at, r.ended_at, r.cancel_requested, r.queued_reason, r.last_seq, r.ckey1, r.ckey2, r.skey, r.held, r.cancel_reason, r.rerun_of,
       e.id AS e_id, e.name AS e_name, e.data AS e_data, e.key AS e_key, e.v AS e_v, e.ts AS e_ts
FROM runs r JOIN events e ON e.id = r.event_id
WHERE r.id = :run_id
  AND (r.created_at, r.id) >= (:lo_at, :lo_id) AND (r.created_at, r.id) < (:hi_at, :hi_id) AND r.id <> :skip
  AND (:rerun_of IS NULL OR r.rerun_of = :rerun_of)
  AND (:event_id IS NULL OR r.event_id = :event_id OR r.id IN (SELECT run_id FROM run_events WHERE event_id = :event_id))
  AND (:function_id IS NULL OR r.function_id = :function_id) AND (:statuses IS NULL OR r.status IN (SELECT value FROM json_each(:statuses)))
LIMIT :limit;

-- name: query_runs_of_rerun_newest
-- The reruns of one run are few; the event's filter is the runs it started (reruns keep their trigger).
SELECT r.id, r.function_id, r.status, r.output, r.error, r.created_at, r.ended_at, r.cancel_requested, r.queued_reason, r.last_seq, r.ckey1, r.ckey2, r.skey, r.held, r.cancel_reason, r.rerun_of,
       e.id AS e_id, e.name AS e_name, e.data AS e_data, e.key AS e_key, e.v AS e_v, e.ts AS e_ts
FROM runs r JOIN events e ON e.id = r.event_id
WHERE r.rerun_of = :rerun_of
  AND (r.created_at, r.id) >= (:lo_at, :lo_id) AND (r.created_at, r.id) < (:hi_at, :hi_id) AND r.id <> :skip
  AND (:event_id IS NULL OR r.event_id = :event_id OR r.id IN (SELECT run_id FROM run_events WHERE event_id = :event_id))
  AND (:function_id IS NULL OR r.function_id = :function_id) AND (:statuses IS NULL OR r.status IN (SELECT value FROM json_each(:statuses)))
ORDER BY r.created_at DESC, r.id DESC LIMIT :limit;

-- name: query_runs_of_rerun_oldest
SELECT r.id, r.function_id, r.status, r.output, r.error, r.created_at, r.ended_at, r.cancel_requested, r.queued_reason, r.last_seq, r.ckey1, r.ckey2, r.skey, r.held, r.cancel_reason, r.rerun_of,
       e.id AS e_id, e.name AS e_name, e.data AS e_data, e.key AS e_key, e.v AS e_v, e.ts AS e_ts
FROM runs r JOIN events e ON e.id = r.event_id
WHERE r.rerun_of = :rerun_of
  AND (r.created_at, r.id) >= (:lo_at, :lo_id) AND (r.created_at, r.id) < (:hi_at, :hi_id) AND r.id <> :skip
  AND (:event_id IS NULL OR r.event_id = :event_id OR r.id IN (SELECT run_id FROM run_events WHERE event_id = :event_id))
  AND (:function_id IS NULL OR r.function_id = :function_id) AND (:statuses IS NULL OR r.status IN (SELECT value FROM json_each(:statuses)))
ORDER BY r.created_at ASC, r.id ASC LIMIT :limit;

-- name: runs_by_ids
-- The runs a live page shows (a JSON array of at most a few hundred ids), each found by its key.
SELECT r.id, r.function_id, r.status, r.output, r.error, r.created_at, r.ended_at, r.cancel_requested, r.queued_reason, r.last_seq, r.ckey1, r.ckey2, r.skey, r.held, r.cancel_reason, r.rerun_of,
       e.id AS e_id, e.name AS e_name, e.data AS e_data, e.key AS e_key, e.v AS e_v, e.ts AS e_ts
FROM runs r JOIN events e ON e.id = r.event_id
WHERE r.id IN (SELECT value FROM json_each(:ids));

-- name: count_runs_in_status
-- The runs of one status in a range of creation: a count of a range of the index runs_status alone.
SELECT COUNT(*) AS n FROM runs INDEXED BY runs_status
WHERE status = :status AND created_at >= :lo_at AND created_at < :hi_at;

-- name: count_runs_of_function
SELECT status, COUNT(*) AS n FROM runs INDEXED BY runs_function
WHERE function_id = :function_id AND created_at >= :lo_at AND created_at < :hi_at
GROUP BY status;

-- name: count_runs_of_event
-- The runs of one event, found by their ids, each half by its index (an OR of the two reads every run).
SELECT r.status, COUNT(*) AS n FROM runs r
WHERE r.id IN (SELECT x.id FROM runs x WHERE x.event_id = :event_id
               UNION ALL SELECT b.run_id FROM run_events b WHERE b.event_id = :event_id)
  AND r.created_at >= :lo_at AND r.created_at < :hi_at
  AND (:function_id IS NULL OR r.function_id = :function_id)
GROUP BY r.status;

-- Fewer statements per run. A run's claim loads the events and steps of every run claimed in one
-- query each. PostgreSQL also joins a few hot statements into one (a round trip each there); on SQLite
-- those names hold the plain statements it runs instead, in a comment.

-- name: events_by_ids
-- The triggers of the runs of one claim (a JSON array of their event ids).
SELECT id, name, data, key, v, ts FROM events WHERE id IN (SELECT value FROM json_each(:ids));

-- name: steps_of_runs
-- The step records of the runs of one claim (a JSON array of their ids), each run's in recorded order.
SELECT run_id, id, kind, status, attempts, output, error, started_at, ended_at, wake_at FROM steps
WHERE run_id IN (SELECT value FROM json_each(:run_ids)) ORDER BY run_id, rowid;

-- name: candidate_waits
-- PostgreSQL's one read (a JSON array of probes); SQLite runs scanned_waits, then waits_for_key per probe.

-- name: insert_indexed_event
-- PostgreSQL's one statement; SQLite (no locks) runs insert_event, then insert_event_key per probe.

-- name: lock_shared_names
-- PostgreSQL's advisory locks; SQLite's single writer needs none.

-- name: resolve_wait
-- PostgreSQL's one statement; SQLite runs delete_timer, claim_wait, then complete_step, wake_run and
-- insert_consumed if it claimed the wait.

-- name: finish_and_clear_run
-- PostgreSQL's one statement; SQLite runs finish_run, then delete_timers_of_run and delete_waits_of_run.

-- name: record_owned_step
-- PostgreSQL's one statement; SQLite runs run_control, then upsert_step if the run is the caller's.

-- name: sdk_apps_all
SELECT app_id, url, functions, digest, synced_at FROM sdk_apps ORDER BY app_id;

-- name: sdk_apps_version
SELECT coalesce(group_concat(digest, ','), '') AS version FROM (SELECT digest FROM sdk_apps ORDER BY app_id);

-- name: sdk_app_digest
SELECT digest FROM sdk_apps WHERE app_id = :app_id;

-- name: upsert_sdk_app
INSERT INTO sdk_apps (app_id, url, functions, digest, synced_at)
VALUES (:app_id, :url, :functions, :digest, :now)
ON CONFLICT (app_id) DO UPDATE SET url = excluded.url, functions = excluded.functions,
    digest = excluded.digest, synced_at = excluded.synced_at;
