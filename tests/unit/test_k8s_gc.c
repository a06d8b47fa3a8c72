/*
 * Unit tests for k8s_gc.c's owner identity and judgement: this process is alive, a reaped or
 * zombie pid is dead, a reused pid (other start time) and a reboot (other boot id) are dead,
 * other hosts are not judged unless given up, and incomplete labels are never judged; on this
 * host the verdict is arl_owner_gone()'s, the rule local sandboxes and runs are judged by;
 * and against a one-thread fake API server, that a sweep's expected refusals (403 at the
 * cluster scope, 404 for an orphan gone already) never erase an error its caller already had.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "k8s/k8s_client.h"
#include "k8s/k8s_gc.h"
#include "k8s/kubeconfig.h"
#include "util.h"
#include "banned.h"

/* The labels an object of @o would carry, plus the run and managed-by ones. */
static cJSON *labels_of(const struct arl_k8s_owner *o)
{
	cJSON *l = cJSON_CreateObject();

	cJSON_AddStringToObject(l, ARL_K8S_GC_RUN_LABEL, "7-abcdefgh");
	cJSON_AddStringToObject(l, ARL_K8S_GC_MANAGED_LABEL, "arl-batch");
	arl_k8s_gc_add_labels(l, o);
	return l;
}

static void set_label(cJSON *l, const char *key, const char *value)
{
	cJSON_DeleteItemFromObjectCaseSensitive(l, key);
	if (value)
		cJSON_AddStringToObject(l, key, value);
}

static const char *judge_with(const struct arl_k8s_owner *me, const char *key, const char *value,
                              const char *gone_host)
{
	static char why[128];
	cJSON *l = labels_of(me);
	const char *w;

	if (key)
		set_label(l, key, value);
	w = arl_k8s_gc_judge(l, me, gone_host, true);
	snprintf(why, sizeof(why), "%s", w ? w : "");
	cJSON_Delete(l);
	return w ? why : NULL;
}

static void test_self(void **state)
{
	struct arl_k8s_owner me;
	char pid[16];
	cJSON *l;

	(void)state;
	arl_k8s_gc_self(&me);
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	assert_true(me.host[0] != '\0');
	assert_string_equal(me.pid, pid);
	assert_true(me.start[0] != '\0'); /* Linux: /proc/self/stat */
	assert_int_equal(strlen(me.boot), 36);
	l = labels_of(&me);
	assert_string_equal(cJSON_GetObjectItem(l, ARL_K8S_GC_PID_LABEL)->valuestring, pid);
	assert_string_equal(cJSON_GetObjectItem(l, ARL_K8S_GC_START_LABEL)->valuestring, me.start);
	assert_string_equal(cJSON_GetObjectItem(l, ARL_K8S_GC_BOOT_LABEL)->valuestring, me.boot);
	cJSON_Delete(l);
	/* Unknown parts are not labelled (an object judged by its pid alone). */
	me.start[0] = me.boot[0] = '\0';
	l = labels_of(&me);
	assert_null(cJSON_GetObjectItem(l, ARL_K8S_GC_START_LABEL));
	assert_null(cJSON_GetObjectItem(l, ARL_K8S_GC_BOOT_LABEL));
	cJSON_Delete(l);
}

static void test_alive_and_reused(void **state)
{
	struct arl_k8s_owner me;

	(void)state;
	arl_k8s_gc_self(&me);
	assert_null(judge_with(&me, NULL, NULL, NULL));
	assert_string_equal(judge_with(&me, ARL_K8S_GC_START_LABEL, "1", NULL),
	                    "its pid is another process now");
	assert_string_equal(
	    judge_with(&me, ARL_K8S_GC_BOOT_LABEL, "00000000-0000-4000-8000-000000000000", NULL),
	    "the host rebooted since");
	{
		/* The unasked sweep at run start does not take another boot for a reboot. */
		cJSON *l = labels_of(&me);

		set_label(l, ARL_K8S_GC_BOOT_LABEL, "00000000-0000-4000-8000-000000000000");
		assert_null(arl_k8s_gc_judge(l, &me, NULL, false));
		cJSON_Delete(l);
	}
	/* Made before owner-start/owner-boot existed: the pid alone says alive. */
	assert_null(judge_with(&me, ARL_K8S_GC_START_LABEL, NULL, NULL));
	/* Another PID namespace (a container of the same name): not ours to judge, even with a
	 * start time that is not our pid's. */
	assert_true(me.pidns[0] != '\0');
	{
		cJSON *l = labels_of(&me);

		set_label(l, ARL_K8S_GC_START_LABEL, "1");
		set_label(l, ARL_K8S_GC_PIDNS_LABEL, "1");
		assert_null(arl_k8s_gc_judge(l, &me, NULL, true));
		cJSON_Delete(l);
	}
}

