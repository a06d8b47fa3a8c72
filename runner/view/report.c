/*
 * DESIGN: the page is written top to bottom in one pass, one function per section, each
 * formatting the aggregates and capped lists its store readers (store/store_report.h) hand
 * it, row by row. Nothing is kept in memory beyond one section's numbers,
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

#include "buf.h"
#include "view/html.h"
#include "view/rundiff.h"
#include "store/store_diff.h"
#include "store/store_report.h"
#include "view/store_view.h"
#include "util.h"
#include "banned.h"

#define DEFAULT_MAX_FAILED 200
#define DEFAULT_MAX_ROWS   25
#define MAX_POOLS          200
#define MAX_LABEL_KEYS     20
#define MAX_LABEL_VALUES   40 /* a label with more values (an instance id) is not broken down */
#define MAX_METRICS        40
#define DURATION_BINS      24
#define METRIC_BINS        20
#define TEXT_VALUES        8 /* the most common values shown of a text metric */
#define TAIL_BYTES         1500
#define TAIL_LINES         20

struct rep {
	struct arl_store *s;
	FILE *out;
	const struct arl_report_opts *o;
	int64_t run;
	size_t max_failed, max_rows;
	struct arl_err *err;
	/* What a section's row callbacks count as they go. */
	size_t nfailed, nchanges, nartifacts;
	int64_t nmetrics, nmetric_errors, metric_errors_total;
};

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
	struct arl_report_counts k;

	if (arl_store_report_counts(r->s, r->run, &k, r->err) < 0)
		return -1;
	memset(c, 0, sizeof(*c));
	c->total = k.total;
	c->succeeded = k.state[ARL_STATE_SUCCEEDED];
	c->failed = k.state[ARL_STATE_FAILED];
	c->skipped = k.state[ARL_STATE_SKIPPED];
	c->cancelled = k.state[ARL_STATE_CANCELLED];
	c->unfinished = k.total - c->succeeded - c->failed - c->skipped - c->cancelled;
	_Static_assert(sizeof(c->cls) == sizeof(k.cls), "one count per class");
	memcpy(c->cls, k.cls, sizeof(c->cls));
	c->passed = k.passed;
	c->counted_failed = k.counted_failed;
	c->carried_failed = k.carried_failed;
	c->carried_cancelled = k.carried_cancelled;
	return 0;
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

/* The run's parameters, one span each: what makes two runs of one file differ. */
static void params_list(struct rep *r, const char *json)
{
	cJSON *o = json ? cJSON_ParseWithLengthOpts(json, strlen(json) + 1, NULL, 1) : NULL;
	const cJSON *it;

	cJSON_ArrayForEach(it, o)
	{
		if (!cJSON_IsString(it))
			continue;
		fputs("<span>", r->out);
		esc(r, it->string);
		fputs(" <b>", r->out);
		esc(r, it->valuestring);
		fputs("</b></span>", r->out);
	}
	cJSON_Delete(o);
}

/*
 * The budgets the run recorded in its notes ("budget cost_usd: 3 of 2.5 spent", run.c; a
 * budget's metric has no ':' or ';', validate sees to it), each as metric, spent / max and
 * whether it halted the run (runs.halted_by "budget cost_usd 2.5 reached (3)").
 */
static void budgets_list(struct rep *r, const char *notes, const char *halted_by)
{
	for (const char *p = notes; p && (p = strstr(p, "budget ")); p++) {
		const char *colon, *spent, *of, *max, *tail;
		char *end, *metric, *mx, *reached;
		bool halted;

		if (p != notes && (p - notes < 2 || p[-2] != ';' || p[-1] != ' '))
			continue;
		colon = p + 7 + strcspn(p + 7, ":;");
		if (colon == p + 7 || strncmp(colon, ": ", 2))
			continue;
		spent = colon + 2;
		(void)strtod(spent, &end);
		if (end == spent || strncmp(end, " of ", 4))
			continue;
		of = end;
		max = of + 4;
		(void)strtod(max, &end);
		tail = end;
		if (end == max || strncmp(tail, " spent", 6) ||
		    (tail[6] && strncmp(tail + 6, "; ", 2)))
			continue;
		metric = arl_xstrndup(p + 7, (size_t)(colon - (p + 7)));
		mx = arl_xstrndup(max, (size_t)(tail - max));
		reached = arl_xasprintf("budget %s %s reached (", metric, mx);
		halted = halted_by && strstr(halted_by, reached);
		fputs("<span class=\"budget\">budget <b>", r->out);
		esc(r, metric);
		fputs("</b> spent <b>", r->out);
		arl_html_escn(r->out, spent, (size_t)(of - spent));
		fputs(" / ", r->out);
		esc(r, mx);
		fputs(halted ? "</b> <b class=\"bad\">halted the run</b></span>"
		             : "</b> not reached</span>",
		      r->out);
		free(reached);
		free(mx);
		free(metric);
	}
}

