/*
 * Unit tests for kubeconfig.c: finding the configuration (--kubeconfig, $KUBECONFIG merged
 * first-wins, ~/.kube/config, in-cluster), contexts and namespaces, relative paths, *-data
 * fields, token files that rotate, exec credential plugins with their cache, and error
 * messages that name what is wrong without ever quoting a credential.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "k8s/k8s_creds.h"
#include "k8s/kubeconfig.h"
#include "util.h"
#include "banned.h"

#define FX FIXTURES_DIR "/unit/fixtures/kubeconfig"

static char tmpdir[256];

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/arl-kc-test.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	unsetenv("KUBECONFIG");
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
	setenv("HOME", tmpdir, 1); /* no ~/.kube/config unless a test writes one */
	return 0;
}

static int teardown(void **state)
{
	char *cmd = arl_xasprintf("rm -rf '%s'", tmpdir);

	(void)state;
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
	free(cmd);
	return 0;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

static char *tmp_path(const char *name)
{
	return arl_xasprintf("%s/%s", tmpdir, name);
}

static struct arl_kubeconfig *load_ok(const char *path, const char *context)
{
	struct arl_kubeconfig_opts o = ARL_KUBECONFIG_OPTS_INIT;
	struct arl_kubeconfig *kc = NULL;
	struct arl_err err = ARL_ERR_INIT;

	o.path = path;
	o.context = context;
	if (arl_kubeconfig_load(&kc, &o, &err) < 0)
		fail_msg("load %s: %s", path ? path : "(default)", err.msg);
	return kc;
}

/* Loads expecting failure; returns the message (static) and checks *out stayed NULL. */
static const char *load_err(const char *path, const char *context, const char *sa_dir)
{
	static struct arl_err err;
	struct arl_kubeconfig_opts o = ARL_KUBECONFIG_OPTS_INIT;
	struct arl_kubeconfig *kc = NULL;

	memset(&err, 0, sizeof(err));
	o.path = path;
	o.context = context;
	o.sa_dir = sa_dir;
	assert_int_equal(arl_kubeconfig_load(&kc, &o, &err), -1);
	assert_null(kc);
	assert_int_not_equal(err.code, ARL_E_OK);
	assert_null(strstr(err.msg, "SECRET"));
	return err.msg;
}

static char *token_of(struct arl_kubeconfig *kc)
{
	struct arl_err err = ARL_ERR_INIT;
	char *tok = NULL;

	if (arl_kubeconfig_token_for_test(kc, &tok, &err) < 0)
		fail_msg("token: %s", err.msg);
	return tok;
}

static void test_basic_context(void **state)
{
	struct arl_kubeconfig *kc = load_ok(FX "/basic.yaml", NULL);
	struct arl_kubeconfig_info i;
	char *tok;

	(void)state;
	arl_kubeconfig_describe(kc, &i);
	assert_string_equal(i.context, "dev");
	assert_string_equal(i.cluster, "dev-cluster");
	assert_string_equal(i.user, "alice");
	assert_string_equal(i.server, "https://dev.example.test:6443"); /* trailing '/' dropped */
	assert_string_equal(i.namespace, "team-a");
	assert_true(i.namespace_set);
	assert_string_equal(i.ca_file, FX "/certs/ca.crt");
	assert_string_equal(i.tls_server_name, "api.dev.example.test");
	assert_false(i.insecure);
	assert_string_equal(i.auth, "token");
	assert_string_equal(i.source, FX "/basic.yaml");
	/* tls-server-name: the URL names it, CONNECT_TO sends it to the real server. */
	assert_string_equal(arl_kubeconfig_base_url(kc), "https://api.dev.example.test:6443");
	tok = token_of(kc);
	assert_string_equal(tok, "SECRET-alice-token");
	free(tok);
	arl_kubeconfig_free(kc);
}

static void test_context_flag(void **state)
{
	struct arl_kubeconfig *kc = load_ok(FX "/basic.yaml", "prod");
	struct arl_kubeconfig_info i;
	char *tok;

	(void)state;
	arl_kubeconfig_describe(kc, &i);
	assert_string_equal(i.context, "prod");
	assert_string_equal(i.server, "https://10.0.0.1");
	assert_string_equal(i.namespace, "default");
	assert_false(i.namespace_set);
	assert_true(i.insecure);
	assert_string_equal(i.proxy_url, "http://proxy.example.test:3128");
	assert_string_equal(i.cert_file, FX "/certs/bob.crt");
	assert_string_equal(i.key_file, "/abs/bob.key");
	assert_string_equal(i.auth, "client-cert");
	assert_string_equal(arl_kubeconfig_base_url(kc), "https://10.0.0.1");
	tok = token_of(kc);
	assert_null(tok);
	arl_kubeconfig_free(kc);
}

static void test_unknown_context(void **state)
{
	const char *msg = load_err(FX "/basic.yaml", "staging", NULL);

	(void)state;
	assert_non_null(strstr(msg, "context 'staging' not found"));
	assert_non_null(strstr(msg, "'dev', 'prod'"));
}

static void test_merge_first_wins(void **state)
{
	struct arl_kubeconfig *kc;
	struct arl_kubeconfig_info i;
	char *tok;

	(void)state;
	setenv("KUBECONFIG", FX "/merge-a.yaml:" FX "/missing.yaml::" FX "/merge-b.yaml", 1);
	kc = load_ok(NULL, NULL);
	arl_kubeconfig_describe(kc, &i);
	assert_string_equal(i.source, FX "/merge-a.yaml:" FX "/merge-b.yaml");
	assert_string_equal(i.context, "shared"); /* merge-a.yaml set current-context first */
	assert_string_equal(i.server, "https://a.example.test");
	assert_string_equal(i.namespace, "ns-a");
	tok = token_of(kc);
	assert_string_equal(tok, "SECRET-token-a");
	free(tok);
	arl_kubeconfig_free(kc);

	/* A context only the second file defines, with a user from there too. */
	kc = load_ok(NULL, "b-only");
	arl_kubeconfig_describe(kc, &i);
	assert_string_equal(i.server, "https://b.example.test");
	assert_string_equal(i.user, "u2");
	assert_string_equal(i.auth, "tokenFile");
	assert_string_equal(i.token_file, FX "/token.txt"); /* relative to merge-b.yaml */
	tok = token_of(kc);
	assert_string_equal(tok, "SECRET-file-token");
	free(tok);
	arl_kubeconfig_free(kc);

	/* The other order: merge-b.yaml's current-context and entries win. */
	setenv("KUBECONFIG", FX "/merge-b.yaml:" FX "/merge-a.yaml", 1);
	kc = load_ok(NULL, "shared");
	arl_kubeconfig_describe(kc, &i);
	assert_string_equal(i.server, "https://b.example.test");
	assert_string_equal(i.namespace, "loses");
	arl_kubeconfig_free(kc);
	kc = load_ok(NULL, NULL);
	arl_kubeconfig_describe(kc, &i);
	assert_string_equal(i.context, "b-only");
	arl_kubeconfig_free(kc);
	unsetenv("KUBECONFIG");
}

static void test_explicit_beats_env_and_home(void **state)
{
	char *dir = tmp_path(".kube"), *home_cfg = tmp_path(".kube/config");
	struct arl_kubeconfig *kc;
	struct arl_kubeconfig_info i;
	char buf[4096];
	FILE *f = fopen(FX "/merge-a.yaml", "r");
	size_t n;

	(void)state;
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	mkdir(dir, 0700);
	write_file(home_cfg, buf, 0600);
	/* ~/.kube/config when nothing else is set. */
	kc = load_ok(NULL, NULL);
	arl_kubeconfig_describe(kc, &i);
	assert_string_equal(i.source, home_cfg);
	arl_kubeconfig_free(kc);
	/* $KUBECONFIG over ~/.kube/config, --kubeconfig over both. */
	setenv("KUBECONFIG", FX "/merge-b.yaml", 1);
	kc = load_ok(NULL, NULL);
	arl_kubeconfig_describe(kc, &i);
	assert_string_equal(i.source, FX "/merge-b.yaml");
	arl_kubeconfig_free(kc);
	kc = load_ok(FX "/basic.yaml", NULL);
	arl_kubeconfig_describe(kc, &i);
	assert_string_equal(i.source, FX "/basic.yaml");
	arl_kubeconfig_free(kc);
	unsetenv("KUBECONFIG");
	unlink(home_cfg);
	free(home_cfg);
	free(dir);
}

static void test_data_fields(void **state)
{
	struct arl_kubeconfig *kc = load_ok(FX "/data.yaml", NULL);
	struct arl_kubeconfig_info i;

	(void)state;
	arl_kubeconfig_describe(kc, &i);
	assert_true(i.ca_data);
	assert_null(i.ca_file);
	assert_true(i.cert_data);
	assert_true(i.key_data);
	assert_string_equal(i.auth, "client-cert");
	assert_string_equal(i.namespace, "data-ns");
	arl_kubeconfig_free(kc);
}

static void test_errors(void **state)
{
	const char *msg;

	(void)state;
	msg = load_err(FX "/bad-base64.yaml", NULL, NULL);
	assert_non_null(strstr(msg, "bad-base64.yaml:6:"));
	assert_non_null(strstr(msg, "'certificate-authority-data' is not valid base64"));
	assert_null(strstr(msg, "not base64!"));
	msg = load_err(FX "/bad-syntax.yaml", NULL, NULL);
	assert_non_null(strstr(msg, "bad-syntax.yaml:"));
	assert_non_null(strstr(msg, "YAML syntax error"));
	msg = load_err(FX "/missing-user.yaml", NULL, NULL);
	assert_non_null(strstr(msg, "uses user 'nobody'"));
	assert_non_null(strstr(msg, "users: 'someone'"));
	msg = load_err(FX "/insecure-ca.yaml", NULL, NULL);
	assert_non_null(strstr(msg, "insecure-skip-tls-verify"));
	msg = load_err(FX "/no-current.yaml", NULL, NULL);
	assert_non_null(strstr(msg, "no current-context"));
	assert_non_null(strstr(msg, "'one', 'two'"));
	msg = load_err(FX "/auth-provider.yaml", NULL, NULL);
	assert_non_null(strstr(msg, "auth-provider"));
	msg = load_err(FX "/does-not-exist.yaml", NULL, NULL);
	assert_non_null(strstr(msg, "cannot open"));
	/* Nothing anywhere and not in a pod. */
	msg = load_err(NULL, NULL, NULL);
	assert_non_null(strstr(msg, "no Kubernetes configuration"));
}

static void test_token_file_rotation(void **state)
{
	char *tokpath = tmp_path("tok"), *cfg = tmp_path("kc.yaml");
	char *text = arl_xasprintf("apiVersion: v1\nkind: Config\ncurrent-context: c\n"
	                           "clusters: [{name: c, cluster: {server: 'https://x.test'}}]\n"
	                           "users: [{name: u, user: {tokenFile: tok}}]\n"
	                           "contexts: [{name: c, context: {cluster: c, user: u}}]\n");
	struct arl_kubeconfig *kc;
	struct arl_err err = ARL_ERR_INIT;
	char *tok = NULL;

	(void)state;
	write_file(cfg, text, 0600);
	write_file(tokpath, "SECRET-one\n", 0600);
	kc = load_ok(cfg, NULL);
	tok = token_of(kc);
	assert_string_equal(tok, "SECRET-one");
	free(tok);
	/* Rotation the kubelet way: a new file renamed over the old one. */
	{
		char *next = tmp_path("tok.new");

		write_file(next, "SECRET-two-longer\n", 0600);
		assert_int_equal(rename(next, tokpath), 0);
		free(next);
	}
	/* Within a second the cached token stands; a 401 (invalidate) re-reads at once. */
	assert_true(arl_kubeconfig_invalidate(kc));
	tok = token_of(kc);
	assert_string_equal(tok, "SECRET-two-longer");
	free(tok);
	/* A vanished file keeps the last good token (mid-rotation), never an error. */
	unlink(tokpath);
	assert_true(arl_kubeconfig_invalidate(kc));
	assert_int_equal(arl_kubeconfig_token_for_test(kc, &tok, &err), 0);
	assert_string_equal(tok, "SECRET-two-longer");
	free(tok);
	arl_kubeconfig_free(kc);
	/* ... but a missing file at the first use is an error naming the file. */
	kc = load_ok(cfg, NULL);
	assert_int_equal(arl_kubeconfig_token_for_test(kc, &tok, &err), -1);
	assert_non_null(strstr(err.msg, "token file"));
	arl_kubeconfig_free(kc);
	free(text);
	free(cfg);
	free(tokpath);
}

/* A plugin script that counts its runs and records KUBERNETES_EXEC_INFO. */
static char *write_plugin(const char *api, const char *expiry)
{
	char *plugin = tmp_path("plugin.sh");
	char *script = arl_xasprintf(
	    "#!/bin/sh\n"
	    "echo run >> \"$COUNT_FILE\"\n"
	    "printf '%%s' \"$KUBERNETES_EXEC_INFO\" > \"$INFO_FILE\"\n"
	    "if [ \"$1\" = fail ]; then echo 'plugin: login required' >&2; exit 3; fi\n"
	    "printf '{\"apiVersion\":\"%s\",\"kind\":\"ExecCredential\","
	    "\"status\":{\"token\":\"SECRET-exec-%%s\",\"expirationTimestamp\":\"%s\"}}\\n' "
	    "\"$1\"\n",
	    api, expiry);

	write_file(plugin, script, 0700);
	free(script);
	return plugin;
}

static char *write_exec_config(const char *api, const char *arg, bool cluster_info)
{
	char *cfg = tmp_path("exec.yaml");
	char *text = arl_xasprintf("apiVersion: v1\nkind: Config\ncurrent-context: c\n"
	                           "clusters: [{name: c, cluster: {server: 'https://x.test:6443', "
	                           "certificate-authority-data: Q0EgUEVN}}]\n"
	                           "users:\n- name: u\n  user:\n    exec:\n      apiVersion: %s\n"
	                           "      command: ./plugin.sh\n      args: [%s]\n"
	                           "      provideClusterInfo: %s\n      interactiveMode: Never\n"
	                           "      env:\n      - {name: COUNT_FILE, value: %s/count}\n"
	                           "      - {name: INFO_FILE, value: %s/info}\n"
	                           "contexts: [{name: c, context: {cluster: c, user: u}}]\n",
	                           api, arg, cluster_info ? "true" : "false", tmpdir, tmpdir);

	write_file(cfg, text, 0600);
	free(text);
	return cfg;
}

static int count_runs(void)
{
	char *path = tmp_path("count"), line[16];
	FILE *f = fopen(path, "r");
	int n = 0;

	free(path);
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		n++;
	fclose(f);
	return n;
}

static char *read_info(void)
{
	char *path = tmp_path("info"), buf[4096];
	FILE *f = fopen(path, "r");
	size_t n;

	free(path);
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return arl_xstrdup(buf);
}

static void test_exec_plugin_cached(void **state)
{
	const char *api = "client.authentication.k8s.io/v1";
	char *plugin = write_plugin(api, "2099-01-01T00:00:00Z");
	char *cfg = write_exec_config(api, "alpha", true);
	struct arl_kubeconfig *kc = load_ok(cfg, NULL);
	struct arl_kubeconfig_info i;
	char *tok, *info;

	(void)state;
	arl_kubeconfig_describe(kc, &i);
	assert_string_equal(i.auth, "exec");
	assert_string_equal(i.exec_command, plugin); /* "./plugin.sh" is relative to the file */
	tok = token_of(kc);
	assert_string_equal(tok, "SECRET-exec-alpha");
	free(tok);
	tok = token_of(kc);
	assert_string_equal(tok, "SECRET-exec-alpha");
	free(tok);
	assert_int_equal(count_runs(), 1); /* cached until its expirationTimestamp */
	info = read_info();
	assert_non_null(strstr(info, "\"kind\":\"ExecCredential\""));
	assert_non_null(strstr(info, "\"apiVersion\":\"client.authentication.k8s.io/v1\""));
	assert_non_null(strstr(info, "\"interactive\":false"));
	assert_non_null(strstr(info, "\"server\":\"https://x.test:6443\""));
	assert_non_null(strstr(info, "\"certificate-authority-data\":\"Q0EgUEVN\""));
	free(info);
	/* A 401 forgets the credential: the plugin runs again. */
	assert_true(arl_kubeconfig_invalidate(kc));
	tok = token_of(kc);
	free(tok);
	assert_int_equal(count_runs(), 2);
	arl_kubeconfig_free(kc);
	free(cfg);
	free(plugin);
}

static void test_exec_plugin_expired(void **state)
{
	const char *api = "client.authentication.k8s.io/v1beta1";
	char *plugin = write_plugin(api, "2001-01-01T00:00:00Z");
	char *cfg = write_exec_config(api, "beta", false);
	struct arl_kubeconfig *kc = load_ok(cfg, NULL);
	char *tok, *info;

	(void)state;
	tok = token_of(kc);
	assert_string_equal(tok, "SECRET-exec-beta");
	free(tok);
	tok = token_of(kc);
	free(tok);
	assert_int_equal(count_runs(), 2); /* already expired: fetched for every use */
	info = read_info();
	assert_null(strstr(info, "\"cluster\"")); /* provideClusterInfo: false */
	free(info);
	arl_kubeconfig_free(kc);
	free(cfg);
	free(plugin);
}

static void test_exec_plugin_errors(void **state)
{
	const char *api = "client.authentication.k8s.io/v1";
	char *plugin = write_plugin(api, "2099-01-01T00:00:00Z"), *cfg;
	struct arl_kubeconfig *kc;
	struct arl_err err = ARL_ERR_INIT;
	char *tok = NULL;

	(void)state;
	/* The plugin fails: its stderr explains, its exit code is reported. */
	cfg = write_exec_config(api, "fail", false);
	kc = load_ok(cfg, NULL);
	assert_int_equal(arl_kubeconfig_token_for_test(kc, &tok, &err), -1);
	assert_non_null(strstr(err.msg, "exited with 3: plugin: login required"));
	arl_kubeconfig_free(kc);
	free(cfg);
	/* The plugin answers another apiVersion than the kubeconfig asks for. */
	free(plugin);
	plugin = write_plugin("client.authentication.k8s.io/v1beta1", "2099-01-01T00:00:00Z");
	cfg = write_exec_config(api, "x", false);
	kc = load_ok(cfg, NULL);
	memset(&err, 0, sizeof(err));
	assert_int_equal(arl_kubeconfig_token_for_test(kc, &tok, &err), -1);
	assert_non_null(strstr(err.msg, "answered apiVersion"));
	assert_null(strstr(err.msg, "SECRET"));
	arl_kubeconfig_free(kc);
	free(cfg);
	/* An apiVersion arl-batch does not speak is refused when loading. */
	cfg = write_exec_config("client.authentication.k8s.io/v1alpha1", "x", false);
	assert_non_null(strstr(load_err(cfg, NULL, NULL), "is not supported"));
	free(cfg);
	free(plugin);
}

static void test_in_cluster(void **state)
{
	char *sa = tmp_path("sa"), *p;
	struct arl_kubeconfig_opts o = ARL_KUBECONFIG_OPTS_INIT;
	struct arl_kubeconfig *kc = NULL;
	struct arl_kubeconfig_info i;
	struct arl_err err = ARL_ERR_INIT;
	char *tok;

	(void)state;
	mkdir(sa, 0700);
	p = arl_xasprintf("%s/token", sa);
	write_file(p, "SECRET-sa-token", 0600);
	free(p);
	p = arl_xasprintf("%s/ca.crt", sa);
	write_file(p, "CA", 0600);
	free(p);
	p = arl_xasprintf("%s/namespace", sa);
	write_file(p, "batch-ns\n", 0600);
	free(p);
	/* Without the service env vars there is no in-cluster configuration. */
	assert_non_null(strstr(load_err(NULL, NULL, sa), "no Kubernetes configuration"));
	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	o.sa_dir = sa;
	assert_int_equal(arl_kubeconfig_load(&kc, &o, &err), 0);
	arl_kubeconfig_describe(kc, &i);
	assert_string_equal(i.source, "in-cluster");
	assert_string_equal(i.server, "https://10.96.0.1:443");
	assert_string_equal(i.namespace, "batch-ns");
	assert_true(i.namespace_set);
	assert_string_equal(i.auth, "tokenFile");
	p = arl_xasprintf("%s/ca.crt", sa);
	assert_string_equal(i.ca_file, p);
	free(p);
	tok = token_of(kc);
	assert_string_equal(tok, "SECRET-sa-token");
	free(tok);
	arl_kubeconfig_free(kc);
	/* IPv6 service hosts get brackets. */
	setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
	kc = NULL;
	assert_int_equal(arl_kubeconfig_load(&kc, &o, &err), 0);
	arl_kubeconfig_describe(kc, &i);
	assert_string_equal(i.server, "https://[fd00::1]:443");
	arl_kubeconfig_free(kc);
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
	free(sa);
}

/* Userinfo in server: or proxy-url: is a credential: redacted wherever the URL is shown. */
static void test_server_userinfo_redacted(void **state)
{
	struct arl_kubeconfig_info i;
	struct arl_kubeconfig *kc;
	char *path = tmp_path("userinfo.yaml");
	const char *msg;

	(void)state;
	write_file(path,
	           "apiVersion: v1\nkind: Config\ncurrent-context: a\n"
	           "clusters:\n"
	           "  - {name: a, cluster: {server: 'https://alice:SECRET%40pw@10.0.0.1:6443/p/', "
	           "proxy-url: 'http://carol:SECRET@proxy.test:3128'}}\n"
	           "  - {name: t, cluster: {server: 'https://alice:SECRET@pw@10.0.0.1:6443', "
	           "tls-server-name: api.test}}\n"
	           "  - {name: bad, cluster: {server: 'ftp://bob:SECRET@ftp.test'}}\n"
	           "users: [{name: u, user: {}}]\n"
	           "contexts:\n"
	           "  - {name: a, context: {cluster: a, user: u}}\n"
	           "  - {name: t, context: {cluster: t, user: u}}\n"
	           "  - {name: bad, context: {cluster: bad, user: u}}\n",
	           0600);
	kc = load_ok(path, "a");
	arl_kubeconfig_describe(kc, &i);
	assert_string_equal(i.server, "https://REDACTED@10.0.0.1:6443/p");
	assert_string_equal(arl_kubeconfig_server_shown(kc), "https://REDACTED@10.0.0.1:6443/p");
	assert_string_equal(i.proxy_url, "http://REDACTED@proxy.test:3128");
	/* Requests still carry it (curl sends it as basic auth, as kubectl's client does). */
	assert_string_equal(arl_kubeconfig_base_url(kc),
	                    "https://alice:SECRET%40pw@10.0.0.1:6443/p");
	arl_kubeconfig_free(kc);
	/* The last '@' ends the userinfo; tls-server-name replaces the host, not the userinfo. */
	kc = load_ok(path, "t");
	arl_kubeconfig_describe(kc, &i);
	assert_string_equal(i.server, "https://REDACTED@10.0.0.1:6443");
	assert_string_equal(arl_kubeconfig_base_url(kc), "https://alice:SECRET@pw@api.test:6443");
	arl_kubeconfig_free(kc);
	msg = load_err(path, "bad", NULL); /* checks that SECRET is not in it */
	assert_non_null(strstr(msg, "server 'ftp://REDACTED@ftp.test' must start with https://"));
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_basic_context, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_context_flag, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_context, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_merge_first_wins, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_explicit_beats_env_and_home, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_data_fields, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_token_file_rotation, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_exec_plugin_cached, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_exec_plugin_expired, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_exec_plugin_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_in_cluster, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_server_userinfo_redacted, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
