/*
 * DESIGN: validation walks the YAML node tree once per expanded job. A job with a foreach
 * is parsed again for every item, with the item bound for templates; structural errors are
 * identical for every item and arl_diags drops the repeats, while template errors name the
 * record. Fields missing in a job fall back to the `defaults` node, so defaults are checked
 * with the same code and point at their own lines. Key tables double as the unknown-key check
 * and the did-you-mean vocabulary.
 */
#include "jobfile/schema.h"

#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "jobfile/dataset.h"
#include "jobfile/expand.h"
#include "jobfile/fields.h"
#include "jobfile/pool_kind.h"
#include "jobfile/pool_parse.h"
#include "result.h"
#include "jobfile/template.h"
#include "util.h"
#include "jobfile/yaml_load.h"
#include "banned.h"

#define MAX_JOBS_PER_FILE 5000000
#define MAX_NAME_LEN      200
#define MAX_OPEN_DATASETS 16

static const char *const top_keys[] = {"version", "name",  "params",   "secrets", "concurrency",
                                       "budget",  "pools", "defaults", "jobs",    NULL};
static const char *const budget_keys[] = {"metric", "max", NULL};
static const char *const job_keys[] = {
    "name",    "pool",      "timeout",      "prepareTimeout", "retries", "retryOn",
    "backoff", "keepAlive", "env",          "labels",         "steps",   "callbacks",
    "foreach", "artifacts", "stallTimeout", "image",          NULL};
static const char *const defaults_keys[] = {
    "pool", "timeout", "prepareTimeout", "retries",   "retryOn",   "backoff",      "keepAlive",
    "env",  "labels",  "steps",          "callbacks", "artifacts", "stallTimeout", "image",
    NULL};
static const char *const foreach_keys[] = {"file", "items", "matrix", NULL};

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
	struct arl_fields r; /* reads the file's fields; r.t is t, r.origin is origin */
	char *dir;
	struct arl_jobfile *f;
	struct arl_tmpl_ctx t;
	char origin[200]; /* which item is being expanded, for template errors; "" if none */
	struct name_slot *names;
	size_t nnames_cap, nnames;
	size_t pending; /* 1 + slot of the name of the job being expanded; 0: none */
	struct rejected_name *rejected;
	size_t nrejected, caprejected;
	const struct arl_param_set *sets; /* --set: override the file's params */
	size_t nsets;
};

/*
 * A pool may refuse a FilePatch path in every attempt (class failed; a local pool one outside
 * /workspace): say so here, at the path. A run-time template ({{ attempt }}) leaves only the
 * directories before it to judge.
 */
static bool check_local_path(void *arg, const struct arl_node *n, const struct arl_pool *pool,
                             const char *path, bool deferred)
{
	struct sctx *c = arg;
	size_t settled = strlen(path);
	const char *t;
	char *why;

	if (!pool || !pool->kind || !pool->kind->filepatch_refusal)
		return true;
	if (deferred && (t = strstr(path, "{{"))) {
		settled = (size_t)(t - path);
		while (settled && path[settled - 1] != '/')
			settled--;
	}
	if (!(why = pool->kind->filepatch_refusal(pool->config, path, settled)))
		return true;
	if (c->origin[0])
		arl_field_diag(&c->r, n, "%s (%s pool '%s'; %s)", why, pool->kind->name, pool->name,
		               c->origin);
	else
		arl_field_diag(&c->r, n, "%s (%s pool '%s')", why, pool->kind->name, pool->name);
	free(why);
	return false;
}

