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
#include "cmd/cli.h"
#include "err.h"
#include "result.h"
#include "store/store.h"
#include "view/store_view.h"
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
    "  --format FORMAT   table (default), json (ARL Task-shaped objects), csv (RFC 4180,\n"
    "                    a metric_<name> column per metric; a Skipped job shows the\n"
    "                    metrics of the result it stands for) or junit (JUnit XML: a\n"
    "                    testsuite per job file, a testcase per job, the last 4 KiB of\n"
    "                    stdout and stderr)\n"
    "\n"
    "A Skipped job counts as the result it stands for: every format shows that result as\n"
    "carried from the run it comes from (JUnit: a carried failure is a <failure>).\n";

static const char run_sql[] =
    "SELECT id, name, status, started_at, duration_ms, jobs_total, jobs_succeeded,"
    " jobs_failed, jobs_skipped, jobs_cancelled, host, " ARL_SQL_RUN_CARRIED(
        "Failed") ","
                  " " ARL_SQL_RUN_CARRIED("Cancelled") " FROM runs WHERE id = ?1";

/*
 * A Skipped job is reported with the result it stands for (s), marked as carried: a carried
 * failure is a failure of this run too (docs/database.md), whatever state its own row has.
 */
#define CARRIED_COLS "s.run_id, s.state, s.error_class, s.error, s.exit_code, s.attempts"
#define CARRIED_JOIN "LEFT JOIN jobs s ON j.state = 'Skipped' AND s.id = j.skipped_from"

static const char jobs_sql[] =
    "SELECT j.id, j.key, j.name, j.file, j.pool, j.state, j.attempts, j.exit_code,"
    " j.error_class, j.error, j.started_at, j.finished_at, j.duration_ms, j.item, j.labels,"
    " j.spec_hash, j.skipped_from, " CARRIED_COLS " FROM jobs j " CARRIED_JOIN
    " WHERE j.run_id = ?1 ORDER BY j.id";

/*
 * jobs_sql with --state: the states go to SQL as well, so that the (run_id, state) index
 * reads only the jobs asked for (the 30 000 Failed of a 500 000-job run, not all of them:
 * see BENCHMARKS.md). INDEXED BY: with ANALYZE statistics and bound states the planner
 * otherwise prefers scanning the whole table in id order to save the sort. ?2..?7 are the
 * wanted state names; those left unbound are NULL and match nothing.
 */
static const char jobs_states_sql[] =
    "SELECT j.id, j.key, j.name, j.file, j.pool, j.state, j.attempts, j.exit_code,"
    " j.error_class, j.error, j.started_at, j.finished_at, j.duration_ms, j.item, j.labels,"
    " j.spec_hash, j.skipped_from, " CARRIED_COLS " FROM jobs j INDEXED BY jobs_run_state"
    " " CARRIED_JOIN " WHERE j.run_id = ?1 AND j.state IN (?2, ?3, ?4, ?5, ?6, ?7) ORDER BY j.id";

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
	J_SKIPPED_RUN, /* the CARRIED_COLS: NULL unless the job is Skipped with a result */
	J_FROM_STATE,
	J_FROM_CLASS,
	J_FROM_ERROR,
	J_FROM_EXIT,
	J_FROM_ATTEMPTS
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
 * The --state filter: the same for all four formats. For table, json and csv it is also in
 * jobs_states_sql (the index then skips the other jobs); JUnit reads a run's jobs once
 * either way.
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
	if (sqlite3_column_type(st, J_FROM_STATE) != SQLITE_NULL) {
		cJSON *from = cJSON_AddObjectToObject(job, "carried");

		arl_view_json_col(from, "fromRun", st, J_SKIPPED_RUN);
		arl_view_json_col(from, "fromJob", st, J_SKIPPED_FROM);
		arl_view_json_col(from, "state", st, J_FROM_STATE);
		arl_view_json_col(from, "errorClass", st, J_FROM_CLASS);
		arl_view_json_col(from, "exitCode", st, J_FROM_EXIT);
		arl_view_json_col(from, "attempts", st, J_FROM_ATTEMPTS);
		arl_view_json_col(from, "error", st, J_FROM_ERROR);
	}
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

