/*
 * The Kubernetes client's insides, shared by its requests (k8s_client.c) and its watches
 * (k8s_watch.c): the shared HTTP client (http/http.h) and the Kubernetes parts of one
 * transfer. Not for use outside these two files.
 */
#ifndef ARL_K8S_CLIENT_INTERNAL_H
#define ARL_K8S_CLIENT_INTERNAL_H

#include <curl/curl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "err.h"
#include "http/http.h"
#include "k8s/k8s_client.h"

struct arl_k8s {
	struct arl_kubeconfig *kc;
	struct arl_http *http;
	atomic_uint_fast64_t watch_connects, relists;
};

/*
 * Sets up @h for one request into @x, credentials and TLS included. @timeout_ms 0 means none
 * (watches). The caller frees *@hdrs with arl_http_free_headers() after the transfer.
 */
int arl_k8s_setup(struct arl_k8s *c, CURL *h, const char *method, const char *url, const char *body,
                  const char *ctype, int64_t timeout_ms, struct arl_http_xfer *x, char *errbuf,
                  struct curl_slist **hdrs, struct arl_err *err);

/* Parses @len bytes at @p, which must be followed by a NUL. */
cJSON *arl_k8s_parse_json(const char *p, size_t len);
/* The server's explanation of a failure, on one line, into @buf. */
void arl_k8s_server_message(const cJSON *body, const struct arl_buf *raw, char *buf, size_t len);
/* The message for a non-2xx answer to @r: which verb on which object, then the reason. */
void arl_k8s_http_error(const struct arl_k8s_req *r, long status, const cJSON *body,
                        const struct arl_buf *raw, struct arl_err *err);

#endif
