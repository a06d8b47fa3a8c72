/* A kubernetes pool's own keys (pool_kind.h): namespace and create. */
#ifndef ARL_K8S_POOL_H
#define ARL_K8S_POOL_H

#include <stdbool.h>

#include "jobfile/job.h"
#include "jobfile/pool_kind.h"
#include "jobfile/resources.h"

struct arl_k8s_pool {
	char *namespace; /* NULL: the context's namespace */
	bool create;     /* create the WarmPool with these: */
	char *image, *sidecar_image, *testbed_path;
	bool workspace_given;                /* the mapping has a (local-only) 'workspace:' */
	struct arl_pool_resources resources; /* the WarmPool container's requests and limits */
};

extern const struct arl_pool_kind arl_k8s_pool_kind;

/* @p's kubernetes settings; @p is a pool of the kubernetes backend. */
static inline const struct arl_k8s_pool *arl_k8s_pool(const struct arl_pool *p)
{
	return p->config;
}

#endif
