/*
 * The job readers: one SQL text and one column table per query, compiled on first use and
 * kept by the reader, rows read by column name (store_rows.h).
 */
#include "store/store_jobs.h"

#include <sqlite3.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store/store_internal.h"
#include "store/store_rows.h"
#include "util.h"
#include "banned.h"

/* clang-format off */
/*
 * A Skipped job is read with the result it stands for (s): a carried failure is a failure of
 * this run too (docs/database.md), whatever state its own row has.
 */
#define JOB_COLS                                                                                   \
	"j.id AS id, j.run_id AS run_id, j.key AS key, j.name AS name, j.file AS file,"            \
	" j.pool AS pool, j.state AS state, j.attempts AS attempts, j.exit_code AS exit_code,"     \
	" j.error_class AS error_class, j.error AS error, j.started_at AS started_at,"              \
	" j.finished_at AS finished_at, j.duration_ms AS duration_ms, j.item AS item,"             \
	" j.labels AS labels, j.spec_hash AS spec_hash, j.skipped_from AS skipped_from,"           \
	" s.id AS from_id, s.run_id AS from_run, s.state AS from_state,"                           \
	" s.error_class AS from_class, s.error AS from_error, s.exit_code AS from_exit,"           \
	" s.attempts AS from_attempts"
/* What a job ended as, for ARL_JOBS_BY_FILE: its sort carries every column it reads. */
#define JOB_OUTCOME_COLS                                                                           \
	"j.id AS id, j.key AS key, j.name AS name, j.file AS file, j.state AS state,"              \
	" j.attempts AS attempts, j.exit_code AS exit_code, j.error_class AS error_class,"         \
	" j.error AS error, j.started_at AS started_at, j.duration_ms AS duration_ms,"             \
	" s.id AS from_id, s.run_id AS from_run, s.state AS from_state,"                           \
	" s.error_class AS from_class, s.error AS from_error, s.exit_code AS from_exit,"           \
	" s.attempts AS from_attempts"
#define CARRIED_JOIN "LEFT JOIN jobs s ON j.state = 'Skipped' AND s.id = j.skipped_from"

enum query {
	Q_JOBS,
	Q_JOBS_STATES,
	Q_JOBS_BY_FILE,
	Q_JOB_GET,
	Q_NEWEST_BY_KEY,
	Q_NEWEST_BY_NAME,
	Q_REFS_MATCHING,
	Q_REFS_ALL,
	Q_ATTEMPTS,
	Q_STEPS,
	Q_LAST_STEPS,
	Q_METRICS,
	Q_METRIC_NAMES,
	Q_FAILING_STEP,
	Q_ARTIFACTS,
	Q__COUNT
};

#define STEP_COLS                                                                                  \
	"SELECT idx, name, type, phase = 'callback' AS callback, state, exit_code, duration_ms,"   \
	" stdout, stderr, stdout_truncated, stderr_truncated, metrics_error FROM steps"