static bool name_ok(struct sctx *c, const struct arl_node *n, const char *name)
{
	if (!*name) {
		arl_field_diag(&c->r, n, "job name must not be empty%s%s", c->origin[0] ? " " : "",
		               c->origin);
		return false;
	}
	if (strlen(name) > MAX_NAME_LEN) {
		arl_field_diag(&c->r, n, "job name '%.40s...' is longer than %d characters", name,
		               MAX_NAME_LEN);
		return false;
	}
	for (const char *p = name; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '/') {
			arl_field_diag(&c->r, n,
			               "job name '%s' must not contain '/' or control characters",
			               name);
			return false;
		}
	}
	return true;
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
static bool check_unique(struct sctx *c, const struct arl_node *at, const char *name)
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
		arl_field_diag(&c->r, at, "duplicate job name '%s' (first at %u:%u)%s%s", name,
		               first.line, first.col, c->origin[0] ? "; " : "", c->origin);
		return false;
	}
	/* The job will be f->jobs[njobs] if it is valid; expand() settles it. */
	c->names[i] = (struct name_slot){hash, (uint32_t)c->f->njobs + 1};
	c->pending = i + 1;
	c->nnames++;
	return true;
}

static bool check_name(void *arg, const struct arl_node *at, const char *name)
{
	struct sctx *c = arg;

	return name_ok(c, at, name) && check_unique(c, at, name);
}

