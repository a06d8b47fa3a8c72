/*
 * DESIGN: validation walks the YAML node tree once per expanded job. A job with a foreach
 * is parsed again for every item, with the item bound for templates; structural errors are
 * identical for every item and arl_diags drops the repeats, while template errors name the
 * record. Fields missing in a job fall back to the `defaults` node, so defaults are checked
 * with the same code and point at their own lines. Key tables double as the unknown-key check
 * and the did-you-mean vocabulary.
 */
#include "jobfile/schema.h"

#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "jobfile/dataset.h"
#include "result.h"
#include "jobfile/template.h"
#include "util.h"
#include "jobfile/yaml_load.h"
#include "banned.h"

#define MAX_JOBS_PER_FILE 5000000
#define MAX_NAME_LEN      200
#define MAX_OPEN_DATASETS 16

static const char *const top_keys[] = {"version",  "name", "concurrency", "pools",
                                       "defaults", "jobs", NULL};
static const char *const pool_keys[] = {"backend",   "replicas",  "isolation", "network",
                                        "workspace", "namespace", "create",    NULL};
static const char *const create_keys[] = {"image", "sidecarImage", "testbedPath", NULL};
static const char *const job_keys[] = {
    "name",      "pool", "timeout", "prepareTimeout", "retries",   "retryOn", "backoff",
    "keepAlive", "env",  "labels",  "steps",          "callbacks", "foreach", NULL};
static const char *const defaults_keys[] = {"pool",    "timeout", "prepareTimeout", "retries",
                                            "retryOn", "backoff", "keepAlive",      "env",
                                            "labels",  "steps",   "callbacks",      NULL};
static const char *const command_keys[] = {"name", "type",    "command", "workDir",
                                           "env",  "timeout", "metrics", NULL};
static const char *const filepatch_keys[] = {"name", "type", "path", "content", "timeout", NULL};
static const char *const callback_keys[] = {"on_task_success", "on_task_failure",
                                            "on_task_complete", NULL};
static const char *const foreach_keys[] = {"file", "items", "matrix", NULL};

static const char *const backend_names[] = {"local", "kubernetes", NULL};
static const char *const isolation_names[] = {"bwrap", "none", NULL};
static const char *const step_types[] = {"Command", "FilePatch", NULL};
static const char *const retry_names[] = {"failed", "timeout", "infra", NULL};
static const char *const metrics_names[] = {"json", NULL};

/*
 * Job names seen, for the duplicate check: a hash and where the name is, 8 bytes a job. The
 * name is that of an accepted job (f->jobs), or a copy kept for a job rejected after its name
 * was checked (its later namesakes are still duplicates).
 */
struct name_slot {
	uint32_t hash;
	uint32_t ref; /* 0: empty; 1 + index into f->jobs; REJECTED | (1 + index into rejected) */
};
#define REJECTED 0x80000000u

struct rejected_name {
	char *name;
	struct arl_loc loc;
};

struct sctx {
	struct arl_diags *d;
	const char *path;
	char *dir;
	struct arl_jobfile *f;
	const struct arl_node *defaults;
	struct arl_tmpl_ctx t;
	char origin[200]; /* which item is being expanded, for template errors; "" if none */
	bool deferred;    /* a rendered string kept run-time expressions */
	bool bad;         /* the job being expanded has an error */
	const struct arl_pool *pool; /* the job's, once known; NULL if it names none */
	bool again;                  /* materializing a validated job: names were checked at load */
	struct name_slot *names;
	size_t nnames_cap, nnames;
	size_t pending; /* 1 + slot of the name of the job being expanded; 0: none */
	struct rejected_name *rejected;
	size_t nrejected, caprejected;
};

static void diag(struct sctx *c, const struct arl_node *n, const char *fmt, ...) ARL_PRINTF(3, 4);
static void diag(struct sctx *c, const struct arl_node *n, const char *fmt, ...)
{
	va_list ap;
	struct arl_loc loc = n ? n->loc : (struct arl_loc){c->path, 1, 1};

	va_start(ap, fmt);
	arl_diags_vadd(c->d, ARL_SEV_ERROR, loc, arl_node_width(n), fmt, ap);
	va_end(ap);
	c->bad = true;
}

static void warn(struct sctx *c, const struct arl_node *n, const char *fmt, ...) ARL_PRINTF(3, 4);
static void warn(struct sctx *c, const struct arl_node *n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	arl_diags_vadd(c->d, ARL_SEV_WARNING, n->loc, arl_node_width(n), fmt, ap);
	va_end(ap);
}

static const char *suggest(const char *key, const char *const *words)
{
	const char *best = NULL;
	unsigned best_d = 99, limit = strlen(key) <= 4 ? 1 : strlen(key) <= 8 ? 2 : 3;

	for (size_t i = 0; words[i]; i++) {
		unsigned dist = arl_edit_distance(key, words[i]);

		if (strcasecmp(key, words[i]) == 0)
			dist = 0;
		/* "on_complete" for "on_task_complete": a long key inside the word is a match. */
		else if (strlen(key) >= 5 && (strstr(words[i], key) ||
		                              (strlen(words[i]) >= 5 && strstr(key, words[i]))))
			dist = limit;
		else if (strlen(key) >= 6 && strlen(words[i]) > 8 &&
		         !strcmp(key + strlen(key) - 6, words[i] + strlen(words[i]) - 6))
			dist = limit;
		if (dist < best_d) {
			best_d = dist;
			best = words[i];
		}
	}
	return best_d <= limit ? best : NULL;
}

static bool in_list(const char *s, const char *const *words)
{
	for (size_t i = 0; words[i]; i++)
		if (!strcmp(s, words[i]))
			return true;
	return false;
}

static void unknown_key(struct sctx *c, const struct arl_node *k, const char *where,
                        const char *const *allowed)
{
	const char *s = suggest(k->str, allowed);

	if (s)
		diag(c, k, "unknown key '%s' in %s; did you mean '%s'?", k->str, where, s);
	else
		diag(c, k, "unknown key '%s' in %s", k->str, where);
}

