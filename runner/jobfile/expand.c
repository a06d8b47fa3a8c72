/*
 * DESIGN: expansion reads a job's fields into struct arl_job through fields.c, whose
 * diagnostics carry the node's position; the per-call state (the item bound for templates, the
 * job's pool) lives in struct expand on the caller's stack, so workers may expand jobs of one
 * file at once. Fields missing in a job fall back to the `defaults` node.
 */
#include "jobfile/expand.h"
#include "jobfile/pool_kind.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "jobfile/dataset.h"
#include "jobfile/fields.h"
#include "jobfile/resources.h"
#include "jobfile/pool_kind.h"
#include "jobfile/template.h"
#include "jobfile/yaml_load.h"
#include "result.h"
#include "util.h"
#include "banned.h"

static const char *const command_keys[] = {"name",    "type",    "command",      "workDir", "env",
                                           "timeout", "metrics", "stallTimeout", NULL};
static const char *const filepatch_keys[] = {"name", "type", "path", "content", "timeout", NULL};
static const char *const callback_keys[] = {"on_task_success", "on_task_failure",
                                            "on_task_complete", NULL};
static const char *const step_types[] = {"Command", "FilePatch", NULL};
static const char *const retry_names[] = {"failed", "timeout", "infra", NULL};
static const char *const metrics_names[] = {"json", NULL};
static const char *const artifact_keys[] = {"path", "maxSize", NULL};

/* One expansion in progress. */
struct expand {
	struct arl_fields r;
	const struct arl_jobfile *f;
	const struct arl_expand_checks *checks; /* NULL: none */
	struct arl_tmpl_ctx t;
	const struct arl_pool *pool; /* the job's, once known; NULL if it names none */
	/* The job's stallTimeout (its steps inherit it), or 0 and NULL. */
	int64_t stall_ms;
	const char *stall_text;
};

/* A stallTimeout at @v into *@ms and *@text (owned); false when it is not valid here. */
static bool parse_stall(struct expand *c, const struct arl_node *v, int64_t *ms, char **text)
{
	if (!arl_field_duration(&c->r, v, "stallTimeout", INT64_MAX / 4, false, ms)) {
		*ms = 0;
		return false;
	}
	if (c->pool && c->pool->kind && c->pool->kind->no_stall) {
		*ms = 0;
		arl_field_diag(&c->r, v, "'stallTimeout' cannot work on pool '%s' (backend %s): %s",
		               c->pool->name, c->pool->kind->name, c->pool->kind->no_stall);
		return false;
	}
	if (text)
		*text = arl_xstrdup(v->str ? v->str : "");
	return true;
}

/* A FilePatch path, for the loader's check. */
static void check_path(struct expand *c, const struct arl_node *n, const char *path, bool deferred)
{
	if (c->checks && c->checks->filepatch_path &&
	    !c->checks->filepatch_path(c->checks->arg, n, c->pool, path, deferred))
		c->r.bad = true;
}

/* A job's field, falling back to defaults. */
static const struct arl_node *field(struct expand *c, const struct arl_node *job, const char *key)
{
	const struct arl_node *n = arl_node_get(job, key);

	return n ? n : arl_node_get(c->f->defaults, key);
}

/* Adds the string map @n (env or labels) to @m, later keys overriding. */
static void get_strmap(struct expand *c, const struct arl_node *n, const char *name, bool is_env,
                       struct arl_strmap *m)
{
	if (!n || !arl_field_want(&c->r, n, ARL_NODE_MAP, name))
		return;
	for (size_t i = 0; i + 1 < n->nkids; i += 2) {
		const struct arl_node *k = n->kids[i], *v = n->kids[i + 1];
		char *val;

		if (k->kind != ARL_NODE_SCALAR || !k->len) {
			arl_field_diag(&c->r, k, "keys of '%s' must be non-empty strings", name);
			continue;
		}
		if (is_env && !arl_field_env_name_ok(k->str)) {
			arl_field_diag(&c->r, k, "'%s' is not a valid environment variable name",
			               k->str);
			continue;
		}
		if (v->kind != ARL_NODE_SCALAR || arl_node_is_null(v)) {
			arl_field_diag(&c->r, v, "'%s.%s' must be a string, got %s", name, k->str,
			               arl_node_describe(v));
			continue;
		}
		val = arl_field_render(&c->r, v, v->str);
		if (val) {
			arl_strmap_set(m, k->str, val);
			free(val);
		}
	}
}

