/*
 * DESIGN: the page is written top to bottom in one pass, one function per section, each
 * running its own aggregate queries. Nothing is kept in memory beyond one section's numbers,
 * except the job durations (one int64 per job, for exact percentiles; 800 KB at 100 000
 * jobs), which is cheaper than the three sorted scans SQLite would need for them.
 *
 * Pass rates follow `diff` (rundiff.h): a job passes when it Succeeded, fails when it Failed
 * with class failed or timeout, and is excluded otherwise (infra, cancelled); a Skipped job
 * counts as the result it stands for. So the report's pass rate of a run equals the one
 * `diff` prints for it.
 */
#include "view/report.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "buf.h"
#include "view/html.h"
#include "view/rundiff.h"
#include "view/store_view.h"
#include "util.h"
#include "banned.h"

#define DEFAULT_MAX_FAILED 200
#define DEFAULT_MAX_ROWS   25
#define MAX_LABEL_KEYS     20
#define MAX_LABEL_VALUES   40 /* a label with more values (an instance id) is not broken down */
#define MAX_METRICS        40
#define DURATION_BINS      24
#define METRIC_BINS        20
#define TAIL_BYTES         1500
#define TAIL_LINES         20
#define STR_(x)            #x
#define STR(x)             STR_(x)

struct rep {
	struct arl_store *s;
	FILE *out;
	const struct arl_report_opts *o;
	int64_t run;
	size_t max_failed, max_rows;
	struct arl_err *err;
};

/* The run's jobs with a Skipped job replaced by the state and class it stands for. */
#define RUN_JOBS                                                                                   \
	"WITH rj AS (SELECT j.id, j.pool, j.labels,"                                               \
	" coalesce(s.state, CASE j.state WHEN 'Skipped' THEN 'Succeeded' ELSE j.state END) AS st," \
	" coalesce(s.error_class, j.error_class) AS cls"                                           \
	" FROM jobs j LEFT JOIN jobs s ON j.state = 'Skipped' AND s.id = j.skipped_from"           \
	" WHERE j.run_id = ?1) "
#define AGG " count(*), sum(st = 'Succeeded'), sum(st = 'Failed' AND cls IN ('failed', 'timeout'))"

static const char *const page_css =
    ":root{--bg:#fff;--fg:#1d2330;--mute:#5d6778;--line:#e3e7ee;--card:#f6f8fb;"
    "--s0:#2f9e5b;--s1:#d64545;--s2:#9aa3b2;--s3:#e0a100;--accent:#3b6fd8;"
    "font-family:system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif;"
    "font-size:14px;line-height:1.45;color-scheme:light dark}"
    "@media (prefers-color-scheme:dark){:root{--bg:#14171d;--fg:#e4e7ee;--mute:#9aa3b2;"
    "--line:#2a303b;--card:#1b1f27;--s2:#5d6778}}"
    "body{margin:0;background:var(--bg);color:var(--fg)}"
    "main{max-width:1180px;margin:0 auto;padding:24px 28px 60px}"
    "h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:34px 0 10px;"
    "padding-bottom:6px;border-bottom:1px solid var(--line)}h3{font-size:14px;margin:18px 0 6px}"
    ".meta{color:var(--mute);display:flex;flex-wrap:wrap;gap:4px 18px;margin:6px 0 0}"
    ".meta b{color:var(--fg);font-weight:600}"
    ".badge{display:inline-block;padding:1px 9px;border-radius:10px;font-size:12px;"
    "font-weight:600;vertical-align:middle;margin-left:8px;color:#fff;background:var(--s2)}"
    ".badge.succeeded{background:var(--s0)}.badge.failed{background:var(--s1)}"
    ".badge.interrupted,.badge.running{background:var(--s3)}"
    ".cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:12px;"
    "margin-top:18px}.card{background:var(--card);border:1px solid var(--line);"
    "border-radius:8px;padding:12px 14px}.card .v{font-size:26px;font-weight:650}"
    ".card .k{color:var(--mute);font-size:12px;text-transform:uppercase;letter-spacing:.04em}"
    ".card .sub{color:var(--mute);font-size:12px}.ok{color:var(--s0)}.bad{color:var(--s1)}"
    ".warn{color:var(--s3)}"
    "table{border-collapse:collapse;width:100%;margin:6px 0}th,td{text-align:left;"
    "padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top}"
    "th{font-size:12px;color:var(--mute);font-weight:600;white-space:nowrap}"
    "table.sortable th{cursor:pointer}table.sortable th:hover{color:var(--fg)}"
    "td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}"
    "td.key{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px;"
    "word-break:break-all}"
    "pre{margin:4px 0 0;padding:6px 8px;background:var(--card);border:1px solid var(--line);"
    "border-radius:6px;font-size:12px;max-height:12em;overflow:auto;white-space:pre-wrap;"
    "word-break:break-word}"
    "svg.chart{width:100%;height:auto;display:block}"
    "svg.chart .grid{stroke:var(--line)}svg.chart text{fill:var(--mute);font-size:11px}"
    "svg.chart .ylab{text-anchor:end}svg.chart .xlab{text-anchor:middle}"
    "rect.s0{fill:var(--s0)}rect.s1{fill:var(--s1)}rect.s2{fill:var(--s2)}"
    "rect.s3{fill:var(--s3)}svg.ratio{width:110px;height:8px;margin-left:8px;"
    "vertical-align:middle}"
    ".legend{display:flex;gap:14px;color:var(--mute);font-size:12px;margin:2px 0 8px 48px}"
    ".legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px}"
    ".legend i.s0{background:var(--s0)}.legend i.s1{background:var(--s1)}"
    ".legend i.s2{background:var(--s2)}.legend i.s3{background:var(--s3)}"
    ".grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:18px 28px}"
    ".note{color:var(--mute);font-size:12.5px}"
    "input.filter{padding:5px 8px;border:1px solid var(--line);border-radius:6px;"
    "background:var(--card);color:var(--fg);width:260px;margin:4px 0}"
    "footer{color:var(--mute);font-size:12px;margin-top:40px}";

/*
 * Sortable tables and the failed-jobs filter. The last line marks the page as rendered
 * without a script error: the tests look for it.
 */
static const char *const page_js =
    "(function(){'use strict';"
    "function val(td){var v=td.getAttribute('data-v');if(v!==null&&v!==''&&!isNaN(v))"
    "return parseFloat(v);return td.textContent.trim().toLowerCase();}"
    "document.querySelectorAll('table.sortable').forEach(function(t){"
    "t.querySelectorAll('th').forEach(function(th,i){var asc=false;"
    "th.addEventListener('click',function(){asc=!asc;var tb=t.tBodies[0];"
    "var rows=Array.prototype.slice.call(tb.rows);rows.sort(function(a,b){"
    "var x=val(a.cells[i]),y=val(b.cells[i]);return (x<y?-1:x>y?1:0)*(asc?1:-1);});"
    "rows.forEach(function(r){tb.appendChild(r);});});});});"
    "var f=document.getElementById('failed-filter');if(f){f.addEventListener('input',"
    "function(){var q=f.value.toLowerCase();document.querySelectorAll('#failed-table tbody tr')"
    ".forEach(function(r){r.style.display=r.textContent.toLowerCase().indexOf(q)<0?'none':'';"
    "});});}"
    "var b=document.body;b.setAttribute('data-script-ms',Math.round(performance.now()));"
    "b.setAttribute('data-rendered','ok');})();";

/* ---- small helpers ---- */

