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
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "buf.h"
#include "cli.h"
#include "err.h"
#include "result.h"
#include "store.h"
#include "store_view.h"
#include "util.h"
#include "banned.h"

static const char usage_text[] =
    "usage: arl-batch results [--db PATH] [--run ID|latest|NAME] [--state STATE[,STATE...]]\n"
    "                         [--format table|json|csv|junit]\n";

static const char help_text[] =
    "\n"
    "Show the jobs of a run.\n"
    "\n"
    "  --db PATH         results database (default $ARL_BATCH_DB, else ./arl-batch.db)\n"
    "  --run RUN         a run id, 'latest' (the default), or a run name (its latest run)\n"
    "  --state STATES    only jobs in these states: Pending, Running, Succeeded, Failed,\n"
    "                    Skipped, Cancelled (comma-separated, any case)\n"
    "  --format FORMAT   table (default), json (ARL Task-shaped objects), csv (RFC 4180)\n"
    "                    or junit (JUnit XML: one testsuite, a testcase per job)\n";

static const char run_sql[] =
    "SELECT id, name, status, started_at, duration_ms, jobs_total, jobs_succeeded,"
    " jobs_failed, jobs_skipped, jobs_cancelled, host FROM runs WHERE id = ?1";

static const char jobs_sql[] =
    "SELECT j.id, j.key, j.name, j.file, j.pool, j.state, j.attempts, j.exit_code,"
    " j.error_class, j.error, j.started_at, j.finished_at, j.duration_ms, j.item, j.labels,"
    " j.spec_hash, j.skipped_from, (SELECT p.run_id FROM jobs p WHERE p.id = j.skipped_from)"
    " FROM jobs j WHERE j.run_id = ?1 ORDER BY j.id";

/* Columns of jobs_sql, in SELECT order. */
enum {
	J_ID,
	J_KEY,
	J_NAME,
	J_FILE,
	J_POOL,
	J_STATE,
	J_ATTEMPTS,
	J_EXIT,
	J_CLASS,
	J_ERROR,
	J_STARTED,
	J_FINISHED,
	J_DURATION,
	J_ITEM,
	J_LABELS,
	J_SPEC,
	J_SKIPPED_FROM,
	J_SKIPPED_RUN
};

/* The steps of the last attempt, in the order they ran. */
static const char steps_sql[] =
    "SELECT name, type, phase, state, exit_code, duration_ms, stdout, stderr,"
    " stdout_truncated, stderr_truncated FROM steps WHERE attempt_id ="
    " (SELECT id FROM attempts WHERE job_id = ?1 ORDER BY number DESC LIMIT 1)"
    " ORDER BY idx";

/* Columns of steps_sql, in SELECT order. */
enum {
	S_NAME,
	S_TYPE,
	S_PHASE,
	S_STATE,
	S_EXIT,
	S_DURATION,
	S_STDOUT,
	S_STDERR,
	S_OUT_TRUNC,
	S_ERR_TRUNC
};

static const char metrics_sql[] = "SELECT name, value FROM metrics WHERE job_id = ?1 ORDER BY name";

enum format { F_TABLE, F_JSON, F_CSV, F_JUNIT };

struct ctx {
	struct arl_store *store;
	sqlite3_stmt *run, *jobs, *steps, *metrics;
	enum format format;
	unsigned states; /* bit (1 << enum arl_state); 0: all */
	struct arl_err err;
};

/* The concatenated output of a job's last attempt, as a Task would report it. */
struct output {
	struct arl_buf out, err;
	bool out_trunc, err_trunc;
};

static const char *col_text(sqlite3_stmt *st, int c)
{
	return (const char *)sqlite3_column_text(st, c);
}

static int parse_states(const char *arg, unsigned *mask)
{
	char *copy = arl_xstrdup(arg), *save = NULL, *tok;
	int ret = 0;

	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int i;

		for (i = ARL_STATE_PENDING; i <= ARL_STATE_CANCELLED; i++)
			if (!strcasecmp(tok, arl_state_name((enum arl_state)i)))
				break;
		if (i > ARL_STATE_CANCELLED) {
			fprintf(
			    stderr,
			    "arl-batch results: unknown state '%s' (Pending, Running, Succeeded,"
			    " Failed, Skipped, Cancelled)\n",
			    tok);
			ret = -1;
			break;
		}
		*mask |= 1u << i;
	}
	free(copy);
	return ret;
}

