/*
 * DESIGN
 *
 * The kubernetes backend runs each attempt on ARL-Infra: one Sandbox bound from the pool's
 * WarmPool, and one Task per step on it, because the operator reports a single combined
 * result per Task (docs/kubernetes.md). Requests per attempt: POST and DELETE of the Sandbox;
 * per step: POST and DELETE of its Task. Everything in between (Sandbox Ready, Task done)
 * comes from two watch streams per namespace (sandboxes, tasks) shared by all workers and
 * selected by the run's label, so waiting costs nothing however long a step runs.
 *
 * The operator's traps and what we do about them:
 * - It never retries and has no attempt timeout: the scheduler retries, and exec() enforces
 *   the step's deadline itself. The Task's spec.timeout is the time left, rounded up to
 *   whole seconds (the operator truncates, and "0" would mean no limit), so the operator's
 *   kill (exit -1, output so far kept) comes first; we wait that long plus a grace, then
 *   delete the Task and call it a timeout.
 * - Its gRPC deadline (HTTP_CLIENT_TIMEOUT, 30 s by default) cuts any command that runs
 *   longer, whatever spec.timeout says: exit 1 and a DeadlineExceeded stderr, which we
 *   report as a timeout. Longer steps need the operator's HTTP_CLIENT_TIMEOUT raised.
 * - A Sandbox whose pool has no idle pod stays Pending forever: the job's prepareTimeout
 *   bounds the wait and the attempt fails as infra; the job's timeout starts once Ready.
 * - A missing WarmPool is not an error to the operator: open() checks every pool first.
 * - Tasks are never garbage-collected: each is deleted when its result is in, and carries
 *   ttlSecondsAfterFinished as a safety net. Sandboxes carry idleTimeoutSeconds likewise.
 * - keepAlive:false Sandboxes may be reaped after their first Task: we always create
 *   keepAlive:true ones and delete them ourselves (unless the job says keepAlive).
 *
 * Names are DNS labels of at most 52 characters ("arl-<run>-<job hash>-<attempt>-<random>",
 * Tasks add "-<step>"), and every object carries labels naming the run, the job and the
 * owner (host, pid) so that `arl-batch gc` can find what a dead run left behind.
 *
 * An API server that refuses or goes away (not the operator's traps but plain Kubernetes trouble):
 * creates retry until the attempt's deadline, through a window of creates in flight that
 * halves while the server keeps refusing and grows back after (http/throttle.h), so a herd
 * of workers does not hammer a server that is down or coming back. Deletes retry until the
 * server answers (up to a minute; once the run is cancelled, a few seconds, then what is left
 * is reported). A step whose result the cut-off watch never brought is asked for once at its
 * deadline: a server that cannot say makes it infra, not the step's timeout.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "k8s/backend_k8s.h"
#include "k8s/k8s_collect.h"

#include "backend/backend.h"
#include "log.h"
#include "k8s/k8s_client.h"
#include "k8s/k8s_watch.h"
#include "http/throttle.h"
#include "k8s/k8s_gc.h"
#include "k8s/k8s_pool.h"
#include "k8s/k8s_text.h"
#include "k8s/kubeconfig.h"
#include "spawn.h"
#include "util.h"
#include "k8s/warmpool.h"
#include "banned.h"

#define K8S_RUN_LABEL     ARL_K8S_GC_RUN_LABEL
#define K8S_JOB_LABEL     "arl.infra.io/job"
#define K8S_SANDBOX_LABEL "arl.infra.io/sandbox"
#define K8S_ATTEMPT_LABEL "arl.infra.io/attempt"
#define K8S_MANAGED_LABEL ARL_K8S_GC_MANAGED_LABEL
#define K8S_TASK_TTL_S    600    /* ttlSecondsAfterFinished: a Task we fail to delete */
#define K8S_IDLE_MARGIN_S 600    /* idleTimeoutSeconds = prepareTimeout + timeout + this */
#define K8S_GRACE_MS      2000   /* past the operator's timer, before we give up */
#define K8S_CLEANUP_MS    60000  /* how long a DELETE may keep retrying */
#define K8S_CANCEL_MS     5000   /* ... once the run is cancelled, from then on */
#define K8S_LAST_TRY_MS   1000   /* ... but each DELETE gets one try of this long */
#define K8S_RECHECK_MS    5000   /* a step's deadline passed: one GET of its Task */
#define K8S_DRAIN_MS      10000  /* close(): wait this long for deletions to be seen */
#define K8S_POOL_READY_MS 300000 /* open(): a created pool must be ready within this */

struct kns {
	char *name;
	struct arl_k8s_watch *sandboxes, *tasks;
};

struct kpool {
	const struct arl_pool *pool;
	struct kns *ns;
};

struct kube {
	struct arl_k8s *c;
	char run_label[64];
	char owner_label[96]; /* "arl.infra.io/run=<run_label>": label and selector */
	struct arl_k8s_owner owner;
	int64_t run_id;
	int cancel_fd;
	int inflight; /* sandboxes the run can hold at once: its pools' replicas */
	size_t capture_max;
	struct kns *nss;
	size_t nns;
	struct kpool *pools;
	size_t npools;
	pthread_mutex_t mu; /* guards live, throttle, cancelled_at; lock order: alone */
	struct arl_sandbox *live;
	struct arl_http_throttle *throttle; /* creates in flight; made by the first acquire */
	int64_t cancelled_at;               /* arl_now_ms() when cleanup first saw the cancel */
};

struct arl_sandbox {
	char name[ARL_K8S_SANDBOX_NAME_MAX + 1];
	const struct arl_pool *pool;
	struct kns *ns;
	char job_label[64];
	char attempt[16];
	char trace_id[33];
	char *job_key;
	int tasks;
	struct arl_sandbox *prev, *next; /* kube.live, until released */
};

static struct kpool *find_pool(struct kube *k, const struct arl_pool *pool)
{
	for (size_t i = 0; i < k->npools; i++)
		if (k->pools[i].pool == pool)
			return &k->pools[i];
	return NULL;
}

/*
 * The labels every object of ours carries: the run (the watches' selector and the proof of
 * ownership after a 409), the job and attempt, and the owner, so that a later
 * `arl-batch gc` can tell a dead run's leftovers (owner-host/owner-pid) from a live one's.
 */
