/*
 * The run's ledger of remote sandboxes (backend.h's struct arl_backend_ledger): the workers'
 * records of gateway sessions go to the results database's leases the moment they exist.
 * The store is one connection per thread (store.h), so the ledger has its own, opened on first
 * use and used under a lock: workers record while the main thread records results.
 */
#ifndef ARL_RUN_LEDGER_H
#define ARL_RUN_LEDGER_H

#include <stdint.h>

#include "backend/backend.h"

struct arl_run_ledger;

/* For run @run_id in the database at @db_path (borrowed until freed). Never fails. */
struct arl_run_ledger *arl_run_ledger_new(const char *db_path, int64_t run_id);
const struct arl_backend_ledger *arl_run_ledger_ops(struct arl_run_ledger *l);
/* After every backend is closed. NULL is a no-op. */
void arl_run_ledger_free(struct arl_run_ledger *l);

struct arl_store;
/*
 * The leases of @backend in @s, judged from here: left over when their run is no longer
 * 'running' (opening a store read-write closes the runs of this host's dead runners) or their
 * runner is gone (arl_owner_gone); a run on another host is not judged. For `gc` and the
 * sweep at a run's start.
 */
int arl_run_leases(struct arl_store *s, const char *backend, struct arl_backend_lease **out,
                   size_t *n, struct arl_err *err);

#endif