static const char *const query_sql[Q__COUNT] = {
	[Q_JOBS] = "SELECT " JOB_COLS " FROM jobs j " CARRIED_JOIN
		   " WHERE j.run_id = ?1 ORDER BY j.id",
	/*
	 * With --state the states go to SQL as well, so that the (run_id, state) index reads
	 * only the jobs asked for (the 30 000 Failed of a 500 000-job run, not all of them: see
	 * BENCHMARKS.md). INDEXED BY: with ANALYZE statistics and bound states the planner
	 * otherwise prefers scanning the whole table in id order to save the sort. ?2..?7 are
	 * the wanted state names; those left unbound are NULL and match nothing.
	 */
	[Q_JOBS_STATES] = "SELECT " JOB_COLS " FROM jobs j INDEXED BY jobs_run_state " CARRIED_JOIN
			  " WHERE j.run_id = ?1 AND j.state IN (?2, ?3, ?4, ?5, ?6, ?7) ORDER BY j.id",
	/* The window function keeps the recorded order even for a run whose files' jobs were
	 * interleaved. */
	[Q_JOBS_BY_FILE] = "SELECT " JOB_OUTCOME_COLS " FROM jobs j " CARRIED_JOIN
			   " WHERE j.run_id = ?1 ORDER BY min(j.id) OVER (PARTITION BY j.file), j.id",
	[Q_JOB_GET] = "SELECT " JOB_COLS ", r.name AS run_name,"
		      " (SELECT name FROM runs WHERE id = s.run_id) AS from_run_name, r.params AS run_params"
		      " FROM jobs j JOIN runs r ON r.id = j.run_id " CARRIED_JOIN " WHERE j.id = ?1",
	[Q_NEWEST_BY_KEY] = "SELECT run_id FROM jobs WHERE key = ?1 ORDER BY id DESC LIMIT 1",
	/* Names have no index: this scan only runs when a job is not found by key. */
	[Q_NEWEST_BY_NAME] = "SELECT run_id FROM jobs WHERE name = ?1 ORDER BY id DESC LIMIT 1",
	[Q_REFS_MATCHING] = "SELECT id, key, name FROM jobs WHERE run_id = ?1"
			    " AND (key = ?2 OR name = ?2) ORDER BY key = ?2 DESC, id",
	[Q_REFS_ALL] = "SELECT id, key, name FROM jobs WHERE run_id = ?1 ORDER BY id",
	[Q_ATTEMPTS] = "SELECT id, number, sandbox, state, exit_code, error_class, error,"
		       " started_at, duration_ms, prepare_ms FROM attempts WHERE job_id = ?1"
		       " ORDER BY number",
	[Q_STEPS] = STEP_COLS " WHERE attempt_id = ?1 ORDER BY idx",
	[Q_LAST_STEPS] = STEP_COLS " WHERE attempt_id ="
			 " (SELECT id FROM attempts WHERE job_id = ?1 ORDER BY number DESC LIMIT 1)"
			 " ORDER BY idx",
	/* metrics.value is REAL for numbers, TEXT for strings (schemas/results.sql). */
	[Q_METRICS] = "SELECT name, value AS text, value AS number,"
		      " typeof(value) IN ('integer', 'real') AS is_number"
		      " FROM metrics WHERE job_id = ?1 ORDER BY name",
	/* A Skipped job shows the metrics of the job whose result stands for it. */
	[Q_METRIC_NAMES] = "SELECT DISTINCT m.name AS name FROM jobs j"
			   " JOIN metrics m ON m.job_id = coalesce(j.skipped_from, j.id)"
			   " WHERE j.run_id = ?1 ORDER BY m.name",
	/*
	 * The first main step that failed in the last attempt, with the end of its stderr only:
	 * a reason per failed job must not read each job's whole output.
	 */
	[Q_ARTIFACTS] = "SELECT path, size, sha256, error FROM artifacts WHERE attempt_id = ?1"
			" ORDER BY id",
	[Q_FAILING_STEP] = "SELECT name, substr(stderr, -4096) AS err_tail" /* ARL_FAILING_TAIL */
			   " FROM steps WHERE attempt_id ="
			   " (SELECT id FROM attempts WHERE job_id = ?1 ORDER BY number DESC LIMIT 1)"
			   " AND phase = 'main' AND state = 'Failed' ORDER BY idx LIMIT 1",
};
/* clang-format on */

#define J(field, type)        ARL_COL(struct arl_job_view, field, type)
#define JN(field, type, flag) ARL_COL_N(struct arl_job_view, field, type, flag)
static const struct arl_col job_outcome_cols[] = {
    J(id, ARL_COL_INT64),
    J(key, ARL_COL_TEXT),
    J(name, ARL_COL_TEXT),
    J(file, ARL_COL_TEXT),
    J(state, ARL_COL_STATE),
    J(attempts, ARL_COL_INT),
    ARL_COL_AS(struct arl_job_view, state_name, "state", ARL_COL_TEXT),
    JN(exit_code, ARL_COL_INT64, exit_null),
    ARL_COL_AS(struct arl_job_view, cls, "error_class", ARL_COL_CLASS),
    ARL_COL_AS(struct arl_job_view, cls_name, "error_class", ARL_COL_TEXT),
    J(error, ARL_COL_TEXT),
    J(started_at, ARL_COL_TEXT),
    JN(duration_ms, ARL_COL_INT64, duration_null),
    JN(from_id, ARL_COL_INT64, from_null),
    J(from_run, ARL_COL_INT64),
    J(from_state, ARL_COL_STATE),
    ARL_COL_AS(struct arl_job_view, from_cls, "from_class", ARL_COL_CLASS),
    ARL_COL_AS(struct arl_job_view, from_state_name, "from_state", ARL_COL_TEXT),
    ARL_COL_AS(struct arl_job_view, from_cls_name, "from_class", ARL_COL_TEXT),
    J(from_error, ARL_COL_TEXT),
    JN(from_exit, ARL_COL_INT64, from_exit_null),
    J(from_attempts, ARL_COL_INT),
};

