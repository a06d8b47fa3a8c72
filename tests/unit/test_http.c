/*
 * The shared HTTP client (http/http.h) and the gateway client on it (gateway/gw_client.h),
 * against a scripted server in a thread: which failures are repeated (a create that may have
 * reached the server never is), Retry-After, the judge's verdicts, and a download's trailer
 * SHA. Plus the gateway's uuids and its artifact lister's output.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "gateway/gw_client.h"
#include "gateway/gw_collect.h"
#include "http/http.h"
#include "sha256.h"
#include "util.h"
#include "banned.h"

#define MAX_ACTIONS 8

/* What the server does with each request, in order: an answer, or "RESET" (drop it). */
struct server {
	int fd, port;
	pthread_t th;
	const char *actions[MAX_ACTIONS];
	size_t nactions;
	/* What the server saw; the server thread writes it under mu (before it answers). */
	pthread_mutex_t mu;
	int requests_seen;
	char last_seen[4096];
};

/* The requests seen, and the last one's text (copied under the lock). */
static int seen(struct server *s, char *last, size_t len)
{
	int n;

	pthread_mutex_lock(&s->mu);
	n = s->requests_seen;
	if (last)
		snprintf(last, len, "%s", s->last_seen);
	pthread_mutex_unlock(&s->mu);
	return n;
}

/* Reads one request (headers and a Content-Length body); 0 at EOF. */
static int read_request(int c, char *buf, size_t cap)
{
	size_t n = 0;
	char *end = NULL;
	long clen = 0;

	while (!end) {
		ssize_t r = read(c, buf + n, cap - 1 - n);

		if (r <= 0)
			return 0;
		n += (size_t)r;
		buf[n] = '\0';
		end = strstr(buf, "\r\n\r\n");
	}
	const char *cl = strcasestr(buf, "Content-Length:");

	if (cl)
		clen = strtol(cl + 15, NULL, 10);
	while ((long)(n - (size_t)(end + 4 - buf)) < clen && n + 1 < cap) {
		ssize_t r = read(c, buf + n, cap - 1 - n);

		if (r <= 0)
			break;
		n += (size_t)r;
		buf[n] = '\0';
	}
	return 1;
}

static void *serve(void *arg)
{
	struct server *s = arg;

	char buf[4096];

	for (size_t i = 0; i < s->nactions; i++) {
		int c = accept(s->fd, NULL, NULL);

		if (c < 0)
			break;
		if (!read_request(c, buf, sizeof(buf))) {
			close(c);
			i--;
			continue;
		}
		pthread_mutex_lock(&s->mu);
		s->requests_seen++;
		memcpy(s->last_seen, buf, sizeof(buf));
		pthread_mutex_unlock(&s->mu);
		if (!strcmp(s->actions[i], "RESET")) {
			struct linger l = {1, 0};

			setsockopt(c, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
		} else {
			(void)!write(c, s->actions[i], strlen(s->actions[i]));
		}
		close(c);
	}
	return NULL;
}

static void server_start(struct server *s)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);

	pthread_mutex_init(&s->mu, NULL);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true((s->fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s->fd, 16), 0);
	assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &len), 0);
	s->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&s->th, NULL, serve, s), 0);
}

static void server_stop(struct server *s)
{
	shutdown(s->fd, SHUT_RDWR);
	pthread_join(s->th, NULL);
	close(s->fd);
	pthread_mutex_destroy(&s->mu);
}

static const char ok200[] = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}";
static const char created[] =
    "HTTP/1.1 201 Created\r\nConnection: close\r\nContent-Length: 11\r\n\r\n{\"id\":\"s1\"}";
static const char busy429[] = "HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nRetry-After: "
                              "1\r\nContent-Length: 31\r\n\r\n{\"error\":\"rate limit exceeded\"}";
static const char busy429_now[] = "HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\n"
                                  "Retry-After: 0\r\nContent-Length: 2\r\n\r\n{}";
static const char err500[] = "HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n"
                             "Content-Length: 32\r\n\r\n{\"error\":\"pool at max capacity\"}";
