/* The run's ledger of remote sandboxes (ledger.h). */
#include "run/ledger.h"

#include <pthread.h>
#include <stdlib.h>

#include "log.h"
#include "store/store.h"
#include "store/store_leases.h"
#include "util.h"
#include "banned.h"

struct arl_run_ledger {
	struct arl_backend_ledger ops;
	const char *db_path;
	int64_t run_id;
	pthread_mutex_t mu; /* guards s; lock order: alone */
	struct arl_store *s;
};

static int ledger_add(void *arg, const char *backend, const char *location, const char *name,
                      const char *job_key, int attempt, int64_t *id, struct arl_err *err)
{
	struct arl_run_ledger *l = arg;
	int rc = -1;

	pthread_mutex_lock(&l->mu);
	if (!l->s && arl_store_open(&l->s, l->db_path, ARL_STORE_NOCREATE, err) < 0)
		goto out;
	rc = arl_store_lease_add(l->s, l->run_id, backend, location, name, job_key, attempt, id,
	                         err);
out:
	pthread_mutex_unlock(&l->mu);
	return rc;
}

static void ledger_drop(void *arg, int64_t id)
{
	struct arl_run_ledger *l = arg;
	struct arl_err err = ARL_ERR_INIT;

	pthread_mutex_lock(&l->mu);
	if (!l->s || arl_store_lease_drop(l->s, id, &err) < 0)
		arl_log_warn("cannot drop lease %lld (a released sandbox; `gc` will find it gone): "
		             "%s",
		             (long long)id, l->s ? err.msg : "no database connection");
	pthread_mutex_unlock(&l->mu);
}

struct arl_run_ledger *arl_run_ledger_new(const char *db_path, int64_t run_id)
{
	struct arl_run_ledger *l = arl_xcalloc(1, sizeof(*l));

	l->ops = (struct arl_backend_ledger){.arg = l, .add = ledger_add, .drop = ledger_drop};
	l->db_path = db_path;
	l->run_id = run_id;
	pthread_mutex_init(&l->mu, NULL);
	return l;
}

const struct arl_backend_ledger *arl_run_ledger_ops(struct arl_run_ledger *l)
{
	return &l->ops;
}

void arl_run_ledger_free(struct arl_run_ledger *l)
{
	if (!l)
		return;
	arl_store_close(l->s);
	pthread_mutex_destroy(&l->mu);
	free(l);
}
