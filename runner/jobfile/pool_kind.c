#include "jobfile/pool_kind.h"

#include <stdlib.h>
#include <string.h>

#include "jobfile/job.h"
#include "banned.h"

/* A handful of backends at most; registered at startup, read-only afterwards. */
#define MAX_POOL_KINDS 16

static const struct arl_pool_kind *kinds[MAX_POOL_KINDS];
static size_t nkinds;

void arl_pool_kind_register(const struct arl_pool_kind *k)
{
	if (arl_pool_kind_find(k->name))
		return;
	if (nkinds == MAX_POOL_KINDS)
		abort(); /* a build with more backends raises MAX_POOL_KINDS */
	kinds[nkinds++] = k;
}

const struct arl_pool_kind *arl_pool_kind_find(const char *name)
{
	for (size_t i = 0; name && i < nkinds; i++)
		if (!strcmp(kinds[i]->name, name))
			return kinds[i];
	return NULL;
}

const struct arl_pool_kind *arl_pool_kind_at(size_t i)
{
	return i < nkinds ? kinds[i] : NULL;
}

static void free_keys(const struct arl_pool_key *keys, void *config)
{
	for (const struct arl_pool_key *k = keys; k->name; k++) {
		if (k->type == ARL_POOL_KEY_STRING || k->type == ARL_POOL_KEY_SCALAR)
			free(*(char **)((char *)config + k->offset));
		else if (k->type == ARL_POOL_KEY_MAP)
			free_keys(k->keys, config);
	}
}

void arl_pool_config_free(const struct arl_pool_kind *k, void *config)
{
	if (!config)
		return;
	free_keys(k->keys, config);
	free(config);
}

static void hash_keys(const struct arl_pool_key *keys, const void *config,
                      struct arl_spec_hasher *h)
{
	for (const struct arl_pool_key *k = keys; k->name; k++) {
		const char *field = (const char *)config + k->offset;

		arl_spec_hash_str(h, k->name);
		switch (k->type) {
		case ARL_POOL_KEY_STRING:
		case ARL_POOL_KEY_SCALAR:
			arl_spec_hash_str(h, *(char *const *)field);
			break;
		case ARL_POOL_KEY_BOOL:
			arl_spec_hash_i64(h, *(const bool *)field);
			break;
		case ARL_POOL_KEY_ENUM:
			arl_spec_hash_i64(h, *(const int *)field);
			break;
		case ARL_POOL_KEY_MAP:
			arl_spec_hash_i64(h, *(const bool *)field);
			hash_keys(k->keys, config, h);
			break;
		}
	}
}

const void *arl_pool_config_of(const struct arl_pool *p, const struct arl_pool_kind *k)
{
	if (k == p->kind)
		return p->config;
	for (size_t i = 0; i < p->nothers; i++)
		if (p->others[i].kind == k)
			return p->others[i].config;
	return NULL;
}

/* The registered kind spec v1 numbered @n, or NULL. */
static const struct arl_pool_kind *v1_kind(int n)
{
	const struct arl_pool_kind *k;

	for (size_t i = 0; (k = arl_pool_kind_at(i)); i++)
		if (k->hash && k->v1_number == n)
			return k;
	return NULL;
}

void arl_pool_spec_hash(const struct arl_pool *p, struct arl_spec_hasher *h)
{
	const struct arl_pool_kind *k;

	if (!p->kind->hash) {
		arl_spec_hash_str(h, p->kind->name);
		hash_keys(p->kind->keys, p->config, h);
		return;
	}
	arl_spec_hash_i64(h, p->kind->v1_number);
	for (int n = 0; (k = v1_kind(n)); n++)
		k->hash(arl_pool_config_of(p, k), h);
}
