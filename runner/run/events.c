/*
 * JSON Lines writer for `run --events`. Each event is one cJSON object, printed unformatted
 * on one line (cJSON escapes the newlines inside strings) and flushed at once. Write errors
 * are remembered, not reported per event: a full disk must not stop the run, and the run
 * reports the first one when it closes the stream.
 */
#include "run/events.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "util.h"
#include "banned.h"

struct arl_events {
	FILE *f;
	bool is_stdout;
	char *path;
	int64_t run_id;
	uint64_t seq;
	bool run_started; /* run.finished only follows a run.started */
	int write_errno;  /* the first write error, 0: none */
};

int arl_events_open(struct arl_events **out, const char *path, struct arl_err *err)
{
	struct arl_events *e;
	FILE *f;

	if (!strcmp(path, "-")) {
		f = stdout;
	} else if (!(f = fopen(path, "we"))) {
		return arl_error_errno(err, errno, "cannot open events file '%s'", path);
	}
	e = arl_xcalloc(1, sizeof(*e));
	e->f = f;
	e->is_stdout = f == stdout;
	e->path = arl_xstrdup(path);
	*out = e;
	return 0;
}

int arl_events_close(struct arl_events *e, struct arl_err *err)
{
	int ret = 0;

	if (!e)
		return 0;
	if (fflush(e->f) != 0 && !e->write_errno)
		e->write_errno = errno ? errno : EIO;
	if (!e->is_stdout && fclose(e->f) != 0 && !e->write_errno)
		e->write_errno = errno ? errno : EIO;
	if (e->write_errno)
		ret = arl_error_errno(err, e->write_errno, "cannot write events to '%s'",
		                      e->is_stdout ? "standard output" : e->path);
	free(e->path);
	free(e);
	return ret;
}

/* A new event object with the fields every event has. @when_ms: unix ms; 0: now. */
static cJSON *begin(struct arl_events *e, const char *type, int64_t when_ms)
{
	cJSON *o = cJSON_CreateObject();
	char t[32];

	arl_rfc3339(when_ms ? when_ms : arl_wall_ms(), t);
	cJSON_AddStringToObject(o, "event", type);
	cJSON_AddNumberToObject(o, "seq", (double)++e->seq);
	cJSON_AddStringToObject(o, "time", t);
	cJSON_AddNumberToObject(o, "run_id", (double)e->run_id);
	return o;
}

static void emit(struct arl_events *e, cJSON *o)
{
	char *line = cJSON_PrintUnformatted(o);

	if (line) {
		if ((fputs(line, e->f) == EOF || fputc('\n', e->f) == EOF || fflush(e->f) != 0) &&
		    !e->write_errno)
			e->write_errno = errno ? errno : EIO;
		cJSON_free(line);
	}
	cJSON_Delete(o);
}

static void add_str_or_null(cJSON *o, const char *name, const char *s)
{
	if (s)
		cJSON_AddStringToObject(o, name, s);
	else
		cJSON_AddNullToObject(o, name);
}

static void add_job(cJSON *o, const char *key, int64_t job_id)
{
	cJSON_AddStringToObject(o, "job_key", key);
	cJSON_AddNumberToObject(o, "job_id", (double)job_id);
}

/* "class" and "exit_code" of an outcome: null when there is none. */
static void add_outcome(cJSON *o, enum arl_state state, enum arl_class cls, bool has_exit,
                        int exit_code)
{
	cJSON_AddStringToObject(o, "state", arl_state_name(state));
	add_str_or_null(o, "class", arl_class_name(cls));
	if (has_exit)
		cJSON_AddNumberToObject(o, "exit_code", exit_code);
	else
		cJSON_AddNullToObject(o, "exit_code");
}

static int64_t span(int64_t from, int64_t to)
{
	return from && to >= from ? to - from : 0;
}

