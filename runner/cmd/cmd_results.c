/*
 * `arl-batch results`: the jobs of one run as a table, JSON, CSV or JUnit XML.
 *
 * JSON follows the ARL Task resource the SDK returns ({"metadata", "status"}) so tools
 * written against Tasks read it unchanged. Like a Task, whose steps all run in one call,
 * status.stdout and status.stderr are the concatenated output of the main steps of the job's
 * last attempt (callbacks, which the SDK runs as separate Tasks, are left out; every step's
 * own output is in `arl-batch show`). Unlike a Task, exitCode is always present (null when
 * no step ran) and times keep their milliseconds.
 *
 * Exit: 0 printed, 1 no such run, 2 usage, 3 the database could not be opened or read.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "buf.h"
#include "cmd/cli.h"
#include "cmd/options.h"
#include "err.h"
#include "result.h"
#include "store/store.h"
#include "store/store_jobs.h"
#include "store/store_runs.h"
#include "view/junit.h"
#include "view/store_view.h"
#include "util.h"
#include "banned.h"

static const char *const synopsis[] = {
    "results [--db PATH] [--run ID|latest|NAME] [--state STATE[,STATE...]]",
    "        [--format table|json|csv|junit]", NULL};

static const char about[] = "Show the jobs of a run.\n";

static const char epilog[] =
    "A Skipped job counts as the result it stands for: every format shows that result as\n"
    "carried from the run it comes from (JUnit: a carried failure is a <failure>).\n";

enum format { F_TABLE, F_JSON, F_CSV, F_JUNIT };

/*
 * The metric names of a run, one column each (metric_<name>) after the fixed columns, in
 * name order. A Skipped job shows the metrics of the job whose result stands for it, so the
 * table of a resumed run is complete.
 */
struct csv_metrics {
	char **names;
	size_t n, cap;
};

static const struct arl_view_col table_cols[] = {
    {"STATE", false, false}, {"JOB", false, true},      {"ATTEMPTS", true, false},
    {"EXIT", true, false},   {"DURATION", true, false}, {"REASON", false, true},
};

struct ctx {
	struct arl_store *store;
	struct arl_job_reader *reader;
	enum format format;
	unsigned states; /* bit (1 << enum arl_state); 0: all */
	struct arl_view_table table;
	struct arl_view_json_array arr;
	struct csv_metrics metrics;
	struct arl_err err;
};

/* --state: "failed,Skipped" -> a bit per state in *(unsigned *)o->value. */
static int parse_states(const struct arl_option *o, const char *arg, struct arl_err *err)
{
	char *copy = arl_xstrdup(arg), *save = NULL, *tok;
	unsigned *mask = o->value;
	int ret = 0;

	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int i;

		for (i = ARL_STATE_PENDING; i <= ARL_STATE_CANCELLED; i++)
			if (!strcasecmp(tok, arl_state_name((enum arl_state)i)))
				break;
		if (i > ARL_STATE_CANCELLED) {
			ret = arl_error(err, ARL_E_USAGE,
			                "unknown state '%s' (Pending, Running, Succeeded, Failed, "
			                "Skipped, Cancelled)",
			                tok);
			break;
		}
		*mask |= 1u << i;
	}
	free(copy);
	return ret;
}

/* A step of the last attempt: its object in "steps" (when steps is not NULL), its output. */
struct step_acc {
	struct arl_view_output *o;
	cJSON *steps;
};

static int add_step(void *arg, const struct arl_step_view *st, struct arl_err *err)
{
	struct step_acc *acc = arg;

	(void)err;
	if (acc->steps) {
		cJSON *s = cJSON_CreateObject();

		cJSON_AddItemToArray(acc->steps, s);
		arl_view_json_str(s, "name", st->name);
		arl_view_json_str(s, "type", st->type);
		arl_view_json_str(s, "phase", st->callback ? "callback" : "main");
		arl_view_json_str(s, "state", st->state_name);
		arl_view_json_int(s, "exitCode", st->exit_null, st->exit_code);
		arl_view_json_int(s, "durationMs", st->duration_null, st->duration_ms);
	}
	arl_view_output_add(acc->o, st);
	return 0;
}

