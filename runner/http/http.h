/*
 * The HTTP machinery the remote backends share (kubernetes, gateway): libcurl easy handles
 * lent from a pool, a client-side token-bucket rate limit, timeouts on every request, bounded
 * response bodies, and retries with exponential backoff and equal jitter for 429 (honouring
 * Retry-After), 5xx and connection failures, for the requests that are safe to repeat. Creates
 * may also go through a window of requests in flight that adapts to refusals (throttle.h).
 *
 * What differs between the APIs (authentication, TLS, error messages, which answers count as
 * success) comes in through hooks on each request; the retry loop is the same for all.
 *
 * Connections are never shared: each libcurl easy handle keeps its own keep-alive connection,
 * and a handle is lent to one thread at a time from a free list that grows to the number of
 * requests in flight. What the handles share, through one CURLSH handle behind lock
 * callbacks, is the DNS cache and TLS session IDs only (libcurl does not support sharing
 * connections across threads; see http.c).
 *
 * Thread-safety: everything may be called from any thread once arl_http_new() returned, except
 * arl_http_free(), which must come after all other use.
 */
#ifndef ARL_HTTP_H
#define ARL_HTTP_H

#include <curl/curl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "http/throttle.h"

struct arl_http_opts {
	double qps;                 /* requests per second, sustained; 0: 50 */
	int burst;                  /* bucket size; 0: 100 */
	int64_t timeout_ms;         /* one try, all of it; 0: 30 s */
	int64_t connect_timeout_ms; /* 0: 10 s */
	int max_tries;              /* tries of a retryable request; 0: 10 */
};
#define ARL_HTTP_DEFAULT_QPS   50
#define ARL_HTTP_DEFAULT_BURST 100

struct arl_http;

int arl_http_new(struct arl_http **out, const struct arl_http_opts *o, struct arl_err *err);
/* NULL is a no-op. */
void arl_http_free(struct arl_http *c);
const struct arl_http_opts *arl_http_opts_of(const struct arl_http *c);

/* Which failures a request may be repeated after. */
enum arl_http_retry {
	ARL_HTTP_RETRY_NONE,   /* never (a POST that makes something new each time) */
	ARL_HTTP_RETRY_SAFE,   /* repeating changes nothing (GET, DELETE, an idempotent POST) */
	ARL_HTTP_RETRY_CREATE, /* a create whose repetition the judge hook can detect */
	/*
	 * A create that cannot be detected when repeated: only tries that surely never
	 * reached the server (connection refused, name not resolved) and answers the judge
	 * leaves to the default rules (a 429 from a rate limiter in front) are repeated.
	 */
	ARL_HTTP_RETRY_UNSENT,
};

/* The judge hook's verdict on an answer (see struct arl_http_req). */
enum arl_http_verdict {
	ARL_HTTP_DEFAULT, /* 2xx: success; 429/5xx: retry as allowed; else failure */
	ARL_HTTP_ACCEPT,  /* success, whatever the status */
	ARL_HTTP_AGAIN,   /* try once more at once (a refreshed credential), not counted */
	ARL_HTTP_FAIL,    /* failure, no retry */
};

struct arl_http_req {
	const char *method; /* "GET", "POST", ... */
	const char *url;
	const char *body; /* NULL: none */
	size_t body_len;
	const char *content_type; /* of @body; NULL: application/json */
	const char *accept;       /* NULL: application/json */
	/* More header lines ("Name: value"), NULL-ended, or NULL. Wiped from the list after. */
	const char *const *headers;
	enum arl_http_retry retry;
	const char *what;    /* what the request does, for messages: "create sessions" */
	int64_t deadline_ms; /* arl_now_ms() clock: no try or backoff past it; 0: none */
	int64_t timeout_ms;  /* one try; 0: the client's (never past @deadline_ms) */
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
	 * Once @cancel_fd is readable, a try in flight goes on this long before it is cut (a
	 * create whose answer names what must be deleted). 0: cut at once.
	 */
	int64_t cancel_grace_ms;
	/* A new connection: libcurl then never resends the request on a dead reused one. */
	bool fresh_connect;
	/* Hooks, all optional, called with @arg. */
	void *arg;
	/* Sets up what the API needs on @h (TLS, credentials), adding header lines to *@hdrs. */
	int (*setup)(void *arg, CURL *h, struct curl_slist **hdrs, struct arl_err *err);
	/*
	 * Judges an answer before the default rules. @ambiguous: an earlier try may have
	 * reached the server (no answer, or a 5xx), so a create may have been done already.
	 */
	enum arl_http_verdict (*judge)(void *arg, long status, const struct arl_buf *body,
	                               bool ambiguous);
	/* The message for a refused answer (else "cannot WHAT: HTTP N: BODY'S START"). */
	void (*refused)(void *arg, long status, const struct arl_buf *body, struct arl_err *err);
	/* Each header line of the answer, trailers included (chunked bodies' trailers). */
	void (*on_header)(void *arg, const char *line, size_t len);
};
#define ARL_HTTP_REQ_INIT                                                                          \
	{                                                                                          \
		.cancel_fd = -1                                                                    \
	}

