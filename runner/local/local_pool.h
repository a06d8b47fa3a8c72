/* A local pool's own keys (pool_kind.h): isolation, network and workspace. */
#ifndef ARL_LOCAL_POOL_H
#define ARL_LOCAL_POOL_H

#include <stdbool.h>

#include "jobfile/job.h"
#include "jobfile/pool_kind.h"

enum arl_isolation { ARL_ISO_BWRAP, ARL_ISO_NONE };

struct arl_local_pool {
	int isolation; /* enum arl_isolation */
	bool network;
	char *workspace; /* absolute path, or NULL */
};

extern const struct arl_pool_kind arl_local_pool_kind;

/* @p's local settings; @p is a pool of the local backend. */
static inline const struct arl_local_pool *arl_local_pool(const struct arl_pool *p)
{
	return p->config;
}

#endif