static const char *col(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

/* Prepares @sql with ?1 bound to the run (every query here is about one run). */
static int prep(struct rep *r, const char *sql, sqlite3_stmt **st)
{
	if (arl_store_prepare(r->s, sql, st, NULL, r->err) < 0)
		return -1;
	sqlite3_bind_int64(*st, 1, r->run);
	return 0;
}

static void esc(struct rep *r, const char *s)
{
	arl_html_esc(r->out, s);
}

/* Compact durations for charts and tables: "850ms", "4.2s", "12s", "3m05s", "1h02m". */
static const char *short_dur(int64_t ms, char *buf, size_t len)
{
	if (ms < 1000)
		snprintf(buf, len, "%lldms", (long long)ms);
	else if (ms < 10000)
		snprintf(buf, len, "%.1fs", (double)ms / 1000);
	else if (ms < 60000)
		snprintf(buf, len, "%llds", (long long)(ms / 1000));
	else if (ms < 3600000)
		snprintf(buf, len, "%lldm%02llds", (long long)(ms / 60000),
		         (long long)(ms / 1000 % 60));
	else
		snprintf(buf, len, "%lldh%02lldm", (long long)(ms / 3600000),
		         (long long)(ms / 60000 % 60));
	return buf;
}

static double ratio(uint64_t passed, uint64_t failed)
{
	return passed + failed ? (double)passed / (double)(passed + failed) : 0;
}

/* "83.1%", or "-" when nothing counts. */
static const char *pct(uint64_t passed, uint64_t failed, char *buf, size_t len)
{
	if (passed + failed)
		snprintf(buf, len, "%.1f%%", 100 * ratio(passed, failed));
	else
		snprintf(buf, len, "-");
	return buf;
}

static void td_num(struct rep *r, uint64_t v)
{
	fprintf(r->out, "<td class=\"n\" data-v=\"%llu\">%llu</td>", (unsigned long long)v,
	        (unsigned long long)v);
}

static void td_dur(struct rep *r, int64_t ms, bool known)
{
	char d[32];

	if (known)
		fprintf(r->out, "<td class=\"n\" data-v=\"%lld\">%s</td>", (long long)ms,
		        short_dur(ms, d, sizeof(d)));
	else
		fputs("<td class=\"n\" data-v=\"\">-</td>", r->out);
}

static void td_text(struct rep *r, const char *cls, const char *s)
{
	fprintf(r->out, "<td%s%s%s>", cls ? " class=\"" : "", cls ? cls : "", cls ? "\"" : "");
	esc(r, s ? s : "-");
	fputs("</td>", r->out);
}

static const char *state_class(const char *state)
{
	if (!state)
		return NULL;
	if (!strcmp(state, "Succeeded"))
		return "ok";
	if (!strcmp(state, "Failed"))
		return "bad";
	if (!strcmp(state, "Cancelled"))
		return "warn";
	return NULL;
}

/* ---- sections ---- */

struct counts {
	uint64_t total, succeeded, failed, skipped, cancelled, unfinished, cls[5];
	uint64_t passed, counted_failed;            /* effective (rundiff.h), for the pass rate */
	uint64_t carried_failed, carried_cancelled; /* Skipped jobs standing for these */
};

static int read_counts(struct rep *r, struct counts *c)
{
	sqlite3_stmt *st = NULL;
	int rc;

	memset(c, 0, sizeof(*c));
	if (prep(r, "SELECT state, error_class, count(*) FROM jobs WHERE run_id = ?1 GROUP BY 1, 2",
	         &st) < 0)
		return -1;
	while ((rc = arl_store_step(r->s, st, r->err)) == 1) {
		const char *state = col(st, 0), *cls = col(st, 1);
		uint64_t n = (uint64_t)sqlite3_column_int64(st, 2);
		enum arl_class k = ARL_CLASS_NONE;

		c->total += n;
		if (!strcmp(state, "Succeeded"))
			c->succeeded += n;
		else if (!strcmp(state, "Failed"))
			c->failed += n;
		else if (!strcmp(state, "Skipped"))
			c->skipped += n;
		else if (!strcmp(state, "Cancelled"))
			c->cancelled += n;
		else
			c->unfinished += n;
		if (cls && arl_class_parse(cls, &k) == 0)
			c->cls[k] += n;
	}
	sqlite3_finalize(st);
	if (rc < 0)
		return -1;
	if (prep(r, RUN_JOBS "SELECT" AGG " FROM rj", &st) < 0)
		return -1;
	if ((rc = arl_store_step(r->s, st, r->err)) == 1) {
		c->passed = (uint64_t)sqlite3_column_int64(st, 1);
		c->counted_failed = (uint64_t)sqlite3_column_int64(st, 2);
	}
	sqlite3_finalize(st);
	if (rc < 0 || prep(r,
	                   "SELECT " ARL_SQL_RUN_CARRIED("Failed") ", " ARL_SQL_RUN_CARRIED(
	                       "Cancelled") " FROM runs WHERE id = ?1",
	                   &st) < 0)
		return -1;
	if ((rc = arl_store_step(r->s, st, r->err)) == 1) {
		c->carried_failed = (uint64_t)sqlite3_column_int64(st, 0);
		c->carried_cancelled = (uint64_t)sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	return rc < 0 ? -1 : 0;
}

static void files_list(struct rep *r, const char *json)
{
	cJSON *a = json ? cJSON_ParseWithLengthOpts(json, strlen(json) + 1, NULL, 1) : NULL;
	const cJSON *it;
	int n = 0;

	cJSON_ArrayForEach(it, a)
	{
		if (!cJSON_IsString(it))
			continue;
		fputs(n++ ? ", " : "", r->out);
		esc(r, it->valuestring);
	}
	if (!n)
		esc(r, json ? json : "-");
	cJSON_Delete(a);
}

static int section_header(struct rep *r, const struct counts *c)
{
	sqlite3_stmt *st = NULL;
	char t[24], d[32], p[16];
	int rc;

	if (prep(r,
	         "SELECT id, name, status, started_at, finished_at, duration_ms, exit_code, host,"
	         " isolation, notes, files FROM runs WHERE id = ?1",
	         &st) < 0)
		return -1;
	if ((rc = arl_store_step(r->s, st, r->err)) != 1) {
		sqlite3_finalize(st);
		if (rc == 0)
			arl_error(r->err, ARL_E_INVALID, "no run %lld", (long long)r->run);
		return -1;
	}
	fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
	      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
	      /* The page may not fetch anything: inline style and script only. */
	      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
	      "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n"
	      "<title>arl-batch report: run ",
	      r->out);
	fprintf(r->out, "%lld ", (long long)r->run);
	esc(r, col(st, 1));
	fprintf(r->out, "</title>\n<style>%s</style>\n</head>\n", page_css);
	fprintf(r->out,
	        "<body data-run-id=\"%lld\" data-jobs-total=\"%llu\" data-succeeded=\"%llu\" "
	        "data-failed=\"%llu\" data-skipped=\"%llu\" data-cancelled=\"%llu\" "
	        "data-class-failed=\"%llu\" data-class-timeout=\"%llu\" data-class-infra=\"%llu\" "
	        "data-passed=\"%llu\" data-counted-failed=\"%llu\" data-pass-rate=\"%.6f\" "
	        "data-carried-failed=\"%llu\" data-carried-cancelled=\"%llu\" data-status=\"",
	        (long long)r->run, (unsigned long long)c->total, (unsigned long long)c->succeeded,
	        (unsigned long long)c->failed, (unsigned long long)c->skipped,
	        (unsigned long long)c->cancelled, (unsigned long long)c->cls[ARL_CLASS_FAILED],
	        (unsigned long long)c->cls[ARL_CLASS_TIMEOUT],
	        (unsigned long long)c->cls[ARL_CLASS_INFRA], (unsigned long long)c->passed,
	        (unsigned long long)c->counted_failed, ratio(c->passed, c->counted_failed),
	        (unsigned long long)c->carried_failed, (unsigned long long)c->carried_cancelled);
	esc(r, col(st, 2));
	fputs("\">\n<main>\n<header>\n<h1>Run ", r->out);
	fprintf(r->out, "%lld &middot; ", (long long)r->run);
	esc(r, col(st, 1));
	fputs("<span class=\"badge ", r->out);
	esc(r, col(st, 2));
	fputs("\">", r->out);
	esc(r, col(st, 2));
	fputs("</span></h1>\n<div class=\"meta\">", r->out);
	fputs("<span>started <b>", r->out);
	esc(r, arl_view_time(col(st, 3), t));
	fputs(" UTC</b></span>", r->out);
	if (sqlite3_column_type(st, 5) != SQLITE_NULL)
		fprintf(r->out, "<span>took <b>%s</b></span>",
		        arl_view_go_duration(sqlite3_column_int64(st, 5), d, sizeof(d)));
	if (sqlite3_column_type(st, 6) != SQLITE_NULL)
		fprintf(r->out, "<span>exit <b>%d</b></span>", sqlite3_column_int(st, 6));
	if (col(st, 7)) {
		fputs("<span>host <b>", r->out);
		esc(r, col(st, 7));
		fputs("</b></span>", r->out);
	}
	if (col(st, 8)) {
		fputs("<span>isolation <b>", r->out);
		esc(r, col(st, 8));
		fputs("</b></span>", r->out);
	}
	fputs("<span>files <b>", r->out);
	files_list(r, col(st, 10));
	fputs("</b></span></div>\n", r->out);
	if (col(st, 9)) {
		fputs("<p class=\"note\">", r->out);
		esc(r, col(st, 9));
		fputs("</p>\n", r->out);
	}
	fputs("</header>\n", r->out);
	sqlite3_finalize(st);

	/* The cards. */
	fputs("<section id=\"summary\" class=\"cards\">\n", r->out);
	fprintf(r->out,
	        "<div class=\"card\"><div class=\"k\">Jobs</div><div class=\"v\">%llu</div>"
	        "<div class=\"sub\">%llu skipped (earlier results)</div></div>\n",
	        (unsigned long long)c->total, (unsigned long long)c->skipped);
	fprintf(r->out,
	        "<div class=\"card\"><div class=\"k\">Succeeded</div>"
	        "<div class=\"v ok\">%llu</div><div class=\"sub\">ran and passed</div></div>\n",
	        (unsigned long long)c->succeeded);
	fprintf(r->out,
	        "<div class=\"card\"><div class=\"k\">Failed</div><div class=\"v%s\">%llu</div>"
	        "<div class=\"sub\">%llu failed &middot; %llu timeout &middot; %llu infra",
	        c->failed || c->carried_failed ? " bad" : "",
	        (unsigned long long)(c->failed + c->carried_failed),
	        (unsigned long long)c->cls[ARL_CLASS_FAILED],
	        (unsigned long long)c->cls[ARL_CLASS_TIMEOUT],
	        (unsigned long long)c->cls[ARL_CLASS_INFRA]);
	/* A skipped job counts as the result it stands for (SPEC). */
	if (c->carried_failed)
		fprintf(r->out, " &middot; %llu carried from earlier runs",
		        (unsigned long long)c->carried_failed);
	fputs("</div></div>\n", r->out);
	fprintf(r->out,
	        "<div class=\"card\"><div class=\"k\">Cancelled</div><div class=\"v%s\">%llu</div>"
	        "<div class=\"sub\">%llu never finished",
	        c->cancelled || c->carried_cancelled ? " warn" : "",
	        (unsigned long long)(c->cancelled + c->carried_cancelled),
	        (unsigned long long)c->unfinished);
	if (c->carried_cancelled)
		fprintf(r->out, " &middot; %llu carried from earlier runs",
		        (unsigned long long)c->carried_cancelled);
	fputs("</div></div>\n", r->out);
	fprintf(r->out,
	        "<div class=\"card\"><div class=\"k\">Pass rate</div><div class=\"v\">%s</div>"
	        "<div class=\"sub\">%llu passed of %llu counted; %llu excluded</div></div>\n",
	        pct(c->passed, c->counted_failed, p, sizeof(p)), (unsigned long long)c->passed,
	        (unsigned long long)(c->passed + c->counted_failed),
	        (unsigned long long)(c->total - c->passed - c->counted_failed));
	fputs("</section>\n", r->out);
	return 0;
}

static void group_row(struct rep *r, const char *kind, const char *name, const char *shown,
                      sqlite3_stmt *st, int first)
{
	uint64_t total = (uint64_t)sqlite3_column_int64(st, first),
	         passed = (uint64_t)sqlite3_column_int64(st, first + 1),
	         failed = (uint64_t)sqlite3_column_int64(st, first + 2);
	char p[16];

	fprintf(r->out, "<tr data-group=\"%s\" data-name=\"", kind);
	esc(r, name);
	fprintf(r->out, "\" data-total=\"%llu\" data-passed=\"%llu\" data-failed=\"%llu\">",
	        (unsigned long long)total, (unsigned long long)passed, (unsigned long long)failed);
	td_text(r, "key", shown);
	td_num(r, total);
	td_num(r, passed);
	td_num(r, failed);
	td_num(r, total - passed - failed);
	fprintf(r->out, "<td class=\"n\" data-v=\"%.6f\">%s", ratio(passed, failed),
	        pct(passed, failed, p, sizeof(p)));
	arl_html_ratio_bar(r->out, ratio(passed, failed));
	fputs("</td></tr>\n", r->out);
}

static int label_rows(struct rep *r, const char *key)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (prep(r,
	         RUN_JOBS "SELECT l.value," AGG " FROM rj, json_each(rj.labels) l"
	                  " WHERE l.key = ?2 GROUP BY l.value ORDER BY l.value",
	         &st) < 0)
		return -1;
	sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
	while ((rc = arl_store_step(r->s, st, r->err)) == 1) {
		char *name = arl_xasprintf("%s=%s", key, col(st, 0) ? col(st, 0) : "null");
		char *shown = arl_xasprintf("label %s", name);

		group_row(r, "label", name, shown, st, 1);
		free(name);
		free(shown);
	}
	sqlite3_finalize(st);
	return rc < 0 ? -1 : 0;
}

