/*
 * DESIGN
 *
 * Handles. libcurl easy handles are never used by two threads at once; the share handle
 * carries the DNS cache and TLS session IDs between them, behind one mutex per lock class.
 * Connections are deliberately not in the share handle: libcurl documents
 * CURL_LOCK_DATA_CONNECT as unsupported across concurrent threads (a known libcurl bug), so
 * instead each easy handle keeps its own live connection and handles are lent from a LIFO
 * free list: a worker borrows the most recently returned handle, whose keep-alive connection
 * to the API server is still open, and returns it after the request. A run with N workers
 * thus holds at most N connections, plus one per watch stream (k8s_watch.c borrows a handle
 * for each stream), and reuses them; TLS resumption makes the rare new one cheap. curl_easy_reset() before every request clears the previous request's options but
 * keeps the handle's connection.
 *
 * Retries. A request is tried again only when repeating it cannot do harm (GET, DELETE of a
 * named object) or when the harm is detectable (POST of a named object: a 409 AlreadyExists
 * after an earlier try ended without a clear answer means that try created it). Backoff is
 * exponential with equal jitter, at least what Retry-After asks, and never past the caller's
 * deadline. Every try, retries included, passes through the token bucket. A request with a
 * throttle holds one of its slots from the first try to the answer, backoff sleeps included
 * (so that a few requests probe a refusing server while the rest wait their turn), reports
 * every refused try to it, and gives the slot up before retrying when the window shrank
 * below the slots held.
 */
#include "k8s/k8s_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "k8s/k8s_client_internal.h"
#include "k8s/k8s_creds.h"
#include "k8s/k8s_text.h"
#include "util.h"
#include "banned.h"

#define K8S_MAX_BODY           (16u << 20)
#define K8S_TIMEOUT_MS         30000
#define K8S_CONNECT_TIMEOUT_MS 10000
#define K8S_MAX_TRIES          10
#define K8S_BACKOFF_BASE_MS    200
#define K8S_BACKOFF_MAX_MS     5000
#define K8S_RETRY_AFTER_MAX_MS 30000
#define K8S_USER_AGENT         "arl-batch/" ARL_VERSION

/* --- small helpers ------------------------------------------------------------------- */

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Sleeps @ms unless @cancel_fd turns readable; returns -1 when it did. */
int arl_k8s_sleep_ms(int64_t ms, int cancel_fd)
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
uint32_t arl_k8s_jitter_rand(void)
{
	static _Thread_local uint32_t x;

	if (!x)
		x = (uint32_t)now_us() ^ (uint32_t)(uintptr_t)&x ^ 0x9e3779b9u;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return x;
}

/* --- JSON getters -------------------------------------------------------------------- */

static const cJSON *get_path(const cJSON *obj, const char *path)
{
	const char *p = path;

	while (obj && *p) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		char key[128];

		if (n >= sizeof(key) || !cJSON_IsObject(obj))
			return NULL;
		memcpy(key, p, n);
		key[n] = '\0';
		obj = cJSON_GetObjectItemCaseSensitive(obj, key);
		p += n + (dot ? 1 : 0);
	}
	return obj;
}

const char *arl_k8s_get_str(const cJSON *obj, const char *path)
{
	const cJSON *v = get_path(obj, path);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

int arl_k8s_get_int(const cJSON *obj, const char *path, int64_t min, int64_t max, int64_t *out)
{
	const cJSON *v = get_path(obj, path);
	double d;

	if (!cJSON_IsNumber(v))
		return -1;
	d = cJSON_GetNumberValue(v);
	if (d != d || d < -9.0e15 || d > 9.0e15 || d != (double)(int64_t)d || d < (double)min ||
	    d > (double)max)
		return -1;
	*out = (int64_t)d;
	return 0;
}

char *arl_k8s_path(const char *api, const char *ns, const char *plural, const char *name)
{
	char *ens = ns ? curl_easy_escape(NULL, ns, 0) : NULL;
	char *ename = name ? curl_easy_escape(NULL, name, 0) : NULL;
	char *p;

	if (ens)
		p = arl_xasprintf("%s/namespaces/%s/%s%s%s", api, ens, plural, ename ? "/" : "",
		                  ename ? ename : "");
	else
		p = arl_xasprintf("%s/%s%s%s", api, plural, ename ? "/" : "", ename ? ename : "");
	curl_free(ens);
	curl_free(ename);
	return p;
}

/* --- the client ---------------------------------------------------------------------- */

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *userp)
{
	struct arl_k8s *c = userp;

	(void)h;
	(void)access;
	if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_lock(&c->share_mu[data]);
}

