/* JUnit XML of a run (junit.h). */
#include "view/junit.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "result.h"
#include "store/store_jobs.h"
#include "store/store_runs.h"
#include "util.h"
#include "view/store_view.h"
#include "banned.h"

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
static enum junit_kind junit_kind_of(enum arl_state state, enum arl_class cls)
{
	switch (state) {
	case ARL_STATE_SUCCEEDED:
		return JK_PASSED;
	case ARL_STATE_FAILED:
		return cls == ARL_CLASS_INFRA || cls == ARL_CLASS_CANCELLED ? JK_ERROR : JK_FAILURE;
	case ARL_STATE_CANCELLED:
		return JK_ERROR;
	default:
		return JK_SKIPPED;
	}
}

/* A carried result is the Skipped row's (not a success: that stays JUnit "skipped"). */
static bool junit_carried(const struct arl_job_view *j)
{
	return j->state == ARL_STATE_SKIPPED && !j->from_null &&
	       j->from_state != ARL_STATE_SUCCEEDED;
}

static enum junit_kind junit_kind_row(const struct arl_job_view *j)
{
	if (junit_carried(j))
		return junit_kind_of(j->from_state, j->from_cls);
	return junit_kind_of(j->state, j->cls);
}

struct junit_suite {
	size_t tests, failures, errors, skipped;
	int64_t ms;
	char *first_start;   /* the earliest job start, or NULL */
	int64_t last_end_ms; /* the latest job end (its start + duration), unix ms; 0: none */
};

/* Unix ms of a stored time ("2026-01-02T03:04:05.678Z"); -1 when it is not one. */
static int64_t parse_time(const char *t)
{
	struct tm tm = {0};
	int ms = 0, n = 0;

	if (!t ||
	    sscanf(t, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
	           &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms, &n) != 7 ||
	    t[n])
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm) * 1000 + ms;
}

/* A suite's wall time: from its first job's start to its last job's end (jobs overlap). */
static int64_t suite_wall_ms(const struct junit_suite *su)
{
	int64_t a = parse_time(su->first_start), b = su->last_end_ms;

	return a >= 0 && b >= a ? b - a : 0;
}

