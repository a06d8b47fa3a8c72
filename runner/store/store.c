/*
 * DESIGN
 *
 * The store is one SQLite connection owned by the main thread. Workers never see it: the
 * scheduler hands each finished job to the main thread, which calls arl_store_job_finish().
 * That keeps SQLite in its simplest threading mode and makes "each finished job is committed
 * before the runner moves on" (docs/database.md, 'When things are written') a plain sequence
 * of transactions.
 *
 * Concurrency between processes comes from WAL: readers (`results`, `query`, a second run's
 * --resume lookup) never block the writer, and writers take the lock up front with
 * BEGIN IMMEDIATE so that a busy database shows up as a 5 s wait at BEGIN, not as an
 * SQLITE_BUSY halfway through a job's rows.
 *
 * Statements the writer repeats are compiled once, on first use, from the enum-indexed table
 * below, and are reset and unbound after every use so that no statement keeps a read
 * transaction open between calls (which would pin the WAL and stop checkpoints).
 *
 * Text we did not write (step output, error messages) may hold invalid UTF-8 or NULs. It is
 * stored as UTF-8 text with those bytes replaced by U+FFFD: `query`, JSON and JUnit all need
 * text, and a STRICT TEXT column would refuse a BLOB anyway.
 *
 * A runner that dies (SIGKILL, OOM, power) leaves its run 'running'. Every read-write open
 * looks for such runs of this host whose runner is gone (by pid, its start time, boot id and
 * PID namespace: arl_owner_gone()) and closes them as 'interrupted', so the database never
 * claims forever that a dead run is still going.
 *
 * A full disk costs only the transaction that hit it: SQLite rolls it back, what was
 * committed stays (WAL frames of a failed commit are never marked valid), and the connection
 * can write again once there is room. The store reports it as one plain message and leaves
 * stopping to the caller; a run that cannot even close its own row is closed by the repair
 * above, as 'interrupted', once space is back.
 */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store_internal.h"
#include "store/store_migrations.h"
#include "store/store_rows.h"
#include "util.h"
#include "banned.h"

enum stmt {
	S_BEGIN,
	S_COMMIT,
	S_ROLLBACK,
	S_USER_VERSION,
	S_SCHEMA_COUNT,
	S_RUN_INSERT,
	S_RUN_STALE,
	S_RUN_IS_RUNNING,
	S_RUN_CLOSE_JOBS,
	S_RUN_CLOSE,
	S_RUN_COUNT,
	S_RUN_LATEST,
	S_RUN_BY_ID,
	S_RUN_BY_NAME,
	S_JOB_INSERT,
	S_JOB_RUNNING,
	S_JOB_OLD,
	S_JOB_UPDATE,
	S_JOB_CLEAR_ATTEMPTS,
	S_JOB_CLEAR_METRICS,
	S_JOB_STANDING,
	S_JOB_TARGET,
	S_RUN_ADD_SKIPPED,
	S_RUN_ADD_NOTE,
	S_ATTEMPT_INSERT,
	S_STEP_INSERT,
	S_METRIC_INSERT,
	S_ARTIFACT_INSERT,
	S__COUNT
};

/*
 * The statements, indexed by enum stmt. Kept out of clang-format: it would re-wrap the SQL
 * fragments mid-clause.
 */
/* clang-format off */
/* When a closed run ended: ?4 (now), else at its last finished job, else at its start. */
#define RUN_END "coalesce(?4, (SELECT max(finished_at) FROM jobs WHERE run_id = ?1), started_at)"
#define COUNT_STATE(st) "(SELECT count(*) FROM jobs WHERE run_id = ?1 AND state = '" st "')"

static const char *const stmt_sql[S__COUNT] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_USER_VERSION] = "PRAGMA user_version",
	[S_SCHEMA_COUNT] = "SELECT count(*) FROM sqlite_schema",
	[S_RUN_INSERT] = "INSERT INTO runs (name, status, started_at, files, jobs_total, host, pid,"
			 " isolation, notes, owner_start, owner_boot, owner_pidns, params)"
			 " VALUES (?1, 'running', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
	[S_RUN_STALE] = "SELECT id, pid, owner_start, owner_boot, owner_pidns FROM runs"
			" WHERE status = 'running' AND host = ?1",
	[S_RUN_IS_RUNNING] = "SELECT 1 FROM runs WHERE id = ?1 AND status = 'running'",
	/* A job cut short keeps its own error if it had one (e.g. a retry in progress). */
	[S_RUN_CLOSE_JOBS] = "UPDATE jobs SET state = 'Cancelled',"
			     " error_class = coalesce(error_class, 'cancelled'),"
			     " error = coalesce(error, ?2), finished_at = coalesce(finished_at, ?3),"
			     " duration_ms = CASE WHEN ?3 IS NOT NULL AND started_at IS NOT NULL"
			     " THEN CAST(round((julianday(?3) - julianday(started_at)) * 86400000)"
			     " AS INTEGER) END"
			     " WHERE run_id = ?1 AND state IN ('Pending', 'Running')",
	[S_RUN_CLOSE] = "UPDATE runs SET status = ?2, exit_code = ?3, finished_at = " RUN_END ","
			" duration_ms = CAST(round((julianday(" RUN_END ") - julianday(started_at))"
			" * 86400000) AS INTEGER),"
			" jobs_succeeded = " COUNT_STATE("Succeeded") ","
			" jobs_failed = " COUNT_STATE("Failed") ","
			" jobs_skipped = " COUNT_STATE("Skipped") ","
			" jobs_cancelled = " COUNT_STATE("Cancelled") ","
			" notes = CASE WHEN ?5 IS NULL THEN notes WHEN coalesce(notes, '') = ''"
			" THEN ?5 ELSE notes || char(10) || ?5 END"
			" WHERE id = ?1",
	/*
	 * ?2 is the job's new state and ?3 its old one: moving a job between states moves one
	 * count, so finishing a job twice cannot count it twice, and no count(*) over a run's
	 * jobs runs per job (quadratic on a 10 000-job run).
	 */
	[S_RUN_COUNT] = "UPDATE runs SET"
			" jobs_succeeded = jobs_succeeded + (?2 = 'Succeeded') - (?3 = 'Succeeded'),"
			" jobs_failed = jobs_failed + (?2 = 'Failed') - (?3 = 'Failed'),"
			" jobs_skipped = jobs_skipped + (?2 = 'Skipped') - (?3 = 'Skipped'),"
			" jobs_cancelled = jobs_cancelled + (?2 = 'Cancelled') - (?3 = 'Cancelled')"
			" WHERE id = ?1",
	[S_RUN_LATEST] = "SELECT max(id) FROM runs",
	[S_RUN_BY_ID] = "SELECT id FROM runs WHERE id = ?1",
	[S_RUN_BY_NAME] = "SELECT max(id) FROM runs WHERE name = ?1",
	/* A job that stands on an earlier result is final at once: Skipped, finished at ?10. */
	[S_JOB_INSERT] = "INSERT INTO jobs (run_id, key, name, file, pool, item, labels, spec_hash,"
			 " skipped_from, state, started_at, finished_at, duration_ms)"
			 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
			 " CASE WHEN ?9 IS NULL THEN 'Pending' ELSE 'Skipped' END,"
			 " CASE WHEN ?9 IS NOT NULL THEN ?10 END, CASE WHEN ?9 IS NOT NULL THEN ?10 END,"
			 " CASE WHEN ?9 IS NOT NULL THEN 0 END)",
	[S_JOB_RUNNING] = "UPDATE jobs SET state = 'Running', started_at = ?2"
			  " WHERE id = ?1 AND state = 'Pending'",
	[S_JOB_OLD] = "SELECT run_id, state FROM jobs WHERE id = ?1",
	[S_JOB_UPDATE] = "UPDATE jobs SET state = ?2, attempts = ?3, exit_code = ?4,"
			 " error_class = ?5, error = ?6, started_at = ?7, finished_at = ?8,"
			 " duration_ms = ?9 WHERE id = ?1",
	[S_JOB_CLEAR_ATTEMPTS] = "DELETE FROM attempts WHERE job_id = ?1",
	[S_JOB_CLEAR_METRICS] = "DELETE FROM metrics WHERE job_id = ?1",
	/*
	 * A key's rows over every run of a name, newest first; Pending and Running ones are no
	 * result (a run still going, or one cut short before the repair).
	 */
	[S_JOB_STANDING] = "SELECT id, state, skipped_from FROM jobs WHERE key = ?2"
			   " AND run_id IN (SELECT id FROM runs WHERE name = ?1)"
			   " AND state IN ('Succeeded', 'Failed', 'Cancelled', 'Skipped')"
			   " ORDER BY id DESC",
	[S_JOB_TARGET] = "SELECT run_id, state, error_class,"
			 " spec_hash IS NOT NULL AND spec_hash = ?2 AS same_spec, skipped_from"
			 " FROM jobs WHERE id = ?1",
	[S_RUN_ADD_SKIPPED] = "UPDATE runs SET jobs_skipped = jobs_skipped + ?2 WHERE id = ?1",
	[S_RUN_ADD_NOTE] = "UPDATE runs SET notes = CASE WHEN notes IS NULL OR notes = '' THEN ?2"
			   " ELSE notes || '; ' || ?2 END WHERE id = ?1",
	[S_ATTEMPT_INSERT] = "INSERT INTO attempts (job_id, number, sandbox, state, exit_code,"
			     " error_class, error, started_at, finished_at, duration_ms, prepare_ms)"
			     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
	[S_STEP_INSERT] = "INSERT INTO steps (attempt_id, idx, name, type, phase, state, exit_code,"
			  " stdout, stderr, stdout_truncated, stderr_truncated, started_at,"
			  " finished_at, duration_ms, metrics_error)"
			  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
	/* A metrics line may repeat a key (cJSON keeps both); the last one wins. */
	[S_METRIC_INSERT] = "INSERT OR REPLACE INTO metrics (job_id, name, value)"
			    " VALUES (?1, ?2, ?3)",
	/* A path kept twice by one attempt (two patterns) is one row: the first. */
	[S_ARTIFACT_INSERT] = "INSERT OR IGNORE INTO artifacts (attempt_id, path, size, sha256,"
			      " error) VALUES (?1, ?2, ?3, ?4, ?5)",
};
/* clang-format on */

