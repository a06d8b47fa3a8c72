/*
 * Orphaned Sandboxes and Tasks: see k8s_gc.h for what makes an owner dead.
 *
 * A sweep is two label-selected lists (Tasks, Sandboxes) per namespace, or two at the
 * cluster scope, paged; then one DELETE per orphan with a uid precondition, so that an
 * object is deleted only if it is the one that was judged. Everything is decided from the
 * lists: nothing is deleted on a guess, and an object whose labels are incomplete is left.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <curl/curl.h>

#include "k8s/k8s_gc.h"
#include "k8s/k8s_text.h"
#include "util.h"
#include "banned.h"

/*
 * Objects per list request. A Task holds its steps' output (up to etcd's 1.5 MiB an object),
 * so its pages are short enough to stay under GC_MAX_BODY whatever they hold.
 */
#define GC_PAGE_SANDBOXES 500
#define GC_PAGE_TASKS     20
#define GC_MAX_BODY       (64u << 20)
#define GC_REQUEST_MS     30000 /* one list page or one DELETE, retries included */
#define GC_MANAGED_VAL    "arl-batch"

/* One object found by a sweep; strings are borrowed from the list it came from. */
struct found {
	const char *kind, *plural; /* "Task", "tasks" */
	const char *ns, *name, *uid, *run, *host, *pid;
	const char *why;  /* the owner is dead because */
	bool terminating; /* deletionTimestamp set: someone deleted it already */
};

/* --- identity ------------------------------------------------------------------------ */

void arl_k8s_gc_self(struct arl_k8s_owner *out)
{
	struct arl_owner me;
	char host[256];

	memset(out, 0, sizeof(*out));
	if (gethostname(host, sizeof(host)) < 0)
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = '\0';
	arl_k8s_label_value(host, out->host);
	arl_owner_self(&me);
	snprintf(out->pid, sizeof(out->pid), "%ld", me.pid);
	if (me.start)
		snprintf(out->start, sizeof(out->start), "%llu", me.start);
	/* Both are label values already (a UUID, decimal digits). */
	memcpy(out->boot, me.boot, sizeof(out->boot));
	memcpy(out->pidns, me.pidns, sizeof(out->pidns));
}

void arl_k8s_gc_add_labels(cJSON *labels, const struct arl_k8s_owner *o)
{
	cJSON_AddStringToObject(labels, ARL_K8S_GC_HOST_LABEL, o->host);
	cJSON_AddStringToObject(labels, ARL_K8S_GC_PID_LABEL, o->pid);
	if (o->start[0])
		cJSON_AddStringToObject(labels, ARL_K8S_GC_START_LABEL, o->start);
	if (o->boot[0])
		cJSON_AddStringToObject(labels, ARL_K8S_GC_BOOT_LABEL, o->boot);
	if (o->pidns[0])
		cJSON_AddStringToObject(labels, ARL_K8S_GC_PIDNS_LABEL, o->pidns);
}

