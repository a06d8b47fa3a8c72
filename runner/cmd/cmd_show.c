/*
 * `arl-batch show JOB`: one job's summary, then every attempt and every step with its state,
 * exit code, duration and output. A Skipped job ran nothing: it shows the result it carries
 * (from which run) and that job's attempts.
 *
 * JOB is a key (FILE_STEM/JOB_NAME) or a job name. Without --run it is looked up in the
 * newest run that has it, so `show` works right after any run that contained the job.
 *
 * Exit: 0 shown, 1 no such job or run (or an ambiguous name), 2 usage, 3 the database could
 * not be opened or read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "cmd/cli.h"
#include "cmd/job_lookup.h"
#include "cmd/options.h"
#include "err.h"
#include "log.h"
#include "store/store.h"
#include "store/store_jobs.h"
#include "view/store_view.h"
#include "util.h"
#include "banned.h"

static const char *const synopsis[] = {"show [--db PATH] [--run RUN] [--tail N] JOB", NULL};

static const char about[] =
    "Show a job's attempts and steps with their output. JOB is a key (FILE_STEM/JOB_NAME)\n"
    "or a job name.\n";

struct ctx {
	struct arl_store *store;
	struct arl_job_reader *reader;
	bool color;
	int64_t tail; /* --tail: lines of each stream shown, from the end; 0: all */
	struct arl_err err;
};

/* "Failed (timeout)"; the class only when it says more than the state ("Failed (failed)"). */
static void state_word(const struct ctx *c, const char *state, const char *cls)
{
	const char *color = c->color ? arl_view_state_color(state) : NULL;

	printf("%s%s%s", color ? color : "", state, color ? ARL_VIEW_RESET : "");
	if (cls && strncasecmp(state, cls, strlen(cls)) != 0)
		printf(" (%s)", cls);
}

/* Step output and what came from it reach the terminal escaped (arl_term_write). */
static void put(const char *s)
{
	arl_term_write(stdout, s, strlen(s), false);
}

static void field(const char *label, const char *value)
{
	if (value) {
		printf("  %-11s", label);
		put(value);
		fputc('\n', stdout);
	}
}

/*
 * Output indented under its step; a last line without a newline still ends the block. With
 * @tail, only the last @tail lines, after a line saying how many are not shown.
 */
static void print_stream(const char *label, const char *p, bool truncated, int64_t tail)
{
	size_t len = p ? strlen(p) : 0;

	if (!len)
		return;
	printf("    %s%s:\n", label, truncated ? " (truncated: head and tail kept)" : "");
	if (tail > 0) {
		const char *q = p + len;
		int64_t lines = 0, hidden = 0;

		/* A final newline ends the last line; it does not start another. */
		if (q > p && q[-1] == '\n')
			q--;
		while (q > p && lines < tail) {
			if (*--q == '\n' && ++lines == tail) {
				q++;
				break;
			}
		}
		for (const char *x = p; x < q; x++)
			hidden += *x == '\n';
		if (hidden) {
			printf("      [... %lld earlier line%s not shown (--tail %lld) ...]\n",
			       (long long)hidden, hidden == 1 ? "" : "s", (long long)tail);
			len -= (size_t)(q - p);
			p = q;
		}
	}
	while (len) {
		const char *nl = memchr(p, '\n', len);
		size_t n = nl ? (size_t)(nl - p) + 1 : len;

		fputs("      ", stdout);
		arl_term_write(stdout, p, n, true);
		if (!nl)
			fputc('\n', stdout);
		p += n;
		len -= n;
	}
}

static int print_step(void *arg, const struct arl_step_view *st, struct arl_err *err)
{
	const struct ctx *c = arg;
	char dur[32];

	(void)err;
	printf("  step %lld ", (long long)st->idx + 1);
	put(st->name);
	printf(" (%s%s): ", st->type, st->callback ? ", callback" : "");
	state_word(c, st->state_name, NULL);
	if (!st->exit_null)
		printf(", exit %lld", (long long)st->exit_code);
	if (!st->duration_null)
		printf(", %s", arl_fmt_duration(st->duration_ms, dur, sizeof(dur)));
	if (st->state == ARL_STATE_SKIPPED)
		fputs(" (not run)", stdout);
	fputc('\n', stdout);
	if (st->metrics_error) {
		fputs("    metrics: ", stdout);
		put(st->metrics_error);
		fputc('\n', stdout);
	}
	print_stream("stdout", st->out, st->out_truncated != 0, c->tail);
	print_stream("stderr", st->err, st->err_truncated != 0, c->tail);
	return 0;
}

