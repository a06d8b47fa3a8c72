/*
 * DESIGN
 *
 * Loading parses every file with the shared libyaml loader (arl_yaml_load_mem, so sizes,
 * depth and aliases are bounded as for job files) and keeps the node trees until the chosen
 * context is resolved. kubectl's merge is a first-wins merge per map key, so instead of
 * building a merged tree we look names up file by file in order: the first file that defines
 * cluster 'c' supplies all of cluster 'c'. Everything needed later is copied out, paths made
 * absolute against the directory of the file that named them, and the trees are freed.
 */
#include "k8s/kubeconfig.h"

#include <curl/curl.h>
#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "k8s/k8s_text.h"
#include "k8s/kubeconfig_internal.h"
#include "util.h"
#include "jobfile/yaml_load.h"
#include "banned.h"

#define KC_DEFAULT_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

struct kc_file {
	char *path;
	char *dir;
	struct arl_doc *doc;
};

/* --- small helpers ------------------------------------------------------------------- */

void arl_kubeconfig_wipe_free(char *s, size_t len)
{
	if (s) {
		explicit_bzero(s, len);
		free(s);
	}
}

void arl_kubeconfig_wipe_str(char *s)
{
	if (s)
		arl_kubeconfig_wipe_free(s, strlen(s));
}

static void free_strv(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static int node_error(struct arl_err *err, const struct arl_node *n, const char *fmt, ...)
    ARL_PRINTF(3, 4);
static int node_error(struct arl_err *err, const struct arl_node *n, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n && n->loc.path && n->loc.line)
		return arl_error(err, ARL_E_INVALID, "%s:%u:%u: %s", n->loc.path, n->loc.line,
		                 n->loc.col, msg);
	return arl_error(err, ARL_E_INVALID, "%s", msg);
}

/* A scalar's text; NULL when absent or null. A non-scalar is an error. */
static int get_str(const struct arl_node *map, const char *key, const char **out,
                   struct arl_err *err)
{
	const struct arl_node *n = arl_node_get(map, key);

	*out = NULL;
	if (!n || arl_node_is_null(n))
		return 0;
	if (n->kind != ARL_NODE_SCALAR)
		return node_error(err, n, "'%s' must be a string, not %s", key,
		                  arl_node_describe(n));
	*out = n->str;
	return 0;
}

/* A boolean field; absent or null is false. */
static int get_bool(const struct arl_node *map, const char *key, bool *out, struct arl_err *err)
{
	const struct arl_node *n = arl_node_get(map, key);
	bool v = false;

	*out = false;
	if (!n || arl_node_is_null(n))
		return 0;
	/* A quoted "true" is a string in YAML, but kubectl's own files never quote it. */
	if (n->kind == ARL_NODE_SCALAR && (arl_node_is_bool(n, &v) || !strcmp(n->str, "false")))
		*out = v;
	else if (n->kind == ARL_NODE_SCALAR && !strcmp(n->str, "true"))
		*out = true;
	else
		return node_error(err, n, "'%s' must be true or false", key);
	return 0;
}

/* A list value: NULL for absent or null, an error for anything but a sequence. */
static int get_seq(const struct arl_node *map, const char *key, const struct arl_node **out,
                   struct arl_err *err)
{
	const struct arl_node *n = arl_node_get(map, key);

	*out = NULL;
	if (!n || (n->kind == ARL_NODE_SCALAR && arl_node_is_null(n)))
		return 0;
	if (n->kind != ARL_NODE_SEQ)
		return node_error(err, n, "'%s' must be a list, not %s", key, arl_node_describe(n));
	*out = n;
	return 0;
}

/* A path from the file in @dir: absolute as is, relative to @dir (NULL when empty). */
static char *resolve_path(const char *dir, const char *p)
{
	if (!p || !*p)
		return NULL;
	if (p[0] == '/' || !dir)
		return arl_xstrdup(p);
	while (p[0] == '.' && p[1] == '/') /* "./x" as filepath.Join cleans it */
		p += 2;
	return arl_xasprintf("%s/%s", dir, p);
}

/* Reads a small file holding a secret (token, namespace); the caller wipes and frees it. */
int arl_kubeconfig_read_secret(const char *path, size_t max, char **out, size_t *len,
                               struct arl_err *err)
{
	struct arl_buf b = ARL_BUF_INIT;

