-- Every SQL statement of the PostgreSQL store, by name. Parameters are named (%(x)s).

-- name: find_duplicate
SELECT id FROM events WHERE dedup_id = %(dedup_id)s AND received_at >= %(since)s ORDER BY seq LIMIT 1;

-- name: insert_event
INSERT INTO events (id, name, data, key, v, dedup_id, ts, received_at, delivered, exclude_function, only_function)
VALUES (%(id)s, %(name)s, %(data)s, %(key)s, %(v)s, %(dedup_id)s, %(ts)s, %(received_at)s, %(delivered)s, %(exclude_function)s, %(only_function)s)
RETURNING seq;

-- name: mark_delivered
UPDATE events SET delivered = 1 WHERE seq = %(seq)s;

-- name: due_events
SELECT seq, id, name, data, key, v, ts, exclude_function, only_function FROM events
WHERE delivered = 0 AND ts <= %(now)s ORDER BY ts, seq LIMIT %(limit)s
FOR UPDATE SKIP LOCKED;

-- name: insert_run
INSERT INTO runs (id, function_id, event_id, status, created_at, queued_at, place, gated, ckey1, ckey2, tkey,
                  skey, last_seq, rerun_of)
VALUES (%(id)s, %(function_id)s, %(event_id)s, 'queued', %(now)s, %(now)s, %(place)s, %(gated)s, %(ckey1)s, %(ckey2)s, %(tkey)s, %(skey)s, %(last_seq)s, %(rerun_of)s);

-- name: claim_runs
-- Runs without limits, the first ready ones, in their place's order.
UPDATE runs SET status = 'running', owner = %(owner)s, resume_requested = 0, started_at = coalesce(started_at, %(now)s)
WHERE id IN (SELECT id FROM runs WHERE status = 'queued' AND held IS NULL AND gated = 0 ORDER BY place, id
             LIMIT %(limit)s
             FOR UPDATE SKIP LOCKED)
RETURNING id, function_id, event_id, created_at, cancel_requested, last_seq;

-- name: event_by_id
SELECT id, name, data, key, v, ts FROM events WHERE id = %(id)s;

-- name: steps_of_run
SELECT id, kind, status, attempts, output, error, started_at, ended_at, wake_at FROM steps
WHERE run_id = %(run_id)s ORDER BY seq;

