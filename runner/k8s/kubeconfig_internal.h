/*
 * A kubeconfig's insides, shared by its parsing (kubeconfig.c) and its live credentials
 * (k8s_creds.c). Not for use outside these two files.
 */
#ifndef ARL_KUBECONFIG_INTERNAL_H
#define ARL_KUBECONFIG_INTERNAL_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "err.h"
#include "k8s/kubeconfig.h"

#define KC_MAX_FILE (4u << 20) /* a kubeconfig, a CA bundle, a client key */

struct kc_exec {
	char *api_version;
	char **argv; /* command (resolved) and args, NULL-terminated */
	size_t argc;
	char **env; /* "NAME=value", NULL-terminated */
	size_t nenv;
	char *install_hint;
	bool provide_cluster_info;
};

struct arl_kubeconfig {
	char *source, *context, *cluster, *user, *server, *namespace;
	char *server_shown, *proxy_shown; /* for messages: userinfo redacted */
	bool namespace_set;
	char *ca_file, *tls_server_name, *proxy_url;
	char *ca_data, *cert_data, *key_data; /* PEM bytes, decoded */
	size_t ca_len, cert_len, key_len;
	bool insecure;
	char *cert_file, *key_file;
	char *token, *token_file, *username, *password;
	char *impersonate_user;
	char **impersonate_groups;
	size_t nimpersonate_groups;
	struct kc_exec *exec;
	const char *auth;
	char *base_url;
	struct curl_slist *connect_to; /* tls-server-name: the URL's host -> the real server */

	pthread_mutex_t mu; /* guards the caches below; lock order: alone, never nested */
	char *file_token;
	int64_t file_checked_ms;
	dev_t file_dev;
	ino_t file_ino;
	off_t file_size;
	struct timespec file_mtime;
	bool exec_valid;
	char *exec_token, *exec_cert, *exec_key;
	size_t exec_cert_len, exec_key_len;
	int64_t exec_expiry_ms; /* wall clock; 0: no expiry given */
};

/* Frees @s after wiping its @len bytes (a secret); NULL is a no-op. */
void arl_kubeconfig_wipe_free(char *s, size_t len);
/* The same for a NUL-terminated secret. */
void arl_kubeconfig_wipe_str(char *s);
/* Reads a small file holding a secret (token, namespace); the caller wipes and frees it. */
int arl_kubeconfig_read_secret(const char *path, size_t max, char **out, size_t *len,
                               struct arl_err *err);

/* Sets up, and wipes and tears down, the credential caches (k8s_creds.c). */
void arl_k8s_creds_init(struct arl_kubeconfig *kc);
void arl_k8s_creds_release(struct arl_kubeconfig *kc);

#endif