	if (arl_buf_read_file(&b, path, max, err) < 0) {
		arl_buf_release(&b);
		return -1;
	}
	*out = arl_buf_detach(&b, len);
	return 0;
}

/* Base64 field -> bytes; the error names the field, never its value. */
static int decode_data(const struct arl_node *map, const char *key, const char *text, char **out,
                       size_t *len, struct arl_err *err)
{
	if (!text)
		return 0;
	if (!(*out = arl_k8s_base64_decode(text, len)))
		return node_error(err, arl_node_get(map, key), "'%s' is not valid base64", key);
	return 0;
}

/* --- finding and reading the files ---------------------------------------------------- */

/*
 * Reads and parses one file. Only the loader's first diagnostic is reported, without the
 * source line it would normally show: that line could be a token.
 */
static int load_file(const char *path, struct kc_file *f, struct arl_err *err)
{
	struct arl_buf src = ARL_BUF_INIT;
	struct arl_diags diags = ARL_DIAGS_INIT;
	char *tmp;
	int ret = -1;

	memset(f, 0, sizeof(*f));
	if (arl_buf_read_file(&src, path, KC_MAX_FILE, err) < 0)
		goto out;
	if (arl_yaml_load_mem(path, src.p, src.len, &f->doc, &diags) < 0) {
		/* The first diagnostic only: the loader's messages quote keys, never values. */
		if (diags.n)
			arl_error(err, ARL_E_PARSE, "%s:%u:%u: %s", diags.v[0].path,
			          diags.v[0].line, diags.v[0].col, diags.v[0].msg);
		else
			arl_error(err, ARL_E_PARSE, "%s: not a valid kubeconfig", path);
		goto out;
	}
	if (f->doc->root && f->doc->root->kind != ARL_NODE_MAP) {
		node_error(err, f->doc->root, "a kubeconfig must be a mapping, not %s",
		           arl_node_describe(f->doc->root));
		goto out;
	}
	f->path = arl_xstrdup(path);
	tmp = arl_xstrdup(path);
	f->dir = arl_xstrdup(dirname(tmp));
	free(tmp);
	ret = 0;
out:
	if (ret < 0) {
		arl_doc_free(f->doc);
		f->doc = NULL;
	}
	arl_diags_release(&diags);
	if (src.p)
		explicit_bzero(src.p, src.len);
	arl_buf_release(&src);
	return ret;
}

static bool file_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/*
 * The files to read, in precedence order. *none_found is set when no source applies, so the
 * caller may fall back to the in-cluster configuration.
 */
static int find_files(const struct arl_kubeconfig_opts *o, struct kc_file **files, size_t *n,
                      bool *none_found, struct arl_err *err)
{
	const char *env = getenv("KUBECONFIG");
	const char *home = getenv("HOME");

	*none_found = false;
	if (o->path && *o->path) {
		*files = arl_xcalloc(1, sizeof(**files));
		if (load_file(o->path, &(*files)[0], err) < 0)
			return -1;
		*n = 1;
		return 0;
	}
	if (env && *env) {
		char *list = arl_xstrdup(env), *p = list, *colon;

		do {
			colon = strchr(p, ':');
			if (colon)
				*colon = '\0';
			/* kubectl skips missing entries of the list and reads each file once. */
			bool dup = false;

			for (size_t i = 0; i < *n; i++)
				dup = dup || !strcmp((*files)[i].path, p);
			if (*p && !dup && file_exists(p)) {
				*files = arl_xrealloc(*files, (*n + 1) * sizeof(**files));
				if (load_file(p, &(*files)[*n], err) < 0) {
					free(list);
					return -1;
				}
				(*n)++;
			}
			p = colon ? colon + 1 : NULL;
		} while (p);
		free(list);
		/* With KUBECONFIG set, ~/.kube/config is not consulted (as in kubectl). */
		*none_found = *n == 0;
		return 0;
	}
	if (home && *home) {
		char *path = arl_xasprintf("%s/.kube/config", home);

		if (file_exists(path)) {
			*files = arl_xcalloc(1, sizeof(**files));
			if (load_file(path, &(*files)[0], err) < 0) {
				free(path);
				return -1;
			}
			*n = 1;
			free(path);
			return 0;
		}
		free(path);
	}
	*none_found = true;
	return 0;
}