/*
 * The --state filter runs here rather than in SQL: it is the same for all four formats, and
 * a run's jobs are read once either way.
 */
static bool wanted(const struct ctx *c, const char *state)
{
	if (!c->states)
		return true;
	for (int i = ARL_STATE_PENDING; i <= ARL_STATE_CANCELLED; i++)
		if (state && !strcmp(state, arl_state_name((enum arl_state)i)))
			return c->states & (1u << i);
	return false;
}

/* Rebinds a per-job statement; the caller steps it and calls stmt_reset(). */
static void bind_job(sqlite3_stmt *st, int64_t job_id)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	sqlite3_bind_int64(st, 1, job_id);
}

static void stmt_reset(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

static void output_release(struct output *o)
{
	arl_buf_release(&o->out);
	arl_buf_release(&o->err);
}

/* Adds the main steps' output to @o and, when @steps is not NULL, one object per step. */
static int read_steps(struct ctx *c, int64_t job_id, struct output *o, cJSON *steps)
{
	int rc;

	bind_job(c->steps, job_id);
	while ((rc = arl_store_step(c->store, c->steps, &c->err)) == 1) {
		sqlite3_stmt *st = c->steps;

		if (steps) {
			cJSON *s = cJSON_CreateObject();

			cJSON_AddItemToArray(steps, s);
			arl_view_json_col(s, "name", st, S_NAME);
			arl_view_json_col(s, "type", st, S_TYPE);
			arl_view_json_col(s, "phase", st, S_PHASE);
			arl_view_json_col(s, "state", st, S_STATE);
			arl_view_json_col(s, "exitCode", st, S_EXIT);
			arl_view_json_col(s, "durationMs", st, S_DURATION);
		}
		if (strcmp(col_text(st, S_PHASE), "main") != 0)
			continue;
		if (sqlite3_column_type(st, S_STDOUT) == SQLITE_TEXT)
			arl_buf_add(&o->out, sqlite3_column_text(st, S_STDOUT),
			            (size_t)sqlite3_column_bytes(st, S_STDOUT));
		if (sqlite3_column_type(st, S_STDERR) == SQLITE_TEXT)
			arl_buf_add(&o->err, sqlite3_column_text(st, S_STDERR),
			            (size_t)sqlite3_column_bytes(st, S_STDERR));
		o->out_trunc |= sqlite3_column_int(st, S_OUT_TRUNC) != 0;
		o->err_trunc |= sqlite3_column_int(st, S_ERR_TRUNC) != 0;
	}
	stmt_reset(c->steps);
	return rc;
}

/* ---- json ---- */

static int json_job(struct ctx *c, struct arl_view_json_array *arr)
{
	sqlite3_stmt *st = c->jobs;
	int64_t job_id = sqlite3_column_int64(st, J_ID);
	cJSON *job = cJSON_CreateObject(), *md, *status, *steps, *metrics;
	struct output o = {ARL_BUF_INIT, ARL_BUF_INIT, false, false};
	char dur[32];
	int rc;

	md = cJSON_AddObjectToObject(job, "metadata");
	arl_view_json_col(md, "name", st, J_NAME);
	arl_view_json_raw(md, "labels", col_text(st, J_LABELS));
	status = cJSON_AddObjectToObject(job, "status");
	arl_view_json_col(status, "state", st, J_STATE);
	arl_view_json_col(status, "exitCode", st, J_EXIT);
	/* Filled below, once the steps are read; added now to keep the Task's field order. */
	cJSON_AddStringToObject(status, "stdout", "");
	cJSON_AddStringToObject(status, "stderr", "");
	arl_view_json_str(
	    status, "duration",
	    sqlite3_column_type(st, J_DURATION) == SQLITE_NULL
	        ? NULL
	        : arl_view_go_duration(sqlite3_column_int64(st, J_DURATION), dur, sizeof(dur)));
	arl_view_json_col(status, "startTime", st, J_STARTED);
	arl_view_json_col(status, "completionTime", st, J_FINISHED);

	arl_view_json_col(job, "id", st, J_ID);
	arl_view_json_col(job, "key", st, J_KEY);
	arl_view_json_col(job, "file", st, J_FILE);
	arl_view_json_col(job, "pool", st, J_POOL);
	arl_view_json_col(job, "attempts", st, J_ATTEMPTS);
	arl_view_json_col(job, "errorClass", st, J_CLASS);
	arl_view_json_col(job, "error", st, J_ERROR);
	arl_view_json_raw(job, "item", col_text(st, J_ITEM));
	arl_view_json_col(job, "specHash", st, J_SPEC);
	arl_view_json_col(job, "skippedFrom", st, J_SKIPPED_FROM);
	steps = cJSON_AddArrayToObject(job, "steps");
	rc = read_steps(c, job_id, &o, steps);
	if (rc < 0)
		goto out;
	cJSON_ReplaceItemInObjectCaseSensitive(status, "stdout",
	                                       cJSON_CreateString(o.out.p ? o.out.p : ""));
	cJSON_ReplaceItemInObjectCaseSensitive(status, "stderr",
	                                       cJSON_CreateString(o.err.p ? o.err.p : ""));
	cJSON_AddBoolToObject(job, "stdoutTruncated", o.out_trunc);
	cJSON_AddBoolToObject(job, "stderrTruncated", o.err_trunc);

	metrics = cJSON_AddObjectToObject(job, "metrics");
	bind_job(c->metrics, job_id);
	while ((rc = arl_store_step(c->store, c->metrics, &c->err)) == 1)
		arl_view_json_col(metrics, col_text(c->metrics, 0), c->metrics, 1);
	stmt_reset(c->metrics);
out:
	output_release(&o);
	if (rc < 0) {
		cJSON_Delete(job);
		return -1;
	}
	arl_view_json_item(arr, job);
	return 0;
}

/* ---- csv ---- */

static void csv_header(void)
{
	static const char *const names[] = {
	    "run_id",     "key",         "name",        "file",        "pool",
	    "state",      "attempts",    "exit_code",   "error_class", "error",
	    "started_at", "finished_at", "duration_ms",
	};
	size_t n = sizeof(names) / sizeof(names[0]);

	for (size_t i = 0; i < n; i++)
		arl_view_csv(stdout, names[i], strlen(names[i]), i + 1 == n);
}

static void csv_row(int64_t run_id, sqlite3_stmt *st)
{
	static const int cols[] = {J_KEY,  J_NAME,  J_FILE,  J_POOL,    J_STATE,    J_ATTEMPTS,
	                           J_EXIT, J_CLASS, J_ERROR, J_STARTED, J_FINISHED, J_DURATION};
	size_t n = sizeof(cols) / sizeof(cols[0]);
	char id[24];

	snprintf(id, sizeof(id), "%lld", (long long)run_id);
	arl_view_csv(stdout, id, strlen(id), false);
	for (size_t i = 0; i < n; i++) {
		const char *v = col_text(st, cols[i]);

		/* NULL is an empty field: CSV has no null, and "" never appears in these columns. */
		arl_view_csv(stdout, v, v ? (size_t)sqlite3_column_bytes(st, cols[i]) : 0,
		             i + 1 == n);
	}
}

/* ---- table ---- */

/* One line per job; the class and the message share the last column, which the terminal
 * width cuts first. A Skipped job says which run it succeeded in. */
static void table_row(struct arl_view_table *t, sqlite3_stmt *st)
{
	const char *state = col_text(st, J_STATE), *cls = col_text(st, J_CLASS);
	const char *error = col_text(st, J_ERROR);
	char dur[32], *why = NULL;

	if (cls && error)
		why = arl_xasprintf("%s: %s", cls, error);
	else if (cls || error)
		why = arl_xstrdup(cls ? cls : error);
	else if (sqlite3_column_type(st, J_SKIPPED_RUN) != SQLITE_NULL)
		why = arl_xasprintf("succeeded in run %lld",
		                    (long long)sqlite3_column_int64(st, J_SKIPPED_RUN));
	{
		const char *cells[] = {
		    state,
		    col_text(st, J_KEY),
		    col_text(st, J_ATTEMPTS),
		    col_text(st, J_EXIT),
		    sqlite3_column_type(st, J_DURATION) == SQLITE_NULL
		        ? NULL
		        : arl_fmt_duration(sqlite3_column_int64(st, J_DURATION), dur, sizeof(dur)),
		    why ? why : "",
		};
		const char *colors[sizeof(cells) / sizeof(cells[0])] = {
		    arl_view_state_color(state),
		};

		arl_view_table_add(t, cells, colors);
	}
	free(why);
}

/* ---- junit ---- */

/* XML 1.0 text and attribute escaping; a control character XML forbids becomes U+FFFD. */
static void xml_escape(FILE *out, const char *s, size_t len, bool attr)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		switch (ch) {
		case '&':
			fputs("&amp;", out);
			break;
		case '<':
			fputs("&lt;", out);
			break;
		case '>':
			fputs("&gt;", out);
			break;
		case '"':
			fputs(attr ? "&quot;" : "\"", out);
			break;
		case '\n':
			fputs(attr ? "&#10;" : "\n", out);
			break;
		case '\r':
			fputs("&#13;", out);
			break;
		case '\t':
			fputs(attr ? "&#9;" : "\t", out);
			break;
		default:
			if (ch < 0x20 || ch == 0x7f)
				fputs("\xEF\xBF\xBD", out);
			else
				fputc(ch, out);
		}
	}
}

