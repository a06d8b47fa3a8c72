/* The run readers (store_runs.h). */
#include "store/store_runs.h"

#include <sqlite3.h>
#include <stddef.h>

#include "store/store.h"
#include "store/store_internal.h"
#include "store/store_rows.h"
#include "banned.h"

/* clang-format off */
#define RUN_COLS(duration)                                                                         \
	"SELECT id, name, status, started_at, finished_at, " duration " AS duration_ms,"           \
	" jobs_total, jobs_succeeded, jobs_failed, jobs_skipped, jobs_cancelled, exit_code,"       \
	" files, host, pid, isolation, notes, params,"                                             \
	" " ARL_SQL_RUN_CARRIED("Failed") " AS carried_failed,"                                    \
	" " ARL_SQL_RUN_CARRIED("Cancelled") " AS carried_cancelled FROM runs"

static const char run_get_sql[] = RUN_COLS("duration_ms") " WHERE id = ?1";
/* Elapsed time of a run still going, so `runs` shows that it is alive and for how long. */
static const char runs_sql[] =
	RUN_COLS("coalesce(duration_ms, CASE WHEN status = 'running' THEN"
		 " CAST(round((julianday('now') - julianday(started_at)) * 86400000) AS INTEGER) END)")
	" ORDER BY id DESC LIMIT ?1";
/* clang-format on */

#define R(field, type)        ARL_COL(struct arl_run_view, field, type)
#define RN(field, type, flag) ARL_COL_N(struct arl_run_view, field, type, flag)
static const struct arl_col run_cols[] = {
    R(id, ARL_COL_INT64),
    R(name, ARL_COL_TEXT),
    R(status, ARL_COL_TEXT),
    R(started_at, ARL_COL_TEXT),
    R(finished_at, ARL_COL_TEXT),
    RN(duration_ms, ARL_COL_INT64, duration_null),
    R(jobs_total, ARL_COL_INT64),
    R(jobs_succeeded, ARL_COL_INT64),
    R(jobs_failed, ARL_COL_INT64),
    R(jobs_skipped, ARL_COL_INT64),
    R(jobs_cancelled, ARL_COL_INT64),
    RN(exit_code, ARL_COL_INT64, exit_null),
    R(files, ARL_COL_TEXT),
    R(host, ARL_COL_TEXT),
    RN(pid, ARL_COL_INT64, pid_null),
    R(isolation, ARL_COL_TEXT),
    R(notes, ARL_COL_TEXT),
    R(params, ARL_COL_TEXT),
    R(carried_failed, ARL_COL_INT64),
    R(carried_cancelled, ARL_COL_INT64),
};
#undef R
#undef RN
#define NRUN_COLS ARL_NCOLS(run_cols)
ARL_COLS_FIT(run_cols);

void arl_run_view_release(struct arl_run_view *r)
{
	arl_rows_free(run_cols, NRUN_COLS, r);
}

int arl_run_get(struct arl_store *s, int64_t run_id, struct arl_run_view *out, struct arl_err *err)
{
	struct arl_rows_query q;

	if (arl_rows_open(&q, s, run_get_sql, run_cols, NRUN_COLS, err) < 0)
		return -1;
	sqlite3_bind_int64(q.st, 1, run_id);
	return arl_rows_one(s, &q, out, err);
}

ARL_ROWS_CALLER(call_run, arl_run_fn, struct arl_run_view)

int arl_runs_each(struct arl_store *s, int64_t limit, arl_run_fn fn, void *arg, struct arl_err *err)
{
	struct arl_rows_query q;
	struct arl_run_view r = {0};

	if (arl_rows_open(&q, s, runs_sql, run_cols, NRUN_COLS, err) < 0)
		return -1;
	q.borrowed = true; /* each row is the callback's for the call only */
	sqlite3_bind_int64(q.st, 1, limit ? limit : -1); /* LIMIT -1: no limit */
	return arl_rows_each(s, &q, &r, call_run, &fn, arg, err);
}
