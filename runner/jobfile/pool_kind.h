/*
 * What a backend owns of a pool. Every pool has a name, a backend and replicas (job.h); the
 * rest of its mapping belongs to its backend, which describes those keys in a table the loader
 * parses into the backend's own config (checked with the same file:line:col diagnostics as
 * every other key). A backend registers its pool kind with arl_backend_register() (backend.h);
 * the table's type lives here because jobfile/ may not include backend/.
 *
 * The registry is filled once at startup, before any file is loaded or thread started, and
 * only read afterwards.
 */
#ifndef ARL_POOL_KIND_H
#define ARL_POOL_KIND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "jobfile/yaml_load.h"

enum arl_pool_key_type {
	ARL_POOL_KEY_STRING, /* char *, owned by the config; load-time templates rendered */
	ARL_POOL_KEY_BOOL,   /* bool */
	ARL_POOL_KEY_ENUM,   /* int: the index of the value in .choices */
	ARL_POOL_KEY_MAP,    /* bool: true when present; its own keys in .keys */
	ARL_POOL_KEY_SCALAR, /* char *, owned: a number or a string as written (no templates) */
};

struct arl_pool_ctx; /* the loader's, handed to check callbacks */

struct arl_pool_key {
	const char *name;
	enum arl_pool_key_type type;
	bool required;                   /* its absence is an error at the enclosing mapping */
	size_t offset;                   /* of the value in the config */
	const char *const *choices;      /* ENUM: NULL-terminated */
	const struct arl_pool_key *keys; /* MAP: the keys inside, ending with {NULL} */
	/* Optional: judges the value just parsed at @field (may replace it); reports at @v. */
	void (*check)(struct arl_pool_ctx *c, const struct arl_node *v, void *field);
};

struct arl_spec_hasher; /* job.c's, for a job's spec hash */

struct arl_pool_kind {
	const char *name;                /* the value of the pool's 'backend:' */
	const struct arl_pool_key *keys; /* ends with {NULL} */
	size_t config_size;              /* the config starts zeroed: zero is every default */
	/* Optional: after the keys, given the whole pool mapping (what no single key says). */
	void (*finish)(struct arl_pool_ctx *c, const struct arl_node *pool, void *config);
	/*
	 * A job's spec hash keeps spec v1's layout for the two kinds it knew (local and
	 * kubernetes), so that --resume trusts what earlier versions recorded: the pool's kind's
	 * .v1_number, then each v1 kind's part in .v1_number order, read from that kind's keys in
	 * the pool's mapping whatever the pool's kind (v1 read every key of every pool). @config
	 * is NULL when the mapping has none of them. NULL .hash: a kind v1 did not know, whose
	 * pools hash its name and its keys' values in order.
	 */
	void (*hash)(const void *config, struct arl_spec_hasher *h);
	int v1_number; /* with .hash: the backend's number in spec v1 */
	/* Why this kind's pools keep no `artifacts:` (validate warns at the key), or NULL. */
	const char *artifacts_refusal;
	/* Optional: why a FilePatch to @path fails in every attempt of a pool with @config. */
	char *(*filepatch_refusal)(const void *config, const char *path, size_t settled);
	/*
	 * What a run records as its isolation: every label this kind gives, in the order they are
	 * listed, and the index of a pool's, with a note for the run's notes (*note may stay NULL).
	 * NULL or an empty list: the kind's name for every pool.
	 */
	const char *const *isolation_labels;
	size_t (*isolation)(const void *config, const char **note);
	/* Why `stallTimeout:` cannot work on this kind's pools (the loader says so), or NULL. */
	const char *no_stall;
	/* Whether a job may name its own image (job.h's image), run in its pool's sandboxes. */
	bool job_image;
	/* Optional, without job_image: why not, for the loader's message. */
	const char *one_image;
};

/* For check callbacks: an error at @n (file:line:col), and the job file's directory. */
void arl_pool_error(struct arl_pool_ctx *c, const struct arl_node *n, const char *fmt, ...)
    ARL_PRINTF(3, 4);
const char *arl_pool_dir(const struct arl_pool_ctx *c);

/* Adds a kind; the first registered is the one a pool without 'backend:' gets. */
void arl_pool_kind_register(const struct arl_pool_kind *k);
/* NULL: no kind of that name. */
const struct arl_pool_kind *arl_pool_kind_find(const char *name);
/* The @i-th registered kind, in registration order; NULL past the last. */
const struct arl_pool_kind *arl_pool_kind_at(size_t i);

/* Frees @config (and the strings its keys own). NULL is a no-op. */
void arl_pool_config_free(const struct arl_pool_kind *k, void *config);
struct arl_pool;
/* @p's part of a job's spec hash (see .hash). */
void arl_pool_spec_hash(const struct arl_pool *p, struct arl_spec_hasher *h);
/* The config of @k's keys in @p's mapping: @p's own, another's, or NULL when it has none. */
const void *arl_pool_config_of(const struct arl_pool *p, const struct arl_pool_kind *k);

/* For kind->hash: what goes into a job's spec hash. */
void arl_spec_hash_i64(struct arl_spec_hasher *h, int64_t v);
void arl_spec_hash_str(struct arl_spec_hasher *h, const char *s);

#endif
