#include "run/attempt.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "jobfile/expand.h"
#include "jobfile/template.h"
#include "run/secrets.h"
#include "store/store_artifacts.h"
#include "live.h"
#include "util.h"
#include "banned.h"

/*
 * Renders {{ run.* }} and {{ attempt }} in a copy of @s; validation already vetted them. @t
 * NULL: a plain copy (a job without run-time templates may hold a literal "{{").
 */
static char *render_rt(const char *s, const struct arl_tmpl_ctx *t)
{
	struct arl_err err = ARL_ERR_INIT;
	char *out;

	if (!s)
		return NULL;
	if (!t || !arl_tmpl_has(s) || arl_tmpl_render(s, t, &out, NULL, &err) < 0)
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
	out->stall_ms = in->stall_ms;
	out->stall_text = in->stall_text ? arl_xstrdup(in->stall_text) : NULL;
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

static void mask_output(void *arg, struct arl_output *o)
{
	arl_secrets_mask_output(arg, o);
}

/* How live output is masked like the stored output (secrets.h); NULL when nothing is. */
static const struct arl_live_mask *live_mask(const struct arl_secrets *s, struct arl_live_mask *m)
{
	if (!s || !s->nmasks)
		return NULL;
	*m = (struct arl_live_mask){mask_output, (void *)s, (const char *const *)s->masks,
	                            s->nmasks};
	return m;
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
		bool copy = render || (s->type == ARL_STEP_COMMAND && env->file &&
		                       env->file->nsecrets && env->secrets);
		struct arl_exec_ctx ctx = {.deadline_ms = deadline};
		struct arl_live *live;
		struct arl_live_mask mask;
		struct arl_err err = ARL_ERR_INIT;
		enum arl_class cls = ARL_CLASS_NONE;
		int64_t now = arl_now_ms();

		if (first != ARL_CLASS_NONE)
			continue;
		if (s->timeout_ms && now + s->timeout_ms < deadline) {
			ctx.deadline_ms = now + s->timeout_ms;
			ctx.step_limited = true;
		}
		if (copy) {
			render_step(s, render ? t : NULL, &rendered);
			if (s->type == ARL_STEP_COMMAND)
				arl_secrets_apply(env->secrets, env->file, &rendered);
		}
		live = env->live_dirfd > 2
		           ? arl_live_open(env->live_dirfd, env->job_id, a->number, a->nsteps - 1,
		                           s->name, env->live_cap, live_mask(env->secrets, &mask))
		           : NULL;
		ctx.live = live;
		if (arl_backend_exec(env->ops, env->backend, sb, copy ? &rendered : s, &ctx, r,
		                     &cls, &err) < 0) {
			if (!*error)
				*error = arl_xasprintf("step '%s': %s", s->name, err.msg);
		}
		if (copy)
			arl_step_release(&rendered);
		/* Before metrics read it: a metric holds what the stored output holds. */
		arl_secrets_mask_output(env->secrets, &r->out);
		arl_secrets_mask_output(env->secrets, &r->err);
		/* A backend whose output came at the step's end (kubernetes): it is live now. */
		if (live && !arl_live_wrote(live)) {
			arl_live_write(live, 0, r->out.data, r->out.len);
			arl_live_write(live, 1, r->err.data, r->err.len);
		}
		arl_live_close(live);
		/*
		 * A step that ran to its end reports its metrics even when it exited non-zero:
		 * a benchmark's test step fails exactly when it prints {"resolved": false}.
		 */
		if ((cls == ARL_CLASS_NONE || cls == ARL_CLASS_FAILED) && r->has_exit &&
		    s->metrics_json && !callback)
			collect_metrics(&r->out, metrics, nmetrics, &r->metrics_error);
		if (cls != ARL_CLASS_NONE) {
			first = cls;
			if (!*error && cls == ARL_CLASS_TIMEOUT && r->stalled)
				*error = arl_xasprintf("step '%s': no output for %s", s->name,
				                       s->stall_text ? s->stall_text : "?");
			else if (!*error && cls == ARL_CLASS_TIMEOUT)
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

/* The files of one attempt being kept: the sink the backend's collect op fills. */
struct keep {
	struct arl_attempt_result *out;
	const struct arl_artifact_spec *specs;
	size_t nspecs;
	size_t *matched; /* files found per pattern */
	const char *dir;
	struct arl_blob *blob;
	struct arl_artifact *cur; /* the file being received; NULL: none, or not kept */
	size_t spec;
	int64_t total;     /* bytes kept by the attempt */
	bool too_many;     /* ARL_ARTIFACTS_MAX_FILES reached (one row says so) */
	int64_t size_hint; /* the size the backend saw, for a file not read */
	/*
	 * The run's secrets: a file holding a value is not kept (masking would change its
	 * content). @carry: the end of the bytes so far, for a value split across chunks.
	 */
	const struct arl_secrets *secrets;
	char *carry;
	size_t ncarry, maxmask;
};

/* True when a secret's value is in @p (after what k->carry holds); keeps the new carry. */
static bool holds_secret(struct keep *k, const void *p, size_t n)
{
	char *buf;
	size_t len, keep;
	bool found = false;

	if (!k->secrets || !k->secrets->nmasks)
		return false;
	len = k->ncarry + n;
	buf = arl_xmalloc(len ? len : 1);
	if (k->ncarry)
		memcpy(buf, k->carry, k->ncarry);
	memcpy(buf + k->ncarry, p, n);
	for (size_t i = 0; i < k->secrets->nmasks && !found; i++) {
		const char *m = k->secrets->masks[i];

		found = *m && memmem(buf, len, m, strlen(m)) != NULL;
	}
	keep = k->maxmask > 1 ? k->maxmask - 1 : 0;
	if (keep > len)
		keep = len;
	free(k->carry);
	k->carry = arl_xmalloc(keep ? keep : 1);
	memcpy(k->carry, buf + len - keep, keep);
	k->ncarry = keep;
	explicit_bzero(buf, len);
	free(buf);
	return found;
}

static struct arl_artifact *keep_add(struct keep *k, const char *path, int64_t size)
{
	struct arl_attempt_result *a = k->out;
	struct arl_artifact *x;

	a->artifacts = arl_xrealloc(a->artifacts, (a->nartifacts + 1) * sizeof(*a->artifacts));
	x = &a->artifacts[a->nartifacts++];
	memset(x, 0, sizeof(*x));
	x->path = arl_xstrdup(path);
	x->size = size > 0 ? size : 0;
	return x;
}

/* The file being received is not kept, for @why. */
static void keep_refuse(struct keep *k, char *why)
{
	arl_blob_abort(k->blob);
	k->blob = NULL;
	if (k->cur && !k->cur->error)
		k->cur->error = why;
	else
		free(why);
	if (k->cur) {
		k->cur->sha256[0] = '\0';
		if (k->size_hint > k->cur->size)
			k->cur->size = k->size_hint;
	}
	k->cur = NULL;
}

static int keep_begin(void *arg, size_t spec, const char *path, int64_t size)
{
	struct keep *k = arg;
	struct arl_err err = ARL_ERR_INIT;

	if (k->cur) /* a backend that skipped end() */
		keep_refuse(k, arl_xstrdup("not kept: cut short"));
	if (spec >= k->nspecs || !path || path[0] != '/')
		return -1;
	k->matched[spec]++;
	for (size_t i = 0; i < k->out->nartifacts; i++)
		if (!strcmp(k->out->artifacts[i].path, path))
			return -1; /* matched by an earlier pattern */
	if (k->out->nartifacts >= ARL_ARTIFACTS_MAX_FILES) {
		if (!k->too_many)
			keep_add(k, path, size)->error = arl_xasprintf(
			    "not kept: an attempt keeps at most %d files", ARL_ARTIFACTS_MAX_FILES);
		k->too_many = true;
		return -1;
	}
	k->cur = keep_add(k, path, 0);
	k->spec = spec;
	k->size_hint = size;
	if (k->carry)
		explicit_bzero(k->carry, k->ncarry);
	k->ncarry = 0;
	if (!k->dir) {
		keep_refuse(k, arl_xstrdup("not kept: the run has no database to store it in"));
		return -1;
	}
	if (arl_blob_begin(k->dir, &k->blob, &err) < 0) {
		keep_refuse(k, arl_xasprintf("not kept: %s", err.msg));
		return -1;
	}
	return 0;
}

static int keep_data(void *arg, const void *p, size_t n)
{
	struct keep *k = arg;
	struct arl_err err = ARL_ERR_INIT;
	int64_t max = k->specs[k->spec].max_size;
	char bound[32];

	if (!k->cur)
		return -1;
	k->cur->size += (int64_t)n;
	if (k->cur->size > max) {
		snprintf(bound, sizeof(bound), "%" PRId64, max);
		keep_refuse(k,
		            arl_xasprintf("not kept: larger than its maxSize (%s allowed)", bound));
		return -1;
	}
	if (k->total + (int64_t)n > ARL_ARTIFACTS_MAX_TOTAL) {
		keep_refuse(k, arl_xasprintf("not kept: the attempt's artifacts would pass %lld "
		                             "bytes in all",
		                             (long long)ARL_ARTIFACTS_MAX_TOTAL));
		return -1;
	}
	if (holds_secret(k, p, n)) {
		keep_refuse(k, arl_xstrdup("not kept: it holds the value of a secret (secrets are "
		                           "never stored)"));
		return -1;
	}
	k->total += (int64_t)n;
	if (arl_blob_write(k->blob, p, n, &err) < 0) {
		keep_refuse(k, arl_xasprintf("not kept: %s", err.msg));
		return -1;
	}
	return 0;
}

static void keep_end(void *arg, const char *error)
{
	struct keep *k = arg;
	struct arl_err err = ARL_ERR_INIT;
	struct arl_artifact *x = k->cur;

	if (!x)
		return;
	if (error) {
		keep_refuse(k, arl_xasprintf("not kept: %s", error));
		return;
	}
	k->cur = NULL;
	if (arl_blob_commit(k->blob, x->sha256, &err) < 0) {
		x->sha256[0] = '\0';
		x->error = arl_xasprintf("not kept: %s", err.msg);
	}
	k->blob = NULL;
}

/*
 * The job's `artifacts:` from @sb into the store and out->artifacts, before its release. A
 * pattern that matched nothing gets a row saying so; a backend that cannot keep files, one
 * per pattern saying that.
 */
static void collect_artifacts(const struct arl_attempt_env *env, const struct arl_job *job,
                              struct arl_sandbox *sb, const struct arl_tmpl_ctx *t,
                              struct arl_attempt_result *out)
{
	struct arl_artifact_spec *specs;
	struct keep k = {.out = out,
	                 .nspecs = job->nartifacts,
	                 .dir = env->artifacts_dir,
	                 .secrets = env->secrets};
	struct arl_artifact_sink sink = {
	    .arg = &k, .begin = keep_begin, .data = keep_data, .end = keep_end, .max_size = 0};
	struct arl_err err = ARL_ERR_INIT;
	char *failed = NULL;

	if (!job->nartifacts)
		return;
	specs = arl_xcalloc(job->nartifacts, sizeof(*specs));
	for (size_t i = 0; i < job->nartifacts; i++) {
		specs[i].path = job->runtime_templates ? render_rt(job->artifacts[i].path, t)
		                                       : arl_xstrdup(job->artifacts[i].path);
		specs[i].max_size = job->artifacts[i].max_size;
		if (specs[i].max_size > sink.max_size)
			sink.max_size = specs[i].max_size;
	}
	k.specs = specs;
	for (size_t i = 0; k.secrets && i < k.secrets->nmasks; i++)
		if (strlen(k.secrets->masks[i]) > k.maxmask)
			k.maxmask = strlen(k.secrets->masks[i]);
	k.matched = arl_xcalloc(job->nartifacts, sizeof(*k.matched));
	if (!env->ops->collect)
		failed = arl_xasprintf("not collected: %s pools keep no files",
		                       arl_backend_name(env->ops));
	else if (env->ops->collect(env->backend, sb, specs, job->nartifacts, &sink,
	                           arl_now_ms() + ARL_ARTIFACTS_COLLECT_MS, &err) < 0)
		failed = arl_xasprintf("not collected: %s", err.msg);
	keep_refuse(&k, failed ? arl_xstrdup(failed) : arl_xstrdup("not kept: cut short"));
	for (size_t i = 0; i < job->nartifacts; i++) {
		bool seen = false;

		if (k.matched[i])
			continue;
		for (size_t j = 0; j < out->nartifacts && !seen; j++)
			seen = !strcmp(out->artifacts[j].path, specs[i].path);
		if (!seen)
			keep_add(&k, specs[i].path, 0)->error =
			    failed ? arl_xstrdup(failed) : arl_xstrdup("no file matches");
	}
	for (size_t i = 0; i < job->nartifacts; i++)
		free(specs[i].path);
	free(specs);
	free(k.matched);
	if (k.carry)
		explicit_bzero(k.carry, k.ncarry);
	free(k.carry);
	free(failed);
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
	/* Failed and timed-out attempts too: their files are what explains them. */
	collect_artifacts(env, job, sb, &t, out);
	arl_backend_release(env->ops, env->backend, sb, job->keep_alive);
out:
	out->finished_ms = arl_wall_ms();
	/* A backend's message may quote what a step printed. */
	arl_secrets_mask_attempt(env->secrets, out);
}