/*
 * The metric names of a run, one column each (metric_<name>) after the fixed columns, in
 * name order. A Skipped job shows the metrics of the job whose result stands for it, so the
 * table of a resumed run is complete.
 */
static const char csv_names_sql[] =
    "SELECT DISTINCT m.name FROM jobs j JOIN metrics m ON m.job_id = coalesce(j.skipped_from, j.id)"
    " WHERE j.run_id = ?1 ORDER BY m.name";

struct csv_metrics {
	char **names;
	size_t n, cap;
};

static void csv_header(const struct csv_metrics *m)
{
	static const char *const names[] = {
	    "run_id",        "key",           "name",        "file",         "pool",
	    "state",         "attempts",      "exit_code",   "error_class",  "error",
	    "started_at",    "finished_at",   "duration_ms", "skipped_from", "carried_from_run",
	    "carried_state", "carried_class",
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

static int csv_load_names(struct ctx *c, int64_t run_id, struct csv_metrics *m)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (arl_store_prepare(c->store, csv_names_sql, &st, NULL, &c->err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, run_id);
	while ((rc = arl_store_step(c->store, st, &c->err)) == 1) {
		ARL_GROW(m->names, m->cap, m->n + 1);
		m->names[m->n++] = arl_xstrdup(col_text(st, 0));
	}
	sqlite3_finalize(st);
	return rc < 0 ? -1 : 0;
}

static void csv_release(struct csv_metrics *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->names[i]);
	free(m->names);
}

static int csv_row(struct ctx *c, int64_t run_id, const struct csv_metrics *m)
{
	static const int cols[] = {J_KEY,          J_NAME,        J_FILE,       J_POOL,
	                           J_STATE,        J_ATTEMPTS,    J_EXIT,       J_CLASS,
	                           J_ERROR,        J_STARTED,     J_FINISHED,   J_DURATION,
	                           J_SKIPPED_FROM, J_SKIPPED_RUN, J_FROM_STATE, J_FROM_CLASS};
	size_t n = sizeof(cols) / sizeof(cols[0]), col = 0;
	sqlite3_stmt *st = c->jobs;
	char id[24];
	int rc = 0;

	snprintf(id, sizeof(id), "%lld", (long long)run_id);
	arl_view_csv(stdout, id, strlen(id), false);
	for (size_t i = 0; i < n; i++) {
		const char *v = col_text(st, cols[i]);

		/* NULL is an empty field: CSV has no null, and "" never appears in these columns. */
		arl_view_csv(stdout, v, v ? (size_t)sqlite3_column_bytes(st, cols[i]) : 0,
		             i + 1 == n && !m->n);
	}
	if (!m->n)
		return 0;
	/* Both lists are in name order (SQLite's BINARY collation is strcmp's): merge them. */
	bind_job(c->metrics, sqlite3_column_type(st, J_SKIPPED_FROM) != SQLITE_NULL
	                         ? sqlite3_column_int64(st, J_SKIPPED_FROM)
	                         : sqlite3_column_int64(st, J_ID));
	while (col < m->n && (rc = arl_store_step(c->store, c->metrics, &c->err)) == 1) {
		const char *name = col_text(c->metrics, 0), *v = col_text(c->metrics, 1);

		while (col < m->n && strcmp(m->names[col], name) < 0) {
			arl_view_csv(stdout, "", 0, col + 1 == m->n);
			col++;
		}
		if (col < m->n && !strcmp(m->names[col], name)) {
			arl_view_csv(stdout, v, v ? (size_t)sqlite3_column_bytes(c->metrics, 1) : 0,
			             col + 1 == m->n);
			col++;
		}
	}
	stmt_reset(c->metrics);
	for (; col < m->n; col++)
		arl_view_csv(stdout, "", 0, col + 1 == m->n);
	return rc < 0 ? -1 : 0;
}

/* ---- table ---- */

/* One line per job; the class and the message share the last column, which the terminal
 * width cuts first. A Skipped job says which run its result comes from, and what it was. */
static void table_row(struct arl_view_table *t, sqlite3_stmt *st)
{
	const char *state = col_text(st, J_STATE), *cls = col_text(st, J_CLASS);
	const char *error = col_text(st, J_ERROR);
	const char *from = col_text(st, J_FROM_STATE), *from_cls = col_text(st, J_FROM_CLASS);
	const char *from_err = col_text(st, J_FROM_ERROR);
	char dur[32], *why = NULL;

	if (cls && error)
		why = arl_xasprintf("%s: %s", cls, error);
	else if (cls || error)
		why = arl_xstrdup(cls ? cls : error);
	else if (from && !strcmp(from, "Succeeded"))
		why = arl_xasprintf("succeeded in run %lld",
		                    (long long)sqlite3_column_int64(st, J_SKIPPED_RUN));
	else if (from)
		why = arl_xasprintf("carried from run %lld: %s%s%s%s%s%s",
		                    (long long)sqlite3_column_int64(st, J_SKIPPED_RUN), from,
		                    from_cls ? " (" : "", from_cls ? from_cls : "",
		                    from_cls ? ")" : "", from_err ? ": " : "",
		                    from_err ? from_err : "");
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
		    arl_view_state_color(from && strcmp(from, "Succeeded") ? from : state),
		};

		arl_view_table_add(t, cells, colors);
	}
	free(why);
}