/*
 * The first entry named @name in the @kind list ("clusters", ...) across the files, and its
 * inner map (@inner: "cluster", "user", "context"); *file gets the file it came from.
 */
static int lookup(struct kc_file *files, size_t n, const char *kind, const char *inner,
                  const char *name, const struct arl_node **out, const struct kc_file **file,
                  struct arl_err *err)
{
	*out = NULL;
	for (size_t i = 0; i < n; i++) {
		const struct arl_node *list;

		if (!files[i].doc->root)
			continue;
		if (get_seq(files[i].doc->root, kind, &list, err) < 0)
			return -1;
		for (size_t k = 0; list && k < list->nkids; k++) {
			const struct arl_node *item = list->kids[k], *body;
			const char *iname;

			if (item->kind != ARL_NODE_MAP)
				return node_error(err, item, "each of '%s' must be a mapping",
				                  kind);
			if (get_str(item, "name", &iname, err) < 0)
				return -1;
			if (!iname || strcmp(iname, name))
				continue;
			body = arl_node_get(item, inner);
			if (body && arl_node_is_null(body))
				body = NULL;
			if (body && body->kind != ARL_NODE_MAP)
				return node_error(err, body, "'%s' must be a mapping, not %s",
				                  inner, arl_node_describe(body));
			*out = body ? body : item; /* an entry with no body: all defaults */
			*file = &files[i];
			return 0;
		}
	}
	return 0;
}

/* "a, b, c" of the names in the @kind lists, for "not found" messages. */
static char *list_names(struct kc_file *files, size_t n, const char *kind)
{
	struct arl_buf b = ARL_BUF_INIT;
	struct arl_err ignored = ARL_ERR_INIT;

	for (size_t i = 0; i < n; i++) {
		const struct arl_node *list;

		if (!files[i].doc->root || get_seq(files[i].doc->root, kind, &list, &ignored) < 0)
			continue;
		for (size_t k = 0; list && k < list->nkids; k++) {
			const char *name;

			if (list->kids[k]->kind == ARL_NODE_MAP &&
			    get_str(list->kids[k], "name", &name, &ignored) == 0 && name)
				arl_buf_addf(&b, "%s'%s'", b.len ? ", " : "", name);
		}
	}
	if (!b.len)
		arl_buf_addstr(&b, "none");
	return arl_buf_detach(&b, NULL);
}

/* --- resolving the chosen context ----------------------------------------------------- */

static int parse_exec(struct arl_kubeconfig *kc, const struct arl_node *ex, const char *dir,
                      struct arl_err *err)
{
	const struct arl_node *args, *env;
	const char *api, *cmd, *hint, *mode;
	struct kc_exec *e;

	if (ex->kind != ARL_NODE_MAP)
		return node_error(err, ex, "'exec' must be a mapping");
	if (get_str(ex, "apiVersion", &api, err) < 0 || get_str(ex, "command", &cmd, err) < 0 ||
	    get_str(ex, "installHint", &hint, err) < 0 ||
	    get_str(ex, "interactiveMode", &mode, err) < 0 || get_seq(ex, "args", &args, err) < 0 ||
	    get_seq(ex, "env", &env, err) < 0)
		return -1;
	if (!cmd || !*cmd)
		return node_error(err, ex, "exec plugin: 'command' is required");
	if (!api || (strcmp(api, "client.authentication.k8s.io/v1") &&
	             strcmp(api, "client.authentication.k8s.io/v1beta1")))
		return node_error(err, ex,
		                  "exec plugin '%s': apiVersion '%s' is not supported (use "
		                  "client.authentication.k8s.io/v1 or v1beta1)",
		                  cmd, api ? api : "");
	if (mode && !strcmp(mode, "Always"))
		return node_error(err, ex,
		                  "exec plugin '%s' needs interactiveMode Always, but arl-batch "
		                  "runs plugins without a terminal",
		                  cmd);
	e = arl_xcalloc(1, sizeof(*e));
	kc->exec = e;
	e->api_version = arl_xstrdup(api);
	e->install_hint = hint ? arl_xstrdup(hint) : NULL;
	if (get_bool(ex, "provideClusterInfo", &e->provide_cluster_info, err) < 0)
		return -1;
	e->argv = arl_xcalloc((args ? args->nkids : 0) + 2, sizeof(*e->argv));
	/* client-go resolves a relative command containing a '/' against the kubeconfig's dir. */
	e->argv[e->argc++] = strchr(cmd, '/') ? resolve_path(dir, cmd) : arl_xstrdup(cmd);
	for (size_t i = 0; args && i < args->nkids; i++) {
		if (args->kids[i]->kind != ARL_NODE_SCALAR)
			return node_error(err, args->kids[i], "exec 'args' must be strings");
		e->argv[e->argc++] = arl_xstrdup(args->kids[i]->str);
	}
	e->env = arl_xcalloc((env ? env->nkids : 0) + 1, sizeof(*e->env));
	for (size_t i = 0; env && i < env->nkids; i++) {
		const char *name, *value;

		if (env->kids[i]->kind != ARL_NODE_MAP)
			return node_error(err, env->kids[i],
			                  "exec 'env' entries must be {name, value} mappings");
		if (get_str(env->kids[i], "name", &name, err) < 0 ||
		    get_str(env->kids[i], "value", &value, err) < 0)
			return -1;
		if (!name || !*name || strchr(name, '='))
			return node_error(err, env->kids[i],
			                  "exec 'env' entry needs a valid 'name'");
		e->env[e->nenv++] = arl_xasprintf("%s=%s", name, value ? value : "");
	}
	return 0;
}

