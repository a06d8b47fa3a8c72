/*
 * The two runs' jobs are read as two key-ordered streams and merged, so a comparison of two
 * runs of 100 000 jobs holds one row of each at a time.
 */
#include "store/store_diff.h"

#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"
#include "store/store_rows.h"
#include "util.h"
#include "banned.h"

/* Skipped jobs stand for the result they point at; a Skipped with none counts as passed. */
static const char job_sql[] =
    "SELECT j.key AS key,"
    " coalesce(s.state, CASE j.state WHEN 'Skipped' THEN 'Succeeded' ELSE j.state END) AS state,"
    " coalesce(s.error_class, j.error_class) AS cls"
    " FROM jobs j LEFT JOIN jobs s ON j.state = 'Skipped' AND s.id = j.skipped_from"
    " WHERE j.run_id = ?1 ORDER BY j.key";

struct side_row {
	char *key;
	enum arl_state state;
	enum arl_class cls;
};

static const struct arl_col side_cols[] = {
    ARL_COL(struct side_row, key, ARL_COL_TEXT),
    ARL_COL(struct side_row, state, ARL_COL_STATE),
    ARL_COL(struct side_row, cls, ARL_COL_CLASS),
};

/* One run's jobs, in key order; rc is 1 while row holds a row. */
struct side {
	struct arl_rows_query q;
	struct side_row row;
	int rc;
};

static int side_next(struct arl_store *s, struct side *d, struct arl_err *err)
{
	arl_rows_free(side_cols, ARL_NCOLS(side_cols), &d->row);
	return d->rc = arl_rows_next(s, &d->q, &d->row, err);
}

static int side_open(struct arl_store *s, int64_t run, struct side *d, struct arl_err *err)
{
	if (arl_rows_open(&d->q, s, job_sql, side_cols, ARL_NCOLS(side_cols), err) < 0)
		return -1;
	sqlite3_bind_int64(d->q.st, 1, run);
	return side_next(s, d, err) < 0 ? -1 : 0;
}

static void side_close(struct side *d)
{
	arl_rows_free(side_cols, ARL_NCOLS(side_cols), &d->row);
	arl_rows_close(&d->q);
}

int arl_store_diff_jobs(struct arl_store *s, int64_t run_a, int64_t run_b, arl_diff_job_fn fn,
                        void *arg, struct arl_err *err)
{
	struct side a = {0}, b = {0};
	int ret = -1;

	if (side_open(s, run_a, &a, err) < 0 || side_open(s, run_b, &b, err) < 0)
		goto out;
	while (a.rc == 1 || b.rc == 1) {
		/* ORDER BY uses BINARY collation: byte order, as strcmp on NUL-free text. */
		int c = a.rc != 1 ? 1 : b.rc != 1 ? -1 : strcmp(a.row.key, b.row.key);
		struct arl_diff_job j = {0};

		if (c <= 0) {
			j.key = a.row.key;
			j.in_a = true;
			j.state_a = a.row.state;
			j.cls_a = a.row.cls;
		}
		if (c >= 0) {
			j.key = b.row.key;
			j.in_b = true;
			j.state_b = b.row.state;
			j.cls_b = b.row.cls;
		}
		if (fn(arg, &j, err) < 0)
			goto out;
		if ((c <= 0 && side_next(s, &a, err) < 0) || (c >= 0 && side_next(s, &b, err) < 0))
			goto out;
	}
	ret = 0;
out:
	side_close(&a);
	side_close(&b);
	return ret;
}

/* A Skipped job's metrics are those of the job whose result stands for it. */
static const char mean_sql[] =
    "SELECT m.name AS name, avg(m.value) AS mean, count(*) AS count FROM jobs j"
    " JOIN metrics m ON m.job_id ="
    " CASE WHEN j.state = 'Skipped' AND j.skipped_from IS NOT NULL THEN j.skipped_from"
    " ELSE j.id END"
    " WHERE j.run_id = ?1 AND typeof(m.value) IN ('integer', 'real') GROUP BY m.name";

static const struct arl_col mean_cols[] = {
    ARL_COL(struct arl_diff_metric_mean, name, ARL_COL_TEXT),
    ARL_COL(struct arl_diff_metric_mean, mean, ARL_COL_DOUBLE),
    ARL_COL(struct arl_diff_metric_mean, count, ARL_COL_INT64),
};

