/*
 * `arl-batch gc`: find (and delete) sandboxes whose owning runner is dead, in the local
 * state directory and, when asked, on a Kubernetes cluster.
 *
 * The cluster is only contacted when the command line says so (--backend kubernetes|all,
 * or any kubernetes option): a bare `gc` must not reach for whatever $KUBECONFIG happens to
 * point at, and must not hang on a cluster that is down.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "local/backend_local.h"
#include "cmd/cli.h"
#include "err.h"
#include "k8s/k8s_client.h"
#include "k8s/k8s_gc.h"
#include "k8s/kubeconfig.h"
#include "util.h"
#include "banned.h"

#define GC_K8S_TRIES 4 /* tries of a request that failed for want of a connection, a 5xx... */

enum { OPT_KUBECONFIG = 256, OPT_CONTEXT, OPT_HOST };

enum { GC_LOCAL = 1, GC_K8S = 2 };

struct gc_opts {
	bool yes;
	const char *db, *state;
	const char *kubeconfig, *context, *ns, *host;
};

static void usage(FILE *out)
{
	fputs(
	    "usage: arl-batch gc [--yes] [--backend local|kubernetes|all] [--db PATH]\n"
	    "                    [--state-dir DIR] [--kubeconfig PATH] [--context NAME]\n"
	    "                    [--namespace NS] [--host NAME]\n"
	    "\n"
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
	    "touched.\n"
	    "\n"
	    "  -y, --yes          delete what is found (default: only list it)\n"
	    "  -b, --backend B    local, kubernetes or all (default: local, and kubernetes too\n"
	    "                     when a kubernetes option below is given)\n"
	    "      --db PATH      local: the database whose sandboxes to check (they live in\n"
	    "                     PATH.sandboxes unless --state-dir or $XDG_STATE_HOME says "
	    "otherwise)\n"
	    "      --state-dir D  local: the sandboxes' directory, as given to `run --state-dir`\n"
	    "      --kubeconfig P kubernetes: the kubeconfig (default $KUBECONFIG,\n"
	    "                     ~/.kube/config, in-cluster)\n"
	    "      --context NAME kubernetes: the kubeconfig context (default: the current one)\n"
	    "  -n, --namespace NS kubernetes: look in NS only (default: every namespace, or the\n"
	    "                     context's when listing across namespaces is forbidden)\n"
	    "      --host NAME    kubernetes: host NAME is gone for good: all the objects it\n"
	    "                     owns are orphans, whatever their pids (naming this host is the\n"
	    "                     default: its runners are checked)\n"
	    "\n"
	    "Exit status: 0 done (whether or not anything was found), 2 usage error, 3 the\n"
	    "state directory could not be read, the cluster could not be reached, or a\n"
	    "deletion failed.\n",
	    out);
}

static int gc_local(const struct gc_opts *g)
{
	struct arl_err err = ARL_ERR_INIT;
	char *dir = arl_cli_state_dir(g->state, arl_cli_db_path(g->db));
	int foreign = 0, n = arl_local_gc(dir, g->yes, stdout, &foreign, &err);

	if (n < 0)
		fprintf(stderr, "arl-batch: %s\n", err.msg);
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
		fprintf(stderr,
		        "arl-batch gc: cannot list across namespaces (%s): looked in namespace "
		        "'%s' only; --namespace NS looks in another\n",
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
		fprintf(stderr, "arl-batch gc: kubernetes: %s\n", err.msg);
	arl_k8s_free(c);
	arl_kubeconfig_free(kc);
	return code;
}

int cmd_gc(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"yes", no_argument, NULL, 'y'},
	    {"db", required_argument, NULL, 'd'},
	    {"state-dir", required_argument, NULL, 's'},
	    {"backend", required_argument, NULL, 'b'},
	    {"kubeconfig", required_argument, NULL, OPT_KUBECONFIG},
	    {"context", required_argument, NULL, OPT_CONTEXT},
	    {"namespace", required_argument, NULL, 'n'},
	    {"host", required_argument, NULL, OPT_HOST},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct gc_opts g = {0};
	const char *backend = NULL;
	bool k8s_opts;
	int c, which, code = 0, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "yb:n:h", opts, NULL)) != -1) {
		switch (c) {
		case 'y':
			g.yes = true;
			break;
		case 'd':
			g.db = optarg;
			break;
		case 's':
			g.state = optarg;
			break;
		case 'b':
			backend = optarg;
			break;
		case OPT_KUBECONFIG:
			g.kubeconfig = optarg;
			break;
		case OPT_CONTEXT:
			g.context = optarg;
			break;
		case 'n':
			g.ns = optarg;
			break;
		case OPT_HOST:
			g.host = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return ARL_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "arl-batch gc: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return ARL_EXIT_USAGE;
	}
	k8s_opts = g.kubeconfig || g.context || g.ns || g.host;
	if (!backend)
		which = GC_LOCAL | (k8s_opts ? GC_K8S : 0);
	else if (!strcmp(backend, "local"))
		which = GC_LOCAL;
	else if (!strcmp(backend, "kubernetes"))
		which = GC_K8S;
	else if (!strcmp(backend, "all"))
		which = GC_LOCAL | GC_K8S;
	else {
		fprintf(stderr,
		        "arl-batch gc: unknown backend '%s' (expected local, kubernetes or all)\n",
		        backend);
		return ARL_EXIT_USAGE;
	}
	if (!(which & GC_K8S) && k8s_opts) {
		fprintf(stderr, "arl-batch gc: --kubeconfig, --context, --namespace and --host are "
		                "for the kubernetes backend, not with --backend local\n");
		return ARL_EXIT_USAGE;
	}
	if (which & GC_LOCAL && (rc = gc_local(&g)) != 0)
		code = rc;
	if (which & GC_K8S && (rc = gc_kubernetes(&g)) != 0)
		code = rc;
	return code;
}