static void add_labels(cJSON *meta, const struct kube *k, const struct arl_sandbox *sb)
{
	cJSON *l = cJSON_AddObjectToObject(meta, "labels");

	cJSON_AddStringToObject(l, K8S_RUN_LABEL, k->run_label);
	cJSON_AddStringToObject(l, K8S_JOB_LABEL, sb->job_label);
	cJSON_AddStringToObject(l, K8S_ATTEMPT_LABEL, sb->attempt);
	arl_k8s_gc_add_labels(l, &k->owner);
	cJSON_AddStringToObject(l, K8S_MANAGED_LABEL, "arl-batch");
}

/* A request of ours on a sandboxes/tasks object; @path is owned by the caller. */
static struct arl_k8s_req obj_req(const char *method, const char *verb, const char *plural,
                                  const struct kns *ns, const char *name, const char *path)
{
	struct arl_k8s_req r = ARL_K8S_REQ_INIT;

	r.method = method;
	r.verb = verb;
	r.resource = plural;
	r.namespace = ns->name;
	r.name = name;
	r.path = path;
	r.retry = !strcmp(method, "POST") ? ARL_K8S_RETRY_CREATE : ARL_K8S_RETRY_SAFE;
	return r;
}

/* The creation window's changes, a few lines per outage however many requests it refused. */
static void on_window(void *arg, enum arl_http_throttle_change what, int from, int to)
{
	(void)arg;
	if (what == ARL_HTTP_THROTTLE_RECOVERED)
		arl_log_info("kubernetes: server answering again, creation window grew back "
		             "from %d to %d",
		             from, to);
	else
		arl_log_info("kubernetes: server refusing, creation window %d -> %d%s", from, to,
		             to == 1 ? " (one create at a time)" : "");
}

/*
 * The window of Sandbox and Task creates in flight (http/throttle.h), made on first use. It
 * starts at, and never grows past, the sandboxes the run can hold at once (the pools'
 * replicas): creates beyond that are never in flight anyway.
 */
static struct arl_http_throttle *throttle_of(struct kube *k)
{
	struct arl_http_throttle *t;

	pthread_mutex_lock(&k->mu);
	if (!k->throttle)
		k->throttle = arl_http_throttle_new(k->inflight, on_window, NULL);
	t = k->throttle;
	pthread_mutex_unlock(&k->mu);
	return t;
}

/* POSTs @body as a new object; the caller has tracked its name in the watch. */
static int create_obj(struct kube *k, const char *plural, struct kns *ns, const char *name,
                      const cJSON *body, int64_t deadline, bool *maybe_created, struct arl_err *err)
{
	char *coll = arl_k8s_path(ARL_K8S_ARL_API, ns->name, plural, NULL);
	char *path = arl_xasprintf("%s?fieldValidation=Strict", coll);
	struct arl_k8s_req r = obj_req("POST", "create", plural, ns, name, path);
	struct arl_k8s_resp resp = ARL_K8S_RESP_INIT;
	int ret;

	r.body = body;
	r.deadline_ms = deadline;
	r.cancel_fd = k->cancel_fd;
	r.owner_label = k->owner_label;
	/* The attempt's deadline bounds the retries, and the window how many retry at once. */
	r.max_tries = -1;
	r.throttle = throttle_of(k);
	ret = arl_k8s_request(k->c, &r, &resp, err);
	/*
	 * Without a definite answer (no reply, a 5xx, a cancelled transfer) the object may exist
	 * anyway: the caller deletes it to leave nothing behind. A 4xx means it was refused.
	 */
	*maybe_created = ret == 0 || (resp.tries > 0 && !(resp.status >= 400 && resp.status < 500));
	arl_k8s_resp_release(&resp);
	free(path);
	free(coll);
	return ret;
}

/*
 * A cancelled run still cleans up, but a server that does not answer must not hold its exit
 * for long: once cleanup has seen the cancellation, deletes have K8S_CANCEL_MS from
 * that moment. Returns that deadline, or 0 while the run is not cancelled.
 */
static int64_t cancel_cleanup_deadline(struct kube *k)
{
	int64_t at;

	if (!arl_fd_readable(k->cancel_fd))
		return 0;
	pthread_mutex_lock(&k->mu);
	if (!k->cancelled_at)
		k->cancelled_at = arl_now_ms();
	at = k->cancelled_at;
	pthread_mutex_unlock(&k->mu);
	return at + K8S_CANCEL_MS;
}

/*
 * Deletes one of our objects, retrying (however many tries it takes: an API server that is
 * down for a while must not make us leak) for up to K8S_CLEANUP_MS, or the cancelled run's
 * cleanup deadline; returns true when it is gone or going.
 */
static bool delete_obj(struct kube *k, const char *plural, struct kns *ns, const char *name)
{
	char *path = arl_k8s_path(ARL_K8S_ARL_API, ns->name, plural, name);
	struct arl_k8s_req r = obj_req("DELETE", "delete", plural, ns, name, path);
	struct arl_k8s_resp resp = ARL_K8S_RESP_INIT;
	struct arl_err err = ARL_ERR_INIT;
	int64_t deadline = arl_now_ms() + K8S_CLEANUP_MS;
	bool ok = true;
	int rc;

	r.max_tries = -1;
	for (;;) {
		int64_t cut = cancel_cleanup_deadline(k), floor = arl_now_ms() + K8S_LAST_TRY_MS;

		r.deadline_ms = cut && cut < deadline ? cut : deadline;
		if (r.deadline_ms < floor)
			r.deadline_ms = floor;
		/* Not cancellable once cancelled: the deadline above is what bounds it then. */
		r.cancel_fd = cut ? -1 : k->cancel_fd;
		rc = arl_k8s_request(k->c, &r, &resp, &err);
		if (rc == 0 || !resp.cancelled)
			break;
		/* Cancelled meanwhile: go on under the cancelled run's deadline. */
		arl_k8s_resp_release(&resp);
		arl_err_clear(&err);
	}
	if (rc < 0 && resp.status != 404) {
		arl_log_warn("kubernetes: %s; it is labelled for `arl-batch gc`", err.msg);
		ok = false;
	}
	arl_k8s_resp_release(&resp);
	free(path);
	return ok;
}

