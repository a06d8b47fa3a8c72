/*
 * DESIGN
 *
 * The gateway backend runs each attempt in one session of today's ARL gateway
 * (../shared/arl-gateway.md, docs/gateway.md). Requests per attempt: POST and DELETE of the
 * session; per Command step one execute (with a fresh operationID) and, when it answers 202,
 * polls of the operation, the first after 250 ms and then one a second (the ARL SDK polls
 * every 2 s); per FilePatch one upload. A one-step job of T seconds thus costs at most
 * 4 + ceil(T) requests; an older gateway's blocking 200 costs 3.
 *
 * The gateway's traps and what we do about them:
 * - Creation is not idempotent: arl_gw_create() never repeats a create that may have reached
 *   the gateway, and every session carries idleTimeoutSeconds (the attempt's bounds plus a
 *   margin), which reaps one whose answer was lost.
 * - A session lives on the gateway, not here: its id goes to the results database (leases)
 *   the moment the answer names it, so `arl-batch gc --backend gateway` deletes the sessions
 *   of a runner killed with -9 (listing sessions needs an admin key: not relied on). A
 *   session whose id cannot be recorded is deleted at once and the attempt fails as infra.
 * - Create blocks until a pod is allocated: bounded by the job's prepareTimeout (and the
 *   pool's allocationTimeout), so the wait is the attempt's preparation, not step time.
 *   SIGINT during it waits up to GW_CREATE_GRACE_MS for the answer, to delete the session.
 * - All steps of a request run even after a failure, and a timeout reports a plain exit 1:
 *   one step per request, timeoutSeconds the time left (rounded up), and the class decided
 *   here: a step that ran for its whole time left is a timeout, whatever its exit code.
 * - An operation may stay "running" forever (a claim that never becomes ready): past the
 *   step's deadline plus GW_GRACE_MS the step ends as infra.
 * - A restarted gateway forgets its operations (poll -> 404 "operation ..."): the execute is
 *   sent again with the same operationID, which runs the step again (at-least-once, said in
 *   RELIABILITY.md); a forgotten session (404 "session ...") ends the attempt as infra.
 * - A pod's default workDir is "/", ours is /workspace: the first execute of a session makes
 *   the pool's workDir with a `mkdir -p` step ahead of the real one (no extra request).
 */
#include "gateway/backend_gateway.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "backend/backend.h"
#include "buf.h"
#include "gateway/gw_client.h"
#include "gateway/gw_cred.h"
#include "gateway/gw_collect.h"
#include "gateway/gw_pool.h"
#include "http/http.h"
#include "http/throttle.h"
#include "log.h"
#include "spawn.h"
#include "util.h"
#include "banned.h"

#define GW_IDLE_MARGIN_S    600   /* idleTimeoutSeconds = prepareTimeout + timeout + this */
#define GW_TIMEOUT_SLACK_MS 100   /* a killed step's duration may fall short of its time */
#define GW_GRACE_MS         5000  /* past a step's deadline, for the gateway's answer */
#define GW_CREATE_GRACE_MS  10000 /* a create in flight when the run is cancelled */
#define GW_CLEANUP_MS       60000 /* how long a DELETE may keep retrying */
#define GW_CANCEL_MS        5000  /* ... once the run is cancelled, from then on */
#define GW_LAST_TRY_MS      1000  /* ... but each DELETE gets one try of this long */
#define GW_FIRST_POLL_MS    250
#define GW_POLL_MS          1000   /* at most one poll a second: the request budget above */
#define GW_RESUBMITS        3      /* executes sent again after the gateway forgot them */
#define GW_PROBE_MS         120000 /* a 429 storm at the run's start is waited out */
#define GW_DEFAULT_WORKDIR  "/workspace"
#define GW_DEFAULT_PROFILE  "default"

struct gpool {
	const struct arl_pool *pool;
	const struct arl_gw_pool *cfg;
	struct arl_gw *gw;
	const char *work_dir;
};

struct gwb {
	struct arl_http *http;
	struct gpool *pools;
	size_t npools;
	const struct arl_backend_ledger *ledger;
	int cancel_fd;
	size_t capture_max;
	int inflight;
	pthread_mutex_t mu; /* guards live, throttle, cancelled_at; lock order: alone */
	struct arl_sandbox *live;
	struct arl_http_throttle *throttle;
	int64_t cancelled_at;
};

struct arl_sandbox {
	char *id;
	struct gpool *gp;
	int64_t lease; /* leases.id, or 0 */
	bool workdir_made;
	struct arl_sandbox *prev, *next;
};

static struct gpool *find_pool(struct gwb *b, const struct arl_pool *pool)
{
	for (size_t i = 0; i < b->npools; i++)
		if (b->pools[i].pool == pool)
			return &b->pools[i];
	return NULL;
}