-- name: run_control
-- Locks the row, so a recover (or a new owner's claim) commits before this transaction or after it,
-- never between its ownership check and its writes.
SELECT owner, cancel_requested FROM runs WHERE id = %(run_id)s FOR UPDATE;

-- name: upsert_step
INSERT INTO steps (run_id, id, kind, status, attempts, output, error, started_at, ended_at, wake_at)
VALUES (%(run_id)s, %(id)s, %(kind)s, %(status)s, %(attempts)s, %(output)s, %(error)s, %(started_at)s, %(ended_at)s, %(wake_at)s)
ON CONFLICT (run_id, id) DO UPDATE SET
    status = excluded.status, attempts = excluded.attempts, output = excluded.output,
    error = excluded.error, started_at = coalesce(steps.started_at, excluded.started_at),
    ended_at = excluded.ended_at, wake_at = excluded.wake_at;

-- name: insert_step_error
INSERT INTO step_errors (run_id, step_id, attempt, error) VALUES (%(run_id)s, %(step_id)s, %(attempt)s, %(error)s)
ON CONFLICT (run_id, step_id, attempt) DO NOTHING;

-- name: step_errors_of_run
SELECT step_id, error FROM step_errors WHERE run_id = %(run_id)s ORDER BY step_id, attempt;

-- name: insert_timer
INSERT INTO timers (run_id, step_id, kind, due_at) VALUES (%(run_id)s, %(step_id)s, %(kind)s, %(due_at)s)
ON CONFLICT (run_id, step_id) DO UPDATE SET kind = excluded.kind, due_at = excluded.due_at;

-- name: park_run
UPDATE runs SET status = %(status)s, owner = NULL
WHERE id = %(run_id)s AND owner = %(owner)s AND resume_requested = 0 AND cancel_requested = 0
RETURNING ckey1, ckey2, skey;

-- name: clear_resume
UPDATE runs SET resume_requested = 0 WHERE id = %(run_id)s;

-- name: requeue_run
UPDATE runs SET status = 'queued', owner = NULL, resume_requested = 0
WHERE id = %(run_id)s AND owner = %(owner)s
RETURNING ckey1, ckey2, skey;

-- name: finish_run
UPDATE runs SET status = %(status)s, output = %(output)s, error = %(error)s, ended_at = %(now)s, owner = NULL
WHERE id = %(run_id)s AND status NOT IN ('completed', 'failed', 'cancelled');

-- name: delete_timers_of_run
DELETE FROM timers WHERE run_id = %(run_id)s;

-- name: due_timers
SELECT run_id, step_id, kind, due_at FROM timers WHERE due_at <= %(now)s ORDER BY due_at LIMIT %(limit)s
FOR UPDATE SKIP LOCKED;

-- name: delete_timer
DELETE FROM timers WHERE run_id = %(run_id)s AND step_id = %(step_id)s;

-- name: complete_sleep
UPDATE steps SET status = 'completed', ended_at = %(now)s
WHERE run_id = %(run_id)s AND id = %(step_id)s AND status = 'sleeping';

-- name: wake_run
UPDATE runs SET
    status = CASE WHEN status IN ('sleeping', 'waiting') THEN 'queued' ELSE status END,
    resume_requested = CASE WHEN status = 'running' THEN 1 ELSE resume_requested END
WHERE id = %(run_id)s;

-- name: next_due
SELECT min(due) AS due FROM (
    SELECT min(due_at) AS due FROM timers
    UNION ALL SELECT min(ts) AS due FROM events WHERE delivered = 0
) dues;

-- name: has_work
SELECT (EXISTS (SELECT 1 FROM runs WHERE status = 'running')
    OR EXISTS (SELECT 1 FROM runs WHERE status = 'queued' AND held IS NULL)
    OR EXISTS (SELECT 1 FROM timers WHERE due_at <= %(now)s)
    OR EXISTS (SELECT 1 FROM events WHERE delivered = 0 AND ts <= %(now)s)) AS busy;

-- name: get_run
SELECT r.id, r.function_id, r.status, r.output, r.error, r.created_at, r.ended_at, r.cancel_requested, r.queued_reason, r.last_seq, r.ckey1, r.ckey2, r.skey, r.held, r.cancel_reason, r.owner, r.rerun_of,
       e.id AS e_id, e.name AS e_name, e.data AS e_data, e.key AS e_key, e.v AS e_v, e.ts AS e_ts
FROM runs r JOIN events e ON e.id = r.event_id WHERE r.id = %(run_id)s;

-- name: get_run_for_update
SELECT r.id, r.function_id, r.status, r.output, r.error, r.created_at, r.ended_at, r.cancel_requested, r.queued_reason, r.last_seq, r.ckey1, r.ckey2, r.skey, r.held, r.cancel_reason, r.owner, r.rerun_of,
       e.id AS e_id, e.name AS e_name, e.data AS e_data, e.key AS e_key, e.v AS e_v, e.ts AS e_ts
FROM runs r JOIN events e ON e.id = r.event_id WHERE r.id = %(run_id)s FOR UPDATE OF r;

-- name: runs_for_event
SELECT r.id, r.function_id, r.status, r.output, r.error, r.created_at, r.ended_at, r.cancel_requested, r.queued_reason, r.last_seq, r.ckey1, r.ckey2, r.skey, r.held, r.cancel_reason, r.rerun_of,
       e.id AS e_id, e.name AS e_name, e.data AS e_data, e.key AS e_key, e.v AS e_v, e.ts AS e_ts
FROM runs r JOIN events e ON e.id = r.event_id WHERE r.event_id = %(event_id)s
   OR r.id IN (SELECT run_id FROM run_events WHERE event_id = %(event_id)s) ORDER BY r.id;

-- name: request_cancel
UPDATE runs SET cancel_requested = 1, cancel_reason = %(why)s WHERE id = %(run_id)s AND status = 'running';

-- name: upsert_worker
INSERT INTO workers (id, started_at, heartbeat_at) VALUES (%(id)s, %(now)s, %(now)s)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at;

-- name: delete_worker
DELETE FROM workers WHERE id = %(id)s;

-- name: release_runs
UPDATE runs SET status = 'queued', owner = NULL, resume_requested = 0
WHERE status = 'running' AND owner = %(owner)s
RETURNING ckey1, ckey2, skey;

-- name: recover_runs
UPDATE runs SET status = 'queued', owner = NULL, resume_requested = 0
WHERE status = 'running'
  AND (owner IS NULL OR owner NOT IN (SELECT id FROM workers WHERE heartbeat_at >= %(alive_since)s))
RETURNING ckey1, ckey2, skey;

-- name: delete_dead_workers
DELETE FROM workers WHERE heartbeat_at < %(alive_since)s;

-- name: shapes_for_names
SELECT event_name, shape FROM wait_shapes WHERE event_name IN (%(name)s, '');

-- name: scanned_waits
SELECT w.id, w.run_id, w.step_id, w.kind, w.if_exp, w.condition FROM waits w
WHERE w.event_name IN (%(name)s, '') AND w.shape = '' AND w.match_key = '';

-- name: waits_for_key
SELECT w.id, w.run_id, w.step_id, w.kind, w.if_exp, w.condition FROM waits w
WHERE w.event_name = %(event_name)s AND w.shape = %(shape)s AND w.match_key = %(match_key)s ORDER BY w.id;

-- name: insert_event_key
INSERT INTO event_keys (event_name, shape, match_key, seq) VALUES (%(event_name)s, %(shape)s, %(match_key)s, %(seq)s)
ON CONFLICT DO NOTHING;

-- name: insert_wait
INSERT INTO waits (run_id, step_id, kind, event_name, shape, match_key, if_exp, created_at, condition, take, room)
VALUES (%(run_id)s, %(step_id)s, %(kind)s, %(event_name)s, %(shape)s, %(match_key)s, %(if_exp)s, %(now)s, %(condition)s, %(take)s, %(room)s);

-- name: insert_shape
INSERT INTO wait_shapes (event_name, shape, since_seq)
VALUES (%(event_name)s, %(shape)s, (SELECT coalesce(max(seq), 0) FROM events))
ON CONFLICT DO NOTHING;

-- name: shape_since
SELECT since_seq FROM wait_shapes WHERE event_name = %(event_name)s AND shape = %(shape)s;

-- name: claim_wait
DELETE FROM waits WHERE run_id = %(run_id)s AND step_id = %(step_id)s;

-- name: delete_waits_of_run
DELETE FROM waits WHERE run_id = %(run_id)s;

-- name: complete_step
UPDATE steps SET status = 'completed', output = %(output)s, ended_at = %(now)s WHERE run_id = %(run_id)s AND id = %(step_id)s;

-- name: fail_step
UPDATE steps SET status = 'failed', error = %(error)s, ended_at = %(now)s WHERE run_id = %(run_id)s AND id = %(step_id)s;

-- name: insert_consumed
INSERT INTO consumed (run_id, event_seq, step_id, condition) VALUES (%(run_id)s, %(seq)s, %(step_id)s, %(condition)s)
ON CONFLICT DO NOTHING;

-- name: trigger_of_run
SELECT e.seq, r.last_seq, e.id, e.name, e.data, e.key, e.v, e.ts FROM runs r JOIN events e ON e.id = r.event_id
WHERE r.id = %(run_id)s;

-- name: event_by_seq
SELECT seq, id, name, data, key, v, ts FROM events WHERE seq = %(seq)s;

-- name: first_seq_since
SELECT min(seq) AS first FROM events WHERE received_at >= %(since)s;

-- name: lookback_indexed
-- The events a run consumed are read once per look-back, as a hashed set (NOT IN), not probed once per
-- candidate event, so a run that consumed many events (collect_events) costs no more per look-back.
SELECT k.seq FROM event_keys k
WHERE k.event_name = %(event_name)s AND k.shape = %(shape)s AND k.match_key = %(match_key)s AND k.seq > %(after)s
  AND k.seq NOT IN (SELECT c.event_seq FROM consumed c WHERE c.run_id = %(run_id)s AND c.event_seq > %(after)s)
ORDER BY k.seq LIMIT %(limit)s;

-- name: lookback_by_name
SELECT e.seq FROM events e
WHERE e.name = %(event_name)s AND e.seq > %(after)s AND e.seq <= %(upto)s AND e.delivered = 1
  AND e.seq NOT IN (SELECT c.event_seq FROM consumed c WHERE c.run_id = %(run_id)s AND c.event_seq > %(after)s)
ORDER BY e.seq LIMIT %(limit)s;

-- name: backoff_run
UPDATE runs SET status = 'sleeping', owner = NULL WHERE id = %(run_id)s AND owner = %(owner)s AND status = 'running'
RETURNING ckey1, ckey2, skey;

-- name: lookback_by_key
SELECT e.seq FROM events e
WHERE e.key = %(key)s AND e.seq > %(after)s AND e.seq <= %(upto)s AND e.delivered = 1
  AND e.seq NOT IN (SELECT c.event_seq FROM consumed c WHERE c.run_id = %(run_id)s AND c.event_seq > %(after)s)
ORDER BY e.seq LIMIT %(limit)s;

-- name: insert_handle
INSERT INTO resume_handles (token_hash, run_id, step_id, expires_at, payload, redirect_url)
VALUES (%(token_hash)s, %(run_id)s, %(step_id)s, %(expires_at)s, %(payload)s, %(redirect_url)s)
ON CONFLICT (token_hash) DO NOTHING;

-- name: handle_by_hash
SELECT h.token_hash, h.run_id, h.step_id, h.expires_at, h.payload, h.redirect_url, h.used_at, h.early, r.status
FROM resume_handles h JOIN runs r ON r.id = h.run_id WHERE h.token_hash = %(token_hash)s;

-- name: use_handle
UPDATE resume_handles SET used_at = %(now)s, early = %(early)s WHERE token_hash = %(token_hash)s AND used_at IS NULL;

-- name: list_events
SELECT e.seq, e.id, e.name, e.data, e.key, e.v, e.ts, e.received_at, e.delivered,
       (SELECT count(*) FROM runs r WHERE r.event_id = e.id) AS started,
       (SELECT count(*) FROM consumed c WHERE c.event_seq = e.seq) AS resumed,
       (SELECT string_agg(s.function_id || chr(31) || s.reason, chr(30)) FROM skips s WHERE s.event_id = e.id) AS skipped
FROM events e
WHERE (%(name)s::text IS NULL OR e.name = %(name)s) AND (%(before)s::bigint IS NULL OR e.seq < %(before)s)
ORDER BY e.seq DESC LIMIT %(limit)s;

-- name: get_event
SELECT e.seq, e.id, e.name, e.data, e.key, e.v, e.ts, e.received_at, e.delivered,
       (SELECT count(*) FROM runs r WHERE r.event_id = e.id) AS started,
       (SELECT count(*) FROM consumed c WHERE c.event_seq = e.seq) AS resumed,
       (SELECT string_agg(s.function_id || chr(31) || s.reason, chr(30)) FROM skips s WHERE s.event_id = e.id) AS skipped
FROM events e WHERE e.id = %(event_id)s;

-- name: runs_resumed_by_event
SELECT r.id, r.function_id, r.status, r.output, r.error, r.created_at, r.ended_at, r.cancel_requested, r.queued_reason, r.last_seq, r.ckey1, r.ckey2, r.skey, r.held, r.cancel_reason, r.rerun_of,
       e.id AS e_id, e.name AS e_name, e.data AS e_data, e.key AS e_key, e.v AS e_v, e.ts AS e_ts
FROM consumed c JOIN events x ON x.seq = c.event_seq JOIN runs r ON r.id = c.run_id JOIN events e ON e.id = r.event_id
WHERE x.id = %(event_id)s AND (%(before)s::text IS NULL OR r.id < %(before)s) ORDER BY r.id DESC LIMIT %(limit)s;

-- name: list_waits
-- A wait of several names has a row per name; each is listed at its first row, newest first.
SELECT w.id AS seq, w.run_id, w.step_id, w.kind, w.condition, w.take, w.shape, w.match_key, w.if_exp, w.created_at,
       (SELECT string_agg(x.event_name, chr(31) ORDER BY x.id) FROM waits x
        WHERE x.run_id = w.run_id AND x.step_id = w.step_id AND x.condition = w.condition) AS names,
       r.function_id, t.due_at, h.step_id AS handle_step, h.redirect_url
FROM waits w
JOIN runs r ON r.id = w.run_id
LEFT JOIN timers t ON t.run_id = w.run_id AND t.step_id = w.step_id
LEFT JOIN resume_handles h ON w.kind = 'resume' AND h.token_hash = w.match_key
WHERE w.kind != 'cancel' AND w.id < %(before)s
  AND NOT EXISTS (SELECT 1 FROM waits f WHERE f.run_id = w.run_id AND f.step_id = w.step_id AND f.condition = w.condition AND f.id < w.id)
ORDER BY w.id DESC LIMIT %(limit)s;

-- name: list_waits_of_run
SELECT w.id AS seq, w.run_id, w.step_id, w.kind, w.condition, w.take, w.shape, w.match_key, w.if_exp, w.created_at,
       (SELECT string_agg(x.event_name, chr(31) ORDER BY x.id) FROM waits x
        WHERE x.run_id = w.run_id AND x.step_id = w.step_id AND x.condition = w.condition) AS names,
       r.function_id, t.due_at, h.step_id AS handle_step, h.redirect_url
FROM waits w
JOIN runs r ON r.id = w.run_id
LEFT JOIN timers t ON t.run_id = w.run_id AND t.step_id = w.step_id
LEFT JOIN resume_handles h ON w.kind = 'resume' AND h.token_hash = w.match_key
WHERE w.run_id = %(run_id)s AND w.kind != 'cancel' AND w.id < %(before)s
  AND NOT EXISTS (SELECT 1 FROM waits f WHERE f.run_id = w.run_id AND f.step_id = w.step_id AND f.condition = w.condition AND f.id < w.id)
ORDER BY w.id DESC LIMIT %(limit)s;

-- name: count_runs_by_status
SELECT status, count(*) AS n FROM runs GROUP BY status;

-- name: count_waits
SELECT count(DISTINCT run_id || chr(31) || step_id) AS open,
       count(DISTINCT CASE WHEN shape = '' THEN run_id || chr(31) || step_id END) AS scanned
FROM waits WHERE kind != 'cancel';

-- name: schema_present
SELECT count(*) AS present FROM pg_catalog.pg_tables
WHERE tablename = 'tarry_migrations' AND schemaname = ANY (current_schemas(false));

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
VALUES (%(kind)s, %(ref)s, %(event_id)s, %(run_id)s, %(step_id)s, %(detail)s, 1, %(error)s, %(now)s, %(now)s)
ON CONFLICT (kind, ref) DO UPDATE SET
    failures = dead_letters.failures + 1, error = excluded.error, failed_at = excluded.failed_at
RETURNING failures;

-- name: set_aside
UPDATE dead_letters SET set_aside_at = %(now)s WHERE kind = %(kind)s AND ref = %(ref)s;

-- name: set_event_aside
UPDATE events SET delivered = 2 WHERE seq = %(seq)s;

-- name: list_dead_letters
SELECT id, kind, event_id, run_id, step_id, failures, error, first_failed_at, set_aside_at FROM dead_letters
WHERE set_aside_at IS NOT NULL AND (%(before)s::bigint IS NULL OR id < %(before)s)
ORDER BY id DESC LIMIT %(limit)s;

-- name: count_dead_letters
SELECT count(*) AS n FROM dead_letters WHERE set_aside_at IS NOT NULL;

-- counters

-- name: lock_counts
-- One scrape at a time folds the deltas, so that a second one sees the first one's folded rows.
SELECT pg_advisory_xact_lock(hashtextextended('tarry counts', 0));

-- name: counted_runs
WITH gone AS (DELETE FROM run_counts RETURNING status, n),
     summed AS (SELECT status, sum(n)::bigint AS n FROM gone GROUP BY status),
     folded AS (INSERT INTO run_counts (status, n) SELECT status, n FROM summed)
SELECT status, n FROM summed;

-- name: counted_waits
WITH gone AS (DELETE FROM wait_counts RETURNING open_waits, scanned_waits),
     summed AS (SELECT coalesce(sum(open_waits), 0)::bigint AS open,
                       coalesce(sum(scanned_waits), 0)::bigint AS scanned FROM gone),
     folded AS (INSERT INTO wait_counts (open_waits, scanned_waits) SELECT open, scanned FROM summed)
SELECT open, scanned FROM summed;

-- name: gated_candidates
-- Ready runs whose start needs a look at their limits, in their place's order.
SELECT id, function_id, ckey1, ckey2, tkey, skey, started_at, cancel_requested FROM runs
WHERE status = 'queued' AND held IS NULL AND gated = 1 ORDER BY place, id LIMIT %(limit)s
FOR UPDATE SKIP LOCKED;

-- name: start_run
UPDATE runs SET status = 'running', owner = %(owner)s, resume_requested = 0, started_at = coalesce(started_at, %(now)s),
    queued_reason = NULL
WHERE id = %(id)s AND status = 'queued'
RETURNING id, function_id, event_id, created_at, cancel_requested, last_seq;

-- name: hold_run
UPDATE runs SET held = %(held)s, queued_reason = %(reason)s WHERE id = %(id)s AND status = 'queued';

-- name: unhold_run
UPDATE runs SET held = NULL, queued_reason = NULL WHERE id = %(run_id)s AND status = 'queued' AND held IS NOT NULL;

-- name: release_next
-- The run held longest behind a partition (by place) is ready again, as a slot or a window of it is free.
UPDATE runs SET held = NULL, queued_reason = NULL
WHERE id = (SELECT id FROM runs WHERE status = 'queued' AND held = %(held)s ORDER BY place, id LIMIT 1);

-- name: running_in
SELECT (SELECT count(*) FROM runs WHERE status = 'running' AND ckey1 = %(key)s)
     + (SELECT count(*) FROM runs WHERE status = 'running' AND ckey2 = %(key)s) AS n;

-- name: unfinished_others
SELECT count(*) AS n FROM runs
WHERE skey = %(key)s AND status IN ('queued', 'running', 'sleeping', 'waiting') AND id != %(id)s;

-- name: throttle_window
-- The limit-th newest first start in the window, if there is one (the window is full until it leaves).
SELECT started_at FROM runs WHERE tkey = %(key)s AND started_at IS NOT NULL AND started_at > %(since)s
ORDER BY started_at DESC LIMIT 1 OFFSET %(skip)s;

-- name: unfinished_in
SELECT id FROM runs WHERE skey = %(key)s AND status IN ('queued', 'running', 'sleeping', 'waiting') ORDER BY id;

-- name: rate_count
SELECT count(*) AS n FROM rate_windows WHERE partition = %(partition)s AND at > %(since)s;

-- name: rate_prune
DELETE FROM rate_windows WHERE partition = %(partition)s AND at <= %(since)s;

-- name: rate_insert
INSERT INTO rate_windows (partition, at) VALUES (%(partition)s, %(now)s);

-- name: idempotency_taken
SELECT 1 AS taken FROM idempotency_keys WHERE function_id = %(function_id)s AND key = %(key)s AND created_at > %(since)s;

-- name: idempotency_put
INSERT INTO idempotency_keys (function_id, key, created_at) VALUES (%(function_id)s, %(key)s, %(now)s)
ON CONFLICT (function_id, key) DO UPDATE SET created_at = excluded.created_at;

-- name: insert_skip
INSERT INTO skips (event_id, function_id, reason, at) VALUES (%(event_id)s, %(function_id)s, %(reason)s, %(now)s)
ON CONFLICT (event_id, function_id) DO NOTHING;

-- name: count_skip
INSERT INTO skip_counts (function_id, reason, n) VALUES (%(function_id)s, %(reason)s, 1)
ON CONFLICT (function_id, reason) DO UPDATE SET n = skip_counts.n + 1;

-- name: skip_counts
SELECT function_id, reason, n FROM skip_counts;

-- name: count_held
SELECT queued_reason, count(*) AS n FROM runs WHERE status = 'queued' AND held IS NOT NULL GROUP BY queued_reason;

-- name: buffer_for
SELECT id, kind, first_at, last_at, due_at, size, bytes, next_pos FROM buffers
WHERE function_id = %(function_id)s AND partition = %(partition)s FOR UPDATE;

-- name: buffer_by_id
SELECT id, function_id, kind, partition, first_at, due_at, size FROM buffers WHERE id = %(id)s FOR UPDATE;

-- name: insert_buffer
INSERT INTO buffers (function_id, kind, partition, first_at, last_at, due_at, size, bytes, next_pos)
VALUES (%(function_id)s, %(kind)s, %(partition)s, %(now)s, %(now)s, %(due_at)s, 1, %(bytes)s, 1) RETURNING id;

-- name: grow_buffer
UPDATE buffers SET last_at = %(now)s, due_at = %(due_at)s, size = %(size)s, bytes = bytes + %(bytes)s, next_pos = next_pos + 1
WHERE id = %(id)s;

-- name: insert_buffer_event
INSERT INTO buffer_events (buffer_id, pos, event_id) VALUES (%(buffer_id)s, %(pos)s, %(event_id)s);

-- name: drop_buffer_event
DELETE FROM buffer_events WHERE buffer_id = %(buffer_id)s AND pos = %(pos)s;

-- name: buffer_event_ids
SELECT event_id FROM buffer_events WHERE buffer_id = %(buffer_id)s ORDER BY pos;

-- name: delete_buffer
DELETE FROM buffers WHERE id = %(id)s;

-- name: delete_buffer_events
DELETE FROM buffer_events WHERE buffer_id = %(buffer_id)s;

-- name: list_buffers
SELECT id, function_id, kind, partition, first_at, last_at, due_at, size FROM buffers
WHERE (%(function_id)s::text IS NULL OR function_id = %(function_id)s)
  AND (%(before)s::bigint IS NULL OR id < %(before)s)
ORDER BY id DESC LIMIT %(limit)s;

-- name: insert_run_event
INSERT INTO run_events (run_id, pos, event_id) VALUES (%(run_id)s, %(pos)s, %(event_id)s);

-- name: events_of_run
SELECT e.id, e.name, e.data, e.key, e.v, e.ts FROM run_events x JOIN events e ON e.id = x.event_id
WHERE x.run_id = %(run_id)s ORDER BY x.pos;

-- name: event_row_by_id
SELECT seq, id, name, data, key, v, ts, exclude_function, only_function FROM events WHERE id = %(id)s;

-- name: gated_sample
-- The first gated runs, ready and held (a heartbeat looks whether their function still has limits).
SELECT id, function_id FROM (SELECT id, function_id FROM runs WHERE status = 'queued' AND held IS NULL AND gated = 1
                             ORDER BY place, id LIMIT %(limit)s) ready
UNION ALL
SELECT id, function_id FROM (SELECT id, function_id FROM runs WHERE status = 'queued' AND held IS NOT NULL
                             LIMIT %(limit)s) held;

-- name: ungate_run
UPDATE runs SET gated = 0, held = NULL, queued_reason = NULL WHERE id = %(run_id)s AND status = 'queued';

-- name: release_next_after
-- The next run held behind a partition after the given one (which stays held).
UPDATE runs SET held = NULL, queued_reason = NULL
WHERE id = (SELECT r.id FROM runs r, runs me WHERE me.id = %(id)s AND r.status = 'queued' AND r.held = %(held)s
            AND (r.place > me.place OR (r.place = me.place AND r.id > me.id)) ORDER BY r.place, r.id LIMIT 1);

-- name: run_keys
SELECT ckey1, ckey2, skey FROM runs WHERE id = %(run_id)s;

-- name: copy_consumed
-- What a kept step of a rerun consumed stays consumed in the rerun.
INSERT INTO consumed (run_id, event_seq, step_id, condition)
SELECT %(run_id)s, event_seq, step_id, condition FROM consumed WHERE run_id = %(from_run)s AND step_id = %(step_id)s
ON CONFLICT DO NOTHING;

-- name: copy_step_errors
-- A kept step of a rerun keeps every failed attempt's error.
INSERT INTO step_errors (run_id, step_id, attempt, error)
SELECT %(run_id)s, step_id, attempt, error FROM step_errors WHERE run_id = %(from_run)s AND step_id = %(step_id)s
ON CONFLICT (run_id, step_id, attempt) DO NOTHING;

-- Listing runs (query_runs), one query per index that drives it, each in both orders. The range of
-- (created_at, id) always bounded (the store passes the far ends for an open one), so a page is a range scan.

-- name: query_runs_newest
SELECT r.id, r.function_id, r.status, r.output, r.error, r.created_at, r.ended_at, r.cancel_requested, r.queued_reason, r.last_seq, r.ckey1, r.ckey2, r.skey, r.held, r.cancel_reason, r.rerun_of,
       e.id AS e_id, e.name AS e_name, e.data AS e_data, e.key AS e_key, e.v AS e_v, e.ts AS e_ts
FROM runs r JOIN events e ON e.id = r.event_id
WHERE (r.created_at, r.id) >= (%(lo_at)s, %(lo_id)s) AND (r.created_at, r.id) < (%(hi_at)s, %(hi_id)s)
  AND r.id <> %(skip)s
  AND (%(statuses)s::jsonb IS NULL OR r.status IN (SELECT jsonb_array_elements_text(%(statuses)s::jsonb)))
  AND (%(function_id)s::text IS NULL OR r.function_id = %(function_id)s)
ORDER BY r.created_at DESC, r.id DESC LIMIT %(limit)s;

-- name: query_runs_oldest
SELECT r.id, r.function_id, r.status, r.output, r.error, r.created_at, r.ended_at, r.cancel_requested, r.queued_reason, r.last_seq, r.ckey1, r.ckey2, r.skey, r.held, r.cancel_reason, r.rerun_of,
       e.id AS e_id, e.name AS e_name, e.data AS e_data, e.key AS e_key, e.v AS e_v, e.ts AS e_ts
FROM runs r JOIN events e ON e.id = r.event_id
WHERE (r.created_at, r.id) >= (%(lo_at)s, %(lo_id)s) AND (r.created_at, r.id) < (%(hi_at)s, %(hi_id)s)
  AND r.id <> %(skip)s
  AND (%(statuses)s::jsonb IS NULL OR r.status IN (SELECT jsonb_array_elements_text(%(statuses)s::jsonb)))
  AND (%(function_id)s::text IS NULL OR r.function_id = %(function_id)s)
ORDER BY r.created_at ASC, r.id ASC LIMIT %(limit)s;

-- name: query_runs_of_function_newest
SELECT r.id, r.function_id, r.status, r.output, r.error, r.created_at, r.ended_at, r.cancel_requested, r.queued_reason, r.last_seq, r.ckey1, r.ckey2, r.skey, r.held, r.cancel_reason, r.rerun_of,
       e.id AS e_id, e.name AS e_name, e.data AS e_data, e.key AS e_key, e.v AS e_v, e.ts AS e_ts
FROM runs r JOIN events e ON e.id = r.event_id
WHERE r.function_id = %(function_id)s AND (r.created_at, r.id) >= (%(lo_at)s, %(lo_id)s) AND (r.created_at, r.id) < (%(hi_at)s, %(hi_id)s)
  AND r.id <> %(skip)s
  AND (%(statuses)s::jsonb IS NULL OR r.status IN (SELECT jsonb_array_elements_text(%(statuses)s::jsonb)))
ORDER BY r.created_at DESC, r.id DESC LIMIT %(limit)s;

-- name: query_runs_of_function_oldest
SELECT r.id, r.function_id, r.status, r.output, r.error, r.created_at, r.ended_at, r.cancel_requested, r.queued_reason, r.last_seq, r.ckey1, r.ckey2, r.skey, r.held, r.cancel_reason, r.rerun_of,
       e.id AS e_id, e.name AS e_name, e.data AS e_data, e.key AS e_key, e.v AS e_v, e.ts AS e_ts
FROM runs r JOIN events e ON e.id = r.event_id
WHERE r.function_id = %(function_id)s AND (r.created_at, r.id) >= (%(lo_at)s, %(lo_id)s) AND (r.created_at, r.id) < (%(hi_at)s, %(hi_id)s)
  AND r.id <> %(skip)s
  AND (%(statuses)s::jsonb IS NULL OR r.status IN (SELECT jsonb_array_elements_text(%(statuses)s::jsonb)))
ORDER BY r.created_at ASC, r.id ASC LIMIT %(limit)s;

-- name: query_runs_by_status_newest
SELECT r.id, r.function_id, r.status, r.output, r.error, r.created_at, r.ended_at, r.cancel_requested, r.queued_reason, r.last_seq, r.ckey1, r.ckey2, r.skey, r.held, r.cancel_reason, r.rerun_of,
       e.id AS e_id, e.name AS e_name, e.data AS e_data, e.key AS e_key, e.v AS e_v, e.ts AS e_ts
FROM runs r JOIN events e ON e.id = r.event_id
WHERE r.status = %(status)s AND (r.created_at, r.id) >= (%(lo_at)s, %(lo_id)s) AND (r.created_at, r.id) < (%(hi_at)s, %(hi_id)s)
  AND r.id <> %(skip)s
  AND (%(function_id)s::text IS NULL OR r.function_id = %(function_id)s)
ORDER BY r.created_at DESC, r.id DESC LIMIT %(limit)s;

-- name: query_runs_by_status_oldest
SELECT r.id, r.function_id, r.status, r.output, r.error, r.created_at, r.ended_at, r.cancel_requested, r.queued_reason, r.last_seq, r.ckey1, r.ckey2, r.skey, r.held, r.cancel_reason, r.rerun_of,
       e.id AS e_id, e.name AS e_name, e.data AS e_data, e.key AS e_key, e.v AS e_v, e.ts AS e_ts
FROM runs r JOIN events e ON e.id = r.event_id
WHERE r.status = %(status)s AND (r.created_at, r.id) >= (%(lo_at)s, %(lo_id)s) AND (r.created_at, r.id) < (%(hi_at)s, %(hi_id)s)
  AND r.id <> %(skip)s
  AND (%(function_id)s::text IS NULL OR r.function_id = %(function_id)s)
ORDER BY r.created_at ASC, r.id ASC LIMIT %(limit)s;

-- name: query_runs_of_event
-- The runs of one event are few, so they are sorted rather than scanned in order. They are found by
-- their ids, each half by its index (an OR of the two would read every run in order, filtering).
SELECT r.id, r.function_id, r.status, r.output, r.error, r.created_at, r.ended_at, r.cancel_requested, r.queued_reason, r.last_seq, r.ckey1, r.ckey2, r.skey, r.held, r.cancel_reason, r.rerun_of,
       e.id AS e_id, e.name AS e_name, e.data AS e_data, e.key AS e_key, e.v AS e_v, e.ts AS e_ts
FROM runs r JOIN events e ON e.id = r.event_id
WHERE r.id IN (SELECT x.id FROM runs x WHERE x.event_id = %(event_id)s
               UNION ALL SELECT b.run_id FROM run_events b WHERE b.event_id = %(event_id)s)
  AND (r.created_at, r.id) >= (%(lo_at)s, %(lo_id)s) AND (r.created_at, r.id) < (%(hi_at)s, %(hi_id)s)
  AND r.id <> %(skip)s
  AND (%(function_id)s::text IS NULL OR r.function_id = %(function_id)s) AND (%(statuses)s::jsonb IS NULL OR r.status IN (SELECT jsonb_array_elements_text(%(statuses)s::jsonb)))
ORDER BY CASE WHEN %(oldest)s::boolean THEN r.created_at END, CASE WHEN %(oldest)s::boolean THEN r.id END,
         r.created_at DESC, r.id DESC LIMIT %(limit)s;

-- name: schedules_all
SELECT id, function_id, cron, timezone FROM schedules ORDER BY id;

-- name: schedule_by_id
SELECT id, function_id, cron, timezone FROM schedules WHERE id = %(id)s;

-- name: insert_schedule
INSERT INTO schedules (function_id, cron, timezone, created_at) VALUES (%(function_id)s, %(cron)s, %(timezone)s, %(now)s)
RETURNING id;

-- name: delete_schedule
DELETE FROM schedules WHERE id = %(id)s;

-- name: insert_timer_if_absent
INSERT INTO timers (run_id, step_id, kind, due_at) VALUES (%(run_id)s, %(step_id)s, %(kind)s, %(due_at)s)
ON CONFLICT (run_id, step_id) DO NOTHING;

-- Steps of several conditions (wait_for_all, wait_for_any, collect_events).

-- name: lock_timer
-- The row of the deadline first, as a firing timer takes it, so that an event of a condition and the deadline are ordered.
SELECT due_at FROM timers WHERE run_id = %(run_id)s AND step_id = %(step_id)s FOR UPDATE;

-- name: claim_condition
DELETE FROM waits WHERE run_id = %(run_id)s AND step_id = %(step_id)s AND condition = %(condition)s;

-- name: step_is_open
SELECT 1 AS open FROM waits WHERE run_id = %(run_id)s AND step_id = %(step_id)s LIMIT 1;

-- name: consumed_by_step
SELECT c.condition, e.seq, e.id, e.name, e.data, e.key, e.v, e.ts FROM consumed c JOIN events e ON e.seq = c.event_seq
WHERE c.run_id = %(run_id)s AND c.step_id = %(step_id)s ORDER BY c.event_seq;

-- name: take_event
-- A collect_events condition takes one more event, if its result has room for it.
UPDATE waits SET take = take - 1, room = room - %(size)s
WHERE run_id = %(run_id)s AND step_id = %(step_id)s AND room >= %(size)s RETURNING take;

-- name: open_conditions
SELECT DISTINCT condition FROM waits WHERE run_id = %(run_id)s AND step_id = %(step_id)s;

-- The console's reads (query_runs by run id or by rerun_of, runs by ids, counts by status).

-- name: query_one_run
-- One run by its id, if every other filter holds for it.
SELECT r.id, r.function_id, r.status, r.output, r.error, r.created_at, r.ended_at, r.cancel_requested, r.queued_reason, r.last_seq, r.ckey1, r.ckey2, r.skey, r.held, r.cancel_reason, r.rerun_of,
       e.id AS e_id, e.name AS e_name, e.data AS e_data, e.key AS e_key, e.v AS e_v, e.ts AS e_ts
FROM runs r JOIN events e ON e.id = r.event_id
WHERE r.id = %(run_id)s
  AND (r.created_at, r.id) >= (%(lo_at)s, %(lo_id)s) AND (r.created_at, r.id) < (%(hi_at)s, %(hi_id)s) AND r.id <> %(skip)s
  AND (%(rerun_of)s::text IS NULL OR r.rerun_of = %(rerun_of)s)
  AND (%(event_id)s::text IS NULL OR r.event_id = %(event_id)s OR r.id IN (SELECT run_id FROM run_events WHERE event_id = %(event_id)s))
  AND (%(function_id)s::text IS NULL OR r.function_id = %(function_id)s) AND (%(statuses)s::jsonb IS NULL OR r.status IN (SELECT jsonb_array_elements_text(%(statuses)s::jsonb)))
LIMIT %(limit)s;

-- name: query_runs_of_rerun_newest
-- The reruns of one run are few; the event's filter is the runs it started (reruns keep their trigger).
SELECT r.id, r.function_id, r.status, r.output, r.error, r.created_at, r.ended_at, r.cancel_requested, r.queued_reason, r.last_seq, r.ckey1, r.ckey2, r.skey, r.held, r.cancel_reason, r.rerun_of,
       e.id AS e_id, e.name AS e_name, e.data AS e_data, e.key AS e_key, e.v AS e_v, e.ts AS e_ts
FROM runs r JOIN events e ON e.id = r.event_id
WHERE r.rerun_of = %(rerun_of)s
  AND (r.created_at, r.id) >= (%(lo_at)s, %(lo_id)s) AND (r.created_at, r.id) < (%(hi_at)s, %(hi_id)s) AND r.id <> %(skip)s
  AND (%(event_id)s::text IS NULL OR r.event_id = %(event_id)s OR r.id IN (SELECT run_id FROM run_events WHERE event_id = %(event_id)s))
  AND (%(function_id)s::text IS NULL OR r.function_id = %(function_id)s) AND (%(statuses)s::jsonb IS NULL OR r.status IN (SELECT jsonb_array_elements_text(%(statuses)s::jsonb)))
ORDER BY r.created_at DESC, r.id DESC LIMIT %(limit)s;

-- name: query_runs_of_rerun_oldest
SELECT r.id, r.function_id, r.status, r.output, r.error, r.created_at, r.ended_at, r.cancel_requested, r.queued_reason, r.last_seq, r.ckey1, r.ckey2, r.skey, r.held, r.cancel_reason, r.rerun_of,
       e.id AS e_id, e.name AS e_name, e.data AS e_data, e.key AS e_key, e.v AS e_v, e.ts AS e_ts
FROM runs r JOIN events e ON e.id = r.event_id
WHERE r.rerun_of = %(rerun_of)s
  AND (r.created_at, r.id) >= (%(lo_at)s, %(lo_id)s) AND (r.created_at, r.id) < (%(hi_at)s, %(hi_id)s) AND r.id <> %(skip)s
  AND (%(event_id)s::text IS NULL OR r.event_id = %(event_id)s OR r.id IN (SELECT run_id FROM run_events WHERE event_id = %(event_id)s))
  AND (%(function_id)s::text IS NULL OR r.function_id = %(function_id)s) AND (%(statuses)s::jsonb IS NULL OR r.status IN (SELECT jsonb_array_elements_text(%(statuses)s::jsonb)))
ORDER BY r.created_at ASC, r.id ASC LIMIT %(limit)s;

-- name: runs_by_ids
-- The runs a live page shows (a JSON array of at most a few hundred ids), each found by its key.
SELECT r.id, r.function_id, r.status, r.output, r.error, r.created_at, r.ended_at, r.cancel_requested, r.queued_reason, r.last_seq, r.ckey1, r.ckey2, r.skey, r.held, r.cancel_reason, r.rerun_of,
       e.id AS e_id, e.name AS e_name, e.data AS e_data, e.key AS e_key, e.v AS e_v, e.ts AS e_ts
FROM runs r JOIN events e ON e.id = r.event_id
WHERE r.id = ANY (SELECT jsonb_array_elements_text(%(ids)s::jsonb));

-- name: count_runs_in_status
-- The runs of one status in a range of creation, counted on the index runs_status.
SELECT COUNT(*) AS n FROM runs
WHERE status = %(status)s AND created_at >= %(lo_at)s AND created_at < %(hi_at)s;

-- name: count_runs_of_function
SELECT status, COUNT(*) AS n FROM runs
WHERE function_id = %(function_id)s AND created_at >= %(lo_at)s AND created_at < %(hi_at)s
GROUP BY status;

-- name: count_runs_of_event
-- The runs of one event, found by their ids, each half by its index (an OR of the two reads every run).
SELECT r.status, COUNT(*) AS n FROM runs r
WHERE r.id IN (SELECT x.id FROM runs x WHERE x.event_id = %(event_id)s
               UNION ALL SELECT b.run_id FROM run_events b WHERE b.event_id = %(event_id)s)
  AND r.created_at >= %(lo_at)s AND r.created_at < %(hi_at)s
  AND (%(function_id)s::text IS NULL OR r.function_id = %(function_id)s)
GROUP BY r.status;

-- Fewer statements per run. A run's claim loads the events and steps of every run claimed in one
-- query each. PostgreSQL also joins a few hot statements into one (a round trip each); on SQLite
-- those names hold the plain statements it runs instead, in a comment.

-- name: events_by_ids
-- The triggers of the runs of one claim (a JSON array of their event ids).
SELECT id, name, data, key, v, ts FROM events WHERE id IN (SELECT jsonb_array_elements_text(%(ids)s::jsonb));

-- name: steps_of_runs
-- The step records of the runs of one claim (a JSON array of their ids), each run's in recorded order.
SELECT run_id, id, kind, status, attempts, output, error, started_at, ended_at, wake_at FROM steps
WHERE run_id IN (SELECT jsonb_array_elements_text(%(run_ids)s::jsonb)) ORDER BY run_id, seq;

-- name: candidate_waits
-- The waits an event may match - the scanned bucket of its name and of every name, and the waits of
-- each index probe (a JSON array of [name, shape, key]) - in one read, after the probes' locks.
SELECT w.id, w.run_id, w.step_id, w.kind, w.if_exp, w.condition, 1 AS scanned FROM waits w
WHERE w.event_name IN (%(name)s, '') AND w.shape = '' AND w.match_key = ''
UNION ALL
SELECT w.id, w.run_id, w.step_id, w.kind, w.if_exp, w.condition, 0 AS scanned
FROM jsonb_array_elements(%(probes)s::jsonb) AS p
JOIN waits w ON w.event_name = p ->> 0 AND w.shape = p ->> 1 AND w.match_key = p ->> 2;

-- name: insert_indexed_event
-- An event delivered as it is stored, in one statement - its row, the locks of its index terms in the
-- given order (a JSON array; volatile functions are evaluated after the sort), and its index rows. The shared locks
-- of its names are held already, taken before its shapes were read.
WITH locked AS (
    SELECT count(*) AS n FROM (SELECT pg_advisory_xact_lock(hashtextextended(k, 0))
                               FROM jsonb_array_elements_text(%(locks)s::jsonb) WITH ORDINALITY AS t(k, i) ORDER BY i) l
), event AS (
    INSERT INTO events (id, name, data, key, v, dedup_id, ts, received_at, delivered, exclude_function, only_function)
    VALUES (%(id)s, %(name)s, %(data)s, %(key)s, %(v)s, %(dedup_id)s, %(ts)s, %(received_at)s, 1, %(exclude_function)s, %(only_function)s)
    RETURNING seq
), indexed AS (
    INSERT INTO event_keys (event_name, shape, match_key, seq)
    SELECT p ->> 0, p ->> 1, p ->> 2, event.seq FROM event, jsonb_array_elements(%(probes)s::jsonb) AS p
    ON CONFLICT DO NOTHING
)
SELECT event.seq, locked.n FROM event, locked;

-- name: lock_shared_names
-- The shared locks of the names of one send's events, in the given (sorted) order.
SELECT count(*) AS n FROM (SELECT pg_advisory_xact_lock_shared(hashtextextended(k, 0))
                           FROM jsonb_array_elements_text(%(locks)s::jsonb) WITH ORDINALITY AS t(k, i) ORDER BY i) l;

-- name: resolve_wait
-- An event resolves a wait, in one statement - its timer deleted first (the order a firing timer takes
-- them in), then its rows (claimed only by whoever deletes them), then, if claimed, its step completed,
-- its run woken and the event marked consumed. Each part waits for the one before (they reference it).
WITH timer AS (
    DELETE FROM timers WHERE run_id = %(run_id)s AND step_id = %(step_id)s RETURNING 1
), claimed AS (
    DELETE FROM waits WHERE run_id = %(run_id)s AND step_id = %(step_id)s AND (SELECT count(*) FROM timer) >= 0
    RETURNING 1
), step AS (
    UPDATE steps SET status = 'completed', output = %(output)s, ended_at = %(now)s
    WHERE run_id = %(run_id)s AND id = %(step_id)s AND EXISTS (SELECT 1 FROM claimed) RETURNING 1
), woken AS (
    UPDATE runs SET
        status = CASE WHEN status IN ('sleeping', 'waiting') THEN 'queued' ELSE status END,
        resume_requested = CASE WHEN status = 'running' THEN 1 ELSE resume_requested END
    WHERE id = %(run_id)s AND EXISTS (SELECT 1 FROM claimed) AND (SELECT count(*) FROM step) >= 0 RETURNING 1
), noted AS (
    INSERT INTO consumed (run_id, event_seq, step_id, condition)
    SELECT %(run_id)s, %(seq)s, %(step_id)s, %(condition)s
    WHERE EXISTS (SELECT 1 FROM claimed) AND (SELECT count(*) FROM woken) >= 0
    ON CONFLICT DO NOTHING RETURNING 1
)
SELECT (SELECT count(*) FROM claimed) AS claimed, (SELECT count(*) FROM noted) AS noted;

-- name: finish_and_clear_run
-- A run ends, in one statement - its row (if not ended already), then its timers, then its waits - and
-- the shared locks of its system events' names are taken (in the given order), before their shapes are read.
WITH locked AS (
    SELECT count(*) AS n FROM (SELECT pg_advisory_xact_lock_shared(hashtextextended(k, 0))
                               FROM jsonb_array_elements_text(%(locks)s::jsonb) WITH ORDINALITY AS t(k, i) ORDER BY i) l
), ended AS (
    UPDATE runs SET status = %(status)s, output = %(output)s, error = %(error)s, ended_at = %(now)s, owner = NULL
    WHERE id = %(run_id)s AND status NOT IN ('completed', 'failed', 'cancelled') RETURNING 1
), timers_gone AS (
    DELETE FROM timers WHERE run_id = %(run_id)s AND EXISTS (SELECT 1 FROM ended) RETURNING 1
), waits_gone AS (
    DELETE FROM waits WHERE run_id = %(run_id)s AND EXISTS (SELECT 1 FROM ended) AND (SELECT count(*) FROM timers_gone) >= 0
    RETURNING 1
)
SELECT (SELECT count(*) FROM ended) AS ended, (SELECT count(*) FROM waits_gone) AS waits, locked.n AS locked FROM locked;

-- name: record_owned_step
-- A step's record written in one statement with run_control's check - the run's row locked first, the
-- step written only if the run is still the caller's - and the run's control returned.
WITH control AS (
    SELECT owner, cancel_requested FROM runs WHERE id = %(run_id)s FOR UPDATE
), step AS (
    INSERT INTO steps (run_id, id, kind, status, attempts, output, error, started_at, ended_at, wake_at)
    SELECT %(run_id)s, %(id)s::text, %(kind)s::text, %(status)s::text, %(attempts)s::integer, %(output)s::text,
           %(error)s::text, %(started_at)s::bigint, %(ended_at)s::bigint, %(wake_at)s::bigint
    FROM control WHERE control.owner = %(owner)s
    ON CONFLICT (run_id, id) DO UPDATE SET
        status = excluded.status, attempts = excluded.attempts, output = excluded.output,
        error = excluded.error, started_at = coalesce(steps.started_at, excluded.started_at),
        ended_at = excluded.ended_at, wake_at = excluded.wake_at
    RETURNING 1
)
SELECT owner, cancel_requested, (SELECT count(*) FROM step) AS written FROM control;

-- name: sdk_apps_all
SELECT app_id, url, functions, digest, synced_at FROM sdk_apps ORDER BY app_id;

-- name: sdk_apps_version
SELECT coalesce(string_agg(digest, ',' ORDER BY app_id), '') AS version FROM sdk_apps;

-- name: sdk_app_digest
SELECT digest FROM sdk_apps WHERE app_id = %(app_id)s;

-- name: upsert_sdk_app
INSERT INTO sdk_apps (app_id, url, functions, digest, synced_at)
VALUES (%(app_id)s, %(url)s, %(functions)s, %(digest)s, %(now)s)
ON CONFLICT (app_id) DO UPDATE SET url = excluded.url, functions = excluded.functions,
    digest = excluded.digest, synced_at = excluded.synced_at;
