/*
 * DESIGN
 *
 * Credentials that can change while a run goes on live behind one mutex: the token file is
 * stat()ed at most once a second and re-read when its inode, size or mtime moved (kubelet
 * replaces projected tokens by renaming a new file in place); an exec plugin's credential is
 * kept until five seconds before its expirationTimestamp, or until a 401 invalidates it. The
 * first thread to find the credential stale runs the plugin while holding the mutex, so a
 * burst of workers starts it once, not once each.
 *
 * Messages never quote a credential: errors about tokens name the file or the plugin, and
 * an exec plugin's stderr is shown (that is where plugins explain themselves) but never its
 * stdout, which carries the token.
 */
#include "k8s/k8s_creds.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "k8s/k8s_text.h"
#include "k8s/kubeconfig_internal.h"
#include "spawn.h"
#include "util.h"
#include "banned.h"

extern char **environ;

#define KC_MAX_TOKEN        (64u << 10) /* a token file */
#define KC_EXEC_TIMEOUT_MS  120000      /* an exec plugin that hangs fails the request */
#define KC_EXEC_MARGIN_MS   5000        /* refresh an exec credential this long before it expires */
#define KC_TOKEN_RECHECK_MS 1000        /* stat() the token file at most this often */

void arl_k8s_creds_init(struct arl_kubeconfig *kc)
{
	pthread_mutex_init(&kc->mu, NULL);
}

void arl_k8s_creds_release(struct arl_kubeconfig *kc)
{
	arl_kubeconfig_wipe_str(kc->file_token);
	arl_kubeconfig_wipe_str(kc->exec_token);
	arl_kubeconfig_wipe_free(kc->exec_cert, kc->exec_cert_len);
	arl_kubeconfig_wipe_free(kc->exec_key, kc->exec_key_len);
	pthread_mutex_destroy(&kc->mu);
}

/* Re-reads the token file when it changed; kc->mu held. */
static int refresh_token_file(struct arl_kubeconfig *kc, struct arl_err *err)
{
	int64_t now = arl_now_ms();
	struct arl_err e2 = ARL_ERR_INIT;
	struct stat st;
	char *tok;
	size_t len;

	if (kc->file_token && now - kc->file_checked_ms < KC_TOKEN_RECHECK_MS)
		return 0;
	if (stat(kc->token_file, &st) < 0) {
		if (kc->file_token)
			return 0; /* mid-rotation: keep the last good token */
		return arl_error_errno(err, errno, "cannot read token file '%s'", kc->token_file);
	}
	kc->file_checked_ms = now;
	if (kc->file_token && st.st_dev == kc->file_dev && st.st_ino == kc->file_ino &&
	    st.st_size == kc->file_size && st.st_mtim.tv_sec == kc->file_mtime.tv_sec &&
	    st.st_mtim.tv_nsec == kc->file_mtime.tv_nsec)
		return 0;
	if (arl_kubeconfig_read_secret(kc->token_file, KC_MAX_TOKEN, &tok, &len, &e2) < 0) {
		if (kc->file_token)
			return 0; /* keep the last good token */
		return arl_error(err, e2.code, "%s", e2.msg);
	}
	while (len && (tok[len - 1] == '\n' || tok[len - 1] == '\r' || tok[len - 1] == ' '))
		tok[--len] = '\0';
	if (!len) {
		free(tok);
		if (kc->file_token)
			return 0;
		return arl_error(err, ARL_E_INVALID, "token file '%s' is empty", kc->token_file);
	}
	arl_kubeconfig_wipe_str(kc->file_token);
	kc->file_token = tok;
	kc->file_dev = st.st_dev;
	kc->file_ino = st.st_ino;
	kc->file_size = st.st_size;
	kc->file_mtime = st.st_mtim;
	return 0;
}

