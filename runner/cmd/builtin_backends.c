#include "cmd/builtin_backends.h"

#include <stdlib.h>

#include "backend/backend.h"
#include "gateway/backend_gateway.h"
#include "k8s/backend_k8s.h"
#include "local/backend_local.h"
#include "log.h"
#include "banned.h"

void arl_register_builtin_backends(void)
{
	/* local first: a pool that names no backend is local. */
	static const struct arl_backend_ops *const builtin[] = {
	    &arl_backend_local, &arl_backend_kubernetes, &arl_backend_gateway};
	struct arl_err err = ARL_ERR_INIT;

	for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++) {
		if (arl_backend_register(builtin[i], &err) < 0) {
			arl_log_err(NULL, &err); /* a build whose backends clash */
			abort();
		}
	}
}