static void junit_count(struct junit_suite *su, const struct arl_job_view *j)
{
	su->tests++;
	switch (junit_kind_row(j)) {
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
	su->ms += j->duration_ms;
	/* RFC 3339 UTC with a fixed layout: text order is time order. */
	if (j->started_at) {
		int64_t end = parse_time(j->started_at);

		if (end >= 0 && end + j->duration_ms > su->last_end_ms)
			su->last_end_ms = end + j->duration_ms;
	}
	if (j->started_at && (!su->first_start || strcmp(j->started_at, su->first_start) < 0)) {
		free(su->first_start);
		su->first_start = arl_xstrdup(j->started_at);
	}
}

struct junit {
	FILE *out;
	struct arl_job_reader *reader;
	int64_t run_id;
	struct arl_run_view run;
	const char *host;
	struct junit_suite *suites;
	size_t nsuites, cap, si;
	char *prev_file;
};

static int junit_case(struct junit *u, const struct arl_job_view *j, struct arl_err *err)
{
	FILE *out = u->out;
	bool carried = junit_carried(j);
	const char *state = carried ? j->from_state_name : j->state_name;
	const char *cls = carried ? j->from_cls_name : j->cls_name;
	const char *error = carried ? j->from_error : j->error;
	int attempts = carried ? j->from_attempts : j->attempts;
	bool has_exit = carried ? !j->from_exit_null : !j->exit_null;
	int64_t exit_code = carried ? j->from_exit : j->exit_code;
	struct arl_view_output o = ARL_VIEW_OUTPUT_INIT;
	char *classname = arl_xstrndup(j->key, strcspn(j->key, "/")), *msg = NULL;
	enum junit_kind kind = junit_kind_row(j);

	/* A carried failure shows the output of the attempt that failed. */
	if (arl_job_last_steps(u->reader, carried ? j->from_id : j->id, arl_view_output_step, &o,
	                       err) < 0) {
		free(classname);
		arl_view_output_release(&o);
		return -1;
	}
	fputs("    <testcase", out);
	xml_attr(out, "name", j->name);
	xml_attr(out, "classname", classname);
	xml_time(out, j->duration_ms);
	fputs(">\n", out);
	switch (kind) {
	case JK_FAILURE:
	case JK_ERROR:
		if (carried)
			msg = arl_xasprintf("carried from run %lld: %s", (long long)j->from_run,
			                    error ? error : (cls ? cls : state));
		else
			msg = arl_xstrdup(error ? error : (cls ? cls : state));
		fprintf(out, "      <%s", kind == JK_FAILURE ? "failure" : "error");
		xml_attr(out, "type",
		         cls ? cls : (strcmp(state, "Cancelled") ? "failed" : "cancelled"));
		xml_attr(out, "message", msg);
		fputc('>', out);
		fprintf(out, "%s after %d attempt%s", state, attempts, attempts == 1 ? "" : "s");
		if (carried)
			fprintf(out, " in run %lld (carried)", (long long)j->from_run);
		if (cls)
			fprintf(out, " (%s)", cls);
		if (has_exit)
			fprintf(out, ", exit code %lld", (long long)exit_code);
		if (error) {
			fputs(": ", out);
			xml_escape(out, error, strlen(error), false);
		}
		fprintf(out, "</%s>\n", kind == JK_FAILURE ? "failure" : "error");
		break;
	case JK_SKIPPED:
		if (!strcmp(state, "Skipped") && !j->from_null) {
			const char *fc = j->from_cls_name;

			msg = arl_xasprintf("the result of run %lld stands: %s%s%s%s",
			                    (long long)j->from_run, j->from_state_name,
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
	arl_view_output_release(&o);
	return 0;
}

static void junit_property(FILE *out, const char *name, const char *value)
{
	fputs("      <property", out);
	xml_attr(out, "name", name);
	xml_attr(out, "value", value ? value : "");
	fputs("/>\n", out);
}

/* The run's parameters, "arl-batch.param.NAME" each. */
static void junit_params(FILE *out, const char *json)
{
	cJSON *o = json ? cJSON_Parse(json) : NULL;
	const cJSON *it;

	cJSON_ArrayForEach(it, o)
	{
		char *name;

		if (!cJSON_IsString(it))
			continue;
		name = arl_xasprintf("arl-batch.param.%s", it->string);
		junit_property(out, name, it->valuestring);
		free(name);
	}
	cJSON_Delete(o);
}

/* First pass: the counts of each file's suite (its attributes come before its cases). */
static int count_job(void *arg, const struct arl_job_view *j, struct arl_err *err)
{
	struct junit *u = arg;

	(void)err;
	if (!u->prev_file || strcmp(u->prev_file, j->file) != 0) {
		ARL_GROW(u->suites, u->cap, u->nsuites + 1);
		memset(&u->suites[u->nsuites++], 0, sizeof(*u->suites));
		free(u->prev_file);
		u->prev_file = arl_xstrdup(j->file);
	}
	junit_count(&u->suites[u->nsuites - 1], j);
	return 0;
}

static void suite_open(struct junit *u, const struct arl_job_view *j)
{
	const struct junit_suite *su = &u->suites[u->si];
	const char *run_name = u->run.name ? u->run.name : "";
	char *stem = arl_xstrndup(j->key, strcspn(j->key, "/"));
	char idbuf[24];
	FILE *out = u->out;

	fputs("  <testsuite", out);
	xml_attr(out, "name", stem);
	fprintf(out, " tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" skipped=\"%zu\"", su->tests,
	        su->failures, su->errors, su->skipped);
	/* Wall time, not the sum of the jobs' durations: jobs run side by side. */
	xml_time(out, suite_wall_ms(su));
	xml_timestamp(out, su->first_start ? su->first_start : u->run.started_at);
	xml_attr(out, "hostname", u->host);
	fprintf(out, " id=\"%zu\"", u->si);
	xml_attr(out, "package", run_name);
	xml_attr(out, "file", j->file);
	fputs(">\n    <properties>\n", out);
	snprintf(idbuf, sizeof(idbuf), "%lld", (long long)u->run_id);
	junit_property(out, "arl-batch.run.id", idbuf);
	junit_property(out, "arl-batch.run.name", run_name);
	junit_property(out, "arl-batch.run.status", u->run.status ? u->run.status : "");
	junit_property(out, "arl-batch.file", j->file);
	junit_params(out, u->run.params);
	fputs("    </properties>\n", out);
	free(stem);
}

/* Second pass: the suites and their cases. */
static int print_job(void *arg, const struct arl_job_view *j, struct arl_err *err)
{
	struct junit *u = arg;

	if (!u->prev_file || strcmp(u->prev_file, j->file) != 0) {
		if (u->si >= u->nsuites)
			return arl_error(err, ARL_E_DB, "the jobs of run %lld changed while read",
			                 (long long)u->run_id);
		if (u->prev_file)
			fputs("  </testsuite>\n", u->out);
		free(u->prev_file);
		u->prev_file = arl_xstrdup(j->file);
		suite_open(u, j);
		u->si++;
	}
	return junit_case(u, j, err);
}

int arl_junit_print(FILE *out, struct arl_store *s, int64_t run_id, unsigned states,
                    struct arl_err *err)
{
	struct junit u = {.out = out, .run_id = run_id};
	struct junit_suite total = {0};
	bool snapshot;
	int rc, ret = -1;

	arl_job_reader_new(s, &u.reader);
	/* One read transaction: both passes see the same snapshot, even of a run in progress. */
	snapshot = arl_job_reader_snapshot(u.reader);
	if ((rc = arl_run_get(s, run_id, &u.run, err)) <= 0) {
		if (rc == 0)
			arl_error(err, ARL_E_DB, "run %lld vanished", (long long)run_id);
		goto out;
	}
	u.host = u.run.host ? u.run.host : "localhost";
	if (arl_jobs_each(u.reader, run_id, states, ARL_JOBS_BY_FILE, count_job, &u, err) < 0)
		goto out;
	for (size_t i = 0; i < u.nsuites; i++) {
		total.tests += u.suites[i].tests;
		total.failures += u.suites[i].failures;
		total.errors += u.suites[i].errors;
		total.skipped += u.suites[i].skipped;
		total.ms += u.suites[i].ms;
	}

	fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites", out);
	xml_attr(out, "name", u.run.name ? u.run.name : "");
	fprintf(out, " tests=\"%zu\" failures=\"%zu\" errors=\"%zu\"", total.tests, total.failures,
	        total.errors);
	/* The run's wall time (so far, for a run still going). */
	xml_time(out, u.run.duration_null ? 0 : u.run.duration_ms);
	fputs(">\n", out);

	free(u.prev_file);
	u.prev_file = NULL;
	if (arl_jobs_each(u.reader, run_id, states, ARL_JOBS_BY_FILE, print_job, &u, err) < 0)
		goto out;
	if (u.prev_file)
		fputs("  </testsuite>\n", out);
	fputs("</testsuites>\n", out);
	ret = 0;
out:
	arl_job_reader_snapshot_end(u.reader, snapshot);
	arl_job_reader_free(u.reader);
	arl_run_view_release(&u.run);
	for (size_t i = 0; i < u.nsuites; i++)
		free(u.suites[i].first_start);
	free(u.suites);
	free(u.prev_file);
	return ret;
}
