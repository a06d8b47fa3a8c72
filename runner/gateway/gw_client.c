/*
 * DESIGN
 *
 * Which requests are repeated (http/http.h's retry loop does the repeating):
 * - create: never once it may have reached the gateway. The gateway has no client token, so a
 *   second POST after a lost answer would make a second session and leak the first. Only a 429
 *   (the rate limiter answers before any handler runs) and a connection that was never made
 *   are tried again, each on a fresh connection (libcurl resends a request on a reused
 *   connection found dead, which could reach the handler twice). Any other failure fails the
 *   attempt as infra; a session it may have made is reaped by its idleTimeoutSeconds.
 * - delete, get, poll, download, upload: repeating them changes nothing (a second DELETE is a
 *   404, which counts as done; an upload writes the same bytes to the same path).
 * - execute: its body carries the operationID, and the gateway answers a repeated one with the
 *   same operation, so it is repeated like a GET.
 */
#include "gateway/gw_client.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "buf.h"
#include "sha256.h"
#include "spawn.h"
#include "util.h"
#include "banned.h"

struct arl_gw {
	struct arl_http *http;
	char *url;  /* without a trailing slash */
	char *auth; /* "Authorization: Bearer KEY", or NULL; wiped when freed */
};

struct arl_gw *arl_gw_new(struct arl_http *http, const char *url, const char *key)
{
	struct arl_gw *g = arl_xcalloc(1, sizeof(*g));
	size_t n = strlen(url);

	while (n > 0 && url[n - 1] == '/')
		n--;
	g->http = http;
	g->url = arl_xstrndup(url, n);
	if (key && *key)
		g->auth = arl_xasprintf("Authorization: Bearer %s", key);
	return g;
}

void arl_gw_free(struct arl_gw *g)
{
	if (!g)
		return;
	if (g->auth) {
		explicit_bzero(g->auth, strlen(g->auth));
		free(g->auth);
	}
	free(g->url);
	free(g);
}

const char *arl_gw_url(const struct arl_gw *g)
{
	return g->url;
}

void arl_gw_resp_release(struct arl_gw_resp *r)
{
	cJSON_Delete(r->json);
	r->json = NULL;
	arl_buf_release(&r->raw);
}

void arl_gw_uuid(char out[37])
{
	unsigned char b[16];
	size_t got = 0;

	while (got < sizeof(b)) {
		ssize_t n = getrandom(b + got, sizeof(b) - got, 0);

		if (n > 0)
			got += (size_t)n;
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* variant 10 */
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	         b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
	         b[13], b[14], b[15]);
}

/* The gateway's {"error","detail"}, else the body's start, on one line. */
static void message_of(const cJSON *json, const struct arl_buf *raw, char *buf, size_t len)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(json, "error");
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(json, "detail");
	char tmp[600];
	size_t n = 0;
	const char *src;

	if (cJSON_IsString(e))
		snprintf(tmp, sizeof(tmp), "%s%s%s%s", e->valuestring,
		         cJSON_IsString(d) ? " (" : "", cJSON_IsString(d) ? d->valuestring : "",
		         cJSON_IsString(d) ? ")" : "");
	else
		snprintf(tmp, sizeof(tmp), "%.*s",
		         raw->p ? (int)(raw->len > 300 ? 300 : raw->len) : 0, raw->p ? raw->p : "");
	for (src = tmp; *src && n + 1 < len; src++)
		buf[n++] = *src == '\n' || *src == '\r' || *src == '\t' ? ' ' : *src;
	buf[n] = '\0';
}

void arl_gw_message(const struct arl_gw_resp *r, char *buf, size_t len)
{
	message_of(r->json, &r->raw, buf, len);
}

/* One call's state for the shared loop's hooks. */
struct gw_req {
	struct arl_gw *g;
	const char *what;
	enum { GW_PLAIN, GW_CREATE, GW_DELETE, GW_FILE } kind;
	char sha256[65];
	int64_t size;
};

static int gw_setup(void *arg, CURL *h, struct curl_slist **hdrs, struct arl_err *err)
{
	struct gw_req *q = arg;

	(void)h;
	(void)err;
	if (q->g->auth)
		*hdrs = curl_slist_append(*hdrs, q->g->auth);
	return 0;
}

