#include "k8s/warmpool.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "util.h"
#include "banned.h"

#define WARMPOOL_POLL_MS 1000

/* A pool's resources: as requests and limits both, so the pod is Guaranteed as local is. */
static void add_resources(cJSON *container, const struct arl_warmpool_spec *s)
{
	const char *const kinds[] = {"requests", "limits"};
	cJSON *res;

	if (!s->memory && !s->cpus)
		return;
	res = cJSON_AddObjectToObject(container, "resources");
	for (size_t i = 0; i < 2; i++) {
		cJSON *m = cJSON_AddObjectToObject(res, kinds[i]);

		if (s->memory)
			cJSON_AddStringToObject(m, "memory", s->memory);
		if (s->cpus)
			cJSON_AddStringToObject(m, "cpu", s->cpus);
	}
}

/* The volumeMounts both containers share: workspace, and testbed when asked for. */
static void add_mounts(cJSON *container, const struct arl_warmpool_spec *s)
{
	cJSON *mounts = cJSON_AddArrayToObject(container, "volumeMounts"), *m;

	m = cJSON_CreateObject();
	cJSON_AddItemToArray(mounts, m);
	cJSON_AddStringToObject(m, "name", "workspace");
	cJSON_AddStringToObject(m, "mountPath",
	                        s->workspace_path ? s->workspace_path : "/workspace");
	if (s->testbed_path) {
		m = cJSON_CreateObject();
		cJSON_AddItemToArray(mounts, m);
		cJSON_AddStringToObject(m, "name", "testbed");
		cJSON_AddStringToObject(m, "mountPath", s->testbed_path);
	}
}

static void add_port(cJSON *ports, const char *name, int port)
{
	cJSON *p = cJSON_CreateObject();

	cJSON_AddItemToArray(ports, p);
	cJSON_AddStringToObject(p, "name", name);
	cJSON_AddNumberToObject(p, "containerPort", port);
	cJSON_AddStringToObject(p, "protocol", "TCP");
}

/*
 * Field for field what WarmPoolManager.create_warmpool() sends, so a pool made here and one
 * made by the SDK are interchangeable. The sidecar is named "sidecar" so that the operator
 * does not inject a second one; imagePullPolicy Always is the SDK's choice.
 */
cJSON *arl_warmpool_body(const struct arl_warmpool_spec *s)
{
	static const char *const default_cmd[] = {"/bin/sh", "-c", "sleep infinity", NULL};
	const char *const *cmd = s->command && s->command[0] ? s->command : default_cmd;
	cJSON *root = cJSON_CreateObject(), *meta, *spec, *tmpl, *pspec, *containers, *c, *arr,
	      *vols, *v;

	cJSON_AddStringToObject(root, "apiVersion", "arl.infra.io/v1alpha1");
	cJSON_AddStringToObject(root, "kind", "WarmPool");
	meta = cJSON_AddObjectToObject(root, "metadata");
	cJSON_AddStringToObject(meta, "name", s->name);
	cJSON_AddStringToObject(meta, "namespace", s->namespace);
	spec = cJSON_AddObjectToObject(root, "spec");
	cJSON_AddNumberToObject(spec, "replicas", s->replicas);
	tmpl = cJSON_AddObjectToObject(spec, "template");
	pspec = cJSON_AddObjectToObject(tmpl, "spec");
	containers = cJSON_AddArrayToObject(pspec, "containers");

	c = cJSON_CreateObject();
	cJSON_AddItemToArray(containers, c);
	cJSON_AddStringToObject(c, "name", "executor");
	cJSON_AddStringToObject(c, "image", s->image);
	arr = cJSON_AddArrayToObject(c, "command");
	for (size_t i = 0; cmd[i]; i++)
		cJSON_AddItemToArray(arr, cJSON_CreateString(cmd[i]));
	add_mounts(c, s);
	add_resources(c, s);

	if (s->sidecar_image) {
		c = cJSON_CreateObject();
		cJSON_AddItemToArray(containers, c);
		cJSON_AddStringToObject(c, "name", "sidecar");
		cJSON_AddStringToObject(c, "image", s->sidecar_image);
		cJSON_AddStringToObject(c, "imagePullPolicy", "Always");
		arr = cJSON_AddArrayToObject(c, "ports");
		add_port(arr, "http", 8080);
		add_port(arr, "grpc", 9090);
		add_mounts(c, s);
	}

	vols = cJSON_AddArrayToObject(pspec, "volumes");
	v = cJSON_CreateObject();
	cJSON_AddItemToArray(vols, v);
	cJSON_AddStringToObject(v, "name", "workspace");
	cJSON_AddObjectToObject(v, "emptyDir");
	if (s->testbed_path) {
		v = cJSON_CreateObject();
		cJSON_AddItemToArray(vols, v);
		cJSON_AddStringToObject(v, "name", "testbed");
		cJSON_AddObjectToObject(v, "emptyDir");
	}
	return root;
}

