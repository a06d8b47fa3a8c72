/* The kubernetes backend: sandboxes are ARL Sandboxes claimed from WarmPools. */
#ifndef ARL_BACKEND_K8S_H
#define ARL_BACKEND_K8S_H

#include "backend/backend.h"

extern const struct arl_backend_ops arl_backend_kubernetes;

/* Its gc op and gc's options for it (backend.h): the sweep of k8s_gc.h on a cluster. */
int arl_k8s_backend_gc(const struct arl_backend_gc_opts *g);
extern const struct arl_backend_option arl_k8s_gc_options[];

#endif
