/*
 * A thin Kubernetes REST client over libcurl and cJSON, shared by every worker thread of a
 * run: one CURLSH share handle (DNS cache and TLS sessions only: connections are deliberately
 * not shared, see k8s_client.c) behind lock callbacks, easy handles lent to one thread at a
 * time, each keeping its own connection, a client-side token-bucket rate limit (--kube-qps,
 * --kube-burst), timeouts on every request, bounded response bodies, and retries with
 * exponential backoff and jitter for 5xx, 429 (honouring Retry-After) and connection
 * failures, for the requests that are safe to repeat. Creates may also go through a window
 * of requests in flight that adapts to refusals (k8s_throttle.h).
 *
 * Watches: arl_k8s_watch is one long-running watch stream of one kind in one namespace,
 * filtered by a label selector, shared by all workers. It reconnects when the stream ends or
 * is cut (resuming from the last resourceVersion), asks for bookmarks, and re-lists when the
 * server answers 410 Gone. Workers register the names they care about and block on a
 * condition variable until the object reaches the state they want: waiting costs no request.
 *
 * Thread-safety: everything here may be called from any thread once arl_k8s_new() returned,
 * except arl_k8s_free() and arl_k8s_watch_stop(), which must come after all other use.
 */
#ifndef ARL_K8S_CLIENT_H
#define ARL_K8S_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "err.h"
#include "k8s/k8s_throttle.h"
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
	struct arl_k8s_throttle *throttle;
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

/* --- watches ------------------------------------------------------------------------- */

struct arl_k8s_watch;

/*
 * Lists @plural in @ns with @selector (so that a missing CRD or a forbidden watch fails
 * here), then streams changes from a thread of its own. When @cancel_fd (may be -1) turns
 * readable, every waiter returns ARL_K8S_WAIT_CANCELLED. *out only on success.
 */
int arl_k8s_watch_start(struct arl_k8s *c, const char *api, const char *plural, const char *ns,
                        const char *selector, int cancel_fd, struct arl_k8s_watch **out,
                        struct arl_err *err);
/* Stops the stream, joins its thread and frees everything. NULL is a no-op. */
void arl_k8s_watch_stop(struct arl_k8s_watch *w);

/* Starts keeping the latest state of object @name; call before creating it. */
void arl_k8s_watch_track(struct arl_k8s_watch *w, const char *name);
/*
 * Stops keeping @name once the server reports it gone (at once when it already is): call
 * after deleting it. arl_k8s_watch_drain() waits for these.
 */
void arl_k8s_watch_forget(struct arl_k8s_watch *w, const char *name);
/* Stops keeping @name at once (an object that stays, or was never created). */
void arl_k8s_watch_untrack(struct arl_k8s_watch *w, const char *name);
/*
 * Waits until every forgotten object was reported deleted, @deadline_ms passes, or the
 * stream has been failing to reconnect for a few seconds (an unreachable server would
 * report nothing); returns how many remain.
 */
size_t arl_k8s_watch_drain(struct arl_k8s_watch *w, int64_t deadline_ms);

/*
 * Called with the watch's lock held, on the latest object (NULL before the first event) and
 * whether it was deleted; returns non-zero when the wait is over. It must not block; it may
 * copy what it needs into @arg.
 */
typedef int (*arl_k8s_watch_fn)(const cJSON *obj, bool deleted, void *arg);

enum arl_k8s_wait {
	ARL_K8S_WAIT_DONE,
	ARL_K8S_WAIT_TIMEOUT,
	ARL_K8S_WAIT_CANCELLED,
	ARL_K8S_WAIT_ERROR, /* the watch failed for good (err says why) */
};

/*
 * Blocks until @fn says done for @name (tracked), @deadline_ms passes (arl_now_ms clock;
 * 0: none), the cancel fd fires, or the watch fails.
 */
enum arl_k8s_wait arl_k8s_watch_wait(struct arl_k8s_watch *w, const char *name, arl_k8s_watch_fn fn,
                                     void *arg, int64_t deadline_ms, struct arl_err *err);

#endif
