#include "backend/backend.h"

#include <stddef.h>

#include "banned.h"

/*
 * The registry: the one place that maps a pool's backend kind to its ops table, so the
 * scheduler never names a backend. A kind without a backend answers NULL; callers report
 * that as "backend '...' is not available".
 */
const struct arl_backend_ops *arl_backend_get(enum arl_backend_kind kind)
{
	switch (kind) {
	case ARL_BACKEND_LOCAL:
		return &arl_backend_local;
	case ARL_BACKEND_KUBERNETES:
		return &arl_backend_kubernetes;
	}
	return NULL;
}

const char *arl_backend_kind_name(enum arl_backend_kind kind)
{
	switch (kind) {
	case ARL_BACKEND_LOCAL:
		return "local";
	case ARL_BACKEND_KUBERNETES:
		return "kubernetes";
	}
	return "unknown";
}