/* libcurl pairs every lock with an unlock of the same class; one mutex per class. */
static void share_unlock(CURL *h, curl_lock_data data, void *userp)
{
	struct arl_k8s *c = userp;

	(void)h;
	if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_unlock(&c->share_mu[data]);
}

int arl_k8s_new(struct arl_k8s **out, struct arl_kubeconfig *kc, const struct arl_k8s_opts *o,
                struct arl_err *err)
{
	struct arl_k8s *c = arl_xcalloc(1, sizeof(*c));

	c->kc = kc;
	if (o)
		c->o = *o;
	if (c->o.qps <= 0)
		c->o.qps = ARL_K8S_DEFAULT_QPS;
	if (c->o.burst <= 0)
		c->o.burst = ARL_K8S_DEFAULT_BURST;
	if (c->o.timeout_ms <= 0)
		c->o.timeout_ms = K8S_TIMEOUT_MS;
	if (c->o.connect_timeout_ms <= 0)
		c->o.connect_timeout_ms = K8S_CONNECT_TIMEOUT_MS;
	if (c->o.max_tries <= 0)
		c->o.max_tries = K8S_MAX_TRIES;
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
		arl_k8s_free(c);
		return arl_error(err, ARL_E_BACKEND, "cannot set up libcurl's share handle");
	}
	*out = c;
	return 0;
}

void arl_k8s_free(struct arl_k8s *c)
{
	struct arl_k8s_easy *e, *next;

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
	arl_kubeconfig_free(c->kc);
	free(c);
}

struct arl_kubeconfig *arl_k8s_config(struct arl_k8s *c)
{
	return c->kc;
}

void arl_k8s_get_stats(struct arl_k8s *c, struct arl_k8s_stats *out)
{
	out->requests = atomic_load(&c->requests);
	out->retries = atomic_load(&c->retries);
	out->watch_connects = atomic_load(&c->watch_connects);
	out->relists = atomic_load(&c->relists);
}

void arl_k8s_resp_release(struct arl_k8s_resp *r)
{
	cJSON_Delete(r->body);
	r->body = NULL;
}

/*
 * Lends a handle: the most recently returned one (LIFO), whose keep-alive connection is the
 * likeliest to still be open. A new handle is made when all are in use, so the pool grows to
 * the number of concurrent requests and no further.
 */
struct arl_k8s_easy *arl_k8s_easy_get(struct arl_k8s *c)
{
	struct arl_k8s_easy *e;

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

void arl_k8s_easy_put(struct arl_k8s *c, struct arl_k8s_easy *e)
{
	pthread_mutex_lock(&c->pool_mu);
	e->next = c->free_easy;
	c->free_easy = e;
	pthread_mutex_unlock(&c->pool_mu);
}

/* Takes one token from the bucket, sleeping for it; -1 when cancelled or past @deadline. */
int arl_k8s_rate_limit(struct arl_k8s *c, int64_t deadline_ms, int cancel_fd)
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
	return arl_k8s_sleep_ms((wait_us + 999) / 1000, cancel_fd);
}

/* --- one HTTP exchange --------------------------------------------------------------- */

/*
 * Body bytes. Plain requests collect the body (up to its max, then the transfer fails with
 * "too big"); watches hand every complete line to on_line and keep only the unfinished
 * tail, so the max bounds one event, not the stream.
 */
static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
	struct arl_k8s_xfer *x = arg;
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

/* Headers: only Retry-After matters (429 and 503 answers may carry it). */
static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
	struct arl_k8s_xfer *x = arg;
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
	return len;
}

/*
 * libcurl calls this at least once a second even on an idle transfer: the one place a
 * blocking request can notice cancellation (or a watch its stop flag) without signals.
 */
static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct arl_k8s_xfer *x = arg;

	(void)dt, (void)dn, (void)ut, (void)un;
	if (x->on_tick)
		x->on_tick(x->line_arg);
	if (x->stop && atomic_load(x->stop))
		return 1;
	if (x->cancel_fd >= 0 && arl_fd_readable(x->cancel_fd)) {
		x->cancelled = true;
		return 1;
	}
	return 0;
}

/*
 * Sets up @h for one request. @timeout_ms 0 means none (watches, which rely on the server's
 * timeoutSeconds, TCP keep-alive and the low-speed limit instead).
 */
