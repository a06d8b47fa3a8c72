#include "jobfile/job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "jobfile/dataset.h"
#include "jobfile/pool_kind.h"
#include "util.h"
#include "jobfile/yaml_load.h"
#include "banned.h"

/* Up to this many entries a scan is cheaper than an index (and most maps are this small). */
#define STRMAP_SCAN_MAX 8

static const char *strmap_key(const void *m, size_t i)
{
	return ((const struct arl_strmap *)m)->v[i].key;
}

static size_t *strmap_slot(const struct arl_strmap *m, const char *key)
{
	return arl_strindex_slot(&m->index, key, strmap_key, m);
}

static struct arl_kv *strmap_find(const struct arl_strmap *m, const char *key)
{
	if (m->index.slot) {
		size_t s = *strmap_slot(m, key);

		return s ? &m->v[s - 1] : NULL;
	}
	for (size_t i = 0; i < m->n; i++)
		if (!strcmp(m->v[i].key, key))
			return &m->v[i];
	return NULL;
}

void arl_strmap_set(struct arl_strmap *m, const char *key, const char *val)
{
	struct arl_kv *kv;

	if (m->n >= STRMAP_SCAN_MAX)
		arl_strindex_reserve(&m->index, m->n + 1, m->n, strmap_key, m);
	if ((kv = strmap_find(m, key))) {
		free(kv->val);
		kv->val = arl_xstrdup(val);
		return;
	}
	if (m->n >= m->cap) {
		m->cap = m->n < 4 ? 4 : 2 * m->n;
		m->v = arl_xrealloc(m->v, m->cap * sizeof(*m->v));
	}
	m->v[m->n].key = arl_xstrdup(key);
	m->v[m->n].val = arl_xstrdup(val);
	m->n++;
	if (m->index.slot)
		*strmap_slot(m, key) = m->n;
}

const char *arl_strmap_get(const struct arl_strmap *m, const char *key)
{
	const struct arl_kv *kv = strmap_find(m, key);

	return kv ? kv->val : NULL;
}

void arl_strmap_release(struct arl_strmap *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->v[i].key);
		free(m->v[i].val);
	}
	free(m->v);
	free(m->index.slot);
	memset(m, 0, sizeof(*m));
}

void arl_step_release(struct arl_step *s)
{
	free(s->name);
	for (size_t i = 0; i < s->argc; i++)
		free(s->argv[i]);
	free(s->argv);
	free(s->work_dir);
	free(s->stall_text);
	arl_strmap_release(&s->env);
	free(s->path);
	free(s->content);
	memset(s, 0, sizeof(*s));
}

void arl_steps_release(struct arl_steps *s)
{
	for (size_t i = 0; i < s->n; i++)
		arl_step_release(&s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

void arl_job_release(struct arl_job *j)
{
	if (j->packed) {
		free(j->key); /* the name and the labels live in the same block */
	} else {
		free(j->name);
		free(j->key);
		arl_strmap_release(&j->labels);
	}
	arl_steps_release(&j->steps);
	arl_steps_release(&j->on_success);
	arl_steps_release(&j->on_failure);
	arl_steps_release(&j->on_complete);
	for (size_t i = 0; i < j->nartifacts; i++)
		free(j->artifacts[i].path);
	free(j->artifacts);
	free(j->item);
	free(j->image);
	memset(j, 0, sizeof(*j));
}

int arl_job_item(const struct arl_job *j, char **out, struct arl_err *err)
{
	cJSON *rec;
	char *s;

	if (!j->dataset) {
		*out = j->item ? arl_xstrdup(j->item) : NULL;
		return 0;
	}
	if (arl_dataset_read(j->dataset, j->record, &rec, err) < 0) {
		arl_err_prefix(err, "job '%s'", j->name);
		return -1;
	}
	s = cJSON_PrintUnformatted(rec);
	cJSON_Delete(rec);
	if (!s)
		return arl_error(err, ARL_E_NOMEM, "cannot print record %u of '%s'", j->record + 1,
		                 j->dataset->path);
	*out = arl_xstrdup(s);
	cJSON_free(s);
	return 0;
}

void arl_jobfile_free(struct arl_jobfile *f)
{
	if (!f)
		return;
	free(f->budget_metric);
	for (size_t i = 0; i < f->npools; i++) {
		struct arl_pool *p = &f->pools[i];

		free(p->name);
		if (p->kind)
			arl_pool_config_free(p->kind, p->config);
		for (size_t k = 0; k < p->nothers; k++)
			arl_pool_config_free(p->others[k].kind, p->others[k].config);
		free(p->others);
	}
	free(f->pools);
	for (size_t i = 0; i < f->njobs; i++)
		arl_job_release(&f->jobs[i]);
	free(f->jobs);
	for (size_t i = 0; i < f->ndatasets; i++) {
		arl_dataset_release(f->datasets[i]);
		free(f->datasets[i]);
	}
	free(f->datasets);
	cJSON_Delete(f->params);
	for (size_t i = 0; i < f->nsecrets; i++)
		free(f->secrets[i]);
	free(f->secrets);
	arl_doc_free(f->doc);
	free(f->dir);
	free(f->path);
	free(f->stem);
	free(f->name);
	free(f);
}

/* Two FNV-1a streams with different seeds: a 128-bit change detector, not a MAC. */
struct arl_spec_hasher {
	uint64_t a, b;
};

static void hash_bytes(struct arl_spec_hasher *h, const void *p, size_t n)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < n; i++) {
		h->a = (h->a ^ s[i]) * 1099511628211ULL;
		h->b = (h->b ^ s[i]) * 0x100000001b3ULL + 0x9e3779b97f4a7c15ULL;
	}
}