/* KUBERNETES_EXEC_INFO for the plugin (cluster details only when provideClusterInfo). */
static char *exec_info(const struct arl_kubeconfig *kc)
{
	cJSON *root = cJSON_CreateObject(), *spec, *cluster;
	char *json, *env;

	cJSON_AddStringToObject(root, "apiVersion", kc->exec->api_version);
	cJSON_AddStringToObject(root, "kind", "ExecCredential");
	spec = cJSON_AddObjectToObject(root, "spec");
	cJSON_AddBoolToObject(spec, "interactive", 0);
	if (kc->exec->provide_cluster_info) {
		cluster = cJSON_AddObjectToObject(spec, "cluster");
		cJSON_AddStringToObject(cluster, "server", kc->server);
		if (kc->tls_server_name)
			cJSON_AddStringToObject(cluster, "tls-server-name", kc->tls_server_name);
		if (kc->insecure)
			cJSON_AddBoolToObject(cluster, "insecure-skip-tls-verify", 1);
		if (kc->proxy_url)
			cJSON_AddStringToObject(cluster, "proxy-url", kc->proxy_url);
		if (kc->ca_data || kc->ca_file) {
			char *data = NULL, *b64;
			size_t len = 0;
			struct arl_err ignored = ARL_ERR_INIT;

			if (kc->ca_data)
				b64 = arl_k8s_base64_encode(kc->ca_data, kc->ca_len);
			else if (arl_kubeconfig_read_secret(kc->ca_file, KC_MAX_FILE, &data, &len,
			                                    &ignored) == 0)
				b64 = arl_k8s_base64_encode(data, len);
			else
				b64 = NULL;
			if (b64)
				cJSON_AddStringToObject(cluster, "certificate-authority-data", b64);
			free(b64);
			free(data);
		}
	}
	json = cJSON_PrintUnformatted(root);
	env = arl_xasprintf("KUBERNETES_EXEC_INFO=%s", json);
	cJSON_free(json);
	cJSON_Delete(root);
	return env;
}

/* The child's environment: ours, minus names the plugin config sets, plus those. */
static char **exec_env(const struct arl_kubeconfig *kc, char *info)
{
	size_t n = 0, k = 0;
	char **v;

	while (environ[n])
		n++;
	v = arl_xcalloc(n + kc->exec->nenv + 2, sizeof(*v));
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(environ[i], '=');
		size_t nlen = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
		bool overridden = !strncmp(environ[i], "KUBERNETES_EXEC_INFO=", 21);

		for (size_t j = 0; j < kc->exec->nenv && !overridden; j++)
			overridden = !strncmp(kc->exec->env[j], environ[i], nlen) &&
			             kc->exec->env[j][nlen] == '=';
		if (!overridden)
			v[k++] = environ[i];
	}
	for (size_t j = 0; j < kc->exec->nenv; j++)
		v[k++] = kc->exec->env[j];
	v[k++] = info;
	v[k] = NULL;
	return v;
}

/* The first line of a plugin's stderr, cut short, for an error message. */
static void first_line(const struct arl_output *o, char *buf, size_t len)
{
	size_t n = 0;
	const char *p = o->data ? o->data : "";

	while (*p == '\n' || *p == ' ')
		p++;
	while (p[n] && p[n] != '\n' && n + 1 < len)
		n++;
	memcpy(buf, p, n);
	buf[n] = '\0';
}

/*
 * Validates and caches the plugin's ExecCredential. The apiVersion must be the one asked for
 * (client-go refuses a mismatch too); messages name the plugin, never the credential.
 */
static int parse_exec_credential(struct arl_kubeconfig *kc, const char *data, size_t len,
                                 struct arl_err *err)
{
	const char *cmd = kc->exec->argv[0];
	const char *end = NULL;
	/* @data is NUL-terminated; cJSON's "require NUL" wants the NUL inside the length. */
	cJSON *root = cJSON_ParseWithLengthOpts(data, len + 1, &end, 1);
	const cJSON *api, *kind, *status, *tok, *cert, *key, *exp;
	int64_t expiry = 0;
	int ret = -1;

