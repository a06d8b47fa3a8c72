/*
 * `arl-batch report [--db PATH] [--run RUN] [--compare RUN] -o FILE.html`: the run's
 * self-contained HTML report (report.h). The page is written to a temporary file beside
 * FILE and renamed over it, so a browser or a web server never sees half a report.
 *
 * Exit: 0 written, 1 no such run, 2 usage, 3 the database or the file could not be used.
 */
#include <errno.h>
#include <libgen.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "cmd/cli.h"
#include "cmd/options.h"
#include "err.h"
#include "view/report.h"
#include "store/store.h"
#include "view/store_view.h"
#include "util.h"
#include "banned.h"

static const char *const synopsis[] = {
    "report [--db PATH] [--run RUN] [--compare RUN] [--max-failed N]", "       -o FILE.html", NULL};

static const char about[] =
    "Writes one self-contained HTML file (no network, no external scripts or fonts) with the\n"
    "run's summary, pass rates overall, per pool and per label, job durations, attempts\n"
    "and retries, the slowest jobs, the failed jobs with the tail of their stderr, and the\n"
    "distributions of their metrics.\n";

/* The canonical directory of @path (a file that may not exist yet), or NULL. Owned. */
static char *dir_of(const char *path)
{
	char *copy = arl_xstrdup(path), *d = dirname(copy), *real = realpath(d, NULL);

	free(copy);
	return real;
}

/*
 * DB.artifacts as a relative URL path from the report's directory (report.h), or NULL when
 * either directory cannot be resolved. Components are compared as they are.
 */
static char *artifacts_href(const char *report, const char *db)
{
	char *from = dir_of(report), *to_dir = dir_of(db), *base = arl_xstrdup(db), *to = NULL;
	char *out = NULL;
	size_t common = 0, i;
	struct arl_buf b = ARL_BUF_INIT;

	if (!from || !to_dir)
		goto out;
	to = arl_xasprintf("%s/%s.artifacts", strcmp(to_dir, "/") ? to_dir : "", basename(base));
	/* The longest common prefix that ends at a component boundary. */
	for (i = 0; from[i] && from[i] == to[i]; i++)
		if (from[i] == '/')
			common = i;
	if (!from[i] && to[i] == '/')
		common = i;
	for (const char *p = from + common; *p; p++)
		if (*p == '/' && p[1])
			arl_buf_addstr(&b, "../");
	arl_buf_addstr(&b, to + common + 1);
	out = arl_xstrdup(b.p);
out:
	arl_buf_release(&b);
	free(from);
	free(to_dir);
	free(to);
	free(base);
	return out;
}

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
	const char *db = NULL, *run = NULL, *compare = NULL, *output = NULL;
	struct arl_report_opts ro = {0};
	struct arl_store *s = NULL;
	char *href = NULL;
	struct arl_err err = ARL_ERR_INIT;
	int n, ret = ARL_EXIT_INCOMPLETE;
	const struct arl_option opts[] = {
	    ARL_OPT_DB(&db),
	    ARL_OPT_STRING(0, "run", &run, "RUN",
	                   "a run id, 'latest' (the default) or a run name (its\n"
	                   "latest run)"),
	    ARL_OPT_STRING(0, "compare", &compare, "RUN",
	                   "add the comparison with RUN as the baseline: flips\n"
	                   "(fixed, broken, still failing), pass rates, McNemar's\n"
	                   "test, metric deltas"),
	    ARL_OPT_STRING('o', "output", &output, "FILE",
	                   "where to write the report ('-': standard output)"),
	    ARL_OPT_INT(0, "max-failed", &ro.max_failed, 1, 100000, "N",
	                "rows of the failed-jobs table (default 200)"),
	    ARL_OPT_END(),
	};
	const struct arl_command_usage u = {
	    .name = "report", .synopsis = synopsis, .about = about, .options = opts};

	if ((n = arl_options_parse(&u, argc, argv, 0, &ret)) < 0)
		return ret;
	if (n > 0)
		return arl_cli_unexpected(&u, argv[0]);
	if (!output)
		return arl_options_error(&u, "where to? give -o FILE.html");
	ret = ARL_EXIT_INCOMPLETE;
	/* Read-write, never creating: opening repairs runs whose runner died (see show). */
	if (arl_store_open(&s, arl_cli_db_path(db), ARL_STORE_NOCREATE, &err) < 0)
		goto out;
	if (arl_store_run_resolve(s, run, &ro.run_id, &err) < 0 ||
	    (compare && arl_store_run_resolve(s, compare, &ro.compare_id, &err) < 0)) {
		if (err.code == ARL_E_INVALID)
			ret = ARL_EXIT_FAILED;
		goto out;
	}
	if (strcmp(output, "-"))
		href = artifacts_href(output, arl_store_path(s));
	ro.artifacts_href = href;
	if (write_report(s, &ro, output, &err) < 0)
		goto out;
	ret = ARL_EXIT_OK;
out:
	free(href);
	if (ret != ARL_EXIT_OK)
		arl_view_error(&err);
	arl_store_close(s);
	return ret;
}