/* The rows the statements above return, read by column name (store_rows.h). */
struct stale_row {
	int64_t id, pid, owner_start;
	char *owner_boot, *owner_pidns; /* NULL in rows from before schema v2 */
};
struct old_row {
	int64_t run_id;
	char *state;
};
struct standing_row {
	int64_t id;
	enum arl_state state;
};
struct target_row {
	int64_t run_id, skipped_from;
	enum arl_state state;
	enum arl_class error_class;
	int same_spec;
};

static const struct arl_col stale_cols[] = {
    ARL_COL(struct stale_row, id, ARL_COL_INT64),
    ARL_COL(struct stale_row, pid, ARL_COL_INT64),
    ARL_COL(struct stale_row, owner_start, ARL_COL_INT64),
    ARL_COL(struct stale_row, owner_boot, ARL_COL_TEXT),
    ARL_COL(struct stale_row, owner_pidns, ARL_COL_TEXT),
};
static const struct arl_col old_cols[] = {
    ARL_COL(struct old_row, run_id, ARL_COL_INT64),
    ARL_COL(struct old_row, state, ARL_COL_TEXT),
};
static const struct arl_col standing_cols[] = {
    ARL_COL(struct standing_row, id, ARL_COL_INT64),
    ARL_COL(struct standing_row, state, ARL_COL_STATE),
};
static const struct arl_col target_cols[] = {
    ARL_COL(struct target_row, run_id, ARL_COL_INT64),
    ARL_COL(struct target_row, state, ARL_COL_STATE),
    ARL_COL(struct target_row, error_class, ARL_COL_CLASS),
    ARL_COL(struct target_row, same_spec, ARL_COL_INT),
    ARL_COL(struct target_row, skipped_from, ARL_COL_INT64),
};

#define COLS(t)                                                                                    \
	{                                                                                          \
		(t), sizeof(t) / sizeof((t)[0])                                                    \
	}
static const struct {
	const struct arl_col *cols;
	size_t n;
} stmt_cols[S__COUNT] = {
    [S_RUN_STALE] = COLS(stale_cols),
    [S_JOB_OLD] = COLS(old_cols),
    [S_JOB_STANDING] = COLS(standing_cols),
    [S_JOB_TARGET] = COLS(target_cols),
};
#undef COLS
ARL_COLS_FIT(stale_cols);
ARL_COLS_FIT(old_cols);
ARL_COLS_FIT(standing_cols);
ARL_COLS_FIT(target_cols);

struct arl_store {
	sqlite3 *db;
	char *path;
	unsigned flags;
	bool readonly; /* ARL_STORE_READONLY, or a file the OS lets us only read */
	sqlite3_stmt *stmts[S__COUNT];
	struct arl_rows_query rows[S__COUNT]; /* stmt_cols[] bound to stmts[], rows borrowed */
	char host[256];
	struct arl_owner me; /* this runner, as its run row records it */
	/* What the authorizer refused during the current prepare (READONLY only). */
	char denied[200];
	/* The last failure was a full disk; a commit that succeeds clears it. */
	bool full;
};

/* ---- errors ---- */

/*
 * Did the call that just failed with @rc (an extended code) find no room on the disk? SQLite
 * turns ENOSPC into SQLITE_FULL where it writes pages, but growing the -shm file or syncing
 * reports an I/O error, whose errno says why.
 */
static bool disk_full(struct arl_store *s, int rc)
{
	int e;

	if ((rc & 0xff) == SQLITE_FULL)
		return true;
	if ((rc & 0xff) != SQLITE_IOERR)
		return false;
	e = sqlite3_system_errno(s->db);
	return e == ENOSPC || e == EDQUOT;
}

/*
 * Records "cannot OP: sqlite message" plus the start of the SQL text. Call it before
 * sqlite3_reset(): the message belongs to the failed call.
 *
 * A full disk is the user's to fix, not ours: which statement hit it (almost always COMMIT,
 * when the WAL grows) and which row it wrote say nothing useful, the file does. Callers skip
 * their "job N:" context for it too (s->full), so every such failure reads the same.
 */
static int db_fail(struct arl_store *s, struct arl_err *err, const char *op, const char *sql)
{
	const char *msg = sqlite3_errmsg(s->db);
	int rc = sqlite3_extended_errcode(s->db);
	char ebuf[128];

	s->full = disk_full(s, rc); /* about this failure: a later one may have another cause */
	if (s->full) {
		if ((rc & 0xff) == SQLITE_IOERR)
			return arl_error(
			    err, ARL_E_DB, "cannot write to results database '%s': %s (%s)",
			    s->path, msg,
			    arl_strerror(sqlite3_system_errno(s->db), ebuf, sizeof(ebuf)));
		return arl_error(err, ARL_E_DB, "cannot write to results database '%s': %s",
		                 s->path, msg);
	}
	if (!sql)
		return arl_error(err, ARL_E_DB, "cannot %s: %s", op, msg);
	return arl_error(err, ARL_E_DB, "cannot %s: %s (in \"%.60s%s\")", op, msg, sql,
	                 strlen(sql) > 60 ? "..." : "");
}

/* ---- statements ---- */

static sqlite3_stmt *stmt(struct arl_store *s, enum stmt id, const char *op, struct arl_err *err)
{
	if (s->stmts[id])
		return s->stmts[id];
	if (sqlite3_prepare_v3(s->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &s->stmts[id],
	                       NULL) != SQLITE_OK) {
		db_fail(s, err, op, stmt_sql[id]);
		sqlite3_finalize(s->stmts[id]);
		s->stmts[id] = NULL;
	} else if (stmt_cols[id].n &&
	           arl_rows_attach(&s->rows[id], s->stmts[id], stmt_cols[id].cols, stmt_cols[id].n,
	                           true, err) < 0) {
		sqlite3_finalize(s->stmts[id]);
		s->stmts[id] = NULL;
	}
	return s->stmts[id];
}

/* The current row of statement @id into @row, its text borrowed until the next step. */
static void stmt_row(struct arl_store *s, enum stmt id, void *row)
{
	arl_rows_get(&s->rows[id], row);
}

/* Ready for the next use: no bound values kept alive, no read transaction held. */
static void stmt_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* One sqlite3_step: 1 row, 0 done, -1 error (recorded, statement reset). */
static int stmt_step(struct arl_store *s, sqlite3_stmt *st, const char *op, struct arl_err *err)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	db_fail(s, err, op, sqlite3_sql(st));
	stmt_done(st);
	return -1;
}

/* Runs a statement that returns no rows to completion, then readies it for the next use. */
static int stmt_run(struct arl_store *s, sqlite3_stmt *st, const char *op, struct arl_err *err)
{
	int rc = stmt_step(s, st, op, err);

	if (rc < 0)
		return -1;
	stmt_done(st);
	return 0;
}

/*
 * Binding. Every bind records its first failure in b->rc (SQLITE_RANGE means a statement and
 * its caller disagree, SQLITE_TOOBIG a value past SQLite's limit), so a row is bound in a
 * straight line and checked once.
 */
struct bind {
	sqlite3_stmt *st;
	int rc;
};