static int print_artifact(void *arg, const struct arl_artifact_view *x, struct arl_err *err)
{
	size_t *n = arg;

	(void)err;
	if (!(*n)++)
		fputs("  artifacts (arl-batch artifacts JOB -o DIR writes them out):\n", stdout);
	fputs("    ", stdout);
	put(x->path);
	if (x->sha256)
		printf("  %lld bytes  sha256 %.12s", (long long)x->size, x->sha256);
	if (x->error) {
		fputs("  ", stdout);
		put(x->error);
	}
	fputc('\n', stdout);
	return 0;
}

static int print_attempt(void *arg, const struct arl_attempt_view *a, struct arl_err *err)
{
	struct ctx *c = arg;
	char dur[32];

	printf("\nattempt %d: ", a->number);
	state_word(c, a->state_name, a->cls_name);
	if (!a->exit_null)
		printf(", exit %lld", (long long)a->exit_code);
	if (!a->duration_null)
		printf(", %s", arl_fmt_duration(a->duration_ms, dur, sizeof(dur)));
	/* Not part of the job's timeout: shown apart from the duration it is in. */
	if (!a->prepare_null)
		printf(", prepared in %s", arl_fmt_duration(a->prepare_ms, dur, sizeof(dur)));
	if (a->sandbox) {
		fputs(", sandbox ", stdout);
		put(a->sandbox);
	}
	fputc('\n', stdout);
	if (a->started_at)
		printf("  started %s\n", a->started_at);
	if (a->error) {
		fputs("  error: ", stdout);
		put(a->error);
		fputc('\n', stdout);
	}
	size_t n = 0;

	if (arl_attempt_steps(c->reader, a->id, print_step, c, err) < 0)
		return -1;
	return arl_attempt_artifacts(c->reader, a->id, print_artifact, &n, err);
}

static int print_metric(void *arg, const struct arl_metric_view *m, struct arl_err *err)
{
	size_t *n = arg;

	(void)err;
	fputs((*n)++ ? "  " : "  metrics:   ", stdout);
	put(m->name);
	fputc('=', stdout);
	put(m->text ? m->text : "null");
	return 0;
}

static int print_metrics(struct ctx *c, int64_t job_id)
{
	size_t n = 0;
	int rc = arl_job_metrics(c->reader, job_id, print_metric, &n, &c->err);

	if (n)
		fputc('\n', stdout);
	return rc;
}

/*
 * What a Skipped job stands for (it counts as that result, docs/database.md): "Failed
 * (timeout), exit 124, 2 attempts, from run 3 'nightly' (job id 17)", then that result's error.
 */
static void print_carried(const struct ctx *c, const struct arl_job_view *j)
{
	if (j->from_null) {
		fputs("  carried:   nothing: the earlier result it stood for was pruned\n", stdout);
		return;
	}
	fputs("  carried:   ", stdout);
	state_word(c, j->from_state_name, j->from_cls_name);
	if (!j->from_exit_null)
		printf(", exit %lld", (long long)j->from_exit);
	printf(", %d attempt%s", j->from_attempts, j->from_attempts == 1 ? "" : "s");
	printf(", from run %lld", (long long)j->from_run);
	if (j->from_run_name) {
		fputs(" '", stdout);
		put(j->from_run_name);
		fputc('\'', stdout);
	}
	printf(" (job id %lld)\n", (long long)j->from_id);
	field("error:", j->from_error);
}

/* The run's params (runs.params, secrets never in it) as "NAME=VALUE, NAME=VALUE". */
static void print_params(const char *json)
{
	cJSON *o = json ? cJSON_ParseWithLengthOpts(json, strlen(json) + 1, NULL, 1) : NULL;
	const cJSON *it;
	struct arl_buf b = {0};
	char *text;

	cJSON_ArrayForEach(it, o)
	{
		if (!cJSON_IsString(it))
			continue;
		arl_buf_addf(&b, "%s%s=%s", b.len ? ", " : "", it->string, it->valuestring);
	}
	cJSON_Delete(o);
	text = arl_buf_detach(&b, NULL);
	if (*text)
		field("params:", text);
	free(text);
}