int arl_k8s_setup(struct arl_k8s *c, CURL *h, const char *method, const char *url, const char *body,
                  const char *ctype, int64_t timeout_ms, struct arl_k8s_xfer *x, char *errbuf,
                  struct curl_slist **hdrs, struct arl_err *err)
{
	char ct[128];

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
	curl_easy_setopt(h, CURLOPT_USERAGENT, K8S_USER_AGENT);
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
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
		snprintf(ct, sizeof(ct), "Content-Type: %s", ctype);
		*hdrs = curl_slist_append(*hdrs, ct);
	}
	*hdrs = curl_slist_append(*hdrs, "Accept: application/json");
	/* No "Expect: 100-continue" round trip for large bodies. */
	*hdrs = curl_slist_append(*hdrs, "Expect:");
	if (arl_kubeconfig_curl_setup(c->kc, h, err) < 0 ||
	    arl_kubeconfig_curl_auth(c->kc, h, hdrs, err) < 0)
		return -1;
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, *hdrs);
	return 0;
}

/* Parses @len bytes at @p, which must be followed by a NUL (cJSON wants it inside the length). */
cJSON *arl_k8s_parse_json(const char *p, size_t len)
{
	const char *end = NULL;

	return cJSON_ParseWithLengthOpts(p, len + 1, &end, 1);
}

void arl_k8s_free_headers(struct curl_slist *h)
{
	/* The list holds the Authorization header: wipe it before it goes back to malloc. */
	for (struct curl_slist *i = h; i; i = i->next)
		explicit_bzero(i->data, strlen(i->data));
	curl_slist_free_all(h);
}

/* "create sandboxes in namespace 'x'", "delete tasks 't' in namespace 'x'". */
static void describe(const struct arl_k8s_req *r, char *buf, size_t len)
{
	bool named = r->name && strcmp(r->verb ? r->verb : "", "create") &&
	             strcmp(r->verb ? r->verb : "", "list") &&
	             strcmp(r->verb ? r->verb : "", "watch");

	snprintf(buf, len, "%s %s%s%s%s%s%s%s", r->verb ? r->verb : r->method,
	         r->resource ? r->resource : r->path, named ? " '" : "", named ? r->name : "",
	         named ? "'" : "", r->namespace ? " in namespace '" : "",
	         r->namespace ? r->namespace : "", r->namespace ? "'" : "");
}

/* The server's explanation: Status.message, else the start of a non-JSON body, on one line. */
void arl_k8s_server_message(const cJSON *body, const struct arl_buf *raw, char *buf, size_t len)
{
	const char *msg = NULL;
	size_t n = 0;

	if (cJSON_IsObject(body))
		msg = arl_k8s_get_str(body, "message");
	if (!msg && !body && raw->len)
		msg = raw->p;
	buf[0] = '\0';
	for (; msg && *msg && n + 1 < len; msg++)
		buf[n++] = *msg == '\n' || *msg == '\r' || *msg == '\t' ? ' ' : *msg;
	buf[n] = '\0';
}

/*
 * The message for a non-2xx answer: which verb on which object, then the server's reason.
 * 401/403 lead with the refusal, since the fix (credentials, RBAC) is not in the job file.
 */
void arl_k8s_http_error(const struct arl_k8s_req *r, long status, const cJSON *body,
                        const struct arl_buf *raw, struct arl_err *err)
{
	char what[300], msg[300];
	const char *sep;

	describe(r, what, sizeof(what));
	arl_k8s_server_message(body, raw, msg, sizeof(msg));
	sep = msg[0] ? ": " : "";
	switch (status) {
	case 401:
		arl_error(
		    err, ARL_E_BACKEND,
		    "unauthorized: cannot %s: the server rejected the credentials (HTTP 401)%s%s",
		    what, sep, msg);
		break;
	case 403:
		arl_error(err, ARL_E_BACKEND, "forbidden: cannot %s%s%s", what, sep, msg);
		break;
	case 400:
	case 422:
		arl_error(err, ARL_E_BACKEND, "cannot %s: invalid (HTTP %ld)%s%s", what, status,
		          sep, msg);
		break;
	case 404:
		arl_error(err, ARL_E_BACKEND, "cannot %s: not found%s%s", what, sep, msg);
		break;
	default:
		arl_error(err, ARL_E_BACKEND, "cannot %s: HTTP %ld%s%s", what, status, sep, msg);
		break;
	}
}