	if (!cJSON_IsObject(root)) {
		arl_error(err, ARL_E_PROTO,
		          "exec plugin '%s' did not print an ExecCredential (JSON)", cmd);
		goto out;
	}
	api = cJSON_GetObjectItemCaseSensitive(root, "apiVersion");
	kind = cJSON_GetObjectItemCaseSensitive(root, "kind");
	status = cJSON_GetObjectItemCaseSensitive(root, "status");
	if (!cJSON_IsString(kind) || strcmp(kind->valuestring, "ExecCredential")) {
		arl_error(err, ARL_E_PROTO,
		          "exec plugin '%s' printed JSON that is not an "
		          "ExecCredential",
		          cmd);
		goto out;
	}
	if (!cJSON_IsString(api) || strcmp(api->valuestring, kc->exec->api_version)) {
		arl_error(err, ARL_E_PROTO,
		          "exec plugin '%s' answered apiVersion '%s', but the kubeconfig asks for "
		          "'%s'",
		          cmd, cJSON_IsString(api) ? api->valuestring : "", kc->exec->api_version);
		goto out;
	}
	if (!cJSON_IsObject(status)) {
		arl_error(err, ARL_E_PROTO, "exec plugin '%s': the ExecCredential has no status",
		          cmd);
		goto out;
	}
	tok = cJSON_GetObjectItemCaseSensitive(status, "token");
	cert = cJSON_GetObjectItemCaseSensitive(status, "clientCertificateData");
	key = cJSON_GetObjectItemCaseSensitive(status, "clientKeyData");
	exp = cJSON_GetObjectItemCaseSensitive(status, "expirationTimestamp");
	if ((tok && !cJSON_IsString(tok)) || (cert && !cJSON_IsString(cert)) ||
	    (key && !cJSON_IsString(key)) || (exp && !cJSON_IsString(exp) && !cJSON_IsNull(exp))) {
		arl_error(err, ARL_E_PROTO,
		          "exec plugin '%s': ExecCredential status fields must be strings", cmd);
		goto out;
	}
	if (!(tok && *tok->valuestring) && !(cert && key)) {
		arl_error(err, ARL_E_PROTO,
		          "exec plugin '%s': the ExecCredential has neither status.token nor "
		          "status.clientCertificateData and clientKeyData",
		          cmd);
		goto out;
	}
	if ((cert != NULL) != (key != NULL)) {
		arl_error(err, ARL_E_PROTO,
		          "exec plugin '%s': clientCertificateData and clientKeyData come together",
		          cmd);
		goto out;
	}
	if (cJSON_IsString(exp) && arl_k8s_parse_time(exp->valuestring, &expiry) < 0) {
		arl_error(err, ARL_E_PROTO,
		          "exec plugin '%s': expirationTimestamp '%s' is not an RFC 3339 time", cmd,
		          exp->valuestring);
		goto out;
	}
	arl_kubeconfig_wipe_str(kc->exec_token);
	arl_kubeconfig_wipe_free(kc->exec_cert, kc->exec_cert_len);
	arl_kubeconfig_wipe_free(kc->exec_key, kc->exec_key_len);
	kc->exec_token = tok && *tok->valuestring ? arl_xstrdup(tok->valuestring) : NULL;
	kc->exec_cert = cert ? arl_xstrdup(cert->valuestring) : NULL;
	kc->exec_cert_len = cert ? strlen(cert->valuestring) : 0;
	kc->exec_key = key ? arl_xstrdup(key->valuestring) : NULL;
	kc->exec_key_len = key ? strlen(key->valuestring) : 0;
	kc->exec_expiry_ms = expiry;
	kc->exec_valid = true;
	ret = 0;
out:
	/* The parsed tree holds the token: wipe its strings before freeing. */
	if (root) {
		cJSON *st = cJSON_GetObjectItemCaseSensitive(root, "status"), *it;

		cJSON_ArrayForEach(it, st)
		{
			if (cJSON_IsString(it))
				explicit_bzero(it->valuestring, strlen(it->valuestring));
		}
	}
	cJSON_Delete(root);
	return ret;
}

/* Runs the exec plugin when its credential is missing or about to expire; kc->mu held. */
static int refresh_exec(struct arl_kubeconfig *kc, struct arl_err *err)
{
	struct arl_spawn_opts so = ARL_SPAWN_OPTS_INIT;
	struct arl_spawn_result sr;
	char *info, **envp, line[240];
	const char *cmd = kc->exec->argv[0];
	struct arl_err e2 = ARL_ERR_INIT;
	int ret = -1;

	if (kc->exec_valid &&
	    (!kc->exec_expiry_ms || arl_wall_ms() + KC_EXEC_MARGIN_MS < kc->exec_expiry_ms))
		return 0;
	kc->exec_valid = false;
	info = exec_info(kc);
	envp = exec_env(kc, info);
	memset(&sr, 0, sizeof(sr));
	so.argv = kc->exec->argv;
	so.envp = envp;
	so.deadline_ms = arl_now_ms() + KC_EXEC_TIMEOUT_MS;
	so.capture_max = KC_MAX_FILE;
	if (arl_spawn_run(&so, &sr, &e2) < 0) {
		arl_error(err, ARL_E_BACKEND, "exec plugin: %s%s%s", e2.msg,
		          kc->exec->install_hint ? "; " : "",
		          kc->exec->install_hint ? kc->exec->install_hint : "");
		goto out;
	}
	if (sr.timed_out) {
		arl_error(err, ARL_E_BACKEND, "exec plugin '%s' did not finish within %d s", cmd,
		          KC_EXEC_TIMEOUT_MS / 1000);
		goto out_result;
	}
	if (sr.exit_code != 0) {
		first_line(&sr.err, line, sizeof(line));
		arl_error(err, ARL_E_BACKEND, "exec plugin '%s' exited with %d%s%s", cmd,
		          sr.exit_code, line[0] ? ": " : "", line);
		goto out_result;
	}
	if (sr.out.truncated) {
		arl_error(err, ARL_E_LIMIT, "exec plugin '%s' printed more than %u bytes", cmd,
		          KC_MAX_FILE);
		goto out_result;
	}
	ret = parse_exec_credential(kc, sr.out.data ? sr.out.data : "", sr.out.len, err);
out_result:
	if (sr.out.data)
		explicit_bzero(sr.out.data, sr.out.len);
	arl_spawn_result_release(&sr);
out:
	free(envp);
	free(info);
	return ret;
}

