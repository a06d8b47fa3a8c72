#include "run/attempt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "jobfile/expand.h"
#include "jobfile/template.h"
#include "util.h"
#include "banned.h"

/* Renders {{ run.* }} and {{ attempt }} in a copy of @s; validation already vetted them. */
static char *render_rt(const char *s, const struct arl_tmpl_ctx *t)
{
	struct arl_err err = ARL_ERR_INIT;
	char *out;

	if (!s)
		return NULL;
	if (!arl_tmpl_has(s) || arl_tmpl_render(s, t, &out, NULL, &err) < 0)
		return arl_xstrdup(s);
	return out;
}

static void render_step(const struct arl_step *in, const struct arl_tmpl_ctx *t,
                        struct arl_step *out)
{
	memset(out, 0, sizeof(*out));
	out->name = arl_xstrdup(in->name);
	out->type = in->type;
	out->timeout_ms = in->timeout_ms;
	out->metrics_json = in->metrics_json;
	out->argc = in->argc;
	if (in->argv) {
		out->argv = arl_xcalloc(in->argc + 1, sizeof(*out->argv));
		for (size_t i = 0; i < in->argc; i++)
			out->argv[i] = render_rt(in->argv[i], t);
	}
	out->work_dir = render_rt(in->work_dir, t);
	for (size_t i = 0; i < in->env.n; i++) {
		char *v = render_rt(in->env.v[i].val, t);

		arl_strmap_set(&out->env, in->env.v[i].key, v);
		free(v);
	}
	out->path = render_rt(in->path, t);
	out->content = render_rt(in->content, t);
	out->content_len = out->content ? strlen(out->content) : 0;
}

/* What a JSON value is, for a metric that was not kept. */
static const char *json_kind(const cJSON *v)
{
	return cJSON_IsObject(v)  ? "an object"
	       : cJSON_IsArray(v) ? "an array"
	       : cJSON_IsNull(v)  ? "null"
	                          : "not a scalar";
}

/* At most this many names in a metrics error; the count says how many more. */
#define METRICS_ERROR_NAMES 5

/*
 * `metrics: json`: the last non-empty stdout line is an object; its scalars are metrics.
 * Why nothing, or not everything, was kept goes to *why (owned; NULL when all was).
 */