static int section_pass_rates(struct rep *r)
{
	sqlite3_stmt *st = NULL, *keys = NULL;
	struct arl_buf many = ARL_BUF_INIT;
	int rc, ret = -1;

	fputs("<section id=\"pass-rates\">\n<h2>Pass rate</h2>\n"
	      "<p class=\"note\">Pass rate = passed / (passed + failed). Failed counts the classes "
	      "failed and timeout; infra and cancelled jobs say nothing about the work under test "
	      "and are excluded. A skipped job counts as the result it stands for.</p>\n"
	      "<table class=\"sortable\" id=\"pass-table\"><thead><tr><th>Group</th>"
	      "<th class=\"n\">Jobs</th><th class=\"n\">Passed</th><th class=\"n\">Failed</th>"
	      "<th class=\"n\">Excluded</th><th class=\"n\">Pass rate</th></tr></thead><tbody>\n",
	      r->out);
	if (prep(r, RUN_JOBS "SELECT" AGG " FROM rj", &st) < 0)
		goto out;
	if ((rc = arl_store_step(r->s, st, r->err)) < 0)
		goto out;
	if (rc == 1)
		group_row(r, "all", "all", "all jobs", st, 0);
	sqlite3_finalize(st);
	st = NULL;
	if (prep(r, RUN_JOBS "SELECT pool," AGG " FROM rj GROUP BY pool ORDER BY pool LIMIT 200",
	         &st) < 0)
		goto out;
	while ((rc = arl_store_step(r->s, st, r->err)) == 1) {
		char *shown = arl_xasprintf("pool %s", col(st, 0) ? col(st, 0) : "-");

		group_row(r, "pool", col(st, 0) ? col(st, 0) : "-", shown, st, 1);
		free(shown);
	}
	if (rc < 0)
		goto out;
	/* Labels with few values are broken down; one per job (an id) would be noise. */
	if (prep(r,
	         RUN_JOBS "SELECT l.key, count(DISTINCT l.value) FROM rj, json_each(rj.labels) l"
	                  " GROUP BY l.key ORDER BY l.key",
	         &keys) < 0)
		goto out;
	for (int nkeys = 0; (rc = arl_store_step(r->s, keys, r->err)) == 1;) {
		if (sqlite3_column_int64(keys, 1) > MAX_LABEL_VALUES || nkeys >= MAX_LABEL_KEYS) {
			arl_buf_addf(&many, "%s%s (%lld values)", many.len ? ", " : "",
			             col(keys, 0), (long long)sqlite3_column_int64(keys, 1));
			continue;
		}
		nkeys++;
		if (label_rows(r, col(keys, 0)) < 0)
			goto out;
	}
	if (rc < 0)
		goto out;
	fputs("</tbody></table>\n", r->out);
	if (many.len) {
		fputs("<p class=\"note\">Not broken down (too many values): labels ", r->out);
		esc(r, many.p);
		fputs(".</p>\n", r->out);
	}
	fputs("</section>\n", r->out);
	ret = 0;
out:
	sqlite3_finalize(st);
	sqlite3_finalize(keys);
	arl_buf_release(&many);
	return ret;
}

