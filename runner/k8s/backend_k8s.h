/* The kubernetes backend: sandboxes are ARL Sandboxes claimed from WarmPools. */
#ifndef ARL_BACKEND_K8S_H
#define ARL_BACKEND_K8S_H

#include "backend/backend.h"

extern const struct arl_backend_ops arl_backend_kubernetes;

#endif
