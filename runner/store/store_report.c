/*
 * The report's queries. Each reads its columns by name (store_rows.h) into the struct the
 * header gives, so a column renamed in a query fails here, at bind time, by its name.
 */
#include "store/store_report.h"

#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"
#include "store/store_rows.h"
#include "util.h"
#include "banned.h"

/* The run's jobs with a Skipped job replaced by the state and class it stands for. */
#define RUN_JOBS                                                                                   \
	"WITH rj AS (SELECT j.id, j.pool, j.labels,"                                               \
	" coalesce(s.state, CASE j.state WHEN 'Skipped' THEN 'Succeeded' ELSE j.state END) AS st," \
	" coalesce(s.error_class, j.error_class) AS cls"                                           \
	" FROM jobs j LEFT JOIN jobs s ON j.state = 'Skipped' AND s.id = j.skipped_from"           \
	" WHERE j.run_id = ?1) "
/* Effective pass counts of the rj rows at hand (struct arl_report_group). */
#define AGG                                                                                        \
	" count(*) AS total, sum(st = 'Succeeded') AS passed,"                                     \
	" sum(st = 'Failed' AND cls IN ('failed', 'timeout')) AS failed"

/* Opens @sql with @cols bound by name and ?1 bound to the run, as every query here has. */
static int query_open(struct arl_store *s, struct arl_rows_query *q, const char *sql,
                      const struct arl_col *cols, size_t n, int64_t run, struct arl_err *err)
{
	if (arl_rows_open(q, s, sql, cols, n, err) < 0)
		return -1;
	sqlite3_bind_int64(q->st, 1, run);
	return 0;
}

/* ---- counts ---- */

struct state_count {
	enum arl_state state;
	enum arl_class cls;
	int64_t n;
};

static const struct arl_col state_count_cols[] = {
    ARL_COL(struct state_count, state, ARL_COL_STATE),
    ARL_COL_AS(struct state_count, cls, "error_class", ARL_COL_CLASS),
    ARL_COL(struct state_count, n, ARL_COL_INT64),
};
ARL_COLS_FIT(state_count_cols);

static const struct arl_col group_cols[] = {
    ARL_COL(struct arl_report_group, name, ARL_COL_TEXT),
    ARL_COL(struct arl_report_group, total, ARL_COL_INT64),
    ARL_COL(struct arl_report_group, passed, ARL_COL_INT64),
    ARL_COL(struct arl_report_group, failed, ARL_COL_INT64),
};
ARL_COLS_FIT(group_cols);

struct carried {
	int64_t failed, cancelled;
};

static const struct arl_col carried_cols[] = {
    ARL_COL_AS(struct carried, failed, "carried_failed", ARL_COL_INT64),
    ARL_COL_AS(struct carried, cancelled, "carried_cancelled", ARL_COL_INT64),
};
ARL_COLS_FIT(carried_cols);

int arl_store_report_counts(struct arl_store *s, int64_t run, struct arl_report_counts *out,
                            struct arl_err *err)
{
	struct arl_report_counts c = {0};
	struct state_count row;
	struct arl_report_group all;
	struct carried carried = {0};
	struct arl_rows_query q;
	int rc;

	if (query_open(s, &q,
	               "SELECT state, error_class, count(*) AS n FROM jobs WHERE run_id = ?1"
	               " GROUP BY 1, 2",
	               state_count_cols, ARL_NCOLS(state_count_cols), run, err) < 0)
		return -1;
	while ((rc = arl_rows_next(s, &q, &row, err)) == 1) {
		c.total += (uint64_t)row.n;
		c.state[row.state] += (uint64_t)row.n;
		c.cls[row.cls] += (uint64_t)row.n;
	}
	arl_rows_close(&q);
	if (rc < 0 || arl_store_report_pass_all(s, run, &all, err) < 0)
		return -1;
	c.passed = all.passed;
	c.counted_failed = all.failed;
	if (query_open(
	        s, &q,
	        "SELECT " ARL_SQL_RUN_CARRIED("Failed") " AS carried_failed, " ARL_SQL_RUN_CARRIED(
	            "Cancelled") " AS carried_cancelled"
	                         " FROM runs WHERE id = ?1",
	        carried_cols, ARL_NCOLS(carried_cols), run, err) < 0 ||
	    arl_rows_one(s, &q, &carried, err) < 0)
		return -1;
	c.carried_failed = (uint64_t)carried.failed;
	c.carried_cancelled = (uint64_t)carried.cancelled;
	*out = c;
	return 0;
}