/* --- open / close -------------------------------------------------------------------- */

static struct kns *ns_get(struct kube *k, const char *name)
{
	for (size_t i = 0; i < k->nns; i++)
		if (!strcmp(k->nss[i].name, name))
			return &k->nss[i];
	k->nss = arl_xrealloc(k->nss, (k->nns + 1) * sizeof(*k->nss));
	memset(&k->nss[k->nns], 0, sizeof(k->nss[k->nns]));
	k->nss[k->nns].name = arl_xstrdup(name);
	return &k->nss[k->nns++];
}

/* The first container's limit @key ("memory", "cpu") of WarmPool @wp, or NULL. */
static const char *pool_limit(const cJSON *wp, const char *key)
{
	const char *const path[] = {"spec", "template", "spec", "containers"};
	const cJSON *c = wp;
	char *at;
	const char *v;

	for (size_t i = 0; c && i < sizeof(path) / sizeof(path[0]); i++)
		c = cJSON_GetObjectItemCaseSensitive(c, path[i]);
	if (!cJSON_IsArray(c) || !(c = cJSON_GetArrayItem(c, 0)))
		return NULL;
	at = arl_xasprintf("resources.limits.%s", key);
	v = arl_k8s_get_str(c, at);
	free(at);
	return v;
}

/* Whether the file's quantity @want differs from the pool's @have (NULL: none). */
static bool limit_differs(const char *want, const char *have, int64_t per_unit)
{
	int64_t a, b;

	if (!want)
		return false;
	return !have || arl_quantity_parse(want, per_unit, &a) < 0 ||
	       arl_quantity_parse(have, per_unit, &b) < 0 || a != b;
}

/* Checks (and with `create:`, creates and waits for) the WarmPool behind @p. */
static int check_pool(struct kube *k, const struct arl_pool *p, const char *ns, struct arl_err *err)
{
	cJSON *wp = NULL;
	char *names;
	int64_t replicas;

	if (arl_warmpool_get(k->c, ns, p->name, k->cancel_fd, &wp, err) < 0)
		return -1;
	if (wp) {
		const struct arl_pool_resources *r = &arl_k8s_pool(p)->resources;
		bool zero = arl_k8s_get_int(wp, "spec.replicas", 0, INT32_MAX, &replicas) == 0 &&
		            replicas == 0;

		/* A pod's limits are its WarmPool's: the file's apply only to a pool it creates. */
		if (limit_differs(r->memory, pool_limit(wp, "memory"), 1) ||
		    limit_differs(r->cpus, pool_limit(wp, "cpu"), 1000))
			arl_log_warn(
			    "pool '%s': warmpool '%s' in namespace '%s' exists with other "
			    "limits than the pool's resources (memory %s, cpus %s), and its "
			    "pods keep them; delete it to have a run create it with these",
			    p->name, p->name, ns, r->memory ? r->memory : "unset",
			    r->cpus ? r->cpus : "unset");
		cJSON_Delete(wp);
		if (zero)
			return arl_error(
			    err, ARL_E_BACKEND,
			    "warmpool '%s' in namespace '%s' has 0 replicas: no sandbox "
			    "could ever be allocated from it",
			    p->name, ns);
		return 0;
	}
	const struct arl_k8s_pool *kp = arl_k8s_pool(p);

	if (!kp->create) {
		names = arl_warmpool_names(k->c, ns);
		arl_error(err, ARL_E_BACKEND,
		          "warmpool '%s' does not exist in namespace '%s' (warmpools there: %s); "
		          "create it with `arl-batch pool create`, or give the pool a `create:` "
		          "section",
		          p->name, ns, names);
		free(names);
		return -1;
	}
	struct arl_warmpool_spec spec = {.name = p->name,
	                                 .namespace = ns,
	                                 .image = kp->image,
	                                 .sidecar_image = kp->sidecar_image,
	                                 .replicas = p->replicas > 0 ? p->replicas : 1,
	                                 .testbed_path = kp->testbed_path,
	                                 .memory = kp->resources.memory,
	                                 .cpus = kp->resources.cpus};

	arl_log_info("creating warmpool '%s' in namespace '%s' (%d replicas of '%s')", p->name, ns,
	             spec.replicas, kp->image ? kp->image : "");
	if (arl_warmpool_create(k->c, &spec, NULL, err) < 0 ||
	    arl_warmpool_wait_ready(k->c, ns, p->name, arl_now_ms() + K8S_POOL_READY_MS,
	                            k->cancel_fd, err) < 0)
		return -1;
	return 0;
}

/*
 * Deletes what was never released, then gives the watches a few seconds to report the
 * deletions (Sandboxes keep a finalizer until the operator has returned their pod), so that
 * when `run` exits, what it created is really gone.
 */
static void kube_close(void *state)
{
	struct kube *k = state;
	struct arl_sandbox *sb, *next;
	int64_t drain = arl_now_ms() + K8S_DRAIN_MS;
	size_t left = 0;

	if (!k)
		return;
	/* Sandboxes never released (a worker abandoned after a second signal): delete them. */
	for (sb = k->live; sb; sb = next) {
		next = sb->next;
		if (sb->ns->sandboxes)
			delete_obj(k, "sandboxes", sb->ns, sb->name);
		free(sb->job_key);
		free(sb);
	}
	for (size_t i = 0; i < k->nns; i++) {
		if (k->nss[i].tasks)
			left += arl_k8s_watch_drain(k->nss[i].tasks, drain);
		if (k->nss[i].sandboxes)
			left += arl_k8s_watch_drain(k->nss[i].sandboxes, drain);
	}
	if (left)
		arl_log_warn("kubernetes: %zu deleted object%s not gone yet after %d s "
		             "(the operator removes its finalizers)",
		             left, left == 1 ? "" : "s", K8S_DRAIN_MS / 1000);
	if (getenv("ARL_K8S_STATS") && k->c) {
		struct arl_k8s_stats st;

		arl_k8s_get_stats(k->c, &st);
		arl_log_info("kubernetes: %llu requests (%llu retries, %llu watch "
		             "connections, %llu lists)",
		             (unsigned long long)st.requests, (unsigned long long)st.retries,
		             (unsigned long long)st.watch_connects, (unsigned long long)st.relists);
		if (k->throttle) {
			struct arl_http_throttle_stats ts;

			arl_http_throttle_get_stats(k->throttle, &ts);
			arl_log_info("kubernetes: creation window %d of %d (%u decreases, "
			             "%u increases)",
			             ts.window, ts.max, ts.decreases, ts.increases);
		}
	}
	for (size_t i = 0; i < k->nns; i++) {
		arl_k8s_watch_stop(k->nss[i].tasks);
		arl_k8s_watch_stop(k->nss[i].sandboxes);
		free(k->nss[i].name);
	}
	free(k->nss);
	free(k->pools);
	arl_k8s_free(k->c);
	arl_http_throttle_free(k->throttle);
	pthread_mutex_destroy(&k->mu);
	free(k);
}