/* Strings are length-prefixed so that ("ab","c") and ("a","bc") differ. */
static void hash_str(struct arl_spec_hasher *h, const char *s)
{
	uint64_t n = s ? strlen(s) : UINT64_MAX;

	hash_bytes(h, &n, sizeof(n));
	if (s)
		hash_bytes(h, s, strlen(s));
}

static void hash_i64(struct arl_spec_hasher *h, int64_t v)
{
	hash_bytes(h, &v, sizeof(v));
}

void arl_spec_hash_i64(struct arl_spec_hasher *h, int64_t v)
{
	hash_i64(h, v);
}

void arl_spec_hash_str(struct arl_spec_hasher *h, const char *s)
{
	hash_str(h, s);
}

static void hash_steps(struct arl_spec_hasher *h, const struct arl_steps *steps)
{
	hash_i64(h, (int64_t)steps->n);
	for (size_t i = 0; i < steps->n; i++) {
		const struct arl_step *s = &steps->v[i];

		hash_str(h, s->name);
		hash_i64(h, s->type);
		hash_i64(h, (int64_t)s->argc);
		for (size_t k = 0; k < s->argc; k++)
			hash_str(h, s->argv[k]);
		hash_str(h, s->work_dir);
		hash_i64(h, (int64_t)s->env.n);
		for (size_t k = 0; k < s->env.n; k++) {
			hash_str(h, s->env.v[k].key);
			hash_str(h, s->env.v[k].val);
		}
		hash_i64(h, s->timeout_ms);
		/* A stall kill changes the result, as a timeout does; absent, the hash is v1's. */
		if (s->stall_ms) {
			hash_str(h, "stallTimeout");
			hash_i64(h, s->stall_ms);
		}
		hash_i64(h, s->metrics_json);
		hash_str(h, s->path);
		hash_str(h, s->content);
	}
}

void arl_job_spec_hash(const struct arl_job *j, const struct arl_pool *p, char out[33])
{
	arl_job_spec_hash_with(j, p, NULL, 0, out);
}

void arl_job_spec_hash_with(const struct arl_job *j, const struct arl_pool *p, char *const *secrets,
                            size_t nsecrets, char out[33])
{
	struct arl_spec_hasher h = {1469598103934665603ULL, 0x84222325cbf29ce4ULL};

	hash_str(&h, "arl-batch spec v1");
	hash_steps(&h, &j->steps);
	hash_steps(&h, &j->on_success);
	hash_steps(&h, &j->on_failure);
	hash_steps(&h, &j->on_complete);
	hash_i64(&h, j->timeout_ms);
	hash_str(&h, j->item);
	if (p->kind)
		arl_pool_spec_hash(p, &h);
	/* Only when there are some: jobs of files without secrets keep their hashes. */
	if (nsecrets) {
		hash_str(&h, "secrets");
		hash_i64(&h, (int64_t)nsecrets);
		for (size_t i = 0; i < nsecrets; i++)
			hash_str(&h, secrets[i]);
	}
	/* Only when set: the hashes of jobs without one stay those earlier versions recorded. */
	if (j->image) {
		hash_str(&h, "image");
		hash_str(&h, j->image);
	}
	snprintf(out, 33, "%016llx%016llx", (unsigned long long)h.a, (unsigned long long)h.b);
}

void arl_job_spec_hash_fold(char hash[33], const char *extra)
{
	struct arl_spec_hasher h = {1469598103934665603ULL, 0x84222325cbf29ce4ULL};

	hash_str(&h, "arl-batch spec fold");
	hash_str(&h, hash);
	hash_str(&h, extra);
	snprintf(hash, 33, "%016llx%016llx", (unsigned long long)h.a, (unsigned long long)h.b);
}