static void test_dead_pids(void **state)
{
	struct arl_k8s_owner me;
	char pid[16];
	siginfo_t info;
	pid_t child;
	int status;

	(void)state;
	arl_k8s_gc_self(&me);
	/* A zombie: exited, not reaped yet. */
	child = fork();
	assert_true(child >= 0);
	if (child == 0)
		_exit(0);
	snprintf(pid, sizeof(pid), "%ld", (long)child);
	assert_int_equal(waitid(P_PID, (id_t)child, &info, WEXITED | WNOWAIT), 0);
	assert_string_equal(judge_with(&me, ARL_K8S_GC_PID_LABEL, pid, NULL), "exited");
	assert_int_equal(waitpid(child, &status, 0), child);
	/* Reaped: no such process (a pid is not reused this soon). */
	assert_string_equal(judge_with(&me, ARL_K8S_GC_PID_LABEL, pid, NULL), "not running");
	assert_string_equal(judge_with(&me, ARL_K8S_GC_PID_LABEL, "2147483646", NULL),
	                    "not running");
}

static void test_hosts_and_labels(void **state)
{
	struct arl_k8s_owner me, other;

	(void)state;
	arl_k8s_gc_self(&me);
	other = me;
	snprintf(other.host, sizeof(other.host), "elsewhere");
	snprintf(other.pid, sizeof(other.pid), "2147483646");
	{
		cJSON *l = labels_of(&other);

		/* Another host: not ours to judge, unless given up (then whatever its pids say). */
		assert_null(arl_k8s_gc_judge(l, &me, NULL, true));
		assert_null(arl_k8s_gc_judge(l, &me, "somewhere-else", true));
		assert_string_equal(arl_k8s_gc_judge(l, &me, "elsewhere", true),
		                    "its host was given up as gone");
		cJSON_Delete(l);
	}
	/* Naming this host is the default: its runners are checked, this one is alive. */
	assert_null(judge_with(&me, NULL, NULL, me.host));
	/* Incomplete or foreign labels: never judged, even on a host given up. */
	assert_null(judge_with(&other, ARL_K8S_GC_RUN_LABEL, NULL, "elsewhere"));
	assert_null(judge_with(&other, ARL_K8S_GC_RUN_LABEL, "", "elsewhere"));
	assert_null(judge_with(&other, ARL_K8S_GC_PID_LABEL, NULL, "elsewhere"));
	assert_null(judge_with(&other, ARL_K8S_GC_PID_LABEL, "12x", "elsewhere"));
	assert_null(judge_with(&other, ARL_K8S_GC_PID_LABEL, "0", "elsewhere"));
	assert_null(judge_with(&other, ARL_K8S_GC_MANAGED_LABEL, NULL, "elsewhere"));
	assert_null(judge_with(&other, ARL_K8S_GC_MANAGED_LABEL, "helm", "elsewhere"));
	assert_null(judge_with(&other, ARL_K8S_GC_HOST_LABEL, NULL, "elsewhere"));
	assert_null(arl_k8s_gc_judge(NULL, &me, "elsewhere", true));
}