static void parse_command(struct expand *c, const struct arl_node *n, struct arl_step *s,
                          const struct arl_strmap *job_env)
{
	const struct arl_node *v;
	int64_t ms;

	v = arl_node_get(n, "command");
	if (!v) {
		arl_field_diag(&c->r, n, "missing required key 'command' in a Command step");
	} else if (arl_field_want(&c->r, v, ARL_NODE_SEQ, "command")) {
		if (!v->nkids)
			arl_field_diag(&c->r, v, "'command' must not be empty");
		s->argv = arl_xcalloc(v->nkids + 1, sizeof(*s->argv));
		for (size_t i = 0; i < v->nkids; i++) {
			char *a;

			if (!arl_field_is_string(v->kids[i]) &&
			    v->kids[i]->kind == ARL_NODE_SCALAR) {
				/* As Kubernetes does: quoting keeps "5" from becoming a number. */
				arl_field_diag(
				    &c->r, v->kids[i],
				    "'command' arguments must be strings, got %s (quote it: "
				    "\"%s\")",
				    arl_node_describe(v->kids[i]), v->kids[i]->str);
				continue;
			}
			a = arl_field_str(&c->r, v->kids[i], "command");

			if (a)
				s->argv[s->argc++] = a;
		}
	}
	if ((v = arl_node_get(n, "workDir")) &&
	    (s->work_dir = arl_field_str(&c->r, v, "workDir")) && s->work_dir[0] != '/')
		arl_field_diag(&c->r, v,
		               "'workDir' must be an absolute path inside the sandbox, got '%s'",
		               s->work_dir);
	for (size_t i = 0; job_env && i < job_env->n; i++)
		arl_strmap_set(&s->env, job_env->v[i].key, job_env->v[i].val);
	get_strmap(c, arl_node_get(n, "env"), "env", true, &s->env);
	if ((v = arl_node_get(n, "timeout")) &&
	    arl_field_duration(&c->r, v, "timeout", INT64_MAX / 4, false, &ms))
		s->timeout_ms = ms;
	if ((v = arl_node_get(n, "stallTimeout"))) {
		parse_stall(c, v, &s->stall_ms, &s->stall_text);
	} else if (c->stall_ms && c->stall_text) {
		s->stall_ms = c->stall_ms;
		s->stall_text = arl_xstrdup(c->stall_text);
	}
	if ((v = arl_node_get(n, "metrics"))) {
		int m;

		if (arl_field_enum(&c->r, v, "metrics", metrics_names, &m))
			s->metrics_json = true;
	}
}

static void parse_filepatch(struct expand *c, const struct arl_node *n, struct arl_step *s)
{
	const struct arl_node *v;

	v = arl_node_get(n, "path");
	if (!v) {
		arl_field_diag(&c->r, n, "missing required key 'path' in a FilePatch step");
	} else {
		bool deferred = c->r.deferred;

		c->r.deferred = false;
		if ((s->path = arl_field_str(&c->r, v, "path")) && s->path[0] != '/')
			arl_field_diag(
			    &c->r, v,
			    "'path' must be an absolute path inside the sandbox, got '%s'",
			    s->path);
		else if (s->path)
			check_path(c, v, s->path, c->r.deferred);
		c->r.deferred |= deferred;
	}
	if ((v = arl_node_get(n, "timeout")))
		arl_field_duration(&c->r, v, "timeout", INT64_MAX / 4, false, &s->timeout_ms);
	v = arl_node_get(n, "content");
	if (!v) {
		arl_field_diag(&c->r, n, "missing required key 'content' in a FilePatch step");
	} else if (v->kind == ARL_NODE_SCALAR && arl_node_is_null(v) && v->plain) {
		s->content = arl_xstrdup(""); /* "content:" alone: an empty file */
	} else if ((s->content = arl_field_str(&c->r, v, "content"))) {
		s->content_len = strlen(s->content);
	}
}