/*
 * The client-side rate limit. A fixed default would cap a wide run below what the server
 * can take (50 req/s is ~12 one-step jobs/s), so unless --kube-qps/--kube-burst say otherwise
 * it scales with the sandboxes that can be in flight: 10 requests/s each (a one-step job makes
 * 4), and a burst that lets every one of them start at once. Server refusals are handled by
 * backing off, not by this limit.
 */
#define K8S_MAX_RATE 100000

static int check_rate(const char *value, struct arl_err *err)
{
	int64_t v;

	if (arl_parse_i64(value, 1, K8S_MAX_RATE, &v) < 0)
		return arl_error(err, ARL_E_USAGE, "expected a number from 1 to %d", K8S_MAX_RATE);
	return 0;
}

/* `run`'s options for this backend, read by kube_open(). */
static const struct arl_backend_option kube_options[] = {
    {"kubeconfig", NULL, "PATH",
     "kubernetes: the kubeconfig (default $KUBECONFIG,\n"
     "~/.kube/config, else the in-cluster service account)",
     0},
    {"context", NULL, "NAME", "kubernetes: the kubeconfig context (default: current)", 0},
    {"kube-qps", check_rate, "N",
     "kubernetes: API requests per second (default: 10 per\n"
     "kubernetes pool replica, at least 50)",
     0},
    {"kube-burst", check_rate, "N",
     "kubernetes: API request burst (default: 2 per replica,\n"
     "at least 100)",
     0},
    {NULL, NULL, NULL, NULL, 0},
};

static void set_rate(struct arl_k8s_opts *co, const struct arl_backend_opts *o, int inflight)
{
	co->qps = 10.0 * inflight < ARL_K8S_DEFAULT_QPS ? ARL_K8S_DEFAULT_QPS : 10.0 * inflight;
	co->burst = 2 * inflight < ARL_K8S_DEFAULT_BURST ? ARL_K8S_DEFAULT_BURST : 2 * inflight;
	const char *qps = arl_backend_setting(o, "kube-qps");
	const char *burst = arl_backend_setting(o, "kube-burst");
	int64_t v;

	/* Checked when given (check_rate): a bad value never gets here. */
	if (qps && arl_parse_i64(qps, 1, K8S_MAX_RATE, &v) == 0)
		co->qps = (double)v;
	if (burst && arl_parse_i64(burst, 1, K8S_MAX_RATE, &v) == 0)
		co->burst = (int)v;
}

/*
 * What runners of this host left in our namespaces when they died (`arl-batch gc` does the
 * same on demand): one line per object deleted. A failure here does not stop the run.
 */
static void sweep_dead_owners(struct kube *k)
{
	struct arl_k8s_gc_opts go = ARL_K8S_GC_OPTS_INIT;
	struct arl_k8s_gc_result res;
	struct arl_err e = ARL_ERR_INIT;
	struct arl_log_blob lines;
	int rc;
	const char **names = arl_xcalloc(k->nns ? k->nns : 1, sizeof(*names));

	for (size_t i = 0; i < k->nns; i++)
		names[i] = k->nss[i].name;
	go.namespaces = names;
	go.nnamespaces = k->nns;
	go.remove = true;
	go.same_boot_only = true;
	go.out = arl_log_begin(&lines);
	go.prefix = ARL_LOG_PREFIX "kubernetes: ";
	go.cancel_fd = k->cancel_fd;
	rc = k->nns ? arl_k8s_gc_sweep(k->c, &go, &res, &e) : 0;
	arl_log_end(&lines); /* the sweep's lines, whole */
	if (rc < 0 && e.code != ARL_E_CANCELLED)
		arl_log_warn("kubernetes: cannot sweep what dead runners left: %s", e.msg);
	free(names);
}

/*
 * Once per run: configuration and client, a run label unique across databases, every
 * WarmPool checked (created and waited for with `create:`), what dead runners of this host
 * left swept, then the two watches per namespace. Anything wrong here (but the sweep) fails
 * the run before a job starts.
 */