/* Reports keys of @map not in @allowed; every key must be a string. */
static void check_keys(struct sctx *c, const struct arl_node *map, const char *where,
                       const char *const *allowed)
{
	for (size_t i = 0; i + 1 < map->nkids; i += 2) {
		const struct arl_node *k = map->kids[i];

		if (k->kind != ARL_NODE_SCALAR)
			diag(c, k, "keys in %s must be strings, got %s", where,
			     arl_node_describe(k));
		else if (!in_list(k->str, allowed))
			unknown_key(c, k, where, allowed);
	}
}

static bool want(struct sctx *c, const struct arl_node *n, enum arl_node_kind kind,
                 const char *name)
{
	static const char *const kinds[] = {"a scalar", "a list", "a mapping"};

	if (n->kind == kind)
		return true;
	diag(c, n, "'%s' must be %s, got %s", name, kinds[kind], arl_node_describe(n));
	return false;
}

static bool is_string(const struct arl_node *n)
{
	return n->kind == ARL_NODE_SCALAR && !strcmp(arl_node_describe(n), "a string");
}

/* Renders load-time templates of @s; errors name the expanded item. */
static char *render(struct sctx *c, const struct arl_node *n, const char *s)
{
	struct arl_err err = ARL_ERR_INIT;
	bool deferred = false;
	char *out;

	if (!arl_tmpl_has(s))
		return arl_xstrdup(s);
	if (arl_tmpl_render(s, &c->t, &out, &deferred, &err) < 0) {
		if (c->origin[0])
			diag(c, n, "%s (%s)", err.msg, c->origin);
		else
			diag(c, n, "%s", err.msg);
		return NULL;
	}
	c->deferred |= deferred;
	return out;
}

/* A string field, rendered. NULL (with a diagnostic) when it is not a string. */
static char *get_str(struct sctx *c, const struct arl_node *n, const char *name)
{
	if (!is_string(n)) {
		diag(c, n, "'%s' must be a string, got %s", name, arl_node_describe(n));
		return NULL;
	}
	return render(c, n, n->str);
}

static bool get_int(struct sctx *c, const struct arl_node *n, const char *name, int64_t min,
                    int64_t max, int64_t *out)
{
	int64_t v;

	if (n->kind != ARL_NODE_SCALAR || !n->plain ||
	    arl_parse_i64(n->str, INT64_MIN, INT64_MAX, &v) < 0) {
		diag(c, n, "'%s' must be an integer, got %s", name, arl_node_describe(n));
		return false;
	}
	if (v < min || v > max) {
		if (max == INT32_MAX)
			diag(c, n, "'%s' must be at least %lld, got %lld", name, (long long)min,
			     (long long)v);
		else
			diag(c, n, "'%s' must be between %lld and %lld, got %lld", name,
			     (long long)min, (long long)max, (long long)v);
		return false;
	}
	*out = v;
	return true;
}

static bool get_bool(struct sctx *c, const struct arl_node *n, const char *name, bool *out)
{
	if (!arl_node_is_bool(n, out)) {
		diag(c, n, "'%s' must be a boolean (true or false), got %s", name,
		     arl_node_describe(n));
		return false;
	}
	return true;
}

/* A duration in (0, max_ms]; 0 too when @zero_ok. */
static bool get_duration(struct sctx *c, const struct arl_node *n, const char *name, int64_t max_ms,
                         bool zero_ok, int64_t *out)
{
	int64_t ms;
	char buf[32];

	if (n->kind != ARL_NODE_SCALAR || arl_parse_duration(n->str, &ms) < 0) {
		diag(c, n, "'%s' must be a duration like \"90s\", \"5m\" or \"1h30m\", got %s%s%s",
		     name, n->kind == ARL_NODE_SCALAR ? "'" : "",
		     n->kind == ARL_NODE_SCALAR ? n->str : arl_node_describe(n),
		     n->kind == ARL_NODE_SCALAR ? "'" : "");
		return false;
	}
	if (ms <= 0 && !zero_ok) {
		diag(c, n, "'%s' must be longer than 0", name);
		return false;
	}
	if (ms > max_ms) {
		diag(c, n, "'%s' must be at most %s", name,
		     arl_fmt_duration(max_ms, buf, sizeof(buf)));
		return false;
	}
	*out = ms;
	return true;
}

static bool get_enum(struct sctx *c, const struct arl_node *n, const char *name,
                     const char *const *choices, int *out)
{
	char list[200] = "";
	const char *s;

	if (n->kind == ARL_NODE_SCALAR) {
		for (int i = 0; choices[i]; i++) {
			if (!strcmp(n->str, choices[i])) {
				*out = i;
				return true;
			}
		}
	}
	for (int i = 0; choices[i]; i++) {
		size_t o = strlen(list);

		snprintf(list + o, sizeof(list) - o, "%s'%s'", i ? ", " : "", choices[i]);
	}
	s = n->kind == ARL_NODE_SCALAR ? suggest(n->str, choices) : NULL;
	if (s)
		diag(c, n, "'%s' must be one of %s, got '%s'; did you mean '%s'?", name, list,
		     n->str, s);
	else if (n->kind == ARL_NODE_SCALAR)
		diag(c, n, "'%s' must be one of %s, got '%s'", name, list, n->str);
	else
		diag(c, n, "'%s' must be one of %s, got %s", name, list, arl_node_describe(n));
	return false;
}

/* A job's field, falling back to defaults. */
static const struct arl_node *field(struct sctx *c, const struct arl_node *job, const char *key)
{
	const struct arl_node *n = arl_node_get(job, key);

	return n ? n : arl_node_get(c->defaults, key);
}