/*
 * *@out: why job @j did not succeed (arl_view_reason()), NULL when it did. A Skipped job gives
 * the reason of the result it stands for. Reads the failing step only for failed jobs.
 */
static int job_reason(struct ctx *c, const struct arl_job_view *j, char **out, struct arl_err *err)
{
	bool carried = !j->from_null;
	const char *cls = carried ? j->from_cls_name : j->cls_name;
	const char *error = carried ? j->from_error : j->error;
	struct arl_failing_step f = {0};
	int rc = 0;

	*out = NULL;
	if (!cls)
		return 0;
	if ((rc = arl_job_failing_step(c->reader, carried ? j->from_id : j->id, &f, err)) < 0)
		return -1;
	*out = arl_view_reason(rc ? f.name : NULL, cls, error, f.err_tail);
	arl_failing_step_release(&f);
	return 0;
}

/* ---- json ---- */

static int json_metric(void *arg, const struct arl_metric_view *m, struct arl_err *err)
{
	cJSON *metrics = arg;

	(void)err;
	if (m->is_number)
		cJSON_AddNumberToObject(metrics, m->name, m->number);
	else
		arl_view_json_str(metrics, m->name, m->text);
	return 0;
}

static int json_job(struct ctx *c, const struct arl_job_view *j, struct arl_err *err)
{
	cJSON *job = cJSON_CreateObject(), *md, *status, *metrics;
	struct arl_view_output o = ARL_VIEW_OUTPUT_INIT;
	struct step_acc acc = {&o, NULL};
	char dur[32], *reason = NULL;
	int rc;

	md = cJSON_AddObjectToObject(job, "metadata");
	arl_view_json_str(md, "name", j->name);
	arl_view_json_raw(md, "labels", j->labels);
	status = cJSON_AddObjectToObject(job, "status");
	arl_view_json_str(status, "state", j->state_name);
	arl_view_json_int(status, "exitCode", j->exit_null, j->exit_code);
	/* Filled below, once the steps are read; added now to keep the Task's field order. */
	cJSON_AddStringToObject(status, "stdout", "");
	cJSON_AddStringToObject(status, "stderr", "");
	arl_view_json_str(
	    status, "duration",
	    j->duration_null ? NULL : arl_view_go_duration(j->duration_ms, dur, sizeof(dur)));
	arl_view_json_str(status, "startTime", j->started_at);
	arl_view_json_str(status, "completionTime", j->finished_at);

	arl_view_json_int(job, "id", false, j->id);
	arl_view_json_str(job, "key", j->key);
	arl_view_json_str(job, "file", j->file);
	arl_view_json_str(job, "pool", j->pool);
	arl_view_json_int(job, "attempts", false, j->attempts);
	arl_view_json_str(job, "errorClass", j->cls_name);
	arl_view_json_str(job, "error", j->error);
	if ((rc = job_reason(c, j, &reason, err)) < 0)
		goto out;
	arl_view_json_str(job, "reason", reason);
	arl_view_json_raw(job, "item", j->item);
	arl_view_json_str(job, "specHash", j->spec_hash);
	arl_view_json_int(job, "skippedFrom", j->skipped_from_null, j->skipped_from);
	if (!j->from_null) {
		cJSON *from = cJSON_AddObjectToObject(job, "carried");

		arl_view_json_int(from, "fromRun", false, j->from_run);
		arl_view_json_int(from, "fromJob", j->skipped_from_null, j->skipped_from);
		arl_view_json_str(from, "state", j->from_state_name);
		arl_view_json_str(from, "errorClass", j->from_cls_name);
		arl_view_json_int(from, "exitCode", j->from_exit_null, j->from_exit);
		arl_view_json_int(from, "attempts", false, j->from_attempts);
		arl_view_json_str(from, "error", j->from_error);
	}
	acc.steps = cJSON_AddArrayToObject(job, "steps");
	rc = arl_job_last_steps(c->reader, j->id, add_step, &acc, err);
	if (rc < 0)
		goto out;
	cJSON_ReplaceItemInObjectCaseSensitive(status, "stdout",
	                                       cJSON_CreateString(o.out.p ? o.out.p : ""));
	cJSON_ReplaceItemInObjectCaseSensitive(status, "stderr",
	                                       cJSON_CreateString(o.err.p ? o.err.p : ""));
	cJSON_AddBoolToObject(job, "stdoutTruncated", o.out_trunc);
	cJSON_AddBoolToObject(job, "stderrTruncated", o.err_trunc);

	metrics = cJSON_AddObjectToObject(job, "metrics");
	rc = arl_job_metrics(c->reader, j->id, json_metric, metrics, err);
out:
	free(reason);
	arl_view_output_release(&o);
	if (rc < 0) {
		cJSON_Delete(job);
		return -1;
	}
	arl_view_json_item(&c->arr, job);
	return 0;
}