static int kube_open(void **state, const struct arl_backend_opts *o,
                     const struct arl_pool *const *pools, size_t npools, struct arl_err *err)
{
	struct arl_kubeconfig_opts ko = ARL_KUBECONFIG_OPTS_INIT;
	struct arl_k8s_opts co = ARL_K8S_OPTS_INIT;
	struct arl_kubeconfig *kc = NULL;
	struct arl_kubeconfig_info info;
	struct kube *k = arl_xcalloc(1, sizeof(*k));
	char rnd[9], tmp[128];

	pthread_mutex_init(&k->mu, NULL);
	k->run_id = o->run_id;
	k->cancel_fd = o->cancel_fd;
	k->capture_max = o->capture_max ? o->capture_max : ARL_SPAWN_DEFAULT_CAPTURE;
	ko.path = arl_backend_setting(o, "kubeconfig");
	ko.context = arl_backend_setting(o, "context");
	for (size_t i = 0; i < npools; i++)
		k->inflight += pools[i]->replicas;
	set_rate(&co, o, k->inflight);
	if (arl_kubeconfig_load(&kc, &ko, err) < 0)
		goto fail;
	arl_kubeconfig_describe(kc, &info);
	if (arl_k8s_new(&k->c, kc, &co, err) < 0)
		goto fail;
	/* The run id alone could repeat across databases: add a random part. */
	arl_k8s_random_suffix(rnd, 8);
	snprintf(tmp, sizeof(tmp), "%lld-%s", (long long)o->run_id, rnd);
	arl_k8s_label_value(tmp, k->run_label);
	snprintf(k->owner_label, sizeof(k->owner_label), "%s=%s", K8S_RUN_LABEL, k->run_label);
	arl_k8s_gc_self(&k->owner);

	k->pools = arl_xcalloc(npools ? npools : 1, sizeof(*k->pools));
	for (size_t i = 0; i < npools; i++) {
		const struct arl_pool *p = pools[i];
		const struct arl_k8s_pool *kp = arl_k8s_pool(p);
		const char *ns = kp->namespace ? kp->namespace : info.namespace;
		bool seen = false;

		k->pools[k->npools].pool = p;
		k->pools[k->npools++].ns = ns_get(k, ns);
		/* Files may share a pool name: check each WarmPool once. */
		for (size_t j = 0; j < i; j++)
			seen = seen || (!strcmp(pools[j]->name, p->name) &&
			                !strcmp(k->pools[j].ns->name, ns));
		if (kp->workspace_given && !seen)
			arl_log_warn("pool '%s': 'workspace' is a local-backend setting; on "
			             "kubernetes the WarmPool's pods provide /workspace",
			             p->name);
		if (!seen && check_pool(k, p, ns, err) < 0) {
			arl_err_prefix(err, "pool '%s' (context '%s', server %s)", p->name,
			               info.context, info.server);
			goto fail;
		}
	}
	sweep_dead_owners(k);
	for (size_t i = 0; i < k->nns; i++) {
		struct kns *ns = &k->nss[i];

		if (arl_k8s_watch_start(k->c, ARL_K8S_ARL_API, "sandboxes", ns->name,
		                        k->owner_label, k->cancel_fd, &ns->sandboxes, err) < 0 ||
		    arl_k8s_watch_start(k->c, ARL_K8S_ARL_API, "tasks", ns->name, k->owner_label,
		                        k->cancel_fd, &ns->tasks, err) < 0) {
			arl_err_prefix(err, "context '%s', server %s", info.context, info.server);
			goto fail;
		}
	}
	arl_log_info("kubernetes: context '%s' (%s), objects labelled %s", info.context,
	             info.server, k->owner_label);
	*state = k;
	return 0;
fail:
	kube_close(k);
	return -1;
}

/* --- acquire ------------------------------------------------------------------------- */

struct sandbox_view {
	char phase[16];
	char *pod, *message;
	bool deleted;
};

/* Watch predicate: Ready or Failed (terminal per ValidatePhaseTransition), or gone. */
static int sandbox_settled(const cJSON *obj, bool deleted, void *arg)
{
	struct sandbox_view *v = arg;
	const char *phase = arl_k8s_get_str(obj, "status.phase");
	const cJSON *conds = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(obj, "status"), "conditions");

	snprintf(v->phase, sizeof(v->phase), "%s", phase ? phase : "");
	v->deleted = deleted;
	if (deleted)
		return 1;
	if (phase && !strcmp(phase, "Ready")) {
		const char *pod = arl_k8s_get_str(obj, "status.podName");

		v->pod = pod ? arl_xstrdup(pod) : NULL;
		return 1;
	}
	if (phase && !strcmp(phase, "Failed")) {
		const char *msg = arl_k8s_get_str(cJSON_GetArrayItem(conds, 0), "message");

		v->message = msg ? arl_xstrdup(msg) : NULL;
		return 1;
	}
	return 0;
}

/* "1 of 2 ready, 1 allocated" for an allocation that timed out; one GET, on failure only. */
static void pool_state(struct kube *k, const struct arl_sandbox *sb, char *buf, size_t len)
{
	struct arl_err err = ARL_ERR_INIT;
	int64_t want = -1, ready = -1, alloc = -1;
	cJSON *wp = NULL;

	buf[0] = '\0';
	if (arl_warmpool_get(k->c, sb->ns->name, sb->pool->name, -1, &wp, &err) < 0 || !wp)
		return;
	arl_k8s_get_int(wp, "spec.replicas", 0, INT32_MAX, &want);
	arl_k8s_get_int(wp, "status.readyReplicas", 0, INT32_MAX, &ready);
	arl_k8s_get_int(wp, "status.allocatedReplicas", 0, INT32_MAX, &alloc);
	snprintf(buf, len, "; warmpool '%s': %lld of %lld replicas idle and ready, %lld allocated",
	         sb->pool->name, (long long)(ready < 0 ? 0 : ready), (long long)want,
	         (long long)(alloc < 0 ? 0 : alloc));
	cJSON_Delete(wp);
}

static void sandbox_free(struct arl_sandbox *sb)
{
	if (sb) {
		free(sb->job_key);
		free(sb);
	}
}

/*
 * A Sandbox for one attempt: tracked in the watch before it is created (so no event can be
 * missed), created with ?fieldValidation=Strict (a typo is a 400, not silently pruned), and
 * waited for until Ready within the job's prepareTimeout. Whatever fails, a Sandbox that may
 * exist is deleted.
 */
static int kube_acquire(void *state, const struct arl_pool *pool, const struct arl_sandbox_req *req,
                        struct arl_sandbox **out, struct arl_err *err)
{
	struct kube *k = state;
	struct kpool *kp = find_pool(k, pool);
	struct arl_sandbox *sb;
	struct sandbox_view v = {{0}, NULL, NULL, false};
	cJSON *body = NULL, *meta, *spec;
	char rnd[7], why[200];
	bool maybe = false;
	int64_t timeout_s, started = arl_now_ms();
	int ret = -1;

	if (!kp)
		return arl_error(err, ARL_E_BACKEND, "pool '%s' was not opened", pool->name);
	sb = arl_xcalloc(1, sizeof(*sb));
	sb->pool = pool;
	sb->ns = kp->ns;
	sb->job_key = arl_xstrdup(req->job->key ? req->job->key : req->job->name);
	arl_k8s_label_value(sb->job_key, sb->job_label);
	snprintf(sb->attempt, sizeof(sb->attempt), "%d", req->attempt);
	arl_k8s_random_suffix(rnd, 6);
	arl_k8s_sandbox_name(k->run_id, sb->job_key, req->attempt, rnd, sb->name);
	arl_k8s_random_suffix(sb->trace_id, 32);

