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
 * validation (the pool kind's filepatch_refusal): NULL when @path may be written, else why
 * not (owned, no trailing newline). In a @container (isolation: bwrap, the agent writes it
 * with the steps' view) any absolute file path but under /proc, /sys, /dev and the agent's
 * own /.arl-*; otherwise (isolation: none, or a run without the copy-on-write root) a file
 * plainly inside /workspace. @settled < strlen(path): only its first @settled bytes are
 * known (the rest is a run-time template); what they decide is judged.
 */
char *arl_filepatch_local_refusal(bool container, const char *path, size_t settled);

/* @p's local settings; @p is a pool of the local backend. */
static inline const struct arl_local_pool *arl_local_pool(const struct arl_pool *p)
{
	return p->config;
}

#endif
