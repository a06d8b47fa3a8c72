/*
 * `arl-batch pool create|get|list|wait|delete`: ARL WarmPools, as the SDK's WarmPoolManager
 * manages them, over the same kubeconfig handling and REST client as the kubernetes backend.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cmd/cli.h"
#include "err.h"
#include "k8s/k8s_client.h"
#include "k8s/kubeconfig.h"
#include "util.h"
#include "k8s/warmpool.h"
#include "banned.h"

#define POOL_WAIT_DEFAULT_MS 300000 /* the SDK's WarmPoolManager timeout */

static void usage(FILE *out)
{
	fputs(
	    "usage: arl-batch pool create NAME --image IMG --sidecar-image IMG [--replicas N]\n"
	    "                        [--testbed-path P] [--workspace-path P] [--wait]\n"
	    "                        [--command ARG]... [-- CMD ARGS...]\n"
	    "       arl-batch pool get NAME [--output table|json]\n"
	    "       arl-batch pool list [--output table|json]\n"
	    "       arl-batch pool wait NAME [--timeout DURATION]\n"
	    "       arl-batch pool delete NAME [--ignore-not-found]\n"
	    "\n"
	    "Manages ARL WarmPools (arl.infra.io/v1alpha1) the way the SDK's WarmPoolManager\n"
	    "does: `create` sends the same body as create_warmpool() (an executor container\n"
	    "running the command, default /bin/sh -c 'sleep infinity', a sidecar with ports\n"
	    "8080/9090, a shared 'workspace' emptyDir, and a 'testbed' one with --testbed-path).\n"
	    "A pool is ready when status.readyReplicas >= spec.replicas > 0.\n"
	    "\n"
	    "  -n, --namespace NS      namespace (default: the context's, else 'default')\n"
	    "      --kubeconfig PATH   kubeconfig (default $KUBECONFIG, ~/.kube/config, "
	    "in-cluster)\n"
	    "      --context NAME      kubeconfig context (default: the current one)\n"
	    "      --image IMG         create: the executor image\n"
	    "      --sidecar-image IMG create: the ARL sidecar image\n"
	    "      --replicas N        create: idle pods to keep warm (default 2)\n"
	    "      --testbed-path P    create: also mount a 'testbed' volume at P\n"
	    "      --workspace-path P  create: where 'workspace' is mounted (default /workspace)\n"
	    "      --command ARG       create: one word of the executor's command (repeatable);\n"
	    "                          words after '--' are appended too\n"
	    "      --wait              create: wait until the pool is ready (see --timeout)\n"
	    "      --timeout DURATION  wait, create --wait: give up after this (default 5m)\n"
	    "  -o, --output FORMAT     get, list: table (default) or json\n"
	    "      --ignore-not-found  delete: a missing pool is not an error\n"
	    "  -h, --help              show this help\n"
	    "\n"
	    "Exit status: 0 done, 1 not found or not ready in time, 2 usage error, 3 the API\n"
	    "could not be reached or refused the request.\n",
	    out);
}

enum {
	OPT_KUBECONFIG = 256,
	OPT_CONTEXT,
	OPT_IMAGE,
	OPT_SIDECAR,
	OPT_REPLICAS,
	OPT_TESTBED,
	OPT_WORKSPACE,
	OPT_COMMAND,
	OPT_WAIT,
	OPT_TIMEOUT,
	OPT_IGNORE_NOT_FOUND,
};

struct pool_opts {
	const char *kubeconfig, *context, *ns;
	const char *image, *sidecar, *testbed, *workspace;
	int replicas;
	const char **command;
	size_t ncommand;
	bool wait, ignore_missing, json;
	int64_t timeout_ms;
};

/* One table row; the image shown is the first container's (the executor's). */
static void print_pool_row(const cJSON *p, const char *default_ns)
{
	const char *name = arl_k8s_get_str(p, "metadata.name");
	const char *ns = arl_k8s_get_str(p, "metadata.namespace");
	const cJSON *containers = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(
	        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(p, "spec"),
	                                         "template"),
	        "spec"),
	    "containers");
	const char *image = arl_k8s_get_str(cJSON_GetArrayItem(containers, 0), "image");
	int64_t want = -1, ready = 0, alloc = 0;

	arl_k8s_get_int(p, "spec.replicas", 0, INT32_MAX, &want);
	arl_k8s_get_int(p, "status.readyReplicas", 0, INT32_MAX, &ready);
	arl_k8s_get_int(p, "status.allocatedReplicas", 0, INT32_MAX, &alloc);
	printf("%-24s %-16s %8lld %6lld %10lld  %-6s %s\n", name ? name : "?", ns ? ns : default_ns,
	       (long long)want, (long long)ready, (long long)alloc,
	       arl_warmpool_is_ready(p) ? "yes" : "no", image ? image : "");
}

static void print_header(void)
{
	printf("%-24s %-16s %8s %6s %10s  %-6s %s\n", "NAME", "NAMESPACE", "REPLICAS", "READY",
	       "ALLOCATED", "READY?", "IMAGE");
}