int arl_store_report_pass_all(struct arl_store *s, int64_t run, struct arl_report_group *out,
                              struct arl_err *err)
{
	struct arl_report_group g = {0};
	struct arl_rows_query q;

	/* An aggregate: one row, whose name is NULL. */
	if (query_open(s, &q, RUN_JOBS "SELECT NULL AS name," AGG " FROM rj", group_cols,
	               ARL_NCOLS(group_cols), run, err) < 0 ||
	    arl_rows_one(s, &q, &g, err) < 0)
		return -1;
	*out = g;
	return 0;
}

ARL_ROWS_CALLER(call_group, arl_report_group_fn, struct arl_report_group)

int arl_store_report_pass_by_pool(struct arl_store *s, int64_t run, size_t limit,
                                  arl_report_group_fn fn, void *arg, struct arl_err *err)
{
	struct arl_report_group row;
	struct arl_rows_query q;

	if (query_open(s, &q,
	               RUN_JOBS "SELECT pool AS name," AGG
	                        " FROM rj GROUP BY pool ORDER BY pool LIMIT ?2",
	               group_cols, ARL_NCOLS(group_cols), run, err) < 0)
		return -1;
	sqlite3_bind_int64(q.st, 2, (int64_t)limit);
	return arl_rows_each(s, &q, &row, call_group, &fn, arg, err);
}

int arl_store_report_pass_by_label(struct arl_store *s, int64_t run, const char *key,
                                   arl_report_group_fn fn, void *arg, struct arl_err *err)
{
	struct arl_report_group row;
	struct arl_rows_query q;

	if (query_open(s, &q,
	               RUN_JOBS "SELECT l.value AS name," AGG " FROM rj, json_each(rj.labels) l"
	                        " WHERE l.key = ?2 GROUP BY l.value ORDER BY l.value",
	               group_cols, ARL_NCOLS(group_cols), run, err) < 0)
		return -1;
	sqlite3_bind_text(q.st, 2, key, -1, SQLITE_STATIC);
	return arl_rows_each(s, &q, &row, call_group, &fn, arg, err);
}

static const struct arl_col label_key_cols[] = {
    ARL_COL(struct arl_report_label_key, key, ARL_COL_TEXT),
    ARL_COL(struct arl_report_label_key, nvalues, ARL_COL_INT64),
};
ARL_COLS_FIT(label_key_cols);
ARL_ROWS_CALLER(call_label_key, arl_report_label_key_fn, struct arl_report_label_key)

int arl_store_report_label_keys(struct arl_store *s, int64_t run, arl_report_label_key_fn fn,
                                void *arg, struct arl_err *err)
{
	struct arl_report_label_key row;
	struct arl_rows_query q;

	if (query_open(s, &q,
	               RUN_JOBS "SELECT l.key AS key, count(DISTINCT l.value) AS nvalues"
	                        " FROM rj, json_each(rj.labels) l GROUP BY l.key ORDER BY l.key",
	               label_key_cols, ARL_NCOLS(label_key_cols), run, err) < 0)
		return -1;
	return arl_rows_each(s, &q, &row, call_label_key, &fn, arg, err);
}

/* ---- the run ---- */

static const struct arl_col run_cols[] = {
    ARL_COL(struct arl_report_run, name, ARL_COL_TEXT),
    ARL_COL(struct arl_report_run, status, ARL_COL_TEXT),
    ARL_COL(struct arl_report_run, started_at, ARL_COL_TEXT),
    ARL_COL_N(struct arl_report_run, duration_ms, ARL_COL_INT64, duration_null),
    ARL_COL_N(struct arl_report_run, exit_code, ARL_COL_INT, exit_null),
    ARL_COL(struct arl_report_run, host, ARL_COL_TEXT),
    ARL_COL(struct arl_report_run, isolation, ARL_COL_TEXT),
    ARL_COL(struct arl_report_run, notes, ARL_COL_TEXT),
    ARL_COL(struct arl_report_run, files, ARL_COL_TEXT),
    ARL_COL(struct arl_report_run, params, ARL_COL_TEXT),
    ARL_COL(struct arl_report_run, halted_by, ARL_COL_TEXT),
};
ARL_COLS_FIT(run_cols);

