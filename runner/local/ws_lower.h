/*
 * The lower layer of a sandbox's /workspace overlay (copy-on-write root, cow_root.h): the
 * pool's workspace itself when we are not root; as root, one copy of it per run, owned by
 * the sandbox uid, shared read-only by every sandbox of the pool (see DESIGN in ws_lower.c).
 */
#ifndef ARL_LOCAL_WS_LOWER_H
#define ARL_LOCAL_WS_LOWER_H

#include <stdbool.h>

#include "err.h"
#include "local/tree.h"

struct local;
struct arl_pool;

/* Prefix of a lower copy's name in the state directory: "ws-sb-RUN-OWNER-N" (local_gc.c). */
#define WS_LOWER_PREFIX "ws-"

/* A root run's copy of one pool's workspace. */
struct ws_copy {
	const struct arl_pool *pool; /* borrowed */
	char *name;                  /* under the state directory; NULL: not made (yet) */
	bool busy;                   /* a sandbox is making it */
	bool kept;                   /* a keepAlive sandbox needs it after the run */
};

/*
 * The lower layer of @pool's /workspace as bwrap binds it: the pool's workspace when we are
 * not root, ROOT_LOWER (the child binds arl_local_ws_lower_fd() there) once the run's copy
 * exists as root; NULL: none (no workspace, no copy-on-write root, isolation none).
 */
const char *arl_local_ws_lower(struct local *L, const struct arl_pool *pool);

/*
 * As root, makes the run's copy of @pool's workspace unless it exists: the first sandbox of
 * the pool copies (bounded by @b: ARL_E_TIMEOUT, ARL_E_CANCELLED, with nothing left behind),
 * the others wait for it within their own bound. 0 or -1.
 */
int arl_local_ws_lower_make(struct local *L, const struct arl_pool *pool,
                            const struct copy_bound *b, struct arl_err *err);

/* An O_PATH fd of @pool's copy (the caller closes it), or -1. */
int arl_local_ws_lower_fd(struct local *L, const struct arl_pool *pool, struct arl_err *err);

/* A keepAlive sandbox of @pool was kept: its lower is kept too at close. */
void arl_local_ws_lower_keep(struct local *L, const struct arl_pool *pool);

/* At close: deletes the copies, or renames those kept sandboxes need to "keep-ws-...". */
void arl_local_ws_lower_close(struct local *L);

#endif