	body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "apiVersion", "arl.infra.io/v1alpha1");
	cJSON_AddStringToObject(body, "kind", "Sandbox");
	meta = cJSON_AddObjectToObject(body, "metadata");
	cJSON_AddStringToObject(meta, "name", sb->name);
	cJSON_AddStringToObject(meta, "namespace", sb->ns->name);
	add_labels(meta, k, sb);
	if (req->job->keep_alive) /* gc never takes it */
		cJSON_AddStringToObject(cJSON_GetObjectItem(meta, "labels"), ARL_K8S_GC_KEEP_LABEL,
		                        "true");
	spec = cJSON_AddObjectToObject(body, "spec");
	cJSON_AddStringToObject(spec, "poolRef", pool->name);
	/* Always keepAlive: a keepAlive:false Sandbox may be reaped after its first Task. */
	cJSON_AddBoolToObject(spec, "keepAlive", 1);
	/*
	 * The safety net if we die: idle time counts from the last Task, so the wait for a pod
	 * and one step's limit plus a margin. A job that keeps its sandbox gets the operator's default instead.
	 */
	timeout_s =
	    (req->job->prepare_timeout_ms + req->job->timeout_ms + 999) / 1000 + K8S_IDLE_MARGIN_S;
	if (!req->job->keep_alive)
		cJSON_AddNumberToObject(spec, "idleTimeoutSeconds",
		                        (double)(timeout_s > INT32_MAX ? INT32_MAX : timeout_s));

	arl_k8s_watch_track(sb->ns->sandboxes, sb->name);
	if (create_obj(k, "sandboxes", sb->ns, sb->name, body, req->deadline_ms, &maybe, err) < 0)
		goto fail;
	switch (arl_k8s_watch_wait(sb->ns->sandboxes, sb->name, sandbox_settled, &v,
	                           req->deadline_ms, err)) {
	case ARL_K8S_WAIT_DONE:
		if (v.deleted) {
			arl_error(err, ARL_E_BACKEND,
			          "sandbox '%s' was deleted before it was Ready", sb->name);
			goto fail;
		}
		if (!strcmp(v.phase, "Failed")) {
			arl_error(err, ARL_E_BACKEND, "sandbox '%s' failed%s%s", sb->name,
			          v.message ? ": " : " (its pod went away)",
			          v.message ? v.message : "");
			goto fail;
		}
		break;
	case ARL_K8S_WAIT_TIMEOUT:
		pool_state(k, sb, why, sizeof(why));
		arl_error(
		    err, ARL_E_TIMEOUT,
		    "sandbox '%s' not Ready after %llds (phase '%s'): no pod of pool '%s' was "
		    "allocated within the job's prepareTimeout%s",
		    sb->name, (long long)((arl_now_ms() - started) / 1000),
		    v.phase[0] ? v.phase : "none yet", pool->name, why);
		goto fail;
	case ARL_K8S_WAIT_CANCELLED:
		arl_error(err, ARL_E_CANCELLED, "cancelled while sandbox '%s' was being allocated",
		          sb->name);
		goto fail;
	case ARL_K8S_WAIT_ERROR:
		goto fail;
	}
	free(v.pod);
	pthread_mutex_lock(&k->mu);
	sb->next = k->live;
	if (k->live)
		k->live->prev = sb;
	k->live = sb;
	pthread_mutex_unlock(&k->mu);
	*out = sb;
	sb = NULL;
	ret = 0;
	goto out;
fail:
	if (maybe && delete_obj(k, "sandboxes", sb->ns, sb->name))
		arl_k8s_watch_forget(sb->ns->sandboxes, sb->name);
	else
		arl_k8s_watch_untrack(sb->ns->sandboxes, sb->name);
	arl_err_prefix(err, "namespace '%s'", sb->ns->name);
	free(v.pod);
out:
	free(v.message);
	cJSON_Delete(body);
	sandbox_free(sb);
	return ret;
}

/* --- exec ---------------------------------------------------------------------------- */

struct task_view {
	char state[16];
	bool final, deleted, running;
	bool has_exit, has_completion;
	int64_t exit_code;
	char *out, *err, *duration;
};

/*
 * Watch predicate: the Task finished (Succeeded/Failed), copying its results out while the
 * watch's lock is held; also notes whether it ever ran, which decides timeout vs infra.
 */
static int task_settled(const cJSON *obj, bool deleted, void *arg)
{
	struct task_view *v = arg;
	const char *state = arl_k8s_get_str(obj, "status.state");
	const char *s;

	snprintf(v->state, sizeof(v->state), "%s", state ? state : "");
	v->deleted = deleted;
	if (state && !strcmp(state, "Running"))
		v->running = true;
	if (state && (!strcmp(state, "Succeeded") || !strcmp(state, "Failed"))) {
		v->final = true;
		v->has_exit = arl_k8s_get_int(obj, "status.exitCode", INT32_MIN, INT32_MAX,
		                              &v->exit_code) == 0;
		v->has_completion = arl_k8s_get_str(obj, "status.completionTime") != NULL;
		s = arl_k8s_get_str(obj, "status.stdout");
		v->out = arl_xstrdup(s ? s : "");
		s = arl_k8s_get_str(obj, "status.stderr");
		v->err = arl_xstrdup(s ? s : "");
		s = arl_k8s_get_str(obj, "status.duration");
		v->duration = s ? arl_xstrdup(s) : NULL;
		return 1;
	}
	return deleted;
}

