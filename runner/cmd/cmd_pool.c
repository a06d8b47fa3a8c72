/*
 * `arl-batch pool create|get|list|wait|delete`: ARL WarmPools, as the SDK's WarmPoolManager
 * manages them, over the same kubeconfig handling and REST client as the kubernetes backend.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cmd/cli.h"
#include "cmd/options.h"
#include "err.h"
#include "log.h"
#include "k8s/k8s_client.h"
#include "k8s/kubeconfig.h"
#include "util.h"
#include "k8s/warmpool.h"
#include "banned.h"

#define POOL_WAIT_DEFAULT_MS 300000 /* the SDK's WarmPoolManager timeout */

static const char *const synopsis[] = {
    "pool create NAME --image IMG --sidecar-image IMG [--replicas N]",
    "       [--testbed-path P] [--workspace-path P] [--wait]",
    "       [--command ARG]... [-- CMD ARGS...]",
    "pool get NAME [--output table|json]",
    "pool list [--output table|json]",
    "pool wait NAME [--timeout DURATION]",
    "pool delete NAME [--ignore-not-found]",
    NULL};

static const char about[] =
    "Manages ARL WarmPools (arl.infra.io/v1alpha1) the way the SDK's WarmPoolManager\n"
    "does: `create` sends the same body as create_warmpool() (an executor container\n"
    "running the command, default /bin/sh -c 'sleep infinity', a sidecar with ports\n"
    "8080/9090, a shared 'workspace' emptyDir, and a 'testbed' one with --testbed-path).\n"
    "A pool is ready when status.readyReplicas >= spec.replicas > 0.\n";

static const char epilog[] =
    "Exit status: 0 done, 1 not found or not ready in time, 2 usage error, 3 the API\n"
    "could not be reached or refused the request.\n";

static const struct arl_opt_choice outputs[] = {{"table", 0}, {"json", 1}, {NULL, 0}};

struct pool_opts {
	const char *kubeconfig, *context, *ns;
	const char *image, *sidecar, *testbed, *workspace;
	int replicas;
	struct arl_opt_strings command;
	bool wait, ignore_missing;
	int json;
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

	if (po->command.n)
		spec.command = po->command.v;
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

			arl_log_cmd_error("pool",
			                  "warmpool '%s' not found in namespace '%s' (warmpools "
			                  "there: %s)",
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
			arl_log_cmd_error("pool", "warmpool '%s' not found in namespace '%s'", name,
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
			arl_log_cmd_error("pool", "warmpool '%s' not found in namespace '%s'", name,
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
	if (err.code != ARL_E_OK) {
		char who[64];

		snprintf(who, sizeof(who), "pool %s", verb);
		arl_log_err(who, &err);
	}
	cJSON_Delete(obj);
	if (c)
		arl_k8s_free(c);
	else
		arl_kubeconfig_free(kc);
	return code;
}

/*
 * Options may come before or after NAME; everything after NAME that is not an option, or
 * after "--", is the executor's command for `create`.
 */
int cmd_pool(int argc, char **argv)
{
	static const char *const verbs[] = {"create", "get", "list", "wait", "delete"};
	struct pool_opts po = {.replicas = 2, .timeout_ms = POOL_WAIT_DEFAULT_MS};
	const char *name = NULL, *what;
	char verb[32];
	int code = ARL_EXIT_USAGE, n, i = 0;
	bool known = false;
	const struct arl_option opts[] = {
	    ARL_OPT_STRING('n', "namespace", &po.ns, "NS",
	                   "namespace (default: the context's, else 'default')"),
	    ARL_OPT_STRING(0, "kubeconfig", &po.kubeconfig, "PATH",
	                   "kubeconfig (default $KUBECONFIG, ~/.kube/config, in-cluster)"),
	    ARL_OPT_STRING(0, "context", &po.context, "NAME",
	                   "kubeconfig context (default: the current one)"),
	    ARL_OPT_STRING(0, "image", &po.image, "IMG", "create: the executor image"),
	    ARL_OPT_STRING(0, "sidecar-image", &po.sidecar, "IMG", "create: the ARL sidecar image"),
	    ARL_OPT_INT(0, "replicas", &po.replicas, 0, INT32_MAX, "N",
	                "create: idle pods to keep warm (default 2)"),
	    ARL_OPT_STRING(0, "testbed-path", &po.testbed, "P",
	                   "create: also mount a 'testbed' volume at P"),
	    ARL_OPT_STRING(0, "workspace-path", &po.workspace, "P",
	                   "create: where 'workspace' is mounted (default /workspace)"),
	    ARL_OPT_STRINGS(0, "command", &po.command, "ARG",
	                    "create: one word of the executor's command (repeatable);\n"
	                    "words after '--' are appended too"),
	    ARL_OPT_FLAG(0, "wait", &po.wait,
	                 "create: wait until the pool is ready (see --timeout)"),
	    ARL_OPT_DURATION(0, "timeout", &po.timeout_ms, 0, INT64_MAX, "DURATION",
	                     "wait, create --wait: give up after this (default 5m)"),
	    ARL_OPT_CHOICE('o', "output", &po.json, outputs, "get, list: table (default) or json"),
	    ARL_OPT_FLAG(0, "ignore-not-found", &po.ignore_missing,
	                 "delete: a missing pool is not an error"),
	    ARL_OPT_END(),
	};
	struct arl_command_usage u = {.name = "pool",
	                              .synopsis = synopsis,
	                              .about = about,
	                              .options = opts,
	                              .epilog = epilog};

	/* `pool [--help]`, then the verb, whose name the messages carry. */
	if (argc < 2 || argv[1][0] == '-') {
		if (arl_options_parse(&u, argc, argv, ARL_OPTS_STOP_AT_OPERAND, &code) < 0)
			return code;
		free(po.command.v);
		return arl_options_error(&u, "give a subcommand first: create, get, list, wait or "
		                             "delete");
	}
	for (size_t k = 0; k < sizeof(verbs) / sizeof(verbs[0]); k++)
		known = known || !strcmp(argv[1], verbs[k]);
	if (!known)
		return arl_options_error(&u, "unknown subcommand '%s'", argv[1]);
	what = argv[1];
	snprintf(verb, sizeof(verb), "pool %s", what);
	u.name = verb;
	if ((n = arl_options_parse(&u, argc - 1, argv + 1, 0, &code)) < 0)
		return code;
	argv++; /* the operands are argv[0..n-1] */
	if (strcmp(what, "list")) {
		if (i >= n) {
			arl_options_error(&u, "a pool NAME is required");
			goto out;
		}
		name = argv[i++];
		if (!arl_is_dns_label(name)) {
			arl_options_error(
			    &u,
			    "'%s' is not a valid WarmPool name (a DNS label: lowercase "
			    "letters, digits and '-', at most 63)",
			    name);
			goto out;
		}
	}
	if (!strcmp(what, "create")) {
		for (; i < n; i++)
			arl_opt_strings_add(&po.command, argv[i]);
		if (!po.image || !po.sidecar) {
			arl_options_error(&u, "--image and --sidecar-image are required");
			goto out;
		}
	}
	if (i < n) {
		arl_cli_unexpected(&u, argv[i]);
		goto out;
	}
	code = run_verb(what, name, &po);
out:
	free(po.command.v);
	return code;
}