/*
 * A cluster entry. *-data wins over the file form (kubectl warns about both and uses the
 * data); a CA together with insecure-skip-tls-verify is refused, as kubectl refuses it.
 */
static int parse_cluster(struct arl_kubeconfig *kc, const struct arl_node *c, const char *dir,
                         struct arl_err *err)
{
	const char *server, *ca, *ca_data, *tsn, *proxy;

	if (get_str(c, "server", &server, err) < 0 ||
	    get_str(c, "certificate-authority", &ca, err) < 0 ||
	    get_str(c, "certificate-authority-data", &ca_data, err) < 0 ||
	    get_str(c, "tls-server-name", &tsn, err) < 0 ||
	    get_str(c, "proxy-url", &proxy, err) < 0 ||
	    get_bool(c, "insecure-skip-tls-verify", &kc->insecure, err) < 0)
		return -1;
	if (!server || !*server)
		return node_error(err, c, "cluster '%s' has no 'server'", kc->cluster);
	kc->server = arl_xstrdup(server);
	while (strlen(kc->server) > 1 && kc->server[strlen(kc->server) - 1] == '/')
		kc->server[strlen(kc->server) - 1] = '\0';
	/* Userinfo in the URL is a credential (curl sends it as basic auth): never shown. */
	kc->server_shown = arl_k8s_redact_url(kc->server);
	if (strncmp(server, "https://", 8) && strncmp(server, "http://", 7))
		return node_error(err, arl_node_get(c, "server"),
		                  "cluster '%s': server '%s' must start with https:// or http://",
		                  kc->cluster, kc->server_shown);
	if (decode_data(c, "certificate-authority-data", ca_data, &kc->ca_data, &kc->ca_len, err) <
	    0)
		return -1;
	if (!ca_data)
		kc->ca_file = resolve_path(dir, ca);
	if (kc->insecure && (kc->ca_file || kc->ca_data))
		return node_error(
		    err, c,
		    "cluster '%s': a certificate authority together with "
		    "insecure-skip-tls-verify is not allowed (kubectl refuses it too)",
		    kc->cluster);
	kc->tls_server_name = tsn && *tsn ? arl_xstrdup(tsn) : NULL;
	kc->proxy_url = proxy && *proxy ? arl_xstrdup(proxy) : NULL;
	kc->proxy_shown = kc->proxy_url ? arl_k8s_redact_url(kc->proxy_url) : NULL;
	return 0;
}

/*
 * A user entry. Every credential form is kept; which one a request uses is decided in
 * current_creds(): exec, else token, else tokenFile (kubeconfig's documented precedence:
 * token over tokenFile), with basic auth and client certificates alongside.
 */
static int parse_user(struct arl_kubeconfig *kc, const struct arl_node *u, const char *dir,
                      struct arl_err *err)
{
	const char *cert, *cert_data, *key, *key_data, *token, *token_file, *user, *pass, *as;
	const struct arl_node *groups, *ex = arl_node_get(u, "exec");