static int show_job(struct ctx *c, int64_t job_id)
{
	struct arl_job_view j = {0};
	char dur[32], buf[64];
	int64_t from_id = 0;
	int ret = -1, rc;

	if ((rc = arl_job_get(c->reader, job_id, &j, &c->err)) <= 0) {
		if (rc == 0)
			arl_error(&c->err, ARL_E_INVALID, "job %lld vanished", (long long)job_id);
		return -1;
	}
	fputs("job ", stdout);
	put(j.key);
	printf(" (run %lld '", (long long)j.run_id);
	put(j.run_name);
	printf("', job id %lld)\n", (long long)job_id);
	fputs("  state:     ", stdout);
	state_word(c, j.state_name, j.cls_name);
	fputc('\n', stdout);
	if (j.state == ARL_STATE_SKIPPED) {
		from_id = j.from_null ? 0 : j.from_id;
		print_carried(c, &j);
	}
	field("name:", j.name);
	field("file:", j.file);
	field("pool:", j.pool);
	/* A Skipped job's own 0 attempts would contradict its carried line. */
	if (!from_id) {
		snprintf(buf, sizeof(buf), "%d", j.attempts);
		field("attempts:", buf);
	}
	if (!j.exit_null) {
		snprintf(buf, sizeof(buf), "%lld", (long long)j.exit_code);
		field("exit code:", buf);
	}
	field("started:", j.started_at);
	field("finished:", j.finished_at);
	if (!j.duration_null) {
		snprintf(buf, sizeof(buf), "%s", arl_fmt_duration(j.duration_ms, dur, sizeof(dur)));
		field("duration:", buf);
	}
	field("error:", j.error);
	if (j.labels && strcmp(j.labels, "{}"))
		field("labels:", j.labels);
	field("item:", j.item);
	print_params(j.run_params);
	field("spec hash:", j.spec_hash);
	/* A Skipped job ran nothing: what it carries is the standing job's metrics and attempts. */
	if (print_metrics(c, from_id ? from_id : job_id) < 0)
		goto out;
	if (from_id) {
		printf("\nattempts of run %lld, whose result this job carries (arl-batch show ",
		       (long long)j.from_run);
		put(j.key);
		printf(" --run %lld):\n", (long long)j.from_run);
	}
	if (arl_job_attempts(c->reader, from_id ? from_id : job_id, print_attempt, c, &c->err) < 0)
		goto out;
	ret = 0;
out:
	arl_job_view_release(&j);
	return ret;
}

int cmd_show(int argc, char **argv)
{
	struct ctx c = {.err = ARL_ERR_INIT};
	const char *db = NULL, *run = NULL, *job;
	int64_t job_id = 0;
	int rc, ret = ARL_EXIT_INCOMPLETE;
	const struct arl_option opts[] = {
	    ARL_OPT_DB(&db),
	    ARL_OPT_JOB_RUN(&run),
	    ARL_OPT_INT(0, "tail", &c.tail, 1, INT64_MAX, "N",
	                "only the last N lines of each step's stdout and stderr"),
	    ARL_OPT_END(),
	};
	const struct arl_command_usage u = {
	    .name = "show", .synopsis = synopsis, .about = about, .options = opts};

	if ((rc = arl_options_parse(&u, argc, argv, 0, &ret)) < 0)
		return ret;
	if (rc != 1)
		return arl_cli_one_job_error(&u, rc);
	ret = ARL_EXIT_INCOMPLETE;
	job = argv[0];
	c.color = arl_cli_color(STDOUT_FILENO);

	/*
	 * Read-write (but never creating) rather than read-only: opening repairs runs whose
	 * runner died, so a crashed run shows as interrupted instead of running forever.
	 */
	if (arl_store_open(&c.store, arl_cli_db_path(db), ARL_STORE_NOCREATE, &c.err) < 0)
		goto out;
	arl_job_reader_new(c.store, &c.reader);
	if ((ret = arl_cli_find_job(c.store, c.reader, run, job, &job_id, &c.err)) != ARL_EXIT_OK)
		goto out;
	ret = ARL_EXIT_INCOMPLETE;
	if (show_job(&c, job_id) < 0)
		goto out;
	ret = ARL_EXIT_OK;
out:
	if (ret != ARL_EXIT_OK && c.err.msg[0])
		arl_view_error(&c.err);
	arl_job_reader_free(c.reader);
	arl_store_close(c.store);
	return ret;
}