/* ---- csv ---- */

static void csv_header(const struct csv_metrics *m)
{
	static const char *const names[] = {
	    "run_id",        "key",           "name",        "file",         "pool",
	    "state",         "attempts",      "exit_code",   "error_class",  "error",
	    "started_at",    "finished_at",   "duration_ms", "skipped_from", "carried_from_run",
	    "carried_state", "carried_class", "reason",
	};
	size_t n = sizeof(names) / sizeof(names[0]);

	for (size_t i = 0; i < n; i++)
		arl_view_csv(stdout, names[i], strlen(names[i]), i + 1 == n && !m->n);
	for (size_t i = 0; i < m->n; i++) {
		char *col = arl_xasprintf("metric_%s", m->names[i]);

		arl_view_csv(stdout, col, strlen(col), i + 1 == m->n);
		free(col);
	}
}

static int csv_add_name(void *arg, const char *name, struct arl_err *err)
{
	struct csv_metrics *m = arg;

	(void)err;
	ARL_GROW(m->names, m->cap, m->n + 1);
	m->names[m->n++] = arl_xstrdup(name);
	return 0;
}

static void csv_release(struct csv_metrics *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->names[i]);
	free(m->names);
}

/* The metrics of one row, merged into the run's columns. */
struct csv_merge {
	const struct csv_metrics *m;
	size_t col;
};

static int csv_metric(void *arg, const struct arl_metric_view *mv, struct arl_err *err)
{
	struct csv_merge *g = arg;
	const struct csv_metrics *m = g->m;

	(void)err;
	while (g->col < m->n && strcmp(m->names[g->col], mv->name) < 0) {
		arl_view_csv(stdout, "", 0, g->col + 1 == m->n);
		g->col++;
	}
	if (g->col < m->n && !strcmp(m->names[g->col], mv->name)) {
		arl_view_csv(stdout, mv->text, mv->text ? strlen(mv->text) : 0, g->col + 1 == m->n);
		g->col++;
	}
	return 0;
}

/* An integer field, or an empty one for NULL: CSV has no null. */
static const char *csv_int(bool null, int64_t v, char *buf, size_t len)
{
	if (null)
		return NULL;
	snprintf(buf, len, "%lld", (long long)v);
	return buf;
}

static int csv_row(struct ctx *c, const struct arl_job_view *j, struct arl_err *err)
{
	const struct csv_metrics *m = &c->metrics;
	char run[24], att[24], ex[24], dur[24], from[24], from_run[24], *reason = NULL;
	const char *fields[] = {
	    j->key,
	    j->name,
	    j->file,
	    j->pool,
	    j->state_name,
	    csv_int(false, j->attempts, att, sizeof(att)),
	    csv_int(j->exit_null, j->exit_code, ex, sizeof(ex)),
	    j->cls_name,
	    j->error,
	    j->started_at,
	    j->finished_at,
	    csv_int(j->duration_null, j->duration_ms, dur, sizeof(dur)),
	    csv_int(j->skipped_from_null, j->skipped_from, from, sizeof(from)),
	    csv_int(j->from_null, j->from_run, from_run, sizeof(from_run)),
	    j->from_null ? NULL : j->from_state_name,
	    j->from_null ? NULL : j->from_cls_name,
	    NULL, /* reason, below */
	};
	size_t n = sizeof(fields) / sizeof(fields[0]);
	struct csv_merge g = {m, 0};

	if (job_reason(c, j, &reason, err) < 0)
		return -1;
	fields[n - 1] = reason;

	snprintf(run, sizeof(run), "%lld", (long long)j->run_id);
	arl_view_csv(stdout, run, strlen(run), false);
	/* NULL is an empty field: CSV has no null, and "" never appears in these columns. */
	for (size_t i = 0; i < n; i++)
		arl_view_csv(stdout, fields[i], fields[i] ? strlen(fields[i]) : 0,
		             i + 1 == n && !m->n);
	free(reason);
	if (!m->n)
		return 0;
	/* Both lists are in name order (SQLite's BINARY collation is strcmp's): merge them. */
	if (arl_job_metrics(c->reader, j->skipped_from_null ? j->id : j->skipped_from, csv_metric,
	                    &g, err) < 0)
		return -1;
	for (; g.col < m->n; g.col++)
		arl_view_csv(stdout, "", 0, g.col + 1 == m->n);
	return 0;
}

