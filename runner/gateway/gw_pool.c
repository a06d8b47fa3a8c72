#include "gateway/gw_pool.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gw_cred.h"
#include "util.h"
#include "banned.h"

static void check_url(struct arl_pool_ctx *c, const struct arl_node *v, void *field)
{
	struct arl_err err = ARL_ERR_INIT;
	char origin[ARL_GW_ORIGIN_MAX];

	/* Also refuses credentials (an '@' anywhere in the authority, "http://@h" too). */
	if (arl_gw_origin(*(char **)field, origin, &err) < 0)
		arl_pool_error(c, v, "url: %s", err.msg);
}

/*
 * A job file must not choose where a key goes nor which file root reads: keys are bound to
 * gateways by the operator (gw_cred.h), so the key is refused, not ignored.
 */
static void refuse_key_file(struct arl_pool_ctx *c, const struct arl_node *v, void *field)
{
	(void)field;
	arl_pool_error(c, v,
	               "'apiKeyFile' is not a job-file key: the operator binds API keys to "
	               "gateways ($ARL_API_KEY for $ARL_GATEWAY_URL, or $ARL_GATEWAY_CREDENTIALS; "
	               "docs/gateway.md)");
}

static void check_nonempty(struct arl_pool_ctx *c, const struct arl_node *v, void *field)
{
	if (!(*(char **)field)[0])
		arl_pool_error(c, v, "must not be empty");
}

static void check_duration(struct arl_pool_ctx *c, const struct arl_node *v, void *field)
{
	int64_t ms;

	if (arl_parse_duration(*(char **)field, &ms) < 0 || ms < 1000 ||
	    ms > (int64_t)INT32_MAX * 1000)
		arl_pool_error(c, v, "'%s' is not a duration of at least 1s (e.g. 90s, 10m, 1h30m)",
		               *(char **)field);
}

static void check_work_dir(struct arl_pool_ctx *c, const struct arl_node *v, void *field)
{
	const char *d = *(char **)field;

	if (d[0] != '/')
		arl_pool_error(c, v, "workDir '%s' must be an absolute path", d);
}

static const struct arl_pool_key gw_keys[] = {
    {.name = "url",
     .type = ARL_POOL_KEY_STRING,
     .offset = offsetof(struct arl_gw_pool, url),
     .check = check_url},
    {.name = "apiKeyFile",
     .type = ARL_POOL_KEY_STRING,
     .offset = offsetof(struct arl_gw_pool, api_key_file),
     .check = refuse_key_file},
    {.name = "image",
     .type = ARL_POOL_KEY_STRING,
     .offset = offsetof(struct arl_gw_pool, image)}, /* the local kind checks it too */
    {.name = "profile",
     .type = ARL_POOL_KEY_STRING,
     .offset = offsetof(struct arl_gw_pool, profile),
     .check = check_nonempty},
    {.name = "network", .type = ARL_POOL_KEY_BOOL, .offset = offsetof(struct arl_gw_pool, network)},
    {.name = "idleTimeout",
     .type = ARL_POOL_KEY_SCALAR,
     .offset = offsetof(struct arl_gw_pool, idle_timeout),
     .check = check_duration},
    {.name = "allocationTimeout",
     .type = ARL_POOL_KEY_SCALAR,
     .offset = offsetof(struct arl_gw_pool, allocation_timeout),
     .check = check_duration},
    {.name = "workDir",
     .type = ARL_POOL_KEY_STRING,
     .offset = offsetof(struct arl_gw_pool, work_dir),
     .check = check_work_dir},
    {.name = NULL},
};

static void gw_finish(struct arl_pool_ctx *c, const struct arl_node *pool, void *config)
{
	struct arl_gw_pool *gp = config;

	(void)c;
	gp->network_given = arl_node_get(pool, "network") != NULL;
	if (arl_node_get(pool, "resources"))
		arl_pool_error(c, arl_node_get(pool, "resources"),
		               "a gateway session takes no resources (POST /v1/sessions has none): "
		               "its pool's template sets them");
}

const struct arl_pool_kind arl_gw_pool_kind = {
    .name = "gateway",
    .keys = gw_keys,
    .config_size = sizeof(struct arl_gw_pool),
    .finish = gw_finish,
    /* An execute answers with a step's whole output once it ends (docs/gateway.md). */
    .no_stall = "a step's output arrives only when the step ends, so silence cannot be told "
                "from work; use 'timeout'",
    .one_image = "a gateway session runs its pool's image (image: or profile:)",
};

const struct arl_gw_pool *arl_gw_pool(const struct arl_pool *p)
{
	static const struct arl_gw_pool unset;
	const struct arl_gw_pool *gp = arl_pool_config_of(p, &arl_gw_pool_kind);

	return gp ? gp : &unset;
}