static void bind_rc(struct bind *b, int rc)
{
	if (b->rc == SQLITE_OK)
		b->rc = rc;
}

static void bind_null(struct bind *b, int i)
{
	bind_rc(b, sqlite3_bind_null(b->st, i));
}

static void bind_i64(struct bind *b, int i, int64_t v)
{
	bind_rc(b, sqlite3_bind_int64(b->st, i, v));
}

static void bind_opt_i64(struct bind *b, int i, bool has, int64_t v)
{
	if (has)
		bind_i64(b, i, v);
	else
		bind_null(b, i);
}

/* Length of the valid UTF-8 sequence at @p (at most @n bytes), or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	unsigned c = p[0], len, i;
	uint32_t cp;

	if (c > 0 && c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		len = 2, cp = c & 0x1F;
	else if (c >= 0xE0 && c <= 0xEF)
		len = 3, cp = c & 0x0F;
	else if (c >= 0xF0 && c <= 0xF4)
		len = 4, cp = c & 0x07;
	else
		return 0; /* NUL, a stray continuation byte, or an impossible lead byte */
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3F);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

/*
 * Binds @len bytes of text. Clean UTF-8 is bound in place (SQLITE_STATIC: the caller's data
 * outlives the statement's use); anything else is copied with each bad byte as U+FFFD.
 */
static void bind_text(struct bind *b, int i, const char *p, size_t len)
{
	const unsigned char *u = (const unsigned char *)p;
	size_t at = 0, n;
	char *clean, *o;

	while (at < len && (n = utf8_seq(u + at, len - at)) != 0)
		at += n;
	if (at == len) {
		bind_rc(b, sqlite3_bind_text64(b->st, i, p, len, SQLITE_STATIC, SQLITE_UTF8));
		return;
	}
	if (len > (SIZE_MAX - 1) / 3) {
		bind_rc(b, SQLITE_TOOBIG);
		return;
	}
	o = clean = arl_xmalloc(len * 3 + 1);
	memcpy(o, p, at);
	o += at;
	while (at < len) {
		n = utf8_seq(u + at, len - at);
		if (n) {
			memcpy(o, p + at, n);
			o += n;
			at += n;
		} else {
			memcpy(o, "\xEF\xBF\xBD", 3);
			o += 3;
			at++;
		}
	}
	bind_rc(b, sqlite3_bind_text64(b->st, i, clean, (sqlite3_uint64)(o - clean),
	                               SQLITE_TRANSIENT, SQLITE_UTF8));
	free(clean);
}

static void bind_str(struct bind *b, int i, const char *s)
{
	if (s)
		bind_text(b, i, s, strlen(s));
	else
		bind_null(b, i);
}

/* Unix ms as RFC 3339 UTC text; 0 means "did not happen" and is NULL. */
static void bind_time(struct bind *b, int i, int64_t ms)
{
	char t[32];

	if (ms <= 0) {
		bind_null(b, i);
		return;
	}
	arl_rfc3339(ms, t);
	bind_rc(b, sqlite3_bind_text(b->st, i, t, -1, SQLITE_TRANSIENT));
}

static void bind_duration(struct bind *b, int i, int64_t start_ms, int64_t end_ms)
{
	bind_opt_i64(b, i, start_ms > 0 && end_ms >= start_ms, end_ms - start_ms);
}

static int bind_check(struct bind *b, const char *op, struct arl_err *err)
{
	if (b->rc == SQLITE_OK)
		return 0;
	arl_error(err, ARL_E_DB, "cannot %s: binding a value failed: %s (in \"%.60s\")", op,
	          sqlite3_errstr(b->rc), sqlite3_sql(b->st));
	stmt_done(b->st);
	return -1;
}

/* ---- transactions ---- */

static int tx_begin(struct arl_store *s, const char *op, struct arl_err *err)
{
	sqlite3_stmt *st = stmt(s, S_BEGIN, op, err);

	if (!st)
		return -1;
	if (!sqlite3_get_autocommit(s->db))
		return arl_error(err, ARL_E_DB, "cannot %s: a transaction is already open", op);
	return stmt_run(s, st, op, err);
}

static int tx_commit(struct arl_store *s, const char *op, struct arl_err *err)
{
	sqlite3_stmt *st = stmt(s, S_COMMIT, op, err);

	if (!st || stmt_run(s, st, op, err) < 0)
		return -1;
	s->full = false; /* someone freed space */
	return 0;
}

/*
 * Undoes an open transaction after a failure; the first error is already recorded. Some
 * errors (SQLITE_FULL, SQLITE_IOERR) roll back by themselves, hence the autocommit check.
 */
static void tx_rollback(struct arl_store *s)
{
	struct arl_err ignored = ARL_ERR_INIT;
	sqlite3_stmt *st;
	bool full = s->full; /* about the first failure, not this one */

	if (sqlite3_get_autocommit(s->db))
		return;
	st = stmt(s, S_ROLLBACK, "roll back", &ignored);
	if (st)
		stmt_run(s, st, "roll back", &ignored);
	s->full = full;
}

/* ---- small queries ---- */

/* Runs a one-row, one-integer query bound with nothing or @arg; *found says if a row came. */
static int query_i64(struct arl_store *s, enum stmt id, const char *op, const char *arg,
                     int64_t *out, bool *found, struct arl_err *err)
{
	sqlite3_stmt *st = stmt(s, id, op, err);
	struct bind b = {st, SQLITE_OK};
	int rc;

	if (!st)
		return -1;
	if (arg)
		bind_str(&b, 1, arg);
	if (bind_check(&b, op, err) < 0)
		return -1;
	rc = stmt_step(s, st, op, err);
	if (rc < 0)
		return -1;
	*found = rc == 1 && sqlite3_column_type(st, 0) != SQLITE_NULL;
	*out = *found ? sqlite3_column_int64(st, 0) : 0;
	stmt_done(st);
	return 0;
}

static int user_version(struct arl_store *s, int64_t *v, struct arl_err *err)
{
	bool found;

	return query_i64(s, S_USER_VERSION, "read the schema version", NULL, v, &found, err);
}

/* ---- migrations ---- */

static const struct arl_migration *find_migration(int64_t from)
{
	const struct arl_migration *best = NULL;

	/* From version 0 there may be a direct path to the newest schema; take the longest. */
	for (const struct arl_migration *m = arl_migrations; m->sql; m++)
		if (m->from == from && (!best || m->to > best->to))
			best = m;
	return best;
}

/* One step, inside its own BEGIN IMMEDIATE .. COMMIT. *v is the version before and after. */
static int migrate_step(struct arl_store *s, int64_t *v, struct arl_err *err)
{
	const struct arl_migration *m;
	int64_t now, objects;
	bool found;
	char op[64], *set = NULL;
	int ret = -1;

	snprintf(op, sizeof(op), "upgrade the schema from version %lld", (long long)*v);
	if (tx_begin(s, op, err) < 0)
		return -1;
	/* Another process may have migrated while we waited for the write lock. */
	if (user_version(s, &now, err) < 0)
		goto out;
	if (now != *v) {
		if (tx_commit(s, op, err) < 0)
			goto out;
		*v = now;
		return 0;
	}
	if (now == 0) {
		if (query_i64(s, S_SCHEMA_COUNT, op, NULL, &objects, &found, err) < 0)
			goto out;
		if (objects > 0) {
			arl_error(err, ARL_E_DB,
			          "'%s' is not an arl-batch results database: it has tables but no"
			          " schema version",
			          s->path);
			goto out;
		}
	}
	m = find_migration(now);
	if (!m) {
		arl_error(err, ARL_E_DB, "cannot %s: no migration from version %lld", op,
		          (long long)now);
		goto out;
	}
	if (sqlite3_exec(s->db, m->sql, NULL, NULL, NULL) != SQLITE_OK) {
		db_fail(s, err, op, now == 0 ? "schemas/results.sql" : m->sql);
		goto out;
	}
	if (user_version(s, &now, err) < 0)
		goto out;
	if (now == *v) {
		set = arl_xasprintf("PRAGMA user_version = %d", m->to);
		if (sqlite3_exec(s->db, set, NULL, NULL, NULL) != SQLITE_OK) {
			db_fail(s, err, op, set);
			goto out;
		}
		now = m->to;
	} else if (now != m->to) {
		/* schemas/results.sql and ARL_STORE_VERSION disagree: a build mistake. */
		arl_error(err, ARL_E_DB, "cannot %s: the migration set version %lld, expected %d",
		          op, (long long)now, m->to);
		goto out;
	}
	if (tx_commit(s, op, err) < 0)
		goto out;
	*v = now;
	ret = 0;
out:
	if (ret < 0)
		tx_rollback(s);
	free(set);
	return ret;
}

