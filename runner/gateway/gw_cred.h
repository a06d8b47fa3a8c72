/*
 * Where an API key may go: only to the gateway the operator named with it, never to one a job
 * file or a results database names (docs/gateway.md, "API keys"). $ARL_API_KEY belongs to the
 * origin (scheme, host, port) of $ARL_GATEWAY_URL; the file $ARL_GATEWAY_CREDENTIALS (owned by
 * the runner's user, mode 0600 or stricter) binds further origins, one "URL KEY" a line, where
 * KEY "-" says that gateway takes no key.
 */
#ifndef ARL_GW_CRED_H
#define ARL_GW_CRED_H

#include <stddef.h>

#include "err.h"

#define ARL_GW_ORIGIN_MAX 320

/*
 * @url's origin, "scheme://host:port" with the host lower-cased and the port explicit, into
 * @out. Refuses a URL that is not http(s)://, has no host, or holds credentials (user@host).
 */
int arl_gw_origin(const char *url, char out[ARL_GW_ORIGIN_MAX], struct arl_err *err);

struct arl_gw_creds;

/* The operator's keys, from the environment and $ARL_GATEWAY_CREDENTIALS. */
int arl_gw_creds_load(struct arl_gw_creds **out, struct arl_err *err);
void arl_gw_creds_free(struct arl_gw_creds *c);

/*
 * The key bound to @url's origin: 0 with *@key malloc()ed (NULL when the operator said the
 * origin takes no key); -1 with a message saying how to bind one when none is bound. Wipe and
 * free *@key after use.
 */
int arl_gw_creds_key(const struct arl_gw_creds *c, const char *url, char **key,
                     struct arl_err *err);

#endif