static const struct arl_col job_cols[] = {
    J(id, ARL_COL_INT64),
    J(run_id, ARL_COL_INT64),
    J(key, ARL_COL_TEXT),
    J(name, ARL_COL_TEXT),
    J(file, ARL_COL_TEXT),
    J(pool, ARL_COL_TEXT),
    J(state, ARL_COL_STATE),
    J(attempts, ARL_COL_INT),
    ARL_COL_AS(struct arl_job_view, state_name, "state", ARL_COL_TEXT),
    JN(exit_code, ARL_COL_INT64, exit_null),
    ARL_COL_AS(struct arl_job_view, cls, "error_class", ARL_COL_CLASS),
    ARL_COL_AS(struct arl_job_view, cls_name, "error_class", ARL_COL_TEXT),
    J(error, ARL_COL_TEXT),
    J(started_at, ARL_COL_TEXT),
    J(finished_at, ARL_COL_TEXT),
    JN(duration_ms, ARL_COL_INT64, duration_null),
    J(item, ARL_COL_TEXT),
    J(labels, ARL_COL_TEXT),
    J(spec_hash, ARL_COL_TEXT),
    JN(skipped_from, ARL_COL_INT64, skipped_from_null),
    JN(from_id, ARL_COL_INT64, from_null),
    J(from_run, ARL_COL_INT64),
    J(from_state, ARL_COL_STATE),
    ARL_COL_AS(struct arl_job_view, from_cls, "from_class", ARL_COL_CLASS),
    ARL_COL_AS(struct arl_job_view, from_state_name, "from_state", ARL_COL_TEXT),
    ARL_COL_AS(struct arl_job_view, from_cls_name, "from_class", ARL_COL_TEXT),
    J(from_error, ARL_COL_TEXT),
    JN(from_exit, ARL_COL_INT64, from_exit_null),
    J(from_attempts, ARL_COL_INT),
    /* arl_job_get() only: the queries above stop at the column before. */
    J(run_name, ARL_COL_TEXT),
    J(from_run_name, ARL_COL_TEXT),
    J(run_params, ARL_COL_TEXT),
};
#undef J
#undef JN
#define NJOB_COLS      (sizeof(job_cols) / sizeof(job_cols[0]))
#define NJOB_LIST_COLS (NJOB_COLS - 3)

struct run_ref {
	int64_t run_id;
};
static const struct arl_col run_ref_cols[] = {ARL_COL(struct run_ref, run_id, ARL_COL_INT64)};

static const struct arl_col ref_cols[] = {
    ARL_COL(struct arl_job_ref, id, ARL_COL_INT64),
    ARL_COL(struct arl_job_ref, key, ARL_COL_TEXT),
    ARL_COL(struct arl_job_ref, name, ARL_COL_TEXT),
};

#define A(field, type)        ARL_COL(struct arl_attempt_view, field, type)
#define AN(field, type, flag) ARL_COL_N(struct arl_attempt_view, field, type, flag)
static const struct arl_col attempt_cols[] = {
    A(id, ARL_COL_INT64),
    A(number, ARL_COL_INT),
    A(sandbox, ARL_COL_TEXT),
    A(state, ARL_COL_STATE),
    ARL_COL_AS(struct arl_attempt_view, state_name, "state", ARL_COL_TEXT),
    AN(exit_code, ARL_COL_INT64, exit_null),
    ARL_COL_AS(struct arl_attempt_view, cls, "error_class", ARL_COL_CLASS),
    ARL_COL_AS(struct arl_attempt_view, cls_name, "error_class", ARL_COL_TEXT),
    A(error, ARL_COL_TEXT),
    A(started_at, ARL_COL_TEXT),
    AN(duration_ms, ARL_COL_INT64, duration_null),
    AN(prepare_ms, ARL_COL_INT64, prepare_null),
};
#undef A
#undef AN