static void parse_step(struct expand *c, const struct arl_node *n, size_t idx, struct arl_step *s,
                       const struct arl_strmap *job_env)
{
	const struct arl_node *v = arl_node_get(n, "type");
	const char *const *keys;
	const char *where;
	int type = -1;

	if (!v)
		arl_field_diag(&c->r, n,
		               "missing required key 'type' in a step (Command or FilePatch)");
	else if (!arl_field_enum(&c->r, v, "type", step_types, &type))
		type = -1;
	s->type = type == 1 ? ARL_STEP_FILEPATCH : ARL_STEP_COMMAND;
	keys = type == 1 ? filepatch_keys : command_keys;
	where = type == 1 ? "a FilePatch step" : "a Command step";
	for (size_t i = 0; type >= 0 && i + 1 < n->nkids; i += 2) {
		const struct arl_node *k = n->kids[i];
		const char *const *other = type == 1 ? command_keys : filepatch_keys;

		if (k->kind != ARL_NODE_SCALAR)
			arl_field_diag(&c->r, k, "keys in a step must be strings");
		else if (!arl_field_in_list(k->str, keys) && arl_field_in_list(k->str, other))
			arl_field_diag(&c->r, k,
			               "unknown key '%s' in %s ('%s' belongs to %s steps)", k->str,
			               where, k->str, type == 1 ? "Command" : "FilePatch");
		else if (!arl_field_in_list(k->str, keys))
			arl_field_unknown_key(&c->r, k, where, keys);
	}
	if ((v = arl_node_get(n, "name")))
		s->name = arl_field_str(&c->r, v, "name");
	if (!s->name)
		s->name = arl_xasprintf("step-%zu", idx + 1);
	if (type == 0)
		parse_command(c, n, s, job_env);
	else if (type == 1)
		parse_filepatch(c, n, s);
}

struct named_step {
	const char *name;
	size_t i;                  /* in the list: the first of equal names is the earliest */
	const struct arl_node *at; /* its mapping */
};

static int named_step_cmp(const void *a, const void *b)
{
	const struct named_step *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : (x->i > y->i) - (x->i < y->i);
}

/* A list of steps into @out; @nonempty for the main steps. */
static void parse_steps(struct expand *c, const struct arl_node *n, const char *name, bool nonempty,
                        const struct arl_strmap *job_env, struct arl_steps *out)
{
	struct named_step *by_name;

	if (!arl_field_want(&c->r, n, ARL_NODE_SEQ, name))
		return;
	if (nonempty && n->nkids == 0)
		arl_field_diag(&c->r, n, "'%s' must not be empty", name);
	out->v = arl_xcalloc(n->nkids ? n->nkids : 1, sizeof(*out->v));
	by_name = arl_xcalloc(n->nkids ? n->nkids : 1, sizeof(*by_name));
	for (size_t i = 0; i < n->nkids; i++) {
		const struct arl_node *sn = n->kids[i];

		if (!arl_field_want(&c->r, sn, ARL_NODE_MAP, "a step"))
			continue;
		parse_step(c, sn, i, &out->v[out->n], job_env);
		by_name[out->n] = (struct named_step){out->v[out->n].name, i, sn};
		out->n++;
	}
	/* Sorted, not each against all before it: 100,000 steps took 40 s. */
	qsort(by_name, out->n, sizeof(*by_name), named_step_cmp);
	for (size_t k = 1; k < out->n; k++) {
		if (!strcmp(by_name[k].name, by_name[k - 1].name)) {
			const struct arl_node *nn = arl_node_get(by_name[k].at, "name");

			arl_field_diag(&c->r, nn ? nn : by_name[k].at,
			               "duplicate step name '%s' in '%s'", by_name[k].name, name);
		}
	}
	free(by_name);
}

static void parse_callbacks(struct expand *c, const struct arl_node *n, struct arl_job *j,
                            const struct arl_strmap *env)
{
	const struct arl_node *v;

	if (!arl_field_want(&c->r, n, ARL_NODE_MAP, "callbacks"))
		return;
	arl_field_check_keys(&c->r, n, "callbacks", callback_keys);
	if ((v = arl_node_get(n, "on_task_success")))
		parse_steps(c, v, "on_task_success", false, env, &j->on_success);
	if ((v = arl_node_get(n, "on_task_failure")))
		parse_steps(c, v, "on_task_failure", false, env, &j->on_failure);
	if ((v = arl_node_get(n, "on_task_complete")))
		parse_steps(c, v, "on_task_complete", false, env, &j->on_complete);
}