static void on_window(void *arg, enum arl_http_throttle_change what, int from, int to)
{
	(void)arg;
	if (what == ARL_HTTP_THROTTLE_RECOVERED)
		arl_log_info("gateway: answering again, creation window grew back from %d to %d",
		             from, to);
	else
		arl_log_info("gateway: refusing, creation window %d -> %d%s", from, to,
		             to == 1 ? " (one create at a time)" : "");
}

static struct arl_http_throttle *throttle_of(struct gwb *b)
{
	struct arl_http_throttle *t;

	pthread_mutex_lock(&b->mu);
	if (!b->throttle)
		b->throttle = arl_http_throttle_new(b->inflight, on_window, NULL);
	t = b->throttle;
	pthread_mutex_unlock(&b->mu);
	return t;
}

/* Once cleanup has seen the cancellation, deletes have GW_CANCEL_MS from that moment. */
static int64_t cancel_cleanup_deadline(struct gwb *b)
{
	int64_t at;

	if (!arl_fd_readable(b->cancel_fd))
		return 0;
	pthread_mutex_lock(&b->mu);
	if (!b->cancelled_at)
		b->cancelled_at = arl_now_ms();
	at = b->cancelled_at;
	pthread_mutex_unlock(&b->mu);
	return at + GW_CANCEL_MS;
}

/*
 * Deletes session @id, retrying for up to GW_CLEANUP_MS (or the cancelled run's cleanup
 * deadline); true when it is gone.
 */
static bool delete_session(struct gwb *b, struct arl_gw *gw, const char *id)
{
	struct arl_gw_call c = ARL_GW_CALL_INIT;
	struct arl_gw_resp resp;
	struct arl_err err = ARL_ERR_INIT;
	int64_t deadline = arl_now_ms() + GW_CLEANUP_MS;
	int rc;

	c.max_tries = -1;
	for (;;) {
		int64_t cut = cancel_cleanup_deadline(b), floor = arl_now_ms() + GW_LAST_TRY_MS;

		c.deadline_ms = cut && cut < deadline ? cut : deadline;
		if (c.deadline_ms < floor)
			c.deadline_ms = floor;
		c.cancel_fd = cut ? -1 : b->cancel_fd;
		rc = arl_gw_delete(gw, id, &c, &resp, &err);
		if (rc == 0 || !resp.cancelled)
			break;
		arl_gw_resp_release(&resp);
		arl_err_clear(&err);
	}
	arl_gw_resp_release(&resp);
	if (rc < 0)
		arl_log_warn(
		    "gateway: %s; `arl-batch gc --backend gateway` deletes it once this run "
		    "has ended",
		    err.msg);
	return rc == 0;
}

/* --- open / close -------------------------------------------------------------------- */

/*
 * One authenticated request that changes nothing: GET of a session that does not exist. A
 * 404 says the gateway is there and takes the key; 401/403 that it does not.
 */
static int probe(struct gwb *b, struct arl_gw *gw, struct arl_err *err)
{
	struct arl_gw_call c = ARL_GW_CALL_INIT;
	struct arl_gw_resp resp;
	char id[48], uuid[37];
	int rc = 0;

	arl_gw_uuid(uuid);
	snprintf(id, sizeof(id), "arl-batch-probe-%.8s", uuid);
	c.deadline_ms = arl_now_ms() + GW_PROBE_MS;
	c.cancel_fd = b->cancel_fd;
	c.max_tries = -1;
	if (arl_gw_get(gw, id, &c, &resp, err) < 0 && resp.status != 404 && resp.status != 410)
		rc = -1;
	else
		arl_err_clear(err);
	arl_gw_resp_release(&resp);
	return rc;
}

static void gw_close(void *state)
{
	struct gwb *b = state;
	struct arl_sandbox *sb, *next;

	if (!b)
		return;
	/* Sessions never released (a worker abandoned after a second signal): delete them. */
	for (sb = b->live; sb; sb = next) {
		next = sb->next;
		if (delete_session(b, sb->gp->gw, sb->id) && sb->lease && b->ledger)
			b->ledger->drop(b->ledger->arg, sb->lease);
		free(sb->id);
		free(sb);
	}
	if (getenv("ARL_GATEWAY_STATS") && b->http) {
		struct arl_http_stats st;

		arl_http_get_stats(b->http, &st);
		arl_log_info("gateway: %llu requests (%llu retries)",
		             (unsigned long long)st.requests, (unsigned long long)st.retries);
	}
	for (size_t i = 0; i < b->npools; i++)
		arl_gw_free(b->pools[i].gw);
	free(b->pools);
	arl_http_throttle_free(b->throttle);
	arl_http_free(b->http);
	pthread_mutex_destroy(&b->mu);
	free(b);
}