#define S(field, type)        ARL_COL(struct arl_step_view, field, type)
#define SN(field, type, flag) ARL_COL_N(struct arl_step_view, field, type, flag)
static const struct arl_col step_cols[] = {
    S(idx, ARL_COL_INT),
    S(name, ARL_COL_TEXT),
    S(type, ARL_COL_TEXT),
    S(callback, ARL_COL_INT),
    S(state, ARL_COL_STATE),
    ARL_COL_AS(struct arl_step_view, state_name, "state", ARL_COL_TEXT),
    SN(exit_code, ARL_COL_INT64, exit_null),
    SN(duration_ms, ARL_COL_INT64, duration_null),
    ARL_COL_AS(struct arl_step_view, out, "stdout", ARL_COL_TEXT),
    ARL_COL_AS(struct arl_step_view, err, "stderr", ARL_COL_TEXT),
    ARL_COL_AS(struct arl_step_view, out_truncated, "stdout_truncated", ARL_COL_INT),
    ARL_COL_AS(struct arl_step_view, err_truncated, "stderr_truncated", ARL_COL_INT),
    S(metrics_error, ARL_COL_TEXT),
};
#undef S
#undef SN

static const struct arl_col metric_cols[] = {
    ARL_COL(struct arl_metric_view, name, ARL_COL_TEXT),
    ARL_COL(struct arl_metric_view, text, ARL_COL_TEXT),
    ARL_COL(struct arl_metric_view, number, ARL_COL_DOUBLE),
    ARL_COL(struct arl_metric_view, is_number, ARL_COL_INT),
};

static const struct arl_col failing_cols[] = {
    ARL_COL(struct arl_failing_step, name, ARL_COL_TEXT),
    ARL_COL(struct arl_failing_step, err_tail, ARL_COL_TEXT),
};

static const struct arl_col artifact_cols[] = {
    ARL_COL(struct arl_artifact_view, path, ARL_COL_TEXT),
    ARL_COL(struct arl_artifact_view, size, ARL_COL_INT64),
    ARL_COL(struct arl_artifact_view, sha256, ARL_COL_TEXT),
    ARL_COL(struct arl_artifact_view, error, ARL_COL_TEXT),
};

struct name_row {
	char *name;
};
static const struct arl_col name_cols[] = {ARL_COL(struct name_row, name, ARL_COL_TEXT)};

ARL_COLS_FIT(job_cols);
#define COLS(t) (t), ARL_NCOLS(t)
static const struct {
	const struct arl_col *cols;
	size_t n;
} query_cols[Q__COUNT] = {
    [Q_JOBS] = {job_cols, NJOB_LIST_COLS},       [Q_JOBS_STATES] = {job_cols, NJOB_LIST_COLS},
    [Q_JOBS_BY_FILE] = {COLS(job_outcome_cols)}, [Q_JOB_GET] = {job_cols, NJOB_COLS},
    [Q_NEWEST_BY_KEY] = {COLS(run_ref_cols)},    [Q_NEWEST_BY_NAME] = {COLS(run_ref_cols)},
    [Q_REFS_MATCHING] = {COLS(ref_cols)},        [Q_REFS_ALL] = {COLS(ref_cols)},
    [Q_ATTEMPTS] = {COLS(attempt_cols)},         [Q_STEPS] = {COLS(step_cols)},
    [Q_LAST_STEPS] = {COLS(step_cols)},          [Q_METRICS] = {COLS(metric_cols)},
    [Q_METRIC_NAMES] = {COLS(name_cols)},        [Q_FAILING_STEP] = {COLS(failing_cols)},
    [Q_ARTIFACTS] = {COLS(artifact_cols)},
};

struct arl_job_reader {
	struct arl_store *store;
	struct arl_rows_query q[Q__COUNT]; /* st NULL until first used, then kept */
	bool busy[Q__COUNT];
};

void arl_job_reader_new(struct arl_store *s, struct arl_job_reader **out)
{
	struct arl_job_reader *r = arl_xcalloc(1, sizeof(*r));

	r->store = s;
	*out = r;
}

void arl_job_reader_free(struct arl_job_reader *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < Q__COUNT; i++)
		sqlite3_finalize(r->q[i].st);
	free(r);
}

/* The statement of @q, compiled and its columns found on first use, ready to bind. */
static sqlite3_stmt *start(struct arl_job_reader *r, enum query q, struct arl_err *err)
{
	if (r->busy[q]) {
		arl_error(err, ARL_E_DB, "a job reader query was reentered");
		return NULL;
	}
	if (!r->q[q].st) {
		sqlite3_stmt *st = NULL;

		/* Rows borrow their text (a large run streams through the callbacks without a
		 * copy per row), but for arl_job_get()'s, which the caller keeps. */
		if (arl_store_prepare(r->store, query_sql[q], &st, NULL, err) < 0 ||
		    arl_rows_attach(&r->q[q], st, query_cols[q].cols, query_cols[q].n,
		                    q != Q_JOB_GET, err) < 0) {
			sqlite3_finalize(st);
			r->q[q].st = NULL;
			return NULL;
		}
	}
	r->busy[q] = true;
	return r->q[q].st;
}