static void print_json(const cJSON *v)
{
	char *s = cJSON_Print(v);

	puts(s);
	cJSON_free(s);
}

/* `pool create`: the SDK's body, then optionally wait as wait_for_warmpool_ready() does. */
static int do_create(struct arl_k8s *c, const char *ns, const char *name, struct pool_opts *po,
                     struct arl_err *err)
{
	struct arl_warmpool_spec spec = {.name = name,
	                                 .namespace = ns,
	                                 .image = po->image,
	                                 .sidecar_image = po->sidecar,
	                                 .replicas = po->replicas,
	                                 .workspace_path = po->workspace,
	                                 .testbed_path = po->testbed};
	int ret;

	if (po->ncommand) {
		po->command = arl_xrealloc(po->command, (po->ncommand + 1) * sizeof(*po->command));
		po->command[po->ncommand] = NULL;
		spec.command = po->command;
	}
	if (arl_warmpool_create(c, &spec, NULL, err) < 0)
		return -1;
	printf("warmpool '%s' created in namespace '%s' (%d replicas)\n", name, ns, po->replicas);
	if (!po->wait)
		return 0;
	ret = arl_warmpool_wait_ready(c, ns, name, arl_now_ms() + po->timeout_ms, -1, err);
	if (ret == 0)
		printf("warmpool '%s' is ready\n", name);
	return ret;
}

/* Runs @verb on @name (may be NULL for list); returns the exit code. */
static int run_verb(const char *verb, const char *name, struct pool_opts *po)
{
	struct arl_kubeconfig_opts ko = ARL_KUBECONFIG_OPTS_INIT;
	struct arl_kubeconfig *kc = NULL;
	struct arl_kubeconfig_info info;
	struct arl_k8s *c = NULL;
	struct arl_err err = ARL_ERR_INIT;
	cJSON *obj = NULL;
	const cJSON *it;
	const char *ns;
	int code = ARL_EXIT_INCOMPLETE;

	ko.path = po->kubeconfig;
	ko.context = po->context;
	if (arl_kubeconfig_load(&kc, &ko, &err) < 0)
		goto out;
	arl_kubeconfig_describe(kc, &info);
	ns = po->ns ? po->ns : info.namespace;
	if (arl_k8s_new(&c, kc, NULL, &err) < 0)
		goto out;
	if (!strcmp(verb, "create")) {
		if (do_create(c, ns, name, po, &err) < 0)
			goto out;
	} else if (!strcmp(verb, "get")) {
		if (arl_warmpool_get(c, ns, name, -1, &obj, &err) < 0)
			goto out;
		if (!obj) {
			char *names = arl_warmpool_names(c, ns);

			fprintf(
			    stderr,
			    "arl-batch pool: warmpool '%s' not found in namespace '%s' (warmpools "
			    "there: %s)\n",
			    name, ns, names);
			free(names);
			code = ARL_EXIT_FAILED;
			goto out;
		}
		if (po->json) {
			print_json(obj);
		} else {
			print_header();
			print_pool_row(obj, ns);
		}
	} else if (!strcmp(verb, "list")) {
		if (arl_warmpool_list(c, ns, &obj, &err) < 0)
			goto out;
		if (po->json) {
			print_json(obj);
		} else {
			print_header();
			cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(obj, "items"))
			    print_pool_row(it, ns);
		}
	} else if (!strcmp(verb, "wait")) {
		if (arl_warmpool_get(c, ns, name, -1, &obj, &err) < 0)
			goto out;
		if (!obj) {
			fprintf(stderr,
			        "arl-batch pool: warmpool '%s' not found in namespace '%s'\n", name,
			        ns);
			code = ARL_EXIT_FAILED;
			goto out;
		}
		if (arl_warmpool_wait_ready(c, ns, name, arl_now_ms() + po->timeout_ms, -1, &err) <
		    0) {
			/* Not ready in time is an answer, not a failure to ask. */
			code = strstr(err.msg, "not ready after") ? ARL_EXIT_FAILED
			                                          : ARL_EXIT_INCOMPLETE;
			goto out;
		}
		printf("warmpool '%s' is ready\n", name);
	} else if (!strcmp(verb, "delete")) {
		if (arl_warmpool_get(c, ns, name, -1, &obj, &err) < 0)
			goto out;
		if (!obj && !po->ignore_missing) {
			fprintf(stderr,
			        "arl-batch pool: warmpool '%s' not found in namespace '%s'\n", name,
			        ns);
			code = ARL_EXIT_FAILED;
			goto out;
		}
		if (obj && arl_warmpool_delete(c, ns, name, true, &err) < 0)
			goto out;
		if (obj)
			printf("warmpool '%s' deleted from namespace '%s'\n", name, ns);
	}
	code = ARL_EXIT_OK;