int arl_store_report_run(struct arl_store *s, int64_t run, struct arl_report_run *out,
                         struct arl_err *err)
{
	struct arl_report_run r = {0};
	struct arl_rows_query q;
	int rc;

	if (query_open(s, &q,
	               "SELECT name, status, started_at, duration_ms, exit_code, host, isolation,"
	               " notes, files, params, halted_by FROM runs WHERE id = ?1",
	               run_cols, ARL_NCOLS(run_cols), run, err) < 0 ||
	    (rc = arl_rows_one(s, &q, &r, err)) < 0)
		return -1;
	if (rc == 0)
		return arl_error(err, ARL_E_INVALID, "no run %lld", (long long)run);
	*out = r;
	return 0;
}

void arl_report_run_release(struct arl_report_run *r)
{
	arl_rows_free(run_cols, ARL_NCOLS(run_cols), r);
}

/* ---- durations and attempts ---- */

static const struct arl_col duration_cols[] = {
    ARL_COL(struct arl_report_duration, ms, ARL_COL_INT64),
    ARL_COL(struct arl_report_duration, state, ARL_COL_STATE),
};
ARL_COLS_FIT(duration_cols);
ARL_ROWS_CALLER(call_duration, arl_report_duration_fn, struct arl_report_duration)

int arl_store_report_durations(struct arl_store *s, int64_t run, arl_report_duration_fn fn,
                               void *arg, struct arl_err *err)
{
	struct arl_report_duration row;
	struct arl_rows_query q;

	if (query_open(s, &q,
	               "SELECT duration_ms AS ms, state FROM jobs WHERE run_id = ?1"
	               " AND duration_ms IS NOT NULL"
	               " AND state IN ('Succeeded', 'Failed', 'Cancelled') AND attempts > 0",
	               duration_cols, ARL_NCOLS(duration_cols), run, err) < 0)
		return -1;
	return arl_rows_each(s, &q, &row, call_duration, &fn, arg, err);
}

static const struct arl_col attempts_cols[] = {
    ARL_COL(struct arl_report_attempts, attempts, ARL_COL_INT64),
    ARL_COL(struct arl_report_attempts, state, ARL_COL_STATE),
    ARL_COL(struct arl_report_attempts, jobs, ARL_COL_INT64),
};
ARL_COLS_FIT(attempts_cols);
ARL_ROWS_CALLER(call_attempts, arl_report_attempts_fn, struct arl_report_attempts)

int arl_store_report_attempts(struct arl_store *s, int64_t run, arl_report_attempts_fn fn,
                              void *arg, struct arl_err *err)
{
	struct arl_report_attempts row;
	struct arl_rows_query q;

	if (query_open(s, &q,
	               "SELECT attempts, state, count(*) AS jobs FROM jobs WHERE run_id = ?1"
	               " AND attempts > 0 AND state IN ('Succeeded', 'Failed', 'Cancelled')"
	               " GROUP BY 1, 2",
	               attempts_cols, ARL_NCOLS(attempts_cols), run, err) < 0)
		return -1;
	return arl_rows_each(s, &q, &row, call_attempts, &fn, arg, err);
}

struct attempt_totals {
	int64_t attempts, succeeded;
};

static const struct arl_col attempt_totals_cols[] = {
    ARL_COL(struct attempt_totals, attempts, ARL_COL_INT64),
    ARL_COL(struct attempt_totals, succeeded, ARL_COL_INT64),
};
ARL_COLS_FIT(attempt_totals_cols);

int arl_store_report_attempt_totals(struct arl_store *s, int64_t run, uint64_t *attempts,
                                    uint64_t *succeeded, struct arl_err *err)
{
	struct attempt_totals t = {0};
	struct arl_rows_query q;

	if (query_open(s, &q,
	               "SELECT count(*) AS attempts, sum(a.state = 'Succeeded') AS succeeded"
	               " FROM attempts a JOIN jobs j ON j.id = a.job_id WHERE j.run_id = ?1",
	               attempt_totals_cols, ARL_NCOLS(attempt_totals_cols), run, err) < 0 ||
	    arl_rows_one(s, &q, &t, err) < 0)
		return -1;
	*attempts = (uint64_t)t.attempts;
	*succeeded = (uint64_t)t.succeeded;
	return 0;
}

