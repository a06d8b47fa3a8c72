/*
 * `arl-batch gc`: find (and delete) sandboxes whose owning runner is dead, in the local
 * state directory and, when asked, on a Kubernetes cluster.
 *
 * The cluster is only contacted when the command line says so (--backend kubernetes|all,
 * or any kubernetes option): a bare `gc` must not reach for whatever $KUBECONFIG happens to
 * point at, and must not hang on a cluster that is down.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "local/backend_local.h"
#include "cmd/cli.h"
#include "cmd/options.h"
#include "err.h"
#include "log.h"
#include "k8s/k8s_client.h"
#include "k8s/k8s_gc.h"
#include "k8s/kubeconfig.h"
#include "util.h"
#include "banned.h"

#define GC_K8S_TRIES 4 /* tries of a request that failed for want of a connection, a 5xx... */

enum { GC_LOCAL = 1, GC_K8S = 2 };

struct gc_opts {
	bool yes;
	const char *db, *state;
	const char *kubeconfig, *context, *ns, *host;
};

static const char *const synopsis[] = {"gc [--yes] [--backend local|kubernetes|all] [--db PATH]",
                                       "   [--state-dir DIR] [--kubeconfig PATH] [--context NAME]",
                                       "   [--namespace NS] [--host NAME]", NULL};

static const char about[] =
    "Lists the sandboxes whose runner is no longer running, e.g. after `kill -9`; with\n"
    "--yes deletes them. `run` does the same sweep when it starts (local: its state\n"
    "directory; kubernetes: this host's objects in the namespaces of its pools).\n"
    "\n"
    "local: the workspace directories in the state directory whose runner is gone: its\n"
    "pid is not running or is another process now, or the host rebooted since (as the\n"
    "directory's name records them). Those of a runner in another PID namespace (another\n"
    "container) are counted, not touched; keepAlive sandboxes are never touched.\n"
    "kubernetes: the Sandboxes and Tasks labelled with an owner on this host\n"
    "(arl.infra.io/owner-host) whose runner is gone: its pid is not running or is\n"
    "another process now, or the host rebooted since. Tasks are deleted first. Objects\n"
    "of other hosts are counted, not touched: their runners cannot be seen from here\n"
    "(see --host). Objects without the owner labels and keepAlive Sandboxes are never\n"
    "touched.\n";

static const char epilog[] =
    "Exit status: 0 done (whether or not anything was found), 2 usage error, 3 the\n"
    "state directory could not be read, the cluster could not be reached, or a\n"
    "deletion failed.\n";

static const struct arl_opt_choice backends[] = {
    {"local", GC_LOCAL}, {"kubernetes", GC_K8S}, {"all", GC_LOCAL | GC_K8S}, {NULL, 0}};

static int gc_local(const struct gc_opts *g)
{
	struct arl_err err = ARL_ERR_INIT;
	char *dir = arl_cli_state_dir(g->state, arl_cli_db_path(g->db));
	int foreign = 0, n = arl_local_gc(dir, g->yes, stdout, &foreign, &err);

	if (n < 0)
		arl_log_err(NULL, &err);
	else if (n == 0)
		printf("no orphaned sandboxes in %s\n", dir);
	else if (!g->yes)
		printf("%d orphaned sandbox%s; run 'arl-batch gc --yes' to delete\n", n,
		       n == 1 ? "" : "es");
	if (foreign > 0)
		printf("%d sandbox%s of runners in another PID namespace not checked: their pids "
		       "mean nothing here; run gc where they run\n",
		       foreign, foreign == 1 ? "" : "es");
	free(dir);
	return n < 0 ? ARL_EXIT_INCOMPLETE : 0;
}