	if (get_str(u, "client-certificate", &cert, err) < 0 ||
	    get_str(u, "client-certificate-data", &cert_data, err) < 0 ||
	    get_str(u, "client-key", &key, err) < 0 ||
	    get_str(u, "client-key-data", &key_data, err) < 0 ||
	    get_str(u, "token", &token, err) < 0 || get_str(u, "tokenFile", &token_file, err) < 0 ||
	    get_str(u, "username", &user, err) < 0 || get_str(u, "password", &pass, err) < 0 ||
	    get_str(u, "as", &as, err) < 0 || get_seq(u, "as-groups", &groups, err) < 0)
		return -1;
	if (arl_node_get(u, "auth-provider"))
		return node_error(err, arl_node_get(u, "auth-provider"),
		                  "user '%s': auth-provider plugins are not supported (kubectl "
		                  "removed them too); use an exec plugin",
		                  kc->user);
	if (decode_data(u, "client-certificate-data", cert_data, &kc->cert_data, &kc->cert_len,
	                err) < 0 ||
	    decode_data(u, "client-key-data", key_data, &kc->key_data, &kc->key_len, err) < 0)
		return -1;
	if (!cert_data)
		kc->cert_file = resolve_path(dir, cert);
	if (!key_data)
		kc->key_file = resolve_path(dir, key);
	if ((kc->cert_file || kc->cert_data) != (kc->key_file || kc->key_data))
		return node_error(err, u,
		                  "user '%s': a client certificate needs both "
		                  "client-certificate(-data) and client-key(-data)",
		                  kc->user);
	kc->token = token && *token ? arl_xstrdup(token) : NULL;
	kc->token_file = resolve_path(dir, token_file);
	kc->username = user && *user ? arl_xstrdup(user) : NULL;
	kc->password = pass ? arl_xstrdup(pass) : NULL;
	kc->impersonate_user = as && *as ? arl_xstrdup(as) : NULL;
	if (groups) {
		kc->impersonate_groups = arl_xcalloc(groups->nkids + 1, sizeof(char *));
		for (size_t i = 0; i < groups->nkids; i++) {
			if (groups->kids[i]->kind != ARL_NODE_SCALAR)
				return node_error(err, groups->kids[i],
				                  "'as-groups' must be strings");
			kc->impersonate_groups[kc->nimpersonate_groups++] =
			    arl_xstrdup(groups->kids[i]->str);
		}
	}
	if (ex && !arl_node_is_null(ex) && parse_exec(kc, ex, dir, err) < 0)
		return -1;
	return 0;
}

/*
 * Picks the context (--context, else the first current-context of the files) and resolves
 * its cluster and user, each from the first file that defines that name. A context naming a
 * user no file defines is an error, as in kubectl; one naming no user means no credentials.
 */