static void warn(struct expand *c, const struct arl_node *n, const char *fmt, ...) ARL_PRINTF(3, 4);
static void warn(struct expand *c, const struct arl_node *n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	arl_field_vwarn(&c->r, n, fmt, ap);
	va_end(ap);
}

/* Why @path cannot name files to keep, or NULL: absolute, no '.', '..' or empty component. */
static const char *artifact_path_problem(const char *path)
{
	if (path[0] != '/')
		return "must be an absolute path inside the sandbox";
	for (const char *p = path + 1;; p++) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);

		if (n == 0)
			return "has an empty component";
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return "must not have '.' or '..' components";
		if (!e)
			return NULL;
		p = e;
	}
}

/* `artifacts: [{path, maxSize}]` into j->artifacts. */
static void parse_artifacts(struct expand *c, const struct arl_node *n, struct arl_job *j)
{
	if (!arl_field_want(&c->r, n, ARL_NODE_SEQ, "artifacts"))
		return;
	if (n->nkids > ARL_ARTIFACTS_MAX_SPECS) {
		arl_field_diag(&c->r, n, "'artifacts' has %zu entries; at most %d are allowed",
		               n->nkids, ARL_ARTIFACTS_MAX_SPECS);
		return;
	}
	j->artifacts = arl_xcalloc(n->nkids ? n->nkids : 1, sizeof(*j->artifacts));
	for (size_t i = 0; i < n->nkids; i++) {
		const struct arl_node *a = n->kids[i], *v;
		struct arl_artifact_spec *sp = &j->artifacts[j->nartifacts];
		const char *why;
		char *path;

		if (!arl_field_want(&c->r, a, ARL_NODE_MAP, "an artifact"))
			continue;
		arl_field_check_keys(&c->r, a, "an artifact", artifact_keys);
		if (!(v = arl_node_get(a, "path"))) {
			arl_field_diag(&c->r, a, "missing required key 'path' in an artifact");
			continue;
		}
		if (!(path = arl_field_str(&c->r, v, "path")))
			continue;
		if ((why = artifact_path_problem(path))) {
			arl_field_diag(&c->r, v, "artifact path '%s' %s", path, why);
			free(path);
			continue;
		}
		sp->path = path;
		sp->max_size = ARL_ARTIFACT_MAX_SIZE;
		if ((v = arl_node_get(a, "maxSize"))) {
			int64_t b;

			if (v->kind != ARL_NODE_SCALAR || arl_node_is_null(v) ||
			    arl_quantity_parse(v->str, 1, &b) < 0 || b <= 0 ||
			    b > ARL_ARTIFACT_MAX_MAXSIZE)
				arl_field_diag(&c->r, v,
				               "'maxSize' must be a size from 1 to 1Gi (a quantity "
				               "such as 512Ki or 10Mi), got %s",
				               v->kind == ARL_NODE_SCALAR ? v->str
				                                          : arl_node_describe(v));
			else
				sp->max_size = b;
		}
		j->nartifacts++;
	}
	if (j->nartifacts && c->pool && c->pool->kind && c->pool->kind->artifacts_refusal)
		warn(c, n, "artifacts are not collected on %s pools (pool '%s'): %s",
		     c->pool->kind->name, c->pool->name, c->pool->kind->artifacts_refusal);
}

static void parse_pool_ref(struct expand *c, const struct arl_node *jn, const struct arl_node *v,
                           struct arl_job *j)
{
	char *name, list[256] = "";
	const char *names[64];
	size_t k = 0;

	if (!v) {
		if (c->f->npools == 1) {
			j->pool = 0;
			return;
		}
		if (c->f->npools == 0) {
			c->r.bad = true; /* reported once at 'pools' */
			return;
		}
		if (c->f->npools > 1)
			arl_field_diag(
			    &c->r, jn,
			    "job '%s' names no pool and the file defines %zu; set 'pool' "
			    "or 'defaults.pool'",
			    j->name ? j->name : "?", c->f->npools);
		return;
	}
	name = arl_field_str(&c->r, v, "pool");
	if (!name)
		return;
	for (size_t i = 0; i < c->f->npools; i++) {
		if (!strcmp(c->f->pools[i].name, name)) {
			j->pool = i;
			free(name);
			return;
		}
		if (k < 63)
			names[k++] = c->f->pools[i].name;
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s'%s'", i ? ", " : "",
		         c->f->pools[i].name);
	}
	names[k] = NULL;
	if (arl_field_suggest(name, names))
		arl_field_diag(&c->r, v, "unknown pool '%s'; did you mean '%s'?", name,
		               arl_field_suggest(name, names));
	else
		arl_field_diag(&c->r, v, "unknown pool '%s' (defined: %s)", name,
		               c->f->npools ? list : "none");
	free(name);
}