/* start() with ?1 bound to @id, the one parameter of most queries. */
static bool start_id(struct arl_job_reader *r, enum query q, int64_t id, struct arl_err *err)
{
	sqlite3_stmt *st = start(r, q, err);

	if (st)
		sqlite3_bind_int64(st, 1, id);
	return st != NULL;
}

/* The next row of @q into @row: 1, 0 when done, -1 on error. */
static int next(struct arl_job_reader *r, enum query q, void *row, struct arl_err *err)
{
	return arl_rows_next(r->store, &r->q[q], row, err);
}

/* Resets @q so that it holds no read transaction open between calls; returns 0 or -1 by @rc. */
static int finish(struct arl_job_reader *r, enum query q, int rc)
{
	arl_rows_close(&r->q[q]);
	r->busy[q] = false;
	return rc < 0 ? -1 : 0;
}

/* Hands every row of @q, started, to the typed callback *@fn; then finishes @q. */
static int each(struct arl_job_reader *r, enum query q, void *row, arl_rows_call_fn call,
                const void *fn, void *arg, struct arl_err *err)
{
	return finish(r, q, arl_rows_each(r->store, &r->q[q], row, call, fn, arg, err));
}

ARL_ROWS_CALLER(call_ref, arl_job_ref_fn, struct arl_job_ref)
ARL_ROWS_CALLER(call_attempt, arl_attempt_fn, struct arl_attempt_view)
ARL_ROWS_CALLER(call_step, arl_step_fn, struct arl_step_view)
ARL_ROWS_CALLER(call_metric, arl_metric_fn, struct arl_metric_view)
ARL_ROWS_CALLER(call_artifact, arl_artifact_fn, struct arl_artifact_view)

void arl_job_view_release(struct arl_job_view *j)
{
	arl_rows_free(job_cols, NJOB_COLS, j);
}

int arl_jobs_each(struct arl_job_reader *r, int64_t run_id, unsigned states,
                  enum arl_jobs_order order, arl_job_fn fn, void *arg, struct arl_err *err)
{
	enum query q = order == ARL_JOBS_BY_FILE ? Q_JOBS_BY_FILE : states ? Q_JOBS_STATES : Q_JOBS;
	struct arl_job_view j = {0};
	int rc;

	if (!start_id(r, q, run_id, err))
		return -1;
	if (q == Q_JOBS_STATES)
		for (int i = ARL_STATE_PENDING, p = 2; i <= ARL_STATE_CANCELLED; i++)
			if (states & (1u << i))
				sqlite3_bind_text(r->q[q].st, p++,
				                  arl_state_name((enum arl_state)i), -1,
				                  SQLITE_STATIC);
	/* By file the states are filtered here: the window function wants every job. */
	while ((rc = next(r, q, &j, err)) == 1)
		if ((!states || (states & (1u << j.state))) && fn(arg, &j, err) < 0) {
			rc = -1;
			break;
		}
	return finish(r, q, rc);
}

int arl_job_get(struct arl_job_reader *r, int64_t job_id, struct arl_job_view *out,
                struct arl_err *err)
{
	struct arl_job_view j = {0};
	int rc;

	if (!start_id(r, Q_JOB_GET, job_id, err))
		return -1;
	rc = next(r, Q_JOB_GET, &j, err); /* owned: the caller keeps the row */
	finish(r, Q_JOB_GET, rc);
	if (rc == 1)
		*out = j;
	return rc;
}

int arl_job_newest_run(struct arl_job_reader *r, const char *job, bool by_name, int64_t *run_id,
                       struct arl_err *err)
{
	enum query q = by_name ? Q_NEWEST_BY_NAME : Q_NEWEST_BY_KEY;
	sqlite3_stmt *st = start(r, q, err);
	struct run_ref ref = {0};
	int rc;

	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, job, -1, SQLITE_TRANSIENT);
	rc = next(r, q, &ref, err);
	finish(r, q, rc);
	if (rc == 1)
		*run_id = ref.run_id;
	return rc;
}

