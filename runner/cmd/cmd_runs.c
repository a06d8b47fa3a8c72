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
#include "log.h"
#include "store/store.h"
#include "store/store_runs.h"
#include "view/store_view.h"
#include "util.h"
#include "banned.h"

static const char *const synopsis[] = {"runs [--db PATH] [-n|--limit N] [--format table|json]",
                                       NULL};

static const char about[] =
    "List runs, newest first: id, name, status, start time (UTC), duration, and how many\n"
    "jobs there were and how they ended. A run still going shows its time so far.\n";

static const struct arl_opt_choice formats[] = {{"table", 0}, {"json", 1}, {NULL, 0}};

static void add_json(struct arl_view_json_array *arr, const struct arl_run_view *r)
{
	cJSON *run = cJSON_CreateObject(), *jobs;

	arl_view_json_int(run, "id", false, r->id);
	arl_view_json_str(run, "name", r->name);
	arl_view_json_str(run, "status", r->status);
	arl_view_json_str(run, "startedAt", r->started_at);
	arl_view_json_str(run, "finishedAt", r->finished_at);
	arl_view_json_int(run, "durationMs", r->duration_null, r->duration_ms);
	arl_view_json_int(run, "exitCode", r->exit_null, r->exit_code);
	arl_view_json_raw(run, "files", r->files);
	jobs = cJSON_AddObjectToObject(run, "jobs");
	arl_view_json_int(jobs, "total", false, r->jobs_total);
	arl_view_json_int(jobs, "succeeded", false, r->jobs_succeeded);
	arl_view_json_int(jobs, "failed", false, r->jobs_failed);
	arl_view_json_int(jobs, "skipped", false, r->jobs_skipped);
	arl_view_json_int(jobs, "cancelled", false, r->jobs_cancelled);
	arl_view_json_int(jobs, "carriedFailed", false, r->carried_failed);
	arl_view_json_int(jobs, "carriedCancelled", false, r->carried_cancelled);
	arl_view_json_str(run, "host", r->host);
	arl_view_json_int(run, "pid", r->pid_null, r->pid);
	arl_view_json_str(run, "isolation", r->isolation);
	arl_view_json_str(run, "notes", r->notes);
	if (r->params)
		arl_view_json_raw(run, "params", r->params);
	arl_view_json_item(arr, run);
}

static const char *count(int64_t own, int64_t carried, char *buf, size_t len)
{
	if (!carried)
		snprintf(buf, len, "%lld", (long long)own);
	else
		snprintf(buf, len, "%lld+%lld carried", (long long)own, (long long)carried);
	return buf;
}

static void add_row(struct arl_view_table *t, const struct arl_run_view *r)
{
	char tbuf[24], dbuf[32], ibuf[24], nbuf[24], obuf[24], fbuf[48], sbuf[24], cbuf[48];
	const char *cells[] = {
	    count(r->id, 0, ibuf, sizeof(ibuf)),
	    r->name,
	    r->status,
	    arl_view_time(r->started_at, tbuf),
	    r->duration_null ? NULL : arl_fmt_duration(r->duration_ms, dbuf, sizeof(dbuf)),
	    count(r->jobs_total, 0, nbuf, sizeof(nbuf)),
	    count(r->jobs_succeeded, 0, obuf, sizeof(obuf)),
	    count(r->jobs_failed, r->carried_failed, fbuf, sizeof(fbuf)),
	    count(r->jobs_skipped, 0, sbuf, sizeof(sbuf)),
	    count(r->jobs_cancelled, r->carried_cancelled, cbuf, sizeof(cbuf)),
	};
	const char *colors[sizeof(cells) / sizeof(cells[0])] = {
	    [2] = arl_view_state_color(r->status),
	    [7] = r->jobs_failed || r->carried_failed ? ARL_VIEW_RED : NULL,
	};

	arl_view_table_add(t, cells, colors);
}

struct listing {
	bool json;
	struct arl_view_table *table;
	struct arl_view_json_array *arr;
};

static int add_run(void *arg, const struct arl_run_view *r, struct arl_err *err)
{
	struct listing *l = arg;

	(void)err;
	if (l->json)
		add_json(l->arr, r);
	else
		add_row(l->table, r);
	return 0;
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
	struct listing listing = {false, &table, &arr};
	struct arl_err err = ARL_ERR_INIT;
	struct arl_store *store = NULL;
	const char *db = NULL, *format;
	int64_t limit = 20;
	int fmt = 0, rc, ret = ARL_EXIT_INCOMPLETE;
	const struct arl_option opts[] = {
	    ARL_OPT_DB(&db),
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
		return arl_cli_unexpected(&u, argv[0]);
	format = formats[fmt].name;
	listing.json = !strcmp(format, "json");
	ret = ARL_EXIT_INCOMPLETE;

	/*
	 * Read-write (but never creating) rather than read-only: opening repairs runs whose
	 * runner died, so a crashed run shows as interrupted instead of running forever.
	 */
	if (arl_store_open(&store, arl_cli_db_path(db), ARL_STORE_NOCREATE, &err) < 0 ||
	    arl_runs_each(store, limit, add_run, &listing, &err) < 0)
		goto out;
	if (!strcmp(format, "json"))
		arl_view_json_end(&arr);
	else if (table.nrows)
		arl_view_table_print(&table, stdout, arl_view_width(STDOUT_FILENO),
		                     arl_cli_color(STDOUT_FILENO));
	else /* stderr: a script parsing the table sees an empty list, not a message */
		arl_log_info("no runs in '%s'", arl_store_path(store));
	ret = ARL_EXIT_OK;
out:
	if (ret != ARL_EXIT_OK)
		arl_view_error(&err);
	arl_store_close(store);
	arl_view_table_release(&table);
	return ret;
}