/* Answers worth trying again: overload (429, 503), a proxy's or the server's hiccup (5xx). */
static bool transient_status(long status)
{
	return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

/*
 * Transport failures worth trying again: refused or reset connections, timeouts, a peer
 * that closed before answering. TLS verification failures and bad URLs are not retried:
 * they will fail the same way every time.
 */
static bool transient_curl(CURLcode rc)
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

/* Does the object a create was refused for (409) carry r->owner_label? One GET. */
static bool owned(struct arl_k8s *c, const struct arl_k8s_req *r)
{
	struct arl_k8s_req get = *r;
	struct arl_k8s_resp resp = ARL_K8S_RESP_INIT;
	struct arl_err ignored = ARL_ERR_INIT;
	const char *eq = r->owner_label ? strchr(r->owner_label, '=') : NULL;
	const cJSON *labels, *v;
	char *base, *ename, *key, *path;
	bool yes = false;

	if (!eq || !r->name)
		return false;
	base = arl_xstrndup(r->path, strcspn(r->path, "?"));
	ename = curl_easy_escape(NULL, r->name, 0);
	path = arl_xasprintf("%s/%s", base, ename);
	get.path = path;
	get.method = "GET";
	get.verb = "get";
	get.body = NULL;
	get.retry = ARL_K8S_RETRY_SAFE;
	get.owner_label = NULL;
	/* Not through the window: the create holds a slot already, and may hold the last one. */
	get.throttle = NULL;
	get.max_tries = 0;
	key = arl_xstrndup(r->owner_label, (size_t)(eq - r->owner_label));
	if (arl_k8s_request(c, &get, &resp, &ignored) == 0) {
		labels = cJSON_GetObjectItemCaseSensitive(
		    cJSON_GetObjectItemCaseSensitive(resp.body, "metadata"), "labels");
		v = cJSON_GetObjectItemCaseSensitive(labels, key);
		yes = cJSON_IsString(v) && !strcmp(v->valuestring, eq + 1);
	}
	arl_k8s_resp_release(&resp);
	free(key);
	free(path);
	curl_free(ename);
	free(base);
	return yes;
}

int arl_k8s_request(struct arl_k8s *c, const struct arl_k8s_req *r, struct arl_k8s_resp *resp,
                    struct arl_err *err)
{
	const char *ctype = r->content_type               ? r->content_type
	                    : !strcmp(r->method, "PATCH") ? "application/merge-patch+json"
	                                                  : "application/json";
	char *url = arl_xasprintf("%s%s", arl_kubeconfig_base_url(c->kc), r->path);
	char *body = r->body ? cJSON_PrintUnformatted(r->body) : NULL;
	char what[300], errbuf[CURL_ERROR_SIZE];
	bool ambiguous = false, refreshed = false, yield;
	int64_t backoff = K8S_BACKOFF_BASE_MS;
	struct arl_err last = ARL_ERR_INIT;
	struct arl_k8s_throttle_slot slot = ARL_K8S_THROTTLE_SLOT_INIT;
	/* "As many as the deadline allows" needs a deadline. */
	int max_tries = r->max_tries > 0                     ? r->max_tries
	                : r->max_tries < 0 && r->deadline_ms ? INT_MAX
	                                                     : c->o.max_tries;
	int ret = -1;

	memset(resp, 0, sizeof(*resp));
	describe(r, what, sizeof(what));
	for (int try = 1;; try++) {
		struct arl_k8s_xfer x = {.body = {.max = r->max_body ? r->max_body : K8S_MAX_BODY},
		                         .cancel_fd = r->cancel_fd};
		struct curl_slist *hdrs = NULL;
		struct arl_k8s_easy *e;
		int64_t timeout = c->o.timeout_ms, delay;
		long status = 0;
		bool transient;
		CURLcode rc;

		/*
		 * Until the next try starts, @last keeps the previous try's error: when the
		 * deadline ends the wait below, that error is the cause worth reporting.
		 */
		cJSON_Delete(resp->body);
		resp->body = NULL;
		if (r->throttle && !slot.held) {
			enum arl_k8s_throttle_wait w = arl_k8s_throttle_acquire(
			    r->throttle, &slot, r->deadline_ms, r->cancel_fd);

			if (w != ARL_K8S_THROTTLE_OK) {
				resp->cancelled = w == ARL_K8S_THROTTLE_CANCELLED;
				arl_error(
				    &last, ARL_E_BACKEND,
				    "cannot %s: deadline reached waiting for a free slot in "
				    "the creation window (it shrinks while the server refuses)",
				    what);
				goto fail;
			}
		}
		if (arl_fd_readable(r->cancel_fd) ||
		    arl_k8s_rate_limit(c, r->deadline_ms, r->cancel_fd) < 0) {
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
		if (!(e = arl_k8s_easy_get(c))) {
			arl_error(&last, ARL_E_NOMEM, "cannot %s: cannot create a curl handle",
			          what);
			goto fail;
		}
		arl_k8s_throttle_sent(r->throttle, &slot);
		if (arl_k8s_setup(c, e->h, r->method, url, body, ctype, timeout, &x, errbuf, &hdrs,
		                  &last) < 0) {
			arl_k8s_free_headers(hdrs);
			arl_k8s_easy_put(c, e);
			arl_err_prefix(&last, "cannot %s", what);
			goto fail;
		}
		atomic_fetch_add(&c->requests, 1);
		if (try > 1)
			atomic_fetch_add(&c->retries, 1);
		rc = curl_easy_perform(e->h);
		curl_easy_getinfo(e->h, CURLINFO_RESPONSE_CODE, &status);
		arl_k8s_free_headers(hdrs);
		curl_easy_setopt(e->h, CURLOPT_HTTPHEADER, NULL);
		arl_k8s_easy_put(c, e);
		resp->status = rc == CURLE_OK ? status : 0;
		resp->tries = try;
		if (x.cancelled) {
			resp->cancelled = true;
			arl_error(&last, ARL_E_CANCELLED, "cannot %s: cancelled", what);
			arl_buf_release(&x.body);
			goto fail;
		}
		if (x.too_big) {
			arl_error(&last, ARL_E_LIMIT,
			          "cannot %s: the response is larger than the limit of %zu bytes",
			          what, x.body.max);
			arl_buf_release(&x.body);
			goto fail;
		}
		if (rc != CURLE_OK) {
			arl_error(&last, ARL_E_BACKEND, "cannot %s: %s", what,
			          errbuf[0] ? errbuf : curl_easy_strerror(rc));
			transient = transient_curl(rc);
			/* The request may have reached the server before the connection broke. */
			ambiguous = ambiguous || (rc != CURLE_COULDNT_CONNECT &&
			                          rc != CURLE_COULDNT_RESOLVE_HOST);
		} else {
			if (x.body.len)
				resp->body = arl_k8s_parse_json(x.body.p, x.body.len);
			if (status >= 200 && status < 300) {
				arl_buf_release(&x.body);
				ret = 0;
				goto out;
			}
			if (status == 409 && r->retry == ARL_K8S_RETRY_CREATE &&
			    (ambiguous || owned(c, r))) {
				resp->existed = true;
				arl_buf_release(&x.body);
				ret = 0;
				goto out;
			}
			if (status == 401 && !refreshed && arl_kubeconfig_invalidate(c->kc)) {
				/* An expired exec credential or a rotated token: fetch it again once. */
				refreshed = true;
				arl_buf_release(&x.body);
				try--;
				continue;
			}
			arl_k8s_http_error(r, status, resp->body, &x.body, &last);
			transient = transient_status(status);
			ambiguous = ambiguous || status >= 500;
		}
		arl_buf_release(&x.body);
		/* Every refused try is news for the window, the last one included. */
		yield = transient && arl_k8s_throttle_refused(r->throttle, &slot);
		if (!transient || r->retry == ARL_K8S_RETRY_NONE || try >= max_tries)
			goto fail;
		/* Equal jitter: half the backoff, plus up to the other half at random. */
		delay =
		    backoff / 2 + (int64_t)(arl_k8s_jitter_rand() % (uint32_t)(backoff / 2 + 1));
		if (x.retry_after_ms > delay)
			delay = x.retry_after_ms > K8S_RETRY_AFTER_MAX_MS ? K8S_RETRY_AFTER_MAX_MS
			                                                  : x.retry_after_ms;
		backoff = backoff * 2 > K8S_BACKOFF_MAX_MS ? K8S_BACKOFF_MAX_MS : backoff * 2;
		if (r->deadline_ms && arl_now_ms() + delay >= r->deadline_ms)
			goto fail;
		/* Beyond a window that shrank: wait in line again, after the backoff. */
		if (yield)
			arl_k8s_throttle_release(r->throttle, &slot, false);
		if (arl_k8s_sleep_ms(delay, r->cancel_fd) < 0) {
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
	arl_k8s_throttle_release(r->throttle, &slot, ret == 0);
	cJSON_free(body);
	free(url);
	return ret;
}