static int resolve_context(struct arl_kubeconfig *kc, struct kc_file *files, size_t n,
                           const char *want, struct arl_err *err)
{
	const struct arl_node *ctx = NULL, *cl = NULL, *us = NULL;
	const struct kc_file *fctx = NULL, *fcl = NULL, *fus = NULL;
	const char *name = want, *cluster, *user, *ns;
	char *names;

	for (size_t i = 0; !name && i < n; i++) {
		const char *cur = NULL;

		if (files[i].doc->root &&
		    get_str(files[i].doc->root, "current-context", &cur, err) < 0)
			return -1;
		if (cur && *cur)
			name = cur;
	}
	if (!name) {
		names = list_names(files, n, "contexts");
		arl_error(err, ARL_E_INVALID,
		          "no current-context in %s: pass --context NAME (contexts: %s)",
		          kc->source, names);
		free(names);
		return -1;
	}
	if (lookup(files, n, "contexts", "context", name, &ctx, &fctx, err) < 0)
		return -1;
	if (!ctx) {
		names = list_names(files, n, "contexts");
		arl_error(err, ARL_E_INVALID, "context '%s' not found in %s (contexts: %s)", name,
		          kc->source, names);
		free(names);
		return -1;
	}
	kc->context = arl_xstrdup(name);
	if (get_str(ctx, "cluster", &cluster, err) < 0 || get_str(ctx, "user", &user, err) < 0 ||
	    get_str(ctx, "namespace", &ns, err) < 0)
		return -1;
	if (!cluster || !*cluster)
		return node_error(err, ctx, "context '%s' names no cluster", name);
	kc->cluster = arl_xstrdup(cluster);
	if (lookup(files, n, "clusters", "cluster", cluster, &cl, &fcl, err) < 0)
		return -1;
	if (!cl) {
		names = list_names(files, n, "clusters");
		arl_error(err, ARL_E_INVALID,
		          "context '%s' uses cluster '%s', which %s does not define (clusters: %s)",
		          name, cluster, kc->source, names);
		free(names);
		return -1;
	}
	if (parse_cluster(kc, cl, fcl->dir, err) < 0)
		return -1;
	if (user && *user) {
		kc->user = arl_xstrdup(user);
		if (lookup(files, n, "users", "user", user, &us, &fus, err) < 0)
			return -1;
		if (!us) {
			names = list_names(files, n, "users");
			arl_error(
			    err, ARL_E_INVALID,
			    "context '%s' uses user '%s', which %s does not define (users: %s)",
			    name, user, kc->source, names);
			free(names);
			return -1;
		}
		if (parse_user(kc, us, fus->dir, err) < 0)
			return -1;
	}
	kc->namespace_set = ns && *ns;
	kc->namespace = arl_xstrdup(kc->namespace_set ? ns : "default");
	return 0;
}

/*
 * client-go's InClusterConfig: the service's host and port from the environment, the
 * service-account token (re-read when it rotates), its CA and namespace from @o->sa_dir.
 */
static int load_in_cluster(struct arl_kubeconfig *kc, const struct arl_kubeconfig_opts *o,
                           struct arl_err *err)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	const char *dir = o->sa_dir ? o->sa_dir : KC_DEFAULT_SA_DIR;
	char *path, *ns = NULL;
	struct arl_err ignored = ARL_ERR_INIT;
	size_t len;

	if (!host || !*host || !port || !*port)
		return arl_error(err, ARL_E_INVALID,
		                 "no Kubernetes configuration: pass --kubeconfig PATH, set "
		                 "KUBECONFIG, create ~/.kube/config, or run in a pod with a "
		                 "service account");
	kc->source = arl_xstrdup("in-cluster");
	kc->context = arl_xstrdup("in-cluster");
	kc->cluster = arl_xstrdup("in-cluster");
	kc->user = arl_xstrdup("service-account");
	kc->server = strchr(host, ':') ? arl_xasprintf("https://[%s]:%s", host, port)
	                               : arl_xasprintf("https://%s:%s", host, port);
	kc->server_shown = arl_xstrdup(kc->server);
	kc->token_file = arl_xasprintf("%s/token", dir);
	if (!file_exists(kc->token_file))
		return arl_error(err, ARL_E_INVALID,
		                 "in-cluster configuration: service-account token '%s' is missing",
		                 kc->token_file);
	path = arl_xasprintf("%s/ca.crt", dir);
	if (file_exists(path))
		kc->ca_file = path;
	else
		free(path);
	path = arl_xasprintf("%s/namespace", dir);
	if (file_exists(path) && arl_kubeconfig_read_secret(path, 256, &ns, &len, &ignored) == 0) {
		while (len && (ns[len - 1] == '\n' || ns[len - 1] == ' ' || ns[len - 1] == '\r'))
			ns[--len] = '\0';
	}
	free(path);
	kc->namespace_set = ns && *ns;
	kc->namespace = kc->namespace_set ? ns : arl_xstrdup("default");
	if (!kc->namespace_set)
		free(ns);
	return 0;
}

/* The base URL and, with tls-server-name, the CONNECT_TO mapping that keeps the real host. */
/*
 * libcurl has no option for "verify against this name": the URL names tls-server-name (so
 * SNI and the certificate check use it) and CONNECT_TO sends that host:port to the real
 * server. Any path prefix of the server URL (API proxies use one) is kept.
 */
