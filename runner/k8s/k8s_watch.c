/*
 * DESIGN
 *
 * Watches. One thread per watch reads the newline-delimited JSON event stream and keeps, for
 * each tracked name, the latest object; a waiter sleeps on its entry's condition variable
 * and is woken only by changes to its object, by cancellation or by the watch failing for
 * good. The stream resumes from the last resourceVersion seen (events or bookmarks), and a
 * 410 Gone, as HTTP status or as an ERROR event, triggers a paginated re-list that rebuilds
 * every tracked entry (and marks as deleted those that vanished meanwhile). The cancel fd is
 * checked by the watch thread from libcurl's progress callback (at least once a second), and
 * by each waiter once a second in case the watch thread is stuck in a re-list's retries.
 */
#include "k8s/k8s_watch.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "k8s/k8s_client_internal.h"
#include "k8s/k8s_creds.h"
#include "k8s/k8s_text.h"
#include "util.h"
#include "banned.h"

#define K8S_MAX_WATCH_LINE     (32u << 20) /* one event: a Task with ~1.5 MiB of output, and more */
#define K8S_WATCH_BUCKETS      1024
#define K8S_WATCH_TIMEOUT_S    300   /* server-side end of one watch request (+ up to 60 s) */
#define K8S_WATCH_SILENCE_S    120   /* no byte for this long: the stream is dead, reconnect */
#define K8S_WATCH_FAIL_MS      60000 /* a watch that cannot reconnect for this long fails waits */
#define K8S_DRAIN_UNHEALTHY_MS 3000  /* ... and one failing this long ends a drain */
#define K8S_WAIT_POLL_MS       1000  /* a waiter looks at the cancel fd this often */
#define K8S_LIST_PAGE          500

struct wentry {
	char *name;
	cJSON *obj;   /* the latest object, or NULL before the first event */
	bool seen;    /* an event or a list has shown it */
	bool deleted; /* a DELETED event, or gone from a re-list */
	bool forget;  /* drop the entry once deleted */
	unsigned seq; /* bumped on every change */
	int waiters;
	pthread_cond_t cv;
	struct wentry *next;
};

struct arl_k8s_watch {
	struct arl_k8s *c;
	char *plural, *ns, *path, *selector_q; /* selector_q: URL-escaped */
	struct arl_k8s_req list_req;           /* the re-list's description, for messages */
	int cancel_fd;
	int stop_pipe[2]; /* written once by arl_k8s_watch_stop(): ends re-list retries too */
	pthread_t thread;
	bool thread_started;
	atomic_bool stop;

	pthread_mutex_t mu; /* guards the fields below; lock order: alone, never across I/O */
	pthread_cond_t drain_cv;
	struct wentry *buckets[K8S_WATCH_BUCKETS];
	size_t nforget;
	bool cancelled;
	bool failed;
	int64_t unhealthy_since; /* arl_now_ms() of the first failure in a row; 0: streaming */
	struct arl_err failure;

	/* The watch thread's own. */
	char *rv;
	bool need_list;
	bool got_event;
	struct arl_err stream_err;
};

/* The link that points (or would point) at @name's entry; w->mu held. */
static struct wentry **slot_of(struct arl_k8s_watch *w, const char *name)
{
	struct wentry **p = &w->buckets[arl_k8s_hash32(name) % K8S_WATCH_BUCKETS];

	while (*p && strcmp((*p)->name, name))
		p = &(*p)->next;
	return p;
}

static struct wentry *entry_get(struct arl_k8s_watch *w, const char *name, bool add)
{
	struct wentry **p = slot_of(w, name);

	if (!*p && add) {
		*p = arl_xcalloc(1, sizeof(**p));
		(*p)->name = arl_xstrdup(name);
		arl_cond_init_monotonic(&(*p)->cv);
	}
	return *p;
}

static void entry_free(struct wentry *e)
{
	cJSON_Delete(e->obj);
	pthread_cond_destroy(&e->cv);
	free(e->name);
	free(e);
}

