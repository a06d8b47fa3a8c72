/*
 * A pool's `resources: {memory, cpus, pids}`, in Kubernetes quantity syntax, shared by the
 * backends so that one job file means the same on each: the local backend enforces them with
 * cgroups, the kubernetes backend puts them in the WarmPool's container resources.
 */
#ifndef ARL_RESOURCES_H
#define ARL_RESOURCES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jobfile/pool_kind.h"

struct arl_pool_resources {
	bool set;     /* the pool has a 'resources:' mapping */
	char *memory; /* as written; NULL: not limited */
	char *cpus;
	char *pids;
};

/* The limits, in the units the kernel takes; 0: not limited. */
struct arl_limits {
	int64_t memory_bytes;
	int64_t cpu_millis; /* 1000: one CPU */
	int64_t pids;
};

/* Check callbacks of the keys below: a malformed value is an error at its file:line:col. */
void arl_resources_check_memory(struct arl_pool_ctx *c, const struct arl_node *v, void *field);
void arl_resources_check_cpus(struct arl_pool_ctx *c, const struct arl_node *v, void *field);
void arl_resources_check_pids(struct arl_pool_ctx *c, const struct arl_node *v, void *field);

/*
 * For a pool kind's table: the 'resources:' key of config CFG, whose member MEMBER is a
 * struct arl_pool_resources, and the keys inside it (ARR: a static array the macro defines).
 */
#define ARL_RESOURCES_INNER_KEYS(ARR, CFG, MEMBER)                                                 \
	static const struct arl_pool_key ARR[] = {                                                 \
	    {.name = "memory",                                                                     \
	     .type = ARL_POOL_KEY_SCALAR,                                                          \
	     .offset = offsetof(CFG, MEMBER.memory),                                               \
	     .check = arl_resources_check_memory},                                                 \
	    {.name = "cpus",                                                                       \
	     .type = ARL_POOL_KEY_SCALAR,                                                          \
	     .offset = offsetof(CFG, MEMBER.cpus),                                                 \
	     .check = arl_resources_check_cpus},                                                   \
	    {.name = "pids",                                                                       \
	     .type = ARL_POOL_KEY_SCALAR,                                                          \
	     .offset = offsetof(CFG, MEMBER.pids),                                                 \
	     .check = arl_resources_check_pids},                                                   \
	    {.name = NULL},                                                                        \
	}
#define ARL_RESOURCES_KEY(ARR, CFG, MEMBER)                                                        \
	{                                                                                          \
		.name = "resources", .type = ARL_POOL_KEY_MAP,                                     \
		.offset = offsetof(CFG, MEMBER.set), .keys = ARR                                   \
	}

/*
 * A Kubernetes quantity (resource.Quantity's syntax: 2Gi, 1.5G, 500m, 1e3, +1) in units of
 * 1/@per_unit, rounded up as Kubernetes does. -1 when it is not one or is out of range.
 */
int arl_quantity_parse(const char *s, int64_t per_unit, int64_t *out);

/*
 * @r's limits, and a message when one is invalid (owned, the offending key and value named);
 * a pool's config is checked as it loads, so the backends see only valid ones.
 */
int arl_resources_limits(const struct arl_pool_resources *r, struct arl_limits *out, char **why);

/* @r's part of a job's spec hash: nothing when no 'resources:' is set (hashes stay stable). */
void arl_resources_hash(const struct arl_pool_resources *r, struct arl_spec_hasher *h);

#endif
