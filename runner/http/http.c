/*
 * DESIGN
 *
 * Handles. libcurl easy handles are never used by two threads at once; the share handle
 * carries the DNS cache and TLS session IDs between them, behind one mutex per lock class.
 * Connections are deliberately not in the share handle: libcurl documents
 * CURL_LOCK_DATA_CONNECT as unsupported across concurrent threads (a known libcurl bug), so
 * instead each easy handle keeps its own live connection and handles are lent from a LIFO
 * free list: a worker borrows the most recently returned handle, whose keep-alive connection
 * to the server is still open, and returns it after the request. A run with N workers thus
 * holds at most N connections, plus one per stream, and reuses them; TLS resumption makes the
 * rare new one cheap. curl_easy_reset() before every request clears the previous request's
 * options but keeps the handle's connection.
 *
 * Retries. A request is tried again only when repeating it cannot do harm (SAFE) or when the
 * harm is detectable (CREATE: the judge hook recognises the answer to a repeated create).
 * Backoff is exponential with equal jitter, at least what Retry-After asks, and never past the
 * caller's deadline. Every try, retries included, passes through the token bucket. A request
 * with a throttle holds one of its slots from the first try to the answer, backoff sleeps
 * included (so that a few requests probe a refusing server while the rest wait their turn),
 * reports every refused try to it, and gives the slot up before retrying when the window
 * shrank below the slots held.
 */
#include "http/http.h"

#include <curl/curl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "util.h"
#include "banned.h"

#define HTTP_MAX_BODY           (16u << 20)
#define HTTP_TIMEOUT_MS         30000
#define HTTP_CONNECT_TIMEOUT_MS 10000
#define HTTP_MAX_TRIES          10
#define HTTP_BACKOFF_BASE_MS    200
#define HTTP_BACKOFF_MAX_MS     5000
#define HTTP_RETRY_AFTER_MAX_MS 30000
#define HTTP_USER_AGENT         "arl-batch/" ARL_VERSION

struct arl_http {
	struct arl_http_opts o;
	CURLSH *share;
	pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST]; /* one per lock class, as libcurl asks */
	pthread_mutex_t pool_mu;                       /* lock order: alone */
	struct arl_http_easy *free_easy;
	pthread_mutex_t rl_mu; /* lock order: alone */
	double tokens;
	int64_t rl_last_us;
	atomic_uint_fast64_t requests, retries;
};

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int arl_http_sleep_ms(int64_t ms, int cancel_fd)
{
	struct pollfd p = {.fd = cancel_fd, .events = POLLIN};
	int64_t end = arl_now_ms() + ms;

	for (;;) {
		int64_t left = end - arl_now_ms();
		int rc;

		if (left <= 0)
			return 0;
		rc = poll(cancel_fd >= 0 ? &p : NULL, cancel_fd >= 0 ? 1 : 0,
		          (int)(left > 1000000 ? 1000000 : left));
		if (rc > 0)
			return -1;
	}
}

/*
 * Per-thread xorshift for backoff jitter: rand() is not thread-safe and the quality needed
 * is only "workers that failed together do not retry together".
 */
uint32_t arl_http_jitter_rand(void)
{
	static _Thread_local uint32_t x;

	if (!x)
		x = (uint32_t)now_us() ^ (uint32_t)(uintptr_t)&x ^ 0x9e3779b9u;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return x;
}

/* --- the client ---------------------------------------------------------------------- */

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *userp)
{
	struct arl_http *c = userp;

	(void)h;
	(void)access;
	if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_lock(&c->share_mu[data]);
}

/* libcurl pairs every lock with an unlock of the same class; one mutex per class. */
static void share_unlock(CURL *h, curl_lock_data data, void *userp)
{
	struct arl_http *c = userp;

	(void)h;
	if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_unlock(&c->share_mu[data]);
}