static void xml_attr(FILE *out, const char *name, const char *v)
{
	fprintf(out, " %s=\"", name);
	if (v)
		xml_escape(out, v, strlen(v), true);
	fputc('"', out);
}

struct junit_counts {
	size_t tests, failures, errors, skipped;
	int64_t ms;
};

static int junit_case(struct ctx *c, FILE *out, struct junit_counts *n)
{
	sqlite3_stmt *st = c->jobs;
	const char *state = col_text(st, J_STATE), *cls = col_text(st, J_CLASS);
	const char *error = col_text(st, J_ERROR), *key = col_text(st, J_KEY);
	struct output o = {ARL_BUF_INIT, ARL_BUF_INIT, false, false};
	int64_t ms = sqlite3_column_int64(st, J_DURATION);
	char *classname = arl_xstrndup(key, strcspn(key, "/"));
	char *msg = NULL;

	if (read_steps(c, sqlite3_column_int64(st, J_ID), &o, NULL) < 0) {
		free(classname);
		output_release(&o);
		return -1;
	}
	n->tests++;
	n->ms += ms;
	fputs("    <testcase", out);
	xml_attr(out, "name", col_text(st, J_NAME));
	xml_attr(out, "classname", classname);
	fprintf(out, " time=\"%lld.%03lld\"", (long long)(ms / 1000), (long long)(ms % 1000));
	xml_attr(out, "file", col_text(st, J_FILE));
	fputs(">\n", out);
	msg = arl_xstrdup(error ? error : (cls ? cls : state));
	/*
	 * infra and cancelled mean the test could not be carried out (JUnit "error"); failed
	 * and timeout mean it ran and did not pass ("failure"). Skipped jobs succeeded in an
	 * earlier run; Pending and Running ones have not finished.
	 */
	if (!strcmp(state, "Failed") && cls && strcmp(cls, "infra") != 0) {
		n->failures++;
		fputs("      <failure", out);
		xml_attr(out, "type", cls);
		xml_attr(out, "message", msg);
		fputs("/>\n", out);
	} else if (!strcmp(state, "Failed") || !strcmp(state, "Cancelled")) {
		n->errors++;
		fputs("      <error", out);
		xml_attr(out, "type", cls ? cls : "cancelled");
		xml_attr(out, "message", msg);
		fputs("/>\n", out);
	} else if (strcmp(state, "Succeeded") != 0) {
		char *why = !strcmp(state, "Skipped")
		                ? arl_xasprintf("unchanged since a successful earlier run")
		                : arl_xasprintf("not finished (%s)", state);

		n->skipped++;
		fputs("      <skipped", out);
		xml_attr(out, "message", why);
		fputs("/>\n", out);
		free(why);
	}
	if (o.out.len) {
		fputs("      <system-out>", out);
		xml_escape(out, o.out.p, o.out.len, false);
		fputs("</system-out>\n", out);
	}
	if (o.err.len) {
		fputs("      <system-err>", out);
		xml_escape(out, o.err.p, o.err.len, false);
		fputs("</system-err>\n", out);
	}
	fputs("    </testcase>\n", out);
	free(msg);
	free(classname);
	output_release(&o);
	return 0;
}