static const char gone404[] = "HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: "
                              "32\r\n\r\n{\"error\":\"session s1 not found\"}";
static const char gone410[] = "HTTP/1.1 410 Gone\r\nConnection: close\r\nContent-Length: "
                              "2\r\n\r\n{}";
static const char bad400[] =
    "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}";

static struct arl_http *client(void)
{
	struct arl_http *h = NULL;
	struct arl_err err = ARL_ERR_INIT;
	struct arl_http_opts o = {.max_tries = 5};

	assert_int_equal(arl_http_new(&h, &o, &err), 0);
	return h;
}

/* One request of @retry kind to the server's /x; returns its result. */
static int request(struct server *s, enum arl_http_retry retry, struct arl_http_resp *resp,
                   struct arl_err *err)
{
	struct arl_http *h = client();
	struct arl_http_req r = ARL_HTTP_REQ_INIT;
	char url[64];
	int rc;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", s->port);
	r.method = "POST";
	r.url = url;
	r.body = "{}";
	r.body_len = 2;
	r.retry = retry;
	r.what = "create x";
	rc = arl_http_request(h, &r, resp, err);
	arl_http_free(h);
	return rc;
}

/* A create that may have reached the server (reset after it was read) is not sent again. */
static void test_unsent_not_repeated_after_reset(void **state)
{
	struct server s = {.actions = {"RESET", created}, .nactions = 2};
	struct arl_http_resp resp;
	struct arl_err err = ARL_ERR_INIT;

	(void)state;
	server_start(&s);
	assert_int_equal(request(&s, ARL_HTTP_RETRY_UNSENT, &resp, &err), -1);
	assert_int_equal(resp.tries, 1);
	assert_true(resp.ambiguous);
	assert_int_equal(seen(&s, NULL, 0), 1);
	arl_http_resp_release(&resp);
	/* The same with a request that is safe to repeat: tried again, and done. */
	arl_err_clear(&err);
	assert_int_equal(request(&s, ARL_HTTP_RETRY_SAFE, &resp, &err), 0);
	assert_int_equal(resp.status, 201);
	assert_int_equal(seen(&s, NULL, 0), 2);
	arl_http_resp_release(&resp);
	server_stop(&s);
}

/* A 429 is refused before any handler: a create is tried again, after Retry-After. */
static void test_429_repeated_after_retry_after(void **state)
{
	struct server s = {.actions = {busy429, created}, .nactions = 2};
	struct arl_http_resp resp;
	struct arl_err err = ARL_ERR_INIT;
	int64_t t0 = arl_now_ms();

	(void)state;
	server_start(&s);
	assert_int_equal(request(&s, ARL_HTTP_RETRY_UNSENT, &resp, &err), 0);
	assert_int_equal(resp.tries, 2);
	assert_int_equal(resp.status, 201);
	/* It waited what Retry-After asked (1 s), not its first backoff (100-200 ms). */
	assert_true(arl_now_ms() - t0 >= 1000);
	arl_http_resp_release(&resp);
	server_stop(&s);
}

/* A refusal that repeating cannot cure (400) is not repeated; its message names the status. */
static void test_400_not_repeated(void **state)
{
	struct server s = {.actions = {bad400, ok200}, .nactions = 2};
	struct arl_http_resp resp;
	struct arl_err err = ARL_ERR_INIT;

	(void)state;
	server_start(&s);
	assert_int_equal(request(&s, ARL_HTTP_RETRY_SAFE, &resp, &err), -1);
	assert_int_equal(resp.tries, 1);
	assert_int_equal(resp.status, 400);
	assert_non_null(strstr(err.msg, "cannot create x: HTTP 400"));
	arl_http_resp_release(&resp);
	/* Let the server's second action go. */
	arl_err_clear(&err);
	assert_int_equal(request(&s, ARL_HTTP_RETRY_SAFE, &resp, &err), 0);
	arl_http_resp_release(&resp);
	server_stop(&s);
}

