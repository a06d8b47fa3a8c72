/*
 * Leases (schema v4): what a backend made outside this host for an attempt (a gateway
 * session), recorded the moment it exists and dropped once released, so that `gc` finds what
 * a runner killed with -9 left (docs/database.md, table leases).
 */
#ifndef ARL_STORE_LEASES_H
#define ARL_STORE_LEASES_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "store/store.h"
#include "util.h"

/* Records a lease of run @run_id; *id is its row. */
int arl_store_lease_add(struct arl_store *s, int64_t run_id, const char *backend,
                        const char *location, const char *name, const char *job_key, int attempt,
                        int64_t *id, struct arl_err *err);
/* Drops lease @id (released). A missing row is no error. */
int arl_store_lease_drop(struct arl_store *s, int64_t id, struct arl_err *err);

struct arl_store_lease {
	int64_t id, run_id;
	const char *location, *name, *job_key;
	int64_t attempt;
	const char *created_at;
	const char *run_status; /* 'running', 'interrupted', ... */
	const char *host;       /* the run's runner */
	struct arl_owner owner;
};

/*
 * Calls @fn for every lease of @backend, oldest first (the strings are valid during the call
 * only); a -1 from @fn stops with that result.
 */
int arl_store_leases_each(struct arl_store *s, const char *backend,
                          int (*fn)(void *arg, const struct arl_store_lease *l), void *arg,
                          struct arl_err *err);

#endif
