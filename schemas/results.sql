-- arl-batch results database, schema version 4.
--
-- This file is the schema. The runner embeds this exact text at build time and runs it, inside one
-- BEGIN IMMEDIATE .. COMMIT, to create a new database; `sqlite3 new.db < schemas/results.sql`
-- makes a database the runner accepts as-is. It ends by setting PRAGMA user_version, which the
-- runner checks against the version it was built for. Later versions keep this file as the full
-- current schema and add an upgrade step to runner/store/store_migrations.h.
--
-- docs/database.md describes every table and column. Those not marked "extra" are the stable
-- contract.
-- Times are RFC 3339 UTC text with milliseconds ("2026-01-02T03:04:05.678Z"), durations are
-- integer milliseconds, and a NULL time or duration means "did not happen" (a step never run,
-- a run still going). JSON columns hold compact JSON text.

-- One invocation of `arl-batch run`.
CREATE TABLE runs (
	id             INTEGER PRIMARY KEY,
	name           TEXT    NOT NULL,
	status         TEXT    NOT NULL DEFAULT 'running'
	               CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
	started_at     TEXT    NOT NULL,
	finished_at    TEXT,
	files          TEXT    NOT NULL DEFAULT '[]'      -- JSON array of the job files
	               CHECK (json_valid(files) AND json_type(files) = 'array'),
	jobs_total     INTEGER NOT NULL DEFAULT 0,
	jobs_succeeded INTEGER NOT NULL DEFAULT 0,
	jobs_failed    INTEGER NOT NULL DEFAULT 0,
	jobs_skipped   INTEGER NOT NULL DEFAULT 0,
	jobs_cancelled INTEGER NOT NULL DEFAULT 0,
	-- extra
	duration_ms    INTEGER,                           -- finished_at - started_at
	exit_code      INTEGER,                           -- of `arl-batch run`; NULL while running
	host           TEXT,                              -- gethostname() of the runner
	pid            INTEGER,                           -- its pid: a dead one marks the run interrupted
	isolation      TEXT,                              -- e.g. 'bwrap', 'none', 'kubernetes'
	notes          TEXT,                              -- free text, one note per line
	-- the runner's identity beyond its pid (v2): a pid is judged only by a runner of the same
	-- boot and PID namespace, and only while it is still the process that started then
	owner_start    INTEGER,                           -- start time of pid (clock ticks after boot)
	owner_boot     TEXT,                              -- /proc/sys/kernel/random/boot_id
	owner_pidns    TEXT,                              -- the PID namespace (st_ino of /proc/self/ns/pid)
	-- v3: the run's parameters as a JSON object (job-file defaults, then --set); never secrets
	params         TEXT    CHECK (params IS NULL OR (json_valid(params) AND json_type(params) = 'object')),
	-- v3: why no new job started before the end, e.g. 'budget cost_usd 25 reached (25.4)'
	halted_by      TEXT
) STRICT;

-- "The latest run of this name" (--resume, --rerun, --overlap, `results --run NAME`).
CREATE INDEX runs_name ON runs (name, id);

-- One job of a run, after foreach expansion.
CREATE TABLE jobs (
	id           INTEGER PRIMARY KEY,
	run_id       INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	key          TEXT    NOT NULL,                    -- FILE_STEM/JOB_NAME, stable across runs
	name         TEXT    NOT NULL,
	file         TEXT    NOT NULL,
	pool         TEXT,
	state        TEXT    NOT NULL DEFAULT 'Pending'
	             CHECK (state IN ('Pending', 'Running', 'Succeeded', 'Failed', 'Skipped',
	                              'Cancelled')),
	attempts     INTEGER NOT NULL DEFAULT 0,
	exit_code    INTEGER,
	error_class  TEXT    CHECK (error_class IN ('failed', 'timeout', 'infra', 'cancelled')),
	error        TEXT,
	started_at   TEXT,
	finished_at  TEXT,
	duration_ms  INTEGER,
	item         TEXT    CHECK (item IS NULL OR json_valid(item)),      -- the foreach item
	labels       TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(labels)),
	spec_hash    TEXT,                                -- --resume skips only an equal hash
	-- extra: the job (of an earlier run) whose success a Skipped job stands for (--resume)
	skipped_from INTEGER REFERENCES jobs (id) ON DELETE SET NULL
) STRICT;

CREATE INDEX jobs_run_state ON jobs (run_id, state);
CREATE INDEX jobs_key ON jobs (key);
-- Deleting a job must find the jobs that point at it without scanning the table.
CREATE INDEX jobs_skipped_from ON jobs (skipped_from) WHERE skipped_from IS NOT NULL;