static int migrate(struct arl_store *s, struct arl_err *err)
{
	int64_t v;

	if (user_version(s, &v, err) < 0)
		return -1;
	if (v > ARL_STORE_VERSION)
		return arl_error(err, ARL_E_DB,
		                 "'%s' has schema version %lld, newer than this arl-batch (%d):"
		                 " use a newer arl-batch",
		                 s->path, (long long)v, ARL_STORE_VERSION);
	if (v == ARL_STORE_VERSION)
		return 0;
	if (s->readonly) {
		if (v == 0)
			return arl_error(err, ARL_E_DB, "'%s' is not an arl-batch results database",
			                 s->path);
		return arl_error(err, ARL_E_DB,
		                 "'%s' has schema version %lld and needs upgrading to %d, which a"
		                 " read-only open cannot do",
		                 s->path, (long long)v, ARL_STORE_VERSION);
	}
	while (v < ARL_STORE_VERSION)
		if (migrate_step(s, &v, err) < 0)
			return -1;
	/* A newer arl-batch may have upgraded it while we waited for the lock. */
	if (v != ARL_STORE_VERSION)
		return arl_error(err, ARL_E_DB,
		                 "'%s' has schema version %lld, newer than this"
		                 " arl-batch (%d)",
		                 s->path, (long long)v, ARL_STORE_VERSION);
	return 0;
}

/* ---- closing runs ---- */

/*
 * Cancels @run_id's unfinished jobs and closes the run with @status, recounting its counters
 * from the jobs. @end_ms 0 means "unknown" (a runner that died): the run then ends at its
 * last finished job. The caller holds the transaction.
 */
static int close_run(struct arl_store *s, int64_t run_id, const char *status, bool has_exit,
                     int exit_code, int64_t end_ms, const char *why, const char *note,
                     struct arl_err *err)
{
	const char *op = "close the run";
	sqlite3_stmt *st;
	struct bind b;

	if (!(st = stmt(s, S_RUN_CLOSE_JOBS, op, err)))
		return -1;
	b = (struct bind){st, SQLITE_OK};
	bind_i64(&b, 1, run_id);
	bind_str(&b, 2, why);
	bind_time(&b, 3, end_ms);
	if (bind_check(&b, op, err) < 0 || stmt_run(s, st, op, err) < 0)
		return -1;

	if (!(st = stmt(s, S_RUN_CLOSE, op, err)))
		return -1;
	b = (struct bind){st, SQLITE_OK};
	bind_i64(&b, 1, run_id);
	bind_str(&b, 2, status);
	bind_opt_i64(&b, 3, has_exit, exit_code);
	bind_time(&b, 4, end_ms);
	bind_str(&b, 5, note);
	if (bind_check(&b, op, err) < 0 || stmt_run(s, st, op, err) < 0)
		return -1;
	if (sqlite3_changes(s->db) != 1)
		return arl_error(err, ARL_E_DB, "cannot %s: no run %lld", op, (long long)run_id);
	return 0;
}

bool arl_store_owner_alive(const char *host, const struct arl_owner *o)
{
	struct arl_owner me;
	char name[256];

	if (!host || gethostname(name, sizeof(name)) < 0)
		return true;
	name[sizeof(name) - 1] = '\0';
	if (strcmp(host, name) != 0)
		return true;
	arl_owner_self(&me);
	return arl_owner_gone(o, &me) == NULL;
}

static int still_running(struct arl_store *s, int64_t run_id, bool *running, struct arl_err *err)
{
	const char *op = "read the run's status";
	sqlite3_stmt *st = stmt(s, S_RUN_IS_RUNNING, op, err);
	struct bind b = {st, SQLITE_OK};
	int rc;

	if (!st)
		return -1;
	bind_i64(&b, 1, run_id);
	if (bind_check(&b, op, err) < 0 || (rc = stmt_step(s, st, op, err)) < 0)
		return -1;
	stmt_done(st);
	*running = rc == 1;
	return 0;
}

/*
 * Closes the runs of this host whose runner is gone. A run on another host, or of another PID
 * namespace here, is left alone: we cannot see its processes. Each run is closed in its own transaction so one bad row does
 * not keep the others open.
 */
static int recover_stale(struct arl_store *s, struct arl_err *err)
{
	const char *op = "look for interrupted runs";
	sqlite3_stmt *st = stmt(s, S_RUN_STALE, op, err);
	struct bind b = {st, SQLITE_OK};
	struct {
		int64_t id, pid;
		const char *why;
	} *dead = NULL;
	size_t ndead = 0, cap = 0;
	char *note = NULL;
	int rc, ret = -1;

	if (!st)
		return -1;
	bind_str(&b, 1, s->host);
	if (bind_check(&b, op, err) < 0)
		return -1;
	/* Collect first, write after: no statement is mid-step while we write. */
	while ((rc = stmt_step(s, st, op, err)) == 1) {
		struct stale_row row;
		struct arl_owner o = {0};
		const char *why;

		stmt_row(s, S_RUN_STALE, &row);
		o.pid = (long)row.pid;
		/* Rows from before schema v2 have a pid alone, and are judged by it. */
		if (row.owner_start > 0)
			o.start = (unsigned long long)row.owner_start;
		snprintf(o.boot, sizeof(o.boot), "%s", row.owner_boot ? row.owner_boot : "");
		snprintf(o.pidns, sizeof(o.pidns), "%s", row.owner_pidns ? row.owner_pidns : "");
		if (!(why = arl_owner_gone(&o, &s->me)))
			continue;
		ARL_GROW(dead, cap, ndead + 1);
		dead[ndead].id = row.id;
		dead[ndead].pid = o.pid;
		dead[ndead++].why = why;
	}
	if (rc < 0)
		goto out;
	stmt_done(st);
	for (size_t i = 0; i < ndead; i++) {
		char now[32];
		bool running;

		arl_rfc3339_now(now);
		free(note);
		note = arl_xasprintf(
		    "%s: marked interrupted: its runner (pid %lld on %s) was gone (%s)", now,
		    (long long)dead[i].pid, s->host, dead[i].why);
		if (tx_begin(s, op, err) < 0)
			goto out;
		/* Another process may have closed it since our SELECT: then leave it be. */
		if (still_running(s, dead[i].id, &running, err) < 0 ||
		    (running && close_run(s, dead[i].id, "interrupted", false, 0, 0,
		                          "the run was interrupted", note, err) < 0) ||
		    tx_commit(s, op, err) < 0) {
			tx_rollback(s);
			arl_err_prefix(err, "run %lld", (long long)dead[i].id);
			goto out;
		}
	}
	ret = 0;
out:
	free(note);
	free(dead);
	return ret;
}

/* ---- the read-only authorizer ---- */

/*
 * Pragmas that only report. The first group takes a table or index name as its argument,
 * which the authorizer sees the same way as a value being set, so it may have one.
 */
static const char *const pragma_arg_ok[] = {
    "table_info", "table_xinfo",      "table_list",        "index_info",      "index_xinfo",
    "index_list", "foreign_key_list", "foreign_key_check", "integrity_check", "quick_check",
};
static const char *const pragma_read_ok[] = {
    "user_version", "schema_version", "application_id",  "page_count",
    "page_size",    "freelist_count", "journal_mode",    "encoding",
    "foreign_keys", "database_list",  "collation_list",  "function_list",
    "module_list",  "pragma_list",    "compile_options", "data_version",
};

/*
 * Functions a query may call: the plainly read-only built-ins (core, aggregates, windows, dates,
 * math, JSON). Anything else is refused: fts3_tokenizer() leaks pointers and registers
 * tokenizers, load_extension() loads code, sqlite_log() writes the log, fts5() hands out an
 * API pointer, optimize() merges FTS segments, and a function a later SQLite adds is
 * not known to be harmless.
 */
static const char *const function_ok[] = {
    "->",
    "->>",
    "abs",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atan2",
    "atanh",
    "avg",
    "ceil",
    "ceiling",
    "changes",
    "char",
    "coalesce",
    "concat",
    "concat_ws",
    "cos",
    "cosh",
    "count",
    "cume_dist",
    "current_date",
    "current_time",
    "current_timestamp",
    "date",
    "datetime",
    "degrees",
    "dense_rank",
    "exp",
    "first_value",
    "floor",
    "format",
    "glob",
    "group_concat",
    "hex",
    "ifnull",
    "iif",
    "instr",
    "json",
    "json_array",
    "json_array_length",
    "json_extract",
    "json_group_array",
    "json_group_object",
    "json_insert",
    "json_object",
    "json_patch",
    "json_quote",
    "json_remove",
    "json_replace",
    "json_set",
    "json_type",
    "json_valid",
    "julianday",
    "lag",
    "last_value",
    "lead",
    "length",
    "like",
    "likelihood",
    "likely",
    "ln",
    "log",
    "log10",
    "log2",
    "lower",
    "ltrim",
    "max",
    "min",
    "mod",
    "nth_value",
    "ntile",
    "nullif",
    "octet_length",
    "percent_rank",
    "pi",
    "pow",
    "power",
    "printf",
    "quote",
    "radians",
    "random",
    "randomblob",
    "rank",
    "replace",
    "round",
    "row_number",
    "rtrim",
    "sign",
    "sin",
    "sinh",
    "soundex",
    "sqlite_source_id",
    "sqlite_version",
    "sqrt",
    "strftime",
    "string_agg",
    "substr",
    "substring",
    "sum",
    "tan",
    "tanh",
    "time",
    "timediff",
    "total",
    "total_changes",
    "trim",
    "trunc",
    "typeof",
    "unhex",
    "unicode",
    "unixepoch",
    "unlikely",
    "upper",
    "zeroblob",
};