/* Fills copies of the current bearer token and exec client certificate; kc->mu held. */
static int current_creds(struct arl_kubeconfig *kc, char **token, char **cert, size_t *cert_len,
                         char **key, size_t *key_len, struct arl_err *err)
{
	*token = *cert = *key = NULL;
	*cert_len = *key_len = 0;
	if (kc->exec) {
		if (refresh_exec(kc, err) < 0)
			return -1;
		if (kc->exec_token)
			*token = arl_xstrdup(kc->exec_token);
		if (kc->exec_cert) {
			*cert = arl_xstrndup(kc->exec_cert, kc->exec_cert_len);
			*cert_len = kc->exec_cert_len;
			*key = arl_xstrndup(kc->exec_key, kc->exec_key_len);
			*key_len = kc->exec_key_len;
		}
		if (*token || *cert)
			return 0;
	}
	if (kc->token) {
		*token = arl_xstrdup(kc->token);
	} else if (kc->token_file) {
		if (refresh_token_file(kc, err) < 0)
			return -1;
		*token = arl_xstrdup(kc->file_token);
	}
	return 0;
}

/*
 * Copies of the credentials are taken under the lock and wiped after use, so a concurrent
 * refresh never frees a token a request is still copying into its header.
 */
int arl_kubeconfig_curl_auth(struct arl_kubeconfig *kc, void *curl, void *headers,
                             struct arl_err *err)
{
	struct curl_slist **hdrs = headers;
	char *token = NULL, *cert = NULL, *key = NULL;
	size_t cert_len = 0, key_len = 0;
	int ret;

	pthread_mutex_lock(&kc->mu);
	ret = current_creds(kc, &token, &cert, &cert_len, &key, &key_len, err);
	pthread_mutex_unlock(&kc->mu);
	if (ret < 0)
		return -1;
	if (token) {
		char *h = arl_xasprintf("Authorization: Bearer %s", token);

		*hdrs = curl_slist_append(*hdrs, h);
		arl_kubeconfig_wipe_str(h);
	}
	if (kc->impersonate_user) {
		char *h = arl_xasprintf("Impersonate-User: %s", kc->impersonate_user);

		*hdrs = curl_slist_append(*hdrs, h);
		free(h);
		for (size_t i = 0; i < kc->nimpersonate_groups; i++) {
			h = arl_xasprintf("Impersonate-Group: %s", kc->impersonate_groups[i]);
			*hdrs = curl_slist_append(*hdrs, h);
			free(h);
		}
	}
	if (cert) {
		struct curl_blob c = {cert, cert_len, CURL_BLOB_COPY};
		struct curl_blob k = {key, key_len, CURL_BLOB_COPY};

		curl_easy_setopt(curl, CURLOPT_SSLCERT_BLOB, &c);
		curl_easy_setopt(curl, CURLOPT_SSLKEY_BLOB, &k);
	}
	arl_kubeconfig_wipe_str(token);
	arl_kubeconfig_wipe_free(cert, cert_len);
	arl_kubeconfig_wipe_free(key, key_len);
	return 0;
}

/*
 * After a 401 the token file is re-read at once even if stat() saw no change (a same-second,
 * same-size rewrite), and an exec credential is fetched again, as client-go does.
 */
bool arl_kubeconfig_invalidate(struct arl_kubeconfig *kc)
{
	bool any = false;

	pthread_mutex_lock(&kc->mu);
	if (kc->exec && kc->exec_valid) {
		kc->exec_valid = false;
		any = true;
	}
	if (kc->token_file && !kc->token && kc->file_token) {
		kc->file_checked_ms = 0;
		kc->file_size = -1; /* forces a re-read */
		any = true;
	}
	pthread_mutex_unlock(&kc->mu);
	return any;
}

int arl_kubeconfig_token_for_test(struct arl_kubeconfig *kc, char **out, struct arl_err *err)
{
	char *cert, *key;
	size_t cl, kl;
	int ret;

	pthread_mutex_lock(&kc->mu);
	ret = current_creds(kc, out, &cert, &cl, &key, &kl, err);
	pthread_mutex_unlock(&kc->mu);
	arl_kubeconfig_wipe_free(cert, cl);
	arl_kubeconfig_wipe_free(key, kl);
	return ret;
}
