#include "local/local_pool.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "local/ws_hash.h"
#include "util.h"
#include "banned.h"

static const char *const isolation_names[] = {"bwrap", "none", NULL};

/* The backend wants it absolute; a relatively named job file gives a relative one. */
static void check_workspace(struct arl_pool_ctx *c, const struct arl_node *v, void *field)
{
	char **ws = field;
	struct stat st;
	char *real;
	char *abs =
	    (*ws)[0] == '/' ? arl_xstrdup(*ws) : arl_xasprintf("%s/%s", arl_pool_dir(c), *ws);

	if (stat(abs, &st) < 0 || !S_ISDIR(st.st_mode))
		arl_pool_error(c, v, "workspace directory '%s' does not exist", *ws);
	else if ((real = realpath(abs, NULL))) {
		free(abs);
		abs = real;
	}
	free(*ws);
	*ws = abs;
}

static void check_image(struct arl_pool_ctx *c, const struct arl_node *v, void *field)
{
	char **image = field;

	if (!(*image)[0])
		arl_pool_error(c, v, "'image' must not be empty");
}

ARL_RESOURCES_INNER_KEYS(resource_keys, struct arl_local_pool, resources);

static const struct arl_pool_key local_keys[] = {
    {.name = "isolation",
     .type = ARL_POOL_KEY_ENUM,
     .offset = offsetof(struct arl_local_pool, isolation),
     .choices = isolation_names},
    {.name = "network",
     .type = ARL_POOL_KEY_BOOL,
     .offset = offsetof(struct arl_local_pool, network)},
    {.name = "image",
     .type = ARL_POOL_KEY_STRING,
     .offset = offsetof(struct arl_local_pool, image),
     .check = check_image},
    {.name = "workspace",
     .type = ARL_POOL_KEY_STRING,
     .offset = offsetof(struct arl_local_pool, workspace),
     .check = check_workspace},
    {.name = "hashWorkspace",
     .type = ARL_POOL_KEY_BOOL,
     .offset = offsetof(struct arl_local_pool, hash_workspace)},
    ARL_RESOURCES_KEY(resource_keys, struct arl_local_pool, resources),
    {.name = NULL},
};

/* Its part of spec v1's layout (pool_kind.h): the local keys, unset without @config. */
static void local_hash(const void *config, struct arl_spec_hasher *h)
{
	static const struct arl_local_pool unset;
	const struct arl_local_pool *lp = config ? config : &unset;

	arl_spec_hash_i64(h, lp->isolation);
	arl_spec_hash_i64(h, lp->network);
	arl_spec_hash_str(h, lp->workspace);
	/* The tree's contents, only when asked for: other pools keep their hashes. */
	if (lp->hash_workspace) {
		arl_spec_hash_str(h, "hashWorkspace");
		arl_spec_hash_str(h, lp->workspace_digest);
	}
	/* Both kinds parse resources:, and it is hashed here once (nothing when unset). */
	arl_resources_hash(&lp->resources, h);
	/* Only when set: the hashes of pools without one stay those earlier versions recorded. */
	if (lp->image) {
		arl_spec_hash_str(h, "image");
		arl_spec_hash_str(h, lp->image);
	}
}

static const char *const isolation_labels[] = {"bwrap", "none", NULL};

static size_t local_isolation(const void *config, const char **note)
{
	const struct arl_local_pool *lp = config;

	if (lp->isolation == ARL_ISO_NONE)
		*note = "isolation none, steps run as plain processes";
	return lp->isolation == ARL_ISO_NONE ? 1 : 0;
}

char *arl_filepatch_local_refusal(bool container, const char *path, size_t settled)
{
	char *copy, *save = NULL, *first = NULL;
	size_t ncomps = 0;
	char *why = NULL;

	if (!path || path[0] != '/')
		return arl_xasprintf("FilePatch path '%s' must be an absolute path%s",
		                     path ? path : "", container ? "" : " inside /workspace");
	copy = arl_xstrndup(path, settled);
	for (const char *p = copy; (p = strstr(p, "..")); p += 2) {
		if ((p == copy || p[-1] == '/') && (p[2] == '/' || !p[2])) {
			why = arl_xasprintf("FilePatch path '%s' must not contain '..'", path);
			goto out;
		}
	}
	for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		if (!strcmp(c, "."))
			continue;
		if (!ncomps++)
			first = c;
	}
	if (settled < strlen(path) && !ncomps)
		goto out; /* nothing settled yet */
	if (container && first &&
	    (!strcmp(first, "proc") || !strcmp(first, "sys") || !strcmp(first, "dev")))
		why = arl_xasprintf("FilePatch path '%s' is refused: /proc, /sys and /dev are the "
		                    "kernel's, not files of the sandbox",
		                    path);
	else if (container && first && !strncmp(first, ".arl-", 5))
		why = arl_xasprintf("FilePatch path '%s' is refused: '/%s' is the sandbox "
		                    "agent's own",
		                    path, first);
	else if (!container && (!first || strcmp(first, "workspace")))
		why =
		    arl_xasprintf("FilePatch path '%s' is outside /workspace, the only place "
		                  "FilePatch writes with isolation: none (or in a run without the "
		                  "copy-on-write root)",
		                  path);
	else if (settled == strlen(path) && (!ncomps || path[settled - 1] == '/' ||
	                                     (ncomps == 1 && !strcmp(first, "workspace"))))
		why = arl_xasprintf("FilePatch path '%s' names a directory, not a file", path);
out:
	free(copy);
	return why;
}

/* The pool kind's: a container (isolation bwrap) takes any file of its own filesystem. */
static char *local_filepatch_refusal(const void *config, const char *path, size_t settled)
{
	const struct arl_local_pool *lp = config;

	return arl_filepatch_local_refusal(lp->isolation == ARL_ISO_BWRAP, path, settled);
}

/* hashWorkspace: the tree is read once, when the file is loaded (validate reads it too). */
static void local_finish(struct arl_pool_ctx *c, const struct arl_node *pool, void *config)
{
	struct arl_local_pool *lp = config;
	struct arl_err err = ARL_ERR_INIT;

	if (!lp->hash_workspace)
		return;
	if (!lp->workspace) {
		arl_pool_error(c, pool, "'hashWorkspace: true' needs a 'workspace:' to hash");
		return;
	}
	if (arl_ws_hash(lp->workspace, lp->workspace_digest, &err) < 0)
		arl_pool_error(c, pool, "%s", err.msg);
}

const struct arl_pool_kind arl_local_pool_kind = {
    .name = "local",
    .finish = local_finish,
    .keys = local_keys,
    .config_size = sizeof(struct arl_local_pool),
    .hash = local_hash,
    .v1_number = 0,
    .filepatch_refusal = local_filepatch_refusal,
    .isolation_labels = isolation_labels,
    .isolation = local_isolation,
    .job_image = true,
};
