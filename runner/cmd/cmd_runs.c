/*
 * `arl-batch runs`: the runs in the results database, newest first.
 *
 * Exit: 0 listed (even none), 2 usage, 3 the database could not be opened or read.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cli.h"
#include "cmd/options.h"
#include "err.h"
#include "store/store.h"
#include "view/store_view.h"
#include "util.h"
#include "banned.h"

static const char *const synopsis[] = {"runs [--db PATH] [-n|--limit N] [--format table|json]",
                                       NULL};

static const char about[] =
    "List runs, newest first: id, name, status, start time (UTC), duration, and how many\n"
    "jobs there were and how they ended. A run still going shows its time so far.\n";

static const struct arl_opt_choice formats[] = {{"table", 0}, {"json", 1}, {NULL, 0}};

/* Elapsed time of a run still going, so `runs` shows that it is alive and for how long. */
static const char runs_sql[] =
    "SELECT id, name, status, started_at, finished_at,"
    " coalesce(duration_ms, CASE WHEN status = 'running' THEN"
    " CAST(round((julianday('now') - julianday(started_at)) * 86400000) AS INTEGER) END),"
    " jobs_total, jobs_succeeded, jobs_failed, jobs_skipped, jobs_cancelled, exit_code,"
    " files, host, pid, isolation, notes,"
    " " ARL_SQL_RUN_CARRIED("Failed") ", " ARL_SQL_RUN_CARRIED(
        "Cancelled") " FROM runs ORDER BY id DESC LIMIT ?1";

/* Columns of runs_sql, in SELECT order. */
enum {
	C_ID,
	C_NAME,
	C_STATUS,
	C_STARTED,
	C_FINISHED,
	C_DURATION,
	C_TOTAL,
	C_OK,
	C_FAILED,
	C_SKIPPED,
	C_CANCELLED,
	C_EXIT,
	C_FILES,
	C_HOST,
	C_PID,
	C_ISOLATION,
	C_NOTES,
	C_CARRIED_FAILED,
	C_CARRIED_CANCELLED
};

static const char *col_text(sqlite3_stmt *st, int c)
{
	return (const char *)sqlite3_column_text(st, c);
}

/* camelCase like `results --format json`; the counts nested under "jobs". */
static void add_json(struct arl_view_json_array *arr, sqlite3_stmt *st)
{
	cJSON *run = cJSON_CreateObject(), *jobs;

	arl_view_json_col(run, "id", st, C_ID);
	arl_view_json_col(run, "name", st, C_NAME);
	arl_view_json_col(run, "status", st, C_STATUS);
	arl_view_json_col(run, "startedAt", st, C_STARTED);
	arl_view_json_col(run, "finishedAt", st, C_FINISHED);
	arl_view_json_col(run, "durationMs", st, C_DURATION);
	arl_view_json_col(run, "exitCode", st, C_EXIT);
	arl_view_json_raw(run, "files", col_text(st, C_FILES));
	jobs = cJSON_AddObjectToObject(run, "jobs");
	arl_view_json_col(jobs, "total", st, C_TOTAL);
	arl_view_json_col(jobs, "succeeded", st, C_OK);
	arl_view_json_col(jobs, "failed", st, C_FAILED);
	arl_view_json_col(jobs, "skipped", st, C_SKIPPED);
	arl_view_json_col(jobs, "cancelled", st, C_CANCELLED);
	arl_view_json_col(jobs, "carriedFailed", st, C_CARRIED_FAILED);
	arl_view_json_col(jobs, "carriedCancelled", st, C_CARRIED_CANCELLED);
	arl_view_json_col(run, "host", st, C_HOST);
	arl_view_json_col(run, "pid", st, C_PID);
	arl_view_json_col(run, "isolation", st, C_ISOLATION);
	arl_view_json_col(run, "notes", st, C_NOTES);
	arl_view_json_item(arr, run);
}

/*
 * FAILED and CANCELLED count the skipped jobs that stand for a failure or a cancel too, as
 * "N+M carried": a rerun that only carried failures forward did not succeed.
 */
static const char *with_carried(sqlite3_stmt *st, int own, int carried, char *buf, size_t len)
{
	if (!sqlite3_column_int64(st, carried))
		return col_text(st, own);
	snprintf(buf, len, "%lld+%lld carried", (long long)sqlite3_column_int64(st, own),
	         (long long)sqlite3_column_int64(st, carried));
	return buf;
}