static int make_base_url(struct arl_kubeconfig *kc, struct arl_err *err)
{
	const char *s = kc->server, *hp, *slash, *port_sep;
	bool https = !strncmp(s, "https://", 8);
	char *host, *port;

	if (!kc->tls_server_name) {
		kc->base_url = arl_xstrdup(s);
		return 0;
	}
	hp = arl_k8s_url_host(s);
	slash = strchr(hp, '/');
	if (!slash)
		slash = hp + strlen(hp);
	if (*hp == '[') {
		const char *close = memchr(hp, ']', (size_t)(slash - hp));

		if (!close)
			return arl_error(err, ARL_E_INVALID, "server '%s' is not a valid URL",
			                 kc->server_shown);
		host = arl_xstrndup(hp, (size_t)(close + 1 - hp));
		port_sep = close + 1 < slash && close[1] == ':' ? close + 1 : NULL;
	} else {
		port_sep = memchr(hp, ':', (size_t)(slash - hp));
		host = arl_xstrndup(hp, (size_t)((port_sep ? port_sep : slash) - hp));
	}
	port = port_sep ? arl_xstrndup(port_sep + 1, (size_t)(slash - port_sep - 1))
	                : arl_xstrdup(https ? "443" : "80");
	kc->base_url = arl_xasprintf("%s://%.*s%s:%s%s", https ? "https" : "http",
	                             (int)(hp - (s + (https ? 8 : 7))), s + (https ? 8 : 7),
	                             kc->tls_server_name, port, slash);
	char *map = arl_xasprintf("%s:%s:%s:%s", kc->tls_server_name, port, host, port);

	kc->connect_to = curl_slist_append(NULL, map);
	free(map);
	free(host);
	free(port);
	return 0;
}

int arl_kubeconfig_load(struct arl_kubeconfig **out, const struct arl_kubeconfig_opts *o,
                        struct arl_err *err)
{
	struct arl_kubeconfig *kc = arl_xcalloc(1, sizeof(*kc));
	struct kc_file *files = NULL;
	size_t n = 0;
	bool none;
	int ret = -1;

	arl_k8s_creds_init(kc);
	if (find_files(o, &files, &n, &none, err) < 0)
		goto out;
	if (none) {
		if (load_in_cluster(kc, o, err) < 0)
			goto out;
		if (o->context && *o->context) {
			arl_error(err, ARL_E_INVALID,
			          "--context '%s' given, but no kubeconfig was found (in-cluster "
			          "configuration has no contexts)",
			          o->context);
			goto out;
		}
	} else {
		struct arl_buf src = ARL_BUF_INIT;

		for (size_t i = 0; i < n; i++)
			arl_buf_addf(&src, "%s%s", i ? ":" : "", files[i].path);
		kc->source = arl_buf_detach(&src, NULL);
		if (resolve_context(kc, files, n, o->context && *o->context ? o->context : NULL,
		                    err) < 0)
			goto out;
	}
	if (make_base_url(kc, err) < 0)
		goto out;
	kc->auth = kc->exec                         ? "exec"
	           : kc->token                      ? "token"
	           : kc->token_file                 ? "tokenFile"
	           : kc->username                   ? "basic"
	           : kc->cert_file || kc->cert_data ? "client-cert"
	                                            : "none";
	*out = kc;
	kc = NULL;
	ret = 0;
out:
	for (size_t i = 0; i < n; i++) {
		free(files[i].path);
		free(files[i].dir);
		arl_doc_free(files[i].doc);
	}
	free(files);
	arl_kubeconfig_free(kc);
	return ret;
}

void arl_kubeconfig_free(struct arl_kubeconfig *kc)
{
	if (!kc)
		return;
	free(kc->source);
	free(kc->context);
	free(kc->cluster);
	free(kc->user);
	free(kc->server);
	free(kc->server_shown);
	free(kc->proxy_shown);
	free(kc->namespace);
	free(kc->ca_file);
	free(kc->tls_server_name);
	free(kc->proxy_url);
	arl_kubeconfig_wipe_free(kc->ca_data, kc->ca_len);
	arl_kubeconfig_wipe_free(kc->cert_data, kc->cert_len);
	arl_kubeconfig_wipe_free(kc->key_data, kc->key_len);
	free(kc->cert_file);
	free(kc->key_file);
	arl_kubeconfig_wipe_str(kc->token);
	free(kc->token_file);
	free(kc->username);
	arl_kubeconfig_wipe_str(kc->password);
	free(kc->impersonate_user);
	free_strv(kc->impersonate_groups);
	if (kc->exec) {
		free(kc->exec->api_version);
		free_strv(kc->exec->argv);
		for (size_t i = 0; i < kc->exec->nenv; i++)
			arl_kubeconfig_wipe_str(kc->exec->env[i]);
		free(kc->exec->env);
		free(kc->exec->install_hint);
		free(kc->exec);
	}
	free(kc->base_url);
	curl_slist_free_all(kc->connect_to);
	arl_k8s_creds_release(kc);
	free(kc);
}