/* Appends @step to the Task's spec.steps as ARL's TaskStep. */
static void task_step(cJSON *steps, const struct arl_step *step)
{
	cJSON *s = cJSON_CreateObject();

	cJSON_AddItemToArray(steps, s); /* attached first: filled in place */

	cJSON_AddStringToObject(s, "name", step->name && *step->name ? step->name : "step");
	if (step->type == ARL_STEP_FILEPATCH) {
		cJSON_AddStringToObject(s, "type", "FilePatch");
		cJSON_AddStringToObject(s, "path", step->path ? step->path : "");
		cJSON_AddStringToObject(s, "content", step->content ? step->content : "");
		return;
	}
	cJSON_AddStringToObject(s, "type", "Command");
	cJSON *cmd = cJSON_AddArrayToObject(s, "command");

	for (size_t i = 0; i < step->argc && step->argv && step->argv[i]; i++)
		cJSON_AddItemToArray(cmd, cJSON_CreateString(step->argv[i]));
	/* A relative workDir is relative to /workspace, as on the local backend. */
	if (step->work_dir && step->work_dir[0] == '/') {
		cJSON_AddStringToObject(s, "workDir", step->work_dir);
	} else if (step->work_dir && *step->work_dir) {
		char *wd = arl_xasprintf("/workspace/%s", step->work_dir);

		cJSON_AddStringToObject(s, "workDir", wd);
		free(wd);
	}
	if (step->env.n) {
		cJSON *env = cJSON_AddObjectToObject(s, "env");

		for (size_t i = 0; i < step->env.n; i++)
			cJSON_AddStringToObject(env, step->env.v[i].key, step->env.v[i].val);
	}
}

/* The operator's transport failures (sidecar unreachable, gRPC deadline): not the step's. */
static bool operator_failure(const struct task_view *v, bool *deadline)
{
	static const char prefix[] = "Failed to execute command: ";
	const char *p = v->err ? strstr(v->err, prefix) : NULL;

	*deadline = p && strstr(p, "DeadlineExceeded");
	return p && v->exit_code == 1 && (p == v->err || p[-1] == '\n');
}

/*
 * The watch brought no final state by the step's deadline. Usually the step overran; but
 * the stream may have been cut off (an API server outage) while the Task finished. One GET
 * tells them apart: DONE with @v filled in, TIMEOUT when the Task is really not done, and
 * ERROR (infra, @err set) when the server does not answer, since then nobody can tell what
 * the step did, and calling it a timeout would blame the job for the platform.
 */
static enum arl_k8s_wait task_recheck(struct kube *k, struct arl_sandbox *sb, const char *name,
                                      struct task_view *v, struct arl_err *err)
{
	char *path = arl_k8s_path(ARL_K8S_ARL_API, sb->ns->name, "tasks", name);
	struct arl_k8s_req r = obj_req("GET", "get", "tasks", sb->ns, name, path);
	struct arl_k8s_resp resp = ARL_K8S_RESP_INIT;
	struct arl_err e = ARL_ERR_INIT;
	enum arl_k8s_wait rc = ARL_K8S_WAIT_TIMEOUT;

	r.deadline_ms = arl_now_ms() + K8S_RECHECK_MS;
	r.cancel_fd = k->cancel_fd;
	r.max_tries = -1;
	if (arl_k8s_request(k->c, &r, &resp, &e) < 0) {
		if (resp.cancelled) {
			rc = ARL_K8S_WAIT_CANCELLED;
		} else if (resp.status == 404) {
			arl_error(err, ARL_E_BACKEND, "task '%s' was deleted before it finished",
			          name);
			rc = ARL_K8S_WAIT_ERROR;
		} else {
			arl_error(err, ARL_E_BACKEND,
			          "task '%s': no result by the step's deadline, and the API server "
			          "cannot be asked (%s)",
			          name, e.msg);
			rc = ARL_K8S_WAIT_ERROR;
		}
	} else if (task_settled(resp.body, false, v)) {
		rc = ARL_K8S_WAIT_DONE;
	}
	arl_k8s_resp_release(&resp);
	free(path);
	return rc;
}

/*
 * One step as one Task. Its result maps onto ours: exitCode absent is 0 (omitempty), -1 is
 * the operator's timer (TIMEOUT), "Failed to execute command:" with exit 1 is the
 * operator's transport failing (INFRA, or TIMEOUT for its gRPC deadline), "sandbox X not
 * found" without completionTime is INFRA. The Task is deleted whatever happened.
 */
static int kube_exec(void *state, struct arl_sandbox *sb, const struct arl_step *step,
                     const struct arl_exec_ctx *ctx, struct arl_step_result *res,
                     enum arl_class *cls, struct arl_err *err)
{
	struct kube *k = state;
	struct task_view v = {{0}, false, false, false, false, false, 0, NULL, NULL, NULL};
	char name[80], tmo[32];
	cJSON *body = cJSON_CreateObject(), *meta, *spec, *steps;
	int64_t now = arl_now_ms(), left = ctx->deadline_ms - now, limit_ms, wait_until, dur_ns;
	bool maybe = false, deadline_cut = false;
	enum arl_k8s_wait wr;
	int ret = -1;

	*cls = ARL_CLASS_INFRA;
	snprintf(name, sizeof(name), "%s-%d", sb->name, ++sb->tasks);
	if (left <= 0) {
		/* The attempt's time ran out between steps. */
		*cls = ARL_CLASS_TIMEOUT;
		res->finished_ms = res->started_ms;
		ret = 0;
		goto out;
	}
	/* The operator's timer: the time left, whole seconds, rounded up (docs/kubernetes.md). */
	arl_k8s_format_timeout(left, tmo, sizeof(tmo));
	limit_ms = ((left + 999) / 1000) * 1000 + K8S_GRACE_MS;
	wait_until = now + limit_ms;

	cJSON_AddStringToObject(body, "apiVersion", "arl.infra.io/v1alpha1");
	cJSON_AddStringToObject(body, "kind", "Task");
	meta = cJSON_AddObjectToObject(body, "metadata");
	cJSON_AddStringToObject(meta, "name", name);
	cJSON_AddStringToObject(meta, "namespace", sb->ns->name);
	add_labels(meta, k, sb);
	cJSON_AddStringToObject(cJSON_GetObjectItemCaseSensitive(meta, "labels"), K8S_SANDBOX_LABEL,
	                        sb->name);
	spec = cJSON_AddObjectToObject(body, "spec");
	cJSON_AddStringToObject(spec, "sandboxRef", sb->name);
	steps = cJSON_AddArrayToObject(spec, "steps");
	task_step(steps, step);
	cJSON_AddStringToObject(spec, "timeout", tmo);
	cJSON_AddStringToObject(spec, "traceID", sb->trace_id);
	cJSON_AddNumberToObject(spec, "ttlSecondsAfterFinished", K8S_TASK_TTL_S);