int arl_http_new(struct arl_http **out, const struct arl_http_opts *o, struct arl_err *err)
{
	struct arl_http *c = arl_xcalloc(1, sizeof(*c));

	if (o)
		c->o = *o;
	if (c->o.qps <= 0)
		c->o.qps = ARL_HTTP_DEFAULT_QPS;
	if (c->o.burst <= 0)
		c->o.burst = ARL_HTTP_DEFAULT_BURST;
	if (c->o.timeout_ms <= 0)
		c->o.timeout_ms = HTTP_TIMEOUT_MS;
	if (c->o.connect_timeout_ms <= 0)
		c->o.connect_timeout_ms = HTTP_CONNECT_TIMEOUT_MS;
	if (c->o.max_tries <= 0)
		c->o.max_tries = HTTP_MAX_TRIES;
	c->tokens = c->o.burst;
	c->rl_last_us = now_us();
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&c->share_mu[i], NULL);
	pthread_mutex_init(&c->pool_mu, NULL);
	pthread_mutex_init(&c->rl_mu, NULL);
	if (!(c->share = curl_share_init()) ||
	    curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock) != CURLSHE_OK ||
	    curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock) != CURLSHE_OK ||
	    curl_share_setopt(c->share, CURLSHOPT_USERDATA, c) != CURLSHE_OK ||
	    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK ||
	    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) !=
	        CURLSHE_OK) {
		arl_http_free(c);
		return arl_error(err, ARL_E_BACKEND, "cannot set up libcurl's share handle");
	}
	*out = c;
	return 0;
}

void arl_http_free(struct arl_http *c)
{
	struct arl_http_easy *e, *next;

	if (!c)
		return;
	for (e = c->free_easy; e; e = next) {
		next = e->next;
		curl_easy_cleanup(e->h);
		free(e);
	}
	if (c->share)
		curl_share_cleanup(c->share);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&c->share_mu[i]);
	pthread_mutex_destroy(&c->pool_mu);
	pthread_mutex_destroy(&c->rl_mu);
	free(c);
}

const struct arl_http_opts *arl_http_opts_of(const struct arl_http *c)
{
	return &c->o;
}

void arl_http_get_stats(struct arl_http *c, struct arl_http_stats *out)
{
	out->requests = atomic_load(&c->requests);
	out->retries = atomic_load(&c->retries);
}

void arl_http_count(struct arl_http *c)
{
	atomic_fetch_add(&c->requests, 1);
}

void arl_http_resp_release(struct arl_http_resp *r)
{
	arl_buf_release(&r->body);
}

/*
 * Lends a handle: the most recently returned one (LIFO), whose keep-alive connection is the
 * likeliest to still be open. A new handle is made when all are in use, so the pool grows to
 * the number of concurrent requests and no further.
 */
struct arl_http_easy *arl_http_easy_get(struct arl_http *c)
{
	struct arl_http_easy *e;

	pthread_mutex_lock(&c->pool_mu);
	e = c->free_easy;
	if (e)
		c->free_easy = e->next;
	pthread_mutex_unlock(&c->pool_mu);
	if (!e) {
		e = arl_xcalloc(1, sizeof(*e));
		if (!(e->h = curl_easy_init())) {
			free(e);
			return NULL;
		}
	}
	return e;
}

void arl_http_easy_put(struct arl_http *c, struct arl_http_easy *e)
{
	pthread_mutex_lock(&c->pool_mu);
	e->next = c->free_easy;
	c->free_easy = e;
	pthread_mutex_unlock(&c->pool_mu);
}

int arl_http_rate_limit(struct arl_http *c, int64_t deadline_ms, int cancel_fd)
{
	int64_t now, wait_us = 0;

	pthread_mutex_lock(&c->rl_mu);
	now = now_us();
	c->tokens += (double)(now - c->rl_last_us) * c->o.qps / 1e6;
	if (c->tokens > c->o.burst)
		c->tokens = c->o.burst;
	c->rl_last_us = now;
	/* Reserve the token now, even if it must be waited for: waiters queue up fairly. */
	c->tokens -= 1;
	if (c->tokens < 0)
		wait_us = (int64_t)(-c->tokens * 1e6 / c->o.qps);
	pthread_mutex_unlock(&c->rl_mu);
	if (!wait_us)
		return 0;
	if (deadline_ms && arl_now_ms() + wait_us / 1000 > deadline_ms)
		return -1;
	return arl_http_sleep_ms((wait_us + 999) / 1000, cancel_fd);
}

/* --- one HTTP exchange --------------------------------------------------------------- */

/*
 * Body bytes. Plain requests collect the body (up to its max, then the transfer fails with
 * "too big"); streams hand every complete line to on_line and keep only the unfinished tail,
 * so the max bounds one line, not the stream.
 */