/* Removes a forgotten entry whose object is gone; w->mu held. */
static void entry_drop(struct arl_k8s_watch *w, struct wentry *e)
{
	struct wentry **p = slot_of(w, e->name);

	if (*p != e || e->waiters)
		return;
	*p = e->next;
	if (e->forget && w->nforget && --w->nforget == 0)
		pthread_cond_broadcast(&w->drain_cv);
	entry_free(e);
}

/* Wakes every waiter (cancellation, a failed watch); w->mu held. */
static void broadcast_all(struct arl_k8s_watch *w)
{
	for (size_t i = 0; i < K8S_WATCH_BUCKETS; i++)
		for (struct wentry *e = w->buckets[i]; e; e = e->next)
			if (e->waiters)
				pthread_cond_broadcast(&e->cv);
	pthread_cond_broadcast(&w->drain_cv);
}

/* Stores the new state of a tracked object; takes ownership of @obj. */
static void dispatch(struct arl_k8s_watch *w, cJSON *obj, bool deleted)
{
	const char *name = arl_k8s_get_str(obj, "metadata.name");
	struct wentry *e;

	if (!name) {
		cJSON_Delete(obj);
		return;
	}
	pthread_mutex_lock(&w->mu);
	e = entry_get(w, name, false);
	if (e) {
		cJSON_Delete(e->obj);
		e->obj = obj;
		obj = NULL;
		e->seen = true;
		e->deleted = deleted;
		e->seq++;
		if (e->waiters)
			pthread_cond_broadcast(&e->cv);
		if (e->forget && e->deleted)
			entry_drop(w, e);
	}
	pthread_mutex_unlock(&w->mu);
	cJSON_Delete(obj);
}

/*
 * Turns the run's cancel fd into a flag every waiter sees. Called by the watch thread from
 * libcurl's progress callback and between reconnects, and by each waiter before it sleeps.
 */
static void check_cancel(void *arg)
{
	struct arl_k8s_watch *w = arg;

	if (w->cancel_fd < 0 || !arl_fd_readable(w->cancel_fd))
		return;
	pthread_mutex_lock(&w->mu);
	if (!w->cancelled) {
		w->cancelled = true;
		broadcast_all(w);
	}
	pthread_mutex_unlock(&w->mu);
}

