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
	" files, host, pid, isolation, notes,"                                                     \
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
    R(carried_failed, ARL_COL_INT64),
    R(carried_cancelled, ARL_COL_INT64),
};
#undef R
#undef RN
#define NRUN_COLS (sizeof(run_cols) / sizeof(run_cols[0]))

void arl_run_view_release(struct arl_run_view *r)
{
	arl_rows_free(run_cols, NRUN_COLS, r);
}

/* Prepares @sql with the run columns found; the caller binds, steps and finalizes. */
static sqlite3_stmt *prepare(struct arl_store *s, const char *sql, int *idx, struct arl_err *err)
{
	sqlite3_stmt *st = NULL;

	if (arl_store_prepare(s, sql, &st, NULL, err) < 0 ||
	    arl_rows_bind(st, run_cols, NRUN_COLS, idx, err) < 0) {
		sqlite3_finalize(st);
		return NULL;
	}
	return st;
}

int arl_run_get(struct arl_store *s, int64_t run_id, struct arl_run_view *out, struct arl_err *err)
{
	int idx[NRUN_COLS], rc;
	sqlite3_stmt *st = prepare(s, run_get_sql, idx, err);

	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, run_id);
	rc = arl_store_step(s, st, err);
	if (rc == 1)
		arl_rows_read(st, run_cols, NRUN_COLS, idx, out);
	sqlite3_finalize(st);
	return rc;
}

int arl_runs_each(struct arl_store *s, int64_t limit, arl_run_fn fn, void *arg, struct arl_err *err)
{
	int idx[NRUN_COLS], rc;
	sqlite3_stmt *st = prepare(s, runs_sql, idx, err);
	struct arl_run_view r = {0};

	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, limit ? limit : -1); /* LIMIT -1: no limit */
	while ((rc = arl_store_step(s, st, err)) == 1) {
		arl_rows_read_borrowed(st, run_cols, NRUN_COLS, idx, &r);
		rc = fn(arg, &r, err);
		if (rc < 0)
			break;
	}
	sqlite3_finalize(st);
	return rc < 0 ? -1 : 0;
}