struct arl_http_resp {
	long status;         /* HTTP status of the last try; 0 when the server never answered */
	struct arl_buf body; /* the last answer's body; release with arl_http_resp_release() */
	bool cancelled;      /* stopped by cancel_fd */
	bool ambiguous;      /* some try may have reached the server without a clear answer */
	int tries;
};
void arl_http_resp_release(struct arl_http_resp *r);

/*
 * Sends a request, retrying as @r->retry allows. Returns 0 for a 2xx answer (or one the judge
 * accepts), -1 otherwise with @err saying what failed and why. @resp is filled in both cases
 * (a 404 is for the caller to judge) and must be released.
 */
int arl_http_request(struct arl_http *c, const struct arl_http_req *r, struct arl_http_resp *resp,
                     struct arl_err *err);

/* Counters since arl_http_new(): requests sent (every try), and retries among them. */
struct arl_http_stats {
	uint64_t requests, retries;
};
void arl_http_get_stats(struct arl_http *c, struct arl_http_stats *out);
/* Counts a request made outside arl_http_request() (a stream). */
void arl_http_count(struct arl_http *c);

/* Answers worth trying again: overload (429, 503), a proxy's or the server's hiccup (5xx). */
bool arl_http_transient_status(long status);
/* Transport failures worth trying again: refused or reset connections, timeouts. */
bool arl_http_transient_curl(CURLcode rc);

/* --- for clients that drive a transfer themselves (watch streams) --------------------- */

struct arl_http_easy {
	CURL *h;
	struct arl_http_easy *next;
};

/* One transfer's state, the body's sink and the header parse. */
struct arl_http_xfer {
	struct arl_buf body;
	bool too_big;
	int64_t retry_after_ms;
	int cancel_fd;
	bool cancelled;
	int64_t cancel_grace_ms, cancel_seen_ms;
	atomic_bool *stop; /* streams: set to end it */
	/* Streams: called for each complete line of the body; returns -1 to end the stream. */
	int (*on_line)(void *arg, const char *line, size_t len);
	void *line_arg;
	bool line_stop;
	void (*on_tick)(void *arg); /* streams: called from the progress callback */
	void (*on_header)(void *arg, const char *line, size_t len);
	void *header_arg;
};

/* Sleeps @ms unless @cancel_fd turns readable; returns -1 when it did. */
int arl_http_sleep_ms(int64_t ms, int cancel_fd);
/* Backoff jitter, per thread: workers that failed together do not retry together. */
uint32_t arl_http_jitter_rand(void);
/* Lends an easy handle (the most recently returned one), or NULL; give it back with put. */
struct arl_http_easy *arl_http_easy_get(struct arl_http *c);
void arl_http_easy_put(struct arl_http *c, struct arl_http_easy *e);
/* Takes one token from the bucket, sleeping for it; -1 when cancelled or past @deadline. */
int arl_http_rate_limit(struct arl_http *c, int64_t deadline_ms, int cancel_fd);
/*
 * Sets up @h for one request into @x (the API's own setup is the caller's). @timeout_ms 0
 * means none (streams). The caller sets CURLOPT_HTTPHEADER and frees *@hdrs with
 * arl_http_free_headers() after the transfer.
 */
void arl_http_setup(struct arl_http *c, CURL *h, const char *method, const char *url,
                    const char *body, size_t body_len, const char *ctype, const char *accept,
                    int64_t timeout_ms, struct arl_http_xfer *x, char *errbuf,
                    struct curl_slist **hdrs);
/* Frees a header list, wiping it first (it may hold an Authorization header). */
void arl_http_free_headers(struct curl_slist *h);

#endif