static bool env_name_ok(const char *s)
{
	if (!*s || (*s >= '0' && *s <= '9'))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

/* Adds the string map @n (env or labels) to @m, later keys overriding. */
static void get_strmap(struct sctx *c, const struct arl_node *n, const char *name, bool is_env,
                       struct arl_strmap *m)
{
	if (!n || !want(c, n, ARL_NODE_MAP, name))
		return;
	for (size_t i = 0; i + 1 < n->nkids; i += 2) {
		const struct arl_node *k = n->kids[i], *v = n->kids[i + 1];
		char *val;

		if (k->kind != ARL_NODE_SCALAR || !k->len) {
			diag(c, k, "keys of '%s' must be non-empty strings", name);
			continue;
		}
		if (is_env && !env_name_ok(k->str)) {
			diag(c, k, "'%s' is not a valid environment variable name", k->str);
			continue;
		}
		if (v->kind != ARL_NODE_SCALAR || arl_node_is_null(v)) {
			diag(c, v, "'%s.%s' must be a string, got %s", name, k->str,
			     arl_node_describe(v));
			continue;
		}
		val = render(c, v, v->str);
		if (val) {
			arl_strmap_set(m, k->str, val);
			free(val);
		}
	}
}

static void parse_command(struct sctx *c, const struct arl_node *n, struct arl_step *s,
                          const struct arl_strmap *job_env)
{
	const struct arl_node *v;
	int64_t ms;

	v = arl_node_get(n, "command");
	if (!v) {
		diag(c, n, "missing required key 'command' in a Command step");
	} else if (want(c, v, ARL_NODE_SEQ, "command")) {
		if (!v->nkids)
			diag(c, v, "'command' must not be empty");
		s->argv = arl_xcalloc(v->nkids + 1, sizeof(*s->argv));
		for (size_t i = 0; i < v->nkids; i++) {
			char *a;

			if (!is_string(v->kids[i]) && v->kids[i]->kind == ARL_NODE_SCALAR) {
				/* As Kubernetes does: quoting keeps "5" from becoming a number. */
				diag(c, v->kids[i],
				     "'command' arguments must be strings, got %s (quote it: "
				     "\"%s\")",
				     arl_node_describe(v->kids[i]), v->kids[i]->str);
				continue;
			}
			a = get_str(c, v->kids[i], "command");

			if (a)
				s->argv[s->argc++] = a;
		}
	}
	if ((v = arl_node_get(n, "workDir")) && (s->work_dir = get_str(c, v, "workDir")) &&
	    s->work_dir[0] != '/')
		diag(c, v, "'workDir' must be an absolute path inside the sandbox, got '%s'",
		     s->work_dir);
	for (size_t i = 0; job_env && i < job_env->n; i++)
		arl_strmap_set(&s->env, job_env->v[i].key, job_env->v[i].val);
	get_strmap(c, arl_node_get(n, "env"), "env", true, &s->env);
	if ((v = arl_node_get(n, "timeout")) &&
	    get_duration(c, v, "timeout", INT64_MAX / 4, false, &ms))
		s->timeout_ms = ms;
	if ((v = arl_node_get(n, "metrics"))) {
		int m;

		if (get_enum(c, v, "metrics", metrics_names, &m))
			s->metrics_json = true;
	}
}

/*
 * A local pool refuses a FilePatch path outside /workspace in every attempt (class failed):
 * say so here, at the path. A run-time template ({{ attempt }}) leaves only the directories
 * before it to judge.
 */
static void check_local_path(struct sctx *c, const struct arl_node *n, const char *path,
                             bool deferred)
{
	size_t settled = strlen(path);
	const char *t;
	char *why;

	/* Materializing: `run --backend` may have changed the pool since; the backend judges. */
	if (c->again || !c->pool || c->pool->backend != ARL_BACKEND_LOCAL)
		return;
	if (deferred && (t = strstr(path, "{{"))) {
		settled = (size_t)(t - path);
		while (settled && path[settled - 1] != '/')
			settled--;
	}
	if (!(why = arl_filepatch_local_refusal(path, settled)))
		return;
	if (c->origin[0])
		diag(c, n, "%s (local pool '%s'; %s)", why, c->pool->name, c->origin);
	else
		diag(c, n, "%s (local pool '%s')", why, c->pool->name);
	free(why);
}

static void parse_filepatch(struct sctx *c, const struct arl_node *n, struct arl_step *s)
{
	const struct arl_node *v;

	v = arl_node_get(n, "path");
	if (!v) {
		diag(c, n, "missing required key 'path' in a FilePatch step");
	} else {
		bool deferred = c->deferred;

		c->deferred = false;
		if ((s->path = get_str(c, v, "path")) && s->path[0] != '/')
			diag(c, v, "'path' must be an absolute path inside the sandbox, got '%s'",
			     s->path);
		else if (s->path)
			check_local_path(c, v, s->path, c->deferred);
		c->deferred |= deferred;
	}
	if ((v = arl_node_get(n, "timeout")))
		get_duration(c, v, "timeout", INT64_MAX / 4, false, &s->timeout_ms);
	v = arl_node_get(n, "content");
	if (!v) {
		diag(c, n, "missing required key 'content' in a FilePatch step");
	} else if (v->kind == ARL_NODE_SCALAR && arl_node_is_null(v) && v->plain) {
		s->content = arl_xstrdup(""); /* "content:" alone: an empty file */
	} else if ((s->content = get_str(c, v, "content"))) {
		s->content_len = strlen(s->content);
	}
}

static void parse_step(struct sctx *c, const struct arl_node *n, size_t idx, struct arl_step *s,
                       const struct arl_strmap *job_env)
{
	const struct arl_node *v = arl_node_get(n, "type");
	const char *const *keys;
	const char *where;
	int type = -1;

	if (!v)
		diag(c, n, "missing required key 'type' in a step (Command or FilePatch)");
	else if (!get_enum(c, v, "type", step_types, &type))
		type = -1;
	s->type = type == 1 ? ARL_STEP_FILEPATCH : ARL_STEP_COMMAND;
	keys = type == 1 ? filepatch_keys : command_keys;
	where = type == 1 ? "a FilePatch step" : "a Command step";
	for (size_t i = 0; type >= 0 && i + 1 < n->nkids; i += 2) {
		const struct arl_node *k = n->kids[i];
		const char *const *other = type == 1 ? command_keys : filepatch_keys;

		if (k->kind != ARL_NODE_SCALAR)
			diag(c, k, "keys in a step must be strings");
		else if (!in_list(k->str, keys) && in_list(k->str, other))
			diag(c, k, "unknown key '%s' in %s ('%s' belongs to %s steps)", k->str,
			     where, k->str, type == 1 ? "Command" : "FilePatch");
		else if (!in_list(k->str, keys))
			unknown_key(c, k, where, keys);
	}
	if ((v = arl_node_get(n, "name")))
		s->name = get_str(c, v, "name");
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
static void parse_steps(struct sctx *c, const struct arl_node *n, const char *name, bool nonempty,
                        const struct arl_strmap *job_env, struct arl_steps *out)
{
	struct named_step *by_name;

	if (!want(c, n, ARL_NODE_SEQ, name))
		return;
	if (nonempty && n->nkids == 0)
		diag(c, n, "'%s' must not be empty", name);
	out->v = arl_xcalloc(n->nkids ? n->nkids : 1, sizeof(*out->v));
	by_name = arl_xcalloc(n->nkids ? n->nkids : 1, sizeof(*by_name));
	for (size_t i = 0; i < n->nkids; i++) {
		const struct arl_node *sn = n->kids[i];

		if (!want(c, sn, ARL_NODE_MAP, "a step"))
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

			diag(c, nn ? nn : by_name[k].at, "duplicate step name '%s' in '%s'",
			     by_name[k].name, name);
		}
	}
	free(by_name);
}

static void parse_callbacks(struct sctx *c, const struct arl_node *n, struct arl_job *j,
                            const struct arl_strmap *env)
{
	const struct arl_node *v;

	if (!want(c, n, ARL_NODE_MAP, "callbacks"))
		return;
	check_keys(c, n, "callbacks", callback_keys);
	if ((v = arl_node_get(n, "on_task_success")))
		parse_steps(c, v, "on_task_success", false, env, &j->on_success);
	if ((v = arl_node_get(n, "on_task_failure")))
		parse_steps(c, v, "on_task_failure", false, env, &j->on_failure);
	if ((v = arl_node_get(n, "on_task_complete")))
		parse_steps(c, v, "on_task_complete", false, env, &j->on_complete);
}

static bool name_ok(struct sctx *c, const struct arl_node *n, const char *name)
{
	if (!*name) {
		diag(c, n, "job name must not be empty%s%s", c->origin[0] ? " " : "", c->origin);
		return false;
	}
	if (strlen(name) > MAX_NAME_LEN) {
		diag(c, n, "job name '%.40s...' is longer than %d characters", name, MAX_NAME_LEN);
		return false;
	}
	for (const char *p = name; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '/') {
			diag(c, n, "job name '%s' must not contain '/' or control characters",
			     name);
			return false;
		}
	}
	return true;
}