out:
	if (err.code != ARL_E_OK)
		fprintf(stderr, "arl-batch pool %s: %s\n", verb, err.msg);
	cJSON_Delete(obj);
	if (c)
		arl_k8s_free(c);
	else
		arl_kubeconfig_free(kc);
	return code;
}

/*
 * Options may come before or after NAME (getopt permutes); everything after NAME that is not
 * an option, or after "--", is the executor's command for `create`.
 */
int cmd_pool(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"namespace", required_argument, NULL, 'n'},
	    {"kubeconfig", required_argument, NULL, OPT_KUBECONFIG},
	    {"context", required_argument, NULL, OPT_CONTEXT},
	    {"image", required_argument, NULL, OPT_IMAGE},
	    {"sidecar-image", required_argument, NULL, OPT_SIDECAR},
	    {"replicas", required_argument, NULL, OPT_REPLICAS},
	    {"testbed-path", required_argument, NULL, OPT_TESTBED},
	    {"workspace-path", required_argument, NULL, OPT_WORKSPACE},
	    {"command", required_argument, NULL, OPT_COMMAND},
	    {"wait", no_argument, NULL, OPT_WAIT},
	    {"timeout", required_argument, NULL, OPT_TIMEOUT},
	    {"output", required_argument, NULL, 'o'},
	    {"ignore-not-found", no_argument, NULL, OPT_IGNORE_NOT_FOUND},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static const char *const verbs[] = {"create", "get", "list", "wait", "delete"};
	struct pool_opts po = {.replicas = 2, .timeout_ms = POOL_WAIT_DEFAULT_MS};
	const char *verb, *name = NULL;
	int c, code = ARL_EXIT_USAGE;
	bool known = false;
	int64_t v;

	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? ARL_EXIT_USAGE : 0;
	}
	verb = argv[1];
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		known = known || !strcmp(verb, verbs[i]);
	if (!known) {
		fprintf(stderr, "arl-batch pool: unknown subcommand '%s'\n", verb);
		usage(stderr);
		return ARL_EXIT_USAGE;
	}
	optind = 1;
	while ((c = getopt_long(argc - 1, argv + 1, "n:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			po.ns = optarg;
			break;
		case OPT_KUBECONFIG:
			po.kubeconfig = optarg;
			break;
		case OPT_CONTEXT:
			po.context = optarg;
			break;
		case OPT_IMAGE:
			po.image = optarg;
			break;
		case OPT_SIDECAR:
			po.sidecar = optarg;
			break;
		case OPT_REPLICAS:
			if (arl_parse_i64(optarg, 0, INT32_MAX, &v) < 0)
				goto bad_value;
			po.replicas = (int)v;
			break;
		case OPT_TESTBED:
			po.testbed = optarg;
			break;
		case OPT_WORKSPACE:
			po.workspace = optarg;
			break;
		case OPT_COMMAND:
			po.command =
			    arl_xrealloc(po.command, (po.ncommand + 2) * sizeof(*po.command));
			po.command[po.ncommand++] = optarg;
			break;
		case OPT_WAIT:
			po.wait = true;
			break;
		case OPT_TIMEOUT:
			if (arl_parse_duration(optarg, &po.timeout_ms) < 0)
				goto bad_value;
			break;
		case 'o':
			if (strcmp(optarg, "json") && strcmp(optarg, "table"))
				goto bad_value;
			po.json = !strcmp(optarg, "json");
			break;
		case OPT_IGNORE_NOT_FOUND:
			po.ignore_missing = true;
			break;
		case 'h':
			usage(stdout);
			code = 0;
			goto out;
		default:
			usage(stderr);
			goto out;
		}
	}
	/* argv+1 was parsed: optind counts from the verb. */
	if (strcmp(verb, "list")) {
		if (optind >= argc - 1) {
			fprintf(stderr, "arl-batch pool %s: a pool NAME is required\n", verb);
			goto out;
		}
		name = argv[1 + optind++];
		if (!arl_is_dns_label(name)) {
			fprintf(
			    stderr,
			    "arl-batch pool %s: '%s' is not a valid WarmPool name (a DNS label: "
			    "lowercase letters, digits and '-', at most 63)\n",
			    verb, name);
			goto out;
		}
	}
	if (!strcmp(verb, "create")) {
		for (; optind < argc - 1; optind++) {
			po.command =
			    arl_xrealloc(po.command, (po.ncommand + 2) * sizeof(*po.command));
			po.command[po.ncommand++] = argv[1 + optind];
		}
		if (!po.image || !po.sidecar) {
			fprintf(stderr, "arl-batch pool create: --image and --sidecar-image are "
			                "required\n");
			goto out;
		}
	}
	if (optind < argc - 1) {
		fprintf(stderr, "arl-batch pool %s: unexpected argument '%s'\n", verb,
		        argv[1 + optind]);
		goto out;
	}
	code = run_verb(verb, name, &po);
out:
	free(po.command);
	return code;
bad_value:
	fprintf(stderr, "arl-batch pool %s: invalid value '%s'\n", verb, optarg);
	free(po.command);
	return ARL_EXIT_USAGE;
}
