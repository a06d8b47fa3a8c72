/* `arl-batch prune`: delete old runs with everything under them, then reclaim the space. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd/cli.h"
#include "cmd/options.h"
#include "err.h"
#include "log.h"
#include "store/store.h"
#include "store/store_artifacts.h"
#include "store/store_prune.h"
#include "util.h"
#include "banned.h"

static const char *const synopsis[] = {
    "prune [--db PATH] (--keep N | --older-than DURATION) [--name NAME]", "      [--dry-run]",
    NULL};

static const char about[] =
    "Deletes old runs with their jobs, attempts, steps and metrics, then reclaims the\n"
    "space (VACUUM). A run still in progress is never deleted, nor one\n"
    "whose results a later --resume run stands on (its Skipped jobs point at them),\n"
    "nor one whose sessions are still recorded (leases: run gc --backend gateway first).\n";

/* --older-than: a duration ("720h", "90m"), or whole days or weeks ("30d", "2w"). */
static int parse_age(const struct arl_option *o, const char *arg, struct arl_err *err)
{
	const int64_t day = (int64_t)24 * 3600 * 1000;
	int64_t *ms = o->value, n, v = -1;
	size_t len = strlen(arg);
	char unit = len ? arg[len - 1] : 0;

	if ((unit == 'd' || unit == 'w') && len > 1) {
		char *num = arl_xstrndup(arg, len - 1);
		int64_t per = unit == 'd' ? day : 7 * day;

		if (arl_parse_i64(num, 0, ARL_OPT_DURATION_MAX / per, &n) == 0)
			v = n * per;
		free(num);
	} else if (arl_parse_duration(arg, &n) == 0 && n <= ARL_OPT_DURATION_MAX) {
		v = n;
	}
	if (v < 0)
		return arl_error(err, ARL_E_USAGE,
		                 "expected a duration from 0s to 876000h (720h, 90m) or whole days"
		                 " or weeks (30d, 2w)");
	*ms = v;
	return 0;
}

static long long file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (long long)st.st_size : 0;
}

static void print_run(void *arg, const struct arl_pruned_run *r)
{
	const int *dry = arg;

	if (r->leased) {
		printf("keeping run %lld '%s' started %s: it still has sessions to delete "
		       "(gc --backend gateway)\n",
		       (long long)r->id, r->name, r->started_at);
		return;
	}
	printf("%s run %lld '%s' started %s (%lld jobs)\n", *dry ? "would delete" : "deleting",
	       (long long)r->id, r->name, r->started_at, (long long)r->jobs_total);
}

int cmd_prune(int argc, char **argv)
{
	const char *db_opt = NULL, *name = NULL;
	int64_t keep = -1, older_ms = -1;
	int n, dry = 0, ret = ARL_EXIT_INCOMPLETE;
	struct arl_store *s = NULL;
	struct arl_err err = ARL_ERR_INIT;
	char cutoff[32] = "";
	long long before, after;
	int64_t runs = 0, jobs = 0, files = 0, file_bytes = 0;
	struct arl_prune_opts po;
	const struct arl_option opts[] = {
	    ARL_OPT_INT(0, "keep", &keep, 0, INT32_MAX, "N",
	                "keep the N newest runs of each run name"),
	    ARL_OPT_CALLBACK(0, "older-than", &older_ms, parse_age, "D",
	                     "delete runs started more than D ago: 720h, 30d, 2w"),
	    ARL_OPT_STRING(0, "name", &name, "NAME", "only runs of this name"),
	    ARL_OPT_FLAG('n', "dry-run", &dry, "list what would be deleted"),
	    ARL_OPT_DB(&db_opt),
	    ARL_OPT_END(),
	};
	const struct arl_command_usage u = {
	    .name = "prune", .synopsis = synopsis, .about = about, .options = opts};

	if ((n = arl_options_parse(&u, argc, argv, 0, &ret)) < 0)
		return ret;
	if (n > 0)
		return arl_cli_unexpected(&u, argv[0]);
	if (keep < 0 && older_ms < 0)
		return arl_options_error(&u, "which runs? give --keep N or --older-than DURATION");
	ret = ARL_EXIT_INCOMPLETE;
	if (older_ms >= 0)
		arl_rfc3339(arl_wall_ms() - older_ms, cutoff);
	if (arl_store_open(&s, arl_cli_db_path(db_opt), ARL_STORE_NOCREATE, &err) < 0)
		goto fail;
	before = file_size(arl_store_path(s));
	po.keep = keep;
	po.before = cutoff[0] ? cutoff : NULL;
	po.name = name;
	po.dry_run = dry != 0;
	if (arl_store_prune(s, &po, print_run, &dry, &runs, &jobs, &err) < 0)
		goto fail;
	/* After the commit: a file goes only once no row can name it any more. */
	if (!dry && arl_artifacts_sweep(s, &files, &file_bytes, &err) < 0)
		goto fail;
	after = file_size(arl_store_path(s));
	printf("%s %lld run%s (%lld jobs); database %lld -> %lld bytes\n",
	       dry ? "would prune" : "pruned", (long long)runs, runs == 1 ? "" : "s",
	       (long long)jobs, before, after);
	if (files)
		printf("deleted %lld stored artifact%s (%lld bytes)\n", (long long)files,
		       files == 1 ? "" : "s", (long long)file_bytes);
	ret = 0;
	goto out;
fail:
	arl_log_err(NULL, &err);
out:
	arl_store_close(s);
	return ret;
}