static const char *label(const cJSON *labels, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(labels, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A start-time label; 0 (not compared) when absent or not a number, the side that keeps. */
static unsigned long long owner_start(const char *s)
{
	int64_t v;

	return s && arl_parse_i64(s, 1, INT64_MAX, &v) == 0 ? (unsigned long long)v : 0;
}

const char *arl_k8s_gc_judge(const cJSON *labels, const struct arl_k8s_owner *me,
                             const char *gone_host, bool other_boot_dead)
{
	const char *host = label(labels, ARL_K8S_GC_HOST_LABEL);
	const char *pid_s = label(labels, ARL_K8S_GC_PID_LABEL);
	const char *start_s = label(labels, ARL_K8S_GC_START_LABEL);
	const char *boot = label(labels, ARL_K8S_GC_BOOT_LABEL);
	const char *pidns = label(labels, ARL_K8S_GC_PIDNS_LABEL);
	const char *managed = label(labels, ARL_K8S_GC_MANAGED_LABEL);
	const char *run = label(labels, ARL_K8S_GC_RUN_LABEL);
	struct arl_owner o = {0}, m = {0};
	char gone[64];
	int64_t pid;

	/* Only what carries every owner label is ours to judge. */
	if (!host || !pid_s || !run || !run[0] || !managed || strcmp(managed, GC_MANAGED_VAL) ||
	    arl_parse_i64(pid_s, 1, INT32_MAX, &pid) < 0)
		return NULL;
	if (gone_host) {
		arl_k8s_label_value(gone_host, gone);
		if (strcmp(gone, me->host) != 0)
			return strcmp(host, gone) ? NULL : "its host was given up as gone";
	}
	if (strcmp(host, me->host) != 0)
		return NULL;
	/* The rest is the rule local sandboxes and runs are judged by (arl_owner_gone). */
	o.pid = (long)pid;
	o.start = owner_start(start_s);
	snprintf(o.boot, sizeof(o.boot), "%s", boot ? boot : "");
	snprintf(o.pidns, sizeof(o.pidns), "%s", pidns ? pidns : "");
	memcpy(m.boot, me->boot, sizeof(m.boot));
	memcpy(m.pidns, me->pidns, sizeof(m.pidns));
	return arl_owner_gone_boot(&o, &m, other_boot_dead);
}

/* --- listing ------------------------------------------------------------------------- */

/*
 * Appends the @plural objects that match @selector_q (URL-escaped) in @ns (NULL: the
 * cluster scope) to the array @all, page by page. *status is the last answer's HTTP status.
 */
static int list_into(struct arl_k8s *c, const char *plural, const char *ns, const char *selector_q,
                     int cancel_fd, cJSON *all, long *status, struct arl_err *err)
{
	char *base = arl_k8s_path(ARL_K8S_ARL_API, ns, plural, NULL), *cont = NULL;
	int ret = -1;

	for (;;) {
		struct arl_k8s_req r = ARL_K8S_REQ_INIT;
		struct arl_k8s_resp resp = ARL_K8S_RESP_INIT;
		char *ec = cont ? curl_easy_escape(NULL, cont, 0) : NULL;
		char *path =
		    arl_xasprintf("%s?labelSelector=%s&limit=%d%s%s", base, selector_q,
		                  strcmp(plural, "tasks") ? GC_PAGE_SANDBOXES : GC_PAGE_TASKS,
		                  ec ? "&continue=" : "", ec ? ec : "");
		cJSON *items, *it, *next;
		const char *more;
		int rc;

		curl_free(ec);
		r.method = "GET";
		r.verb = "list";
		r.resource = plural;
		r.namespace = ns;
		r.path = path;
		r.retry = ARL_K8S_RETRY_SAFE;
		r.deadline_ms = arl_now_ms() + GC_REQUEST_MS;
		r.cancel_fd = cancel_fd;
		r.max_body = GC_MAX_BODY;
		rc = arl_k8s_request(c, &r, &resp, err);
		free(path);
		*status = resp.status;
		items = cJSON_GetObjectItemCaseSensitive(resp.body, "items");
		if (rc == 0 && (!cJSON_IsObject(resp.body) || (items && !cJSON_IsArray(items)))) {
			if (ns)
				arl_error(
				    err, ARL_E_PROTO,
				    "cannot list %s in namespace '%s': the answer is not a list",
				    plural, ns);
			else
				arl_error(
				    err, ARL_E_PROTO,
				    "cannot list %s at the cluster scope: the answer is not a list",
				    plural);
			rc = -1;
		}
		if (rc < 0) {
			arl_k8s_resp_release(&resp);
			goto out;
		}
		/* Move the items over; take the next one before detaching this one. */
		for (it = items ? items->child : NULL; it; it = next) {
			next = it->next;
			cJSON_AddItemToArray(all, cJSON_DetachItemViaPointer(items, it));
		}
		more = arl_k8s_get_str(resp.body, "metadata.continue");
		free(cont);
		cont = more && more[0] ? arl_xstrdup(more) : NULL;
		arl_k8s_resp_release(&resp);
		if (!cont)
			break;
	}
	ret = 0;
out:
	free(cont);
	free(base);
	return ret;
}

/* Appends @host to the ", "-separated @list once, or "..." when it is full. */
static void add_host(char *list, size_t size, const char *host)
{
	size_t len = strlen(list), n = strlen(host);

	for (const char *p = list; *p;) {
		size_t w = strcspn(p, ",");

		if ((w == n && !strncmp(p, host, n)) || !strncmp(p, "...", 3))
			return;
		p += w;
		p += strspn(p, ", ");
	}
	if (len + 2 + n + 5 < size)
		snprintf(list + len, size - len, "%s%s", len ? ", " : "", host);
	else
		snprintf(list + len, size - len, "%s...", len ? ", " : "");
}

/* Fills @f from @obj when its owner is dead; returns false to leave it alone. */
static bool judge(const cJSON *obj, const char *kind, const char *plural,
                  const struct arl_k8s_owner *me, const struct arl_k8s_gc_opts *o,
                  struct arl_k8s_gc_result *res, struct found *f)
{
	const cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
	const cJSON *labels = cJSON_GetObjectItemCaseSensitive(md, "labels");
	const char *host = label(labels, ARL_K8S_GC_HOST_LABEL);
	const char *why, *keep;
	int64_t idle;

	memset(f, 0, sizeof(*f));
	f->kind = kind;
	f->plural = plural;
	f->ns = arl_k8s_get_str(obj, "metadata.namespace");
	f->name = arl_k8s_get_str(obj, "metadata.name");
	f->uid = arl_k8s_get_str(obj, "metadata.uid");
	if (!f->ns || !f->name || !host)
		return false;
	why = arl_k8s_gc_judge(labels, me, o->host, !o->same_boot_only);
	if (!why) {
		/* Objects of hosts we were not asked about: counted for the caller's hint. */
		char target[64];

		arl_k8s_label_value(o->host ? o->host : me->host, target);
		if (o->others && strcmp(host, target) != 0) {
			res->others++;
			add_host(res->other_hosts, sizeof(res->other_hosts), host);
		}
		return false;
	}
	/*
	 * A keepAlive job's Sandbox: labelled so, and the only kind made without an idle timeout
	 * (which is all that marks one made before the label existed).
	 */
	keep = label(labels, ARL_K8S_GC_KEEP_LABEL);
	if (!strcmp(plural, "sandboxes") &&
	    ((keep && !strcmp(keep, "true")) ||
	     arl_k8s_get_int(obj, "spec.idleTimeoutSeconds", 0, INT32_MAX, &idle) < 0))
		return false;
	f->run = label(labels, ARL_K8S_GC_RUN_LABEL);
	f->host = host;
	f->pid = label(labels, ARL_K8S_GC_PID_LABEL);
	f->why = why;
	f->terminating = arl_k8s_get_str(obj, "metadata.deletionTimestamp") != NULL;
	return true;
}

/* --- deleting ------------------------------------------------------------------------ */

/* Deletes @f if it is still the object judged (its uid); gone already is fine. */
static int delete_found(struct arl_k8s *c, const struct found *f, int cancel_fd,
                        struct arl_err *err)
{
	char *path = arl_k8s_path(ARL_K8S_ARL_API, f->ns, f->plural, f->name);
	struct arl_k8s_req r = ARL_K8S_REQ_INIT;
	struct arl_k8s_resp resp = ARL_K8S_RESP_INIT;
	cJSON *body = cJSON_CreateObject();
	struct arl_err e = ARL_ERR_INIT;
	int ret = 0;

	cJSON_AddStringToObject(body, "apiVersion", "v1");
	cJSON_AddStringToObject(body, "kind", "DeleteOptions");
	if (f->uid)
		cJSON_AddStringToObject(cJSON_AddObjectToObject(body, "preconditions"), "uid",
		                        f->uid);
	r.method = "DELETE";
	r.verb = "delete";
	r.resource = f->plural;
	r.namespace = f->ns;
	r.name = f->name;
	r.path = path;
	r.body = body;
	r.retry = ARL_K8S_RETRY_SAFE;
	r.deadline_ms = arl_now_ms() + GC_REQUEST_MS;
	r.cancel_fd = cancel_fd;
	/*
	 * 404: gone already. 409: the uid changed, so this name is a new object, not ours.
	 * Judged on an error of our own, so that a caller's earlier error is never erased.
	 */
	if (arl_k8s_request(c, &r, &resp, &e) < 0 && resp.status != 404 && resp.status != 409)
		ret = arl_error(err, e.code, "%s", e.msg);
	arl_k8s_resp_release(&resp);
	cJSON_Delete(body);
	free(path);
	return ret;
}

static void print_found(const struct arl_k8s_gc_opts *o, const char *verb, const struct found *f)
{
	if (!o->out)
		return;
	fprintf(o->out, "%s%s %s %s/%s run=%s owner=%s pid %s (%s)\n", o->prefix ? o->prefix : "",
	        verb, f->kind, f->ns, f->name, f->run, f->host, f->pid, f->why);
}

/* --- the sweep ----------------------------------------------------------------------- */

static const struct {
	const char *kind, *plural;
} kinds[2] = {{"Task", "tasks"}, {"Sandbox", "sandboxes"}}; /* the order of deletion */

/* Lists both kinds in each namespace of @scope (NULL: the cluster scope) into new @lists. */
static int list_scope(struct arl_k8s *c, const char *const *scope, size_t nscope,
                      const char *selector_q, int cancel_fd, cJSON *lists[2], long *status,
                      struct arl_err *err)
{
	for (size_t k = 0; k < 2; k++) {
		cJSON_Delete(lists[k]);
		lists[k] = cJSON_CreateArray();
		for (size_t i = 0; i < nscope; i++)
			if (list_into(c, kinds[k].plural, scope[i], selector_q, cancel_fd, lists[k],
			              status, err) < 0)
				return -1;
	}
	return 0;
}

/* The label selector, URL-escaped: our objects, of @host (NULL: of any host). */
static char *selector_for(const char *host)
{
	char *sel = arl_xasprintf("%s=%s,%s,%s,%s%s%s", ARL_K8S_GC_MANAGED_LABEL, GC_MANAGED_VAL,
	                          ARL_K8S_GC_RUN_LABEL, ARL_K8S_GC_PID_LABEL, ARL_K8S_GC_HOST_LABEL,
	                          host ? "=" : "", host ? host : "");
	char *q = curl_easy_escape(NULL, sel, 0), *ret = arl_xstrdup(q);

	curl_free(q);
	free(sel);
	return ret;
}

int arl_k8s_gc_sweep(struct arl_k8s *c, const struct arl_k8s_gc_opts *o,
                     struct arl_k8s_gc_result *res, struct arl_err *err)
{
	struct arl_k8s_owner me;
	const char *const *scope = o->namespaces;
	size_t nscope = o->nnamespaces;
	const char *cluster[1] = {NULL};
	char host[64], *selector;
	cJSON *lists[2] = {NULL, NULL};
	long status = 0;
	/* The cluster-scope listing's own: a 403 there is an answer, not the caller's error. */
	struct arl_err first = ARL_ERR_INIT;
	struct found *found = NULL;
	size_t nfound = 0, cap = 0;
	int ret = -1;

	memset(res, 0, sizeof(*res));
	arl_k8s_gc_self(&me);
	arl_k8s_label_value(o->host ? o->host : me.host, host);
	selector = selector_for(o->others ? NULL : host);
	if (!nscope) {
		scope = cluster;
		nscope = 1;
	}
	if (list_scope(c, scope, nscope, selector, o->cancel_fd, lists, &status, &first) < 0) {
		/* Forbidden at the cluster scope (a namespaced Role): look where we may. */
		if (status != 403 || o->nnamespaces || !o->fallback_ns) {
			arl_error(err, first.code, "%s", first.msg);
			goto out;
		}
		res->fell_back = true;
		snprintf(res->fallback_why, sizeof(res->fallback_why), "%s", first.msg);
		if (list_scope(c, &o->fallback_ns, 1, selector, o->cancel_fd, lists, &status, err) <
		    0)
			goto out;
	}
	for (size_t k = 0; k < 2; k++) {
		const cJSON *it;

		cJSON_ArrayForEach(it, lists[k])
		{
			ARL_GROW(found, cap, nfound + 1);
			if (judge(it, kinds[k].kind, kinds[k].plural, &me, o, res, &found[nfound]))
				nfound++;
		}
	}
	ret = 0;
	for (size_t i = 0; i < nfound; i++) {
		const struct found *f = &found[i];
		struct arl_err e = ARL_ERR_INIT;

		res->orphans++;
		if (f->terminating) {
			res->terminating++;
			print_found(o, "terminating", f);
			continue;
		}
		print_found(o, o->remove ? "deleting" : "orphaned", f);
		if (!o->remove || delete_found(c, f, o->cancel_fd, &e) == 0)
			continue;
		res->failed++;
		if (o->out)
			fprintf(o->out, "%scannot delete %s %s/%s: %s\n",
			        o->prefix ? o->prefix : "", f->kind, f->ns, f->name, e.msg);
		arl_error(err, e.code, "%s", e.msg);
		ret = -1;
		if (e.code == ARL_E_CANCELLED)
			break;
	}
out:
	free(found);
	free(selector);
	cJSON_Delete(lists[0]);
	cJSON_Delete(lists[1]);
	return ret;
}
