/* The gateway backend: each attempt is one session of today's ARL gateway (docs/gateway.md). */
#ifndef ARL_BACKEND_GATEWAY_H
#define ARL_BACKEND_GATEWAY_H

#include "backend/backend.h"

extern const struct arl_backend_ops arl_backend_gateway;

/* Its gc op (gw_gc.c): the sessions the database's leases name. */
int arl_gw_backend_gc(const struct arl_backend_gc_opts *g);

#endif