static const struct arl_col retries_cols[] = {
    ARL_COL(struct arl_report_retries, cls, ARL_COL_TEXT),
    ARL_COL(struct arl_report_retries, retries, ARL_COL_INT64),
    ARL_COL(struct arl_report_retries, succeeded, ARL_COL_INT64),
    ARL_COL(struct arl_report_retries, failed, ARL_COL_INT64),
    ARL_COL(struct arl_report_retries, cancelled, ARL_COL_INT64),
};
ARL_COLS_FIT(retries_cols);
ARL_ROWS_CALLER(call_retries, arl_report_retries_fn, struct arl_report_retries)

int arl_store_report_retries(struct arl_store *s, int64_t run, arl_report_retries_fn fn, void *arg,
                             struct arl_err *err)
{
	struct arl_report_retries row;
	struct arl_rows_query q;

	if (query_open(
	        s, &q,
	        "SELECT coalesce(a.error_class, '-') AS cls, count(*) AS retries,"
	        " sum(j.state = 'Succeeded') AS succeeded, sum(j.state = 'Failed') AS failed,"
	        " sum(j.state = 'Cancelled') AS cancelled FROM attempts a"
	        " JOIN jobs j ON j.id = a.job_id WHERE j.run_id = ?1"
	        " AND a.number < j.attempts GROUP BY 1 ORDER BY 2 DESC",
	        retries_cols, ARL_NCOLS(retries_cols), run, err) < 0)
		return -1;
	return arl_rows_each(s, &q, &row, call_retries, &fn, arg, err);
}

/* ---- jobs ---- */

static const struct arl_col slow_cols[] = {
    ARL_COL(struct arl_report_slow_job, key, ARL_COL_TEXT),
    ARL_COL(struct arl_report_slow_job, state, ARL_COL_TEXT),
    ARL_COL(struct arl_report_slow_job, error_class, ARL_COL_TEXT),
    ARL_COL(struct arl_report_slow_job, duration_ms, ARL_COL_INT64),
    ARL_COL(struct arl_report_slow_job, attempts, ARL_COL_INT64),
    ARL_COL(struct arl_report_slow_job, pool, ARL_COL_TEXT),
};
ARL_COLS_FIT(slow_cols);
ARL_ROWS_CALLER(call_slow, arl_report_slow_fn, struct arl_report_slow_job)

int arl_store_report_slowest(struct arl_store *s, int64_t run, size_t limit, arl_report_slow_fn fn,
                             void *arg, struct arl_err *err)
{
	struct arl_report_slow_job row;
	struct arl_rows_query q;

	if (query_open(s, &q,
	               "SELECT key, state, error_class, duration_ms, attempts, pool FROM jobs"
	               " WHERE run_id = ?1 AND duration_ms IS NOT NULL AND attempts > 0"
	               " ORDER BY duration_ms DESC, key LIMIT ?2",
	               slow_cols, ARL_NCOLS(slow_cols), run, err) < 0)
		return -1;
	sqlite3_bind_int64(q.st, 2, (int64_t)limit);
	return arl_rows_each(s, &q, &row, call_slow, &fn, arg, err);
}

static const struct arl_col failed_cols[] = {
    ARL_COL(struct arl_report_failed_job, key, ARL_COL_TEXT),
    ARL_COL(struct arl_report_failed_job, error_class, ARL_COL_TEXT),
    ARL_COL_N(struct arl_report_failed_job, exit_code, ARL_COL_INT, exit_null),
    ARL_COL(struct arl_report_failed_job, attempts, ARL_COL_INT64),
    ARL_COL_N(struct arl_report_failed_job, duration_ms, ARL_COL_INT64, duration_null),
    ARL_COL(struct arl_report_failed_job, error, ARL_COL_TEXT),
    ARL_COL(struct arl_report_failed_job, stderr_tail, ARL_COL_TEXT),
    ARL_COL_N(struct arl_report_failed_job, carried_from, ARL_COL_INT64, carried_null),
};
ARL_COLS_FIT(failed_cols);
ARL_ROWS_CALLER(call_failed, arl_report_failed_fn, struct arl_report_failed_job)

