/* `arl-batch gc` on the kubernetes backend: the sweep of k8s_gc.c on the cluster asked for. */
#include <stdio.h>

#include "backend/backend.h"
#include "k8s/backend_k8s.h"
#include "k8s/k8s_client.h"
#include "k8s/k8s_gc.h"
#include "k8s/kubeconfig.h"
#include "log.h"
#include "banned.h"

#define GC_K8S_TRIES 4 /* tries of a request that failed for want of a connection, a 5xx... */

const struct arl_backend_option arl_k8s_gc_options[] = {
    {.name = "kubeconfig",
     .argh = "PATH",
     .help = "kubernetes: the kubeconfig (default $KUBECONFIG,\n"
             "~/.kube/config, in-cluster)"},
    {.name = "context",
     .argh = "NAME",
     .help = "kubernetes: the kubeconfig context (default: the\n"
             "current one)"},
    {.name = "namespace",
     .short_name = 'n',
     .argh = "NS",
     .help = "kubernetes: look in NS only (default: every namespace,\n"
             "or the context's when listing across namespaces is\n"
             "forbidden)"},
    {.name = "host",
     .argh = "NAME",
     .help = "kubernetes: host NAME is gone for good: all the objects\n"
             "it owns are orphans, whatever their pids (naming this\n"
             "host is the default: its runners are checked)"},
    {.name = NULL},
};

/* The value of gc option @name in @g (the last given), or NULL. */
static const char *setting(const struct arl_backend_gc_opts *g, const char *name)
{
	const struct arl_backend_opts o = {.settings = g->settings, .nsettings = g->nsettings};

	return arl_backend_setting(&o, name);
}

int arl_k8s_backend_gc(const struct arl_backend_gc_opts *g)
{
	struct arl_kubeconfig_opts ko = ARL_KUBECONFIG_OPTS_INIT;
	struct arl_k8s_opts co = ARL_K8S_OPTS_INIT;
	struct arl_k8s_gc_opts go = ARL_K8S_GC_OPTS_INIT;
	struct arl_k8s_gc_result res;
	struct arl_kubeconfig *kc = NULL;
	struct arl_kubeconfig_info info;
	struct arl_k8s *c = NULL;
	struct arl_err err = ARL_ERR_INIT;
	const char *ns = setting(g, "namespace"), *host = setting(g, "host"), *scope_ns;
	char where[512];
	int code = ARL_EXIT_INCOMPLETE, live, rc;

	ko.path = setting(g, "kubeconfig");
	ko.context = setting(g, "context");
	if (arl_kubeconfig_load(&kc, &ko, &err) < 0)
		goto out;
	arl_kubeconfig_describe(kc, &info);
	/* A command at a terminal: a cluster that is down fails in seconds, not a minute. */
	co.max_tries = GC_K8S_TRIES;
	rc = arl_k8s_new(&c, kc, &co, &err);
	kc = NULL; /* the client's, even on failure */
	if (rc < 0)
		goto out;
	go.namespaces = ns ? &ns : NULL;
	go.nnamespaces = ns ? 1 : 0;
	go.fallback_ns = info.namespace;
	go.host = host;
	go.remove = g->yes;
	go.others = !host; /* with --host, only that host's objects are looked at */
	go.out = stdout;
	if (arl_k8s_gc_sweep(c, &go, &res, &err) < 0) {
		arl_err_prefix(&err, "context '%s', server %s", info.context, info.server);
		goto out;
	}
	if (res.fell_back)
		arl_log_cmd_error("gc",
		                  "cannot list across namespaces (%s): looked in namespace "
		                  "'%s' only; --namespace NS looks in another",
		                  res.fallback_why, info.namespace);
	scope_ns = ns ? ns : res.fell_back ? info.namespace : NULL;
	if (scope_ns)
		snprintf(where, sizeof(where), "context '%s', namespace '%s'", info.context,
		         scope_ns);
	else
		snprintf(where, sizeof(where), "context '%s', all namespaces", info.context);
	live = res.orphans - res.terminating;
	if (res.orphans == 0)
		printf("no orphaned Sandboxes or Tasks in %s\n", where);
	else if (!g->yes && live > 0)
		printf("%d orphaned object%s in %s; run again with --yes to delete\n", res.orphans,
		       res.orphans == 1 ? "" : "s", where);
	else if (live > 0)
		printf("%d orphaned object%s deleted in %s\n", live, live == 1 ? "" : "s", where);
	if (res.terminating)
		printf("%d of them already being deleted (the operator removes its finalizers)\n",
		       res.terminating);
	if (res.others)
		printf("%d object%s of other hosts (%s) not checked: their runners cannot be seen "
		       "from here; --host NAME gives up a host that is gone\n",
		       res.others, res.others == 1 ? "" : "s", res.other_hosts);
	code = ARL_EXIT_OK;
out:
	if (err.code != ARL_E_OK)
		arl_log_cmd_error("gc", "kubernetes: %s", err.msg);
	arl_k8s_free(c);
	arl_kubeconfig_free(kc);
	return code;
}