bool arl_warmpool_is_ready(const cJSON *pool)
{
	int64_t want = 0, ready = 0;

	if (arl_k8s_get_int(pool, "spec.replicas", 0, INT32_MAX, &want) < 0)
		return false;
	if (arl_k8s_get_int(pool, "status.readyReplicas", 0, INT32_MAX, &ready) < 0)
		ready = 0;
	return want > 0 && ready >= want;
}

/* Every WarmPool request here is safe to repeat except a create, which sets its own. */
static struct arl_k8s_req pool_req(const char *method, const char *verb, const char *ns,
                                   const char *name, char *path)
{
	struct arl_k8s_req r = ARL_K8S_REQ_INIT;

	r.method = method;
	r.verb = verb;
	r.resource = "warmpools";
	r.namespace = ns;
	r.name = name;
	r.path = path;
	r.retry = ARL_K8S_RETRY_SAFE;
	return r;
}

/* A missing pool is an answer here (the callers list or create), not an error. */
int arl_warmpool_get(struct arl_k8s *c, const char *ns, const char *name, int cancel_fd,
                     cJSON **out, struct arl_err *err)
{
	char *path = arl_k8s_path(ARL_K8S_ARL_API, ns, "warmpools", name);
	struct arl_k8s_req r = pool_req("GET", "get", ns, name, path);
	struct arl_k8s_resp resp = ARL_K8S_RESP_INIT;
	struct arl_err e = ARL_ERR_INIT;
	int ret = -1;

	r.cancel_fd = cancel_fd;
	*out = NULL;
	if (arl_k8s_request(c, &r, &resp, &e) < 0) {
		if (resp.status == 404)
			ret = 0;
		else
			arl_error(err, e.code, "%s", e.msg);
		goto out;
	}
	if (!cJSON_IsObject(resp.body)) {
		arl_error(err, ARL_E_PROTO, "get warmpools '%s': the answer is not an object",
		          name);
		goto out;
	}
	*out = resp.body;
	resp.body = NULL;
	ret = 0;
out:
	arl_k8s_resp_release(&resp);
	free(path);
	return ret;
}

/*
 * Strict field validation: a typo in the body is a 400 naming the field instead of a pool
 * silently missing it. A retried create that meets 409 reads the pool back.
 */
int arl_warmpool_create(struct arl_k8s *c, const struct arl_warmpool_spec *s, cJSON **out,
                        struct arl_err *err)
{
	char *coll = arl_k8s_path(ARL_K8S_ARL_API, s->namespace, "warmpools", NULL);
	char *path = arl_xasprintf("%s?fieldValidation=Strict", coll);
	struct arl_k8s_req r = pool_req("POST", "create", s->namespace, s->name, path);
	struct arl_k8s_resp resp = ARL_K8S_RESP_INIT;
	cJSON *body = arl_warmpool_body(s);
	int ret;

	r.body = body;
	r.retry = ARL_K8S_RETRY_CREATE;
	ret = arl_k8s_request(c, &r, &resp, err);
	if (ret == 0 && out) {
		if (resp.existed)
			ret = arl_warmpool_get(c, s->namespace, s->name, -1, out, err);
		else
			*out = resp.body, resp.body = NULL;
	}
	arl_k8s_resp_release(&resp);
	cJSON_Delete(body);
	free(path);
	free(coll);
	return ret;
}

