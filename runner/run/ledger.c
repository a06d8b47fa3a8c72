/* The run's ledger of remote sandboxes (ledger.h). */
#include "run/ledger.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

struct judge {
	char host[256];
	struct arl_owner me;
	struct arl_backend_lease *v;
	size_t n, cap;
};

static int judge_lease(void *arg, const struct arl_store_lease *l)
{
	struct judge *j = arg;
	struct arl_backend_lease *o;

	ARL_GROW(j->v, j->cap, j->n + 1);
	o = &j->v[j->n++];
	memset(o, 0, sizeof(*o));
	o->id = l->id;
	o->run_id = l->run_id;
	o->location = arl_xstrdup(l->location);
	o->name = arl_xstrdup(l->name);
	o->job_key = l->job_key ? arl_xstrdup(l->job_key) : NULL;
	o->attempt = (int)l->attempt;
	if (l->run_status && !strcmp(l->run_status, "interrupted"))
		o->gone = "its runner is gone (run interrupted)";
	else if (!l->run_status || strcmp(l->run_status, "running"))
		o->gone = "its run ended without deleting it";
	else if (!l->host || strcmp(l->host, j->host))
		o->other_host = true;
	else
		o->gone = arl_owner_gone(&l->owner, &j->me);
	return 0;
}

int arl_run_leases(struct arl_store *s, const char *backend, struct arl_backend_lease **out,
                   size_t *n, struct arl_err *err)
{
	struct judge j = {.n = 0};

	*out = NULL;
	*n = 0;
	if (gethostname(j.host, sizeof(j.host)) < 0)
		j.host[0] = '\0';
	j.host[sizeof(j.host) - 1] = '\0';
	arl_owner_self(&j.me);
	if (arl_store_leases_each(s, backend, judge_lease, &j, err) < 0) {
		arl_backend_leases_free(j.v, j.n);
		return -1;
	}
	*out = j.v;
	*n = j.n;
	return 0;
}

static int ledger_leases(void *arg, const char *backend, struct arl_backend_lease **out, size_t *n,
                         struct arl_err *err)
{
	struct arl_run_ledger *l = arg;
	int rc = -1;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&l->mu);
	if (!l->s && arl_store_open(&l->s, l->db_path, ARL_STORE_NOCREATE, err) < 0)
		goto out;
	rc = arl_run_leases(l->s, backend, out, n, err);
out:
	pthread_mutex_unlock(&l->mu);
	return rc;
}

struct arl_run_ledger *arl_run_ledger_new(const char *db_path, int64_t run_id)
{
	struct arl_run_ledger *l = arl_xcalloc(1, sizeof(*l));

	l->ops = (struct arl_backend_ledger){
	    .arg = l, .add = ledger_add, .drop = ledger_drop, .leases = ledger_leases};
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
