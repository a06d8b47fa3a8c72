#include "k8s/k8s_pool.h"

#include <stddef.h>

#include "util.h"
#include "banned.h"

static void check_namespace(struct arl_pool_ctx *c, const struct arl_node *v, void *field)
{
	const char *ns = *(char **)field;

	if (!arl_is_dns_label(ns))
		arl_pool_error(
		    c, v,
		    "namespace '%s' is not a DNS label (lowercase letters, digits and '-', "
		    "at most 63)",
		    ns);
}

static const struct arl_pool_key create_keys[] = {
    {.name = "image",
     .type = ARL_POOL_KEY_STRING,
     .required = true,
     .offset = offsetof(struct arl_k8s_pool, image)},
    {.name = "sidecarImage",
     .type = ARL_POOL_KEY_STRING,
     .offset = offsetof(struct arl_k8s_pool, sidecar_image)},
    {.name = "testbedPath",
     .type = ARL_POOL_KEY_STRING,
     .offset = offsetof(struct arl_k8s_pool, testbed_path)},
    {.name = NULL},
};

ARL_RESOURCES_INNER_KEYS(resource_keys, struct arl_k8s_pool, resources);

static const struct arl_pool_key k8s_keys[] = {
    {.name = "namespace",
     .type = ARL_POOL_KEY_STRING,
     .offset = offsetof(struct arl_k8s_pool, namespace),
     .check = check_namespace},
    {.name = "create",
     .type = ARL_POOL_KEY_MAP,
     .offset = offsetof(struct arl_k8s_pool, create),
     .keys = create_keys},
    ARL_RESOURCES_KEY(resource_keys, struct arl_k8s_pool, resources),
    {.name = NULL},
};

/* `run --backend kubernetes` on a local pool: its workspace is reported at open. */
static void k8s_finish(struct arl_pool_ctx *c, const struct arl_node *pool, void *config)
{
	struct arl_k8s_pool *kp = config;

	(void)c;
	kp->workspace_given = arl_node_get(pool, "workspace") != NULL;
}

/* Its part of spec v1's layout (pool_kind.h): the kubernetes keys, unset without @config. */
static void k8s_hash(const void *config, struct arl_spec_hasher *h)
{
	static const struct arl_k8s_pool unset;
	const struct arl_k8s_pool *kp = config ? config : &unset;

	arl_spec_hash_str(h, kp->namespace);
	arl_spec_hash_str(h, kp->image);
	arl_spec_hash_str(h, kp->sidecar_image);
	arl_spec_hash_str(h, kp->testbed_path);
}

const struct arl_pool_kind arl_k8s_pool_kind = {
    .name = "kubernetes",
    .keys = k8s_keys,
    .config_size = sizeof(struct arl_k8s_pool),
    .finish = k8s_finish,
    .hash = k8s_hash,
    .v1_number = 1,
    /* The ARL API hands a Task's stdout and stderr over when it ends (docs/kubernetes.md). */
    .no_stall = "a step's output arrives only when the step ends, so silence cannot be told "
                "from work; use 'timeout'",
    /* A WarmPool's pods all run its one image; a sandbox cannot be made from another. */
    .one_image = "a WarmPool runs one image (its create.image) in every pod it keeps warm",
};