/*
 * The sessions dead runners of this database left on our gateways (`gc --backend gateway`
 * does the same on demand), deleted with the pool's key: one line each. A failure here does
 * not stop the run; what is left stays for gc.
 */
static void sweep_dead_runners(struct gwb *b)
{
	struct arl_backend_lease *l = NULL;
	struct arl_err err = ARL_ERR_INIT;
	size_t n = 0;

	if (!b->ledger || !b->ledger->leases ||
	    b->ledger->leases(b->ledger->arg, "gateway", &l, &n, &err) < 0) {
		if (err.msg[0])
			arl_log_warn("gateway: cannot sweep what dead runners left: %s", err.msg);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct arl_gw *gw = NULL;

		if (!l[i].gone)
			continue;
		for (size_t p = 0; p < b->npools && !gw; p++)
			if (!strcmp(arl_gw_url(b->pools[p].gw), l[i].location))
				gw = b->pools[p].gw;
		if (!gw)
			continue; /* another gateway's: gc, with its key */
		if (delete_session(b, gw, l[i].name)) {
			arl_log_info("gateway: deleted session '%s' that run %lld left (%s)",
			             l[i].name, (long long)l[i].run_id, l[i].gone);
			b->ledger->drop(b->ledger->arg, l[i].id);
		}
	}
	arl_backend_leases_free(l, n);
}

/*
 * Once per run: a client, each pool's gateway and key, and one probe per pool, so a wrong
 * URL or key fails the run before a job starts.
 */
static int gw_open(void **state, const struct arl_backend_opts *o,
                   const struct arl_pool *const *pools, size_t npools, struct arl_err *err)
{
	struct gwb *b = arl_xcalloc(1, sizeof(*b));
	struct arl_http_opts ho = {0};
	struct arl_gw_creds *creds = NULL;

	pthread_mutex_init(&b->mu, NULL);
	b->cancel_fd = o->cancel_fd;
	b->capture_max = o->capture_max ? o->capture_max : ARL_SPAWN_DEFAULT_CAPTURE;
	b->ledger = o->ledger;
	for (size_t i = 0; i < npools; i++)
		b->inflight += pools[i]->replicas;
	/* Up to 4 requests a job plus one a second while a step runs: 10/s per sandbox. */
	ho.qps =
	    10.0 * b->inflight < ARL_HTTP_DEFAULT_QPS ? ARL_HTTP_DEFAULT_QPS : 10.0 * b->inflight;
	ho.burst =
	    2 * b->inflight < ARL_HTTP_DEFAULT_BURST ? ARL_HTTP_DEFAULT_BURST : 2 * b->inflight;
	if (arl_http_new(&b->http, &ho, err) < 0)
		goto fail;
	b->pools = arl_xcalloc(npools ? npools : 1, sizeof(*b->pools));
	for (size_t i = 0; i < npools; i++) {
		struct gpool *gp = &b->pools[b->npools++];
		const char *url;
		char *key = NULL;

		gp->pool = pools[i];
		gp->cfg = arl_gw_pool(pools[i]);
		gp->work_dir = gp->cfg->work_dir ? gp->cfg->work_dir : GW_DEFAULT_WORKDIR;
		url = gp->cfg->url ? gp->cfg->url : getenv("ARL_GATEWAY_URL");
		if (!url || !*url) {
			arl_error(err, ARL_E_USAGE,
			          "pool '%s': no gateway URL: give the pool a 'url:' or set "
			          "$ARL_GATEWAY_URL",
			          pools[i]->name);
			goto fail;
		}
		/* The key is the one the operator bound to the URL's origin (gw_cred.h). */
		if (!creds && arl_gw_creds_load(&creds, err) < 0)
			goto fail;
		if (arl_gw_creds_key(creds, url, &key, err) < 0) {
			arl_err_prefix(err, "pool '%s'", pools[i]->name);
			goto fail;
		}
		gp->gw = arl_gw_new(b->http, url, key);
		if (key) {
			explicit_bzero(key, strlen(key));
			free(key);
		}
		if (probe(b, gp->gw, err) < 0) {
			arl_err_prefix(err, "pool '%s'", pools[i]->name);
			goto fail;
		}
	}
	arl_gw_creds_free(creds);
	sweep_dead_runners(b);
	if (npools)
		arl_log_info("gateway: %s", arl_gw_url(b->pools[0].gw));
	*state = b;
	return 0;
fail:
	arl_gw_creds_free(creds);
	gw_close(b);
	return -1;
}

/* --- acquire ------------------------------------------------------------------------- */

static void sandbox_free(struct arl_sandbox *sb)
{
	if (!sb)
		return;
	free(sb->id);
	free(sb);
}

