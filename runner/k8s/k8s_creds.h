/*
 * A kubeconfig's live credentials: the token file, re-read when it changes (a projected
 * service-account token rotates), and exec credential plugins, run when their credential is
 * missing or expires and again after a 401. Secrets never appear in a message.
 *
 * Thread-safety: every function here may be called from any thread; they lock internally.
 */
#ifndef ARL_K8S_CREDS_H
#define ARL_K8S_CREDS_H

#include <stdbool.h>

#include "err.h"
#include "k8s/kubeconfig.h"

/*
 * Applies the current credentials to the handle for one request: appends an Authorization
 * header to *headers (a struct curl_slist **) and sets client certificates from an exec
 * plugin. Re-reads a changed token file and runs an exec plugin whose credential is missing
 * or expired (other threads wait for it). Thread-safe.
 */
int arl_kubeconfig_curl_auth(struct arl_kubeconfig *kc, void *curl, void *headers,
                             struct arl_err *err);

/*
 * The server answered 401: forget cached exec credentials and token-file contents so the
 * next arl_kubeconfig_curl_auth() fetches fresh ones. Returns true when there was anything
 * to refresh (a retry may help).
 */
bool arl_kubeconfig_invalidate(struct arl_kubeconfig *kc);

/*
 * The bearer token the next request would send, in a malloc'd string (NULL: none), for tests
 * only: production code goes through arl_kubeconfig_curl_auth().
 */
int arl_kubeconfig_token_for_test(struct arl_kubeconfig *kc, char **out, struct arl_err *err);

#endif
