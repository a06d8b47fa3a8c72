/*
 * `arl-batch report [--db PATH] [--run RUN] [--compare RUN] -o FILE.html`: the run's
 * self-contained HTML report (report.h). The page is written to a temporary file beside
 * FILE and renamed over it, so a browser or a web server never sees half a report.
 *
 * Exit: 0 written, 1 no such run, 2 usage, 3 the database or the file could not be used.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/cli.h"
#include "err.h"
#include "view/report.h"
#include "store/store.h"
#include "view/store_view.h"
#include "util.h"
#include "banned.h"

static const char usage_text[] =
    "usage: arl-batch report [--db PATH] [--run RUN] [--compare RUN] -o FILE.html\n";

static const char help_text[] =
    "\n"
    "Writes one self-contained HTML file (no network, no external scripts or fonts) with the\n"
    "run's summary, pass rates overall, per pool and per label, job durations, attempts\n"
    "and retries, the slowest jobs, the failed jobs with the tail of their stderr, and the\n"
    "distributions of their metrics.\n"
    "\n"
    "  --db PATH       results database (default $ARL_BATCH_DB, else ./arl-batch.db)\n"
    "  --run RUN       a run id, 'latest' (the default) or a run name (its latest run)\n"
    "  --compare RUN   add the comparison with RUN as the baseline: flips (fixed, broken,\n"
    "                  still failing), pass rates, McNemar's test, metric deltas\n"
    "  -o, --output FILE\n"
    "                  where to write the report ('-': standard output)\n"
    "  --max-failed N  rows of the failed-jobs table (default 200)\n";

/* Writes the report to @path through a temporary file renamed into place. */
static int write_report(struct arl_store *s, const struct arl_report_opts *ro, const char *path,
                        struct arl_err *err)
{
	char *tmp = NULL;
	FILE *f = NULL;
	mode_t mask;
	int fd = -1, ret = -1;

	if (!strcmp(path, "-")) {
		if (arl_report_write(s, ro, stdout, err) < 0)
			return -1;
		return 0; /* main() checks that stdout flushed */
	}
	tmp = arl_xasprintf("%s.tmp-XXXXXX", path);
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
		arl_error_errno(err, errno, "cannot create '%s'", tmp);
		goto out;
	}
	if (!(f = fdopen(fd, "w"))) {
		arl_error_errno(err, errno, "cannot open '%s'", tmp);
		goto out;
	}
	fd = -1;
	if (arl_report_write(s, ro, f, err) < 0)
		goto out;
	/* mkostemp() made it 0600; give it the mode any new file gets (the umask's). No
	 * thread is running, so reading the umask by setting it is safe here. */
	mask = umask(022);
	umask(mask);
	if (fchmod(fileno(f), 0666 & ~mask) < 0 || fflush(f) != 0 || ferror(f)) {
		arl_error_errno(err, errno, "cannot write '%s'", path);
		goto out;
	}
	if (fclose(f) != 0) {
		f = NULL;
		arl_error_errno(err, errno, "cannot write '%s'", path);
		goto out;
	}
	f = NULL;
	if (rename(tmp, path) < 0) {
		arl_error_errno(err, errno, "cannot rename '%s' to '%s'", tmp, path);
		goto out;
	}
	free(tmp);
	tmp = NULL;
	ret = 0;
out:
	if (f)
		fclose(f);
	if (fd >= 0)
		close(fd);
	if (tmp)
		unlink(tmp);
	free(tmp);
	return ret;
}

int cmd_report(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"run", required_argument, NULL, 'r'},
	    {"compare", required_argument, NULL, 'c'},
	    {"output", required_argument, NULL, 'o'},
	    {"max-failed", required_argument, NULL, 'm'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *db = NULL, *run = NULL, *compare = NULL, *output = NULL;
	struct arl_report_opts ro = {0};
	struct arl_store *s = NULL;
	struct arl_err err = ARL_ERR_INIT;
	int64_t v;
	int ch, ret = ARL_EXIT_INCOMPLETE;

	optind = 0; /* glibc: rescan from argv[1] with fresh state */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":ho:", opts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			db = optarg;
			break;
		case 'r':
			run = optarg;
			break;
		case 'c':
			compare = optarg;
			break;
		case 'o':
			output = optarg;
			break;
		case 'm':
			if (arl_parse_i64(optarg, 1, 100000, &v) < 0) {
				fprintf(stderr,
				        "arl-batch report: invalid value '%s' for --max-failed\n",
				        optarg);
				return ARL_EXIT_USAGE;
			}
			ro.max_failed = (size_t)v;
			break;
		case 'h':
			fputs(usage_text, stdout);
			fputs(help_text, stdout);
			return ARL_EXIT_OK;
		default:
			return arl_view_bad_option("report", ch, argv, usage_text);
		}
	}
	if (optind < argc || !output) {
		fprintf(stderr, "arl-batch report: %s\n",
		        optind < argc ? "unexpected argument" : "where to? give -o FILE.html");
		fputs(usage_text, stderr);
		return ARL_EXIT_USAGE;
	}
	/* Read-write, never creating: opening repairs runs whose runner died (see show). */
	if (arl_store_open(&s, arl_cli_db_path(db), ARL_STORE_NOCREATE, &err) < 0)
		goto out;
	if (arl_store_run_resolve(s, run, &ro.run_id, &err) < 0 ||
	    (compare && arl_store_run_resolve(s, compare, &ro.compare_id, &err) < 0)) {
		if (err.code == ARL_E_INVALID)
			ret = ARL_EXIT_FAILED;
		goto out;
	}
	if (write_report(s, &ro, output, &err) < 0)
		goto out;
	ret = ARL_EXIT_OK;
out:
	if (ret != ARL_EXIT_OK)
		arl_view_error(&err);
	arl_store_close(s);
	return ret;
}