static int64_t ceil_s(int64_t ms)
{
	return ms <= 0 ? 0 : (ms + 999) / 1000;
}

static cJSON *create_body(const struct gpool *gp, const struct arl_sandbox_req *req,
                          int64_t *idle_s)
{
	const struct arl_gw_pool *cfg = gp->cfg;
	cJSON *body = cJSON_CreateObject();
	int64_t ms, alloc_s = 0;

	if (cfg->image)
		cJSON_AddStringToObject(body, "image", cfg->image);
	if (cfg->profile || !cfg->image)
		cJSON_AddStringToObject(body, "profile",
		                        cfg->profile ? cfg->profile : GW_DEFAULT_PROFILE);
	/* The safety net if we die or lose a create's answer: reaped once idle this long. */
	if (cfg->idle_timeout && arl_parse_duration(cfg->idle_timeout, &ms) == 0)
		*idle_s = ceil_s(ms);
	else
		*idle_s =
		    ceil_s(req->job->prepare_timeout_ms + req->job->timeout_ms) + GW_IDLE_MARGIN_S;
	if (*idle_s > INT32_MAX)
		*idle_s = INT32_MAX;
	cJSON_AddNumberToObject(body, "idleTimeoutSeconds", (double)*idle_s);
	/* Allocation ends by the job's prepareTimeout, or sooner if the pool says so. */
	if (req->deadline_ms)
		alloc_s = ceil_s(req->deadline_ms - arl_now_ms());
	if (cfg->allocation_timeout && arl_parse_duration(cfg->allocation_timeout, &ms) == 0 &&
	    (!alloc_s || ceil_s(ms) < alloc_s))
		alloc_s = ceil_s(ms);
	if (alloc_s > 0)
		cJSON_AddNumberToObject(body, "allocationTimeoutSeconds",
		                        (double)(alloc_s > INT32_MAX ? INT32_MAX : alloc_s));
	if (cfg->network_given)
		cJSON_AddBoolToObject(body, "allowInternet", cfg->network);
	return body;
}

/* An id we put in URLs (escaped), logs and the database: printable ASCII, no spaces. */
static bool printable_id(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (s[n] <= ' ' || s[n] > '~')
			return false;
	return n > 0 && n <= 253;
}

static int gw_acquire(void *state, const struct arl_pool *pool, const struct arl_sandbox_req *req,
                      struct arl_sandbox **out, struct arl_err *err)
{
	struct gwb *b = state;
	struct gpool *gp = find_pool(b, pool);
	struct arl_gw_call c = ARL_GW_CALL_INIT;
	struct arl_gw_resp resp;
	struct arl_sandbox *sb = NULL;
	const cJSON *id;
	cJSON *body;
	int64_t idle_s = 0, started = arl_now_ms();
	char msg[400];
	int ret = -1;

	if (!gp)
		return arl_error(err, ARL_E_BACKEND, "pool '%s' was not opened", pool->name);
	body = create_body(gp, req, &idle_s);
	c.deadline_ms = req->deadline_ms;
	/* One try may take all the time there is: the gateway answers once allocated. */
	c.timeout_ms = req->deadline_ms ? req->deadline_ms - arl_now_ms() + GW_GRACE_MS : 0;
	if (c.timeout_ms < 0)
		c.timeout_ms = 1;
	if (req->deadline_ms)
		c.deadline_ms = req->deadline_ms + GW_GRACE_MS;
	c.max_tries = -1;
	c.cancel_fd = b->cancel_fd;
	c.cancel_grace_ms = GW_CREATE_GRACE_MS;
	c.throttle = throttle_of(b);
	if (arl_gw_create(gp->gw, body, &c, &resp, err) < 0) {
		arl_gw_message(&resp, msg, sizeof(msg));
		if (resp.cancelled) {
			arl_err_clear(err);
			arl_error(err, ARL_E_CANCELLED,
			          "cancelled while a session was being allocated");
		} else if (strstr(msg, "queued for") ||
		           (req->deadline_ms && arl_now_ms() >= req->deadline_ms)) {
			char why[sizeof(err->msg)];

			snprintf(why, sizeof(why), "%s", msg[0] ? msg : err->msg);
			arl_err_clear(err);
			arl_error(err, ARL_E_TIMEOUT, "no session after %llds: %s",
			          (long long)((arl_now_ms() - started) / 1000), why);
		}
		if (resp.ambiguous)
			arl_err_prefix(
			    err,
			    "(a session may have been made; the gateway reaps it after %llds "
			    "idle)",
			    (long long)idle_s);
		goto out;
	}
	id = cJSON_GetObjectItemCaseSensitive(resp.json, "id");
	if (!cJSON_IsString(id) || !printable_id(id->valuestring)) {
		/* A 2xx: a session was made. One named oddly can still be deleted (escaped). */
		bool gone = cJSON_IsString(id) && id->valuestring[0] &&
		            strlen(id->valuestring) <= 253 &&
		            delete_session(b, gp->gw, id->valuestring);

		if (gone)
			arl_error(err, ARL_E_BACKEND,
			          "the gateway's answer to a create names no usable session id "
			          "(HTTP %ld): the session it named was deleted",
			          resp.status);
		else
			arl_error(err, ARL_E_BACKEND,
			          "the gateway's answer to a create names no session id (HTTP %ld) "
			          "(a session may have been made; the gateway reaps it after %llds "
			          "idle)",
			          resp.status, (long long)idle_s);
		goto out;
	}
	sb = arl_xcalloc(1, sizeof(*sb));
	sb->id = arl_xstrdup(id->valuestring);
	sb->gp = gp;
	/* Recorded before anything else: a runner killed from here on leaves it to gc. */
	if (b->ledger && b->ledger->add(b->ledger->arg, "gateway", arl_gw_url(gp->gw), sb->id,
	                                req->job->key ? req->job->key : req->job->name,
	                                req->attempt, &sb->lease, err) < 0) {
		arl_err_prefix(err, "session '%s' deleted: its id cannot be recorded", sb->id);
		delete_session(b, gp->gw, sb->id);
		goto out;
	}
	pthread_mutex_lock(&b->mu);
	sb->next = b->live;
	if (b->live)
		b->live->prev = sb;
	b->live = sb;
	pthread_mutex_unlock(&b->mu);
	*out = sb;
	sb = NULL;
	ret = 0;
out:
	arl_gw_resp_release(&resp);
	cJSON_Delete(body);
	sandbox_free(sb);
	return ret;
}