static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
	struct arl_http_xfer *x = arg;
	size_t len = size * n;

	if (arl_buf_add(&x->body, data, len) < 0) {
		x->too_big = true;
		return 0;
	}
	if (!x->on_line)
		return len;
	for (;;) {
		char *nl = memchr(x->body.p, '\n', x->body.len);
		size_t used;

		if (!nl)
			break;
		used = (size_t)(nl - x->body.p) + 1;
		*nl = '\0'; /* the line is parsed in place */
		if (used > 1 && x->on_line(x->line_arg, x->body.p, used - 1) < 0) {
			x->line_stop = true;
			return 0;
		}
		memmove(x->body.p, x->body.p + used, x->body.len - used);
		x->body.len -= used;
		x->body.p[x->body.len] = '\0';
	}
	return len;
}

/* Headers: Retry-After (429 and 503 answers may carry it), then the caller's hook. */
static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
	struct arl_http_xfer *x = arg;
	size_t len = size * n;
	int64_t secs;
	char val[32];

	if (len > 12 && !strncasecmp(data, "Retry-After:", 12)) {
		size_t i = 12, k = 0;

		while (i < len && data[i] == ' ')
			i++;
		while (i < len && k + 1 < sizeof(val) && data[i] != '\r' && data[i] != '\n')
			val[k++] = data[i++];
		val[k] = '\0';
		/* Seconds only; an HTTP date is rare from an API server and falls back to backoff. */
		if (arl_parse_i64(val, 0, 3600, &secs) == 0)
			x->retry_after_ms = secs * 1000;
	}
	if (x->on_header)
		x->on_header(x->header_arg, data, len);
	return len;
}

/*
 * libcurl calls this at least once a second even on an idle transfer: the one place a
 * blocking request can notice cancellation (or a stream its stop flag) without signals.
 */
static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct arl_http_xfer *x = arg;

	(void)dt, (void)dn, (void)ut, (void)un;
	if (x->on_tick)
		x->on_tick(x->line_arg);
	if (x->stop && atomic_load(x->stop))
		return 1;
	if (x->cancel_fd >= 0 && arl_fd_readable(x->cancel_fd)) {
		if (!x->cancel_seen_ms)
			x->cancel_seen_ms = arl_now_ms();
		if (arl_now_ms() - x->cancel_seen_ms < x->cancel_grace_ms)
			return 0;
		x->cancelled = true;
		return 1;
	}
	return 0;
}

void arl_http_setup(struct arl_http *c, CURL *h, const char *method, const char *url,
                    const char *body, size_t body_len, const char *ctype, const char *accept,
                    int64_t timeout_ms, struct arl_http_xfer *x, char *errbuf,
                    struct curl_slist **hdrs)
{
	char line[160];

	curl_easy_reset(h);
	errbuf[0] = '\0';
	curl_easy_setopt(h, CURLOPT_SHARE, c->share);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)c->o.connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 30L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 15L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(h, CURLOPT_USERAGENT, HTTP_USER_AGENT);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	if (strcmp(method, "GET"))
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
		snprintf(line, sizeof(line), "Content-Type: %s",
		         ctype ? ctype : "application/json");
		*hdrs = curl_slist_append(*hdrs, line);
	} else if (!strcmp(method, "POST")) {
		/* An empty POST, not one that waits for a body curl would read from stdin. */
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
	}
	snprintf(line, sizeof(line), "Accept: %s", accept ? accept : "application/json");
	*hdrs = curl_slist_append(*hdrs, line);
	/* No "Expect: 100-continue" round trip for large bodies. */
	*hdrs = curl_slist_append(*hdrs, "Expect:");
}

void arl_http_free_headers(struct curl_slist *h)
{
	/* The list may hold the Authorization header: wipe it before it goes back to malloc. */
	for (struct curl_slist *i = h; i; i = i->next)
		explicit_bzero(i->data, strlen(i->data));
	curl_slist_free_all(h);
}

bool arl_http_transient_status(long status)
{
	return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

/*
 * TLS verification failures and bad URLs are not retried: they will fail the same way every
 * time.
 */
bool arl_http_transient_curl(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return true;
	default:
		return false;
	}
}

/* "cannot WHAT: HTTP N: the body's start on one line". */
static void default_refused(const struct arl_http_req *r, long status, const struct arl_buf *b,
                            struct arl_err *err)
{
	char msg[300];
	size_t n = 0;