/*
 * The testsuite element carries the counts, so the cases go to memory first and are copied
 * out after the suite's opening tag.
 */
static int junit_print(struct ctx *c, int64_t run_id)
{
	struct junit_counts n = {0};
	sqlite3_stmt *run = c->run;
	char *cases = NULL, ts[24];
	size_t len = 0;
	FILE *mem = open_memstream(&cases, &len);
	int rc, ret = -1;

	if (!mem)
		return arl_error_errno(&c->err, errno, "cannot buffer the JUnit report");
	while ((rc = arl_store_step(c->store, c->jobs, &c->err)) == 1)
		if (wanted(c, col_text(c->jobs, J_STATE)) && junit_case(c, mem, &n) < 0)
			goto out;
	if (rc < 0)
		goto out;
	if (fclose(mem) != 0) {
		mem = NULL;
		arl_error_errno(&c->err, errno, "cannot buffer the JUnit report");
		goto out;
	}
	mem = NULL;
	sqlite3_bind_int64(run, 1, run_id);
	if ((rc = arl_store_step(c->store, run, &c->err)) <= 0) {
		if (rc == 0)
			arl_error(&c->err, ARL_E_DB, "run %lld vanished", (long long)run_id);
		goto out;
	}
	fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites", stdout);
	xml_attr(stdout, "name", "arl-batch");
	fprintf(stdout, " tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" skipped=\"%zu\"", n.tests,
	        n.failures, n.errors, n.skipped);
	fprintf(stdout, " time=\"%lld.%03lld\">\n", (long long)(n.ms / 1000),
	        (long long)(n.ms % 1000));
	fputs("  <testsuite", stdout);
	xml_attr(stdout, "name", col_text(run, 1));
	fprintf(stdout, " id=\"%lld\"", (long long)run_id);
	fprintf(stdout, " tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" skipped=\"%zu\"", n.tests,
	        n.failures, n.errors, n.skipped);
	fprintf(stdout, " time=\"%lld.%03lld\"", (long long)(n.ms / 1000),
	        (long long)(n.ms % 1000));
	/* The JUnit schema's timestamp has no zone: it is UTC, like everything stored. */
	if (col_text(run, 3) && strlen(col_text(run, 3)) >= 19) {
		snprintf(ts, sizeof(ts), "%.19s", col_text(run, 3));
		xml_attr(stdout, "timestamp", ts);
	}
	xml_attr(stdout, "hostname", col_text(run, 10));
	fputs(">\n", stdout);
	fwrite(cases, 1, len, stdout);
	fputs("  </testsuite>\n</testsuites>\n", stdout);
	ret = 0;
out:
	if (mem)
		fclose(mem);
	stmt_reset(run);
	free(cases);
	return ret;
}

