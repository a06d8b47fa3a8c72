/* A gateway pool's own keys (pool_kind.h; docs/gateway.md). */
#ifndef ARL_GW_POOL_H
#define ARL_GW_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "jobfile/job.h"
#include "jobfile/pool_kind.h"

struct arl_gw_pool {
	char *url;          /* NULL: $ARL_GATEWAY_URL */
	char *api_key_file; /* refused (gw_pool.c): keys are the operator's */
	char *image, *profile;
	bool network; /* the sessions' allowInternet */
	bool network_given;
	char *idle_timeout, *allocation_timeout; /* durations as written; NULL: derived */
	char *work_dir;                          /* NULL: /workspace */
};

extern const struct arl_pool_kind arl_gw_pool_kind;

/* @p's gateway settings (all unset for a pool of another kind run with --backend gateway). */
const struct arl_gw_pool *arl_gw_pool(const struct arl_pool *p);

#endif