static void add_row(struct arl_view_table *t, sqlite3_stmt *st)
{
	char tbuf[24], dbuf[32], fbuf[48], cbuf[48];
	const char *status = col_text(st, C_STATUS);
	const char *cells[] = {
	    col_text(st, C_ID),
	    col_text(st, C_NAME),
	    status,
	    arl_view_time(col_text(st, C_STARTED), tbuf),
	    sqlite3_column_type(st, C_DURATION) == SQLITE_NULL
	        ? NULL
	        : arl_fmt_duration(sqlite3_column_int64(st, C_DURATION), dbuf, sizeof(dbuf)),
	    col_text(st, C_TOTAL),
	    col_text(st, C_OK),
	    with_carried(st, C_FAILED, C_CARRIED_FAILED, fbuf, sizeof(fbuf)),
	    col_text(st, C_SKIPPED),
	    with_carried(st, C_CANCELLED, C_CARRIED_CANCELLED, cbuf, sizeof(cbuf)),
	};
	const char *colors[sizeof(cells) / sizeof(cells[0])] = {
	    [2] = arl_view_state_color(status),
	    [7] = sqlite3_column_int64(st, C_FAILED) || sqlite3_column_int64(st, C_CARRIED_FAILED)
	              ? ARL_VIEW_RED
	              : NULL,
	};

	arl_view_table_add(t, cells, colors);
}

int cmd_runs(int argc, char **argv)
{
	static const struct arl_view_col cols[] = {
	    {"ID", true, false},       {"NAME", false, true},
	    {"STATUS", false, false},  {"STARTED (UTC)", false, false},
	    {"DURATION", true, false}, {"JOBS", true, false},
	    {"OK", true, false},       {"FAILED", true, false},
	    {"SKIPPED", true, false},  {"CANCELLED", true, false},
	};
	struct arl_view_table table = ARL_VIEW_TABLE_INIT(cols, sizeof(cols) / sizeof(cols[0]));
	struct arl_view_json_array arr = {stdout, 0};
	struct arl_err err = ARL_ERR_INIT;
	struct arl_store *store = NULL;
	sqlite3_stmt *st = NULL;
	const char *db = NULL, *format;
	int64_t limit = 20;
	int fmt = 0, rc, ret = ARL_EXIT_INCOMPLETE;
	const struct arl_option opts[] = {
	    ARL_OPT_STRING(0, "db", &db, "PATH",
	                   "results database (default $ARL_BATCH_DB, else ./arl-batch.db)"),
	    ARL_OPT_INT('n', "limit", &limit, 0, INT32_MAX, "N",
	                "at most N runs (default 20; 0: all)"),
	    ARL_OPT_CHOICE(0, "format", &fmt, formats,
	                   "table (default) or json (an array of run objects)"),
	    ARL_OPT_END(),
	};
	const struct arl_command_usage u = {
	    .name = "runs", .synopsis = synopsis, .about = about, .options = opts};

	if ((rc = arl_options_parse(&u, argc, argv, 0, &ret)) < 0)
		return ret;
	if (rc > 0)
		return arl_options_error(&u, "unexpected argument '%s'", argv[0]);
	format = formats[fmt].name;
	ret = ARL_EXIT_INCOMPLETE;

	/*
	 * Read-write (but never creating) rather than read-only: opening repairs runs whose
	 * runner died, so a crashed run shows as interrupted instead of running forever.
	 */
	if (arl_store_open(&store, arl_cli_db_path(db), ARL_STORE_NOCREATE, &err) < 0 ||
	    arl_store_prepare(store, runs_sql, &st, NULL, &err) < 0)
		goto out;
	sqlite3_bind_int64(st, 1, limit ? limit : -1); /* LIMIT -1: no limit */
	while ((rc = arl_store_step(store, st, &err)) == 1) {
		if (!strcmp(format, "json"))
			add_json(&arr, st);
		else
			add_row(&table, st);
	}
	if (rc < 0)
		goto out;
	if (!strcmp(format, "json"))
		arl_view_json_end(&arr);
	else if (table.nrows)
		arl_view_table_print(&table, stdout, arl_view_width(STDOUT_FILENO),
		                     arl_cli_color(STDOUT_FILENO));
	else /* stderr: a script parsing the table sees an empty list, not a message */
		fprintf(stderr, "arl-batch: no runs in '%s'\n", arl_store_path(store));
	ret = ARL_EXIT_OK;
out:
	if (ret != ARL_EXIT_OK)
		arl_view_error(&err);
	sqlite3_finalize(st);
	arl_store_close(store);
	arl_view_table_release(&table);
	return ret;
}