/* The judge of this host's objects is arl_owner_gone(): one rule for pods, sandboxes and runs. */
static void test_same_rule_as_local(void **state)
{
	static const struct {
		const char *key, *value;
	} cases[] = {
	    {NULL, NULL},
	    {ARL_K8S_GC_START_LABEL, "1"},
	    {ARL_K8S_GC_START_LABEL, "not-a-number"}, /* unknown: kept, never taken as reused */
	    {ARL_K8S_GC_BOOT_LABEL, "00000000-0000-4000-8000-000000000000"},
	    {ARL_K8S_GC_BOOT_LABEL, NULL}, /* filled below: a short form of this boot id */
	    {ARL_K8S_GC_PIDNS_LABEL, "1"}, /* another PID namespace: never judged */
	    {ARL_K8S_GC_PID_LABEL, "2147483646"},
	};
	struct arl_k8s_owner me;
	struct arl_owner self;
	char short_boot[9];

	(void)state;
	arl_k8s_gc_self(&me);
	arl_owner_self(&self);
	memcpy(short_boot, me.boot, sizeof(short_boot) - 1);
	short_boot[sizeof(short_boot) - 1] = '\0';
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *value = cases[i].key && !cases[i].value ? short_boot : cases[i].value;
		struct arl_owner o = self;
		const char *local, *k8s;
		char *end;

		if (cases[i].key && !strcmp(cases[i].key, ARL_K8S_GC_START_LABEL)) {
			o.start = strtoull(value, &end, 10);
			if (*end)
				o.start = 0;
		} else if (cases[i].key && !strcmp(cases[i].key, ARL_K8S_GC_BOOT_LABEL)) {
			snprintf(o.boot, sizeof(o.boot), "%s", value);
		} else if (cases[i].key && !strcmp(cases[i].key, ARL_K8S_GC_PIDNS_LABEL)) {
			snprintf(o.pidns, sizeof(o.pidns), "%s", value);
		} else if (cases[i].key) {
			o.pid = strtol(value, NULL, 10);
		}
		local = arl_owner_gone(&o, &self);
		k8s = judge_with(&me, cases[i].key, value, NULL);
		if (!local || !k8s)
			assert_ptr_equal(local, k8s);
		else
			assert_string_equal(local, k8s);
	}
}

/* --- a sweep against a fake API server ------------------------------------------------- */

/*
 * The fake server: one connection at a time, one request each ("Connection: close"). Lists
 * at the cluster scope are forbidden (403); namespace ns1 holds @task_items Tasks and no
 * Sandboxes; every DELETE answers 404 (gone already).
 */
struct fake_api {
	int fd;
	int port;
	pthread_t thread;
	const char *task_items; /* JSON array text */
	int deletes;            /* DELETEs answered */
};

static void fake_reply(int fd, int code, const char *body)
{
	char head[256];
	int n = snprintf(head, sizeof(head),
	                 "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu"
	                 "\r\nConnection: close\r\n\r\n",
	                 code, strlen(body));

	assert_true(write(fd, head, (size_t)n) == n);
	assert_true(write(fd, body, strlen(body)) == (ssize_t)strlen(body));
}

static void *fake_api_main(void *arg)
{
	struct fake_api *f = arg;
	int c;

	while ((c = accept(f->fd, NULL, NULL)) >= 0) {
		char req[8192], body[4096];
		size_t len = 0;
		ssize_t n;

		/* The head is enough: no request of a sweep needs its body read back. */
		while (len + 1 < sizeof(req) &&
		       (n = read(c, req + len, sizeof(req) - 1 - len)) > 0) {
			len += (size_t)n;
			req[len] = '\0';
			if (strstr(req, "\r\n\r\n"))
				break;
		}
		req[len] = '\0';
		if (!strncmp(req, "DELETE ", 7)) {
			f->deletes++;
			fake_reply(
			    c, 404,
			    "{\"kind\":\"Status\",\"code\":404,\"message\":\"tasks not found\"}");
		} else if (!strncmp(req, "GET /apis/arl.infra.io/v1alpha1/namespaces/ns1/tasks?",
		                    53)) {
			snprintf(body, sizeof(body),
			         "{\"kind\":\"TaskList\",\"metadata\":{},\"items\":%s}",
			         f->task_items);
			fake_reply(c, 200, body);
		} else if (!strncmp(req, "GET /apis/arl.infra.io/v1alpha1/namespaces/ns1/", 47)) {
			fake_reply(c, 200,
			           "{\"kind\":\"SandboxList\",\"metadata\":{},\"items\":[]}");
		} else {
			fake_reply(c, 403,
			           "{\"kind\":\"Status\",\"code\":403,\"message\":\"listing at the "
			           "cluster scope is forbidden\"}");
		}
		close(c);
	}
	return NULL;
}

static void fake_api_start(struct fake_api *f, const char *task_items)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);

	memset(f, 0, sizeof(*f));
	f->task_items = task_items;
	f->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(f->fd >= 0);
	assert_int_equal(bind(f->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(f->fd, 16), 0);
	assert_int_equal(getsockname(f->fd, (struct sockaddr *)&a, &alen), 0);
	f->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&f->thread, NULL, fake_api_main, f), 0);
}

static void fake_api_stop(struct fake_api *f)
{
	/* shutdown() ends the blocked accept(); the thread returns. */
	shutdown(f->fd, SHUT_RDWR);
	pthread_join(f->thread, NULL);
	close(f->fd);
}