/* --- exec ---------------------------------------------------------------------------- */

/* A step's working directory: absolute as given, relative under the pool's workDir. */
static char *work_dir_of(const struct gpool *gp, const struct arl_step *step)
{
	if (!step->work_dir || !*step->work_dir)
		return arl_xstrdup(gp->work_dir);
	if (step->work_dir[0] == '/')
		return arl_xstrdup(step->work_dir);
	return arl_xasprintf("%s/%s", gp->work_dir, step->work_dir);
}

static cJSON *execute_body(struct arl_sandbox *sb, const struct arl_step *step, int64_t left_ms,
                           const char *op)
{
	cJSON *body = cJSON_CreateObject(), *steps = cJSON_AddArrayToObject(body, "steps"), *s;
	char *wd = work_dir_of(sb->gp, step);

	if (!sb->workdir_made) {
		cJSON *mk = cJSON_CreateObject(), *argv = cJSON_AddArrayToObject(mk, "command");

		cJSON_AddItemToArray(steps, mk);
		cJSON_AddStringToObject(mk, "name", "arl-batch-workdir");
		cJSON_AddItemToArray(argv, cJSON_CreateString("mkdir"));
		cJSON_AddItemToArray(argv, cJSON_CreateString("-p"));
		cJSON_AddItemToArray(argv, cJSON_CreateString(sb->gp->work_dir));
		cJSON_AddNumberToObject(mk, "timeoutSeconds", (double)ceil_s(left_ms));
	}
	s = cJSON_CreateObject();
	cJSON_AddItemToArray(steps, s);
	cJSON_AddStringToObject(s, "name", step->name && *step->name ? step->name : "step");
	cJSON *argv = cJSON_AddArrayToObject(s, "command");

	for (size_t i = 0; i < step->argc && step->argv && step->argv[i]; i++)
		cJSON_AddItemToArray(argv, cJSON_CreateString(step->argv[i]));
	if (step->env.n) {
		cJSON *env = cJSON_AddObjectToObject(s, "env");

		for (size_t i = 0; i < step->env.n; i++)
			cJSON_AddStringToObject(env, step->env.v[i].key, step->env.v[i].val);
	}
	cJSON_AddStringToObject(s, "workDir", wd);
	/* The agent's kill comes at or after our deadline: whole seconds, rounded up. */
	cJSON_AddNumberToObject(
	    s, "timeoutSeconds",
	    (double)(ceil_s(left_ms) > INT32_MAX ? INT32_MAX : ceil_s(left_ms)));
	cJSON_AddStringToObject(body, "operationID", op);
	free(wd);
	return body;
}