-- One attempt of a job, in a fresh sandbox.
CREATE TABLE attempts (
	id          INTEGER PRIMARY KEY,
	job_id      INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
	number      INTEGER NOT NULL CHECK (number >= 1),
	sandbox     TEXT,
	state       TEXT    NOT NULL
	            CHECK (state IN ('Running', 'Succeeded', 'Failed', 'Cancelled')),
	exit_code   INTEGER,
	error_class TEXT    CHECK (error_class IN ('failed', 'timeout', 'infra', 'cancelled')),
	error       TEXT,
	started_at  TEXT,
	finished_at TEXT,
	duration_ms INTEGER,
	-- extra (v2): time spent getting the sandbox (allocation, preparation), not part of the
	-- job's timeout; NULL when the attempt never asked for one
	prepare_ms  INTEGER
) STRICT;

CREATE UNIQUE INDEX attempts_job ON attempts (job_id, number);

-- One step of an attempt: the main steps in order, then the callback steps that ran.
-- idx is the 0-based position in that order. stdout and stderr are UTF-8 text (invalid bytes
-- and NULs replaced by U+FFFD); a truncated stream keeps its head and tail around a marker.
CREATE TABLE steps (
	id               INTEGER PRIMARY KEY,
	attempt_id       INTEGER NOT NULL REFERENCES attempts (id) ON DELETE CASCADE,
	idx              INTEGER NOT NULL CHECK (idx >= 0),
	name             TEXT    NOT NULL,
	type             TEXT    NOT NULL CHECK (type IN ('Command', 'FilePatch')),
	phase            TEXT    NOT NULL DEFAULT 'main' CHECK (phase IN ('main', 'callback')),
	state            TEXT    NOT NULL CHECK (state IN ('Succeeded', 'Failed', 'Skipped')),
	exit_code        INTEGER,
	stdout           TEXT,
	stderr           TEXT,
	stdout_truncated INTEGER NOT NULL DEFAULT 0 CHECK (stdout_truncated IN (0, 1)),
	stderr_truncated INTEGER NOT NULL DEFAULT 0 CHECK (stderr_truncated IN (0, 1)),
	started_at       TEXT,
	finished_at      TEXT,
	duration_ms      INTEGER,
	-- extra (v2): why `metrics: json` recorded nothing, or not everything, from this step
	metrics_error    TEXT
) STRICT;

CREATE UNIQUE INDEX steps_attempt ON steps (attempt_id, idx);

-- Metrics of a job's last attempt: REAL for numbers, TEXT for strings.
CREATE TABLE metrics (
	job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
	name   TEXT    NOT NULL,
	value  ANY
) STRICT;

CREATE UNIQUE INDEX metrics_job ON metrics (job_id, name);

-- Files kept from an attempt (v3): collected before its sandbox is released, failed and
-- timed-out attempts included. The content is stored once per digest beside the database, in
-- DB.artifacts/sha256/AB/ABCDEF... (AB: the digest's first two hex digits). A file that could
-- not be kept (over its size cap, unreadable) has a NULL sha256 and its reason in error.
CREATE TABLE artifacts (
	id         INTEGER PRIMARY KEY,
	attempt_id INTEGER NOT NULL REFERENCES attempts (id) ON DELETE CASCADE,
	path       TEXT    NOT NULL,                      -- the file's path inside the sandbox
	size       INTEGER NOT NULL DEFAULT 0 CHECK (size >= 0),
	sha256     TEXT    CHECK (sha256 IS NULL OR length(sha256) = 64),
	error      TEXT
) STRICT;

CREATE UNIQUE INDEX artifacts_attempt ON artifacts (attempt_id, path);
-- prune keeps a stored file while any row still names its digest.
CREATE INDEX artifacts_sha256 ON artifacts (sha256) WHERE sha256 IS NOT NULL;

-- What a backend made outside this host for an attempt (v4): a gateway session, recorded the
-- moment it exists and deleted once the backend has released it, so that `arl-batch gc` can
-- delete what a runner killed with -9 left behind (a gateway lists sessions to admins only).
-- A row whose run is no longer 'running', or whose runner is gone, is a leftover.
CREATE TABLE leases (
	id         INTEGER PRIMARY KEY,
	run_id     INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	backend    TEXT    NOT NULL,                      -- e.g. 'gateway'
	location   TEXT    NOT NULL,                      -- where it lives: the gateway's URL
	name       TEXT    NOT NULL,                      -- its name there: the session id
	job_key    TEXT,                                  -- the attempt it is for
	attempt    INTEGER,
	created_at TEXT    NOT NULL
) STRICT;

CREATE INDEX leases_run ON leases (run_id);

PRAGMA user_version = 4;