/* Enough bins to show a shape, few enough that a small sample is not a comb: ~2 sqrt(n). */
static size_t bins_for(size_t n, size_t max)
{
	size_t b = (size_t)ceil(2 * sqrt((double)n));

	return b < 5 ? 5 : b > max ? max : b;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static int64_t percentile(const int64_t *sorted, size_t n, double q)
{
	size_t i = (size_t)ceil(q * (double)n);

	return sorted[i ? i - 1 : 0];
}

/* Bin of @v among @n bins over [lo, hi]: logarithmic when the range spans decades. */
static size_t dur_bin(int64_t v, int64_t lo, int64_t hi, size_t n, bool log_scale)
{
	double f;

	if (hi <= lo)
		return 0;
	if (log_scale)
		f = v <= lo ? 0 : log((double)v / (double)lo) / log((double)hi / (double)lo);
	else
		f = (double)(v - lo) / (double)(hi - lo);
	return f >= 1 ? n - 1 : (size_t)(f * (double)n);
}

static int64_t dur_edge(size_t i, int64_t lo, int64_t hi, size_t n, bool log_scale)
{
	if (log_scale)
		return (int64_t)llround((double)lo *
		                        pow((double)hi / (double)lo, (double)i / (double)n));
	return lo + (int64_t)((double)(hi - lo) * (double)i / (double)n);
}

static int section_durations(struct rep *r)
{
	static const char *const series[] = {"Succeeded", "Failed", "Cancelled"};
	sqlite3_stmt *st = NULL;
	int64_t *v = NULL, *sorted = NULL, lo, hi;
	unsigned char *state = NULL;
	size_t n = 0, cap = 0, nbins;
	uint64_t counts[3 * DURATION_BINS] = {0};
	char *labels[DURATION_BINS] = {NULL};
	char a[32], b[32], c[32], d[32], e[32];
	double mean = 0;
	bool log_scale;
	int rc, ret = -1;

	if (prep(r,
	         "SELECT duration_ms, state FROM jobs WHERE run_id = ?1 AND duration_ms IS NOT NULL"
	         " AND state IN ('Succeeded', 'Failed', 'Cancelled') AND attempts > 0",
	         &st) < 0)
		return -1;
	while ((rc = arl_store_step(r->s, st, r->err)) == 1) {
		size_t oldcap = cap;
		const char *s = col(st, 1);

		ARL_GROW(v, cap, n + 1);
		if (cap != oldcap)
			state = arl_xrealloc(state, cap);
		v[n] = sqlite3_column_int64(st, 0) < 0 ? 0 : sqlite3_column_int64(st, 0);
		state[n++] = !strcmp(s, "Succeeded") ? 0 : !strcmp(s, "Failed") ? 1 : 2;
	}
	sqlite3_finalize(st);
	if (rc < 0)
		goto out;
	fprintf(r->out, "<section id=\"durations\" data-count=\"%zu\">\n<h2>Job durations</h2>\n",
	        n);
	if (!n) {
		fputs("<p class=\"note\">No job ran.</p>\n</section>\n", r->out);
		ret = 0;
		goto out;
	}
	sorted = arl_xmalloc(n * sizeof(*sorted));
	memcpy(sorted, v, n * sizeof(*v));
	qsort(sorted, n, sizeof(*sorted), cmp_i64);
	for (size_t i = 0; i < n; i++)
		mean += (double)sorted[i] / (double)n;
	lo = sorted[0];
	hi = sorted[n - 1];
	/* Job durations have a long tail: spread decades evenly when they span several. */
	log_scale = hi > 50 * (lo > 0 ? lo : 1);
	if (log_scale && lo < 1)
		lo = 1;
	nbins = hi > lo ? bins_for(n, DURATION_BINS) : 1;
	for (size_t i = 0; i < n; i++)
		counts[state[i] * nbins + dur_bin(v[i], lo, hi, nbins, log_scale)]++;
	for (size_t i = 0; i < nbins; i++)
		labels[i] = arl_xasprintf(
		    "%s", nbins == 1
		              ? short_dur(lo, a, sizeof(a))
		              : short_dur(dur_edge(i, lo, hi, nbins, log_scale), a, sizeof(a)));
	fprintf(r->out,
	        "<p data-p50=\"%lld\" data-p90=\"%lld\" data-p99=\"%lld\" data-max=\"%lld\">"
	        "median <b>%s</b> &middot; p90 <b>%s</b> &middot; p99 <b>%s</b> &middot; "
	        "max <b>%s</b> &middot; mean <b>%s</b> over %zu jobs that ran%s</p>\n",
	        (long long)percentile(sorted, n, 0.5), (long long)percentile(sorted, n, 0.9),
	        (long long)percentile(sorted, n, 0.99), (long long)hi,
	        short_dur(percentile(sorted, n, 0.5), a, sizeof(a)),
	        short_dur(percentile(sorted, n, 0.9), b, sizeof(b)),
	        short_dur(percentile(sorted, n, 0.99), c, sizeof(c)), short_dur(hi, d, sizeof(d)),
	        short_dur((int64_t)mean, e, sizeof(e)), n,
	        log_scale ? " (bins on a logarithmic scale)" : "");
	{
		/* Only the series that occur, so the legend does not list empty ones. */
		const char *names[3];
		uint64_t *packed = arl_xcalloc(3 * nbins, sizeof(*packed));
		size_t ns = 0;

		for (size_t s = 0; s < 3; s++) {
			uint64_t sum = 0;

			for (size_t i = 0; i < nbins; i++)
				sum += counts[s * nbins + i];
			if (!sum)
				continue;
			memcpy(packed + ns * nbins, counts + s * nbins, nbins * sizeof(*packed));
			names[ns++] = series[s];
		}
		arl_html_chart(r->out,
		               &(struct arl_html_chart){.title = "Job durations",
		                                        .nbins = nbins,
		                                        .nseries = ns,
		                                        .bin_labels = (const char *const *)labels,
		                                        .series = names,
		                                        .counts = packed,
		                                        .unit = "jobs"});
		free(packed);
	}
	fputs("</section>\n", r->out);
	ret = 0;
out:
	for (size_t i = 0; i < DURATION_BINS; i++)
		free(labels[i]);
	free(v);
	free(sorted);
	free(state);
	return ret;
}

static int section_attempts(struct rep *r)
{
	static const char *const series[] = {"Succeeded", "Failed", "Cancelled"};
	enum { MAXA = 11 }; /* retries are 0..10 */
	sqlite3_stmt *st = NULL;
	uint64_t counts[3 * MAXA] = {0}, retried[3] = {0}, nattempts = 0, nok = 0;
	char *labels[MAXA];
	int maxa = 1, rc, ret = -1;

	for (int i = 0; i < MAXA; i++)
		labels[i] = arl_xasprintf("%d attempt%s", i + 1, i ? "s" : "");
	if (prep(r,
	         "SELECT attempts, state, count(*) FROM jobs WHERE run_id = ?1 AND attempts > 0"
	         " AND state IN ('Succeeded', 'Failed', 'Cancelled') GROUP BY 1, 2",
	         &st) < 0)
		goto out;
	while ((rc = arl_store_step(r->s, st, r->err)) == 1) {
		int a = sqlite3_column_int(st, 0);
		const char *s = col(st, 1);
		int k = !strcmp(s, "Succeeded") ? 0 : !strcmp(s, "Failed") ? 1 : 2;
		uint64_t n = (uint64_t)sqlite3_column_int64(st, 2);

		a = a > MAXA ? MAXA : a;
		maxa = a > maxa ? a : maxa;
		counts[k * MAXA + (size_t)(a - 1)] += n;
		if (a > 1)
			retried[k] += n;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (rc < 0)
		goto out;
	if (prep(r,
	         "SELECT count(*), sum(a.state = 'Succeeded') FROM attempts a"
	         " JOIN jobs j ON j.id = a.job_id WHERE j.run_id = ?1",
	         &st) < 0)
		goto out;
	if ((rc = arl_store_step(r->s, st, r->err)) == 1) {
		nattempts = (uint64_t)sqlite3_column_int64(st, 0);
		nok = (uint64_t)sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	st = NULL;
	if (rc < 0)
		goto out;
	fprintf(
	    r->out,
	    "<section id=\"attempts\" data-attempts=\"%llu\" data-retried=\"%llu\" "
	    "data-recovered=\"%llu\" data-exhausted=\"%llu\">\n<h2>Attempts and retries</h2>\n"
	    "<p>%llu attempts, %llu succeeded. <b>%llu</b> jobs were retried: <b class=\"ok\">"
	    "%llu</b> recovered (succeeded after a retry), <b class=\"bad\">%llu</b> still "
	    "failed after their retries, %llu were cancelled.</p>\n<div class=\"grid2\"><div>\n",
	    (unsigned long long)nattempts,
	    (unsigned long long)(retried[0] + retried[1] + retried[2]),
	    (unsigned long long)retried[0], (unsigned long long)retried[1],
	    (unsigned long long)nattempts, (unsigned long long)nok,
	    (unsigned long long)(retried[0] + retried[1] + retried[2]),
	    (unsigned long long)retried[0], (unsigned long long)retried[1],
	    (unsigned long long)retried[2]);
	{
		uint64_t packed[3 * MAXA];
		const char *names[3];
		size_t ns = 0;

		/* Re-pack to maxa bins (the chart reads counts[s * nbins + b]), leaving out the
		 * states no job ended in, so the legend does not list them. */
		for (int s = 0; s < 3; s++) {
			uint64_t sum = 0;

			for (int a = 0; a < maxa; a++)
				sum += packed[ns * (size_t)maxa + (size_t)a] = counts[s * MAXA + a];
			if (sum)
				names[ns++] = series[s];
		}
		arl_html_chart(r->out,
		               &(struct arl_html_chart){.title = "Jobs by number of attempts",
		                                        .nbins = (size_t)maxa,
		                                        .nseries = ns,
		                                        .bin_labels = (const char *const *)labels,
		                                        .series = names,
		                                        .counts = packed,
		                                        .unit = "jobs",
		                                        .width = 560});
	}
	fputs("</div><div>\n<h3>Retried failures, by class, and how the job ended</h3>\n"
	      "<table id=\"retry-table\"><thead><tr><th>Class of the failed attempt</th>"
	      "<th class=\"n\">Retries</th><th class=\"n\">Job then succeeded</th>"
	      "<th class=\"n\">Failed</th><th class=\"n\">Cancelled</th></tr></thead><tbody>\n",
	      r->out);
	if (prep(r,
	         "SELECT coalesce(a.error_class, '-'), count(*), sum(j.state = 'Succeeded'),"
	         " sum(j.state = 'Failed'), sum(j.state = 'Cancelled') FROM attempts a"
	         " JOIN jobs j ON j.id = a.job_id WHERE j.run_id = ?1 AND a.number < j.attempts"
	         " GROUP BY 1 ORDER BY 2 DESC",
	         &st) < 0)
		goto out;
	while ((rc = arl_store_step(r->s, st, r->err)) == 1) {
		fputs("<tr data-class=\"", r->out);
		esc(r, col(st, 0));
		fputs("\">", r->out);
		td_text(r, NULL, col(st, 0));
		for (int i = 1; i <= 4; i++)
			td_num(r, (uint64_t)sqlite3_column_int64(st, i));
		fputs("</tr>\n", r->out);
	}
	if (rc < 0)
		goto out;
	fputs("</tbody></table>\n</div></div>\n</section>\n", r->out);
	ret = 0;
out:
	sqlite3_finalize(st);
	for (int i = 0; i < MAXA; i++)
		free(labels[i]);
	return ret;
}

static int section_slowest(struct rep *r)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (prep(r,
	         "SELECT key, state, error_class, duration_ms, attempts, pool FROM jobs"
	         " WHERE run_id = ?1 AND duration_ms IS NOT NULL AND attempts > 0"
	         " ORDER BY duration_ms DESC, key LIMIT ?2",
	         &st) < 0)
		return -1;
	sqlite3_bind_int64(st, 2, (int64_t)r->max_rows);
	fputs("<section id=\"slowest\">\n<h2>Slowest jobs</h2>\n<table class=\"sortable\">"
	      "<thead><tr><th>Job</th><th>State</th><th class=\"n\">Duration</th>"
	      "<th class=\"n\">Attempts</th><th>Pool</th></tr></thead><tbody>\n",
	      r->out);
	while ((rc = arl_store_step(r->s, st, r->err)) == 1) {
		const char *cls = col(st, 2);
		char state[64];

		/* "Failed (timeout)", but not "Failed (failed)" nor "Cancelled (cancelled)". */
		if (cls && !strncasecmp(col(st, 1), cls, strlen(cls)))
			cls = NULL;
		snprintf(state, sizeof(state), "%s%s%s%s", col(st, 1), cls ? " (" : "",
		         cls ? cls : "", cls ? ")" : "");
		fputs("<tr data-key=\"", r->out);
		esc(r, col(st, 0));
		fprintf(r->out, "\" data-duration=\"%lld\">",
		        (long long)sqlite3_column_int64(st, 3));
		td_text(r, "key", col(st, 0));
		td_text(r, state_class(col(st, 1)), state);
		td_dur(r, sqlite3_column_int64(st, 3), true);
		td_num(r, (uint64_t)sqlite3_column_int64(st, 4));
		td_text(r, NULL, col(st, 5));
		fputs("</tr>\n", r->out);
	}
	sqlite3_finalize(st);
	if (rc < 0)
		return -1;
	fputs("</tbody></table>\n</section>\n", r->out);
	return 0;
}

/* The last TAIL_LINES lines of @s (already cut to its last TAIL_BYTES by SQL). */
static void tail_lines(struct rep *r, const char *s, size_t len)
{
	size_t start = len, lines = 0;

	while (len && (s[len - 1] == '\n' || s[len - 1] == ' '))
		len--;
	start = len;
	while (start > 0) {
		if (s[start - 1] == '\n' && ++lines == TAIL_LINES)
			break;
		start--;
	}
	/* substr() cut at a character; skip to a line start when there is one. */
	arl_html_escn(r->out, s + start, len - start);
}

static int section_failed(struct rep *r, const struct counts *c)
{
	sqlite3_stmt *st = NULL;
	size_t shown = 0;
	int rc;

	/* f: the failed job, the run's own or the one a Skipped job stands for (column 7). */
	if (prep(r,
	         "SELECT j.key, f.error_class, f.exit_code, f.attempts, f.duration_ms, f.error,"
	         " (SELECT substr(s.stderr, -" STR(
	             TAIL_BYTES) ") FROM attempts a"
	                         "  JOIN steps s ON s.attempt_id = a.id WHERE a.job_id = f.id"
	                         "  AND a.number = f.attempts AND s.stderr IS NOT NULL AND "
	                         "s.stderr != ''"
	                         "  ORDER BY s.state = 'Failed' DESC, s.idx DESC LIMIT 1),"
	                         " CASE WHEN f.id != j.id THEN f.run_id END"
	                         " FROM jobs j JOIN jobs f ON f.id = CASE j.state WHEN 'Skipped'"
	                         " THEN j.skipped_from ELSE j.id END"
	                         " WHERE j.run_id = ?1 AND j.state IN ('Failed', 'Skipped')"
	                         " AND f.state = 'Failed' ORDER BY f.error_class, j.key LIMIT ?2",
	         &st) < 0)
		return -1;
	sqlite3_bind_int64(st, 2, (int64_t)r->max_failed);
	fprintf(r->out,
	        "<section id=\"failures\" data-failed-total=\"%llu\">\n<h2>Failed jobs</h2>\n",
	        (unsigned long long)(c->failed + c->carried_failed));
	if (!c->failed && !c->carried_failed) {
		sqlite3_finalize(st);
		fputs("<p class=\"ok\">No job failed.</p>\n</section>\n", r->out);
		return 0;
	}
	fputs("<input class=\"filter\" id=\"failed-filter\" type=\"search\" "
	      "placeholder=\"filter failed jobs\" aria-label=\"filter failed jobs\">\n"
	      "<table class=\"sortable\" id=\"failed-table\"><thead><tr><th>Job</th>"
	      "<th>Class</th><th class=\"n\">Exit</th><th class=\"n\">Attempts</th>"
	      "<th class=\"n\">Duration</th><th>Error and the tail of stderr</th></tr></thead>"
	      "<tbody>\n",
	      r->out);
	while ((rc = arl_store_step(r->s, st, r->err)) == 1) {
		bool has_exit = sqlite3_column_type(st, 2) != SQLITE_NULL;
		bool carried = sqlite3_column_type(st, 7) != SQLITE_NULL;

		shown++;
		fputs("<tr data-key=\"", r->out);
		esc(r, col(st, 0));
		fputs("\" data-class=\"", r->out);
		esc(r, col(st, 1));
		fputs("\" data-exit=\"", r->out);
		if (has_exit)
			fprintf(r->out, "%d", sqlite3_column_int(st, 2));
		fputs("\"", r->out);
		if (carried)
			fprintf(r->out, " data-carried-from=\"%lld\"",
			        (long long)sqlite3_column_int64(st, 7));
		fputs(">", r->out);
		td_text(r, "key", col(st, 0));
		td_text(r, "bad", col(st, 1));
		if (has_exit)
			fprintf(r->out, "<td class=\"n\" data-v=\"%d\">%d</td>",
			        sqlite3_column_int(st, 2), sqlite3_column_int(st, 2));
		else
			fputs("<td class=\"n\" data-v=\"\">-</td>", r->out);
		td_num(r, (uint64_t)sqlite3_column_int64(st, 3));
		td_dur(r, sqlite3_column_int64(st, 4), sqlite3_column_type(st, 4) != SQLITE_NULL);
		fputs("<td>", r->out);
		if (carried)
			fprintf(r->out, "<b>carried from run %lld</b> (skipped here) ",
			        (long long)sqlite3_column_int64(st, 7));
		esc(r, col(st, 5));
		if (col(st, 6)) {
			fputs("<pre>", r->out);
			tail_lines(r, col(st, 6), (size_t)sqlite3_column_bytes(st, 6));
			fputs("</pre>", r->out);
		}
		fputs("</td></tr>\n", r->out);
	}
	sqlite3_finalize(st);
	if (rc < 0)
		return -1;
	fputs("</tbody></table>\n", r->out);
	if (shown < c->failed + c->carried_failed)
		fprintf(
		    r->out,
		    "<p class=\"note\" id=\"failed-more\" data-more=\"%llu\">%llu more failed jobs "
		    "not shown; list them all with <code>arl-batch results --run %lld --state "
		    "%s</code>.</p>\n",
		    (unsigned long long)(c->failed + c->carried_failed - shown),
		    (unsigned long long)(c->failed + c->carried_failed - shown), (long long)r->run,
		    c->carried_failed ? "Failed,Skipped" : "Failed");
	fputs("</section>\n", r->out);
	return 0;
}

/* One numeric metric: its statistics and a histogram of its values, binned in SQL. */
static int metric_numeric(struct rep *r, const char *name, int64_t count, double lo, double hi,
                          double mean)
{
	sqlite3_stmt *st = NULL;
	uint64_t counts[METRIC_BINS] = {0};
	char *labels[METRIC_BINS] = {NULL};
	char b1[32], b2[32], b3[32], b4[32], b5[32];
	size_t nbins = hi > lo ? bins_for((size_t)count, METRIC_BINS) : 1;
	double median = lo;
	int rc, ret = -1;

	if (prep(r,
	         "SELECT CASE WHEN ?3 <= ?2 THEN 0 ELSE min(CAST((m.value - ?2) * ?4 / (?3 - ?2)"
	         " AS INTEGER), ?4 - 1) END, count(*) FROM metrics m JOIN jobs j ON j.id = m.job_id"
	         " WHERE j.run_id = ?1 AND m.name = ?5 AND typeof(m.value) IN ('integer', 'real')"
	         " GROUP BY 1",
	         &st) < 0)
		return -1;
	sqlite3_bind_double(st, 2, lo);
	sqlite3_bind_double(st, 3, hi);
	sqlite3_bind_int64(st, 4, (int64_t)nbins);
	sqlite3_bind_text(st, 5, name, -1, SQLITE_STATIC);
	while ((rc = arl_store_step(r->s, st, r->err)) == 1) {
		int64_t b = sqlite3_column_int64(st, 0);

		if (b >= 0 && (size_t)b < nbins)
			counts[b] += (uint64_t)sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	st = NULL;
	if (rc < 0)
		goto out;
	if (prep(r,
	         "SELECT m.value FROM metrics m JOIN jobs j ON j.id = m.job_id WHERE j.run_id = ?1"
	         " AND m.name = ?2 AND typeof(m.value) IN ('integer', 'real')"
	         " ORDER BY m.value LIMIT 1 OFFSET ?3",
	         &st) < 0)
		goto out;
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (count - 1) / 2);
	if ((rc = arl_store_step(r->s, st, r->err)) == 1)
		median = sqlite3_column_double(st, 0);
	if (rc < 0)
		goto out;
	for (size_t i = 0; i < nbins; i++)
		labels[i] = arl_xasprintf(
		    "%s", arl_html_num(lo + (hi - lo) * (double)i / (double)nbins, b1, sizeof(b1)));
	fputs("<div class=\"metric\" data-metric=\"", r->out);
	esc(r, name);
	fprintf(
	    r->out,
	    "\" data-kind=\"number\" data-count=\"%lld\" data-mean=\"%.17g\" data-min=\"%.17g\" "
	    "data-max=\"%.17g\">\n<h3>",
	    (long long)count, mean, lo, hi);
	esc(r, name);
	fprintf(r->out,
	        "</h3>\n<p class=\"note\">%lld values &middot; mean <b>%s</b> &middot; median "
	        "<b>%s</b> &middot; min %s &middot; max %s</p>\n",
	        (long long)count, arl_html_num(mean, b2, sizeof(b2)),
	        arl_html_num(median, b3, sizeof(b3)), arl_html_num(lo, b4, sizeof(b4)),
	        arl_html_num(hi, b5, sizeof(b5)));
	arl_html_chart(r->out, &(struct arl_html_chart){.title = name,
	                                                .nbins = nbins,
	                                                .nseries = 1,
	                                                .bin_labels = (const char *const *)labels,
	                                                .series = (const char *const[]){name},
	                                                .counts = counts,
	                                                .unit = "jobs",
	                                                .width = 560});
	fputs("</div>\n", r->out);
	ret = 0;
out:
	sqlite3_finalize(st);
	for (size_t i = 0; i < METRIC_BINS; i++)
		free(labels[i]);
	return ret;
}

/* A text metric: its most common values. */
static int metric_text(struct rep *r, const char *name, int64_t count)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (prep(r,
	         "SELECT CAST(m.value AS TEXT), count(*) FROM metrics m JOIN jobs j ON j.id ="
	         " m.job_id WHERE j.run_id = ?1 AND m.name = ?2 GROUP BY 1 ORDER BY 2 DESC, 1"
	         " LIMIT 8",
	         &st) < 0)
		return -1;
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	fputs("<div class=\"metric\" data-metric=\"", r->out);
	esc(r, name);
	fprintf(r->out, "\" data-kind=\"text\" data-count=\"%lld\">\n<h3>", (long long)count);
	esc(r, name);
	fputs("</h3>\n<table><thead><tr><th>Value</th><th class=\"n\">Jobs</th></tr></thead>"
	      "<tbody>\n",
	      r->out);
	while ((rc = arl_store_step(r->s, st, r->err)) == 1) {
		fputs("<tr>", r->out);
		td_text(r, "key", col(st, 0) ? col(st, 0) : "null");
		td_num(r, (uint64_t)sqlite3_column_int64(st, 1));
		fputs("</tr>\n", r->out);
	}
	sqlite3_finalize(st);
	if (rc < 0)
		return -1;
	fputs("</tbody></table>\n</div>\n", r->out);
	return 0;
}

static int section_metrics(struct rep *r)
{
	sqlite3_stmt *st = NULL;
	int n = 0, rc, ret = -1;

	if (prep(r,
	         "SELECT m.name, count(*), sum(typeof(m.value) IN ('integer', 'real')),"
	         " min(CASE WHEN typeof(m.value) IN ('integer', 'real') THEN m.value END),"
	         " max(CASE WHEN typeof(m.value) IN ('integer', 'real') THEN m.value END),"
	         " avg(CASE WHEN typeof(m.value) IN ('integer', 'real') THEN m.value END)"
	         " FROM metrics m JOIN jobs j ON j.id = m.job_id WHERE j.run_id = ?1"
	         " GROUP BY m.name ORDER BY m.name",
	         &st) < 0)
		return -1;
	while ((rc = arl_store_step(r->s, st, r->err)) == 1) {
		char *name = arl_xstrdup(col(st, 0));
		int64_t count = sqlite3_column_int64(st, 1), numeric = sqlite3_column_int64(st, 2);

		if (!n++)
			fputs(
			    "<section id=\"metrics\">\n<h2>Metrics</h2>\n<p class=\"note\">From "
			    "the last attempt of each job (steps with <code>metrics: json</code>)."
			    "</p>\n<div class=\"grid2\">\n",
			    r->out);
		if (n > MAX_METRICS) {
			free(name);
			continue;
		}
		rc = numeric ? metric_numeric(r, name, numeric, sqlite3_column_double(st, 3),
		                              sqlite3_column_double(st, 4),
		                              sqlite3_column_double(st, 5))
		             : metric_text(r, name, count);
		free(name);
		if (rc < 0)
			goto out;
	}
	if (rc < 0)
		goto out;
	if (n)
		fprintf(r->out, "</div>\n%s</section>\n",
		        n > MAX_METRICS ? "<p class=\"note\">More metrics not shown.</p>\n" : "");
	ret = 0;
out:
	sqlite3_finalize(st);
	return ret;
}

/* Steps whose `metrics: json` stored nothing, or not all, in the jobs' last attempts. */
static int section_metric_errors(struct rep *r)
{
	sqlite3_stmt *st = NULL;
	int64_t total = 0, shown = 0;
	int rc;

	if (prep(r,
	         "SELECT j.key, s.name, s.metrics_error, count(*) OVER () FROM jobs j"
	         " JOIN attempts a ON a.job_id = j.id AND a.number = j.attempts"
	         " JOIN steps s ON s.attempt_id = a.id"
	         " WHERE j.run_id = ?1 AND s.metrics_error IS NOT NULL ORDER BY j.key, s.idx"
	         " LIMIT ?2",
	         &st) < 0)
		return -1;
	sqlite3_bind_int64(st, 2, (int64_t)r->max_failed);
	while ((rc = arl_store_step(r->s, st, r->err)) == 1) {
		if (!shown++) {
			total = sqlite3_column_int64(st, 3);
			fprintf(r->out,
			        "<section id=\"metric-errors\" data-total=\"%lld\">\n"
			        "<h2>Metrics not recorded</h2>\n<p class=\"note\">Steps with "
			        "<code>metrics: json</code> whose metrics were not all stored, and "
			        "why.</p>\n<table><thead><tr><th>Job</th><th>Step</th><th>Why</th>"
			        "</tr></thead><tbody>\n",
			        (long long)total);
		}
		fputs("<tr>", r->out);
		td_text(r, "key", col(st, 0));
		td_text(r, NULL, col(st, 1));
		td_text(r, "bad", col(st, 2));
		fputs("</tr>\n", r->out);
	}
	sqlite3_finalize(st);
	if (rc < 0)
		return -1;
	if (shown)
		fprintf(r->out, "</tbody></table>\n%s</section>\n",
		        total > shown ? "<p class=\"note\">More not shown.</p>\n" : "");
	return 0;
}

static void key_list(struct rep *r, const cJSON *jobs, const char *flip, const char *title,
                     size_t max)
{
	const cJSON *list = cJSON_GetObjectItem(jobs, flip), *it;
	size_t n = 0, total = (size_t)cJSON_GetArraySize(list);

	if (!total)
		return;
	fprintf(r->out,
	        "<div class=\"flips\" data-flip=\"%s\" data-count=\"%zu\"><h3>%s (%zu)</h3>"
	        "<table><tbody>\n",
	        flip, total, title, total);
	cJSON_ArrayForEach(it, list)
	{
		if (n++ == max)
			break;
		fputs("<tr>", r->out);
		td_text(r, "key", it->valuestring);
		fputs("</tr>\n", r->out);
	}
	fputs("</tbody></table>", r->out);
	if (total > max)
		fprintf(r->out, "<p class=\"note\">%zu more not shown.</p>", total - max);
	fputs("</div>\n", r->out);
}

static int section_compare(struct rep *r)
{
	static const char *const titles[] = {
	    "Fixed", "Broken",  "Still failing",     "Still passing",
	    "Added", "Missing", "Infra or cancelled"};
	static const char *const job_metric_sql =
	    "SELECT a.key, ma.name, ma.value, mb.value FROM jobs a"
	    " JOIN jobs b ON b.key = a.key AND b.run_id = ?1"
	    " JOIN metrics ma ON ma.job_id = a.id JOIN metrics mb ON mb.job_id = b.id"
	    " AND mb.name = ma.name WHERE a.run_id = ?2"
	    " AND typeof(ma.value) IN ('integer', 'real') AND typeof(mb.value) IN ('integer', "
	    "'real')"
	    " AND ma.value != mb.value ORDER BY abs(mb.value - ma.value) DESC, a.key LIMIT ?3";
	cJSON *d = NULL, *it;
	const cJSON *counts, *jobs, *runs;
	sqlite3_stmt *st = NULL;
	char b1[32], b2[32], b3[32];
	int rc, ret = -1, nchanges = 0;

	if (arl_rundiff_json(r->s, r->o->compare_id, r->run, false, &d, r->err) < 0)
		return -1;
	counts = cJSON_GetObjectItem(d, "counts");
	jobs = cJSON_GetObjectItem(d, "jobs");
	runs = cJSON_GetObjectItem(d, "runs");
	fprintf(r->out, "<section id=\"compare\" data-baseline=\"%lld\"",
	        (long long)r->o->compare_id);
	for (int f = 0; f < ARL_RUNDIFF_NFLIPS; f++)
		fprintf(r->out, " data-%s=\"%d\"", arl_rundiff_flip_names[f],
		        cJSON_GetObjectItem(counts, arl_rundiff_flip_names[f])->valueint);
	fprintf(r->out, ">\n<h2>Compared with run %lld</h2>\n", (long long)r->o->compare_id);
	fputs("<table><thead><tr><th>Run</th><th class=\"n\">Passed</th><th class=\"n\">Failed</th>"
	      "<th class=\"n\">Pass rate</th></tr></thead><tbody>\n",
	      r->out);
	cJSON_ArrayForEach(it, runs)
	{
		int pass = cJSON_GetObjectItem(it, "passed")->valueint,
		    fail = cJSON_GetObjectItem(it, "failed")->valueint;
		char *label = arl_xasprintf("run %d %s", cJSON_GetObjectItem(it, "id")->valueint,
		                            cJSON_GetObjectItem(it, "name")->valuestring);

		fputs("<tr>", r->out);
		td_text(r, "key", label);
		td_num(r, (uint64_t)pass);
		td_num(r, (uint64_t)fail);
		fprintf(r->out, "<td class=\"n\">%s",
		        pct((uint64_t)pass, (uint64_t)fail, b1, sizeof(b1)));
		arl_html_ratio_bar(r->out, ratio((uint64_t)pass, (uint64_t)fail));
		fputs("</td></tr>\n", r->out);
		free(label);
	}
	fputs("</tbody></table>\n<p>", r->out);
	for (int f = 0; f < ARL_RUNDIFF_NFLIPS; f++)
		fprintf(r->out, "%s<b class=\"%s\">%d</b> %s", f ? " &middot; " : "",
		        f == 0   ? "ok"
		        : f == 1 ? "bad"
		                 : "",
		        cJSON_GetObjectItem(counts, arl_rundiff_flip_names[f])->valueint,
		        titles[f]);
	fprintf(r->out,
	        ". McNemar's exact test on the flips: p = %.4g (infra and cancelled jobs are not "
	        "counted).</p>\n<div class=\"grid2\">\n",
	        cJSON_GetObjectItem(d, "mcnemarP")->valuedouble);
	key_list(r, jobs, "broken", "Broken (passed before, fail now)", r->max_rows * 4);
	key_list(r, jobs, "fixed", "Fixed (failed before, pass now)", r->max_rows * 4);
	key_list(r, jobs, "still_failing", "Still failing", r->max_rows);
	key_list(r, jobs, "added", "Added", r->max_rows);
	key_list(r, jobs, "missing", "Missing", r->max_rows);
	key_list(r, jobs, "infra", "Infra or cancelled in either run", r->max_rows);
	fputs("</div>\n", r->out);
	if (cJSON_GetArraySize(cJSON_GetObjectItem(d, "metrics"))) {
		fputs(
		    "<h3>Metric means</h3>\n<table class=\"sortable\" id=\"metric-deltas\"><thead>"
		    "<tr><th>Metric</th><th class=\"n\">Before</th><th class=\"n\">Now</th>"
		    "<th class=\"n\">Delta</th></tr></thead><tbody>\n",
		    r->out);
		cJSON_ArrayForEach(it, cJSON_GetObjectItem(d, "metrics"))
		{
			const cJSON *a = cJSON_GetObjectItem(it, "meanA"),
			            *b = cJSON_GetObjectItem(it, "meanB"),
			            *dl = cJSON_GetObjectItem(it, "delta");

			fputs("<tr data-metric=\"", r->out);
			esc(r, cJSON_GetObjectItem(it, "name")->valuestring);
			fputs("\">", r->out);
			td_text(r, "key", cJSON_GetObjectItem(it, "name")->valuestring);
			td_text(r, "n", a ? arl_html_num(a->valuedouble, b1, sizeof(b1)) : "-");
			td_text(r, "n", b ? arl_html_num(b->valuedouble, b2, sizeof(b2)) : "-");
			if (dl)
				fprintf(r->out, "<td class=\"n\" data-v=\"%.17g\">%s%s</td>",
				        dl->valuedouble, dl->valuedouble > 0 ? "+" : "",
				        arl_html_num(dl->valuedouble, b3, sizeof(b3)));
			else
				fputs("<td class=\"n\" data-v=\"\">-</td>", r->out);
			fputs("</tr>\n", r->out);
		}
		fputs("</tbody></table>\n", r->out);
	}
	if (prep(r, job_metric_sql, &st) < 0)
		goto out;
	sqlite3_bind_int64(st, 2, r->o->compare_id);
	sqlite3_bind_int64(st, 3, (int64_t)r->max_rows * 2);
	while ((rc = arl_store_step(r->s, st, r->err)) == 1) {
		double a = sqlite3_column_double(st, 2), b = sqlite3_column_double(st, 3);

		if (!nchanges++)
			fputs("<h3>Largest metric changes per job</h3>\n<table class=\"sortable\">"
			      "<thead><tr><th>Job</th><th>Metric</th><th class=\"n\">Before</th>"
			      "<th class=\"n\">Now</th><th "
			      "class=\"n\">Delta</th></tr></thead><tbody>\n",
			      r->out);
		fputs("<tr>", r->out);
		td_text(r, "key", col(st, 0));
		td_text(r, NULL, col(st, 1));
		td_text(r, "n", arl_html_num(a, b1, sizeof(b1)));
		td_text(r, "n", arl_html_num(b, b2, sizeof(b2)));
		fprintf(r->out, "<td class=\"n\" data-v=\"%.17g\">%s%s</td></tr>\n", b - a,
		        b - a > 0 ? "+" : "", arl_html_num(b - a, b3, sizeof(b3)));
	}
	if (rc < 0)
		goto out;
	fprintf(r->out, "%s</section>\n", nchanges ? "</tbody></table>\n" : "");
	ret = 0;
out:
	sqlite3_finalize(st);
	cJSON_Delete(d);
	return ret;
}

int arl_report_write(struct arl_store *s, const struct arl_report_opts *o, FILE *out,
                     struct arl_err *err)
{
	struct rep r = {.s = s,
	                .out = out,
	                .o = o,
	                .run = o->run_id,
	                .max_failed = o->max_failed ? o->max_failed : DEFAULT_MAX_FAILED,
	                .max_rows = o->max_rows ? o->max_rows : DEFAULT_MAX_ROWS,
	                .err = err};
	struct counts c;
	char now[32];

	if (read_counts(&r, &c) < 0 || section_header(&r, &c) < 0 || section_pass_rates(&r) < 0 ||
	    section_durations(&r) < 0 || section_attempts(&r) < 0 || section_slowest(&r) < 0 ||
	    section_failed(&r, &c) < 0 || section_metrics(&r) < 0 ||
	    section_metric_errors(&r) < 0 || (o->compare_id && section_compare(&r) < 0))
		return -1;
	arl_rfc3339_now(now);
	fprintf(out, "<footer>Generated by arl-batch %s at %s from ", ARL_VERSION, now);
	arl_html_esc(out, arl_store_path(s));
	fprintf(out, ".</footer>\n</main>\n<script>%s</script>\n</body>\n</html>\n", page_js);
	return 0;
}