/*
 * A job's own image: rendered now (from its item), since the run checks every image before
 * it starts; only a kind that can run one per sandbox takes it (pool_kind.h).
 */
static void parse_image(struct expand *c, const struct arl_node *v, struct arl_job *j)
{
	bool deferred = c->r.deferred;

	c->r.deferred = false;
	j->image = arl_field_str(&c->r, v, "image");
	if (j->image && c->r.deferred)
		arl_field_diag(&c->r, v,
		               "'image' cannot use run.* or attempt: every image is checked "
		               "before the run starts");
	else if (j->image && !j->image[0])
		arl_field_diag(&c->r, v, "'image' must not be empty");
	else if (j->image && v->kind == ARL_NODE_SCALAR && strstr(v->str, "{{") &&
	         (!strncmp(j->image, "docker-archive:", 15) || !strncmp(j->image, "oci:", 4) ||
	          !strncmp(j->image, "oci-archive:", 12)))
		/* A record must not make the runner (root, maybe) open a host path of its choice. */
		arl_field_diag(&c->r, v,
		               "'image' rendered to '%s': an image rendered from an item must be "
		               "a name in the image store (NAME[:TAG]); archive and layout paths "
		               "may only be written in the job file itself",
		               j->image);
	else if (j->image && c->pool && c->pool->kind && !c->pool->kind->job_image)
		arl_field_diag(&c->r, v,
		               "job '%s' names its own image, which %s pool '%s' cannot run: "
		               "%s; give each image a pool of its own",
		               j->name ? j->name : "?", c->pool->kind->name, c->pool->name,
		               c->pool->kind->one_image ? c->pool->kind->one_image
		                                        : "its sandboxes all run one image");
	c->r.deferred = deferred;
}

