/*
 * ARL WarmPools over the Kubernetes API: the body the SDK's WarmPoolManager.create_warmpool
 * builds, get, list, create, delete, and waiting until a pool is ready. Used by the
 * kubernetes backend (pools with `create:`) and by `arl-batch pool`.
 *
 * Thread-safety: as arl_k8s_request(); these functions keep no state of their own.
 */
#ifndef ARL_WARMPOOL_H
#define ARL_WARMPOOL_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "err.h"
#include "k8s/k8s_client.h"

struct arl_warmpool_spec {
	const char *name, *namespace;
	const char *image;
	const char *sidecar_image; /* NULL: no sidecar container (the operator injects its own) */
	int replicas;
	const char *const *command; /* NULL-terminated; NULL: /bin/sh -c "sleep infinity" */
	const char *workspace_path; /* NULL: /workspace */
	const char *testbed_path;   /* NULL: no testbed volume */
	/* The executor's requests and limits, Kubernetes quantities (a pool's resources:). */
	const char *memory, *cpus; /* NULL: not set */
};

/* The WarmPool object WarmPoolManager.create_warmpool sends (docs/kubernetes.md). Owned. */
cJSON *arl_warmpool_body(const struct arl_warmpool_spec *s);

/* Ready as the SDK decides it: status.readyReplicas >= spec.replicas > 0. */
bool arl_warmpool_is_ready(const cJSON *pool);

/* GETs the pool into *out (owned), or NULL when it does not exist (404 is not an error). */
int arl_warmpool_get(struct arl_k8s *c, const char *ns, const char *name, int cancel_fd,
                     cJSON **out, struct arl_err *err);
/* Creates the pool; *out (may be NULL) gets the created object. */
int arl_warmpool_create(struct arl_k8s *c, const struct arl_warmpool_spec *s, cJSON **out,
                        struct arl_err *err);
/* The WarmPoolList of @ns into *out (owned). */
int arl_warmpool_list(struct arl_k8s *c, const char *ns, cJSON **out, struct arl_err *err);
/* "'a', 'b'" (or "none") naming the pools of @ns, for "not found" messages; malloc'd. */
char *arl_warmpool_names(struct arl_k8s *c, const char *ns);
/* Deletes the pool (its pods go with it); a missing pool is an error unless @missing_ok. */
int arl_warmpool_delete(struct arl_k8s *c, const char *ns, const char *name, bool missing_ok,
                        struct arl_err *err);
/*
 * Polls the pool every second until it is ready, @deadline_ms (arl_now_ms clock) passes, or
 * @cancel_fd turns readable. The timeout error tells the replicas seen last.
 */
int arl_warmpool_wait_ready(struct arl_k8s *c, const char *ns, const char *name,
                            int64_t deadline_ms, int cancel_fd, struct arl_err *err);

#endif