static enum arl_http_verdict gw_judge(void *arg, long status, const struct arl_buf *body,
                                      bool ambiguous)
{
	struct gw_req *q = arg;

	(void)ambiguous;
	if (q->kind == GW_DELETE && (status == 404 || status == 410))
		return ARL_HTTP_ACCEPT; /* already gone */
	/* The agent refused the file (no such file, a relative path...): final, not a hiccup. */
	if (q->kind == GW_FILE && status == 500 && body->p && strstr(body->p, "executor error"))
		return ARL_HTTP_FAIL;
	/* A create's 5xx may come after the session was made: never repeated blindly. */
	if (q->kind == GW_CREATE && status >= 500)
		return ARL_HTTP_FAIL;
	return ARL_HTTP_DEFAULT;
}

static void gw_refused(void *arg, long status, const struct arl_buf *raw, struct arl_err *err)
{
	struct gw_req *q = arg;
	cJSON *json = raw->len ? cJSON_ParseWithLength(raw->p, raw->len) : NULL;
	char msg[400];

	message_of(json, raw, msg, sizeof(msg));
	cJSON_Delete(json);
	switch (status) {
	case 401:
		arl_error(
		    err, ARL_E_BACKEND,
		    "unauthorized: cannot %s: the gateway %s refused the API key (HTTP 401%s%s); "
		    "check the key bound to it ($ARL_API_KEY, $ARL_GATEWAY_CREDENTIALS)",
		    q->what, q->g->url, msg[0] ? ": " : "", msg);
		break;
	case 403:
		arl_error(err, ARL_E_BACKEND, "forbidden: cannot %s at %s (HTTP 403%s%s)", q->what,
		          q->g->url, msg[0] ? ": " : "", msg);
		break;
	default:
		arl_error(err, ARL_E_BACKEND, "cannot %s at %s: HTTP %ld%s%s", q->what, q->g->url,
		          status, msg[0] ? ": " : "", msg);
		break;
	}
}

/* Trailers of a download (and headers: a new status line starts a new answer). */
static void gw_header(void *arg, const char *line, size_t len)
{
	struct gw_req *q = arg;
	char val[80];
	size_t i, k = 0;

	if (len >= 5 && !strncmp(line, "HTTP/", 5)) {
		q->sha256[0] = '\0';
		q->size = -1;
		return;
	}
	if (len > 13 && !strncasecmp(line, "X-ARL-SHA256:", 13))
		i = 13;
	else if (len > 17 && !strncasecmp(line, "X-ARL-Size-Bytes:", 17))
		i = 17;
	else
		return;
	while (i < len && line[i] == ' ')
		i++;
	while (i < len && k + 1 < sizeof(val) && line[i] != '\r' && line[i] != '\n')
		val[k++] = line[i++];
	val[k] = '\0';
	if (!strncasecmp(line, "X-ARL-SHA256:", 13)) {
		if (k == 64)
			memcpy(q->sha256, val, 65);
	} else {
		int64_t v;

		if (arl_parse_i64(val, 0, INT64_MAX, &v) == 0)
			q->size = v;
	}
}

static char *esc(const char *s)
{
	char *e = curl_easy_escape(NULL, s, 0);
	char *out = arl_xstrdup(e ? e : "");

	curl_free(e);
	return out;
}

static size_t step_answer(const struct arl_gw_call *c)
{
	return c->max_body ? c->max_body : ARL_GW_STEP_ANSWER(ARL_SPAWN_DEFAULT_CAPTURE);
}

static int call(struct arl_gw *g, const char *method, const char *path, const char *what, int kind,
                enum arl_http_retry retry, const char *body, size_t body_len, const char *ctype,
                const char *const *headers, size_t max_body, const struct arl_gw_call *c,
                struct arl_gw_resp *resp, bool keep_raw, struct arl_err *err)
{
	struct gw_req q = {.g = g, .what = what, .kind = kind, .size = -1};
	struct arl_http_req r = ARL_HTTP_REQ_INIT;
	struct arl_http_resp hr;
	char *url = arl_xasprintf("%s%s", g->url, path);
	int ret;