/* The job @jn with the item bound; false (and *out untouched) on errors. */
static bool expand_one(struct expand *c, const struct arl_node *jn, struct arl_job *out)
{
	struct arl_job j = {0};
	const struct arl_node *v, *name_node = arl_node_get(jn, "name");
	struct arl_strmap env = {0};
	int64_t n;
	bool bad;

	j.timeout_ms = ARL_DEFAULT_TIMEOUT_MS;
	j.prepare_timeout_ms = ARL_DEFAULT_PREPARE_TIMEOUT_MS;
	j.backoff_ms = ARL_DEFAULT_BACKOFF_MS;
	j.retry_on = ARL_RETRY_BIT(ARL_CLASS_INFRA) | ARL_RETRY_BIT(ARL_CLASS_TIMEOUT);
	if (!name_node) {
		arl_field_diag(&c->r, jn, "missing required key 'name' in job");
	} else if ((j.name = arl_field_str(&c->r, name_node, "name"))) {
		if (c->r.deferred)
			arl_field_diag(&c->r, name_node,
			               "job names cannot use run.* or attempt: a name must be "
			               "stable across runs");
		else if (c->checks && c->checks->name &&
		         !c->checks->name(c->checks->arg, name_node, j.name))
			c->r.bad = true;
	}
	c->t.job_name = j.name;
	bad = c->r.bad;
	c->r.bad = false;
	parse_pool_ref(c, jn, field(c, jn, "pool"), &j);
	c->pool = c->r.bad ? NULL : &c->f->pools[j.pool];
	c->r.bad |= bad;
	if ((v = field(c, jn, "timeout")))
		arl_field_duration(&c->r, v, "timeout", INT64_MAX / 4, false, &j.timeout_ms);
	if ((v = field(c, jn, "prepareTimeout")))
		arl_field_duration(&c->r, v, "prepareTimeout", INT64_MAX / 4, false,
		                   &j.prepare_timeout_ms);
	if ((v = field(c, jn, "stallTimeout")) && parse_stall(c, v, &c->stall_ms, NULL))
		c->stall_text = v->str;
	if ((v = field(c, jn, "retries")) &&
	    arl_field_int(&c->r, v, "retries", 0, ARL_MAX_RETRIES, &n))
		j.retries = (int)n;
	if ((v = field(c, jn, "retryOn")) && arl_field_want(&c->r, v, ARL_NODE_SEQ, "retryOn")) {
		j.retry_on = 0;
		for (size_t i = 0; i < v->nkids; i++) {
			int e;

			if (arl_field_enum(&c->r, v->kids[i], "retryOn", retry_names, &e))
				j.retry_on |= ARL_RETRY_BIT(e == 0   ? ARL_CLASS_FAILED
				                            : e == 1 ? ARL_CLASS_TIMEOUT
				                                     : ARL_CLASS_INFRA);
		}
	}
	if ((v = field(c, jn, "backoff")))
		arl_field_duration(&c->r, v, "backoff", ARL_MAX_BACKOFF_MS, true, &j.backoff_ms);
	if ((v = field(c, jn, "keepAlive")))
		arl_field_bool(&c->r, v, "keepAlive", &j.keep_alive);
	if ((v = field(c, jn, "image")))
		parse_image(c, v, &j);
	/* env and labels merge key by key: the job's entries over the defaults'. */
	get_strmap(c, arl_node_get(c->f->defaults, "env"), "env", true, &env);
	get_strmap(c, arl_node_get(jn, "env"), "env", true, &env);
	get_strmap(c, arl_node_get(c->f->defaults, "labels"), "labels", false, &j.labels);
	get_strmap(c, arl_node_get(jn, "labels"), "labels", false, &j.labels);
	if (!(v = field(c, jn, "steps")))
		arl_field_diag(&c->r, jn, "missing required key 'steps' in job");
	else
		parse_steps(c, v, "steps", true, &env, &j.steps);
	if ((v = field(c, jn, "callbacks")))
		parse_callbacks(c, v, &j, &env);
	if ((v = field(c, jn, "artifacts")))
		parse_artifacts(c, v, &j);
	arl_strmap_release(&env);
	if (c->r.bad) {
		if (j.name && c->checks && c->checks->rejected)
			c->checks->rejected(c->checks->arg, j.name, name_node->loc);
		arl_job_release(&j);
		return false;
	}
	if (c->t.item) {
		char *s = cJSON_PrintUnformatted(c->t.item);

		j.item = arl_xstrdup(s);
		cJSON_free(s);
	}
	j.runtime_templates = c->r.deferred;
	j.key = arl_xasprintf("%s/%s", c->f->stem, j.name);
	j.node = jn;
	*out = j;
	return true;
}

bool arl_expand_job(const struct arl_jobfile *f, const struct arl_node *jn, const cJSON *item,
                    const char *origin, const struct arl_expand_checks *checks, struct arl_diags *d,
                    struct arl_job *out)
{
	struct expand c = {.r = {.d = d, .path = f->path, .origin = origin},
	                   .f = f,
	                   .checks = checks,
	                   .t = {.item = item, .params = f->params}};

	c.r.t = &c.t;
	return expand_one(&c, jn, out);
}

int arl_job_materialize(const struct arl_jobfile *f, const struct arl_job *j, struct arl_job *out,
                        struct arl_err *err)
{
	struct arl_diags diags = ARL_DIAGS_INIT;
	cJSON *item = NULL;
	bool ok;

	if (!j->lazy || !j->node)
		return arl_error(err, ARL_E_INVALID, "job '%s' has no source to expand", j->name);
	if (j->dataset) {
		if (arl_dataset_read(j->dataset, j->record, &item, err) < 0) {
			arl_err_prefix(err, "job '%s'", j->name);
			return -1;
		}
	} else if (!(item = cJSON_Parse(j->item))) {
		return arl_error(err, ARL_E_INVALID, "job '%s': its item is not valid JSON",
		                 j->name);
	}
	/* The loader's checks passed for this very item: none are needed again. */
	ok = arl_expand_job(f, j->node, item, "", NULL, &diags, out);
	cJSON_Delete(item);
	if (!ok) {
		/* The file was validated with this very item: only a bug gets here. */
		arl_error(err, ARL_E_INVALID, "job '%s' no longer expands: %s", j->name,
		          diags.n ? diags.v[0].msg : "?");
		arl_diags_release(&diags);
		return -1;
	}
	arl_diags_release(&diags);
	memcpy(out->spec_hash, j->spec_hash, sizeof(out->spec_hash));
	return 0;
}