void arl_events_run_started(struct arl_events *e, int64_t run_id, const char *run_name,
                            const cJSON *params, size_t jobs_total, size_t jobs_skipped,
                            int concurrency)
{
	cJSON *o;

	if (!e)
		return;
	e->run_id = run_id;
	e->run_started = true;
	o = begin(e, "run.started", 0);
	cJSON_AddStringToObject(o, "run_name", run_name);
	cJSON_AddNumberToObject(o, "jobs_total", (double)jobs_total);
	cJSON_AddNumberToObject(o, "jobs_skipped", (double)jobs_skipped);
	cJSON_AddNumberToObject(o, "concurrency", concurrency);
	if (params)
		cJSON_AddItemToObject(o, "params", cJSON_Duplicate(params, 1));
	emit(e, o);
}

void arl_events_run_finished(struct arl_events *e, const char *status, int exit_code,
                             int64_t duration_ms, const struct arl_events_counts *c)
{
	cJSON *o;

	if (!e || !e->run_started)
		return;
	o = begin(e, "run.finished", 0);
	cJSON_AddStringToObject(o, "status", status);
	cJSON_AddNumberToObject(o, "exit_code", exit_code);
	cJSON_AddNumberToObject(o, "duration_ms", (double)duration_ms);
	cJSON_AddNumberToObject(o, "jobs_total", (double)c->total);
	cJSON_AddNumberToObject(o, "jobs_succeeded", (double)c->succeeded);
	cJSON_AddNumberToObject(o, "jobs_failed", (double)c->failed);
	cJSON_AddNumberToObject(o, "jobs_skipped", (double)c->skipped);
	cJSON_AddNumberToObject(o, "jobs_cancelled", (double)c->cancelled);
	emit(e, o);
}

void arl_events_job_started(struct arl_events *e, const char *key, int64_t job_id, const char *pool)
{
	cJSON *o;

	if (!e)
		return;
	o = begin(e, "job.started", 0);
	add_job(o, key, job_id);
	add_str_or_null(o, "pool", pool);
	emit(e, o);
}

void arl_events_job_finished(struct arl_events *e, const char *key, int64_t job_id,
                             const struct arl_job_result *r)
{
	cJSON *o;

	if (!e)
		return;
	o = begin(e, "job.finished", r->finished_ms);
	add_job(o, key, job_id);
	add_outcome(o, r->state, r->cls, r->has_exit, r->exit_code);
	cJSON_AddNumberToObject(o, "attempts", (double)r->nattempts);
	cJSON_AddNumberToObject(o, "duration_ms", (double)span(r->started_ms, r->finished_ms));
	add_str_or_null(o, "error", r->error);
	emit(e, o);
}

void arl_events_attempt_started(struct arl_events *e, const char *key, int64_t job_id, int number)
{
	cJSON *o;

	if (!e)
		return;
	o = begin(e, "attempt.started", 0);
	add_job(o, key, job_id);
	cJSON_AddNumberToObject(o, "attempt", number);
	emit(e, o);
}

static void sandbox_event(struct arl_events *e, const char *type, const char *key, int64_t job_id,
                          const struct arl_attempt_result *a, int64_t when)
{
	cJSON *o = begin(e, type, when);

	add_job(o, key, job_id);
	cJSON_AddNumberToObject(o, "attempt", a->number);
	cJSON_AddStringToObject(o, "sandbox", a->sandbox);
	emit(e, o);
}

static void step_events(struct arl_events *e, const char *key, int64_t job_id,
                        const struct arl_attempt_result *a, size_t idx)
{
	const struct arl_step_result *s = &a->steps[idx];
	bool ran = s->started_ms != 0;
	cJSON *o;

	for (int finished = ran ? 0 : 1; finished < 2; finished++) {
		/* A step never run has no start; its end is when its attempt ended. */
		o = begin(e, finished ? "step.finished" : "step.started",
		          finished ? (ran ? s->finished_ms : a->finished_ms) : s->started_ms);
		add_job(o, key, job_id);
		cJSON_AddNumberToObject(o, "attempt", a->number);
		cJSON_AddNumberToObject(o, "step", (double)idx);
		cJSON_AddStringToObject(o, "step_name", s->name ? s->name : "");
		cJSON_AddStringToObject(o, "step_type", s->type ? s->type : "Command");
		cJSON_AddStringToObject(o, "phase", s->callback ? "callback" : "main");
		if (finished) {
			/* Steps have no class: their attempt carries it. */
			cJSON_AddStringToObject(o, "state", arl_state_name(s->state));
			if (s->has_exit)
				cJSON_AddNumberToObject(o, "exit_code", s->exit_code);
			else
				cJSON_AddNullToObject(o, "exit_code");
			cJSON_AddNumberToObject(o, "duration_ms",
			                        (double)span(s->started_ms, s->finished_ms));
			cJSON_AddBoolToObject(o, "stdout_truncated", s->out.truncated);
			cJSON_AddBoolToObject(o, "stderr_truncated", s->err.truncated);
			if (s->metrics_error)
				cJSON_AddStringToObject(o, "metrics_error", s->metrics_error);
			if (s->stalled)
				cJSON_AddStringToObject(o, "reason", "stall");
		}
		emit(e, o);
	}
}