/* A client of @f, through a kubeconfig written to @dir. */
static struct arl_k8s *fake_client(const struct fake_api *f, const char *dir)
{
	struct arl_kubeconfig_opts ko = ARL_KUBECONFIG_OPTS_INIT;
	struct arl_k8s_opts co = ARL_K8S_OPTS_INIT;
	struct arl_kubeconfig *kc = NULL;
	struct arl_k8s *c = NULL;
	struct arl_err err = ARL_ERR_INIT;
	char *path = arl_xasprintf("%s/kubeconfig", dir);
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fprintf(fp,
	        "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
	        "clusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:%d\n"
	        "contexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n"
	        "    namespace: ns1\n"
	        "users:\n- name: u\n  user: {}\n",
	        f->port);
	assert_int_equal(fclose(fp), 0);
	ko.path = path;
	co.max_tries = 1;
	if (arl_kubeconfig_load(&kc, &ko, &err) < 0 || arl_k8s_new(&c, kc, &co, &err) < 0)
		fail_msg("%s", err.msg);
	free(path);
	return c;
}

/*
 * Falling back from a forbidden cluster scope and finding an orphan deleted already are
 * answers, not failures: the caller's earlier error stays as it was, and fallback_why is
 * the 403's own message. (Both were once judged on the caller's error and then cleared it.)
 */
static void test_sweep_keeps_caller_error(void **state)
{
	char dir[] = "/tmp/arl-test-k8s-gc-XXXXXX", pid[16], *items, *task;
	const char *const ns1[] = {"ns1"};
	struct arl_k8s_gc_opts o = ARL_K8S_GC_OPTS_INIT;
	struct arl_k8s_gc_result res;
	struct arl_k8s_owner me;
	struct arl_err err = ARL_ERR_INIT;
	struct fake_api f;
	struct arl_k8s *c;
	cJSON *labels;
	pid_t child;
	int status;

	(void)state;
	/* An orphan of this host: its owner's pid has exited and been reaped. */
	arl_k8s_gc_self(&me);
	child = fork();
	assert_true(child >= 0);
	if (child == 0)
		_exit(0);
	assert_int_equal(waitpid(child, &status, 0), child);
	snprintf(pid, sizeof(pid), "%ld", (long)child);
	labels = labels_of(&me);
	set_label(labels, ARL_K8S_GC_PID_LABEL, pid);
	task = cJSON_PrintUnformatted(labels);
	items = arl_xasprintf("[{\"kind\":\"Task\",\"metadata\":{\"name\":\"t1\",\"namespace\":"
	                      "\"ns1\",\"uid\":\"u1\",\"labels\":%s}}]",
	                      task);
	cJSON_free(task);
	cJSON_Delete(labels);
	assert_non_null(mkdtemp(dir));
	fake_api_start(&f, items);
	c = fake_client(&f, dir);

	/* The cluster scope is forbidden: fall back to ns1, where the Task is gone already. */
	arl_error(&err, ARL_E_IO, "an earlier failure");
	o.remove = true;
	o.fallback_ns = "ns1";
	assert_int_equal(arl_k8s_gc_sweep(c, &o, &res, &err), 0);
	assert_true(res.fell_back);
	assert_non_null(strstr(res.fallback_why, "forbidden"));
	assert_int_equal(res.orphans, 1);
	assert_int_equal(res.failed, 0);
	assert_int_equal(f.deletes, 1);
	assert_int_equal(err.code, ARL_E_IO);
	assert_string_equal(err.msg, "an earlier failure");

	/* The namespace named: only the 404 of the DELETE. */
	o.namespaces = ns1;
	o.nnamespaces = 1;
	assert_int_equal(arl_k8s_gc_sweep(c, &o, &res, &err), 0);
	assert_false(res.fell_back);
	assert_int_equal(res.orphans, 1);
	assert_int_equal(res.failed, 0);
	assert_int_equal(f.deletes, 2);
	assert_string_equal(err.msg, "an earlier failure");

	arl_k8s_free(c);
	fake_api_stop(&f);
	free(items);
	{
		char *kcpath = arl_xasprintf("%s/kubeconfig", dir);

		unlink(kcpath);
		free(kcpath);
	}
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_self),
	    cmocka_unit_test(test_alive_and_reused),
	    cmocka_unit_test(test_dead_pids),
	    cmocka_unit_test(test_hosts_and_labels),
	    cmocka_unit_test(test_same_rule_as_local),
	    cmocka_unit_test(test_sweep_keeps_caller_error),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