int arl_store_report_failed(struct arl_store *s, int64_t run, size_t limit, size_t tail_bytes,
                            arl_report_failed_fn fn, void *arg, struct arl_err *err)
{
	struct arl_report_failed_job row;
	struct arl_rows_query q;

	/* f: the failed job, the run's own or the one a Skipped job stands for. */
	if (query_open(
	        s, &q,
	        "SELECT j.key AS key, f.error_class AS error_class, f.exit_code AS exit_code,"
	        " f.attempts AS attempts, f.duration_ms AS duration_ms, f.error AS error,"
	        " (SELECT substr(s.stderr, -?3) FROM attempts a"
	        "  JOIN steps s ON s.attempt_id = a.id WHERE a.job_id = f.id"
	        "  AND a.number = f.attempts AND s.stderr IS NOT NULL AND s.stderr != ''"
	        "  ORDER BY s.state = 'Failed' DESC, s.idx DESC LIMIT 1) AS stderr_tail,"
	        " CASE WHEN f.id != j.id THEN f.run_id END AS carried_from"
	        " FROM jobs j JOIN jobs f ON f.id = CASE j.state WHEN 'Skipped'"
	        " THEN j.skipped_from ELSE j.id END"
	        " WHERE j.run_id = ?1 AND j.state IN ('Failed', 'Skipped')"
	        " AND f.state = 'Failed' ORDER BY f.error_class, j.key LIMIT ?2",
	        failed_cols, ARL_NCOLS(failed_cols), run, err) < 0)
		return -1;
	sqlite3_bind_int64(q.st, 2, (int64_t)limit);
	sqlite3_bind_int64(q.st, 3, (int64_t)tail_bytes);
	return arl_rows_each(s, &q, &row, call_failed, &fn, arg, err);
}

/* ---- artifacts ---- */

#define ARTIFACTS_OF_RUN                                                                           \
	" FROM jobs j JOIN attempts t ON t.job_id = CASE j.state WHEN 'Skipped'"                   \
	" THEN j.skipped_from ELSE j.id END JOIN artifacts x ON x.attempt_id = t.id"               \
	" WHERE j.run_id = ?1"

static const struct arl_col artifact_cols[] = {
    ARL_COL(struct arl_report_artifact, key, ARL_COL_TEXT),
    ARL_COL(struct arl_report_artifact, attempt, ARL_COL_INT64),
    ARL_COL(struct arl_report_artifact, path, ARL_COL_TEXT),
    ARL_COL(struct arl_report_artifact, size, ARL_COL_INT64),
    ARL_COL(struct arl_report_artifact, sha256, ARL_COL_TEXT),
    ARL_COL(struct arl_report_artifact, error, ARL_COL_TEXT),
};
ARL_COLS_FIT(artifact_cols);
ARL_ROWS_CALLER(call_artifact, arl_report_artifact_fn, struct arl_report_artifact)

int arl_store_report_artifacts(struct arl_store *s, int64_t run, size_t limit,
                               arl_report_artifact_fn fn, void *arg, struct arl_err *err)
{
	struct arl_report_artifact row;
	struct arl_rows_query q;

	if (query_open(s, &q,
	               "SELECT j.key AS key, t.number AS attempt, x.path AS path, x.size AS size,"
	               " x.sha256 AS sha256, x.error AS error" ARTIFACTS_OF_RUN
	               " ORDER BY j.id, t.number, x.id LIMIT ?2",
	               artifact_cols, ARL_NCOLS(artifact_cols), run, err) < 0)
		return -1;
	sqlite3_bind_int64(q.st, 2, (int64_t)limit);
	return arl_rows_each(s, &q, &row, call_artifact, &fn, arg, err);
}

static const struct arl_col artifact_count_cols[] = {
    ARL_COL(struct arl_report_artifact_counts, rows, ARL_COL_INT64),
    ARL_COL(struct arl_report_artifact_counts, kept, ARL_COL_INT64),
    ARL_COL(struct arl_report_artifact_counts, kept_bytes, ARL_COL_INT64),
};
ARL_COLS_FIT(artifact_count_cols);