static const char *str_of(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/*
 * Our step's result of an ExecuteResponse that must hold one result per step of @body (a
 * mkdir step may come first), each with an output object whose exit_code is an integral
 * number in int32 range and whose stdout/stderr are strings if given: *@exit_code is ours.
 * NULL for anything else, which is never recorded as an exit code.
 */
static const cJSON *our_result(const cJSON *resp, const cJSON *body, int *exit_code,
                               const char **why)
{
	const cJSON *results = cJSON_GetObjectItemCaseSensitive(resp, "results"), *r = NULL;
	int sent = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(body, "steps"));

	*why = "no 'results' array";
	if (!cJSON_IsArray(results))
		return NULL;
	*why = "not one result per step sent";
	if (cJSON_GetArraySize(results) != sent)
		return NULL;
	cJSON_ArrayForEach(r, results)
	{
		const cJSON *out = cJSON_GetObjectItemCaseSensitive(r, "output");
		const cJSON *ec = cJSON_GetObjectItemCaseSensitive(out, "exit_code");
		const cJSON *so = cJSON_GetObjectItemCaseSensitive(out, "stdout");
		const cJSON *se = cJSON_GetObjectItemCaseSensitive(out, "stderr");
		double v = cJSON_IsNumber(ec) ? ec->valuedouble : 0.5;

		*why = "a result without an 'output' object";
		if (!cJSON_IsObject(r) || !cJSON_IsObject(out))
			return NULL;
		*why = "an exit_code that is not an integer in int32 range";
		if (!cJSON_IsNumber(ec) || !(v >= INT32_MIN && v <= INT32_MAX) || v != (int)v)
			return NULL;
		*why = "a stdout or stderr that is not a string";
		if ((so && !cJSON_IsString(so)) || (se && !cJSON_IsString(se)))
			return NULL;
		*exit_code = (int)v;
	}
	return cJSON_GetArrayItem(results, sent - 1);
}

/* Whether a 404 names the operation (forgotten) rather than the session (gone). */
static bool about_operation(const struct arl_gw_resp *r)
{
	char msg[400];

	arl_gw_message(r, msg, sizeof(msg));
	return strstr(msg, "operation") != NULL;
}

enum step_end { STEP_DONE, STEP_CANCELLED, STEP_OVERDUE, STEP_INFRA, STEP_FORGOTTEN };

/*
 * Sends the execute and waits for its result (a 200, or polls after a 202) until @until;
 * *result is the ExecuteResponse (owned by @keep).
 */
static enum step_end run_execute(struct gwb *b, struct arl_sandbox *sb, const cJSON *body,
                                 const char *op, int64_t until, cJSON **keep, const cJSON **result,
                                 struct arl_err *err)
{
	struct arl_gw_call c = ARL_GW_CALL_INIT;
	struct arl_gw_resp resp;
	int64_t next;

	c.cancel_fd = b->cancel_fd;
	c.max_tries = -1;
	c.deadline_ms = until;
	c.max_body = ARL_GW_STEP_ANSWER(b->capture_max);
	/* An older gateway answers 200 once the step is done: one try may last that long. */
	c.timeout_ms = until - arl_now_ms();
	if (c.timeout_ms <= 0)
		return STEP_OVERDUE;
	if (arl_gw_execute(sb->gp->gw, sb->id, body, &c, &resp, err) < 0) {
		/* Refused (retried while that may help): the error says how. */
		enum step_end e = resp.cancelled ? STEP_CANCELLED : STEP_INFRA;

		arl_gw_resp_release(&resp);
		return e;
	}
	sb->workdir_made = true;
	if (resp.status == 200) {
		*keep = resp.json;
		*result = resp.json;
		resp.json = NULL;
		arl_gw_resp_release(&resp);
		return STEP_DONE;
	}
	arl_gw_resp_release(&resp);
	next = arl_now_ms() + GW_FIRST_POLL_MS;
	for (;;) {
		const char *status;

		if (next > until)
			next = until;
		if (arl_http_sleep_ms(next - arl_now_ms(), b->cancel_fd) < 0)
			return STEP_CANCELLED;
		if (arl_now_ms() >= until)
			return STEP_OVERDUE;
		next = arl_now_ms() + GW_POLL_MS;
		c.timeout_ms = 0;
		if (arl_gw_operation(sb->gp->gw, sb->id, op, &c, &resp, err) < 0) {
			if (resp.cancelled) {
				arl_gw_resp_release(&resp);
				return STEP_CANCELLED;
			}
			if (resp.status == 404 && about_operation(&resp)) {
				arl_gw_resp_release(&resp);
				return STEP_FORGOTTEN; /* err says so if not sent again */
			}
			arl_gw_resp_release(&resp);
			return STEP_INFRA;
		}
		status = str_of(resp.json, "status");
		if (status && !strcmp(status, "done")) {
			*keep = resp.json;
			*result = cJSON_GetObjectItemCaseSensitive(resp.json, "result");
			resp.json = NULL;
			arl_gw_resp_release(&resp);
			return STEP_DONE;
		}
		if (status && !strcmp(status, "error")) {
			const char *why = str_of(resp.json, "error");

			arl_err_clear(err);
			arl_error(err, ARL_E_BACKEND, "operation %s of session '%s' failed: %.300s",
			          op, sb->id, why ? why : "no reason given");
			arl_gw_resp_release(&resp);
			return STEP_INFRA;
		}
		arl_gw_resp_release(&resp);
	}
}