static struct arl_gw *gw_of(struct arl_http *h, struct server *s, const char *key)
{
	char url[64];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", s->port);
	return arl_gw_new(h, url, key);
}

/*
 * The gateway's create: a 500 may come after the session was made, so it is never repeated;
 * a 429 is. The key goes out as a Bearer token.
 */
static void test_gw_create(void **state)
{
	struct server s = {.actions = {err500, busy429_now, created}, .nactions = 3};
	struct arl_http *h = client();
	struct arl_gw *g;
	struct arl_gw_call c = ARL_GW_CALL_INIT;
	struct arl_gw_resp resp;
	struct arl_err err = ARL_ERR_INIT;
	cJSON *body = cJSON_CreateObject();
	char msg[200], last[4096];

	(void)state;
	server_start(&s);
	g = gw_of(h, &s, "sekrit");
	cJSON_AddStringToObject(body, "image", "python:3.12");
	c.max_tries = 5;
	assert_int_equal(arl_gw_create(g, body, &c, &resp, &err), -1);
	assert_int_equal(resp.tries, 1);
	assert_int_equal(resp.status, 500);
	assert_true(resp.ambiguous);
	arl_gw_message(&resp, msg, sizeof(msg));
	assert_string_equal(msg, "pool at max capacity");
	assert_null(strstr(err.msg, "sekrit"));
	seen(&s, last, sizeof(last));
	assert_non_null(strstr(last, "Authorization: Bearer sekrit\r\n"));
	assert_non_null(strstr(last, "POST /v1/sessions HTTP/1.1"));
	arl_gw_resp_release(&resp);
	arl_err_clear(&err);
	assert_int_equal(arl_gw_create(g, body, &c, &resp, &err), 0);
	assert_int_equal(resp.tries, 2);
	assert_string_equal(cJSON_GetObjectItem(resp.json, "id")->valuestring, "s1");
	arl_gw_resp_release(&resp);
	cJSON_Delete(body);
	arl_gw_free(g);
	arl_http_free(h);
	server_stop(&s);
}