static void parse_pool_ref(struct sctx *c, const struct arl_node *jn, const struct arl_node *v,
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
			c->bad = true; /* reported once at 'pools' */
			return;
		}
		if (c->f->npools > 1)
			diag(c, jn,
			     "job '%s' names no pool and the file defines %zu; set 'pool' "
			     "or 'defaults.pool'",
			     j->name ? j->name : "?", c->f->npools);
		return;
	}
	name = get_str(c, v, "pool");
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
	if (suggest(name, names))
		diag(c, v, "unknown pool '%s'; did you mean '%s'?", name, suggest(name, names));
	else
		diag(c, v, "unknown pool '%s' (defined: %s)", name, c->f->npools ? list : "none");
	free(name);
}

/* The name a slot refers to, and (if @loc) where it was written. */
static const char *slot_name(const struct sctx *c, uint32_t ref, struct arl_loc *loc)
{
	const struct arl_job *j;

	if (ref & REJECTED) {
		const struct rejected_name *r = &c->rejected[(ref & ~REJECTED) - 1];

		if (loc)
			*loc = r->loc;
		return r->name;
	}
	j = &c->f->jobs[ref - 1];
	if (loc)
		*loc = arl_node_get(j->node, "name")->loc;
	return j->name;
}

/* The open-addressing slot holding @name, or the empty slot where it belongs. */
static size_t name_slot(const struct sctx *c, uint32_t hash, const char *name)
{
	size_t mask = c->nnames_cap - 1, i = hash & mask;

	while (c->names[i].ref && (c->names[i].hash != hash ||
	                           (name && strcmp(slot_name(c, c->names[i].ref, NULL), name))))
		i = (i + 1) & mask;
	return i;
}

/* Job names must be unique after expansion: dataset fan-out makes this a hash, not a scan. */
static void check_unique(struct sctx *c, const struct arl_node *at, const char *name)
{
	uint32_t hash = (uint32_t)arl_fnv1a(name);
	struct arl_loc first;
	size_t i;

	if (c->nnames * 2 >= c->nnames_cap) {
		struct name_slot *old = c->names;
		size_t oldcap = c->nnames_cap;

		c->nnames_cap = oldcap ? oldcap * 2 : 64;
		c->names = arl_xcalloc(c->nnames_cap, sizeof(*c->names));
		/* Entries are distinct: only an empty slot is looked for, no name compared. */
		for (size_t k = 0; k < oldcap; k++)
			if (old[k].ref)
				c->names[name_slot(c, old[k].hash, NULL)] = old[k];
		free(old);
	}
	i = name_slot(c, hash, name);
	if (c->names[i].ref) {
		slot_name(c, c->names[i].ref, &first);
		diag(c, at, "duplicate job name '%s' (first at %u:%u)%s%s", name, first.line,
		     first.col, c->origin[0] ? "; " : "", c->origin);
		return;
	}
	/* The job will be f->jobs[njobs] if it is valid; expand_one() settles it. */
	c->names[i] = (struct name_slot){hash, (uint32_t)c->f->njobs + 1};
	c->pending = i + 1;
	c->nnames++;
}

/* The job whose name was just checked is rejected: its slot keeps a copy of the name. */
static void reject_name(struct sctx *c, const char *name, struct arl_loc loc)
{
	if (!c->pending)
		return;
	ARL_GROW(c->rejected, c->caprejected, c->nrejected + 1);
	c->rejected[c->nrejected].name = arl_xstrdup(name);
	c->rejected[c->nrejected++].loc = loc;
	c->names[c->pending - 1].ref = REJECTED | (uint32_t)c->nrejected;
	c->pending = 0;
}

static void parse_pool(struct sctx *c, const struct arl_node *k, const struct arl_node *n,
                       struct arl_pool *p)
{
	const struct arl_node *v;
	char where[120], scope[120];
	int e;
	int64_t i;

