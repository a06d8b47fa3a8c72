/*
 * Kubernetes client configuration found the way kubectl finds it, and the credentials it
 * names.
 *
 * Where: --kubeconfig PATH (must exist), else $KUBECONFIG (a colon-separated list merged as
 * kubectl does: missing files are skipped, the first file to define a cluster, user or
 * context of a given name wins, and current-context comes from the first file that sets it),
 * else ~/.kube/config, else the in-cluster service account (KUBERNETES_SERVICE_HOST/PORT and
 * /var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt,namespace}). --context picks a
 * context other than current-context; the context's namespace is the default namespace.
 *
 * What: server, certificate-authority(-data), insecure-skip-tls-verify, tls-server-name,
 * proxy-url, client-certificate(-data) and client-key(-data), token, tokenFile (re-read when
 * the file changes, as a projected service-account token rotates), username/password, and
 * exec credential plugins (client.authentication.k8s.io/v1 and v1beta1 ExecCredential; the
 * result is cached until its expirationTimestamp). Relative paths are relative to the file
 * that names them.
 *
 * Secrets (tokens, keys, passwords) stay inside this module and the curl handles it
 * configures: no error message, log line or accessor below prints them.
 *
 * Thread-safety: after arl_kubeconfig_load() the object is shared by all threads; the live
 * credentials (k8s_creds.h) lock internally.
 */
#ifndef ARL_KUBECONFIG_H
#define ARL_KUBECONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct arl_kubeconfig_opts {
	const char *path;    /* --kubeconfig; NULL: $KUBECONFIG, ~/.kube/config, in-cluster */
	const char *context; /* --context; NULL: the current-context */
	const char *sa_dir;  /* service-account directory; NULL: the standard one (for tests) */
};
#define ARL_KUBECONFIG_OPTS_INIT                                                                   \
	{                                                                                          \
		NULL, NULL, NULL                                                                   \
	}

struct arl_kubeconfig;

/*
 * Finds, reads, merges and resolves the configuration. Errors name the file (with line and
 * column for a malformed one) and what to set; *out is written only on success.
 */
int arl_kubeconfig_load(struct arl_kubeconfig **out, const struct arl_kubeconfig_opts *o,
                        struct arl_err *err);
/* NULL is a no-op. Wipes the secrets it held. */
void arl_kubeconfig_free(struct arl_kubeconfig *kc);

/* A secret-free description, for messages, `--help` output and tests. Strings are borrowed. */
struct arl_kubeconfig_info {
	const char *source;  /* the file(s) read, ':'-joined, or "in-cluster" */
	const char *context; /* context name, or "in-cluster" */
	const char *cluster, *user;
	const char *server;    /* as configured, no trailing '/' */
	const char *namespace; /* never NULL: the context's, else "default" */
	bool namespace_set;    /* the context (or the service account) named it */
	const char *ca_file;   /* resolved path, or NULL */
	bool ca_data;          /* certificate-authority-data given */
	bool insecure;
	const char *tls_server_name, *proxy_url;
	const char *cert_file, *key_file; /* resolved paths, or NULL */
	bool cert_data, key_data;
	const char *auth;         /* "token", "tokenFile", "exec", "basic", "client-cert", "none" */
	const char *token_file;   /* resolved path, or NULL */
	const char *exec_command; /* resolved, or NULL */
	const char *exec_api_version;
};
void arl_kubeconfig_describe(const struct arl_kubeconfig *kc, struct arl_kubeconfig_info *out);

/*
 * Base URL of API requests ("https://host:port", no trailing '/'): with tls-server-name, the
 * URL names that host and arl_kubeconfig_curl_setup() connects it to the real server, so
 * that SNI and certificate checks use it. Borrowed.
 */
const char *arl_kubeconfig_base_url(const struct arl_kubeconfig *kc);
/* The server URL for messages, userinfo redacted (the same as describe()'s server). */
const char *arl_kubeconfig_server_shown(const struct arl_kubeconfig *kc);

/*
 * Applies the connection settings (CA, client certificate files or data, insecure, proxy,
 * tls-server-name) to a libcurl easy handle (CURL *). Call once per handle.
 */
int arl_kubeconfig_curl_setup(const struct arl_kubeconfig *kc, void *curl, struct arl_err *err);

#endif