static int section_header(struct rep *r, const struct counts *c)
{
	struct arl_report_run run;
	char t[24], d[32], p[16];

	if (arl_store_report_run(r->s, r->run, &run, r->err) < 0)
		return -1;
	fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
	      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
	      /* The page may not fetch anything: inline style and script only. */
	      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
	      "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n"
	      "<title>arl-batch report: run ",
	      r->out);
	fprintf(r->out, "%lld ", (long long)r->run);
	esc(r, run.name);
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
	esc(r, run.status);
	fputs("\">\n<main>\n<header>\n<h1>Run ", r->out);
	fprintf(r->out, "%lld &middot; ", (long long)r->run);
	esc(r, run.name);
	fputs("<span class=\"badge ", r->out);
	esc(r, run.status);
	fputs("\">", r->out);
	esc(r, run.status);
	fputs("</span></h1>\n<div class=\"meta\">", r->out);
	fputs("<span>started <b>", r->out);
	esc(r, arl_view_time(run.started_at, t));
	fputs(" UTC</b></span>", r->out);
	if (!run.duration_null)
		fprintf(r->out, "<span>took <b>%s</b></span>",
		        arl_view_go_duration(run.duration_ms, d, sizeof(d)));
	if (!run.exit_null)
		fprintf(r->out, "<span>exit <b>%d</b></span>", run.exit_code);
	if (run.host) {
		fputs("<span>host <b>", r->out);
		esc(r, run.host);
		fputs("</b></span>", r->out);
	}
	if (run.isolation) {
		fputs("<span>isolation <b>", r->out);
		esc(r, run.isolation);
		fputs("</b></span>", r->out);
	}
	if (run.halted_by) {
		fputs("<span>halted by <b>", r->out);
		esc(r, run.halted_by);
		fputs("</b></span>", r->out);
	}
	fputs("<span>files <b>", r->out);
	files_list(r, run.files);
	fputs("</b></span>", r->out);
	budgets_list(r, run.notes, run.halted_by);
	params_list(r, run.params);
	fputs("</div>\n", r->out);
	if (run.notes) {
		fputs("<p class=\"note\">", r->out);
		esc(r, run.notes);
		fputs("</p>\n", r->out);
	}
	fputs("</header>\n", r->out);
	arl_report_run_release(&run);

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
	/* A skipped job counts as the result it stands for (docs/database.md). */
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
                      const struct arl_report_group *g)
{
	char p[16];

	fprintf(r->out, "<tr data-group=\"%s\" data-name=\"", kind);
	esc(r, name);
	fprintf(r->out, "\" data-total=\"%llu\" data-passed=\"%llu\" data-failed=\"%llu\">",
	        (unsigned long long)g->total, (unsigned long long)g->passed,
	        (unsigned long long)g->failed);
	td_text(r, "key", shown);
	td_num(r, g->total);
	td_num(r, g->passed);
	td_num(r, g->failed);
	td_num(r, g->total - g->passed - g->failed);
	fprintf(r->out, "<td class=\"n\" data-v=\"%.6f\">%s", ratio(g->passed, g->failed),
	        pct(g->passed, g->failed, p, sizeof(p)));
	arl_html_ratio_bar(r->out, ratio(g->passed, g->failed));
	fputs("</td></tr>\n", r->out);
}

static int pool_row(void *arg, const struct arl_report_group *g, struct arl_err *err)
{
	struct rep *r = arg;
	char *shown = arl_xasprintf("pool %s", g->name ? g->name : "-");

	(void)err;
	group_row(r, "pool", g->name ? g->name : "-", shown, g);
	free(shown);
	return 0;
}

struct label_rows {
	struct rep *r;
	const char *key;
	struct arl_buf many; /* the labels not broken down */
	int nkeys;
};