static void collect_metrics(const struct arl_output *o, struct arl_metric **m, size_t *n,
                            char **why)
{
	const char *end, *start;
	struct arl_buf skipped = ARL_BUF_INIT;
	size_t nskipped = 0;
	cJSON *obj, *v;

	end = o->data ? o->data + o->len : NULL;
	while (end && end > o->data && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
		end--;
	if (!end || end == o->data) {
		*why =
		    arl_xstrdup("no output: `metrics: json` reads the last non-empty stdout line");
		return;
	}
	start = end;
	while (start > o->data && start[-1] != '\n')
		start--;
	obj = cJSON_ParseWithLength(start, (size_t)(end - start));
	if (!cJSON_IsObject(obj)) {
		*why = arl_xasprintf("the last stdout line is not a JSON object: '%.*s%s'",
		                     (int)(end - start > 60 ? 60 : end - start), start,
		                     end - start > 60 ? "..." : "");
		cJSON_Delete(obj);
		return;
	}
	cJSON_ArrayForEach(v, obj)
	{
		struct arl_metric *x;

		if (!v->string || !(cJSON_IsNumber(v) || cJSON_IsBool(v) || cJSON_IsString(v))) {
			if (nskipped++ < METRICS_ERROR_NAMES)
				arl_buf_addf(&skipped, "%s'%s' (%s)", nskipped > 1 ? ", " : "",
				             v->string ? v->string : "", json_kind(v));
			continue;
		}
		*m = arl_xrealloc(*m, (*n + 1) * sizeof(**m));
		x = &(*m)[(*n)++];
		memset(x, 0, sizeof(*x));
		x->name = arl_xstrdup(v->string);
		if (cJSON_IsString(v)) {
			x->kind = ARL_METRIC_TEXT;
			x->text = arl_xstrdup(v->valuestring);
		} else {
			x->kind = ARL_METRIC_NUMBER;
			x->number = cJSON_IsBool(v) ? (cJSON_IsTrue(v) ? 1 : 0) : v->valuedouble;
		}
	}
	cJSON_Delete(obj);
	if (nskipped > METRICS_ERROR_NAMES)
		arl_buf_addf(&skipped, " and %zu more", nskipped - METRICS_ERROR_NAMES);
	if (nskipped)
		*why = arl_xasprintf("not stored: %s; a metric is a number, boolean or string",
		                     skipped.p);
	arl_buf_release(&skipped);
}

static struct arl_step_result *add_result(struct arl_attempt_result *a, const struct arl_step *s,
                                          bool callback)
{
	struct arl_step_result *r;

	a->steps = arl_xrealloc(a->steps, (a->nsteps + 1) * sizeof(*a->steps));
	r = &a->steps[a->nsteps++];
	memset(r, 0, sizeof(*r));
	r->name = arl_xstrdup(s->name);
	r->type = s->type == ARL_STEP_FILEPATCH ? "FilePatch" : "Command";
	r->callback = callback;
	r->state = ARL_STATE_SKIPPED;
	return r;
}

/*
 * Runs @steps in order until one fails; the rest are recorded Skipped. Returns the class of
 * the first failure (NONE when all succeeded); an infra failure's message goes to *error.
 */
static enum arl_class run_steps(const struct arl_attempt_env *env, struct arl_sandbox *sb,
                                const struct arl_steps *steps, bool callback, int64_t deadline,
                                const struct arl_tmpl_ctx *t, bool render,
                                struct arl_attempt_result *a, struct arl_metric **metrics,
                                size_t *nmetrics, char **error)
{
	enum arl_class first = ARL_CLASS_NONE;

	for (size_t i = 0; i < steps->n; i++) {
		const struct arl_step *s = &steps->v[i];
		struct arl_step_result *r = add_result(a, s, callback);
		struct arl_step rendered;
		struct arl_exec_ctx ctx = {.deadline_ms = deadline};
		struct arl_err err = ARL_ERR_INIT;
		enum arl_class cls = ARL_CLASS_NONE;
		int64_t now = arl_now_ms();

		if (first != ARL_CLASS_NONE)
			continue;
		if (s->timeout_ms && now + s->timeout_ms < deadline) {
			ctx.deadline_ms = now + s->timeout_ms;
			ctx.step_limited = true;
		}
		if (render)
			render_step(s, t, &rendered);
		if (arl_backend_exec(env->ops, env->backend, sb, render ? &rendered : s, &ctx, r,
		                     &cls, &err) < 0) {
			if (!*error)
				*error = arl_xasprintf("step '%s': %s", s->name, err.msg);
		}
		if (render)
			arl_step_release(&rendered);
		/*
		 * A step that ran to its end reports its metrics even when it exited non-zero:
		 * a benchmark's test step fails exactly when it prints {"resolved": false}.
		 */
		if ((cls == ARL_CLASS_NONE || cls == ARL_CLASS_FAILED) && r->has_exit &&
		    s->metrics_json && !callback)
			collect_metrics(&r->out, metrics, nmetrics, &r->metrics_error);
		if (cls != ARL_CLASS_NONE) {
			first = cls;
			if (!*error && cls == ARL_CLASS_TIMEOUT)
				*error = arl_xasprintf("step '%s' timed out", s->name);
			else if (!*error && cls == ARL_CLASS_FAILED)
				*error =
				    arl_xasprintf("step '%s' exited with %d%s%s%s", s->name,
				                  r->exit_code, r->reason ? " (" : "",
				                  r->reason ? r->reason : "", r->reason ? ")" : "");
		}
		if (r->has_exit && !callback) {
			a->has_exit = true;
			a->exit_code = r->exit_code;
		}
	}
	return first;
}

static void attempt_run(const struct arl_attempt_env *env, const struct arl_job *job, int number,
                        struct arl_attempt_result *out, struct arl_metric **metrics,
                        size_t *nmetrics);

void arl_attempt_run(const struct arl_attempt_env *env, const struct arl_job *job, int number,
                     struct arl_attempt_result *out, struct arl_metric **metrics, size_t *nmetrics)
{
	struct arl_job full;
	struct arl_err err = ARL_ERR_INIT;

	if (!job->lazy) {
		attempt_run(env, job, number, out, metrics, nmetrics);
		return;
	}
	/* Expanded here, on the worker, and dropped after: only jobs in flight hold steps. */
	if (!env->file || arl_job_materialize(env->file, job, &full, &err) < 0) {
		memset(out, 0, sizeof(*out));
		out->number = number;
		out->started_ms = out->finished_ms = arl_wall_ms();
		out->state = ARL_STATE_FAILED;
		out->cls = ARL_CLASS_INFRA;
		out->error = arl_xasprintf("cannot expand job '%s': %s", job->name,
		                           err.msg[0] ? err.msg : "no job file");
		return;
	}
	attempt_run(env, &full, number, out, metrics, nmetrics);
	arl_job_release(&full);
}

static void attempt_run(const struct arl_attempt_env *env, const struct arl_job *job, int number,
                        struct arl_attempt_result *out, struct arl_metric **metrics,
                        size_t *nmetrics)
{
	struct arl_sandbox *sb = NULL;
	struct arl_sandbox_req req = {.job = job, .attempt = number};
	struct arl_err err = ARL_ERR_INIT;
	char attempt_str[16];
	struct arl_tmpl_ctx t = {.job_name = job->name,
	                         .run_id = env->run_id,
	                         .run_name = env->run_name,
	                         .attempt = attempt_str};
	enum arl_class cls;
	int64_t deadline, asked;
	int rc;

	memset(out, 0, sizeof(*out));
	snprintf(attempt_str, sizeof(attempt_str), "%d", number);
	out->number = number;
	out->started_ms = arl_wall_ms();
	/* Getting the sandbox has its own bound: a slow copy or pod is infra, not the steps'. */
	asked = arl_now_ms();
	req.deadline_ms = asked + job->prepare_timeout_ms;
	rc = arl_backend_acquire(env->ops, env->backend, env->pool, &req, &sb, &err);
	out->has_prepare = true;
	out->prepare_ms = arl_now_ms() - asked;
	if (rc < 0) {
		/* Interrupted while the sandbox was being allocated (a slow backend): Cancelled. */
		bool cancelled = err.code == ARL_E_CANCELLED;
		char bound[32];

		out->state = cancelled ? ARL_STATE_CANCELLED : ARL_STATE_FAILED;
		out->cls = cancelled ? ARL_CLASS_CANCELLED : ARL_CLASS_INFRA;
		if (err.code == ARL_E_TIMEOUT)
			out->error = arl_xasprintf(
			    "sandbox not ready after %s (pool '%s', the job's prepareTimeout): %s",
			    arl_fmt_duration(job->prepare_timeout_ms, bound, sizeof(bound)),
			    env->pool->name, err.msg);
		else
			out->error = arl_xasprintf("cannot allocate a sandbox from pool '%s': %s",
			                           env->pool->name, err.msg);
		/* The steps were never run: record them as such. */
		for (size_t i = 0; i < job->steps.n; i++)
			add_result(out, &job->steps.v[i], false);
		goto out;
	}
	out->sandbox = arl_xstrdup(arl_backend_sandbox_name(env->ops, sb));
	deadline = arl_now_ms() + job->timeout_ms;
	cls = run_steps(env, sb, &job->steps, false, deadline, &t, job->runtime_templates, out,
	                metrics, nmetrics, &out->error);
	out->cls = cls;
	out->state = cls == ARL_CLASS_NONE        ? ARL_STATE_SUCCEEDED
	             : cls == ARL_CLASS_CANCELLED ? ARL_STATE_CANCELLED
	                                          : ARL_STATE_FAILED;
	/*
	 * Callbacks run in the same sandbox with a budget of their own (the job's timeout): an
	 * attempt that timed out must still be able to run its on_task_failure cleanup. Their
	 * outcome is recorded but does not change the job's.
	 */
	if (cls != ARL_CLASS_CANCELLED) {
		int64_t cb_deadline = arl_now_ms() + job->timeout_ms;
		char *ignored = NULL;
		const struct arl_steps *which =
		    cls == ARL_CLASS_NONE ? &job->on_success : &job->on_failure;

		run_steps(env, sb, which, true, cb_deadline, &t, job->runtime_templates, out,
		          metrics, nmetrics, &ignored);
		run_steps(env, sb, &job->on_complete, true, cb_deadline, &t, job->runtime_templates,
		          out, metrics, nmetrics, &ignored);
		free(ignored);
	}
	arl_backend_release(env->ops, env->backend, sb, job->keep_alive);
out:
	out->finished_ms = arl_wall_ms();
}