	for (size_t i = 0; b->p && i < b->len && n + 1 < sizeof(msg); i++)
		msg[n++] = b->p[i] == '\n' || b->p[i] == '\r' || b->p[i] == '\t' ? ' ' : b->p[i];
	msg[n] = '\0';
	arl_error(err, ARL_E_BACKEND, "cannot %s: HTTP %ld%s%s", r->what ? r->what : r->method,
	          status, n ? ": " : "", msg);
}

int arl_http_request(struct arl_http *c, const struct arl_http_req *r, struct arl_http_resp *resp,
                     struct arl_err *err)
{
	const char *what = r->what ? r->what : r->method;
	char errbuf[CURL_ERROR_SIZE];
	bool again_used = false, yield;
	int64_t backoff = HTTP_BACKOFF_BASE_MS;
	struct arl_err last = ARL_ERR_INIT;
	struct arl_http_throttle_slot slot = ARL_HTTP_THROTTLE_SLOT_INIT;
	/* "As many as the deadline allows" needs a deadline. */
	int max_tries = r->max_tries > 0                     ? r->max_tries
	                : r->max_tries < 0 && r->deadline_ms ? INT_MAX
	                                                     : c->o.max_tries;
	int ret = -1;

	memset(resp, 0, sizeof(*resp));
	for (int try = 1;; try++) {
		struct arl_http_xfer x = {
		    .body = {.max = r->max_body ? r->max_body : HTTP_MAX_BODY},
		    .cancel_fd = r->cancel_fd,
		    .cancel_grace_ms = r->cancel_grace_ms,
		    .on_header = r->on_header,
		    .header_arg = r->arg};
		struct curl_slist *hdrs = NULL;
		struct arl_http_easy *e;
		int64_t timeout = r->timeout_ms > 0 ? r->timeout_ms : c->o.timeout_ms, delay;
		enum arl_http_verdict v = ARL_HTTP_DEFAULT;
		long status = 0;
		bool transient, sent;
		CURLcode rc;

		/*
		 * Until the next try starts, @last keeps the previous try's error: when the
		 * deadline ends the wait below, that error is the cause worth reporting.
		 */
		arl_buf_release(&resp->body);
		if (r->throttle && !slot.held) {
			enum arl_http_throttle_wait w = arl_http_throttle_acquire(
			    r->throttle, &slot, r->deadline_ms, r->cancel_fd);

			if (w != ARL_HTTP_THROTTLE_OK) {
				resp->cancelled = w == ARL_HTTP_THROTTLE_CANCELLED;
				arl_error(
				    &last, ARL_E_BACKEND,
				    "cannot %s: deadline reached waiting for a free slot in "
				    "the creation window (it shrinks while the server refuses)",
				    what);
				goto fail;
			}
		}
		/* A try that has not started is not started once cancelled, grace or not. */
		if (arl_fd_readable(r->cancel_fd) ||
		    arl_http_rate_limit(c, r->deadline_ms, r->cancel_fd) < 0) {
			resp->cancelled = arl_fd_readable(r->cancel_fd);
			arl_error(&last, resp->cancelled ? ARL_E_CANCELLED : ARL_E_BACKEND,
			          "cannot %s: %s", what,
			          resp->cancelled ? "cancelled" : "deadline reached");
			goto fail;
		}
		if (r->deadline_ms) {
			int64_t left = r->deadline_ms - arl_now_ms();

			if (left <= 0) {
				arl_error(&last, ARL_E_BACKEND, "cannot %s: deadline reached",
				          what);
				goto fail;
			}
			if (left < timeout)
				timeout = left;
		}
		arl_err_clear(&last);
		if (!(e = arl_http_easy_get(c))) {
			arl_error(&last, ARL_E_NOMEM, "cannot %s: cannot create a curl handle",
			          what);
			goto fail;
		}
		arl_http_throttle_sent(r->throttle, &slot);
		arl_http_setup(c, e->h, r->method, r->url, r->body, r->body_len, r->content_type,
		               r->accept, timeout, &x, errbuf, &hdrs);
		if (r->fresh_connect)
			curl_easy_setopt(e->h, CURLOPT_FRESH_CONNECT, 1L);
		for (size_t i = 0; r->headers && r->headers[i]; i++)
			hdrs = curl_slist_append(hdrs, r->headers[i]);
		if (r->setup && r->setup(r->arg, e->h, &hdrs, &last) < 0) {
			arl_http_free_headers(hdrs);
			arl_http_easy_put(c, e);
			arl_err_prefix(&last, "cannot %s", what);
			goto fail;
		}
		curl_easy_setopt(e->h, CURLOPT_HTTPHEADER, hdrs);
		atomic_fetch_add(&c->requests, 1);
		if (try > 1)
			atomic_fetch_add(&c->retries, 1);
		rc = curl_easy_perform(e->h);
		curl_easy_getinfo(e->h, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_setopt(e->h, CURLOPT_HTTPHEADER, NULL);
		arl_http_free_headers(hdrs);
		arl_http_easy_put(c, e);
		resp->status = rc == CURLE_OK ? status : 0;
		resp->tries = try;
		if (x.cancelled) {
			resp->cancelled = true;
			/* It may have reached the server: a create must be assumed done. */
			resp->ambiguous = true;
			arl_error(&last, ARL_E_CANCELLED, "cannot %s: cancelled", what);
			arl_buf_release(&x.body);
			goto fail;
		}
		if (x.too_big) {
			/* Answered: it reached the server (a create made what it made). */
			resp->ambiguous = true;
			arl_error(&last, ARL_E_LIMIT,
			          "cannot %s: the response is larger than the limit of %zu bytes",
			          what, x.body.max);
			arl_buf_release(&x.body);
			goto fail;
		}
		if (rc != CURLE_OK) {
			arl_error(&last, ARL_E_BACKEND, "cannot %s: %s", what,
			          errbuf[0] ? errbuf : curl_easy_strerror(rc));
			transient = arl_http_transient_curl(rc);
			/* The request may have reached the server before the connection broke. */
			sent = rc != CURLE_COULDNT_CONNECT && rc != CURLE_COULDNT_RESOLVE_HOST;
			resp->ambiguous = resp->ambiguous || sent;
			if (sent && r->retry == ARL_HTTP_RETRY_UNSENT)
				transient = false;
			arl_buf_release(&x.body);
		} else {
			resp->body = x.body;
			x.body = (struct arl_buf)ARL_BUF_INIT;
			if (r->judge)
				v = r->judge(r->arg, status, &resp->body, resp->ambiguous);
			if (v == ARL_HTTP_ACCEPT ||
			    (v == ARL_HTTP_DEFAULT && status >= 200 && status < 300)) {
				ret = 0;
				goto out;
			}
			if (v == ARL_HTTP_AGAIN && !again_used) {
				again_used = true;
				try--;
				continue;
			}
			if (r->refused)
				r->refused(r->arg, status, &resp->body, &last);
			else
				default_refused(r, status, &resp->body, &last);
			transient = v == ARL_HTTP_DEFAULT && arl_http_transient_status(status);
			resp->ambiguous = resp->ambiguous || status >= 500;
		}
		/* Every refused try is news for the window, the last one included. */
		yield = transient && arl_http_throttle_refused(r->throttle, &slot);
		if (!transient || r->retry == ARL_HTTP_RETRY_NONE || try >= max_tries)
			goto fail;
		/* Equal jitter: half the backoff, plus up to the other half at random. */
		delay =
		    backoff / 2 + (int64_t)(arl_http_jitter_rand() % (uint32_t)(backoff / 2 + 1));
		if (x.retry_after_ms > delay)
			delay = x.retry_after_ms > HTTP_RETRY_AFTER_MAX_MS ? HTTP_RETRY_AFTER_MAX_MS
			                                                   : x.retry_after_ms;
		backoff = backoff * 2 > HTTP_BACKOFF_MAX_MS ? HTTP_BACKOFF_MAX_MS : backoff * 2;
		if (r->deadline_ms && arl_now_ms() + delay >= r->deadline_ms)
			goto fail;
		/* Beyond a window that shrank: wait in line again, after the backoff. */
		if (yield)
			arl_http_throttle_release(r->throttle, &slot, false);
		if (arl_http_sleep_ms(delay, r->cancel_fd) < 0) {
			resp->cancelled = true;
			goto fail;
		}
	}
fail:
	if (resp->cancelled)
		arl_error(err, ARL_E_CANCELLED, "cannot %s: cancelled", what);
	else if (resp->tries > 1)
		arl_error(err, last.code, "%s (after %d tries)", last.msg, resp->tries);
	else
		arl_error(err, last.code, "%s", last.msg);
out:
	arl_http_throttle_release(r->throttle, &slot, ret == 0);
	return ret;
}
