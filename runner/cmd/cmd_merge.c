/* `arl-batch merge`: the runs of several results databases (shards) into one. */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/cli.h"
#include "cmd/options.h"
#include "err.h"
#include "log.h"
#include "store/store.h"
#include "store/store_merge.h"
#include "util.h"
#include "banned.h"

static const char *const synopsis[] = {
    "merge (-o NEW.db | --into DB) [--prefer newest] [--window DURATION] INPUT.db...", NULL};

static const char about[] =
    "Merges the runs of several results databases (e.g. one per --shard I/N machine)\n"
    "into one. An input run joins the output run of the same name and parameters whose\n"
    "time range overlaps its own (widened by --window), else becomes a run of its own.\n"
    "A job key that would appear twice in one run is refused, naming the keys, unless\n"
    "--prefer newest keeps the result that finished last. A job already there unchanged\n"
    "(the same input merged again) is not copied twice. One transaction: on any error\n"
    "the output is left as it was. Inputs are read, never written; older schemas are\n"
    "upgraded in a private copy. Artifact contents (DB.artifacts/) are copied too.\n";

enum prefer { P_NONE, P_NEWEST };
static const struct arl_opt_choice prefers[] = {{"newest", P_NEWEST}, {NULL, 0}};

static void print_event(void *arg, const struct arl_merge_event *ev)
{
	char *in = arl_term_str(ev->input), *name = arl_term_str(ev->name);

	(void)arg;
	printf("%s run %lld '%s' (%lld job%s) -> run %lld%s\n", in, (long long)ev->in_run, name,
	       (long long)ev->jobs, ev->jobs == 1 ? "" : "s", (long long)ev->out_run,
	       ev->joined ? "" : " (new)");
	free(in);
	free(name);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

/* A new output the merge failed to fill: removed with its artifact directory. */
static void drop_output(const char *path)
{
	static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
	char *a = arl_xasprintf("%s.artifacts", path);

	for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
		char *f = arl_xasprintf("%s%s", path, suffix[i]);

		unlink(f);
		free(f);
	}
	nftw(a, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(a);
}

int cmd_merge(int argc, char **argv)
{
	const char *output = NULL, *into = NULL, *path;
	int prefer = P_NONE, n, ret = ARL_EXIT_INCOMPLETE;
	int64_t window = 3600 * 1000;
	struct arl_store *s = NULL;
	struct arl_err err = ARL_ERR_INIT;
	struct arl_merge_stats st = {0};
	struct arl_merge_opts mo = {0};
	bool created = false, blocked = false;
	sigset_t block, old;
	struct stat sb;
	const struct arl_option opts[] = {
	    ARL_OPT_STRING('o', "output", &output, "NEW.db",
	                   "create this database (it must not exist) and merge into it"),
	    ARL_OPT_STRING(0, "into", &into, "DB", "merge into this existing database"),
	    ARL_OPT_CHOICE(0, "prefer", &prefer, prefers,
	                   "on a key in more than one input: keep the newest result"),
	    ARL_OPT_DURATION(0, "window", &window, 0, ARL_OPT_DURATION_MAX, "D",
	                     "runs of a name less than D apart are one run (default 1h;\n"
	                     "0: their time ranges must overlap)"),
	    ARL_OPT_END(),
	};
	const struct arl_command_usage u = {
	    .name = "merge", .synopsis = synopsis, .about = about, .options = opts};

	if ((n = arl_options_parse(&u, argc, argv, 0, &ret)) < 0)
		return ret;
	if (!output == !into)
		return arl_options_error(&u, "give either -o NEW.db or --into DB");
	if (n == 0)
		return arl_options_error(&u, "which databases? give at least one INPUT.db");
	ret = ARL_EXIT_INCOMPLETE;
	path = output ? output : into;
	if (output) {
		char *a = arl_xasprintf("%s.artifacts", output);
		bool exists = lstat(output, &sb) == 0 || lstat(a, &sb) == 0;

		free(a);
		if (exists) {
			arl_log_error("'%s' (or its .artifacts) already exists: use --into to merge"
			              " into an existing database",
			              output);
			return ARL_EXIT_USAGE;
		}
	}
	if (arl_store_open(&s, path, output ? 0 : ARL_STORE_NOCREATE, &err) < 0)
		goto fail;
	created = output != NULL;
	mo.inputs = (const char *const *)argv;
	mo.ninputs = (size_t)n;
	mo.prefer_newest = prefer == P_NEWEST;
	mo.window_ms = window;
	/*
	 * SIGINT, SIGTERM and SIGHUP wait for the merge to end: it is one transaction, and its
	 * private copies of the inputs must not be left behind. They act once it is over.
	 */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, &old);
	blocked = true;
	if (arl_store_merge(s, &mo, print_event, NULL, &st, &err) < 0) {
		ret = err.code == ARL_E_USAGE     ? ARL_EXIT_USAGE
		      : err.code == ARL_E_INVALID ? ARL_EXIT_FAILED
		                                  : ARL_EXIT_INCOMPLETE;
		goto fail_ret;
	}
	printf("merged %lld run%s into '%s' (%lld new): %lld job%s copied", (long long)st.runs_in,
	       st.runs_in == 1 ? "" : "s", path, (long long)st.runs_new, (long long)st.jobs_copied,
	       st.jobs_copied == 1 ? "" : "s");
	if (st.jobs_same)
		printf(", %lld already there", (long long)st.jobs_same);
	if (st.jobs_replaced)
		printf(", %lld replaced an older result", (long long)st.jobs_replaced);
	if (st.jobs_older)
		printf(", %lld older than the result kept", (long long)st.jobs_older);
	printf("; %lld artifact file%s copied", (long long)st.files_copied,
	       st.files_copied == 1 ? "" : "s");
	if (st.files_missing)
		printf(", %lld not in the input (rows kept)", (long long)st.files_missing);
	if (st.files_mismatched)
		printf(", %lld not matching their digest (not kept under it; rows kept)",
		       (long long)st.files_mismatched);
	printf("\n");
	ret = 0;
	goto out;
fail:
	ret = ARL_EXIT_INCOMPLETE;
fail_ret:
	arl_log_err(NULL, &err);
out:
	arl_store_close(s);
	if (ret != 0 && created)
		drop_output(output);
	if (blocked) {
		fflush(stdout);
		sigprocmask(SIG_SETMASK, &old, NULL);
	}
	return ret;
}