/* ---- junit ---- */

/*
 * One <testsuite> per job file, one <testcase> per job, in the shape Jenkins, GitLab and the
 * Ant-derived schemas share (tests/integration/junit.xsd is that shape; xmllint checks it).
 * The jobs of a file come out together and in the order they were recorded; the window
 * function keeps that order even for a run whose files' jobs were interleaved.
 */
static const char junit_sql[] =
    "SELECT j.id, j.key, j.name, j.file, j.state, j.error_class, j.error, j.duration_ms,"
    " j.started_at, j.attempts, j.exit_code, s.state, s.run_id, s.error_class, s.error,"
    " s.attempts, s.exit_code, s.id"
    " FROM jobs j LEFT JOIN jobs s ON s.id = j.skipped_from WHERE j.run_id = ?1"
    " ORDER BY min(j.id) OVER (PARTITION BY j.file), j.id";

/* Columns of junit_sql, in SELECT order. */
enum {
	U_ID,
	U_KEY,
	U_NAME,
	U_FILE,
	U_STATE,
	U_CLASS,
	U_ERROR,
	U_DURATION,
	U_STARTED,
	U_ATTEMPTS,
	U_EXIT,
	U_FROM_STATE,
	U_FROM_RUN,
	U_FROM_CLASS,
	U_FROM_ERROR,
	U_FROM_ATTEMPTS,
	U_FROM_EXIT,
	U_FROM_ID
};

/* The output kept per stream and test case: its end, where a failure shows. */
#define JUNIT_TAIL 4096

/*
 * Appends @s to @out escaped for XML 1.0 text (@attr: an attribute value). The stored output is
 * meant to be UTF-8 already; anything XML cannot carry (an invalid sequence, a control
 * character, U+FFFE/U+FFFF) becomes U+FFFD so the document always parses.
 */
static void xml_escape(FILE *out, const char *s, size_t len, bool attr)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		unsigned char ch = p[i];
		size_t n;
		uint32_t cp;

		if (ch < 0x80) {
			i++;
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
			continue;
		}
		n = ch >= 0xF0 && ch <= 0xF4   ? 4
		    : ch >= 0xE0 && ch <= 0xEF ? 3
		    : ch >= 0xC2 && ch <= 0xDF ? 2
		                               : 0;
		cp = n == 4 ? ch & 0x07u : n == 3 ? ch & 0x0Fu : ch & 0x1Fu;
		for (size_t k = 1; n && k < n; k++) {
			if (i + k >= len || (p[i + k] & 0xC0) != 0x80) {
				n = 0;
				break;
			}
			cp = cp << 6 | (p[i + k] & 0x3Fu);
		}
		/* Overlong forms, surrogates, beyond U+10FFFF and XML's two non-characters. */
		if (!n || (n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
		    (cp >= 0xD800 && cp <= 0xDFFF) || cp == 0xFFFE || cp == 0xFFFF ||
		    (cp >= 0x80 && cp <= 0x9F)) {
			fputs("\xEF\xBF\xBD", out);
			i += n ? n : 1;
			continue;
		}
		fwrite(p + i, 1, n, out);
		i += n;
	}
}