/* ---- the command ---- */

/* The run's own summary under the table: its status and counts, whatever --state hid. */
static int print_footer(struct ctx *c, int64_t run_id, bool color)
{
	sqlite3_stmt *run = c->run;
	const char *status;
	char dur[32];
	int rc;

	sqlite3_bind_int64(run, 1, run_id);
	if ((rc = arl_store_step(c->store, run, &c->err)) <= 0) {
		stmt_reset(run);
		return rc < 0 ? -1 : 0;
	}
	status = col_text(run, 2);
	printf("\nrun %lld '%s' %s%s%s", (long long)run_id, col_text(run, 1),
	       color && arl_view_state_color(status) ? arl_view_state_color(status) : "", status,
	       color && arl_view_state_color(status) ? ARL_VIEW_RESET : "");
	if (sqlite3_column_type(run, 4) != SQLITE_NULL)
		printf(" in %s", arl_fmt_duration(sqlite3_column_int64(run, 4), dur, sizeof(dur)));
	printf(": %lld jobs, %lld succeeded, %lld failed, %lld skipped, %lld cancelled\n",
	       (long long)sqlite3_column_int64(run, 5), (long long)sqlite3_column_int64(run, 6),
	       (long long)sqlite3_column_int64(run, 7), (long long)sqlite3_column_int64(run, 8),
	       (long long)sqlite3_column_int64(run, 9));
	stmt_reset(run);
	return 0;
}