/* ---- table ---- */

/* One line per job; its reason (arl_view_reason()) is the last column, which the terminal
 * width cuts first. A Skipped job says which run its result comes from, and what it was. */
static int table_row(struct ctx *c, const struct arl_job_view *j, struct arl_err *err)
{
	const char *state = j->state_name, *cls = j->cls_name;
	const char *error = j->error;
	const char *from = j->from_null ? NULL : j->from_state_name;
	char dur[32], att[24], ex[24], *why = NULL, *reason = NULL;

	if (job_reason(c, j, &reason, err) < 0)
		return -1;
	if (!from && reason) {
		why = reason;
		reason = NULL;
	} else if (!from && error)
		why = arl_xstrdup(cls ? cls : error);
	else if (from && !strcmp(from, "Succeeded"))
		why = arl_xasprintf("succeeded in run %lld", (long long)j->from_run);
	else if (from)
		why = arl_xasprintf("carried from run %lld (%s)%s%s", (long long)j->from_run, from,
		                    reason ? ": " : "", reason ? reason : "");
	{
		const char *cells[] = {
		    state,
		    j->key,
		    csv_int(false, j->attempts, att, sizeof(att)),
		    csv_int(j->exit_null, j->exit_code, ex, sizeof(ex)),
		    j->duration_null ? NULL : arl_fmt_duration(j->duration_ms, dur, sizeof(dur)),
		    why ? why : "",
		};
		const char *colors[sizeof(cells) / sizeof(cells[0])] = {
		    arl_view_state_color(from && strcmp(from, "Succeeded") ? from : state),
		};

		arl_view_table_add(&c->table, cells, colors);
	}
	free(why);
	free(reason);
	return 0;
}

/* ---- the command ---- */

/* The run's own summary under the table: its status and counts, whatever --state hid. */
static int print_footer(struct ctx *c, int64_t run_id, bool color)
{
	struct arl_run_view run = {0};
	const char *status;
	char dur[32];
	int rc;

	if ((rc = arl_run_get(c->store, run_id, &run, &c->err)) <= 0)
		return rc < 0 ? -1 : 0;
	status = run.status;
	printf("\nrun %lld '%s' %s%s%s", (long long)run_id, run.name,
	       color && arl_view_state_color(status) ? arl_view_state_color(status) : "", status,
	       color && arl_view_state_color(status) ? ARL_VIEW_RESET : "");
	if (!run.duration_null)
		printf(" in %s", arl_fmt_duration(run.duration_ms, dur, sizeof(dur)));
	printf(": %lld jobs, %lld succeeded, %lld failed, %lld skipped, %lld cancelled",
	       (long long)run.jobs_total, (long long)run.jobs_succeeded, (long long)run.jobs_failed,
	       (long long)run.jobs_skipped, (long long)run.jobs_cancelled);
	if (run.carried_failed || run.carried_cancelled)
		printf(
		    " (of the skipped, %lld carry a failure and %lld a cancel from earlier runs)",
		    (long long)run.carried_failed, (long long)run.carried_cancelled);
	putchar('\n');
	arl_run_view_release(&run);
	return 0;
}

static int print_job(void *arg, const struct arl_job_view *j, struct arl_err *err)
{
	struct ctx *c = arg;

	switch (c->format) {
	case F_JSON:
		return json_job(c, j, err);
	case F_CSV:
		return csv_row(c, j, err);
	default:
		return table_row(c, j, err);
	}
}