	p->name = arl_xstrdup(k->str);
	p->loc = k->loc;
	p->replicas = 1;
	/* Nothing is bound here: without this, "{{ item.x }}" blamed a missing foreach item. */
	snprintf(scope, sizeof(scope), "pool '%.60s', which all its jobs share", k->str);
	c->t.no_vars = scope;
	if (!arl_is_dns_label(k->str))
		diag(c, k,
		     "pool name '%s' is not a DNS label (lowercase letters, digits and '-', "
		     "at most 63)",
		     k->str);
	if (!want(c, n, ARL_NODE_MAP, "pool"))
		goto out;
	snprintf(where, sizeof(where), "pool '%s'", k->str);
	check_keys(c, n, where, pool_keys);
	if ((v = arl_node_get(n, "backend")) && get_enum(c, v, "backend", backend_names, &e))
		p->backend = (enum arl_backend_kind)e;
	if ((v = arl_node_get(n, "replicas")) && get_int(c, v, "replicas", 1, INT32_MAX, &i)) {
		if (i > 10000)
			diag(c, v, "'replicas' must be between 1 and 10000, got %lld",
			     (long long)i);
		else
			p->replicas = (int)i;
	}
	if ((v = arl_node_get(n, "isolation")) && get_enum(c, v, "isolation", isolation_names, &e))
		p->isolation = (enum arl_isolation)e;
	if ((v = arl_node_get(n, "network")))
		get_bool(c, v, "network", &p->network);
	if ((v = arl_node_get(n, "workspace")) && (p->workspace = get_str(c, v, "workspace"))) {
		struct stat st;
		char *real;
		char *abs = p->workspace[0] == '/' ? arl_xstrdup(p->workspace)
		                                   : arl_xasprintf("%s/%s", c->dir, p->workspace);

		if (stat(abs, &st) < 0 || !S_ISDIR(st.st_mode))
			diag(c, v, "workspace directory '%s' does not exist", p->workspace);
		/* The backend wants it absolute; a relatively named job file gives a relative one. */
		else if ((real = realpath(abs, NULL))) {
			free(abs);
			abs = real;
		}
		free(p->workspace);
		p->workspace = abs;
	}
	if ((v = arl_node_get(n, "namespace")) && (p->namespace = get_str(c, v, "namespace")) &&
	    !arl_is_dns_label(p->namespace))
		diag(c, v,
		     "namespace '%s' is not a DNS label (lowercase letters, digits and '-', "
		     "at most 63)",
		     p->namespace);
	if ((v = arl_node_get(n, "create")) && want(c, v, ARL_NODE_MAP, "create")) {
		const struct arl_node *w;

		p->create = true;
		check_keys(c, v, "'create'", create_keys);
		if (!(w = arl_node_get(v, "image")))
			diag(c, v, "missing required key 'image' in 'create'");
		else
			p->image = get_str(c, w, "image");
		if ((w = arl_node_get(v, "sidecarImage")))
			p->sidecar_image = get_str(c, w, "sidecarImage");
		if ((w = arl_node_get(v, "testbedPath")))
			p->testbed_path = get_str(c, w, "testbedPath");
	}
	/* Fields of the other backend are harmless but probably a mistake. */
	for (size_t j = 0; j + 1 < n->nkids; j += 2) {
		const char *key = n->kids[j]->str;
		bool local_only = key && (!strcmp(key, "isolation") || !strcmp(key, "network") ||
		                          !strcmp(key, "workspace"));
		bool k8s_only = key && (!strcmp(key, "namespace") || !strcmp(key, "create"));

		if ((p->backend == ARL_BACKEND_KUBERNETES && local_only) ||
		    (p->backend == ARL_BACKEND_LOCAL && k8s_only))
			warn(c, n->kids[j], "'%s' has no effect on a %s pool", key,
			     backend_names[p->backend]);
	}
out:
	c->t.no_vars = NULL;
}

/* A YAML node as JSON: plain scalars keep their YAML type, quoted ones are strings. */
static cJSON *node_json(const struct arl_node *n)
{
	cJSON *v;
	int64_t i;
	bool b;

	switch (n->kind) {
	case ARL_NODE_MAP:
		v = cJSON_CreateObject();
		for (size_t k = 0; k + 1 < n->nkids; k += 2)
			cJSON_AddItemToObject(v, n->kids[k]->str ? n->kids[k]->str : "",
			                      node_json(n->kids[k + 1]));
		return v;
	case ARL_NODE_SEQ:
		v = cJSON_CreateArray();
		for (size_t k = 0; k < n->nkids; k++)
			cJSON_AddItemToArray(v, node_json(n->kids[k]));
		return v;
	case ARL_NODE_SCALAR:
		break;
	}
	if (arl_node_is_null(n))
		return cJSON_CreateNull();
	if (arl_node_is_bool(n, &b))
		return cJSON_CreateBool(b);
	if (n->plain && arl_parse_i64(n->str, INT64_MIN, INT64_MAX, &i) == 0)
		return cJSON_CreateNumber((double)i);
	if (arl_node_is_float(n))
		return cJSON_CreateNumber(strtod(n->str, NULL));
	return cJSON_CreateString(n->str);
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcmp(s + n - m, suffix);
}

/* Items of a foreach; origin[i] describes item i for messages. */
struct items {
	cJSON **v;
	size_t n;
	struct arl_dataset *ds; /* the records when loaded from a file */
	cJSON *owned;           /* an array owning v otherwise */
	enum { FROM_FILE, FROM_ITEMS, FROM_MATRIX } from;
};

static void items_release(struct items *it)
{
	if (it->ds) {
		arl_dataset_release(it->ds);
		free(it->ds);
	}
	free(it->v);
	cJSON_Delete(it->owned);
	memset(it, 0, sizeof(*it));
}

static void describe_item(struct sctx *c, const struct items *it, size_t i)
{
	if (it->from == FROM_FILE)
		snprintf(c->origin, sizeof(c->origin), "record %zu of '%s', line %u", i + 1,
		         it->ds->path, it->ds->lines[i]);
	else if (it->from == FROM_ITEMS)
		snprintf(c->origin, sizeof(c->origin), "item %zu of 'foreach.items'", i + 1);
	else
		snprintf(c->origin, sizeof(c->origin), "matrix combination %zu", i + 1);
}