static int gc_kubernetes(const struct gc_opts *g)
{
	struct arl_kubeconfig_opts ko = ARL_KUBECONFIG_OPTS_INIT;
	struct arl_k8s_opts co = ARL_K8S_OPTS_INIT;
	struct arl_k8s_gc_opts go = ARL_K8S_GC_OPTS_INIT;
	struct arl_k8s_gc_result res;
	struct arl_kubeconfig *kc = NULL;
	struct arl_kubeconfig_info info;
	struct arl_k8s *c = NULL;
	struct arl_err err = ARL_ERR_INIT;
	const char *scope_ns;
	char where[512];
	int code = ARL_EXIT_INCOMPLETE, live, rc;

	ko.path = g->kubeconfig;
	ko.context = g->context;
	if (arl_kubeconfig_load(&kc, &ko, &err) < 0)
		goto out;
	arl_kubeconfig_describe(kc, &info);
	/* A command at a terminal: a cluster that is down fails in seconds, not a minute. */
	co.max_tries = GC_K8S_TRIES;
	rc = arl_k8s_new(&c, kc, &co, &err);
	kc = NULL; /* the client's, even on failure */
	if (rc < 0)
		goto out;
	go.namespaces = g->ns ? &g->ns : NULL;
	go.nnamespaces = g->ns ? 1 : 0;
	go.fallback_ns = info.namespace;
	go.host = g->host;
	go.remove = g->yes;
	go.others = !g->host; /* with --host, only that host's objects are looked at */
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
	scope_ns = g->ns ? g->ns : res.fell_back ? info.namespace : NULL;
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

int cmd_gc(int argc, char **argv)
{
	struct gc_opts g = {0};
	bool k8s_opts;
	int which = 0, code = 0, rc, n;
	const struct arl_option opts[] = {
	    ARL_OPT_FLAG('y', "yes", &g.yes, "delete what is found (default: only list it)"),
	    ARL_OPT_CHOICE('b', "backend", &which, backends,
	                   "local, kubernetes or all (default: local, and kubernetes\n"
	                   "too when a kubernetes option below is given)"),
	    ARL_OPT_STRING(0, "db", &g.db, "PATH",
	                   "local: the database whose sandboxes to check (they live\n"
	                   "in PATH.sandboxes unless --state-dir or $XDG_STATE_HOME\n"
	                   "says otherwise)"),
	    ARL_OPT_STRING(0, "state-dir", &g.state, "D",
	                   "local: the sandboxes' directory, as given to\n"
	                   "`run --state-dir`"),
	    ARL_OPT_STRING(0, "kubeconfig", &g.kubeconfig, "P",
	                   "kubernetes: the kubeconfig (default $KUBECONFIG,\n"
	                   "~/.kube/config, in-cluster)"),
	    ARL_OPT_STRING(0, "context", &g.context, "NAME",
	                   "kubernetes: the kubeconfig context (default: the\n"
	                   "current one)"),
	    ARL_OPT_STRING('n', "namespace", &g.ns, "NS",
	                   "kubernetes: look in NS only (default: every namespace,\n"
	                   "or the context's when listing across namespaces is\n"
	                   "forbidden)"),
	    ARL_OPT_STRING(0, "host", &g.host, "NAME",
	                   "kubernetes: host NAME is gone for good: all the objects\n"
	                   "it owns are orphans, whatever their pids (naming this\n"
	                   "host is the default: its runners are checked)"),
	    ARL_OPT_END(),
	};
	const struct arl_command_usage u = {
	    .name = "gc", .synopsis = synopsis, .about = about, .options = opts, .epilog = epilog};

	if ((n = arl_options_parse(&u, argc, argv, 0, &code)) < 0)
		return code;
	if (n > 0)
		return arl_cli_unexpected(&u, argv[0]);
	k8s_opts = g.kubeconfig || g.context || g.ns || g.host;
	if (!which)
		which = GC_LOCAL | (k8s_opts ? GC_K8S : 0);
	if (!(which & GC_K8S) && k8s_opts)
		return arl_options_error(&u,
		                         "--kubeconfig, --context, --namespace and --host are "
		                         "for the kubernetes backend, not with --backend local");
	if (which & GC_LOCAL && (rc = gc_local(&g)) != 0)
		code = rc;
	if (which & GC_K8S && (rc = gc_kubernetes(&g)) != 0)
		code = rc;
	return code;
}
