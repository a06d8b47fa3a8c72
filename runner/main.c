/* arl-batch: declarative batch jobs in sandboxes, results in SQLite. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/close_range.h>

#include "cmd/builtin_backends.h"
#include "cmd/cli.h"
#include "cmd/options.h"
#include "err.h"
#include "log.h"
#include "banned.h"

static const struct arl_cmd commands[] = {
    {"run", cmd_run, "run jobs from job files"},
    {"validate", cmd_validate, "check job files and report every error"},
    {"runs", cmd_runs, "list runs, newest first"},
    {"results", cmd_results, "show the jobs of a run"},
    {"show", cmd_show, "show a job's attempts and steps with their output"},
    {"artifacts", cmd_artifacts, "list or write out the files a job's attempt kept"},
    {"logs", cmd_logs, "a job's output: stored, or as it is produced (-f)"},
    {"query", cmd_query, "read-only SQL over the results database"},
    {"diff", cmd_diff, "jobs fixed, broken, still failing, added and missing between two runs"},
    {"report", cmd_report, "write a run's self-contained HTML report"},
    {"prune", cmd_prune, "delete old runs and reclaim space"},
    {"merge", cmd_merge, "merge the runs of several databases (shards) into one"},
    {"gc", cmd_gc, "find (and delete) sandboxes whose runner died"},
    {"pool", cmd_pool, "manage ARL WarmPools (kubernetes): create, get, list, wait, delete"},
    {"image", cmd_image, "container images for local pools: load, list, rm, prune"},
};

static void list_commands(FILE *out)
{
	fputs("\ncommands:\n", out);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
}

static const char *const synopsis[] = {"[--version] [--help] COMMAND [ARGS]", NULL};

/* A child spawned with fd 1 closed would write its results into whatever we open next. */
static void sanitize_fds(void)
{
	for (int fd = 0; fd <= 2; fd++) {
		if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
			int nfd = open("/dev/null", O_RDWR);

			if (nfd > 2)
				close(nfd);
		}
	}
}

/*
 * Whatever the launching shell, cron or CI left open (a pipe it waits on, a terminal) must not
 * reach steps, which would inherit it through every spawn. Marked CLOEXEC, not closed:
 * libraries may already hold some (and we hold none of our own yet).
 */
static void cloexec_inherited_fds(void)
{
	int maxfd;

	if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
		return;
	/* Before Linux 5.11 (EINVAL for the flag) or without close_range (ENOSYS). */
	maxfd = (int)sysconf(_SC_OPEN_MAX);
	if (maxfd < 0 || maxfd > 1 << 20)
		maxfd = 1 << 20;
	for (int fd = 3; fd < maxfd; fd++) {
		int fl = fcntl(fd, F_GETFD);

		if (fl >= 0 && !(fl & FD_CLOEXEC))
			fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
	}
}

static int finish_stdout(int code)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		if (errno != EPIPE)
			arl_log_error("error writing to standard output");
		return code ? code : ARL_EXIT_INCOMPLETE;
	}
	return code;
}

int main(int argc, char **argv)
{
	bool version = false;
	const struct arl_option opts[] = {
	    ARL_OPT_FLAG(0, "version", &version, "print the version"),
	    ARL_OPT_END(),
	};
	const struct arl_command_usage u = {
	    .synopsis = synopsis,
	    .options = opts,
	    .more = list_commands,
	    .epilog = "'arl-batch COMMAND --help' describes a command's options.\n"};
	int n, code;

	sanitize_fds();
	cloexec_inherited_fds();
	signal(SIGPIPE, SIG_IGN);
	arl_register_builtin_backends();
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		arl_log_error("cannot initialise libcurl");
		return ARL_EXIT_INCOMPLETE;
	}
	if ((n = arl_options_parse(&u, argc, argv, ARL_OPTS_STOP_AT_OPERAND, &code)) < 0)
		return finish_stdout(code);
	if (version || (n > 0 && !strcmp(argv[0], "version"))) {
		printf("arl-batch %s\n", ARL_VERSION);
		return finish_stdout(0);
	}
	if (n == 0) {
		struct arl_log_blob b;

		arl_options_usage(&u, arl_log_begin(&b));
		arl_log_end(&b);
		return ARL_EXIT_USAGE;
	}
	if (!strcmp(argv[0], "help")) {
		arl_options_usage(&u, stdout);
		return finish_stdout(0);
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (!strcmp(argv[0], commands[i].name)) {
			code = commands[i].fn(n, argv);
			curl_global_cleanup();
			return finish_stdout(code);
		}
	}
	return arl_options_error(&u, "unknown command '%s'", argv[0]);
}