static bool in_list(const char *const *list, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (!strcasecmp(list[i], s))
			return true;
	return false;
}

static const char *action_name(int action)
{
	switch (action) {
	case SQLITE_INSERT:
		return "INSERT into";
	case SQLITE_UPDATE:
		return "UPDATE of";
	case SQLITE_DELETE:
		return "DELETE from";
	case SQLITE_ATTACH:
		return "ATTACH of";
	case SQLITE_DETACH:
		return "DETACH of";
	case SQLITE_ALTER_TABLE:
		return "ALTER TABLE on";
	case SQLITE_CREATE_INDEX:
	case SQLITE_CREATE_TABLE:
	case SQLITE_CREATE_TEMP_INDEX:
	case SQLITE_CREATE_TEMP_TABLE:
	case SQLITE_CREATE_TEMP_TRIGGER:
	case SQLITE_CREATE_TEMP_VIEW:
	case SQLITE_CREATE_TRIGGER:
	case SQLITE_CREATE_VIEW:
	case SQLITE_CREATE_VTABLE:
		return "CREATE of";
	case SQLITE_DROP_INDEX:
	case SQLITE_DROP_TABLE:
	case SQLITE_DROP_TEMP_INDEX:
	case SQLITE_DROP_TEMP_TABLE:
	case SQLITE_DROP_TEMP_TRIGGER:
	case SQLITE_DROP_TEMP_VIEW:
	case SQLITE_DROP_TRIGGER:
	case SQLITE_DROP_VIEW:
	case SQLITE_DROP_VTABLE:
		return "DROP of";
	case SQLITE_TRANSACTION:
		return "transaction control";
	case SQLITE_SAVEPOINT:
		return "SAVEPOINT";
	case SQLITE_REINDEX:
		return "REINDEX of";
	case SQLITE_ANALYZE:
		return "ANALYZE of";
	default:
		return "this statement";
	}
}

/*
 * SQLITE_OPEN_READONLY already stops writes to the database file, but not writes to the temp
 * schema, ATTACHing another file and writing there, or pragmas that change the connection or
 * the file (journal_mode, wal_checkpoint). Allow-listing what reads is simpler than
 * deny-listing what writes, and stays safe as SQLite grows new statements.
 */
static int authorize(void *ud, int action, const char *a1, const char *a2, const char *db,
                     const char *trigger)
{
	struct arl_store *s = ud;
	const char *what;

	(void)db;
	switch (action) {
	case SQLITE_SELECT:
	case SQLITE_READ:
	case SQLITE_RECURSIVE:
		return SQLITE_OK;
	case SQLITE_FUNCTION:
		if (a2 && in_list(function_ok, sizeof(function_ok) / sizeof(function_ok[0]), a2))
			return SQLITE_OK;
		if (!s->denied[0])
			snprintf(s->denied, sizeof(s->denied), "function '%s'", a2 ? a2 : "?");
		return SQLITE_DENY;
	case SQLITE_UPDATE:
		/*
		 * SQLite asks about an UPDATE of sqlite_master whenever a statement uses an
		 * eponymous virtual table (json_each, pragma_table_info). A real UPDATE of the
		 * schema table still fails: the file is read-only and the connection DEFENSIVE.
		 */
		if (a1 && (!strcmp(a1, "sqlite_master") || !strcmp(a1, "sqlite_schema")) &&
		    !trigger)
			return SQLITE_OK;
		break;
	case SQLITE_PRAGMA:
		if (in_list(pragma_arg_ok, sizeof(pragma_arg_ok) / sizeof(pragma_arg_ok[0]), a1) ||
		    (!a2 && in_list(pragma_read_ok,
		                    sizeof(pragma_read_ok) / sizeof(pragma_read_ok[0]), a1)))
			return SQLITE_OK;
		if (!s->denied[0])
			snprintf(s->denied, sizeof(s->denied), "PRAGMA %s%s%s", a1, a2 ? " = " : "",
			         a2 ? a2 : "");
		return SQLITE_DENY;
	default:
		break;
	}
	if (!s->denied[0]) {
		what = action_name(action);
		if (a1 && action != SQLITE_TRANSACTION && action != SQLITE_SAVEPOINT)
			snprintf(s->denied, sizeof(s->denied), "%s '%s'", what, a1);
		else
			snprintf(s->denied, sizeof(s->denied), "%s", what);
	}
	return SQLITE_DENY;
}

/* ---- open and close ---- */

static int exec_pragma(struct arl_store *s, const char *sql, struct arl_err *err)
{
	if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(s, err, "open the database", sql);
	return 0;
}

/*
 * Removes the database a failed open created but could not give a schema (the disk was full):
 * an empty file would only be taken for a results database later. A file that is not empty
 * is someone's data, and SQLite removed its own journal when the transaction rolled back.
 */
static void drop_empty(const char *path)
{
	struct stat sb;

	if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size == 0)
		unlink(path);
}

/*
 * The path with its directory resolved, so that SQLITE_OPEN_NOFOLLOW judges only the file
 * itself (a symlinked home or /var/run stays usable); NULL when the directory is not there.
 */
static char *canon_db_path(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir, *real, *out;

	if (!slash)
		dir = arl_xstrdup(".");
	else if (slash == path)
		dir = arl_xstrdup("/");
	else
		dir = arl_xstrndup(path, (size_t)(slash - path));
	real = realpath(dir, NULL);
	free(dir);
	if (!real)
		return NULL;
	out = arl_xasprintf("%s/%s", strcmp(real, "/") ? real : "", slash ? slash + 1 : path);
	free(real);
	return out;
}

/*
 * Someone who can write beside the database could plant a link, a FIFO or a device under one
 * of the names SQLite opens read-write (as root, too): only regular files with one link.
 */
static int check_db_files(const char *path, const char *real, struct arl_err *err)
{
	static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};

	for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
		char *f = arl_xasprintf("%s%s", real, suffix[i]);
		struct stat sb;
		const char *why = NULL;

		if (lstat(f, &sb) == 0) {
			if (S_ISLNK(sb.st_mode))
				why = "is a symbolic link";
			else if (!S_ISREG(sb.st_mode))
				why = "is not a regular file";
			else if (sb.st_nlink != 1)
				why = "has more than one hard link";
		}
		free(f);
		if (why)
			return arl_error(err, ARL_E_IO, "results database '%s%s' %s; refusing it",
			                 path, suffix[i], why);
	}
	return 0;
}