int arl_warmpool_list(struct arl_k8s *c, const char *ns, cJSON **out, struct arl_err *err)
{
	char *path = arl_k8s_path(ARL_K8S_ARL_API, ns, "warmpools", NULL);
	struct arl_k8s_req r = pool_req("GET", "list", ns, NULL, path);
	struct arl_k8s_resp resp = ARL_K8S_RESP_INIT;
	int ret = -1;

	if (arl_k8s_request(c, &r, &resp, err) < 0)
		goto out;
	if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(resp.body, "items"))) {
		arl_error(err, ARL_E_PROTO,
		          "list warmpools in namespace '%s': the answer is not a list", ns);
		goto out;
	}
	*out = resp.body;
	resp.body = NULL;
	ret = 0;
out:
	arl_k8s_resp_release(&resp);
	free(path);
	return ret;
}

/* Never fails: it only decorates another error, so its own trouble goes into the text. */
char *arl_warmpool_names(struct arl_k8s *c, const char *ns)
{
	struct arl_err err = ARL_ERR_INIT;
	struct arl_buf b = ARL_BUF_INIT;
	cJSON *list = NULL;
	const cJSON *it;

	if (arl_warmpool_list(c, ns, &list, &err) < 0)
		return arl_xasprintf("unknown: %s", err.msg);
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(list, "items"))
	{
		const char *name = arl_k8s_get_str(it, "metadata.name");

		if (name)
			arl_buf_addf(&b, "%s'%s'", b.len ? ", " : "", name);
	}
	cJSON_Delete(list);
	if (!b.len)
		arl_buf_addstr(&b, "none");
	return arl_buf_detach(&b, NULL);
}

/* A 404 after a retried DELETE means the first try got through. */
int arl_warmpool_delete(struct arl_k8s *c, const char *ns, const char *name, bool missing_ok,
                        struct arl_err *err)
{
	char *path = arl_k8s_path(ARL_K8S_ARL_API, ns, "warmpools", name);
	struct arl_k8s_req r = pool_req("DELETE", "delete", ns, name, path);
	struct arl_k8s_resp resp = ARL_K8S_RESP_INIT;
	struct arl_err e = ARL_ERR_INIT;
	int ret = 0;

	if (arl_k8s_request(c, &r, &resp, &e) < 0 &&
	    !(resp.status == 404 && (missing_ok || resp.tries > 1)))
		ret = arl_error(err, e.code, "%s", e.msg);
	arl_k8s_resp_release(&resp);
	free(path);
	return ret;
}

/*
 * Polling, not a watch: this runs once per pool at the start of a run (or for `pool wait`),
 * and a one-second GET is simpler than a stream for a handful of requests.
 */
int arl_warmpool_wait_ready(struct arl_k8s *c, const char *ns, const char *name,
                            int64_t deadline_ms, int cancel_fd, struct arl_err *err)
{
	int64_t want = -1, ready = -1, started = arl_now_ms();

	for (;;) {
		struct pollfd p = {.fd = cancel_fd, .events = POLLIN};
		cJSON *pool = NULL;
		int64_t left;

		if (arl_warmpool_get(c, ns, name, cancel_fd, &pool, err) < 0)
			return -1;
		if (!pool)
			return arl_error(
			    err, ARL_E_BACKEND,
			    "warmpool '%s' in namespace '%s' was deleted while waiting "
			    "for it",
			    name, ns);
		if (arl_warmpool_is_ready(pool)) {
			cJSON_Delete(pool);
			return 0;
		}
		if (arl_k8s_get_int(pool, "spec.replicas", 0, INT32_MAX, &want) < 0)
			want = -1;
		if (arl_k8s_get_int(pool, "status.readyReplicas", 0, INT32_MAX, &ready) < 0)
			ready = 0;
		cJSON_Delete(pool);
		left = deadline_ms - arl_now_ms();
		if (left <= 0)
			return arl_error(
			    err, ARL_E_BACKEND,
			    "warmpool '%s' in namespace '%s' not ready after %llds: %lld "
			    "of %lld replicas ready%s",
			    name, ns, (long long)((arl_now_ms() - started) / 1000),
			    (long long)ready, (long long)want,
			    want == 0 ? " (a pool of 0 replicas never becomes ready)" : "");
		if (poll(cancel_fd >= 0 ? &p : NULL, cancel_fd >= 0 ? 1 : 0,
		         (int)(left < WARMPOOL_POLL_MS ? left : WARMPOOL_POLL_MS)) > 0)
			return arl_error(err, ARL_E_BACKEND,
			                 "cancelled while waiting for warmpool '%s'", name);
	}
}