/* Where the next watch resumes: the newest resourceVersion seen (watch thread only). */
static void set_rv(struct arl_k8s_watch *w, const cJSON *obj)
{
	const char *rv = arl_k8s_get_str(obj, "metadata.resourceVersion");

	if (rv && *rv) {
		free(w->rv);
		w->rv = arl_xstrdup(rv);
	}
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Lists everything of the selector, page by page, and rebuilds the tracked entries from it:
 * present ones get the listed object, seen ones that are missing are marked deleted. Sets
 * w->rv to the list's resourceVersion, where the next watch resumes.
 */
static int relist(struct arl_k8s_watch *w, struct arl_err *err)
{
	char **names = NULL, *cont = NULL, *rv = NULL;
	size_t nnames = 0, cap = 0;
	int ret = -1, restarts = 0;

	atomic_fetch_add(&w->c->relists, 1);
	for (;;) {
		struct arl_k8s_req req = w->list_req;
		struct arl_k8s_resp resp = ARL_K8S_RESP_INIT;
		struct arl_err e =
		    ARL_ERR_INIT; /* a 410 is an answer here, not the caller's error */
		char *ec = cont ? curl_easy_escape(NULL, cont, 0) : NULL, *path;
		const cJSON *items, *it;
		const char *next;

		path = arl_xasprintf("%s?labelSelector=%s&limit=%d%s%s", w->path, w->selector_q,
		                     K8S_LIST_PAGE, ec ? "&continue=" : "", ec ? ec : "");
		curl_free(ec);
		req.path = path;
		req.deadline_ms = arl_now_ms() + 120000;
		req.cancel_fd = w->stop_pipe[0];
		if (arl_k8s_request(w->c, &req, &resp, &e) < 0) {
			free(path);
			/* An expired continue token: start the list again, once. */
			if (resp.status == 410 && cont && !restarts++) {
				arl_k8s_resp_release(&resp);
				free(cont);
				cont = NULL;
				for (size_t i = 0; i < nnames; i++)
					free(names[i]);
				nnames = 0;
				continue;
			}
			arl_error(err, e.code, "%s", e.msg);
			arl_k8s_resp_release(&resp);
			goto out;
		}
		free(path);
		items = cJSON_GetObjectItemCaseSensitive(resp.body, "items");
		if (!cJSON_IsObject(resp.body) || (items && !cJSON_IsArray(items))) {
			arl_error(err, ARL_E_PROTO, "cannot list %s in namespace '%s': not a list",
			          w->plural, w->ns);
			arl_k8s_resp_release(&resp);
			goto out;
		}
		if (!rv && arl_k8s_get_str(resp.body, "metadata.resourceVersion"))
			rv = arl_xstrdup(arl_k8s_get_str(resp.body, "metadata.resourceVersion"));
		cJSON_ArrayForEach(it, items)
		{
			const char *name = arl_k8s_get_str(it, "metadata.name");

			if (!name)
				continue;
			ARL_GROW(names, cap, nnames + 1);
			names[nnames++] = arl_xstrdup(name);
		}
		while (items && cJSON_GetArraySize(items) > 0)
			dispatch(w, cJSON_DetachItemFromArray((cJSON *)items, 0), false);
		next = arl_k8s_get_str(resp.body, "metadata.continue");
		free(cont);
		cont = next && *next ? arl_xstrdup(next) : NULL;
		arl_k8s_resp_release(&resp);
		if (!cont)
			break;
	}
	if (nnames)
		qsort(names, nnames, sizeof(*names), name_cmp);
	pthread_mutex_lock(&w->mu);
	for (size_t i = 0; i < K8S_WATCH_BUCKETS; i++) {
		struct wentry *e = w->buckets[i], *next;

		for (; e; e = next) {
			next = e->next;
			if (!e->seen || e->deleted ||
			    (nnames && bsearch(&e->name, names, nnames, sizeof(*names), name_cmp)))
				continue;
			e->deleted = true;
			e->seq++;
			if (e->waiters)
				pthread_cond_broadcast(&e->cv);
			if (e->forget)
				entry_drop(w, e);
		}
	}
	pthread_mutex_unlock(&w->mu);
	free(w->rv);
	w->rv = rv;
	rv = NULL;
	ret = 0;
out:
	for (size_t i = 0; i < nnames; i++)
		free(names[i]);
	free(names);
	free(cont);
	free(rv);
	return ret;
}

/* One line of the watch stream: {"type": ..., "object": {...}}. */
static int on_event(void *arg, const char *line, size_t len)
{
	struct arl_k8s_watch *w = arg;
	cJSON *ev = arl_k8s_parse_json(line, len), *obj;
	const char *type = arl_k8s_get_str(ev, "type");
	int64_t code = 0;
	int ret = 0;

	obj = cJSON_GetObjectItemCaseSensitive(ev, "object");
	if (!type || !cJSON_IsObject(obj)) {
		arl_error(&w->stream_err, ARL_E_PROTO,
		          "watch of %s in namespace '%s': malformed event", w->plural, w->ns);
		ret = -1;
	} else if (!strcmp(type, "ERROR")) {
		if (arl_k8s_get_int(obj, "code", 0, 999, &code) == 0 && code == 410) {
			w->need_list = true;
		} else {
			char msg[300];
			struct arl_buf none = ARL_BUF_INIT;

			arl_k8s_server_message(obj, &none, msg, sizeof(msg));
			arl_error(&w->stream_err, ARL_E_BACKEND,
			          "watch of %s in namespace '%s': error event %lld: %s", w->plural,
			          w->ns, (long long)code, msg);
		}
		ret = -1;
	} else if (!strcmp(type, "BOOKMARK")) {
		set_rv(w, obj);
	} else if (!strcmp(type, "ADDED") || !strcmp(type, "MODIFIED") ||
	           !strcmp(type, "DELETED")) {
		set_rv(w, obj);
		w->got_event = true;
		dispatch(w, cJSON_DetachItemViaPointer(ev, obj), !strcmp(type, "DELETED"));
	}
	cJSON_Delete(ev);
	return ret;
}

/*
 * One watch request, streamed until the server ends it, it breaks, or we stop. Returns 0
 * when it ended normally (or with 410: then w->need_list is set), -1 with @err otherwise;
 * *fatal says retrying is pointless (401, 403, 404).
 */
static int stream(struct arl_k8s_watch *w, bool *fatal, struct arl_err *err)
{
	struct arl_http_xfer x = {.body = {.max = K8S_MAX_WATCH_LINE},
	                          .cancel_fd = -1,
	                          .stop = &w->stop,
	                          .on_line = on_event,
	                          .line_arg = w,
	                          .on_tick = check_cancel};
	struct curl_slist *hdrs = NULL;
	char errbuf[CURL_ERROR_SIZE], *url, *erv = NULL;
	struct arl_http_easy *e;
	long status = 0;
	CURLcode rc;
	int ret = -1;

	*fatal = false;
	arl_err_clear(&w->stream_err);
	if (w->rv)
		erv = curl_easy_escape(NULL, w->rv, 0);
	/* Like client-go: a server-side timeout of 5 to 6 minutes, so streams get renewed. */
	url = arl_xasprintf(
	    "%s%s?watch=1&allowWatchBookmarks=true&labelSelector=%s&timeoutSeconds=%u%s%s",
	    arl_kubeconfig_base_url(w->c->kc), w->path, w->selector_q,
	    K8S_WATCH_TIMEOUT_S + arl_http_jitter_rand() % 60, erv ? "&resourceVersion=" : "",
	    erv ? erv : "");
	curl_free(erv);
	if (arl_http_rate_limit(w->c->http, 0, -1) < 0 || !(e = arl_http_easy_get(w->c->http))) {
		arl_error(err, ARL_E_BACKEND, "cannot watch %s: no curl handle", w->plural);
		free(url);
		return -1;
	}
	if (arl_k8s_setup(w->c, e->h, "GET", url, NULL, NULL, 0, &x, errbuf, &hdrs, err) < 0) {
		arl_http_free_headers(hdrs);
		arl_http_easy_put(w->c->http, e);
		free(url);
		return -1;
	}
	curl_easy_setopt(e->h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(e->h, CURLOPT_LOW_SPEED_TIME, (long)K8S_WATCH_SILENCE_S);
	arl_http_count(w->c->http);
	atomic_fetch_add(&w->c->watch_connects, 1);
	rc = curl_easy_perform(e->h);
	curl_easy_getinfo(e->h, CURLINFO_RESPONSE_CODE, &status);
	arl_http_free_headers(hdrs);
	curl_easy_setopt(e->h, CURLOPT_HTTPHEADER, NULL);
	arl_http_easy_put(w->c->http, e);
	free(url);
	if (atomic_load(&w->stop) || (x.line_stop && w->need_list)) {
		ret = 0;
	} else if (status == 410) {
		w->need_list = true;
		ret = 0;
	} else if (x.line_stop) {
		arl_error(err, w->stream_err.code, "%s", w->stream_err.msg);
	} else if (x.too_big) {
		arl_error(err, ARL_E_LIMIT,
		          "watch of %s in namespace '%s': an event is larger than %u bytes",
		          w->plural, w->ns, K8S_MAX_WATCH_LINE);
	} else if (rc == CURLE_OK && status >= 200 && status < 300) {
		ret = 0; /* the server's timeoutSeconds, or a clean close */
	} else if (rc == CURLE_OK) {
		struct arl_k8s_req req = w->list_req;
		cJSON *body = x.body.len ? arl_k8s_parse_json(x.body.p, x.body.len) : NULL;

		req.verb = "watch";
		if (status == 401)
			arl_kubeconfig_invalidate(w->c->kc);
		arl_k8s_http_error(&req, status, body, &x.body, err);
		cJSON_Delete(body);
		*fatal = status == 403 || status == 404;
	} else if (status >= 200 && status < 300) {
		/*
		 * A stream cut after it started (a proxy's idle timeout, a restarted server, the
		 * test server's faults): resume from the last resourceVersion, like a clean end.
		 */
		ret = 0;
	} else {
		arl_error(err, ARL_E_BACKEND, "cannot watch %s in namespace '%s': %s (server %s)",
		          w->plural, w->ns, errbuf[0] ? errbuf : curl_easy_strerror(rc),
		          arl_kubeconfig_server_shown(w->c->kc));
	}
	arl_buf_release(&x.body);
	return ret;
}

/* A watch that is failed makes waits return ERROR at once; one that recovers clears it. */
static void set_failed(struct arl_k8s_watch *w, bool failed, const struct arl_err *why)
{
	pthread_mutex_lock(&w->mu);
	if (failed && !w->failed) {
		w->failure = *why;
		w->failed = true;
		broadcast_all(w);
	} else if (!failed) {
		w->failed = false;
	}
	pthread_mutex_unlock(&w->mu);
}

/* Notes whether the stream works, for arl_k8s_watch_drain(). */
static void set_unhealthy(struct arl_k8s_watch *w, int64_t since)
{
	pthread_mutex_lock(&w->mu);
	if (!since || !w->unhealthy_since) {
		w->unhealthy_since = since;
		pthread_cond_broadcast(&w->drain_cv);
	}
	pthread_mutex_unlock(&w->mu);
}

/* Sleeps up to @ms, waking early to stop; checks the cancel fd meanwhile. */
static void nap(struct arl_k8s_watch *w, int64_t ms)
{
	int64_t end = arl_now_ms() + ms;

	while (!atomic_load(&w->stop) && arl_now_ms() < end) {
		check_cancel(w);
		arl_http_sleep_ms(end - arl_now_ms() < 100 ? end - arl_now_ms() : 100,
		                  w->stop_pipe[0]);
	}
}

/*
 * The watch thread: stream, and on every end of the stream decide what is next. A normal
 * end (timeoutSeconds, a cut connection) reconnects at once from the last resourceVersion;
 * 410 Gone re-lists first; errors back off (200 ms doubling to 5 s, jittered). The watch is
 * declared failed, which fails the waits, on a refusal (403, 404) or after a minute without
 * a working stream: an API server that stays away must not turn into hour-long hangs.
 */
static void *watch_main(void *arg)
{
	struct arl_k8s_watch *w = arg;
	int64_t backoff = 0, unhealthy_since = 0;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	while (!atomic_load(&w->stop)) {
		struct arl_err e = ARL_ERR_INIT;
		bool fatal = false;
		int64_t t0 = arl_now_ms();
		int rc;

		check_cancel(w);
		w->got_event = false;
		if (w->need_list) {
			rc = relist(w, &e);
			if (rc == 0)
				w->need_list = false;
		} else {
			rc = stream(w, &fatal, &e);
		}
		if (atomic_load(&w->stop))
			break;
		if (rc == 0) {
			unhealthy_since = 0;
			set_unhealthy(w, 0);
			set_failed(w, false, NULL);
			/* A stream that ends at once with nothing in it must not spin. */
			if (!w->got_event && !w->need_list && arl_now_ms() - t0 < 1000)
				backoff = backoff ? (backoff * 2 > 5000 ? 5000 : backoff * 2) : 100;
			else
				backoff = 0;
		} else {
			if (!unhealthy_since) {
				unhealthy_since = arl_now_ms();
				set_unhealthy(w, unhealthy_since);
			}
			if (fatal || arl_now_ms() - unhealthy_since >= K8S_WATCH_FAIL_MS) {
				arl_err_prefix(&e, "watch failed");
				set_failed(w, true, &e);
			}
			backoff = backoff ? (backoff * 2 > 5000 ? 5000 : backoff * 2) : 200;
		}
		if (backoff)
			nap(w, backoff / 2 +
			           (int64_t)(arl_http_jitter_rand() % (uint32_t)(backoff / 2 + 1)));
	}
	return NULL;
}

int arl_k8s_watch_start(struct arl_k8s *c, const char *api, const char *plural, const char *ns,
                        const char *selector, int cancel_fd, struct arl_k8s_watch **out,
                        struct arl_err *err)
{
	struct arl_k8s_watch *w = arl_xcalloc(1, sizeof(*w));
	char *q = curl_easy_escape(NULL, selector, 0);
	sigset_t all, old;
	int rc;

	w->c = c;
	w->plural = arl_xstrdup(plural);
	w->ns = arl_xstrdup(ns);
	w->path = arl_k8s_path(api, ns, plural, NULL);
	w->selector_q = arl_xstrdup(q);
	curl_free(q);
	w->cancel_fd = cancel_fd;
	w->list_req = (struct arl_k8s_req)ARL_K8S_REQ_INIT;
	w->list_req.method = "GET";
	w->list_req.retry = ARL_K8S_RETRY_SAFE;
	w->list_req.verb = "list";
	w->list_req.resource = w->plural;
	w->list_req.namespace = w->ns;
	atomic_init(&w->stop, false);
	if (pipe2(w->stop_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		arl_error_errno(err, errno, "cannot start the watch of %s", plural);
		w->stop_pipe[0] = w->stop_pipe[1] = -1;
		pthread_mutex_init(&w->mu, NULL);
		arl_cond_init_monotonic(&w->drain_cv);
		goto fail;
	}
	pthread_mutex_init(&w->mu, NULL);
	arl_cond_init_monotonic(&w->drain_cv);
	if (relist(w, err) < 0)
		goto fail;
	/* The thread inherits a full signal mask, so no signal lands on it even briefly. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&w->thread, NULL, watch_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		arl_error_errno(err, rc, "cannot start the watch of %s", plural);
		goto fail;
	}
	w->thread_started = true;
	*out = w;
	return 0;
fail:
	arl_k8s_watch_stop(w);
	return -1;
}

void arl_k8s_watch_stop(struct arl_k8s_watch *w)
{
	if (!w)
		return;
	atomic_store(&w->stop, true);
	if (w->stop_pipe[1] >= 0)
		(void)!write(w->stop_pipe[1], "x", 1);
	if (w->thread_started)
		pthread_join(w->thread, NULL);
	for (int i = 0; i < 2; i++)
		if (w->stop_pipe[i] >= 0)
			close(w->stop_pipe[i]);
	for (size_t i = 0; i < K8S_WATCH_BUCKETS; i++) {
		struct wentry *e = w->buckets[i], *next;

		for (; e; e = next) {
			next = e->next;
			entry_free(e);
		}
	}
	pthread_cond_destroy(&w->drain_cv);
	pthread_mutex_destroy(&w->mu);
	free(w->plural);
	free(w->ns);
	free(w->path);
	free(w->selector_q);
	free(w->rv);
	free(w);
}

void arl_k8s_watch_track(struct arl_k8s_watch *w, const char *name)
{
	struct wentry *e;

	pthread_mutex_lock(&w->mu);
	e = entry_get(w, name, true);
	if (e->forget) {
		e->forget = false;
		w->nforget--;
	}
	pthread_mutex_unlock(&w->mu);
}

void arl_k8s_watch_forget(struct arl_k8s_watch *w, const char *name)
{
	struct wentry *e;

	pthread_mutex_lock(&w->mu);
	e = entry_get(w, name, false);
	if (e && !e->forget) {
		e->forget = true;
		w->nforget++;
		if (e->deleted)
			entry_drop(w, e);
	}
	pthread_mutex_unlock(&w->mu);
}

void arl_k8s_watch_untrack(struct arl_k8s_watch *w, const char *name)
{
	struct wentry *e;

	pthread_mutex_lock(&w->mu);
	e = entry_get(w, name, false);
	if (e) {
		if (!e->forget) {
			e->forget = true;
			w->nforget++;
		}
		e->deleted = true; /* as far as we are concerned */
		entry_drop(w, e);
	}
	pthread_mutex_unlock(&w->mu);
}

size_t arl_k8s_watch_drain(struct arl_k8s_watch *w, int64_t deadline_ms)
{
	size_t left;

	pthread_mutex_lock(&w->mu);
	while (w->nforget && !w->failed) {
		int64_t until = deadline_ms;

		/*
		 * A stream that cannot reconnect will report nothing: stop waiting once it
		 * has failed for a while, rather than make an unreachable server cost the
		 * whole wait. A blip (one refused reconnect) must not cut the wait short.
		 */
		if (w->unhealthy_since) {
			if (arl_now_ms() - w->unhealthy_since >= K8S_DRAIN_UNHEALTHY_MS)
				break;
			if (w->unhealthy_since + K8S_DRAIN_UNHEALTHY_MS < until)
				until = w->unhealthy_since + K8S_DRAIN_UNHEALTHY_MS;
		}
		if (arl_now_ms() >= deadline_ms)
			break;
		arl_cond_wait_until(&w->drain_cv, &w->mu, until);
	}
	left = w->nforget;
	pthread_mutex_unlock(&w->mu);
	return left;
}

enum arl_k8s_wait arl_k8s_watch_wait(struct arl_k8s_watch *w, const char *name, arl_k8s_watch_fn fn,
                                     void *arg, int64_t deadline_ms, struct arl_err *err)
{
	enum arl_k8s_wait rc;
	struct wentry *e;
	unsigned seq = 0;
	bool first = true;

	check_cancel(w);
	pthread_mutex_lock(&w->mu);
	e = entry_get(w, name, true);
	e->waiters++;
	for (;;) {
		if (e->seen && (first || e->seq != seq)) {
			first = false;
			seq = e->seq;
			if (fn(e->obj, e->deleted, arg)) {
				rc = ARL_K8S_WAIT_DONE;
				break;
			}
		}
		if (w->cancelled) {
			rc = ARL_K8S_WAIT_CANCELLED;
			break;
		}
		if (w->failed) {
			arl_error(err, w->failure.code, "%s", w->failure.msg);
			rc = ARL_K8S_WAIT_ERROR;
			break;
		}
		if (deadline_ms && arl_now_ms() >= deadline_ms) {
			rc = ARL_K8S_WAIT_TIMEOUT;
			break;
		}
		/*
		 * The watch thread turns the cancel fd into w->cancelled, except while it is busy
		 * re-listing (retries against a server that is down can take many seconds): look
		 * at the fd once a second too. A non-blocking poll(), fine under the lock.
		 */
		if (w->cancel_fd >= 0 && arl_fd_readable(w->cancel_fd)) {
			w->cancelled = true;
			broadcast_all(w);
			continue;
		}
		{
			int64_t until = arl_now_ms() + K8S_WAIT_POLL_MS;

			if (deadline_ms && deadline_ms < until)
				until = deadline_ms;
			arl_cond_wait_until(&e->cv, &w->mu, until);
		}
	}
	e->waiters--;
	if (e->forget && e->deleted)
		entry_drop(w, e);
	pthread_mutex_unlock(&w->mu);
	return rc;
}