int arl_store_open(struct arl_store **out, const char *path, unsigned flags, struct arl_err *err)
{
	struct arl_store *s = arl_xcalloc(1, sizeof(*s));
	struct arl_err repair = ARL_ERR_INIT;
	char *real = NULL;
	int oflags, rc, ret = -1;
	bool fresh = false;
	struct stat sb;

	s->path = arl_xstrdup(path);
	s->flags = flags;
	if (gethostname(s->host, sizeof(s->host)) < 0)
		snprintf(s->host, sizeof(s->host), "unknown");
	s->host[sizeof(s->host) - 1] = '\0';
	arl_owner_self(&s->me);

	/* SQLite's "unable to open database file" does not say that the file is missing. */
	if ((flags & (ARL_STORE_READONLY | ARL_STORE_NOCREATE)) && strcmp(path, ":memory:") &&
	    stat(path, &sb) < 0 && errno == ENOENT) {
		arl_error(err, ARL_E_IO, "no results database '%s' (see --db and $ARL_BATCH_DB)",
		          path);
		goto out;
	}
	if (flags & ARL_STORE_READONLY) {
		oflags = SQLITE_OPEN_READONLY;
	} else {
		oflags =
		    SQLITE_OPEN_READWRITE | (flags & ARL_STORE_NOCREATE ? 0 : SQLITE_OPEN_CREATE);
		fresh = !(flags & ARL_STORE_NOCREATE) && strcmp(path, ":memory:") &&
		        stat(path, &sb) < 0 && errno == ENOENT;
	}
	if (strcmp(path, ":memory:")) {
		if (!(real = canon_db_path(path)))
			real = arl_xstrdup(path);
		if (check_db_files(path, real, err) < 0)
			goto out;
		oflags |= SQLITE_OPEN_NOFOLLOW;
	}
	/*
	 * It holds every step's output: readable by its owner only (SQLite would make it 0644,
	 * and gives its -wal and -shm the database's mode). A file made meanwhile is taken as is.
	 */
	if (fresh) {
		int fd = open(real, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);

		if (fd >= 0)
			close(fd);
	}
	/* One thread per connection (above): no per-call mutex, which reads of 100 000 rows of
	 * 25 columns would take a million times. */
	oflags |= SQLITE_OPEN_NOMUTEX;
	rc = sqlite3_open_v2(real ? real : path, &s->db, oflags, NULL);
	if (rc == SQLITE_CANTOPEN_SYMLINK ||
	    (s->db && sqlite3_extended_errcode(s->db) == SQLITE_CANTOPEN_SYMLINK)) {
		arl_error(err, ARL_E_IO, "results database '%s' is a symbolic link; refusing it",
		          path);
		goto out;
	}
	if (rc != SQLITE_OK) {
		arl_error(err, ARL_E_IO, "cannot open results database '%s': %s", path,
		          s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		goto out;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, 5000);
	s->readonly = (flags & ARL_STORE_READONLY) || sqlite3_db_readonly(s->db, "main") == 1;

	/* foreign_keys is a no-op inside a transaction: set it before any migration. */
	if (exec_pragma(s, "PRAGMA foreign_keys = ON", err) < 0 ||
	    exec_pragma(s, "PRAGMA synchronous = NORMAL", err) < 0)
		goto out;
	/*
	 * WAL only once the file is known to be ours (migrate() refuses anything else): the
	 * switch rewrites the file header, and a stranger's database must stay as it was. A
	 * read-only connection cannot switch; the writer already did.
	 */
	if (migrate(s, err) < 0)
		goto out;
	if (!s->readonly && exec_pragma(s, "PRAGMA journal_mode = WAL", err) < 0)
		goto out;
	if (flags & ARL_STORE_READONLY) {
		/* Belt and braces: the authorizer refuses ATTACH; no slot to attach into either. */
		sqlite3_limit(s->db, SQLITE_LIMIT_ATTACHED, 0);
		sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
		sqlite3_set_authorizer(s->db, authorize, s);
	} else if (!s->readonly && recover_stale(s, &repair) < 0) {
		/*
		 * On a full disk the repair waits for the next open: refusing the open would also
		 * stop `results` and `runs` from reading what is there, and a run could not write
		 * its own rows anyway (it reports that itself).
		 */
		if (!s->full) {
			arl_error(err, repair.code, "%s", repair.msg);
			goto out;
		}
	}
	*out = s;
	s = NULL;
	ret = 0;
out:
	/* Most messages name the file already; the ones from SQLite itself do not. */
	if (ret < 0 && err && err->code == ARL_E_DB && !strstr(err->msg, path))
		arl_err_prefix(err, "results database '%s'", path);
	arl_store_close(s);
	if (ret < 0 && fresh)
		drop_empty(real ? real : path);
	free(real);
	return ret;
}

void arl_store_close(struct arl_store *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < S__COUNT; i++)
		sqlite3_finalize(s->stmts[i]);
	/*
	 * Lets SQLite keep its statistics current; cheap when nothing changed. Only for the
	 * writer: it may need the write lock, which a reader must not wait 5 s for.
	 */
	if (s->db && !s->readonly && !(s->flags & ARL_STORE_NOCREATE))
		sqlite3_exec(s->db, "PRAGMA optimize", NULL, NULL, NULL);
	/* _v2: a statement a caller forgot to finalize must not leak the connection. */
	sqlite3_close_v2(s->db);
	free(s->path);
	free(s);
}

const char *arl_store_path(const struct arl_store *s)
{
	return s->path;
}

bool arl_store_full(const struct arl_store *s)
{
	return s->full;
}

sqlite3 *arl_store_db(struct arl_store *s)
{
	return s->db;
}

/* ---- runs ---- */

static int insert_run(struct arl_store *s, const struct arl_run_info *info, int64_t *run_id,
                      struct arl_err *err)
{
	const char *op = "record the start of the run";
	sqlite3_stmt *st = stmt(s, S_RUN_INSERT, op, err);
	struct bind b = {st, SQLITE_OK};

	if (!st)
		return -1;
	bind_str(&b, 1, info->name);
	bind_time(&b, 2, arl_wall_ms());
	bind_str(&b, 3, info->files ? info->files : "[]");
	bind_i64(&b, 4, info->jobs_total);
	bind_str(&b, 5, s->host);
	bind_i64(&b, 6, (int64_t)s->me.pid);
	bind_str(&b, 7, info->isolation);
	bind_str(&b, 8, info->notes);
	bind_opt_i64(&b, 9, s->me.start > 0 && s->me.start <= INT64_MAX, (int64_t)s->me.start);
	bind_str(&b, 10, s->me.boot[0] ? s->me.boot : NULL);
	bind_str(&b, 11, s->me.pidns[0] ? s->me.pidns : NULL);
	bind_str(&b, 12, info->params);
	if (bind_check(&b, op, err) < 0 || stmt_run(s, st, op, err) < 0)
		return -1;
	*run_id = sqlite3_last_insert_rowid(s->db);
	return 0;
}

int arl_store_run_begin(struct arl_store *s, const struct arl_run_info *info, int64_t *run_id,
                        struct arl_err *err)
{
	return insert_run(s, info, run_id, err);
}

int arl_store_run_finish(struct arl_store *s, int64_t run_id, const char *status, int exit_code,
                         struct arl_err *err)
{
	const char *op = "record the end of the run";

	if (strcmp(status, "succeeded") && strcmp(status, "failed") &&
	    strcmp(status, "interrupted"))
		return arl_error(err, ARL_E_INVALID, "cannot %s: bad status '%s'", op, status);
	if (tx_begin(s, op, err) < 0)
		return -1;
	if (close_run(s, run_id, status, true, exit_code, arl_wall_ms(), "the run ended first",
	              NULL, err) < 0 ||
	    tx_commit(s, op, err) < 0) {
		tx_rollback(s);
		return -1;
	}
	return 0;
}

int arl_store_run_add_note(struct arl_store *s, int64_t run_id, const char *note,
                           struct arl_err *err)
{
	const char *op = "record a note of the run";
	sqlite3_stmt *st = stmt(s, S_RUN_ADD_NOTE, op, err);
	struct bind b;

	if (!st)
		return -1;
	b = (struct bind){st, SQLITE_OK};
	bind_i64(&b, 1, run_id);
	bind_str(&b, 2, note);
	if (bind_check(&b, op, err) < 0)
		return -1;
	return stmt_run(s, st, op, err);
}

int arl_store_run_set_halted(struct arl_store *s, int64_t run_id, const char *why,
                             struct arl_err *err)
{
	sqlite3_stmt *st = NULL;
	int ret = -1;

	if (arl_store_prepare(s, "UPDATE runs SET halted_by = ?2 WHERE id = ?1", &st, NULL, err) <
	    0)
		return -1;
	sqlite3_bind_int64(st, 1, run_id);
	sqlite3_bind_text(st, 2, why, -1, SQLITE_STATIC);
	if (arl_store_step(s, st, err) >= 0)
		ret = 0;
	sqlite3_finalize(st);
	return ret;
}

/* ---- jobs ---- */

/* Inserts the rows inside the caller's transaction; got[i] is row i's id. */
static int insert_jobs(struct arl_store *s, int64_t run_id, size_t n, arl_store_row_fn row_fn,
                       void *arg, int64_t *got, struct arl_err *err)
{
	const char *op = "record the jobs of the run";
	sqlite3_stmt *st = stmt(s, S_JOB_INSERT, op, err);
	struct bind b;
	int64_t skipped = 0, now = arl_wall_ms();

	if (!st)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct arl_job_row row = {0}, *r = &row;

		b = (struct bind){st, SQLITE_OK};
		if (row_fn(arg, i, &row, err) < 0)
			return -1;
		bind_i64(&b, 1, run_id);
		bind_str(&b, 2, r->key);
		bind_str(&b, 3, r->name);
		bind_str(&b, 4, r->file);
		bind_str(&b, 5, r->pool);
		bind_str(&b, 6, r->item);
		bind_str(&b, 7, r->labels ? r->labels : "{}");
		bind_str(&b, 8, r->spec_hash);
		bind_opt_i64(&b, 9, r->skipped_from > 0, r->skipped_from);
		bind_time(&b, 10, now);
		if (bind_check(&b, op, err) < 0 || stmt_run(s, st, op, err) < 0) {
			if (!s->full)
				arl_err_prefix(err, "job '%s'", r->key ? r->key : "(null)");
			return -1;
		}
		got[i] = sqlite3_last_insert_rowid(s->db);
		skipped += r->skipped_from > 0;
	}
	if (!skipped)
		return 0;
	if (!(st = stmt(s, S_RUN_ADD_SKIPPED, op, err)))
		return -1;
	b = (struct bind){st, SQLITE_OK};
	bind_i64(&b, 1, run_id);
	bind_i64(&b, 2, skipped);
	if (bind_check(&b, op, err) < 0)
		return -1;
	return stmt_run(s, st, op, err);
}