/* A DELETE answered 404 (or 410, a Redis-backed gateway's tombstone) is done: already gone. */
static void test_gw_delete_404_is_gone(void **state)
{
	char last[4096];
	struct server s = {.actions = {gone404, gone410}, .nactions = 2};
	struct arl_http *h = client();
	struct arl_gw *g;
	struct arl_gw_call c = ARL_GW_CALL_INIT;
	struct arl_gw_resp resp;
	struct arl_err err = ARL_ERR_INIT;

	(void)state;
	server_start(&s);
	g = gw_of(h, &s, NULL);
	if (arl_gw_delete(g, "s1", &c, &resp, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(resp.status, 404);
	seen(&s, last, sizeof(last));
	assert_non_null(strstr(last, "DELETE /v1/sessions/s1 HTTP/1.1"));
	assert_null(strstr(last, "Authorization"));
	arl_gw_resp_release(&resp);
	assert_int_equal(arl_gw_delete(g, "s1", &c, &resp, &err), 0);
	assert_int_equal(resp.status, 410);
	arl_gw_resp_release(&resp);
	arl_gw_free(g);
	arl_http_free(h);
	server_stop(&s);
}

static char *chunked(const char *data, const char *sha)
{
	return arl_xasprintf("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: "
	                     "application/octet-stream\r\nTransfer-Encoding: chunked\r\nTrailer: "
	                     "X-ARL-Size-Bytes\r\nTrailer: X-ARL-SHA256\r\n\r\n%zx\r\n%s\r\n0\r\n"
	                     "X-ARL-Size-Bytes: %zu\r\nX-ARL-SHA256: %s\r\n\r\n",
	                     strlen(data), data, strlen(data), sha);
}

/* A download is kept only when its bytes match the X-ARL-SHA256 trailer. */
static void test_gw_download_checks_trailer(void **state)
{
	struct arl_sha256 sha;
	char hex[65];
	char *good, *bad;
	struct server s = {.nactions = 5};
	struct arl_http *h = client();
	struct arl_gw *g;
	struct arl_gw_call c = ARL_GW_CALL_INIT;
	struct arl_gw_resp resp;
	struct arl_err err = ARL_ERR_INIT;

	(void)state;
	arl_sha256_init(&sha);
	arl_sha256_update(&sha, "hello", 5);
	arl_sha256_hex(&sha, hex);
	arl_sha256_release(&sha);
	good = chunked("hello", hex);
	bad = chunked("hellO", hex);
	/* One corrupt answer then a good one; then three corrupt ones. */
	s.actions[0] = bad;
	s.actions[1] = good;
	s.actions[2] = s.actions[3] = s.actions[4] = bad;
	server_start(&s);
	g = gw_of(h, &s, "k");
	assert_int_equal(arl_gw_download(g, "s1", "/workspace/f", 100, &c, &resp, &err), 0);
	assert_int_equal(resp.raw.len, 5);
	assert_memory_equal(resp.raw.p, "hello", 5);
	assert_string_equal(resp.sha256, hex);
	assert_int_equal(resp.size, 5);
	arl_gw_resp_release(&resp);
	assert_int_equal(arl_gw_download(g, "s1", "/workspace/f", 100, &c, &resp, &err), -1);
	assert_non_null(strstr(err.msg, "does not match the X-ARL-SHA256 trailer"));
	arl_gw_resp_release(&resp);
	arl_gw_free(g);
	arl_http_free(h);
	server_stop(&s);
	free(good);
	free(bad);
}

static void test_gw_uuid(void **state)
{
	char a[37], b[37];

	(void)state;
	arl_gw_uuid(a);
	arl_gw_uuid(b);
	assert_int_equal(strlen(a), 36);
	assert_string_not_equal(a, b);
	assert_int_equal(a[8], '-');
	assert_int_equal(a[14], '4'); /* version 4 */
	assert_non_null(strchr("89ab", a[19]));
}

struct found {
	char lines[8][160];
	int n;
};

static int on_found(void *arg, const struct arl_gw_found *f)
{
	struct found *x = arg;

	snprintf(x->lines[x->n++], sizeof(x->lines[0]), "%c %zu %lld %s %s", f->type, f->spec,
	         (long long)f->size, f->path, f->type == 'X' ? f->reason : "-");
	return 0;
}

/* The lister's lines: paths hex-encoded (spaces, newlines survive), malformed refused. */
static void test_gw_collect_parse(void **state)
{
	struct found x = {.n = 0};
	char out[] = "F 0 5 2f612062\nX 1 0 2f0a78 symlink\nX 1 99 2f79 toolarge\n";
	char bad1[] = "F 0 5 2f6\n";
	char bad2[] = "F 2 5 2f61\n";
	char bad3[] = "F 0 5 2f0061\n";

	(void)state;
	assert_int_equal(arl_gw_collect_parse(out, 2, on_found, &x), 0);
	assert_int_equal(x.n, 3);
	assert_string_equal(x.lines[0], "F 0 5 /a b -");
	assert_string_equal(x.lines[1], "X 1 0 /\nx symlink");
	assert_string_equal(x.lines[2], "X 1 99 /y toolarge");
	assert_int_equal(arl_gw_collect_parse(bad1, 2, on_found, &x), -1); /* odd hex */
	assert_int_equal(arl_gw_collect_parse(bad2, 2, on_found, &x), -1); /* no such pattern */
	assert_int_equal(arl_gw_collect_parse(bad3, 2, on_found, &x), -1); /* a NUL */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_unsent_not_repeated_after_reset),
	    cmocka_unit_test(test_429_repeated_after_retry_after),
	    cmocka_unit_test(test_400_not_repeated),
	    cmocka_unit_test(test_gw_create),
	    cmocka_unit_test(test_gw_delete_404_is_gone),
	    cmocka_unit_test(test_gw_download_checks_trailer),
	    cmocka_unit_test(test_gw_uuid),
	    cmocka_unit_test(test_gw_collect_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