static bool load_matrix(struct sctx *c, const struct arl_node *m, struct items *it)
{
	size_t total = 1, nkeys = m->nkids / 2;

	if (!want(c, m, ARL_NODE_MAP, "matrix"))
		return false;
	if (!nkeys) {
		diag(c, m, "'matrix' must not be empty");
		return false;
	}
	for (size_t k = 0; k < nkeys; k++) {
		const struct arl_node *vals = m->kids[2 * k + 1];

		if (!want(c, vals, ARL_NODE_SEQ,
		          m->kids[2 * k]->str ? m->kids[2 * k]->str : "matrix"))
			return false;
		if (!vals->nkids) {
			diag(c, vals, "matrix axis '%s' must not be empty", m->kids[2 * k]->str);
			return false;
		}
		total *= vals->nkids;
		if (total > MAX_JOBS_PER_FILE) {
			diag(c, m, "matrix expands to more than %d jobs", MAX_JOBS_PER_FILE);
			return false;
		}
	}
	it->from = FROM_MATRIX;
	it->owned = cJSON_CreateArray();
	it->v = arl_xcalloc(total, sizeof(*it->v));
	for (size_t i = 0; i < total; i++) {
		cJSON *obj = cJSON_CreateObject();
		size_t rest = i;

		cJSON_AddItemToArray(it->owned, obj);
		/* The last axis varies fastest, as nested loops written in file order would. */
		for (size_t k = nkeys; k-- > 0;) {
			const struct arl_node *vals = m->kids[2 * k + 1];

			cJSON_AddItemToObject(obj, m->kids[2 * k]->str,
			                      node_json(vals->kids[rest % vals->nkids]));
			rest /= vals->nkids;
		}
		it->v[it->n++] = obj;
	}
	return true;
}

static bool load_items(struct sctx *c, const struct arl_node *fe, struct items *it)
{
	const struct arl_node *file, *items, *matrix;
	int sources;

	memset(it, 0, sizeof(*it));
	if (!want(c, fe, ARL_NODE_MAP, "foreach"))
		return false;
	check_keys(c, fe, "'foreach'", foreach_keys);
	file = arl_node_get(fe, "file");
	items = arl_node_get(fe, "items");
	matrix = arl_node_get(fe, "matrix");
	sources = !!file + !!items + !!matrix;
	if (sources != 1) {
		diag(c, fe, "'foreach' needs exactly one of 'file', 'items' or 'matrix'");
		return false;
	}
	if (file) {
		char *rel, *fs;
		bool ok;

		if (!(rel = get_str(c, file, "file")))
			return false;
		fs = rel[0] == '/' ? arl_xstrdup(rel) : arl_xasprintf("%s/%s", c->dir, rel);
		it->from = FROM_FILE;
		if (!has_suffix(rel, ".jsonl") && !has_suffix(rel, ".json") &&
		    !has_suffix(rel, ".csv")) {
			diag(c, file, "dataset '%s' must be .jsonl, .json or .csv", rel);
			ok = false;
		} else {
			it->ds = arl_xmalloc(sizeof(*it->ds));
			ok = arl_dataset_load(it->ds, strcmp(c->dir, ".") ? fs : rel, fs, file->loc,
			                      c->d) == 0;
		}
		free(rel);
		free(fs);
		if (!ok) {
			c->bad = true;
			return false;
		}
		it->n = it->ds->n;
		if (!it->n) {
			diag(c, file, "dataset '%s' has no records", it->ds->path);
			return false;
		}
		return true;
	}
	if (items) {
		if (!want(c, items, ARL_NODE_SEQ, "items"))
			return false;
		if (!items->nkids) {
			diag(c, items, "'items' must not be empty");
			return false;
		}
		for (size_t i = 0; i < items->nkids; i++)
			if (items->kids[i]->kind != ARL_NODE_MAP)
				return diag(
				           c, items->kids[i],
				           "each item of 'foreach.items' must be a mapping, got %s",
				           arl_node_describe(items->kids[i])),
				       false;
		it->from = FROM_ITEMS;
		it->owned = node_json(items);
		it->v = arl_xcalloc(items->nkids ? items->nkids : 1, sizeof(*it->v));
		for (cJSON *e = it->owned->child; e; e = e->next)
			it->v[it->n++] = e;
		return true;
	}
	return load_matrix(c, matrix, it);
}

/* One job from node @jn with @item bound into *out; false (and *out empty) on errors. */
static bool expand_one(struct sctx *c, const struct arl_node *jn, const cJSON *item,
                       struct arl_job *out)
{
	struct arl_job j = {0};
	const struct arl_node *v, *name_node = arl_node_get(jn, "name");
	struct arl_strmap env = {0};
	int64_t n;
	bool name_deferred, bad;

	c->bad = false;
	c->deferred = false;
	c->pending = 0;
	c->t.item = item;
	c->t.job_name = NULL;
	j.timeout_ms = ARL_DEFAULT_TIMEOUT_MS;
	j.prepare_timeout_ms = ARL_DEFAULT_PREPARE_TIMEOUT_MS;
	j.backoff_ms = ARL_DEFAULT_BACKOFF_MS;
	j.retry_on = ARL_RETRY_BIT(ARL_CLASS_INFRA) | ARL_RETRY_BIT(ARL_CLASS_TIMEOUT);
	if (!name_node) {
		diag(c, jn, "missing required key 'name' in job");
	} else if ((j.name = get_str(c, name_node, "name"))) {
		name_deferred = c->deferred;
		if (name_deferred) {
			diag(c, name_node,
			     "job names cannot use run.* or attempt: a name must be "
			     "stable across runs");
		} else if (name_ok(c, name_node, j.name) && !c->again) {
			check_unique(c, name_node, j.name);
		}
	}
	c->t.job_name = j.name;
	bad = c->bad;
	c->bad = false;
	parse_pool_ref(c, jn, field(c, jn, "pool"), &j);
	c->pool = c->bad ? NULL : &c->f->pools[j.pool];
	c->bad |= bad;
	if ((v = field(c, jn, "timeout")))
		get_duration(c, v, "timeout", INT64_MAX / 4, false, &j.timeout_ms);
	if ((v = field(c, jn, "prepareTimeout")))
		get_duration(c, v, "prepareTimeout", INT64_MAX / 4, false, &j.prepare_timeout_ms);
	if ((v = field(c, jn, "retries")) && get_int(c, v, "retries", 0, ARL_MAX_RETRIES, &n))
		j.retries = (int)n;
	if ((v = field(c, jn, "retryOn")) && want(c, v, ARL_NODE_SEQ, "retryOn")) {
		j.retry_on = 0;
		for (size_t i = 0; i < v->nkids; i++) {
			int e;

			if (get_enum(c, v->kids[i], "retryOn", retry_names, &e))
				j.retry_on |= ARL_RETRY_BIT(e == 0   ? ARL_CLASS_FAILED
				                            : e == 1 ? ARL_CLASS_TIMEOUT
				                                     : ARL_CLASS_INFRA);
		}
	}
	if ((v = field(c, jn, "backoff")))
		get_duration(c, v, "backoff", ARL_MAX_BACKOFF_MS, true, &j.backoff_ms);
	if ((v = field(c, jn, "keepAlive")))
		get_bool(c, v, "keepAlive", &j.keep_alive);
	/* env and labels merge key by key: the job's entries over the defaults'. */
	get_strmap(c, arl_node_get(c->defaults, "env"), "env", true, &env);
	get_strmap(c, arl_node_get(jn, "env"), "env", true, &env);
	get_strmap(c, arl_node_get(c->defaults, "labels"), "labels", false, &j.labels);
	get_strmap(c, arl_node_get(jn, "labels"), "labels", false, &j.labels);
	if (!(v = field(c, jn, "steps")))
		diag(c, jn, "missing required key 'steps' in job");
	else
		parse_steps(c, v, "steps", true, &env, &j.steps);
	if ((v = field(c, jn, "callbacks")))
		parse_callbacks(c, v, &j, &env);
	arl_strmap_release(&env);
	if (c->bad) {
		if (j.name)
			reject_name(c, j.name, name_node->loc);
		arl_job_release(&j);
		return false;
	}
	if (item) {
		char *s = cJSON_PrintUnformatted(item);

		j.item = arl_xstrdup(s);
		cJSON_free(s);
	}
	j.runtime_templates = c->deferred;
	j.key = arl_xasprintf("%s/%s", c->f->stem, j.name);
	j.node = jn;
	*out = j;
	return true;
}