static void xml_attr(FILE *out, const char *name, const char *v)
{
	fprintf(out, " %s=\"", name);
	if (v)
		xml_escape(out, v, strlen(v), true);
	fputc('"', out);
}

/* Seconds with milliseconds, as JUnit's time attributes want them. */
static void xml_time(FILE *out, int64_t ms)
{
	if (ms < 0)
		ms = 0;
	fprintf(out, " time=\"%lld.%03lld\"", (long long)(ms / 1000), (long long)(ms % 1000));
}

/* JUnit's timestamp: ISO 8601 to the second, no zone (it is UTC, like everything stored). */
static void xml_timestamp(FILE *out, const char *rfc3339)
{
	char ts[24];

	if (!rfc3339 || strlen(rfc3339) < 19)
		return;
	snprintf(ts, sizeof(ts), "%.19s", rfc3339);
	xml_attr(out, "timestamp", ts);
}

/* The last JUNIT_TAIL bytes of @b (from a character boundary), marking what was left out. */
static void junit_tail(FILE *out, const char *tag, const struct arl_buf *b, bool stored_trunc)
{
	size_t start = 0;

	if (!b->len)
		return;
	if (b->len > JUNIT_TAIL) {
		const char *nl;

		start = b->len - JUNIT_TAIL;
		/* Start at a line when one begins soon, else at least at a character. */
		nl = memchr(b->p + start, '\n', 256);
		if (nl && (size_t)(nl - b->p) + 1 < b->len)
			start = (size_t)(nl - b->p) + 1;
		while (start < b->len && ((unsigned char)b->p[start] & 0xC0) == 0x80)
			start++;
	}
	fprintf(out, "      <%s>", tag);
	if (start || stored_trunc)
		fprintf(out, "[arl-batch: the last %zu bytes%s; arl-batch show has the rest]\n",
		        b->len - start,
		        stored_trunc ? " of the kept output, itself truncated" : "");
	xml_escape(out, b->p + start, b->len - start, false);
	fprintf(out, "</%s>\n", tag);
}

enum junit_kind { JK_PASSED, JK_FAILURE, JK_ERROR, JK_SKIPPED };

/*
 * failed and timeout: the job ran and did not pass (JUnit "failure"). infra and cancelled: it
 * could not be carried out (JUnit "error"). A Skipped job is the result it stands for, so a
 * carried failure stays a failure; a carried success, a Skipped job whose result is gone and
 * Pending and Running ones (never finished) are JUnit "skipped".
 */
static enum junit_kind junit_kind_of(const char *state, const char *cls)
{
	if (!strcmp(state, "Succeeded"))
		return JK_PASSED;
	if (!strcmp(state, "Failed"))
		return cls && (!strcmp(cls, "infra") || !strcmp(cls, "cancelled")) ? JK_ERROR
		                                                                   : JK_FAILURE;
	if (!strcmp(state, "Cancelled"))
		return JK_ERROR;
	return JK_SKIPPED;
}

/* A carried result is the Skipped row's (not a success: that stays JUnit "skipped"). */
static bool junit_carried(sqlite3_stmt *st)
{
	const char *from = col_text(st, U_FROM_STATE);

	return !strcmp(col_text(st, U_STATE), "Skipped") && from && strcmp(from, "Succeeded");
}

static enum junit_kind junit_kind_row(sqlite3_stmt *st)
{
	if (junit_carried(st))
		return junit_kind_of(col_text(st, U_FROM_STATE), col_text(st, U_FROM_CLASS));
	return junit_kind_of(col_text(st, U_STATE), col_text(st, U_CLASS));
}

struct junit_suite {
	size_t tests, failures, errors, skipped;
	int64_t ms;
	char *first_start; /* the earliest job start, or NULL */
};

