/*
 * The Kubernetes client's insides, shared by its requests (k8s_client.c) and its watches
 * (k8s_watch.c): the handle pool, the rate limit and the setup of one transfer. Not for use
 * outside these two files.
 */
#ifndef ARL_K8S_CLIENT_INTERNAL_H
#define ARL_K8S_CLIENT_INTERNAL_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "err.h"
#include "k8s/k8s_client.h"

struct arl_k8s_easy {
	CURL *h;
	struct arl_k8s_easy *next;
};

struct arl_k8s {
	struct arl_kubeconfig *kc;
	struct arl_k8s_opts o;
	CURLSH *share;
	pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST]; /* one per lock class, as libcurl asks */
	pthread_mutex_t pool_mu;                       /* lock order: alone */
	struct arl_k8s_easy *free_easy;
	pthread_mutex_t rl_mu; /* lock order: alone */
	double tokens;
	int64_t rl_last_us;
	atomic_uint_fast64_t requests, retries, watch_connects, relists;
};

struct arl_k8s_xfer {
	struct arl_buf body;
	bool too_big;
	int64_t retry_after_ms;
	int cancel_fd;
	bool cancelled;
	atomic_bool *stop; /* watches: set to end the stream */
	/* Watches: called for each complete line of the body; returns -1 to end the stream. */
	int (*on_line)(void *arg, const char *line, size_t len);
	void *line_arg;
	bool line_stop;
	void (*on_tick)(void *arg); /* watches: called from the progress callback */
};

/* Sleeps @ms unless @cancel_fd turns readable; returns -1 when it did. */
int arl_k8s_sleep_ms(int64_t ms, int cancel_fd);
/* Backoff jitter, per thread: workers that failed together do not retry together. */
uint32_t arl_k8s_jitter_rand(void);

/* Lends an easy handle (the most recently returned one), or NULL; give it back with put. */
struct arl_k8s_easy *arl_k8s_easy_get(struct arl_k8s *c);
void arl_k8s_easy_put(struct arl_k8s *c, struct arl_k8s_easy *e);

/* Takes one token from the bucket, sleeping for it; -1 when cancelled or past @deadline. */
int arl_k8s_rate_limit(struct arl_k8s *c, int64_t deadline_ms, int cancel_fd);

/*
 * Sets up @h for one request into @x. @timeout_ms 0 means none (watches). The caller frees
 * *@hdrs with arl_k8s_free_headers() after the transfer.
 */
int arl_k8s_setup(struct arl_k8s *c, CURL *h, const char *method, const char *url, const char *body,
                  const char *ctype, int64_t timeout_ms, struct arl_k8s_xfer *x, char *errbuf,
                  struct curl_slist **hdrs, struct arl_err *err);
/* Frees a header list, wiping it first (it holds the Authorization header). */
void arl_k8s_free_headers(struct curl_slist *h);

/* Parses @len bytes at @p, which must be followed by a NUL. */
cJSON *arl_k8s_parse_json(const char *p, size_t len);
/* The server's explanation of a failure, on one line, into @buf. */
void arl_k8s_server_message(const cJSON *body, const struct arl_buf *raw, char *buf, size_t len);
/* The message for a non-2xx answer to @r: which verb on which object, then the reason. */
void arl_k8s_http_error(const struct arl_k8s_req *r, long status, const cJSON *body,
                        const struct arl_buf *raw, struct arl_err *err);

#endif