void arl_events_attempt_finished(struct arl_events *e, const char *key, int64_t job_id,
                                 const struct arl_attempt_result *a)
{
	cJSON *o;

	if (!e)
		return;
	if (a->sandbox)
		sandbox_event(e, "sandbox.allocated", key, job_id, a, a->started_ms);
	for (size_t i = 0; i < a->nsteps; i++)
		step_events(e, key, job_id, a, i);
	/* Collected after the steps, before the release: one per file kept. */
	for (size_t i = 0; i < a->nartifacts; i++) {
		const struct arl_artifact *x = &a->artifacts[i];

		if (!x->sha256[0])
			continue;
		o = begin(e, "artifact", a->finished_ms);
		add_job(o, key, job_id);
		cJSON_AddNumberToObject(o, "attempt", a->number);
		cJSON_AddStringToObject(o, "path", x->path);
		cJSON_AddNumberToObject(o, "size", (double)x->size);
		cJSON_AddStringToObject(o, "sha256", x->sha256);
		emit(e, o);
	}
	if (a->sandbox)
		sandbox_event(e, "sandbox.released", key, job_id, a, a->finished_ms);
	o = begin(e, "attempt.finished", a->finished_ms);
	add_job(o, key, job_id);
	cJSON_AddNumberToObject(o, "attempt", a->number);
	add_outcome(o, a->state, a->cls, a->has_exit, a->exit_code);
	add_str_or_null(o, "sandbox", a->sandbox);
	cJSON_AddNumberToObject(o, "duration_ms", (double)span(a->started_ms, a->finished_ms));
	if (a->has_prepare)
		cJSON_AddNumberToObject(o, "prepare_ms", (double)a->prepare_ms);
	for (size_t i = 0; a->cls == ARL_CLASS_TIMEOUT && i < a->nsteps; i++)
		if (a->steps[i].stalled && !a->steps[i].callback) {
			cJSON_AddStringToObject(o, "reason", "stall");
			break;
		}
	add_str_or_null(o, "error", a->error);
	emit(e, o);
}

void arl_events_budget(struct arl_events *e, const char *metric, double max, double spent)
{
	cJSON *o;

	if (!e)
		return;
	o = begin(e, "budget.reached", 0);
	cJSON_AddStringToObject(o, "metric", metric);
	cJSON_AddNumberToObject(o, "max", max);
	cJSON_AddNumberToObject(o, "spent", spent);
	emit(e, o);
}

void arl_events_retry(struct arl_events *e, const char *key, int64_t job_id,
                      const struct arl_attempt_result *failed, int64_t delay_ms)
{
	cJSON *o;
	char t[32];

	if (!e)
		return;
	o = begin(e, "retry.scheduled", 0);
	add_job(o, key, job_id);
	cJSON_AddNumberToObject(o, "attempt", failed->number);
	cJSON_AddNumberToObject(o, "next_attempt", failed->number + 1);
	add_str_or_null(o, "class", arl_class_name(failed->cls));
	cJSON_AddNumberToObject(o, "delay_ms", (double)delay_ms);
	arl_rfc3339(arl_wall_ms() + delay_ms, t);
	cJSON_AddStringToObject(o, "not_before", t);
	emit(e, o);
}