/*
 * Moves name, key and labels into one block (see struct arl_job.packed): one allocation
 * instead of two plus three per label, whose malloc headers and rounding would add up to
 * more than the strings for 100,000 jobs. The name is the tail of the key.
 */
static void pack_job(struct arl_job *j)
{
	size_t klen = strlen(j->key) + 1, nlen = strlen(j->name), nl = j->labels.n;
	size_t kvoff = (klen + _Alignof(struct arl_kv) - 1) & ~(_Alignof(struct arl_kv) - 1);
	size_t size = kvoff + nl * sizeof(struct arl_kv), o;
	struct arl_kv *kv;
	char *block;

	for (size_t i = 0; i < nl; i++)
		size += strlen(j->labels.v[i].key) + strlen(j->labels.v[i].val) + 2;
	block = arl_xmalloc(size);
	memcpy(block, j->key, klen);
	kv = (struct arl_kv *)(void *)(block + kvoff);
	o = kvoff + nl * sizeof(*kv);
	for (size_t i = 0; i < nl; i++) {
		size_t kl = strlen(j->labels.v[i].key) + 1, vl = strlen(j->labels.v[i].val) + 1;

		kv[i].key = memcpy(block + o, j->labels.v[i].key, kl);
		kv[i].val = memcpy(block + o + kl, j->labels.v[i].val, vl);
		o += kl + vl;
	}
	arl_strmap_release(&j->labels);
	free(j->name);
	free(j->key);
	j->key = block;
	j->name = block + klen - 1 - nlen;
	j->labels.v = nl ? kv : NULL;
	j->labels.n = nl;
	j->packed = true;
}

/* Appends a validated job; a foreach job keeps only what the run needs before it starts. */
static void add_job(struct sctx *c, struct arl_job *j)
{
	struct arl_jobfile *f = c->f;

	arl_job_spec_hash(j, &f->pools[j->pool], j->spec_hash);
	if (j->item) {
		arl_steps_release(&j->steps);
		arl_steps_release(&j->on_success);
		arl_steps_release(&j->on_failure);
		arl_steps_release(&j->on_complete);
		j->lazy = true;
	}
	if (j->dataset) { /* hashed: from now on the record is read from the file */
		free(j->item);
		j->item = NULL;
	}
	pack_job(j);
	ARL_GROW(f->jobs, f->capjobs, f->njobs + 1);
	f->jobs[f->njobs++] = *j;
	c->pending = 0;
}

/* Jobs refer to the records of a dataset: the file keeps it, minus what loading used. */
static void keep_dataset(struct sctx *c, struct items *it)
{
	struct arl_jobfile *f = c->f;

	if (!it->ds || !it->ds->recs || !f->njobs || f->jobs[f->njobs - 1].dataset != it->ds)
		return;
	/* Past a few, each read opens the file: descriptors are shared with the sandboxes. */
	arl_dataset_trim(it->ds, f->ndatasets < MAX_OPEN_DATASETS);
	f->datasets = arl_xrealloc(f->datasets, (f->ndatasets + 1) * sizeof(*f->datasets));
	f->datasets[f->ndatasets++] = it->ds;
	it->ds = NULL;
}

static void parse_job(struct sctx *c, const struct arl_node *jn)
{
	const struct arl_node *fe;
	struct items it;

	if (!want(c, jn, ARL_NODE_MAP, "each job"))
		return;
	check_keys(c, jn, "job", job_keys);
	fe = arl_node_get(jn, "foreach");
	if (!fe) {
		struct arl_job j;

		c->origin[0] = '\0';
		if (expand_one(c, jn, NULL, &j))
			add_job(c, &j);
		return;
	}
	if (!load_items(c, fe, &it)) {
		items_release(&it);
		return;
	}
	/* Room for every item at once: doubling would leave up to half the array unused. */
	if (c->f->capjobs < c->f->njobs + it.n && c->f->njobs + it.n <= MAX_JOBS_PER_FILE) {
		c->f->capjobs = c->f->njobs + it.n;
		c->f->jobs = arl_xrealloc(c->f->jobs, c->f->capjobs * sizeof(*c->f->jobs));
	}
	for (size_t i = 0; i < it.n; i++) {
		if (c->f->njobs >= MAX_JOBS_PER_FILE) {
			diag(c, fe, "more than %d jobs in one file", MAX_JOBS_PER_FILE);
			break;
		}
		struct arl_job j;
		struct arl_err err = ARL_ERR_INIT;
		/* A dataset record is parsed only now and dropped after: see dataset.h. */
		cJSON *rec = it.from == FROM_FILE ? arl_dataset_take(it.ds, i, &err) : it.v[i];

		if (it.from == FROM_FILE && !cJSON_IsObject(rec)) {
			struct arl_loc loc = {it.ds->path, it.ds->lines[i], 1};

			if (rec)
				arl_diags_add(c->d, ARL_SEV_ERROR, loc, 1,
				              "record %zu must be a JSON object", i + 1);
			else
				arl_diags_add(c->d, ARL_SEV_ERROR, loc, 1, "%s", err.msg);
			cJSON_Delete(rec);
			break;
		}
		describe_item(c, &it, i);
		if (expand_one(c, jn, rec, &j)) {
			if (it.ds && it.ds->recs) {
				j.dataset = it.ds;
				j.record = (uint32_t)i;
			}
			add_job(c, &j);
		}
		if (it.from == FROM_FILE)
			cJSON_Delete(rec);
	}
	c->origin[0] = '\0';
	keep_dataset(c, &it);
	items_release(&it);
}

