/* A local pool's own keys (pool_kind.h): isolation, network, workspace and resources. */
#ifndef ARL_LOCAL_POOL_H
#define ARL_LOCAL_POOL_H

#include <stdbool.h>

#include "jobfile/job.h"
#include "jobfile/pool_kind.h"
#include "jobfile/resources.h"

enum arl_isolation { ARL_ISO_BWRAP, ARL_ISO_NONE };

struct arl_local_pool {
	int isolation; /* enum arl_isolation */
	bool network;
	char *workspace; /* absolute path, or NULL */
	char *image; /* the sandboxes' root (image/image.h's reference forms); NULL: the host's */
	/* hashWorkspace: the workspace tree's digest (ws_hash.h) joins the spec hash */
	bool hash_workspace;
	char workspace_digest[65];
	struct arl_pool_resources resources; /* enforced with cgroups (local/cgroup.h) */
};

extern const struct arl_pool_kind arl_local_pool_kind;

/*
 * The local backend's rule for a FilePatch path, written once for the backend and for
 * validation (the pool kind's filepatch_refusal): NULL when @path is a file plainly inside /workspace, else why not (owned, no
 * trailing newline). @settled < strlen(path): only its first @settled bytes are known (the
 * rest is a run-time template); what they decide is judged.
 */
char *arl_filepatch_local_refusal(const char *path, size_t settled);

/* @p's local settings; @p is a pool of the local backend. */
static inline const struct arl_local_pool *arl_local_pool(const struct arl_pool *p)
{
	return p->config;
}

#endif