/* jobs_add, and with @info the run row before them: one transaction either way. */
static int add_plan(struct arl_store *s, const struct arl_run_info *info, int64_t *run_id, size_t n,
                    arl_store_row_fn row_fn, void *arg, int64_t *ids, struct arl_err *err)
{
	int64_t *got = arl_xcalloc(n ? n : 1, sizeof(*got)), id = *run_id;
	int ret = -1;

	if (tx_begin(s, "record the jobs of the run", err) < 0)
		goto out;
	if ((info && insert_run(s, info, &id, err) < 0) ||
	    insert_jobs(s, id, n, row_fn, arg, got, err) < 0 ||
	    tx_commit(s, "record the jobs of the run", err) < 0)
		goto out;
	if (n)
		memcpy(ids, got, n * sizeof(*ids));
	*run_id = id;
	ret = 0;
out:
	if (ret < 0)
		tx_rollback(s);
	free(got);
	return ret;
}

int arl_store_jobs_add(struct arl_store *s, int64_t run_id, size_t n, arl_store_row_fn row_fn,
                       void *arg, int64_t *ids, struct arl_err *err)
{
	return add_plan(s, NULL, &run_id, n, row_fn, arg, ids, err);
}

int arl_store_run_plan(struct arl_store *s, const struct arl_run_info *info, size_t n,
                       arl_store_row_fn row_fn, void *arg, int64_t *run_id, int64_t *ids,
                       struct arl_err *err)
{
	return add_plan(s, info, run_id, n, row_fn, arg, ids, err);
}

int arl_store_job_set_running(struct arl_store *s, int64_t job_id, int64_t started_ms,
                              struct arl_err *err)
{
	const char *op = "mark the job running";
	sqlite3_stmt *st = stmt(s, S_JOB_RUNNING, op, err);
	struct bind b = {st, SQLITE_OK};

	if (!st)
		return -1;
	bind_i64(&b, 1, job_id);
	bind_time(&b, 2, started_ms > 0 ? started_ms : arl_wall_ms());
	if (bind_check(&b, op, err) < 0)
		return -1;
	return stmt_run(s, st, op, err);
}

static int put_step(struct arl_store *s, int64_t attempt_id, size_t idx,
                    const struct arl_step_result *sr, struct arl_err *err)
{
	const char *op = "record a step";
	sqlite3_stmt *st = stmt(s, S_STEP_INSERT, op, err);
	struct bind b = {st, SQLITE_OK};
	bool ran = sr->state != ARL_STATE_SKIPPED;

	if (!st)
		return -1;
	bind_i64(&b, 1, attempt_id);
	bind_i64(&b, 2, (int64_t)idx);
	bind_str(&b, 3, sr->name);
	bind_str(&b, 4, sr->type);
	bind_str(&b, 5, sr->callback ? "callback" : "main");
	bind_str(&b, 6, arl_state_name(sr->state));
	bind_opt_i64(&b, 7, sr->has_exit, sr->exit_code);
	/* NULL output: the step never ran. "" : it ran and printed nothing. */
	if (sr->out.data || ran)
		bind_text(&b, 8, sr->out.data ? sr->out.data : "", sr->out.data ? sr->out.len : 0);
	else
		bind_null(&b, 8);
	if (sr->err.data || ran)
		bind_text(&b, 9, sr->err.data ? sr->err.data : "", sr->err.data ? sr->err.len : 0);
	else
		bind_null(&b, 9);
	bind_i64(&b, 10, sr->out.truncated);
	bind_i64(&b, 11, sr->err.truncated);
	bind_time(&b, 12, sr->started_ms);
	bind_time(&b, 13, sr->finished_ms);
	bind_duration(&b, 14, sr->started_ms, sr->finished_ms);
	bind_str(&b, 15, sr->metrics_error);
	if (bind_check(&b, op, err) < 0 || stmt_run(s, st, op, err) < 0) {
		if (!s->full)
			arl_err_prefix(err, "step %zu '%s'", idx + 1,
			               sr->name ? sr->name : "(null)");
		return -1;
	}
	return 0;
}

static int put_artifact(struct arl_store *s, int64_t attempt_id, const struct arl_artifact *x,
                        struct arl_err *err)
{
	const char *op = "record an artifact";
	sqlite3_stmt *st = stmt(s, S_ARTIFACT_INSERT, op, err);
	struct bind b = {st, SQLITE_OK};

	if (!st)
		return -1;
	bind_i64(&b, 1, attempt_id);
	bind_str(&b, 2, x->path);
	bind_i64(&b, 3, x->size < 0 ? 0 : x->size);
	bind_str(&b, 4, x->sha256[0] ? x->sha256 : NULL);
	bind_str(&b, 5, x->error);
	if (bind_check(&b, op, err) < 0 || stmt_run(s, st, op, err) < 0)
		return -1;
	return 0;
}

static int put_attempt(struct arl_store *s, int64_t job_id, const struct arl_attempt_result *a,
                       struct arl_err *err)
{
	const char *op = "record an attempt";
	sqlite3_stmt *st = stmt(s, S_ATTEMPT_INSERT, op, err);
	struct bind b = {st, SQLITE_OK};
	int64_t attempt_id;

	if (!st)
		return -1;
	bind_i64(&b, 1, job_id);
	bind_i64(&b, 2, a->number);
	bind_str(&b, 3, a->sandbox);
	bind_str(&b, 4, arl_state_name(a->state));
	bind_opt_i64(&b, 5, a->has_exit, a->exit_code);
	bind_str(&b, 6, arl_class_name(a->cls));
	bind_str(&b, 7, a->error);
	bind_time(&b, 8, a->started_ms);
	bind_time(&b, 9, a->finished_ms);
	bind_duration(&b, 10, a->started_ms, a->finished_ms);
	bind_opt_i64(&b, 11, a->has_prepare, a->prepare_ms);
	if (bind_check(&b, op, err) < 0 || stmt_run(s, st, op, err) < 0)
		goto fail;
	attempt_id = sqlite3_last_insert_rowid(s->db);
	for (size_t i = 0; i < a->nsteps; i++)
		if (put_step(s, attempt_id, i, &a->steps[i], err) < 0)
			goto fail;
	for (size_t i = 0; i < a->nartifacts; i++)
		if (put_artifact(s, attempt_id, &a->artifacts[i], err) < 0)
			goto fail;
	return 0;
fail:
	if (!s->full)
		arl_err_prefix(err, "attempt %d", a->number);
	return -1;
}

static int put_metric(struct arl_store *s, int64_t job_id, const struct arl_metric *m,
                      struct arl_err *err)
{
	const char *op = "record a metric";
	sqlite3_stmt *st = stmt(s, S_METRIC_INSERT, op, err);
	struct bind b = {st, SQLITE_OK};

	if (!st)
		return -1;
	bind_i64(&b, 1, job_id);
	bind_str(&b, 2, m->name);
	if (m->kind == ARL_METRIC_NUMBER)
		bind_rc(&b, sqlite3_bind_double(st, 3, m->number)); /* NaN is stored as NULL */
	else
		bind_str(&b, 3, m->text);
	if (bind_check(&b, op, err) < 0 || stmt_run(s, st, op, err) < 0) {
		if (!s->full)
			arl_err_prefix(err, "metric '%s'", m->name ? m->name : "(null)");
		return -1;
	}
	return 0;
}

/* Deletes what an earlier arl_store_job_finish() of the same job wrote. */
static int clear_job(struct arl_store *s, int64_t job_id, struct arl_err *err)
{
	static const enum stmt ids[] = {S_JOB_CLEAR_ATTEMPTS, S_JOB_CLEAR_METRICS};
	const char *op = "replace the job's attempts";

	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		sqlite3_stmt *st = stmt(s, ids[i], op, err);
		struct bind b = {st, SQLITE_OK};

		if (!st)
			return -1;
		bind_i64(&b, 1, job_id);
		if (bind_check(&b, op, err) < 0 || stmt_run(s, st, op, err) < 0)
			return -1;
	}
	return 0;
}

