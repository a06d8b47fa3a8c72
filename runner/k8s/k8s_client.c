/*
 * DESIGN
 *
 * The transport (handles, rate limit, retries, backoff, the creation window) is the shared
 * HTTP client's (http/http.c); this file adds what is Kubernetes: the kubeconfig's TLS and
 * credentials on every try, a 401 that refreshes an exec credential once, a 409 to a create
 * that counts as success when an earlier try made the object (or it carries our label), and
 * messages that name the verb, the resource and the namespace with the Status's message.
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

int arl_k8s_new(struct arl_k8s **out, struct arl_kubeconfig *kc, const struct arl_k8s_opts *o,
                struct arl_err *err)
{
	struct arl_k8s *c = arl_xcalloc(1, sizeof(*c));
	struct arl_http_opts ho = {0};

	c->kc = kc;
	if (o) {
		ho.qps = o->qps;
		ho.burst = o->burst;
		ho.timeout_ms = o->timeout_ms;
		ho.connect_timeout_ms = o->connect_timeout_ms;
		ho.max_tries = o->max_tries;
	}
	if (arl_http_new(&c->http, &ho, err) < 0) {
		arl_k8s_free(c);
		return -1;
	}
	*out = c;
	return 0;
}

void arl_k8s_free(struct arl_k8s *c)
{
	if (!c)
		return;
	arl_http_free(c->http);
	arl_kubeconfig_free(c->kc);
	free(c);
}

struct arl_kubeconfig *arl_k8s_config(struct arl_k8s *c)
{
	return c->kc;
}

void arl_k8s_get_stats(struct arl_k8s *c, struct arl_k8s_stats *out)
{
	struct arl_http_stats hs;

	arl_http_get_stats(c->http, &hs);
	out->requests = hs.requests;
	out->retries = hs.retries;
	out->watch_connects = atomic_load(&c->watch_connects);
	out->relists = atomic_load(&c->relists);
}

void arl_k8s_resp_release(struct arl_k8s_resp *r)
{
	cJSON_Delete(r->body);
	r->body = NULL;
}

/* --- one HTTP exchange --------------------------------------------------------------- */

/* The shared setup (http/http.h), then the kubeconfig's TLS and credentials. */
int arl_k8s_setup(struct arl_k8s *c, CURL *h, const char *method, const char *url, const char *body,
                  const char *ctype, int64_t timeout_ms, struct arl_http_xfer *x, char *errbuf,
                  struct curl_slist **hdrs, struct arl_err *err)
{
	arl_http_setup(c->http, h, method, url, body, body ? strlen(body) : 0, ctype, NULL,
	               timeout_ms, x, errbuf, hdrs);
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

/* What the shared loop asks of a Kubernetes request through its hooks. */
struct k8s_call {
	struct arl_k8s *c;
	const struct arl_k8s_req *r;
	bool refreshed, existed;
};

static int k8s_setup_hook(void *arg, CURL *h, struct curl_slist **hdrs, struct arl_err *err)
{
	struct k8s_call *k = arg;

	if (arl_kubeconfig_curl_setup(k->c->kc, h, err) < 0 ||
	    arl_kubeconfig_curl_auth(k->c->kc, h, hdrs, err) < 0)
		return -1;
	return 0;
}

/*
 * A 409 to a create is success when an earlier try may have made the object, or when the
 * object carries our label (libcurl itself resends a request whose reused connection died
 * before the answer). A 401 refreshes an expired exec credential or rotated token, once.
 */
static enum arl_http_verdict k8s_judge(void *arg, long status, const struct arl_buf *body,
                                       bool ambiguous)
{
	struct k8s_call *k = arg;

	(void)body;
	if (status == 409 && k->r->retry == ARL_K8S_RETRY_CREATE &&
	    (ambiguous || owned(k->c, k->r))) {
		k->existed = true;
		return ARL_HTTP_ACCEPT;
	}
	if (status == 401 && !k->refreshed && arl_kubeconfig_invalidate(k->c->kc)) {
		k->refreshed = true;
		return ARL_HTTP_AGAIN;
	}
	return ARL_HTTP_DEFAULT;
}

static void k8s_refused(void *arg, long status, const struct arl_buf *raw, struct arl_err *err)
{
	struct k8s_call *k = arg;
	cJSON *body = raw->len ? arl_k8s_parse_json(raw->p, raw->len) : NULL;

	arl_k8s_http_error(k->r, status, body, raw, err);
	cJSON_Delete(body);
}

int arl_k8s_request(struct arl_k8s *c, const struct arl_k8s_req *r, struct arl_k8s_resp *resp,
                    struct arl_err *err)
{
	const char *ctype = r->content_type               ? r->content_type
	                    : !strcmp(r->method, "PATCH") ? "application/merge-patch+json"
	                                                  : "application/json";
	char *url = arl_xasprintf("%s%s", arl_kubeconfig_base_url(c->kc), r->path);
	char *body = r->body ? cJSON_PrintUnformatted(r->body) : NULL;
	char what[300];
	struct k8s_call call = {.c = c, .r = r};
	struct arl_http_req hr = ARL_HTTP_REQ_INIT;
	struct arl_http_resp hresp;
	int ret;

	describe(r, what, sizeof(what));
	hr.method = r->method;
	hr.url = url;
	hr.body = body;
	hr.body_len = body ? strlen(body) : 0;
	hr.content_type = ctype;
	hr.retry = r->retry == ARL_K8S_RETRY_NONE   ? ARL_HTTP_RETRY_NONE
	           : r->retry == ARL_K8S_RETRY_SAFE ? ARL_HTTP_RETRY_SAFE
	                                            : ARL_HTTP_RETRY_CREATE;
	hr.what = what;
	hr.deadline_ms = r->deadline_ms;
	hr.cancel_fd = r->cancel_fd;
	hr.max_tries = r->max_tries;
	hr.throttle = r->throttle;
	hr.max_body = r->max_body;
	hr.arg = &call;
	hr.setup = k8s_setup_hook;
	hr.judge = k8s_judge;
	hr.refused = k8s_refused;
	ret = arl_http_request(c->http, &hr, &hresp, err);
	memset(resp, 0, sizeof(*resp));
	resp->status = hresp.status;
	resp->cancelled = hresp.cancelled;
	resp->tries = hresp.tries;
	resp->existed = ret == 0 && call.existed;
	if (hresp.status && hresp.body.len)
		resp->body = arl_k8s_parse_json(hresp.body.p, hresp.body.len);
	arl_http_resp_release(&hresp);
	cJSON_free(body);
	free(url);
	return ret;
}