	memset(resp, 0, sizeof(*resp));
	resp->size = -1;
	r.method = method;
	r.url = url;
	r.body = body;
	r.body_len = body_len;
	r.content_type = ctype;
	r.headers = headers;
	r.retry = retry;
	r.what = what;
	r.deadline_ms = c->deadline_ms;
	r.timeout_ms = c->timeout_ms;
	r.cancel_fd = c->cancel_fd;
	r.max_tries = c->max_tries;
	r.throttle = c->throttle;
	r.cancel_grace_ms = c->cancel_grace_ms;
	r.max_body = max_body ? max_body : c->max_body ? c->max_body : ARL_GW_SMALL_ANSWER;
	r.fresh_connect = kind == GW_CREATE;
	r.arg = &q;
	r.setup = gw_setup;
	r.judge = gw_judge;
	r.refused = gw_refused;
	r.on_header = gw_header;
	ret = arl_http_request(g->http, &r, &hr, err);
	resp->status = hr.status;
	resp->cancelled = hr.cancelled;
	resp->ambiguous = hr.ambiguous;
	resp->tries = hr.tries;
	memcpy(resp->sha256, q.sha256, sizeof(resp->sha256));
	resp->size = q.size;
	if (keep_raw && hr.status >= 200 && hr.status < 300) {
		resp->raw = hr.body;
		hr.body = (struct arl_buf)ARL_BUF_INIT;
	} else {
		if (hr.body.len)
			resp->json = cJSON_ParseWithLength(hr.body.p, hr.body.len);
		resp->raw = hr.body;
		hr.body = (struct arl_buf)ARL_BUF_INIT;
	}
	arl_http_resp_release(&hr);
	free(url);
	return ret;
}

int arl_gw_create(struct arl_gw *g, const cJSON *body, const struct arl_gw_call *c,
                  struct arl_gw_resp *resp, struct arl_err *err)
{
	char *b = cJSON_PrintUnformatted(body);
	int rc = call(g, "POST", "/v1/sessions", "create a session", GW_CREATE,
	              ARL_HTTP_RETRY_UNSENT, b, strlen(b), NULL, NULL, 0, c, resp, false, err);

	cJSON_free(b);
	return rc;
}

int arl_gw_delete(struct arl_gw *g, const char *id, const struct arl_gw_call *c,
                  struct arl_gw_resp *resp, struct arl_err *err)
{
	char *e = esc(id), *path = arl_xasprintf("/v1/sessions/%s", e);
	char what[200];
	int rc;

	snprintf(what, sizeof(what), "delete session '%.100s'", id);
	rc = call(g, "DELETE", path, what, GW_DELETE, ARL_HTTP_RETRY_SAFE, NULL, 0, NULL, NULL, 0,
	          c, resp, false, err);
	free(path);
	free(e);
	return rc;
}

int arl_gw_get(struct arl_gw *g, const char *id, const struct arl_gw_call *c,
               struct arl_gw_resp *resp, struct arl_err *err)
{
	char *e = esc(id), *path = arl_xasprintf("/v1/sessions/%s", e);
	char what[200];
	int rc;

	snprintf(what, sizeof(what), "get session '%.100s'", id);
	rc = call(g, "GET", path, what, GW_PLAIN, ARL_HTTP_RETRY_SAFE, NULL, 0, NULL, NULL, 0, c,
	          resp, false, err);
	free(path);
	free(e);
	return rc;
}

int arl_gw_execute(struct arl_gw *g, const char *id, const cJSON *body, const struct arl_gw_call *c,
                   struct arl_gw_resp *resp, struct arl_err *err)
{
	char *e = esc(id), *path = arl_xasprintf("/v1/sessions/%s/execute", e);
	char *b = cJSON_PrintUnformatted(body);
	char what[200];
	int rc;

	snprintf(what, sizeof(what), "execute in session '%.100s'", id);
	rc = call(g, "POST", path, what, GW_PLAIN, ARL_HTTP_RETRY_SAFE, b, strlen(b), NULL, NULL,
	          step_answer(c), c, resp, false, err);
	cJSON_free(b);
	free(path);
	free(e);
	return rc;
}