static void junit_count(struct junit_suite *su, sqlite3_stmt *st)
{
	const char *started = col_text(st, U_STARTED);

	su->tests++;
	switch (junit_kind_row(st)) {
	case JK_FAILURE:
		su->failures++;
		break;
	case JK_ERROR:
		su->errors++;
		break;
	case JK_SKIPPED:
		su->skipped++;
		break;
	default:
		break;
	}
	su->ms += sqlite3_column_int64(st, U_DURATION);
	/* RFC 3339 UTC with a fixed layout: text order is time order. */
	if (started && (!su->first_start || strcmp(started, su->first_start) < 0)) {
		free(su->first_start);
		su->first_start = arl_xstrdup(started);
	}
}

static int junit_case(struct ctx *c, sqlite3_stmt *st, FILE *out)
{
	bool carried = junit_carried(st);
	const char *state = col_text(st, carried ? U_FROM_STATE : U_STATE);
	const char *cls = col_text(st, carried ? U_FROM_CLASS : U_CLASS);
	const char *error = col_text(st, carried ? U_FROM_ERROR : U_ERROR),
	           *key = col_text(st, U_KEY);
	int attempts_col = carried ? U_FROM_ATTEMPTS : U_ATTEMPTS,
	    exit_col = carried ? U_FROM_EXIT : U_EXIT;
	struct output o = {ARL_BUF_INIT, ARL_BUF_INIT, false, false};
	char *classname = arl_xstrndup(key, strcspn(key, "/")), *msg = NULL;
	enum junit_kind kind = junit_kind_row(st);

	/* A carried failure shows the output of the attempt that failed. */
	if (read_steps(c, sqlite3_column_int64(st, carried ? U_FROM_ID : U_ID), &o, NULL) < 0) {
		free(classname);
		output_release(&o);
		return -1;
	}
	fputs("    <testcase", out);
	xml_attr(out, "name", col_text(st, U_NAME));
	xml_attr(out, "classname", classname);
	xml_time(out, sqlite3_column_int64(st, U_DURATION));
	fputs(">\n", out);
	switch (kind) {
	case JK_FAILURE:
	case JK_ERROR:
		if (carried)
			msg = arl_xasprintf("carried from run %lld: %s",
			                    (long long)sqlite3_column_int64(st, U_FROM_RUN),
			                    error ? error : (cls ? cls : state));
		else
			msg = arl_xstrdup(error ? error : (cls ? cls : state));
		fprintf(out, "      <%s", kind == JK_FAILURE ? "failure" : "error");
		xml_attr(out, "type",
		         cls ? cls : (strcmp(state, "Cancelled") ? "failed" : "cancelled"));
		xml_attr(out, "message", msg);
		fputc('>', out);
		fprintf(out, "%s after %lld attempt%s", state,
		        (long long)sqlite3_column_int64(st, attempts_col),
		        sqlite3_column_int64(st, attempts_col) == 1 ? "" : "s");
		if (carried)
			fprintf(out, " in run %lld (carried)",
			        (long long)sqlite3_column_int64(st, U_FROM_RUN));
		if (cls)
			fprintf(out, " (%s)", cls);
		if (sqlite3_column_type(st, exit_col) != SQLITE_NULL)
			fprintf(out, ", exit code %lld",
			        (long long)sqlite3_column_int64(st, exit_col));
		if (error) {
			fputs(": ", out);
			xml_escape(out, error, strlen(error), false);
		}
		fprintf(out, "</%s>\n", kind == JK_FAILURE ? "failure" : "error");
		break;
	case JK_SKIPPED:
		if (!strcmp(state, "Skipped") &&
		    sqlite3_column_type(st, U_FROM_RUN) != SQLITE_NULL) {
			const char *fs = col_text(st, U_FROM_STATE),
			           *fc = col_text(st, U_FROM_CLASS);

			msg = arl_xasprintf("the result of run %lld stands: %s%s%s%s",
			                    (long long)sqlite3_column_int64(st, U_FROM_RUN), fs,
			                    fc ? " (" : "", fc ? fc : "", fc ? ")" : "");
		} else if (!strcmp(state, "Skipped")) {
			msg = arl_xstrdup("skipped: the earlier result it stood for was pruned");
		} else {
			msg = arl_xasprintf("not finished (%s)", state);
		}
		fputs("      <skipped", out);
		xml_attr(out, "message", msg);
		fputs("/>\n", out);
		break;
	default:
		break;
	}
	junit_tail(out, "system-out", &o.out, o.out_trunc);
	junit_tail(out, "system-err", &o.err, o.err_trunc);
	fputs("    </testcase>\n", out);
	free(msg);
	free(classname);
	output_release(&o);
	return 0;
}