int arl_job_refs_matching(struct arl_job_reader *r, int64_t run_id, const char *job,
                          arl_job_ref_fn fn, void *arg, struct arl_err *err)
{
	struct arl_job_ref ref = {0};

	if (!start_id(r, Q_REFS_MATCHING, run_id, err))
		return -1;
	sqlite3_bind_text(r->q[Q_REFS_MATCHING].st, 2, job, -1, SQLITE_TRANSIENT);
	return each(r, Q_REFS_MATCHING, &ref, call_ref, &fn, arg, err);
}

int arl_job_refs_each(struct arl_job_reader *r, int64_t run_id, arl_job_ref_fn fn, void *arg,
                      struct arl_err *err)
{
	struct arl_job_ref ref = {0};

	if (!start_id(r, Q_REFS_ALL, run_id, err))
		return -1;
	return each(r, Q_REFS_ALL, &ref, call_ref, &fn, arg, err);
}

int arl_job_attempts(struct arl_job_reader *r, int64_t job_id, arl_attempt_fn fn, void *arg,
                     struct arl_err *err)
{
	struct arl_attempt_view a = {0};

	if (!start_id(r, Q_ATTEMPTS, job_id, err))
		return -1;
	return each(r, Q_ATTEMPTS, &a, call_attempt, &fn, arg, err);
}

int arl_attempt_steps(struct arl_job_reader *r, int64_t attempt_id, arl_step_fn fn, void *arg,
                      struct arl_err *err)
{
	struct arl_step_view st = {0};

	if (!start_id(r, Q_STEPS, attempt_id, err))
		return -1;
	return each(r, Q_STEPS, &st, call_step, &fn, arg, err);
}

int arl_job_last_steps(struct arl_job_reader *r, int64_t job_id, arl_step_fn fn, void *arg,
                       struct arl_err *err)
{
	struct arl_step_view st = {0};

	if (!start_id(r, Q_LAST_STEPS, job_id, err))
		return -1;
	return each(r, Q_LAST_STEPS, &st, call_step, &fn, arg, err);
}

int arl_attempt_artifacts(struct arl_job_reader *r, int64_t attempt_id, arl_artifact_fn fn,
                          void *arg, struct arl_err *err)
{
	struct arl_artifact_view a = {0};

	if (!start_id(r, Q_ARTIFACTS, attempt_id, err))
		return -1;
	return each(r, Q_ARTIFACTS, &a, call_artifact, &fn, arg, err);
}

int arl_job_metrics(struct arl_job_reader *r, int64_t job_id, arl_metric_fn fn, void *arg,
                    struct arl_err *err)
{
	struct arl_metric_view m = {0};

	if (!start_id(r, Q_METRICS, job_id, err))
		return -1;
	return each(r, Q_METRICS, &m, call_metric, &fn, arg, err);
}

int arl_run_metric_names(struct arl_job_reader *r, int64_t run_id, arl_name_fn fn, void *arg,
                         struct arl_err *err)
{
	struct name_row n = {0};
	int rc;

	if (!start_id(r, Q_METRIC_NAMES, run_id, err))
		return -1;
	while ((rc = next(r, Q_METRIC_NAMES, &n, err)) == 1 && (rc = fn(arg, n.name, err)) == 0)
		;
	return finish(r, Q_METRIC_NAMES, rc);
}

int arl_job_failing_step(struct arl_job_reader *r, int64_t job_id, struct arl_failing_step *out,
                         struct arl_err *err)
{
	struct arl_failing_step f = {0};
	int rc;

	memset(out, 0, sizeof(*out));
	if (!start_id(r, Q_FAILING_STEP, job_id, err))
		return -1;
	rc = next(r, Q_FAILING_STEP, &f, err);
	if (rc == 1) {
		out->name = arl_xstrdup(f.name ? f.name : "");
		out->err_tail = f.err_tail ? arl_xstrdup(f.err_tail) : NULL;
	}
	return finish(r, Q_FAILING_STEP, rc) < 0 ? -1 : rc;
}

void arl_failing_step_release(struct arl_failing_step *f)
{
	free(f->name);
	free(f->err_tail);
	memset(f, 0, sizeof(*f));
}

bool arl_job_reader_snapshot(struct arl_job_reader *r)
{
	return sqlite3_exec(arl_store_db(r->store), "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
}

void arl_job_reader_snapshot_end(struct arl_job_reader *r, bool began)
{
	if (began)
		sqlite3_exec(arl_store_db(r->store), "COMMIT", NULL, NULL, NULL);
}