int arl_store_report_artifact_counts(struct arl_store *s, int64_t run,
                                     struct arl_report_artifact_counts *out, struct arl_err *err)
{
	struct arl_rows_query q;
	int rc;

	memset(out, 0, sizeof(*out));
	if (query_open(s, &q,
	               "SELECT count(*) AS rows, count(x.sha256) AS kept,"
	               " coalesce(sum(CASE WHEN x.sha256 IS NOT NULL THEN x.size END), 0)"
	               " AS kept_bytes" ARTIFACTS_OF_RUN,
	               artifact_count_cols, ARL_NCOLS(artifact_count_cols), run, err) < 0)
		return -1;
	rc = arl_rows_next(s, &q, out, err);
	arl_rows_close(&q);
	return rc < 0 ? -1 : 0;
}

/* ---- metrics ---- */

#define NUMERIC(v) "typeof(" v ") IN ('integer', 'real')"

static const struct arl_col metric_cols[] = {
    ARL_COL(struct arl_report_metric, name, ARL_COL_TEXT),
    ARL_COL(struct arl_report_metric, count, ARL_COL_INT64),
    ARL_COL(struct arl_report_metric, numeric, ARL_COL_INT64),
    ARL_COL(struct arl_report_metric, min, ARL_COL_DOUBLE),
    ARL_COL(struct arl_report_metric, max, ARL_COL_DOUBLE),
    ARL_COL(struct arl_report_metric, mean, ARL_COL_DOUBLE),
};
ARL_COLS_FIT(metric_cols);
ARL_ROWS_CALLER(call_metric, arl_report_metric_fn, struct arl_report_metric)

int arl_store_report_metrics(struct arl_store *s, int64_t run, arl_report_metric_fn fn, void *arg,
                             struct arl_err *err)
{
	struct arl_report_metric row;
	struct arl_rows_query q;

	if (query_open(
	        s, &q,
	        "SELECT m.name AS name, count(*) AS count, sum(" NUMERIC(
	            "m.value") ") AS numeric,"
	                       " min(CASE WHEN " NUMERIC(
	                           "m.value") " THEN m.value END) AS min,"
	                                      " max(CASE WHEN " NUMERIC(
	                                          "m.value") " THEN m.value END) AS max,"
	                                                     " avg(CASE WHEN " NUMERIC(
	                                                         "m.value") " THEN m.value END) AS "
	                                                                    "mean"
	                                                                    " FROM metrics m JOIN "
	                                                                    "jobs j ON j.id = "
	                                                                    "m.job_id WHERE "
	                                                                    "j.run_id = ?1"
	                                                                    " GROUP BY m.name "
	                                                                    "ORDER BY m.name",
	        metric_cols, ARL_NCOLS(metric_cols), run, err) < 0)
		return -1;
	return arl_rows_each(s, &q, &row, call_metric, &fn, arg, err);
}

struct metric_bin {
	int64_t bin, n;
};

static const struct arl_col metric_bin_cols[] = {
    ARL_COL(struct metric_bin, bin, ARL_COL_INT64),
    ARL_COL(struct metric_bin, n, ARL_COL_INT64),
};
ARL_COLS_FIT(metric_bin_cols);

int arl_store_report_metric_bins(struct arl_store *s, int64_t run, const char *name, double lo,
                                 double hi, size_t nbins, uint64_t *counts, struct arl_err *err)
{
	struct metric_bin row;
	struct arl_rows_query q;
	int rc;

	if (query_open(
	        s, &q,
	        "SELECT CASE WHEN ?3 <= ?2 THEN 0 ELSE min(CAST((m.value - ?2) * ?4 / (?3 - ?2)"
	        " AS INTEGER), ?4 - 1) END AS bin, count(*) AS n FROM metrics m"
	        " JOIN jobs j ON j.id = m.job_id WHERE j.run_id = ?1 AND m.name = ?5"
	        " AND " NUMERIC("m.value") " GROUP BY 1",
	        metric_bin_cols, ARL_NCOLS(metric_bin_cols), run, err) < 0)
		return -1;
	sqlite3_bind_double(q.st, 2, lo);
	sqlite3_bind_double(q.st, 3, hi);
	sqlite3_bind_int64(q.st, 4, (int64_t)nbins);
	sqlite3_bind_text(q.st, 5, name, -1, SQLITE_STATIC);
	while ((rc = arl_rows_next(s, &q, &row, err)) == 1) {
		if (row.bin >= 0 && (size_t)row.bin < nbins)
			counts[row.bin] += (uint64_t)row.n;
	}
	arl_rows_close(&q);
	return rc < 0 ? -1 : 0;
}

