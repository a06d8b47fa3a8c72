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

#endif