static int print_results(struct ctx *c, int64_t run_id)
{
	bool color = arl_cli_color(STDOUT_FILENO);

	if (c->format == F_JUNIT)
		return arl_junit_print(stdout, c->store, run_id, c->states, &c->err);
	if (c->format == F_CSV) {
		if (arl_run_metric_names(c->reader, run_id, csv_add_name, &c->metrics, &c->err) < 0)
			return -1;
		csv_header(&c->metrics);
	}
	if (arl_jobs_each(c->reader, run_id, c->states, ARL_JOBS_BY_ID, print_job, c, &c->err) < 0)
		return -1;
	if (c->format == F_JSON)
		arl_view_json_end(&c->arr);
	if (c->format == F_TABLE) {
		if (c->table.nrows)
			arl_view_table_print(&c->table, stdout, arl_view_width(STDOUT_FILENO),
			                     color);
		else
			printf("no jobs%s\n", c->states ? " in the states asked for" : "");
		if (print_footer(c, run_id, color) < 0)
			return -1;
	}
	return 0;
}

int cmd_results(int argc, char **argv)
{
	static const struct arl_opt_choice formats[] = {
	    {"table", F_TABLE}, {"json", F_JSON}, {"csv", F_CSV}, {"junit", F_JUNIT}, {NULL, 0}};
	struct ctx c = {
	    .table = ARL_VIEW_TABLE_INIT(table_cols, sizeof(table_cols) / sizeof(table_cols[0])),
	    .arr = {stdout, 0},
	    .err = ARL_ERR_INIT,
	};
	const char *db = NULL, *run = NULL;
	int64_t run_id;
	int format = F_TABLE, n, ret = ARL_EXIT_INCOMPLETE;
	const struct arl_option opts[] = {
	    ARL_OPT_DB(&db),
	    ARL_OPT_STRING(0, "run", &run, "RUN",
	                   "a run id, 'latest' (the default), or a run name (its\n"
	                   "latest run)"),
	    ARL_OPT_CALLBACK(0, "state", &c.states, parse_states, "STATES",
	                     "only jobs in these states: Pending, Running, Succeeded,\n"
	                     "Failed, Skipped, Cancelled (comma-separated, any case)"),
	    ARL_OPT_CHOICE(0, "format", &format, formats,
	                   "table (default), json (ARL Task-shaped objects), csv\n"
	                   "(RFC 4180, a metric_<name> column per metric; a Skipped\n"
	                   "job shows the metrics of the result it stands for) or\n"
	                   "junit (JUnit XML: a testsuite per job file, a testcase\n"
	                   "per job, the last 4 KiB of stdout and stderr)"),
	    ARL_OPT_END(),
	};
	const struct arl_command_usage u = {.name = "results",
	                                    .synopsis = synopsis,
	                                    .about = about,
	                                    .options = opts,
	                                    .epilog = epilog};

	if ((n = arl_options_parse(&u, argc, argv, 0, &ret)) < 0)
		return ret;
	if (n > 0)
		return arl_cli_unexpected(&u, argv[0]);
	ret = ARL_EXIT_INCOMPLETE;
	c.format = (enum format)format;

	/*
	 * Read-write (but never creating) rather than read-only: opening repairs runs whose
	 * runner died, so a crashed run shows as interrupted instead of running forever.
	 */
	if (arl_store_open(&c.store, arl_cli_db_path(db), ARL_STORE_NOCREATE, &c.err) < 0)
		goto out;
	if (arl_store_run_resolve(c.store, run, &run_id, &c.err) < 0) {
		if (c.err.code == ARL_E_INVALID)
			ret = ARL_EXIT_FAILED;
		goto out;
	}
	arl_job_reader_new(c.store, &c.reader);
	if (print_results(&c, run_id) < 0)
		goto out;
	ret = ARL_EXIT_OK;
out:
	if (ret != ARL_EXIT_OK)
		arl_view_error(&c.err);
	arl_job_reader_free(c.reader);
	arl_view_table_release(&c.table);
	csv_release(&c.metrics);
	arl_store_close(c.store);
	return ret;
}