struct metric_value {
	double value;
};

static const struct arl_col metric_nth_cols[] = {
    ARL_COL(struct metric_value, value, ARL_COL_DOUBLE),
};
ARL_COLS_FIT(metric_nth_cols);

int arl_store_report_metric_nth(struct arl_store *s, int64_t run, const char *name, int64_t nth,
                                double *out, struct arl_err *err)
{
	struct metric_value row;
	struct arl_rows_query q;
	int rc;

	if (query_open(s, &q,
	               "SELECT m.value AS value FROM metrics m JOIN jobs j ON j.id = m.job_id"
	               " WHERE j.run_id = ?1 AND m.name = ?2 AND " NUMERIC(
	                   "m.value") " ORDER BY m.value LIMIT 1 OFFSET ?3",
	               metric_nth_cols, ARL_NCOLS(metric_nth_cols), run, err) < 0)
		return -1;
	sqlite3_bind_text(q.st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q.st, 3, nth);
	if ((rc = arl_rows_one(s, &q, &row, err)) == 1)
		*out = row.value;
	return rc;
}

static const struct arl_col metric_value_cols[] = {
    ARL_COL(struct arl_report_metric_value, value, ARL_COL_TEXT),
    ARL_COL(struct arl_report_metric_value, jobs, ARL_COL_INT64),
};
ARL_COLS_FIT(metric_value_cols);
ARL_ROWS_CALLER(call_metric_value, arl_report_value_fn, struct arl_report_metric_value)

int arl_store_report_metric_values(struct arl_store *s, int64_t run, const char *name, size_t limit,
                                   arl_report_value_fn fn, void *arg, struct arl_err *err)
{
	struct arl_report_metric_value row;
	struct arl_rows_query q;

	if (query_open(s, &q,
	               "SELECT CAST(m.value AS TEXT) AS value, count(*) AS jobs FROM metrics m"
	               " JOIN jobs j ON j.id = m.job_id WHERE j.run_id = ?1 AND m.name = ?2"
	               " GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?3",
	               metric_value_cols, ARL_NCOLS(metric_value_cols), run, err) < 0)
		return -1;
	sqlite3_bind_text(q.st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q.st, 3, (int64_t)limit);
	return arl_rows_each(s, &q, &row, call_metric_value, &fn, arg, err);
}

static const struct arl_col metric_error_cols[] = {
    ARL_COL(struct arl_report_metric_error, key, ARL_COL_TEXT),
    ARL_COL(struct arl_report_metric_error, step, ARL_COL_TEXT),
    ARL_COL(struct arl_report_metric_error, error, ARL_COL_TEXT),
    ARL_COL(struct arl_report_metric_error, total, ARL_COL_INT64),
};
ARL_COLS_FIT(metric_error_cols);
ARL_ROWS_CALLER(call_metric_error, arl_report_metric_error_fn, struct arl_report_metric_error)

int arl_store_report_metric_errors(struct arl_store *s, int64_t run, size_t limit,
                                   arl_report_metric_error_fn fn, void *arg, struct arl_err *err)
{
	struct arl_report_metric_error row;
	struct arl_rows_query q;

	if (query_open(s, &q,
	               "SELECT j.key AS key, s.name AS step, s.metrics_error AS error,"
	               " count(*) OVER () AS total FROM jobs j"
	               " JOIN attempts a ON a.job_id = j.id AND a.number = j.attempts"
	               " JOIN steps s ON s.attempt_id = a.id"
	               " WHERE j.run_id = ?1 AND s.metrics_error IS NOT NULL ORDER BY j.key, s.idx"
	               " LIMIT ?2",
	               metric_error_cols, ARL_NCOLS(metric_error_cols), run, err) < 0)
		return -1;
	sqlite3_bind_int64(q.st, 2, (int64_t)limit);
	return arl_rows_each(s, &q, &row, call_metric_error, &fn, arg, err);
}
