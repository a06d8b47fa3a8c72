#include "cmd/builtin_backends.h"

#include "backend/backend.h"
#include "k8s/backend_k8s.h"
#include "local/backend_local.h"
#include "banned.h"

void arl_register_builtin_backends(void)
{
	/* local first: a pool that names no backend is local. */
	arl_backend_register(&arl_backend_local);
	arl_backend_register(&arl_backend_kubernetes);
}
