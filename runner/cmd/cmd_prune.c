/* `arl-batch prune`: delete old runs with everything under them, then reclaim the space. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "cmd/cli.h"
#include "cmd/options.h"
#include "err.h"
#include "store/store.h"
#include "util.h"
#include "banned.h"

static const char *const synopsis[] = {
    "prune [--db PATH] (--keep N | --older-than DURATION) [--name NAME]", "      [--dry-run]",
    NULL};

static const char about[] =
    "Deletes old runs with their jobs, attempts, steps and metrics, then reclaims the\n"
    "space (VACUUM). A run still in progress is never deleted, nor one\n"
    "whose results a later --resume run stands on (its Skipped jobs point at them).\n";

static long long file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (long long)st.st_size : 0;
}

int cmd_prune(int argc, char **argv)
{
	const char *db_opt = NULL, *name = NULL;
	int64_t keep = -1, older_ms = -1;
	int n, dry = 0, ret = ARL_EXIT_INCOMPLETE;
	struct arl_store *s = NULL;
	struct arl_err err = ARL_ERR_INIT;
	sqlite3_stmt *st = NULL;
	char cutoff[32] = "";
	long long before, after, runs = 0, jobs = 0;
	const char *sel, *stands;
	sqlite3_stmt *used = NULL;
	struct {
		int64_t id, jobs;
		char *name, *started;
	} *cand = NULL;
	size_t ncand = 0, cap = 0;
	const struct arl_option opts[] = {
	    ARL_OPT_INT(0, "keep", &keep, 0, INT32_MAX, "N",
	                "keep the N newest runs of each run name"),
	    ARL_OPT_DURATION(0, "older-than", &older_ms, 0, INT64_MAX, "D",
	                     "delete runs started more than D ago (e.g. 30d is not a\n"
	                     "duration: use 720h)"),
	    ARL_OPT_STRING(0, "name", &name, "NAME", "only runs of this name"),
	    ARL_OPT_FLAG('n', "dry-run", &dry, "list what would be deleted"),
	    ARL_OPT_STRING(0, "db", &db_opt, "PATH",
	                   "results database (default $ARL_BATCH_DB, else ./arl-batch.db)"),
	    ARL_OPT_END(),
	};
	const struct arl_command_usage u = {
	    .name = "prune", .synopsis = synopsis, .about = about, .options = opts};

	if ((n = arl_options_parse(&u, argc, argv, 0, &ret)) < 0)
		return ret;
	if (n > 0)
		return arl_options_error(&u, "unexpected argument '%s'", argv[0]);
	if (keep < 0 && older_ms < 0)
		return arl_options_error(&u, "which runs? give --keep N or --older-than DURATION");
	ret = ARL_EXIT_INCOMPLETE;
	if (older_ms >= 0)
		arl_rfc3339(arl_wall_ms() - older_ms, cutoff);
	if (arl_store_open(&s, arl_cli_db_path(db_opt), ARL_STORE_NOCREATE, &err) < 0)
		goto fail;
	before = file_size(arl_store_path(s));
	/*
	 * The runs to delete: beyond the newest @keep of their name, or started before the
	 * cutoff; never one still running (opening the store already marked dead ones). Newest
	 * first: whether a kept run stands on a run is known only once the newer runs, which are
	 * the only ones that can, are decided, so one prune reaches the fixed point.
	 */
	sel = "SELECT id, name, started_at, jobs_total FROM runs r WHERE status != 'running'"
	      " AND (?3 IS NULL OR name = ?3) AND ("
	      "  (?1 >= 0 AND (SELECT count(*) FROM runs n WHERE n.name = r.name AND n.id > r.id) "
	      ">= ?1)"
	      "  OR (?2 IS NOT NULL AND started_at < ?2)) ORDER BY id DESC";
	/* A run whose results a run that stays stands on stays, or --resume would redo them. */
	stands = "SELECT 1 FROM jobs t JOIN jobs k ON k.skipped_from = t.id"
	         " WHERE t.run_id = ?1 AND k.run_id != ?1 LIMIT 1";
	if (arl_store_prepare(s, sel, &st, NULL, &err) < 0 ||
	    arl_store_prepare(s, stands, &used, NULL, &err) < 0)
		goto fail;
	sqlite3_bind_int64(st, 1, keep);
	if (cutoff[0])
		sqlite3_bind_text(st, 2, cutoff, -1, SQLITE_STATIC);
	if (name)
		sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
	if (sqlite3_exec(arl_store_db(s), "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		arl_error(&err, ARL_E_DB, "cannot start a transaction: %s",
		          sqlite3_errmsg(arl_store_db(s)));
		goto fail;
	}
	for (;;) {
		int rc = arl_store_step(s, st, &err);

		if (rc < 0)
			goto rollback;
		if (rc == 0)
			break;
		ARL_GROW(cand, cap, ncand + 1);
		cand[ncand].id = sqlite3_column_int64(st, 0);
		cand[ncand].jobs = sqlite3_column_int64(st, 3);
		cand[ncand].name = arl_xstrdup((const char *)sqlite3_column_text(st, 1));
		cand[ncand++].started = arl_xstrdup((const char *)sqlite3_column_text(st, 2));
	}
	/* Deleted even for --dry-run (rolled back below), so that it lists the same runs. */
	for (size_t i = 0; i < ncand; i++) {
		char del[96];
		int rc;

		sqlite3_reset(used);
		sqlite3_bind_int64(used, 1, cand[i].id);
		if ((rc = arl_store_step(s, used, &err)) < 0)
			goto rollback;
		if (rc == 1)
			continue;
		runs++;
		jobs += cand[i].jobs;
		printf("%s run %lld '%s' started %s (%lld jobs)\n",
		       dry ? "would delete" : "deleting", (long long)cand[i].id, cand[i].name,
		       cand[i].started, (long long)cand[i].jobs);
		/* Attempts, steps and metrics go by ON DELETE CASCADE. */
		snprintf(del, sizeof(del), "DELETE FROM runs WHERE id = %lld",
		         (long long)cand[i].id);
		if (sqlite3_exec(arl_store_db(s), del, NULL, NULL, NULL) != SQLITE_OK) {
			arl_error(&err, ARL_E_DB, "%s: %s", del, sqlite3_errmsg(arl_store_db(s)));
			goto rollback;
		}
	}
	sqlite3_finalize(st);
	st = NULL;
	sqlite3_finalize(used);
	used = NULL;
	if (sqlite3_exec(arl_store_db(s), dry ? "ROLLBACK" : "COMMIT", NULL, NULL, NULL) !=
	    SQLITE_OK) {
		arl_error(&err, ARL_E_DB, "cannot commit: %s", sqlite3_errmsg(arl_store_db(s)));
		goto rollback;
	}
	if (!dry && runs &&
	    (sqlite3_exec(arl_store_db(s), "VACUUM", NULL, NULL, NULL) != SQLITE_OK ||
	     sqlite3_exec(arl_store_db(s), "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL) !=
	         SQLITE_OK)) {
		arl_error(&err, ARL_E_DB, "cannot reclaim space: %s",
		          sqlite3_errmsg(arl_store_db(s)));
		goto fail;
	}
	after = file_size(arl_store_path(s));
	printf("%s %lld run%s (%lld jobs); database %lld -> %lld bytes\n",
	       dry ? "would prune" : "pruned", runs, runs == 1 ? "" : "s", jobs, before, after);
	ret = 0;
	goto out;
rollback:
	sqlite3_exec(arl_store_db(s), "ROLLBACK", NULL, NULL, NULL);
fail:
	fprintf(stderr, "arl-batch: %s\n", err.msg);
out:
	sqlite3_finalize(st);
	sqlite3_finalize(used);
	for (size_t i = 0; i < ncand; i++) {
		free(cand[i].name);
		free(cand[i].started);
	}
	free(cand);
	arl_store_close(s);
	return ret;
}