static int exec_command(struct gwb *b, struct arl_sandbox *sb, const struct arl_step *step,
                        const struct arl_exec_ctx *ctx, struct arl_step_result *res,
                        enum arl_class *cls, struct arl_err *err)
{
	int64_t left = ctx->deadline_ms - arl_now_ms(), dur = -1;
	char op[37];
	cJSON *body, *keep = NULL;
	const cJSON *result = NULL, *r, *output;
	const char *s, *why;
	int ret = -1, exit_code = 1, resubmits = 0;

	arl_gw_uuid(op);
	body = execute_body(sb, step, left, op);
again:
	switch (run_execute(b, sb, body, op, ctx->deadline_ms + GW_GRACE_MS, &keep, &result, err)) {
	case STEP_FORGOTTEN:
		if (resubmits++ >= GW_RESUBMITS)
			goto out;
		/*
		 * A restarted gateway forgot it: the step runs again, with the time it has
		 * left (not its whole time, or a step out of time would end past our deadline
		 * as infra), under a fresh operationID since the body changed.
		 */
		left = ctx->deadline_ms - arl_now_ms();
		if (left <= 0) {
			arl_log_warn("gateway: operation %s of session '%s' is forgotten (a "
			             "restart?) and the step's time is up",
			             op, sb->id);
			arl_err_clear(err);
			res->finished_ms = arl_wall_ms();
			*cls = ARL_CLASS_TIMEOUT;
			ret = 0;
			goto out;
		}
		arl_log_warn("gateway: operation %s of session '%s' is forgotten (a restart?): "
		             "sending the step again with its %llds left",
		             op, sb->id, (long long)ceil_s(left));
		arl_err_clear(err);
		cJSON_Delete(body);
		arl_gw_uuid(op);
		body = execute_body(sb, step, left, op);
		goto again;
	case STEP_CANCELLED:
		*cls = ARL_CLASS_CANCELLED;
		ret = 0;
		goto out;
	case STEP_OVERDUE:
		arl_err_clear(err);
		arl_error(err, ARL_E_BACKEND,
		          "session '%s': operation %s still not done %d s past the step's "
		          "deadline: the gateway did not end it (a pod that never became ready?)",
		          sb->id, op, GW_GRACE_MS / 1000);
		goto out;
	case STEP_INFRA:
		goto out;
	case STEP_DONE:
		break;
	}
	if (!(r = our_result(result, body, &exit_code, &why))) {
		arl_error(err, ARL_E_BACKEND,
		          "session '%s': malformed answer from the gateway to operation %s: %s",
		          sb->id, op, why);
		goto out;
	}
	output = cJSON_GetObjectItemCaseSensitive(r, "output");
	{
		const cJSON *d = cJSON_GetObjectItemCaseSensitive(r, "duration_ms");

		if (cJSON_IsNumber(d) && d->valuedouble >= 0 && d->valuedouble < 1e15)
			dur = (int64_t)d->valuedouble;
	}
	res->finished_ms = arl_wall_ms();
	if (dur >= 0 && res->finished_ms - dur >= res->started_ms)
		res->started_ms = res->finished_ms - dur;
	s = str_of(output, "stdout");
	arl_output_take(&res->out, arl_xstrdup(s ? s : ""), b->capture_max);
	s = str_of(output, "stderr");
	arl_output_take(&res->err, arl_xstrdup(s ? s : ""), b->capture_max);
	/*
	 * The agent reports its kill as a plain exit 1: a step that used all its time (by
	 * the gateway's own measure, else ours; GW_TIMEOUT_SLACK_MS for the agent's clock
	 * starting after ours) timed out, whatever it exited with.
	 */
	if ((dur >= 0 ? dur : arl_now_ms() - (ctx->deadline_ms - left)) + GW_TIMEOUT_SLACK_MS >=
	    left) {
		*cls = ARL_CLASS_TIMEOUT;
	} else {
		res->has_exit = true;
		res->exit_code = exit_code;
		*cls = exit_code ? ARL_CLASS_FAILED : ARL_CLASS_NONE;
	}
	ret = 0;
out:
	cJSON_Delete(keep);
	cJSON_Delete(body);
	return ret;
}