	arl_k8s_watch_track(sb->ns->tasks, name);
	if (create_obj(k, "tasks", sb->ns, name, body, wait_until, &maybe, err) < 0) {
		if (arl_fd_readable(k->cancel_fd)) {
			*cls = ARL_CLASS_CANCELLED;
			ret = 0;
		}
		goto cleanup;
	}
	/*
	 * The operator's timer starts when it runs the Task: time the API server held the
	 * create back (refusals after an outage, a slow server, the creation window) is not the
	 * step's, so our own limit counts from the moment the Task exists.
	 */
	wait_until = arl_now_ms() + limit_ms;
	wr = arl_k8s_watch_wait(sb->ns->tasks, name, task_settled, &v, wait_until, err);
	if (wr == ARL_K8S_WAIT_TIMEOUT)
		wr = task_recheck(k, sb, name, &v, err);
	switch (wr) {
	case ARL_K8S_WAIT_DONE:
		break;
	case ARL_K8S_WAIT_TIMEOUT:
		/*
		 * Our limit, enforced here: the operator did not report within its own timer
		 * plus a grace. A Task that never started is the platform's fault, not the step's.
		 */
		if (v.running) {
			*cls = ARL_CLASS_TIMEOUT;
			ret = 0;
		} else {
			arl_error(
			    err, ARL_E_BACKEND,
			    "task '%s' did not start within the step's time (state '%s'): the "
			    "operator is slow or the sandbox is not Ready",
			    name, v.state[0] ? v.state : "none yet");
		}
		goto cleanup;
	case ARL_K8S_WAIT_CANCELLED:
		*cls = ARL_CLASS_CANCELLED;
		ret = 0;
		goto cleanup;
	case ARL_K8S_WAIT_ERROR:
		goto cleanup;
	}
	if (!v.final) {
		arl_error(err, ARL_E_BACKEND, "task '%s' was deleted before it finished", name);
		goto cleanup;
	}
	if (!strcmp(v.state, "Failed") && !v.has_completion && !strncmp(v.err, "sandbox ", 8) &&
	    strstr(v.err, " not found")) {
		arl_error(err, ARL_E_BACKEND, "sandbox '%s' is gone: %.200s", sb->name, v.err);
		goto cleanup;
	}
	res->has_exit = true;
	res->exit_code = v.has_exit ? (int)v.exit_code : 0; /* omitempty: absent means 0 */
	res->finished_ms = arl_wall_ms();
	if (v.duration && arl_k8s_parse_go_duration(v.duration, &dur_ns) == 0 && dur_ns >= 0 &&
	    res->finished_ms - dur_ns / 1000000 >= res->started_ms)
		res->started_ms = res->finished_ms - dur_ns / 1000000;
	if (res->exit_code == -1) {
		*cls = ARL_CLASS_TIMEOUT; /* killed by the operator's timer */
	} else if (operator_failure(&v, &deadline_cut)) {
		/* Its gRPC deadline is a time limit; anything else is the platform failing. */
		*cls = deadline_cut ? ARL_CLASS_TIMEOUT : ARL_CLASS_INFRA;
		if (!deadline_cut)
			arl_error(err, ARL_E_BACKEND, "the operator could not run the step: %.200s",
			          strstr(v.err, "Failed to execute command: "));
	} else if (res->exit_code != 0 || strcmp(v.state, "Succeeded")) {
		*cls = ARL_CLASS_FAILED;
	} else {
		*cls = ARL_CLASS_NONE;
	}
	arl_output_take(&res->out, v.out, k->capture_max);
	arl_output_take(&res->err, v.err, k->capture_max);
	v.out = v.err = NULL;
	if (*cls == ARL_CLASS_INFRA) {
		ret = -1; /* arl_backend_exec() records the infra class, attempt.c the message */
		goto cleanup;
	}
	ret = 0;
cleanup:
	if (!res->finished_ms)
		res->finished_ms = arl_wall_ms();
	if (maybe && delete_obj(k, "tasks", sb->ns, name))
		arl_k8s_watch_forget(sb->ns->tasks, name);
	else
		arl_k8s_watch_untrack(sb->ns->tasks, name);
	if (ret < 0)
		arl_err_prefix(err, "namespace '%s'", sb->ns->name);
out:
	free(v.out);
	free(v.err);
	free(v.duration);
	cJSON_Delete(body);
	return ret;
}

static const char *kube_sandbox_name(const struct arl_sandbox *sb)
{
	return sb->name;
}

/* keepAlive sandboxes are reported with the command that deletes them. */
static void kube_release(void *state, struct arl_sandbox *sb, bool keep)
{
	struct kube *k = state;

	if (!sb)
		return;
	pthread_mutex_lock(&k->mu);
	if (sb->prev)
		sb->prev->next = sb->next;
	else if (k->live == sb)
		k->live = sb->next;
	if (sb->next)
		sb->next->prev = sb->prev;
	pthread_mutex_unlock(&k->mu);
	if (keep) {
		arl_log_info("keeping sandbox '%s' in namespace '%s' (keepAlive); delete it "
		             "with: kubectl delete sandboxes.arl.infra.io -n %s %s",
		             sb->name, sb->ns->name, sb->ns->name, sb->name);
		arl_k8s_watch_untrack(sb->ns->sandboxes, sb->name);
	} else if (delete_obj(k, "sandboxes", sb->ns, sb->name)) {
		arl_k8s_watch_forget(sb->ns->sandboxes, sb->name);
	} else {
		arl_k8s_watch_untrack(sb->ns->sandboxes, sb->name);
	}
	sandbox_free(sb);
}

const struct arl_backend_ops arl_backend_kubernetes = {
    .pool = &arl_k8s_pool_kind,
    .options = kube_options,
    .open = kube_open,
    .acquire = kube_acquire,
    .exec = kube_exec,
    .sandbox_name = kube_sandbox_name,
    .release = kube_release,
    .close = kube_close,
    .gc = arl_k8s_backend_gc,
    .gc_options = arl_k8s_gc_options,
    .collect = arl_k8s_collect,
};
