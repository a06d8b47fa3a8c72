/* Pruning runs (store_prune.h). */
#include "store/store_prune.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

#include "store/store.h"
#include "store/store_internal.h"
#include "store/store_rows.h"
#include "util.h"
#include "banned.h"

/*
 * The runs to delete: beyond the newest ?1 of their name, or started before ?2; never one
 * still running (opening the store already marked dead ones). Newest first: whether a kept
 * run stands on a run is known only once the newer runs, which are the only ones that can,
 * are decided.
 */
static const char candidates_sql[] =
    "SELECT id, name, started_at, jobs_total FROM runs r WHERE status != 'running'"
    " AND (?3 IS NULL OR name = ?3) AND ("
    "  (?1 >= 0 AND (SELECT count(*) FROM runs n WHERE n.name = r.name AND n.id > r.id) >= ?1)"
    "  OR (?2 IS NOT NULL AND started_at < ?2)) ORDER BY id DESC";
/*
 * A run whose sessions are still recorded (leases: a killed runner's, gc has not deleted
 * them) stays: its leases would go with it (ON DELETE CASCADE) and gc never see them again.
 */
static const char leased_sql[] = "SELECT 1 FROM leases WHERE run_id = ?1 LIMIT 1";
/* A run whose results a run that stays stands on stays, or --resume would redo them. */
static const char stands_sql[] = "SELECT 1 FROM jobs t JOIN jobs k ON k.skipped_from = t.id"
                                 " WHERE t.run_id = ?1 AND k.run_id != ?1 LIMIT 1";

static const struct arl_col run_cols[] = {
    ARL_COL(struct arl_pruned_run, id, ARL_COL_INT64),
    ARL_COL(struct arl_pruned_run, name, ARL_COL_TEXT),
    ARL_COL(struct arl_pruned_run, started_at, ARL_COL_TEXT),
    ARL_COL(struct arl_pruned_run, jobs_total, ARL_COL_INT64),
};
#define NRUN_COLS ARL_NCOLS(run_cols)
ARL_COLS_FIT(run_cols);

static int exec(struct arl_store *s, const char *sql, const char *what, struct arl_err *err)
{
	sqlite3 *db = arl_store_db(s);

	if (sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK)
		return 0;
	return arl_error(err, ARL_E_DB, "%s: %s", what ? what : sql, sqlite3_errmsg(db));
}

int arl_store_prune(struct arl_store *s, const struct arl_prune_opts *o, arl_prune_fn fn, void *arg,
                    int64_t *runs, int64_t *jobs, struct arl_err *err)
{
	struct arl_rows_query q = {0};
	sqlite3_stmt *used = NULL, *leased = NULL;
	struct arl_pruned_run *cand = NULL;
	size_t ncand = 0, cap = 0;
	int64_t nruns = 0, njobs = 0;
	int ret = -1;
	bool in_tx = false;

	if (arl_rows_open(&q, s, candidates_sql, run_cols, NRUN_COLS, err) < 0 ||
	    arl_store_prepare(s, stands_sql, &used, NULL, err) < 0 ||
	    arl_store_prepare(s, leased_sql, &leased, NULL, err) < 0)
		goto out;
	sqlite3_bind_int64(q.st, 1, o->keep);
	if (o->before)
		sqlite3_bind_text(q.st, 2, o->before, -1, SQLITE_STATIC);
	if (o->name)
		sqlite3_bind_text(q.st, 3, o->name, -1, SQLITE_STATIC);
	if (exec(s, "BEGIN IMMEDIATE", "cannot start a transaction", err) < 0)
		goto out;
	in_tx = true;
	for (;;) {
		struct arl_pruned_run run = {0};
		int rc = arl_rows_next(s, &q, &run, err);

		if (rc < 0)
			goto out;
		if (rc == 0)
			break;
		ARL_GROW(cand, cap, ncand + 1);
		cand[ncand++] = run;
	}
	for (size_t i = 0; i < ncand; i++) {
		char del[96];
		int rc;

		sqlite3_reset(used);
		sqlite3_bind_int64(used, 1, cand[i].id);
		if ((rc = arl_store_step(s, used, err)) < 0)
			goto out;
		if (rc == 1)
			continue;
		sqlite3_reset(leased);
		sqlite3_bind_int64(leased, 1, cand[i].id);
		if ((rc = arl_store_step(s, leased, err)) < 0)
			goto out;
		if (rc == 1) {
			cand[i].leased = true;
			fn(arg, &cand[i]);
			continue;
		}
		nruns++;
		njobs += cand[i].jobs_total;
		fn(arg, &cand[i]);
		/* Attempts, steps and metrics go by ON DELETE CASCADE. */
		snprintf(del, sizeof(del), "DELETE FROM runs WHERE id = %lld",
		         (long long)cand[i].id);
		if (exec(s, del, NULL, err) < 0)
			goto out;
	}
	arl_rows_close(&q);
	sqlite3_finalize(used);
	sqlite3_finalize(leased);
	used = leased = NULL;
	if (exec(s, o->dry_run ? "ROLLBACK" : "COMMIT", "cannot commit", err) < 0)
		goto out;
	in_tx = false;
	if (!o->dry_run && nruns &&
	    (exec(s, "VACUUM", "cannot reclaim space", err) < 0 ||
	     exec(s, "PRAGMA wal_checkpoint(TRUNCATE)", "cannot reclaim space", err) < 0))
		goto out;
	*runs = nruns;
	*jobs = njobs;
	ret = 0;
out:
	if (in_tx)
		sqlite3_exec(arl_store_db(s), "ROLLBACK", NULL, NULL, NULL);
	arl_rows_close(&q);
	sqlite3_finalize(used);
	sqlite3_finalize(leased);
	for (size_t i = 0; i < ncand; i++)
		arl_rows_free(run_cols, NRUN_COLS, &cand[i]);
	free(cand);
	return ret;
}