static int label_row(void *arg, const struct arl_report_group *g, struct arl_err *err)
{
	struct label_rows *l = arg;
	char *name = arl_xasprintf("%s=%s", l->key, g->name ? g->name : "null");
	char *shown = arl_xasprintf("label %s", name);

	(void)err;
	group_row(l->r, "label", name, shown, g);
	free(name);
	free(shown);
	return 0;
}

/* Labels with few values are broken down; one per job (an id) would be noise. */
static int label_key(void *arg, const struct arl_report_label_key *k, struct arl_err *err)
{
	struct label_rows *l = arg;

	if (k->nvalues > MAX_LABEL_VALUES || l->nkeys >= MAX_LABEL_KEYS) {
		arl_buf_addf(&l->many, "%s%s (%lld values)", l->many.len ? ", " : "", k->key,
		             (long long)k->nvalues);
		return 0;
	}
	l->nkeys++;
	l->key = k->key;
	return arl_store_report_pass_by_label(l->r->s, l->r->run, k->key, label_row, l, err);
}

static int section_pass_rates(struct rep *r)
{
	struct label_rows labels = {.r = r, .many = ARL_BUF_INIT};
	struct arl_report_group all;
	int ret = -1;

	fputs("<section id=\"pass-rates\">\n<h2>Pass rate</h2>\n"
	      "<p class=\"note\">Pass rate = passed / (passed + failed). Failed counts the classes "
	      "failed and timeout; infra and cancelled jobs say nothing about the work under test "
	      "and are excluded. A skipped job counts as the result it stands for.</p>\n"
	      "<table class=\"sortable\" id=\"pass-table\"><thead><tr><th>Group</th>"
	      "<th class=\"n\">Jobs</th><th class=\"n\">Passed</th><th class=\"n\">Failed</th>"
	      "<th class=\"n\">Excluded</th><th class=\"n\">Pass rate</th></tr></thead><tbody>\n",
	      r->out);
	if (arl_store_report_pass_all(r->s, r->run, &all, r->err) < 0)
		goto out;
	group_row(r, "all", "all", "all jobs", &all);
	if (arl_store_report_pass_by_pool(r->s, r->run, MAX_POOLS, pool_row, r, r->err) < 0 ||
	    arl_store_report_label_keys(r->s, r->run, label_key, &labels, r->err) < 0)
		goto out;
	fputs("</tbody></table>\n", r->out);
	if (labels.many.len) {
		fputs("<p class=\"note\">Not broken down (too many values): labels ", r->out);
		esc(r, labels.many.p);
		fputs(".</p>\n", r->out);
	}
	fputs("</section>\n", r->out);
	ret = 0;
out:
	arl_buf_release(&labels.many);
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

/* Every duration (clamped at 0) with its series: 0 Succeeded, 1 Failed, 2 Cancelled. */
struct durations {
	int64_t *v;
	unsigned char *state;
	size_t n, cap;
};

static int add_duration(void *arg, const struct arl_report_duration *row, struct arl_err *err)
{
	struct durations *d = arg;
	size_t oldcap = d->cap;

	(void)err;
	ARL_GROW(d->v, d->cap, d->n + 1);
	if (d->cap != oldcap)
		d->state = arl_xrealloc(d->state, d->cap);
	d->v[d->n] = row->ms < 0 ? 0 : row->ms;
	d->state[d->n++] = row->state == ARL_STATE_SUCCEEDED ? 0
	                   : row->state == ARL_STATE_FAILED  ? 1
	                                                     : 2;
	return 0;
}

static int section_durations(struct rep *r)
{
	static const char *const series[] = {"Succeeded", "Failed", "Cancelled"};
	struct durations all = {0};
	int64_t *v, *sorted = NULL, lo, hi;
	unsigned char *state;
	size_t n, nbins;
	uint64_t counts[3 * DURATION_BINS] = {0};
	char *labels[DURATION_BINS] = {NULL};
	char a[32], b[32], c[32], d[32], e[32];
	double mean = 0;
	bool log_scale;
	int ret = -1;

	if (arl_store_report_durations(r->s, r->run, add_duration, &all, r->err) < 0)
		goto out;
	v = all.v;
	state = all.state;
	n = all.n;
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
	free(all.v);
	free(sorted);
	free(all.state);
	return ret;
}

enum { MAXA = 11 }; /* retries are 0..10 */

/* Jobs by attempts (capped at MAXA) and series: 0 Succeeded, 1 Failed, 2 Cancelled. */
struct attempt_counts {
	uint64_t counts[3 * MAXA], retried[3];
	int maxa;
};

static int add_attempts(void *arg, const struct arl_report_attempts *row, struct arl_err *err)
{
	struct attempt_counts *ac = arg;
	/* the query asks attempts > 0; clamped anyway, as an index into counts */
	int a = row->attempts < 1 ? 1 : row->attempts > MAXA ? MAXA : (int)row->attempts;
	int k = row->state == ARL_STATE_SUCCEEDED ? 0 : row->state == ARL_STATE_FAILED ? 1 : 2;

	(void)err;
	ac->maxa = a > ac->maxa ? a : ac->maxa;
	ac->counts[k * MAXA + (a - 1)] += row->jobs;
	if (a > 1)
		ac->retried[k] += row->jobs;
	return 0;
}

static int retry_row(void *arg, const struct arl_report_retries *row, struct arl_err *err)
{
	struct rep *r = arg;

	(void)err;
	fputs("<tr data-class=\"", r->out);
	esc(r, row->cls);
	fputs("\">", r->out);
	td_text(r, NULL, row->cls);
	td_num(r, row->retries);
	td_num(r, row->succeeded);
	td_num(r, row->failed);
	td_num(r, row->cancelled);
	fputs("</tr>\n", r->out);
	return 0;
}

static int section_attempts(struct rep *r)
{
	static const char *const series[] = {"Succeeded", "Failed", "Cancelled"};
	struct attempt_counts ac = {.maxa = 1};
	uint64_t *counts = ac.counts, *retried = ac.retried, nattempts = 0, nok = 0;
	char *labels[MAXA];
	int maxa, ret = -1;

	for (int i = 0; i < MAXA; i++)
		labels[i] = arl_xasprintf("%d attempt%s", i + 1, i ? "s" : "");
	if (arl_store_report_attempts(r->s, r->run, add_attempts, &ac, r->err) < 0 ||
	    arl_store_report_attempt_totals(r->s, r->run, &nattempts, &nok, r->err) < 0)
		goto out;
	maxa = ac.maxa;
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
	if (arl_store_report_retries(r->s, r->run, retry_row, r, r->err) < 0)
		goto out;
	fputs("</tbody></table>\n</div></div>\n</section>\n", r->out);
	ret = 0;
out:
	for (int i = 0; i < MAXA; i++)
		free(labels[i]);
	return ret;
}

static int slow_row(void *arg, const struct arl_report_slow_job *j, struct arl_err *err)
{
	struct rep *r = arg;
	const char *cls = j->error_class;
	char state[64];

	(void)err;
	/* "Failed (timeout)", but not "Failed (failed)" nor "Cancelled (cancelled)". */
	if (cls && !strncasecmp(j->state, cls, strlen(cls)))
		cls = NULL;
	snprintf(state, sizeof(state), "%s%s%s%s", j->state, cls ? " (" : "", cls ? cls : "",
	         cls ? ")" : "");
	fputs("<tr data-key=\"", r->out);
	esc(r, j->key);
	fprintf(r->out, "\" data-duration=\"%lld\">", (long long)j->duration_ms);
	td_text(r, "key", j->key);
	td_text(r, state_class(j->state), state);
	td_dur(r, j->duration_ms, true);
	td_num(r, (uint64_t)j->attempts);
	td_text(r, NULL, j->pool);
	fputs("</tr>\n", r->out);
	return 0;
}

static int section_slowest(struct rep *r)
{
	fputs("<section id=\"slowest\">\n<h2>Slowest jobs</h2>\n<table class=\"sortable\">"
	      "<thead><tr><th>Job</th><th>State</th><th class=\"n\">Duration</th>"
	      "<th class=\"n\">Attempts</th><th>Pool</th></tr></thead><tbody>\n",
	      r->out);
	if (arl_store_report_slowest(r->s, r->run, r->max_rows, slow_row, r, r->err) < 0)
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

static int failed_row(void *arg, const struct arl_report_failed_job *j, struct arl_err *err)
{
	struct rep *r = arg;

	(void)err;
	r->nfailed++;
	fputs("<tr data-key=\"", r->out);
	esc(r, j->key);
	fputs("\" data-class=\"", r->out);
	esc(r, j->error_class);
	fputs("\" data-exit=\"", r->out);
	if (!j->exit_null)
		fprintf(r->out, "%d", j->exit_code);
	fputs("\"", r->out);
	if (!j->carried_null)
		fprintf(r->out, " data-carried-from=\"%lld\"", (long long)j->carried_from);
	fputs(">", r->out);
	td_text(r, "key", j->key);
	td_text(r, "bad", j->error_class);
	if (!j->exit_null)
		fprintf(r->out, "<td class=\"n\" data-v=\"%d\">%d</td>", j->exit_code,
		        j->exit_code);
	else
		fputs("<td class=\"n\" data-v=\"\">-</td>", r->out);
	td_num(r, (uint64_t)j->attempts);
	td_dur(r, j->duration_ms, !j->duration_null);
	fputs("<td>", r->out);
	if (!j->carried_null)
		fprintf(r->out, "<b>carried from run %lld</b> (skipped here) ",
		        (long long)j->carried_from);
	esc(r, j->error);
	if (j->stderr_tail) {
		fputs("<pre>", r->out);
		tail_lines(r, j->stderr_tail, strlen(j->stderr_tail));
		fputs("</pre>", r->out);
	}
	fputs("</td></tr>\n", r->out);
	return 0;
}

static int section_failed(struct rep *r, const struct counts *c)
{
	fprintf(r->out,
	        "<section id=\"failures\" data-failed-total=\"%llu\">\n<h2>Failed jobs</h2>\n",
	        (unsigned long long)(c->failed + c->carried_failed));
	if (!c->failed && !c->carried_failed) {
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
	r->nfailed = 0;
	if (arl_store_report_failed(r->s, r->run, r->max_failed, TAIL_BYTES, failed_row, r,
	                            r->err) < 0)
		return -1;
	fputs("</tbody></table>\n", r->out);
	if (r->nfailed < c->failed + c->carried_failed)
		fprintf(
		    r->out,
		    "<p class=\"note\" id=\"failed-more\" data-more=\"%llu\">%llu more failed jobs "
		    "not shown; list them all with <code>arl-batch results --run %lld --state "
		    "%s</code>.</p>\n",
		    (unsigned long long)(c->failed + c->carried_failed - r->nfailed),
		    (unsigned long long)(c->failed + c->carried_failed - r->nfailed),
		    (long long)r->run, c->carried_failed ? "Failed,Skipped" : "Failed");
	fputs("</section>\n", r->out);
	return 0;
}

/* @s in an href: bytes other than unreserved ones and '/' percent-encoded. */
static void url_path(struct rep *r, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~/", *p))
			fputc(*p, r->out);
		else
			fprintf(r->out, "%%%02X", *p);
	}
}

static bool is_hex64(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
			return false;
	return n == 64;
}

static int artifact_row(void *arg, const struct arl_report_artifact *a, struct arl_err *err)
{
	struct rep *r = arg;

	(void)err;
	r->nartifacts++;
	fputs("<tr>", r->out);
	td_text(r, "key", a->key);
	fprintf(r->out, "<td class=\"n\">%lld</td>", (long long)a->attempt);
	td_text(r, NULL, a->path);
	fprintf(r->out, "<td class=\"n\" data-v=\"%lld\">%lld</td>", (long long)a->size,
	        (long long)a->size);
	if (a->sha256 && is_hex64(a->sha256)) {
		fputs("<td><code>", r->out);
		if (r->o->artifacts_href) {
			fputs("<a href=\"", r->out);
			url_path(r, r->o->artifacts_href);
			fprintf(r->out, "/sha256/%.2s/%s\">", a->sha256, a->sha256);
		}
		fprintf(r->out, "%.12s", a->sha256);
		fputs(r->o->artifacts_href ? "</a></code></td>" : "</code></td>", r->out);
	} else {
		td_text(r, "bad", a->error ? a->error : "not kept");
	}
	fputs("</tr>\n", r->out);
	return 0;
}

/* The files the run's jobs kept (artifacts:), linked to where they are stored. */
static int section_artifacts(struct rep *r)
{
	struct arl_report_artifact_counts c;

	if (arl_store_report_artifact_counts(r->s, r->run, &c, r->err) < 0)
		return -1;
	if (!c.rows)
		return 0;
	fprintf(r->out,
	        "<section id=\"artifacts\" data-kept=\"%lld\" data-not-kept=\"%lld\">\n"
	        "<h2>Artifacts</h2>\n<p>%lld file%s kept (%lld bytes), %lld not kept. Write a "
	        "job's out with <code>arl-batch artifacts JOB --run %lld -o DIR</code>.</p>\n",
	        (long long)c.kept, (long long)(c.rows - c.kept), (long long)c.kept,
	        c.kept == 1 ? "" : "s", (long long)c.kept_bytes, (long long)(c.rows - c.kept),
	        (long long)r->run);
	fputs("<table class=\"sortable\" id=\"artifacts-table\"><thead><tr><th>Job</th>"
	      "<th class=\"n\">Attempt</th><th>Path</th><th class=\"n\">Bytes</th>"
	      "<th>sha256, or why not kept</th></tr></thead><tbody>\n",
	      r->out);
	r->nartifacts = 0;
	if (arl_store_report_artifacts(r->s, r->run, r->max_failed, artifact_row, r, r->err) < 0)
		return -1;
	fputs("</tbody></table>\n", r->out);
	if ((int64_t)r->nartifacts < c.rows)
		fprintf(r->out,
		        "<p class=\"note\" id=\"artifacts-more\">%lld more not shown; "
		        "<code>arl-batch artifacts JOB</code> lists a job's.</p>\n",
		        (long long)(c.rows - (int64_t)r->nartifacts));
	fputs("</section>\n", r->out);
	return 0;
}

/* One numeric metric: its statistics and a histogram of its values, binned in SQL. */
static int metric_numeric(struct rep *r, const char *name, int64_t count, double lo, double hi,
                          double mean)
{
	uint64_t counts[METRIC_BINS] = {0};
	char *labels[METRIC_BINS] = {NULL};
	char b1[32], b2[32], b3[32], b4[32], b5[32];
	size_t nbins = hi > lo ? bins_for((size_t)count, METRIC_BINS) : 1;
	double median = lo;
	int ret = -1;

	if (arl_store_report_metric_bins(r->s, r->run, name, lo, hi, nbins, counts, r->err) < 0 ||
	    arl_store_report_metric_nth(r->s, r->run, name, (count - 1) / 2, &median, r->err) < 0)
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
	for (size_t i = 0; i < METRIC_BINS; i++)
		free(labels[i]);
	return ret;
}

static int value_row(void *arg, const struct arl_report_metric_value *v, struct arl_err *err)
{
	struct rep *r = arg;

	(void)err;
	fputs("<tr>", r->out);
	td_text(r, "key", v->value ? v->value : "null");
	td_num(r, v->jobs);
	fputs("</tr>\n", r->out);
	return 0;
}

/* A text metric: its most common values. */
static int metric_text(struct rep *r, const char *name, int64_t count)
{
	fputs("<div class=\"metric\" data-metric=\"", r->out);
	esc(r, name);
	fprintf(r->out, "\" data-kind=\"text\" data-count=\"%lld\">\n<h3>", (long long)count);
	esc(r, name);
	fputs("</h3>\n<table><thead><tr><th>Value</th><th class=\"n\">Jobs</th></tr></thead>"
	      "<tbody>\n",
	      r->out);
	if (arl_store_report_metric_values(r->s, r->run, name, TEXT_VALUES, value_row, r, r->err) <
	    0)
		return -1;
	fputs("</tbody></table>\n</div>\n", r->out);
	return 0;
}

static int metric_section_row(void *arg, const struct arl_report_metric *m, struct arl_err *err)
{
	struct rep *r = arg;

	(void)err;
	if (!r->nmetrics++)
		fputs("<section id=\"metrics\">\n<h2>Metrics</h2>\n<p class=\"note\">From "
		      "the last attempt of each job (steps with <code>metrics: json</code>)."
		      "</p>\n<div class=\"grid2\">\n",
		      r->out);
	if (r->nmetrics > MAX_METRICS)
		return 0;
	return m->numeric ? metric_numeric(r, m->name, m->numeric, m->min, m->max, m->mean)
	                  : metric_text(r, m->name, m->count);
}

static int section_metrics(struct rep *r)
{
	r->nmetrics = 0;
	if (arl_store_report_metrics(r->s, r->run, metric_section_row, r, r->err) < 0)
		return -1;
	if (r->nmetrics)
		fprintf(r->out, "</div>\n%s</section>\n",
		        r->nmetrics > MAX_METRICS
		            ? "<p class=\"note\">More metrics not shown.</p>\n"
		            : "");
	return 0;
}

/* Steps whose `metrics: json` stored nothing, or not all, in the jobs' last attempts. */
static int metric_error_row(void *arg, const struct arl_report_metric_error *e, struct arl_err *err)
{
	struct rep *r = arg;

	(void)err;
	if (!r->nmetric_errors++) {
		r->metric_errors_total = e->total;
		fprintf(r->out,
		        "<section id=\"metric-errors\" data-total=\"%lld\">\n"
		        "<h2>Metrics not recorded</h2>\n<p class=\"note\">Steps with "
		        "<code>metrics: json</code> whose metrics were not all stored, and "
		        "why.</p>\n<table><thead><tr><th>Job</th><th>Step</th><th>Why</th>"
		        "</tr></thead><tbody>\n",
		        (long long)e->total);
	}
	fputs("<tr>", r->out);
	td_text(r, "key", e->key);
	td_text(r, NULL, e->step);
	td_text(r, "bad", e->error);
	fputs("</tr>\n", r->out);
	return 0;
}

static int section_metric_errors(struct rep *r)
{
	r->nmetric_errors = 0;
	r->metric_errors_total = 0;
	if (arl_store_report_metric_errors(r->s, r->run, r->max_failed, metric_error_row, r,
	                                   r->err) < 0)
		return -1;
	if (r->nmetric_errors)
		fprintf(r->out, "</tbody></table>\n%s</section>\n",
		        r->metric_errors_total > r->nmetric_errors
		            ? "<p class=\"note\">More not shown.</p>\n"
		            : "");
	return 0;
}

static void key_list(struct rep *r, const struct arl_rundiff *d, enum arl_rundiff_flip flip,
                     const char *title, size_t max)
{
	const struct arl_rundiff_keys *list = &d->keys[flip];

	if (!list->n)
		return;
	fprintf(r->out,
	        "<div class=\"flips\" data-flip=\"%s\" data-count=\"%zu\"><h3>%s (%zu)</h3>"
	        "<table><tbody>\n",
	        arl_rundiff_flip_names[flip], list->n, title, list->n);
	for (size_t i = 0; i < list->n && i < max; i++) {
		fputs("<tr>", r->out);
		td_text(r, "key", list->v[i]);
		fputs("</tr>\n", r->out);
	}
	fputs("</tbody></table>", r->out);
	if (list->n > max)
		fprintf(r->out, "<p class=\"note\">%zu more not shown.</p>", list->n - max);
	fputs("</div>\n", r->out);
}

static int job_metric_row(void *arg, const struct arl_diff_job_metric *m, struct arl_err *err)
{
	struct rep *r = arg;
	char b1[32], b2[32], b3[32];

	(void)err;
	if (!r->nchanges++)
		fputs("<h3>Largest metric changes per job</h3>\n<table class=\"sortable\">"
		      "<thead><tr><th>Job</th><th>Metric</th><th class=\"n\">Before</th>"
		      "<th class=\"n\">Now</th><th "
		      "class=\"n\">Delta</th></tr></thead><tbody>\n",
		      r->out);
	fputs("<tr>", r->out);
	td_text(r, "key", m->key);
	td_text(r, NULL, m->name);
	td_text(r, "n", arl_html_num(m->a, b1, sizeof(b1)));
	td_text(r, "n", arl_html_num(m->b, b2, sizeof(b2)));
	fprintf(r->out, "<td class=\"n\" data-v=\"%.17g\">%s%s</td></tr>\n", m->b - m->a,
	        m->b - m->a > 0 ? "+" : "", arl_html_num(m->b - m->a, b3, sizeof(b3)));
	return 0;
}

static int section_compare(struct rep *r)
{
	static const char *const titles[] = {
	    "Fixed", "Broken",  "Still failing",     "Still passing",
	    "Added", "Missing", "Infra or cancelled"};
	struct arl_rundiff d;
	char b1[32], b2[32], b3[32];
	int ret = -1;

	if (arl_rundiff(r->s, r->o->compare_id, r->run, false, &d, r->err) < 0)
		return -1;
	fprintf(r->out, "<section id=\"compare\" data-baseline=\"%lld\"",
	        (long long)r->o->compare_id);
	for (int f = 0; f < ARL_RUNDIFF_NFLIPS; f++)
		fprintf(r->out, " data-%s=\"%zu\"", arl_rundiff_flip_names[f], d.counts[f]);
	fprintf(r->out, ">\n<h2>Compared with run %lld</h2>\n", (long long)r->o->compare_id);
	fputs("<table><thead><tr><th>Run</th><th class=\"n\">Passed</th><th class=\"n\">Failed</th>"
	      "<th class=\"n\">Pass rate</th></tr></thead><tbody>\n",
	      r->out);
	for (int side = 0; side < 2; side++) {
		const struct arl_rundiff_run *rn = &d.runs[side];
		char *label = arl_xasprintf("run %lld %s", (long long)rn->id, rn->name);

		fputs("<tr>", r->out);
		td_text(r, "key", label);
		td_num(r, rn->passed);
		td_num(r, rn->failed);
		fprintf(r->out, "<td class=\"n\">%s", pct(rn->passed, rn->failed, b1, sizeof(b1)));
		arl_html_ratio_bar(r->out, ratio(rn->passed, rn->failed));
		fputs("</td></tr>\n", r->out);
		free(label);
	}
	fputs("</tbody></table>\n<p>", r->out);
	for (int f = 0; f < ARL_RUNDIFF_NFLIPS; f++)
		fprintf(r->out, "%s<b class=\"%s\">%zu</b> %s", f ? " &middot; " : "",
		        f == ARL_FLIP_FIXED    ? "ok"
		        : f == ARL_FLIP_BROKEN ? "bad"
		                               : "",
		        d.counts[f], titles[f]);
	fprintf(r->out,
	        ". McNemar's exact test on the flips: p = %.4g (infra and cancelled jobs are not "
	        "counted).</p>\n<div class=\"grid2\">\n",
	        d.mcnemar_p);
	key_list(r, &d, ARL_FLIP_BROKEN, "Broken (passed before, fail now)", r->max_rows * 4);
	key_list(r, &d, ARL_FLIP_FIXED, "Fixed (failed before, pass now)", r->max_rows * 4);
	key_list(r, &d, ARL_FLIP_STILL_FAILING, "Still failing", r->max_rows);
	key_list(r, &d, ARL_FLIP_ADDED, "Added", r->max_rows);
	key_list(r, &d, ARL_FLIP_MISSING, "Missing", r->max_rows);
	key_list(r, &d, ARL_FLIP_INFRA, "Infra or cancelled in either run", r->max_rows);
	fputs("</div>\n", r->out);
	if (d.nmetrics) {
		fputs(
		    "<h3>Metric means</h3>\n<table class=\"sortable\" id=\"metric-deltas\"><thead>"
		    "<tr><th>Metric</th><th class=\"n\">Before</th><th class=\"n\">Now</th>"
		    "<th class=\"n\">Delta</th></tr></thead><tbody>\n",
		    r->out);
		for (size_t i = 0; i < d.nmetrics; i++) {
			const struct arl_rundiff_metric *m = &d.metrics[i];

			fputs("<tr data-metric=\"", r->out);
			esc(r, m->name);
			fputs("\">", r->out);
			td_text(r, "key", m->name);
			td_text(r, "n", m->has_a ? arl_html_num(m->mean_a, b1, sizeof(b1)) : "-");
			td_text(r, "n", m->has_b ? arl_html_num(m->mean_b, b2, sizeof(b2)) : "-");
			if (m->has_a && m->has_b)
				fprintf(r->out, "<td class=\"n\" data-v=\"%.17g\">%s%s</td>",
				        m->delta, m->delta > 0 ? "+" : "",
				        arl_html_num(m->delta, b3, sizeof(b3)));
			else
				fputs("<td class=\"n\" data-v=\"\">-</td>", r->out);
			fputs("</tr>\n", r->out);
		}
		fputs("</tbody></table>\n", r->out);
	}
	r->nchanges = 0;
	if (arl_store_diff_job_metrics(r->s, r->o->compare_id, r->run, r->max_rows * 2,
	                               job_metric_row, r, r->err) < 0)
		goto out;
	fprintf(r->out, "%s</section>\n", r->nchanges ? "</tbody></table>\n" : "");
	ret = 0;
out:
	arl_rundiff_release(&d);
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
	    section_failed(&r, &c) < 0 || section_artifacts(&r) < 0 || section_metrics(&r) < 0 ||
	    section_metric_errors(&r) < 0 || (o->compare_id && section_compare(&r) < 0))
		return -1;
	arl_rfc3339_now(now);
	fprintf(out, "<footer>Generated by arl-batch %s at %s from ", ARL_VERSION, now);
	arl_html_esc(out, arl_store_path(s));
	fprintf(out, ".</footer>\n</main>\n<script>%s</script>\n</body>\n</html>\n", page_js);
	return 0;
}