/* Reads the job's run and current state, needed to move the run's counters. */
static int job_old(struct arl_store *s, int64_t job_id, int64_t *run_id, char *state, size_t len,
                   struct arl_err *err)
{
	const char *op = "read the job";
	sqlite3_stmt *st = stmt(s, S_JOB_OLD, op, err);
	struct bind b = {st, SQLITE_OK};
	struct old_row row;
	int rc;

	if (!st)
		return -1;
	bind_i64(&b, 1, job_id);
	if (bind_check(&b, op, err) < 0)
		return -1;
	rc = stmt_step(s, st, op, err);
	if (rc < 0)
		return -1;
	if (rc == 0) {
		stmt_done(st);
		return arl_error(err, ARL_E_DB, "cannot %s: no job %lld", op, (long long)job_id);
	}
	stmt_row(s, S_JOB_OLD, &row);
	*run_id = row.run_id;
	snprintf(state, len, "%s", row.state);
	stmt_done(st);
	return 0;
}

int arl_store_job_finish(struct arl_store *s, int64_t job_id, const struct arl_job_result *r,
                         struct arl_err *err)
{
	const char *op = "record the job's result";
	sqlite3_stmt *st;
	struct bind b;
	int64_t run_id = 0;
	char old[16] = "";
	int ret = -1;

	if (tx_begin(s, op, err) < 0)
		return -1;
	if (job_old(s, job_id, &run_id, old, sizeof(old), err) < 0 || clear_job(s, job_id, err) < 0)
		goto out;

	if (!(st = stmt(s, S_JOB_UPDATE, op, err)))
		goto out;
	b = (struct bind){st, SQLITE_OK};
	bind_i64(&b, 1, job_id);
	bind_str(&b, 2, arl_state_name(r->state));
	bind_i64(&b, 3, (int64_t)r->nattempts);
	bind_opt_i64(&b, 4, r->has_exit, r->exit_code);
	bind_str(&b, 5, arl_class_name(r->cls));
	bind_str(&b, 6, r->error);
	bind_time(&b, 7, r->started_ms);
	bind_time(&b, 8, r->finished_ms);
	bind_duration(&b, 9, r->started_ms, r->finished_ms);
	if (bind_check(&b, op, err) < 0 || stmt_run(s, st, op, err) < 0)
		goto out;

	for (size_t i = 0; i < r->nattempts; i++)
		if (put_attempt(s, job_id, &r->attempts[i], err) < 0)
			goto out;
	for (size_t i = 0; i < r->nmetrics; i++)
		if (put_metric(s, job_id, &r->metrics[i], err) < 0)
			goto out;

	if (!(st = stmt(s, S_RUN_COUNT, op, err)))
		goto out;
	b = (struct bind){st, SQLITE_OK};
	bind_i64(&b, 1, run_id);
	bind_str(&b, 2, arl_state_name(r->state));
	bind_str(&b, 3, old);
	if (bind_check(&b, op, err) < 0 || stmt_run(s, st, op, err) < 0)
		goto out;
	if (tx_commit(s, op, err) < 0)
		goto out;
	ret = 0;
out:
	if (ret < 0) {
		tx_rollback(s);
		if (!s->full)
			arl_err_prefix(err, "job %lld", (long long)job_id);
	}
	return ret;
}

/* ---- reading ---- */

int arl_store_run_resolve(struct arl_store *s, const char *spec, int64_t *run_id,
                          struct arl_err *err)
{
	const char *op = "find the run";
	int64_t id, v;
	bool found;

	if (!spec || !*spec || !strcmp(spec, "latest")) {
		if (query_i64(s, S_RUN_LATEST, op, NULL, &v, &found, err) < 0)
			return -1;
		if (!found)
			return arl_error(err, ARL_E_INVALID, "no runs in '%s'", s->path);
	} else if (arl_parse_i64(spec, 1, INT64_MAX, &id) == 0) {
		sqlite3_stmt *st = stmt(s, S_RUN_BY_ID, op, err);
		struct bind b = {st, SQLITE_OK};
		int rc;

		if (!st)
			return -1;
		bind_i64(&b, 1, id);
		if (bind_check(&b, op, err) < 0 || (rc = stmt_step(s, st, op, err)) < 0)
			return -1;
		stmt_done(st);
		if (rc == 0)
			return arl_error(err, ARL_E_INVALID, "no run %lld in '%s'", (long long)id,
			                 s->path);
		v = id;
	} else {
		if (query_i64(s, S_RUN_BY_NAME, op, spec, &v, &found, err) < 0)
			return -1;
		if (!found)
			return arl_error(err, ARL_E_INVALID, "no run named '%s' in '%s'", spec,
			                 s->path);
	}
	*run_id = v;
	return 0;
}

/*
 * Follows job @id through Skipped rows to the result it stands for. Returns 1 with *out filled,
 * 0 when the chain ends at nothing (a pruned target, or an old Skipped row with none).
 */
static int resolve_target(struct arl_store *s, int64_t id, const char *spec_hash,
                          struct arl_store_prev *out, struct arl_err *err)
{
	const char *op = "follow a skipped job to its result";
	sqlite3_stmt *st = stmt(s, S_JOB_TARGET, op, err);

	if (!st)
		return -1;
	/* Chains are resolved when written; old rows may hold short ones, never a cycle. */
	for (int hop = 0; id > 0 && hop < 1000; hop++) {
		struct bind b = {st, SQLITE_OK};
		struct target_row row;
		int rc;

		bind_i64(&b, 1, id);
		bind_str(&b, 2, spec_hash);
		if (bind_check(&b, op, err) < 0 || (rc = stmt_step(s, st, op, err)) < 0)
			return -1;
		if (rc == 0) {
			stmt_done(st);
			return 0;
		}
		stmt_row(s, S_JOB_TARGET, &row);
		out->job_id = id;
		out->run_id = row.run_id;
		out->state = row.state;
		out->cls = row.error_class;
		out->same_spec = row.same_spec == 1;
		id = row.skipped_from;
		stmt_done(st);
		if (out->state != ARL_STATE_SKIPPED)
			return out->state == ARL_STATE_SUCCEEDED ||
			       out->state == ARL_STATE_FAILED || out->state == ARL_STATE_CANCELLED;
	}
	return 0;
}

int arl_store_job_standing(struct arl_store *s, const char *run_name, const char *key,
                           const char *spec_hash, struct arl_store_prev *out, struct arl_err *err)
{
	const char *op = "look up the job's standing result";
	sqlite3_stmt *st = stmt(s, S_JOB_STANDING, op, err);
	struct bind b = {st, SQLITE_OK};
	int64_t *ids = NULL;
	size_t n = 0, cap = 0;
	int rc, found = 0;

	if (!st)
		return -1;
	bind_str(&b, 1, run_name);
	bind_str(&b, 2, key);
	if (bind_check(&b, op, err) < 0)
		return -1;
	/* Collected first: resolve_target() steps another statement. Usually one row is read. */
	while ((rc = stmt_step(s, st, op, err)) == 1) {
		struct standing_row row;

		stmt_row(s, S_JOB_STANDING, &row);
		ARL_GROW(ids, cap, n + 1);
		ids[n++] = row.id;
		if (row.state != ARL_STATE_SKIPPED)
			break; /* a real result: nothing older matters */
	}
	stmt_done(st);
	for (size_t i = 0; rc >= 0 && !found && i < n; i++) {
		struct arl_store_prev p = {0};

		found = resolve_target(s, ids[i], spec_hash, &p, err);
		if (found == 1)
			*out = p;
		rc = found;
	}
	free(ids);
	return rc < 0 ? -1 : found;
}

int arl_store_prepare(struct arl_store *s, const char *sql, sqlite3_stmt **out, const char **tail,
                      struct arl_err *err)
{
	sqlite3_stmt *st = NULL;

	s->denied[0] = '\0';
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, tail) != SQLITE_OK) {
		if (s->denied[0])
			arl_error(err, ARL_E_USAGE, "read-only query: %s is not allowed",
			          s->denied);
		else
			arl_error(err, ARL_E_DB, "%s", sqlite3_errmsg(s->db));
		sqlite3_finalize(st);
		return -1;
	}
	/* The authorizer should have caught it; SQLite's own verdict is the last word. */
	if (st && (s->flags & ARL_STORE_READONLY) && !sqlite3_stmt_readonly(st)) {
		sqlite3_finalize(st);
		return arl_error(err, ARL_E_USAGE, "read-only query: the statement would write");
	}
	*out = st;
	return 0;
}

int arl_store_step(struct arl_store *s, sqlite3_stmt *st, struct arl_err *err)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return arl_error(err, ARL_E_DB, "%s", sqlite3_errmsg(s->db));
}