ARL_ROWS_CALLER(call_mean, arl_diff_mean_fn, struct arl_diff_metric_mean)

int arl_store_diff_metric_means(struct arl_store *s, int64_t run, arl_diff_mean_fn fn, void *arg,
                                struct arl_err *err)
{
	struct arl_diff_metric_mean row = {0};
	struct arl_rows_query q;

	if (arl_rows_open(&q, s, mean_sql, mean_cols, ARL_NCOLS(mean_cols), err) < 0)
		return -1;
	sqlite3_bind_int64(q.st, 1, run);
	return arl_rows_each(s, &q, &row, call_mean, &fn, arg, err);
}

#define JOB_METRIC_SQL(order)                                                                      \
	"SELECT a.key AS key, ma.name AS name, ma.value AS a, mb.value AS b FROM jobs a"           \
	" JOIN jobs b ON b.key = a.key AND b.run_id = ?2"                                          \
	" JOIN metrics ma ON ma.job_id = a.id JOIN metrics mb ON mb.job_id = b.id"                 \
	" AND mb.name = ma.name WHERE a.run_id = ?1"                                               \
	" AND typeof(ma.value) IN ('integer', 'real') AND typeof(mb.value) IN ('integer', 'real')" \
	" AND ma.value != mb.value ORDER BY " order

static const struct arl_col job_metric_cols[] = {
    ARL_COL(struct arl_diff_job_metric, key, ARL_COL_TEXT),
    ARL_COL(struct arl_diff_job_metric, name, ARL_COL_TEXT),
    ARL_COL(struct arl_diff_job_metric, a, ARL_COL_DOUBLE),
    ARL_COL(struct arl_diff_job_metric, b, ARL_COL_DOUBLE),
};

ARL_ROWS_CALLER(call_job_metric, arl_diff_job_metric_fn, struct arl_diff_job_metric)

int arl_store_diff_job_metrics(struct arl_store *s, int64_t run_a, int64_t run_b, size_t largest,
                               arl_diff_job_metric_fn fn, void *arg, struct arl_err *err)
{
	struct arl_diff_job_metric row = {0};
	struct arl_rows_query q;

	if (arl_rows_open(&q, s,
	                  largest ? JOB_METRIC_SQL("abs(mb.value - ma.value) DESC, a.key LIMIT ?3")
	                          : JOB_METRIC_SQL("a.key, ma.name"),
	                  job_metric_cols, ARL_NCOLS(job_metric_cols), err) < 0)
		return -1;
	sqlite3_bind_int64(q.st, 1, run_a);
	sqlite3_bind_int64(q.st, 2, run_b);
	if (largest)
		sqlite3_bind_int64(q.st, 3, (int64_t)largest);
	return arl_rows_each(s, &q, &row, call_job_metric, &fn, arg, err);
}

struct run_name {
	char *name;
};

static const struct arl_col run_name_cols[] = {ARL_COL(struct run_name, name, ARL_COL_TEXT)};

int arl_store_diff_run_name(struct arl_store *s, int64_t id, char **name, struct arl_err *err)
{
	struct run_name row = {0};
	struct arl_rows_query q;
	int rc;

	if (arl_rows_open(&q, s, "SELECT name FROM runs WHERE id = ?1", run_name_cols,
	                  ARL_NCOLS(run_name_cols), err) < 0)
		return -1;
	sqlite3_bind_int64(q.st, 1, id);
	if ((rc = arl_rows_one(s, &q, &row, err)) == 1) {
		*name = row.name;
		rc = row.name ? 1 : 0;
	}
	return rc;
}

struct run_before {
	int64_t id;
	bool none;
};

static const struct arl_col run_before_cols[] = {
    ARL_COL_N(struct run_before, id, ARL_COL_INT64, none)};

int arl_store_diff_run_before(struct arl_store *s, const char *name, int64_t below, int64_t *id,
                              struct arl_err *err)
{
	struct run_before row = {0};
	struct arl_rows_query q;
	int rc;

	if (arl_rows_open(&q, s, "SELECT max(id) AS id FROM runs WHERE name = ?1 AND id < ?2",
	                  run_before_cols, ARL_NCOLS(run_before_cols), err) < 0)
		return -1;
	sqlite3_bind_text(q.st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q.st, 2, below);
	if ((rc = arl_rows_one(s, &q, &row, err)) == 1) {
		if (row.none)
			rc = 0;
		else
			*id = row.id;
	}
	return rc;
}