/* The job whose name was just checked is rejected: its slot keeps a copy of the name. */
static void reject_name(void *arg, const char *name, struct arl_loc loc)
{
	struct sctx *c = arg;

	if (!c->pending)
		return;
	ARL_GROW(c->rejected, c->caprejected, c->nrejected + 1);
	c->rejected[c->nrejected].name = arl_xstrdup(name);
	c->rejected[c->nrejected++].loc = loc;
	c->names[c->pending - 1].ref = REJECTED | (uint32_t)c->nrejected;
	c->pending = 0;
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

	if (!arl_field_want(&c->r, m, ARL_NODE_MAP, "matrix"))
		return false;
	if (!nkeys) {
		arl_field_diag(&c->r, m, "'matrix' must not be empty");
		return false;
	}
	for (size_t k = 0; k < nkeys; k++) {
		const struct arl_node *vals = m->kids[2 * k + 1];

		if (!arl_field_want(&c->r, vals, ARL_NODE_SEQ,
		                    m->kids[2 * k]->str ? m->kids[2 * k]->str : "matrix"))
			return false;
		if (!vals->nkids) {
			arl_field_diag(&c->r, vals, "matrix axis '%s' must not be empty",
			               m->kids[2 * k]->str);
			return false;
		}
		total *= vals->nkids;
		if (total > MAX_JOBS_PER_FILE) {
			arl_field_diag(&c->r, m, "matrix expands to more than %d jobs",
			               MAX_JOBS_PER_FILE);
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
	if (!arl_field_want(&c->r, fe, ARL_NODE_MAP, "foreach"))
		return false;
	arl_field_check_keys(&c->r, fe, "'foreach'", foreach_keys);
	file = arl_node_get(fe, "file");
	items = arl_node_get(fe, "items");
	matrix = arl_node_get(fe, "matrix");
	sources = !!file + !!items + !!matrix;
	if (sources != 1) {
		arl_field_diag(&c->r, fe,
		               "'foreach' needs exactly one of 'file', 'items' or 'matrix'");
		return false;
	}
	if (file) {
		char *rel, *fs;
		bool ok;

		if (!(rel = arl_field_str(&c->r, file, "file")))
			return false;
		fs = rel[0] == '/' ? arl_xstrdup(rel) : arl_xasprintf("%s/%s", c->dir, rel);
		it->from = FROM_FILE;
		if (!has_suffix(rel, ".jsonl") && !has_suffix(rel, ".json") &&
		    !has_suffix(rel, ".csv")) {
			arl_field_diag(&c->r, file, "dataset '%s' must be .jsonl, .json or .csv",
			               rel);
			ok = false;
		} else {
			it->ds = arl_xmalloc(sizeof(*it->ds));
			ok = arl_dataset_load(it->ds, strcmp(c->dir, ".") ? fs : rel, fs, file->loc,
			                      c->r.d) == 0;
		}
		free(rel);
		free(fs);
		if (!ok) {
			c->r.bad = true;
			return false;
		}
		it->n = it->ds->n;
		if (!it->n) {
			arl_field_diag(&c->r, file, "dataset '%s' has no records", it->ds->path);
			return false;
		}
		return true;
	}
	if (items) {
		if (!arl_field_want(&c->r, items, ARL_NODE_SEQ, "items"))
			return false;
		if (!items->nkids) {
			arl_field_diag(&c->r, items, "'items' must not be empty");
			return false;
		}
		for (size_t i = 0; i < items->nkids; i++) {
			if (items->kids[i]->kind != ARL_NODE_MAP) {
				arl_field_diag(
				    &c->r, items->kids[i],
				    "each item of 'foreach.items' must be a mapping, got %s",
				    arl_node_describe(items->kids[i]));
				return false;
			}
		}
		it->from = FROM_ITEMS;
		it->owned = node_json(items);
		it->v = arl_xcalloc(items->nkids ? items->nkids : 1, sizeof(*it->v));
		for (cJSON *e = it->owned->child; e; e = e->next)
			it->v[it->n++] = e;
		return true;
	}
	return load_matrix(c, matrix, it);
}

/* Expands job @jn with @item bound, validating it as the loader does. */
static bool expand(struct sctx *c, const struct arl_node *jn, const cJSON *item,
                   struct arl_job *out)
{
	const struct arl_expand_checks checks = {check_name, reject_name, check_local_path, c};

	c->pending = 0;
	return arl_expand_job(c->f, jn, item, c->origin, &checks, c->r.d, out);
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

	arl_job_spec_hash_with(j, &f->pools[j->pool], f->secrets, f->nsecrets, j->spec_hash);
	if (j->item) {
		arl_steps_release(&j->steps);
		arl_steps_release(&j->on_success);
		arl_steps_release(&j->on_failure);
		arl_steps_release(&j->on_complete);
		for (size_t i = 0; i < j->nartifacts; i++)
			free(j->artifacts[i].path);
		free(j->artifacts);
		j->artifacts = NULL;
		j->nartifacts = 0;
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

	if (!arl_field_want(&c->r, jn, ARL_NODE_MAP, "each job"))
		return;
	arl_field_check_keys(&c->r, jn, "job", job_keys);
	fe = arl_node_get(jn, "foreach");
	if (!fe) {
		struct arl_job j;

		c->origin[0] = '\0';
		if (expand(c, jn, NULL, &j))
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
			arl_field_diag(&c->r, fe, "more than %d jobs in one file",
			               MAX_JOBS_PER_FILE);
			break;
		}
		struct arl_job j;
		struct arl_err err = ARL_ERR_INIT;
		/* A dataset record is parsed only now and dropped after: see dataset.h. */
		cJSON *rec = it.from == FROM_FILE ? arl_dataset_take(it.ds, i, &err) : it.v[i];

		if (it.from == FROM_FILE && !cJSON_IsObject(rec)) {
			struct arl_loc loc = {it.ds->path, it.ds->lines[i], 1};

			if (rec)
				arl_diags_add(c->r.d, ARL_SEV_ERROR, loc, 1,
				              "record %zu must be a JSON object", i + 1);
			else
				arl_diags_add(c->r.d, ARL_SEV_ERROR, loc, 1, "%s", err.msg);
			cJSON_Delete(rec);
			break;
		}
		describe_item(c, &it, i);
		if (expand(c, jn, rec, &j)) {
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

static bool param_name_ok(const char *s)
{
	if (!*s || (*s >= '0' && *s <= '9') || *s == '-')
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
			return false;
	return true;
}

/* 'params:' NAME: DEFAULT (a scalar; null: required), each overridden by the last --set. */
static void parse_params(struct sctx *c, const struct arl_node *n)
{
	if (!arl_field_want(&c->r, n, ARL_NODE_MAP, "params"))
		return;
	c->f->params = cJSON_CreateObject();
	for (size_t i = 0; i + 1 < n->nkids; i += 2) {
		const struct arl_node *k = n->kids[i], *v = n->kids[i + 1];
		const char *val = NULL;

		if (k->kind != ARL_NODE_SCALAR || !param_name_ok(k->str)) {
			arl_field_diag(&c->r, k,
			               "parameter names are letters, digits, '_' and '-', not "
			               "starting with a digit or '-', got %s",
			               k->kind == ARL_NODE_SCALAR ? k->str : arl_node_describe(k));
			continue;
		}
		if (v->kind != ARL_NODE_SCALAR) {
			arl_field_diag(&c->r, v,
			               "parameter '%s' must have a string default (or null: "
			               "required), got %s",
			               k->str, arl_node_describe(v));
			continue;
		}
		if (!(v->plain && arl_node_is_null(v)))
			val = v->str;
		for (size_t s = 0; s < c->nsets; s++)
			if (!strcmp(c->sets[s].name, k->str))
				val = c->sets[s].value;
		if (!val) {
			arl_field_diag(&c->r, v,
			               "parameter '%s' has no default: give it with --set %s=VALUE",
			               k->str, k->str);
			val = ""; /* the file is invalid already: no error again at each use */
		}
		cJSON_AddItemToObject(c->f->params, k->str, cJSON_CreateString(val));
	}
}

/* 'secrets:' a list of environment variable names; their values are read at run start. */
static void parse_secrets(struct sctx *c, const struct arl_node *n)
{
	if (!arl_field_want(&c->r, n, ARL_NODE_SEQ, "secrets"))
		return;
	c->f->secrets = arl_xcalloc(n->nkids + 1, sizeof(*c->f->secrets));
	for (size_t i = 0; i < n->nkids; i++) {
		const struct arl_node *v = n->kids[i];
		bool dup = false;

		if (v->kind != ARL_NODE_SCALAR || !arl_field_env_name_ok(v->str)) {
			arl_field_diag(&c->r, v,
			               "each secret is an environment variable's name, got %s",
			               v->kind == ARL_NODE_SCALAR ? v->str : arl_node_describe(v));
			continue;
		}
		for (size_t k = 0; k < c->f->nsecrets; k++)
			dup |= !strcmp(c->f->secrets[k], v->str);
		if (dup)
			arl_field_diag(&c->r, v, "duplicate secret '%s'", v->str);
		else
			c->f->secrets[c->f->nsecrets++] = arl_xstrdup(v->str);
	}
}

/* budget: {metric: NAME, max: NUMBER} */
static void parse_budget(struct sctx *c, const struct arl_node *b)
{
	const struct arl_node *m, *x;
	char *end = NULL;
	double max = 0;

	if (!arl_field_want(&c->r, b, ARL_NODE_MAP, "budget"))
		return;
	arl_field_check_keys(&c->r, b, "budget", budget_keys);
	m = arl_node_get(b, "metric");
	x = arl_node_get(b, "max");
	if (!m || !x) {
		arl_field_diag(&c->r, b,
		               "'budget' needs 'metric' and 'max', e.g. {metric: cost_usd,"
		               " max: 25}");
		return;
	}
	if (x->kind == ARL_NODE_SCALAR && x->plain) {
		errno = 0;
		max = strtod(x->str, &end);
	}
	if (!end || end == x->str || *end || errno || !isfinite(max) || max <= 0) {
		arl_field_diag(&c->r, x, "'budget.max' must be a number above 0, got %s",
		               arl_node_describe(x));
		return;
	}
	c->t.no_vars = "'budget.metric'";
	c->f->budget_metric = arl_field_str(&c->r, m, "budget.metric");
	c->t.no_vars = NULL;
	if (c->f->budget_metric &&
	    (!*c->f->budget_metric || c->f->budget_metric[strcspn(c->f->budget_metric, ":;")])) {
		/* The run records it as "budget NAME: SPENT of MAX spent" among its notes. */
		arl_field_diag(&c->r, m,
		               "'budget.metric' must be a metric name, not empty and"
		               " without ':' or ';'");
		free(c->f->budget_metric);
		c->f->budget_metric = NULL;
	}
	c->f->budget_max = max;
}

static void parse_top(struct sctx *c, const struct arl_node *root)
{
	const struct arl_node *v, *pools, *jobs;
	int64_t n;

	if (!root || root->kind != ARL_NODE_MAP) {
		arl_field_diag(
		    &c->r, root,
		    "a job file must be a mapping with 'version', 'pools' and 'jobs', got %s",
		    root ? arl_node_describe(root) : "an empty document");
		return;
	}
	arl_field_check_keys(&c->r, root, "the job file", top_keys);
	if (!(v = arl_node_get(root, "version")))
		arl_field_diag(&c->r, root, "missing required key 'version' (add 'version: 1')");
	else if (v->kind != ARL_NODE_SCALAR)
		arl_field_diag(&c->r, v, "'version' must be 1, got %s", arl_node_describe(v));
	else if (!v->plain || strcmp(v->str, "1"))
		arl_field_diag(&c->r, v, "'version' must be 1 (a number), got %s'%s'",
		               v->plain ? "" : "the string ", v->str);
	/* Before anything that renders templates: every string may name a parameter. */
	if ((v = arl_node_get(root, "params")))
		parse_params(c, v);
	c->t.params = c->f->params;
	if ((v = arl_node_get(root, "secrets")))
		parse_secrets(c, v);
	if ((v = arl_node_get(root, "name"))) {
		c->t.no_vars = "the file's 'name'";
		c->f->name = arl_field_str(&c->r, v, "name");
		c->t.no_vars = NULL;
	}
	if (!c->f->name)
		c->f->name = arl_xstrdup(c->f->stem);
	if ((v = arl_node_get(root, "concurrency")) &&
	    arl_field_int(&c->r, v, "concurrency", 1, INT32_MAX, &n))
		c->f->concurrency = (int)n;
	if ((v = arl_node_get(root, "budget")))
		parse_budget(c, v);
	pools = arl_node_get(root, "pools");
	if (!pools) {
		arl_field_diag(&c->r, root, "missing required key 'pools'");
	} else if (arl_field_want(&c->r, pools, ARL_NODE_MAP, "pools")) {
		if (!pools->nkids)
			arl_field_diag(&c->r, pools, "'pools' must not be empty");
		c->f->pools = arl_xcalloc(pools->nkids / 2 + 1, sizeof(*c->f->pools));
		for (size_t i = 0; i + 1 < pools->nkids; i += 2) {
			if (pools->kids[i]->kind != ARL_NODE_SCALAR) {
				arl_field_diag(&c->r, pools->kids[i], "pool names must be strings");
				continue;
			}
			arl_pool_parse(&c->r, c->dir, pools->kids[i], pools->kids[i + 1],
			               &c->f->pools[c->f->npools++]);
		}
	}
	if ((v = arl_node_get(root, "defaults")) &&
	    arl_field_want(&c->r, v, ARL_NODE_MAP, "defaults")) {
		c->f->defaults = v;
		arl_field_check_keys(&c->r, v, "defaults", defaults_keys);
	}
	jobs = arl_node_get(root, "jobs");
	if (!jobs) {
		arl_field_diag(&c->r, root, "missing required key 'jobs'");
	} else if (arl_field_want(&c->r, jobs, ARL_NODE_SEQ, "jobs")) {
		if (!jobs->nkids)
			arl_field_diag(&c->r, jobs, "'jobs' must not be empty");
		for (size_t i = 0; i < jobs->nkids; i++)
			parse_job(c, jobs->kids[i]);
	}
}

int arl_jobfile_parse(const char *path, const char *buf, size_t len, struct arl_jobfile **out,
                      struct arl_diags *diags)
{
	return arl_jobfile_parse_with(path, buf, len, NULL, 0, out, diags);
}

int arl_jobfile_parse_with(const char *path, const char *buf, size_t len,
                           const struct arl_param_set *sets, size_t nsets, struct arl_jobfile **out,
                           struct arl_diags *diags)
{
	struct arl_doc *doc = NULL;
	struct sctx c = {.r = {.d = diags, .path = path}, .sets = sets, .nsets = nsets};
	size_t before = diags->errors;
	char *tmp;
	int ret = -1;

	if (arl_yaml_load_mem(path, buf, len, &doc, diags) < 0)
		return -1;
	c.r.path = doc->path;
	c.r.t = &c.t;
	c.r.origin = c.origin;
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