static char *file_stem(const char *path)
{
	const char *base = strrchr(path, '/');
	size_t n;

	base = base ? base + 1 : path;
	n = strlen(base);
	if (n > 5 && !strcmp(base + n - 5, ".yaml"))
		n -= 5;
	else if (n > 4 && !strcmp(base + n - 4, ".yml"))
		n -= 4;
	return arl_xstrndup(base, n);
}

static void parse_top(struct sctx *c, const struct arl_node *root)
{
	const struct arl_node *v, *pools, *jobs;
	int64_t n;

	if (!root || root->kind != ARL_NODE_MAP) {
		diag(c, root,
		     "a job file must be a mapping with 'version', 'pools' and 'jobs', got %s",
		     root ? arl_node_describe(root) : "an empty document");
		return;
	}
	check_keys(c, root, "the job file", top_keys);
	if (!(v = arl_node_get(root, "version")))
		diag(c, root, "missing required key 'version' (add 'version: 1')");
	else if (v->kind != ARL_NODE_SCALAR)
		diag(c, v, "'version' must be 1, got %s", arl_node_describe(v));
	else if (!v->plain || strcmp(v->str, "1"))
		diag(c, v, "'version' must be 1 (a number), got %s'%s'",
		     v->plain ? "" : "the string ", v->str);
	if ((v = arl_node_get(root, "name"))) {
		c->t.no_vars = "the file's 'name'";
		c->f->name = get_str(c, v, "name");
		c->t.no_vars = NULL;
	}
	if (!c->f->name)
		c->f->name = arl_xstrdup(c->f->stem);
	if ((v = arl_node_get(root, "concurrency")) &&
	    get_int(c, v, "concurrency", 1, INT32_MAX, &n))
		c->f->concurrency = (int)n;
	pools = arl_node_get(root, "pools");
	if (!pools) {
		diag(c, root, "missing required key 'pools'");
	} else if (want(c, pools, ARL_NODE_MAP, "pools")) {
		if (!pools->nkids)
			diag(c, pools, "'pools' must not be empty");
		c->f->pools = arl_xcalloc(pools->nkids / 2 + 1, sizeof(*c->f->pools));
		for (size_t i = 0; i + 1 < pools->nkids; i += 2) {
			if (pools->kids[i]->kind != ARL_NODE_SCALAR) {
				diag(c, pools->kids[i], "pool names must be strings");
				continue;
			}
			parse_pool(c, pools->kids[i], pools->kids[i + 1],
			           &c->f->pools[c->f->npools++]);
		}
	}
	if ((v = arl_node_get(root, "defaults")) && want(c, v, ARL_NODE_MAP, "defaults")) {
		c->defaults = v;
		check_keys(c, v, "defaults", defaults_keys);
	}
	jobs = arl_node_get(root, "jobs");
	if (!jobs) {
		diag(c, root, "missing required key 'jobs'");
	} else if (want(c, jobs, ARL_NODE_SEQ, "jobs")) {
		if (!jobs->nkids)
			diag(c, jobs, "'jobs' must not be empty");
		for (size_t i = 0; i < jobs->nkids; i++)
			parse_job(c, jobs->kids[i]);
	}
}

int arl_jobfile_parse(const char *path, const char *buf, size_t len, struct arl_jobfile **out,
                      struct arl_diags *diags)
{
	struct arl_doc *doc = NULL;
	struct sctx c = {.d = diags, .path = path};
	size_t before = diags->errors;
	char *tmp;
	int ret = -1;

	if (arl_yaml_load_mem(path, buf, len, &doc, diags) < 0)
		return -1;
	c.path = doc->path;
	tmp = arl_xstrdup(path);
	c.dir = arl_xstrdup(dirname(tmp));
	free(tmp);
	c.f = arl_xcalloc(1, sizeof(*c.f));
	c.f->path = arl_xstrdup(path);
	c.f->stem = file_stem(path);
	parse_top(&c, doc->root);
	if (diags->errors == before) {
		if (c.f->njobs < c.f->capjobs) { /* no slack for the whole run */
			c.f->capjobs = c.f->njobs ? c.f->njobs : 1;
			c.f->jobs = arl_xrealloc(c.f->jobs, c.f->capjobs * sizeof(*c.f->jobs));
		}
		/* Lazy jobs expand again from the document: it lives as long as the file. */
		c.f->doc = doc;
		c.f->defaults = c.defaults;
		c.f->dir = c.dir;
		*out = c.f;
		c.f = NULL;
		doc = NULL;
		c.dir = NULL;
		ret = 0;
	}
	arl_jobfile_free(c.f);
	for (size_t i = 0; i < c.nrejected; i++)
		free(c.rejected[i].name);
	free(c.rejected);
	free(c.names);
	free(c.dir);
	arl_doc_free(doc);
	return ret;
}

int arl_job_materialize(const struct arl_jobfile *f, const struct arl_job *j, struct arl_job *out,
                        struct arl_err *err)
{
	struct arl_diags diags = ARL_DIAGS_INIT;
	struct sctx c = {.d = &diags,
	                 .path = f->path,
	                 .dir = f->dir,
	                 .f = (struct arl_jobfile *)f,
	                 .defaults = f->defaults,
	                 .again = true};
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
	ok = expand_one(&c, j->node, item, out);
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