static void junit_property(FILE *out, const char *name, const char *value)
{
	fputs("      <property", out);
	xml_attr(out, "name", name);
	xml_attr(out, "value", value ? value : "");
	fputs("/>\n", out);
}

/*
 * Two passes over the run's jobs: the first counts per file (the testsuite's attributes come
 * before its cases), the second prints. Nothing but the counts is held, so the report of a
 * 100 000-job run streams in constant memory.
 */
static int junit_print(struct ctx *c, int64_t run_id)
{
	struct junit_suite *suites = NULL, total = {0};
	size_t nsuites = 0, cap = 0, si = 0;
	sqlite3_stmt *run = c->run, *st = NULL;
	char *prev_file = NULL, *host = NULL, *run_start = NULL, *run_name = NULL, *status = NULL;
	char idbuf[24];
	bool in_txn = false;
	int rc, ret = -1;

	/* One read transaction: both passes see the same snapshot, even of a run in progress. */
	if (sqlite3_exec(arl_store_db(c->store), "BEGIN", NULL, NULL, NULL) == SQLITE_OK)
		in_txn = true;
	sqlite3_bind_int64(run, 1, run_id);
	if ((rc = arl_store_step(c->store, run, &c->err)) <= 0) {
		if (rc == 0)
			arl_error(&c->err, ARL_E_DB, "run %lld vanished", (long long)run_id);
		goto out;
	}
	run_name = arl_xstrdup(col_text(run, 1) ? col_text(run, 1) : "");
	status = arl_xstrdup(col_text(run, 2) ? col_text(run, 2) : "");
	run_start = col_text(run, 3) ? arl_xstrdup(col_text(run, 3)) : NULL;
	host = arl_xstrdup(col_text(run, 10) ? col_text(run, 10) : "localhost");
	stmt_reset(run);

	if (arl_store_prepare(c->store, junit_sql, &st, NULL, &c->err) < 0)
		goto out;
	sqlite3_bind_int64(st, 1, run_id);
	while ((rc = arl_store_step(c->store, st, &c->err)) == 1) {
		const char *file = col_text(st, U_FILE);

		if (!wanted(c, col_text(st, U_STATE)))
			continue;
		if (!prev_file || strcmp(prev_file, file) != 0) {
			ARL_GROW(suites, cap, nsuites + 1);
			memset(&suites[nsuites++], 0, sizeof(*suites));
			free(prev_file);
			prev_file = arl_xstrdup(file);
		}
		junit_count(&suites[nsuites - 1], st);
	}
	if (rc < 0)
		goto out;
	for (size_t i = 0; i < nsuites; i++) {
		total.tests += suites[i].tests;
		total.failures += suites[i].failures;
		total.errors += suites[i].errors;
		total.skipped += suites[i].skipped;
		total.ms += suites[i].ms;
	}

	fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites", stdout);
	xml_attr(stdout, "name", run_name);
	fprintf(stdout, " tests=\"%zu\" failures=\"%zu\" errors=\"%zu\"", total.tests,
	        total.failures, total.errors);
	xml_time(stdout, total.ms);
	fputs(">\n", stdout);

	free(prev_file);
	prev_file = NULL;
	sqlite3_reset(st);
	while ((rc = arl_store_step(c->store, st, &c->err)) == 1) {
		const char *file = col_text(st, U_FILE), *key = col_text(st, U_KEY);

		if (!wanted(c, col_text(st, U_STATE)))
			continue;
		if (!prev_file || strcmp(prev_file, file) != 0) {
			const struct junit_suite *su;
			char *stem;

			if (si >= nsuites) {
				arl_error(&c->err, ARL_E_DB,
				          "the jobs of run %lld changed while read",
				          (long long)run_id);
				goto out;
			}
			su = &suites[si];
			stem = arl_xstrndup(key, strcspn(key, "/"));

			if (prev_file)
				fputs("  </testsuite>\n", stdout);
			free(prev_file);
			prev_file = arl_xstrdup(file);
			fputs("  <testsuite", stdout);
			xml_attr(stdout, "name", stem);
			fprintf(stdout,
			        " tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" skipped=\"%zu\"",
			        su->tests, su->failures, su->errors, su->skipped);
			xml_time(stdout, su->ms);
			xml_timestamp(stdout, su->first_start ? su->first_start : run_start);
			xml_attr(stdout, "hostname", host);
			fprintf(stdout, " id=\"%zu\"", si);
			xml_attr(stdout, "package", run_name);
			xml_attr(stdout, "file", file);
			fputs(">\n    <properties>\n", stdout);
			snprintf(idbuf, sizeof(idbuf), "%lld", (long long)run_id);
			junit_property(stdout, "arl-batch.run.id", idbuf);
			junit_property(stdout, "arl-batch.run.name", run_name);
			junit_property(stdout, "arl-batch.run.status", status);
			junit_property(stdout, "arl-batch.file", file);
			fputs("    </properties>\n", stdout);
			free(stem);
			si++;
		}
		if (junit_case(c, st, stdout) < 0)
			goto out;
	}
	if (rc < 0)
		goto out;
	if (prev_file)
		fputs("  </testsuite>\n", stdout);
	fputs("</testsuites>\n", stdout);
	ret = 0;
out:
	sqlite3_finalize(st);
	if (in_txn)
		sqlite3_exec(arl_store_db(c->store), "COMMIT", NULL, NULL, NULL);
	stmt_reset(run);
	for (size_t i = 0; i < nsuites; i++)
		free(suites[i].first_start);
	free(suites);
	free(prev_file);
	free(host);
	free(run_start);
	free(run_name);
	free(status);
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
	printf(": %lld jobs, %lld succeeded, %lld failed, %lld skipped, %lld cancelled",
	       (long long)sqlite3_column_int64(run, 5), (long long)sqlite3_column_int64(run, 6),
	       (long long)sqlite3_column_int64(run, 7), (long long)sqlite3_column_int64(run, 8),
	       (long long)sqlite3_column_int64(run, 9));
	if (sqlite3_column_int64(run, 11) || sqlite3_column_int64(run, 12))
		printf(
		    " (of the skipped, %lld carry a failure and %lld a cancel from earlier runs)",
		    (long long)sqlite3_column_int64(run, 11),
		    (long long)sqlite3_column_int64(run, 12));
	putchar('\n');
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
	struct csv_metrics metrics = {NULL, 0, 0};
	bool color = arl_cli_color(STDOUT_FILENO);
	int rc, ret = -1;

	if (c->format == F_JUNIT)
		return junit_print(c, run_id);
	sqlite3_bind_int64(c->jobs, 1, run_id);
	for (int i = ARL_STATE_PENDING, p = 2; c->states && i <= ARL_STATE_CANCELLED; i++)
		if (c->states & (1u << i))
			sqlite3_bind_text(c->jobs, p++, arl_state_name((enum arl_state)i), -1,
			                  SQLITE_STATIC);
	if (c->format == F_CSV) {
		if (csv_load_names(c, run_id, &metrics) < 0)
			return -1;
		csv_header(&metrics);
	}
	while ((rc = arl_store_step(c->store, c->jobs, &c->err)) == 1) {
		if (!wanted(c, col_text(c->jobs, J_STATE)))
			continue;
		switch (c->format) {
		case F_JSON:
			if (json_job(c, &arr) < 0)
				goto out;
			break;
		case F_CSV:
			if (csv_row(c, run_id, &metrics) < 0)
				goto out;
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
	csv_release(&metrics);
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
	    arl_store_prepare(c.store, c.states ? jobs_states_sql : jobs_sql, &c.jobs, NULL,
	                      &c.err) < 0 ||
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
