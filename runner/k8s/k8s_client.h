/*
 * A thin Kubernetes REST client over the shared HTTP client (http/http.h: libcurl handles,
 * a client-side token-bucket rate limit (--kube-qps, --kube-burst), timeouts, bounded bodies,
 * retries with backoff and jitter honouring Retry-After, the creation window of
 * http/throttle.h) and cJSON, shared by every worker thread of a run. Watches are built on it
 * (k8s_watch.h).
 *
 * Thread-safety: everything here may be called from any thread once arl_k8s_new() returned,
 * except arl_k8s_free(), which must come after all other use (every watch stopped).
 */
#ifndef ARL_K8S_CLIENT_H
#define ARL_K8S_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "err.h"
#include "http/throttle.h"
#include "k8s/kubeconfig.h"

#define ARL_K8S_DEFAULT_QPS   50
#define ARL_K8S_DEFAULT_BURST 100
#define ARL_K8S_ARL_API       "/apis/arl.infra.io/v1alpha1"

struct arl_k8s_opts {
	double qps;                 /* requests per second, sustained; 0: ARL_K8S_DEFAULT_QPS */
	int burst;                  /* bucket size; 0: ARL_K8S_DEFAULT_BURST */
	int64_t timeout_ms;         /* one request, all of it; 0: 30 s */
	int64_t connect_timeout_ms; /* 0: 10 s */
	int max_tries;              /* tries of a retryable request; 0: 10 */
};
#define ARL_K8S_OPTS_INIT                                                                          \
	{                                                                                          \
		0, 0, 0, 0, 0                                                                      \
	}

struct arl_k8s;

/* Takes ownership of @kc, even on failure. *out is written only on success. */
int arl_k8s_new(struct arl_k8s **out, struct arl_kubeconfig *kc, const struct arl_k8s_opts *o,
                struct arl_err *err);
/* NULL is a no-op. Every watch must have been stopped. */
void arl_k8s_free(struct arl_k8s *c);
/* The configuration (borrowed); its namespace is the default one. */
struct arl_kubeconfig *arl_k8s_config(struct arl_k8s *c);

/* Which failures a request may be repeated after. */
enum arl_k8s_retry {
	ARL_K8S_RETRY_NONE,   /* never (a POST without a name, a PATCH) */
	ARL_K8S_RETRY_SAFE,   /* GET, DELETE of a named object: repeating changes nothing */
	ARL_K8S_RETRY_CREATE, /* POST of a named object: a 409 AlreadyExists after a retry
				 means an earlier try got through, and counts as success */
};

struct arl_k8s_req {
	const char *method;       /* "GET", "POST", "PUT", "PATCH", "DELETE" */
	const char *path;         /* from the base URL on, with its query: "/apis/...?x=y" */
	const cJSON *body;        /* sent as JSON; NULL: no body */
	const char *content_type; /* NULL: application/json (for PATCH: merge-patch+json) */
	enum arl_k8s_retry retry;
	/* What the request does, for messages: "create", "sandboxes", name, namespace. */
	const char *verb, *resource, *name, *namespace;
	int64_t deadline_ms; /* arl_now_ms() clock: no try or backoff past it; 0: none */
	int cancel_fd;       /* readable: give up at once; -1: none */
	int max_tries;       /* 0: the client's max_tries; -1: as many as the deadline allows */
	/*
	 * A window of requests in flight (creates): a slot is held from the first try to the
	 * answer, and every refused try (429, 5xx, connection failure) is reported to it.
	 * Waiting for a slot counts against @deadline_ms and watches @cancel_fd. NULL: none.
	 */
	struct arl_http_throttle *throttle;
	size_t max_body; /* response bytes; 0: 16 MiB */
	/*
	 * RETRY_CREATE: "key=value", a label only our objects carry. A 409 on what looks like
	 * a first try (libcurl itself resends a request whose reused connection died before
	 * the answer) counts as success when the existing object has it. NULL: never.
	 */
	const char *owner_label;
};
#define ARL_K8S_REQ_INIT                                                                           \
	{                                                                                          \
		.cancel_fd = -1                                                                    \
	}

struct arl_k8s_resp {
	long status;    /* HTTP status of the last try; 0 when the server never answered */
	cJSON *body;    /* the parsed JSON body, or NULL; owned */
	bool existed;   /* RETRY_CREATE: 409 after a retried POST (success, body is the Status) */
	bool cancelled; /* stopped by cancel_fd */
	int tries;
};
#define ARL_K8S_RESP_INIT                                                                          \
	{                                                                                          \
		0, NULL, false, false, 0                                                           \
	}
void arl_k8s_resp_release(struct arl_k8s_resp *r);

/*
 * Sends a request, retrying as @r->retry allows. Returns 0 for a 2xx answer (or the 409
 * that RETRY_CREATE accepts), -1 otherwise with @err saying which verb on which object failed
 * and why (401/403: "forbidden: cannot create sandboxes in namespace 'x'", 400/422: the
 * server's Status.message, others: the code and message, or the transport error). @resp is
 * filled in both cases (status 404 and 409 are for the caller to judge) and must be released.
 */
int arl_k8s_request(struct arl_k8s *c, const struct arl_k8s_req *r, struct arl_k8s_resp *resp,
                    struct arl_err *err);

/* Counters since arl_k8s_new(): requests sent (every try), and retries among them. */
struct arl_k8s_stats {
	uint64_t requests, retries, watch_connects, relists;
};
void arl_k8s_get_stats(struct arl_k8s *c, struct arl_k8s_stats *out);

/*
 * Path of a namespaced collection of an API group ("/apis/arl.infra.io/v1alpha1/namespaces/
 * NS/sandboxes"), or of one object when @name is set. Returns a malloc'd string; names are
 * URL-escaped.
 */
char *arl_k8s_path(const char *api, const char *ns, const char *plural, const char *name);

/* Typed getters over cJSON: the value at a dotted path ("status.phase"), or NULL / @def. */
const char *arl_k8s_get_str(const cJSON *obj, const char *path);
/* An integer in [min, max] at @path; -1 when absent, not an integer, or out of range. */
int arl_k8s_get_int(const cJSON *obj, const char *path, int64_t min, int64_t max, int64_t *out);

#endif