/* FilePatch: the whole file, uploaded to its absolute path (mode 0644, as on a pod). */
static int exec_filepatch(struct gwb *b, struct arl_sandbox *sb, const struct arl_step *step,
                          const struct arl_exec_ctx *ctx, struct arl_step_result *res,
                          enum arl_class *cls, struct arl_err *err)
{
	struct arl_gw_call c = ARL_GW_CALL_INIT;
	struct arl_gw_resp resp;
	char msg[400];
	int ret = 0;

	c.deadline_ms = ctx->deadline_ms;
	c.cancel_fd = b->cancel_fd;
	c.max_tries = -1;
	if (arl_gw_upload(sb->gp->gw, sb->id, step->path ? step->path : "", step->content,
	                  step->content_len, &c, &resp, err) == 0) {
		arl_output_take(&res->out, arl_xasprintf("File created: %s\n", step->path),
		                b->capture_max);
		res->has_exit = true;
		res->exit_code = 0;
		*cls = ARL_CLASS_NONE;
	} else if (resp.cancelled) {
		*cls = ARL_CLASS_CANCELLED;
	} else if (resp.status == 500) {
		/* The agent could not write it: the step's failure, as on a pod. */
		arl_gw_message(&resp, msg, sizeof(msg));
		arl_output_take(&res->err, arl_xasprintf("%s\n", msg), b->capture_max);
		res->has_exit = true;
		res->exit_code = 1;
		*cls = ARL_CLASS_FAILED;
		arl_err_clear(err);
	} else if (arl_now_ms() >= ctx->deadline_ms) {
		*cls = ARL_CLASS_TIMEOUT;
		arl_err_clear(err);
	} else {
		ret = -1;
	}
	arl_gw_resp_release(&resp);
	return ret;
}

static int gw_exec(void *state, struct arl_sandbox *sb, const struct arl_step *step,
                   const struct arl_exec_ctx *ctx, struct arl_step_result *res, enum arl_class *cls,
                   struct arl_err *err)
{
	struct gwb *b = state;
	int rc;

	*cls = ARL_CLASS_INFRA;
	if (ctx->deadline_ms - arl_now_ms() <= 0) {
		/* The attempt's time ran out between steps. */
		*cls = ARL_CLASS_TIMEOUT;
		res->finished_ms = res->started_ms;
		return 0;
	}
	if (arl_fd_readable(b->cancel_fd)) {
		*cls = ARL_CLASS_CANCELLED;
		return 0;
	}
	rc = step->type == ARL_STEP_FILEPATCH ? exec_filepatch(b, sb, step, ctx, res, cls, err)
	                                      : exec_command(b, sb, step, ctx, res, cls, err);
	if (rc < 0)
		arl_err_prefix(err, "gateway %s", arl_gw_url(sb->gp->gw));
	return rc;
}

static const char *gw_sandbox_name(const struct arl_sandbox *sb)
{
	return sb->id;
}

static void gw_release(void *state, struct arl_sandbox *sb, bool keep)
{
	struct gwb *b = state;

	if (!sb)
		return;
	pthread_mutex_lock(&b->mu);
	if (sb->prev)
		sb->prev->next = sb->next;
	else if (b->live == sb)
		b->live = sb->next;
	if (sb->next)
		sb->next->prev = sb->prev;
	pthread_mutex_unlock(&b->mu);
	if (keep) {
		/* Kept on purpose: gc must not take it, so its lease goes. */
		arl_log_info("keeping session '%s' (keepAlive); delete it with: curl -X DELETE -H "
		             "\"Authorization: Bearer $ARL_API_KEY\" %s/v1/sessions/%s",
		             sb->id, arl_gw_url(sb->gp->gw), sb->id);
		if (sb->lease && b->ledger)
			b->ledger->drop(b->ledger->arg, sb->lease);
	} else if (delete_session(b, sb->gp->gw, sb->id) && sb->lease && b->ledger) {
		b->ledger->drop(b->ledger->arg, sb->lease);
	}
	sandbox_free(sb);
}

static int gw_collect_op(void *state, struct arl_sandbox *sb, const struct arl_artifact_spec *specs,
                         size_t nspecs, const struct arl_artifact_sink *sink, int64_t deadline_ms,
                         struct arl_err *err)
{
	struct gwb *b = state;

	return arl_gw_collect(sb->gp->gw, sb->id, b->cancel_fd, specs, nspecs, sink, deadline_ms,
	                      err);
}

const struct arl_backend_ops arl_backend_gateway = {
    .pool = &arl_gw_pool_kind,
    .open = gw_open,
    .acquire = gw_acquire,
    .exec = gw_exec,
    .sandbox_name = gw_sandbox_name,
    .release = gw_release,
    .close = gw_close,
    .gc = arl_gw_backend_gc,
    .collect = gw_collect_op,
};