static int print_results(struct ctx *c, int64_t run_id)
{
	static const struct arl_view_col cols[] = {
	    {"STATE", false, false}, {"JOB", false, true},      {"ATTEMPTS", true, false},
	    {"EXIT", true, false},   {"DURATION", true, false}, {"ERROR", false, true},
	};
	struct arl_view_table table = ARL_VIEW_TABLE_INIT(cols, sizeof(cols) / sizeof(cols[0]));
	struct arl_view_json_array arr = {stdout, 0};
	bool color = arl_cli_color(STDOUT_FILENO);
	int rc, ret = -1;

	sqlite3_bind_int64(c->jobs, 1, run_id);
	if (c->format == F_JUNIT)
		return junit_print(c, run_id);
	if (c->format == F_CSV)
		csv_header();
	while ((rc = arl_store_step(c->store, c->jobs, &c->err)) == 1) {
		if (!wanted(c, col_text(c->jobs, J_STATE)))
			continue;
		switch (c->format) {
		case F_JSON:
			if (json_job(c, &arr) < 0)
				goto out;
			break;
		case F_CSV:
			csv_row(run_id, c->jobs);
			break;
		default:
			table_row(&table, c->jobs);
			break;
		}
	}
	if (rc < 0)
		goto out;
	if (c->format == F_JSON)
		arl_view_json_end(&arr);
	if (c->format == F_TABLE) {
		if (table.nrows)
			arl_view_table_print(&table, stdout, arl_view_width(STDOUT_FILENO), color);
		else
			printf("no jobs%s\n", c->states ? " in the states asked for" : "");
		if (print_footer(c, run_id, color) < 0)
			goto out;
	}
	ret = 0;
out:
	arl_view_table_release(&table);
	return ret;
}

int cmd_results(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"db", required_argument, NULL, 'd'},    {"run", required_argument, NULL, 'r'},
	    {"state", required_argument, NULL, 's'}, {"format", required_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
	};
	static const char *const formats[] = {"table", "json", "csv", "junit"};
	struct ctx c = {.err = ARL_ERR_INIT};
	const char *db = NULL, *run = NULL, *format = "table";
	int64_t run_id;
	int ch, ret = ARL_EXIT_INCOMPLETE;
	size_t i;

	optind = 0; /* glibc: rescan from argv[1] with fresh state */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			db = optarg;
			break;
		case 'r':
			run = optarg;
			break;
		case 's':
			if (parse_states(optarg, &c.states) < 0)
				return ARL_EXIT_USAGE;
			break;
		case 'f':
			format = optarg;
			break;
		case 'h':
			fputs(usage_text, stdout);
			fputs(help_text, stdout);
			return ARL_EXIT_OK;
		default:
			return arl_view_bad_option("results", ch, argv, usage_text);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "arl-batch results: unexpected argument '%s'\n", argv[optind]);
		fputs(usage_text, stderr);
		return ARL_EXIT_USAGE;
	}
	for (i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
		if (!strcmp(format, formats[i]))
			break;
	if (i == sizeof(formats) / sizeof(formats[0])) {
		fprintf(stderr,
		        "arl-batch results: --format must be table, json, csv or junit, got '%s'\n",
		        format);
		return ARL_EXIT_USAGE;
	}
	c.format = (enum format)i;

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
	if (arl_store_prepare(c.store, run_sql, &c.run, NULL, &c.err) < 0 ||
	    arl_store_prepare(c.store, jobs_sql, &c.jobs, NULL, &c.err) < 0 ||
	    arl_store_prepare(c.store, steps_sql, &c.steps, NULL, &c.err) < 0 ||
	    arl_store_prepare(c.store, metrics_sql, &c.metrics, NULL, &c.err) < 0 ||
	    print_results(&c, run_id) < 0)
		goto out;
	ret = ARL_EXIT_OK;
out:
	if (ret != ARL_EXIT_OK)
		arl_view_error(&c.err);
	sqlite3_finalize(c.run);
	sqlite3_finalize(c.jobs);
	sqlite3_finalize(c.steps);
	sqlite3_finalize(c.metrics);
	arl_store_close(c.store);
	return ret;
}