int arl_gw_operation(struct arl_gw *g, const char *id, const char *op, const struct arl_gw_call *c,
                     struct arl_gw_resp *resp, struct arl_err *err)
{
	char *e = esc(id), *eo = esc(op);
	char *path = arl_xasprintf("/v1/sessions/%s/operations/%s", e, eo);
	char what[200];
	int rc;

	snprintf(what, sizeof(what), "poll operation %.40s of session '%.100s'", op, id);
	rc = call(g, "GET", path, what, GW_PLAIN, ARL_HTTP_RETRY_SAFE, NULL, 0, NULL, NULL,
	          step_answer(c), c, resp, false, err);
	free(path);
	free(eo);
	free(e);
	return rc;
}

int arl_gw_upload(struct arl_gw *g, const char *id, const char *path, const void *data, size_t len,
                  const struct arl_gw_call *c, struct arl_gw_resp *resp, struct arl_err *err)
{
	char *e = esc(id), *p = arl_xasprintf("/v1/sessions/%s/upload-file", e);
	struct arl_sha256 sha;
	char hex[65], what[300];
	char *h_path, *h_sha;
	const char *headers[3];
	int rc;

	arl_sha256_init(&sha);
	arl_sha256_update(&sha, data, len);
	arl_sha256_hex(&sha, hex);
	arl_sha256_release(&sha);
	/* A header line ends at a newline: a path holding one cannot be sent. */
	if (strpbrk(path, "\r\n")) {
		free(p);
		free(e);
		memset(resp, 0, sizeof(*resp));
		return arl_error(err, ARL_E_BACKEND, "cannot upload to a path with a newline");
	}
	h_path = arl_xasprintf("X-ARL-Path: %s", path);
	h_sha = arl_xasprintf("X-ARL-SHA256: %s", hex);
	headers[0] = h_path;
	headers[1] = h_sha;
	headers[2] = NULL;
	snprintf(what, sizeof(what), "upload %.100s to session '%.100s'", path, id);
	/* A NULL body would be no body at all: an empty file is an empty one. */
	rc = call(g, "POST", p, what, GW_FILE, ARL_HTTP_RETRY_SAFE, data ? data : "", len,
	          "application/octet-stream", headers, 0, c, resp, false, err);
	free(h_path);
	free(h_sha);
	free(p);
	free(e);
	return rc;
}

int arl_gw_download(struct arl_gw *g, const char *id, const char *path, size_t max,
                    const struct arl_gw_call *c, struct arl_gw_resp *resp, struct arl_err *err)
{
	char *e = esc(id), *p = arl_xasprintf("/v1/sessions/%s/download-file", e);
	cJSON *body = cJSON_CreateObject();
	char *b;
	char what[300], hex[65];
	int rc = -1;

	cJSON_AddStringToObject(body, "path", path);
	b = cJSON_PrintUnformatted(body);
	snprintf(what, sizeof(what), "download %.100s from session '%.100s'", path, id);
	/* A body cut after it began arrives as a 200 without trailers: fetch it again. */
	for (int i = 0; i < 3; i++) {
		struct arl_sha256 sha;

		if (i)
			arl_gw_resp_release(resp);
		if (call(g, "POST", p, what, GW_FILE, ARL_HTTP_RETRY_SAFE, b, strlen(b), NULL, NULL,
		         max + 1, c, resp, true, err) < 0)
			goto out;
		arl_sha256_init(&sha);
		arl_sha256_update(&sha, resp->raw.p ? resp->raw.p : "", resp->raw.len);
		arl_sha256_hex(&sha, hex);
		arl_sha256_release(&sha);
		if (resp->sha256[0] && !strcasecmp(hex, resp->sha256) &&
		    (resp->size < 0 || (size_t)resp->size == resp->raw.len)) {
			arl_err_clear(err);
			rc = 0;
			goto out;
		}
		arl_err_clear(err);
		arl_error(err, ARL_E_BACKEND, "cannot %s: %s (got %zu bytes, sha256 %s)", what,
		          resp->sha256[0] ? "the content does not match the X-ARL-SHA256 trailer"
		                          : "no X-ARL-SHA256 trailer (the transfer was cut)",
		          resp->raw.len, hex);
	}
out:
	cJSON_free(b);
	cJSON_Delete(body);
	free(p);
	free(e);
	return rc;
}