void arl_kubeconfig_describe(const struct arl_kubeconfig *kc, struct arl_kubeconfig_info *out)
{
	memset(out, 0, sizeof(*out));
	out->source = kc->source;
	out->context = kc->context;
	out->cluster = kc->cluster;
	out->user = kc->user;
	out->server = kc->server_shown;
	out->namespace = kc->namespace;
	out->namespace_set = kc->namespace_set;
	out->ca_file = kc->ca_file;
	out->ca_data = kc->ca_data != NULL;
	out->insecure = kc->insecure;
	out->tls_server_name = kc->tls_server_name;
	out->proxy_url = kc->proxy_shown;
	out->cert_file = kc->cert_file;
	out->key_file = kc->key_file;
	out->cert_data = kc->cert_data != NULL;
	out->key_data = kc->key_data != NULL;
	out->auth = kc->auth;
	out->token_file = kc->token_file;
	out->exec_command = kc->exec ? kc->exec->argv[0] : NULL;
	out->exec_api_version = kc->exec ? kc->exec->api_version : NULL;
}

const char *arl_kubeconfig_base_url(const struct arl_kubeconfig *kc)
{
	return kc->base_url;
}

const char *arl_kubeconfig_server_shown(const struct arl_kubeconfig *kc)
{
	return kc->server_shown;
}

/*
 * Certificates given as data go in as blobs (CURLOPT_*_BLOB, libcurl >= 7.77): no temporary
 * file ever holds a private key. Basic auth is set only when no bearer credential exists.
 */
int arl_kubeconfig_curl_setup(const struct arl_kubeconfig *kc, void *curl, struct arl_err *err)
{
	CURL *h = curl;
	struct curl_blob blob;
	CURLcode rc = CURLE_OK;

	if (kc->ca_data) {
		blob = (struct curl_blob){kc->ca_data, kc->ca_len, CURL_BLOB_COPY};
		rc = curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
	} else if (kc->ca_file) {
		rc = curl_easy_setopt(h, CURLOPT_CAINFO, kc->ca_file);
	}
	if (rc == CURLE_OK && kc->insecure) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		rc = curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (rc == CURLE_OK && kc->cert_data) {
		blob = (struct curl_blob){kc->cert_data, kc->cert_len, CURL_BLOB_COPY};
		rc = curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &blob);
	} else if (rc == CURLE_OK && kc->cert_file) {
		rc = curl_easy_setopt(h, CURLOPT_SSLCERT, kc->cert_file);
	}
	if (rc == CURLE_OK && kc->key_data) {
		blob = (struct curl_blob){kc->key_data, kc->key_len, CURL_BLOB_COPY};
		rc = curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &blob);
	} else if (rc == CURLE_OK && kc->key_file) {
		rc = curl_easy_setopt(h, CURLOPT_SSLKEY, kc->key_file);
	}
	if (rc == CURLE_OK && kc->proxy_url)
		rc = curl_easy_setopt(h, CURLOPT_PROXY, kc->proxy_url);
	if (rc == CURLE_OK && kc->connect_to)
		rc = curl_easy_setopt(h, CURLOPT_CONNECT_TO, kc->connect_to);
	if (rc == CURLE_OK && kc->username && !kc->exec && !kc->token && !kc->token_file) {
		curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(h, CURLOPT_USERNAME, kc->username);
		rc = curl_easy_setopt(h, CURLOPT_PASSWORD, kc->password ? kc->password : "");
	}
	if (rc != CURLE_OK)
		return arl_error(err, ARL_E_BACKEND,
		                 "cannot configure TLS for cluster '%s': %s (does this libcurl "
		                 "support it?)",
		                 kc->cluster, curl_easy_strerror(rc));
	return 0;
}
