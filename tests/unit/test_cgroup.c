/*
 * Unit tests for local/cgroup.c against fake cgroup trees in a temp dir (env.fake: plain
 * files stand in for cgroupfs): where v2 and v1 sandboxes' cgroups go and what limits they
 * get, OOM marks, removal, the clear error when neither can be written, gc's sweep; and the
 * Kubernetes quantities of jobfile/resources.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "jobfile/resources.h"
#include "local/cgroup.h"
#include "util.h"

struct fake {
	char root[64];
	char self[96];
	struct arl_cgroup_env env;
};

static void put(const char *root, const char *rel, const char *text)
{
	char *p = arl_xasprintf("%s/%s", root, rel);
	FILE *f;

	/* mkdir -p of the parents */
	for (char *s = p + strlen(root) + 1; (s = strchr(s, '/')); s++) {
		*s = '\0';
		mkdir(p, 0755);
		*s = '/';
	}
	if (text) {
		assert_non_null(f = fopen(p, "w"));
		fputs(text, f);
		fclose(f);
	} else {
		mkdir(p, 0755);
	}
	free(p);
}

static char *get(const char *root, const char *rel)
{
	char *p = arl_xasprintf("%s/%s", root, rel);
	char buf[256] = "";
	FILE *f = fopen(p, "r");

	free(p);
	if (!f)
		return NULL;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	return arl_xstrdup(buf);
}

static bool exists(const char *root, const char *rel)
{
	char *p = arl_xasprintf("%s/%s", root, rel);
	bool r = access(p, F_OK) == 0;

	free(p);
	return r;
}

static void fake_init(struct fake *f, const char *self)
{
	snprintf(f->root, sizeof(f->root), "/tmp/arl-cgtest-XXXXXX");
	assert_non_null(mkdtemp(f->root));
	snprintf(f->self, sizeof(f->self), "%s/self", f->root);
	put(f->root, "self", self);
	f->env = (struct arl_cgroup_env){.root = f->root, .self = f->self, .fake = true};
}

static void fake_done(struct fake *f)
{
	char *cmd = arl_xasprintf("rm -rf '%s'", f->root);

	assert_int_equal(system(cmd), 0);
	free(cmd);
}

static void assert_file(const char *root, const char *rel, const char *want)
{
	char *got = get(root, rel);

	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

/* A delegated v2 subtree: the controllers enabled for children, the limits in v2's files. */
static void test_v2(void **state)
{
	struct arl_limits l = {.memory_bytes = 64 << 20, .cpu_millis = 1500, .pids = 64};
	struct arl_err err = ARL_ERR_INIT;
	struct arl_cgroups *cgs;
	struct arl_cgroup *cg;
	struct fake f;
	int fds[ARL_CGROUP_MAX_FDS];
	struct arl_oom_mark mark;

	(void)state;
	fake_init(&f, "0::/user/run\n");
	put(f.root, "cgroup.controllers", "cpuset cpu io memory pids\n");
	put(f.root, "user/run/cgroup.controllers", "cpu memory pids\n");
	put(f.root, "user/run/cgroup.subtree_control", "");
	assert_int_equal(arl_cgroups_open(&f.env, &l, &cgs, &err), 0);
	assert_int_equal(arl_cgroups_version(cgs), 2);
	assert_file(f.root, "user/run/cgroup.subtree_control", "+memory +pids +cpu");
	assert_false(exists(f.root, "user/run/arl-probe-1")); /* the probe is gone */

	assert_int_equal(arl_cgroup_create(cgs, "sb-1-x-1", &l, &cg, &err), 0);
	assert_file(f.root, "user/run/sb-1-x-1/memory.max", "67108864");
	assert_file(f.root, "user/run/sb-1-x-1/pids.max", "64");
	assert_file(f.root, "user/run/sb-1-x-1/cpu.max", "150000 100000");
	assert_false(exists(f.root, "user/run/sb-1-x-1/memory.swap.max")); /* only if there */

	assert_int_equal(arl_cgroup_attach(cg, 4242, &err), 0);
	assert_file(f.root, "user/run/sb-1-x-1/cgroup.procs", "4242");
	assert_int_equal(arl_cgroup_procs_fds(cg, fds, &err), 1);
	close(fds[0]);

	mark = arl_cgroup_oom_mark(cg);
	assert_int_equal(mark.kills, 0);
	assert_int_equal(mark.hits, 0);
	put(f.root, "user/run/sb-1-x-1/memory.events", "low 0\nhigh 0\nmax 9\noom 2\noom_kill 0\n");
	assert_false(arl_cgroup_oom_since(cg, mark)); /* the limit reached, nothing killed */
	mark = arl_cgroup_oom_mark(cg);
	assert_int_equal(mark.hits, 2);
	/* A kill without the cgroup's own limit reached: the host's OOM or an ancestor's. */
	put(f.root, "user/run/sb-1-x-1/memory.events",
	    "low 0\nhigh 0\nmax 9\noom 2\noom_kill 1\noom_group_kill 0\n");
	assert_false(arl_cgroup_oom_since(cg, mark));
	put(f.root, "user/run/sb-1-x-1/memory.events",
	    "low 0\nhigh 0\nmax 9\noom 3\noom_kill 2\noom_group_kill 0\n");
	assert_true(arl_cgroup_oom_since(cg, mark));
	assert_false(arl_cgroup_oom_since(cg, arl_cgroup_oom_mark(cg)));

	put(f.root, "user/run/sb-1-x-1/cgroup.procs", ""); /* nothing left to kill */
	assert_int_equal(arl_cgroup_destroy(cg, &err), 0);
	assert_false(exists(f.root, "user/run/sb-1-x-1"));
	arl_cgroups_close(cgs);
	fake_done(&f);
}

/* Only the controllers asked for are needed, and a limit not set is not written. */
static void test_v2_memory_only(void **state)
{
	struct arl_limits l = {.memory_bytes = 1 << 30};
	struct arl_err err = ARL_ERR_INIT;
	struct arl_cgroups *cgs;
	struct arl_cgroup *cg;
	struct fake f;

	(void)state;
	fake_init(&f, "0::/\n");
	put(f.root, "cgroup.controllers", "memory\n");
	put(f.root, "cgroup.subtree_control", "memory\n");
	put(f.root, "memory.swap.max", "max\n"); /* not the child's: the child's is written */
	assert_int_equal(arl_cgroups_open(&f.env, &l, &cgs, &err), 0);
	assert_file(f.root, "cgroup.subtree_control", "memory\n"); /* already enabled */
	assert_int_equal(arl_cgroup_create(cgs, "sb-2", &l, &cg, &err), 0);
	assert_file(f.root, "sb-2/memory.max", "1073741824");
	assert_false(exists(f.root, "sb-2/pids.max"));
	assert_false(exists(f.root, "sb-2/cpu.max"));
	assert_int_equal(arl_cgroup_destroy(cg, &err), 0);
	arl_cgroups_close(cgs);
	fake_done(&f);
}

/* This machine's layout: v1 controllers (memory in a child path) and an empty v2. */
static void test_v1_hybrid(void **state)
{
	struct arl_limits l = {.memory_bytes = 64 << 20, .cpu_millis = 500, .pids = 64};
	struct arl_err err = ARL_ERR_INIT;
	struct arl_cgroups *cgs;
	struct arl_cgroup *cg;
	struct fake f;
	int fds[ARL_CGROUP_MAX_FDS];
	struct arl_oom_mark mark;

	(void)state;
	fake_init(&f, "9:name=systemd:/\n8:pids:/\n4:memory:/api/5755\n1:cpu,cpuacct:/\n0::/\n");
	put(f.root, "unified/cgroup.controllers", "");
	put(f.root, "memory/api/5755", NULL);
	put(f.root, "memory/api/5755/memory.memsw.limit_in_bytes", "9223372036854771712\n");
	put(f.root, "pids", NULL);
	put(f.root, "cpu,cpuacct", NULL);
	assert_int_equal(arl_cgroups_open(&f.env, &l, &cgs, &err), 0);
	assert_int_equal(arl_cgroups_version(cgs), 1);

	assert_int_equal(arl_cgroup_create(cgs, "sb-3", &l, &cg, &err), 0);
	assert_file(f.root, "memory/api/5755/sb-3/memory.limit_in_bytes", "67108864");
	assert_file(f.root, "pids/sb-3/pids.max", "64");
	assert_file(f.root, "cpu,cpuacct/sb-3/cpu.cfs_period_us", "100000");
	assert_file(f.root, "cpu,cpuacct/sb-3/cpu.cfs_quota_us", "50000");
	/* memsw only where the kernel has it (not in the fresh fake child) */
	assert_false(exists(f.root, "memory/api/5755/sb-3/memory.memsw.limit_in_bytes"));

	assert_int_equal(arl_cgroup_procs_fds(cg, fds, &err), 3);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	assert_int_equal(arl_cgroup_attach(cg, 77, &err), 0);
	assert_file(f.root, "pids/sb-3/cgroup.procs", "77");
	assert_file(f.root, "memory/api/5755/sb-3/cgroup.procs", "77");

	/* An earlier step's peak at the limit does not count: the mark starts it again. */
	put(f.root, "memory/api/5755/sb-3/memory.max_usage_in_bytes", "67108864\n");
	mark = arl_cgroup_oom_mark(cg);
	assert_file(f.root, "memory/api/5755/sb-3/memory.max_usage_in_bytes", "0");
	put(f.root, "memory/api/5755/sb-3/memory.max_usage_in_bytes", "41795584\n");
	put(f.root, "memory/api/5755/sb-3/memory.oom_control",
	    "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n");
	assert_false(arl_cgroup_oom_since(cg, mark)); /* killed below its limit: not its own */
	put(f.root, "memory/api/5755/sb-3/memory.max_usage_in_bytes", "67108864\n");
	assert_true(arl_cgroup_oom_since(cg, mark));
	assert_int_equal(arl_cgroup_oom_mark(cg).kills, 3);

	put(f.root, "memory/api/5755/sb-3/cgroup.procs", "");
	put(f.root, "pids/sb-3/cgroup.procs", "");
	put(f.root, "cpu,cpuacct/sb-3/cgroup.procs", "");
	assert_int_equal(arl_cgroup_destroy(cg, &err), 0);
	assert_false(exists(f.root, "memory/api/5755/sb-3"));
	assert_false(exists(f.root, "pids/sb-3"));
	assert_false(exists(f.root, "cpu,cpuacct/sb-3"));
	arl_cgroups_close(cgs);
	fake_done(&f);
}

/* Limits asked for, neither v2 nor v1 usable: one error saying why for each. */
static void test_neither(void **state)
{
	struct arl_limits l = {.memory_bytes = 64 << 20, .pids = 10};
	struct arl_err err = ARL_ERR_INIT;
	struct arl_cgroups *cgs = (void *)1;
	struct fake f;

	(void)state;
	fake_init(&f, "8:pids:/\n4:memory:/api\n0::/\n");
	put(f.root, "unified/cgroup.controllers", "");
	put(f.root, "pids", NULL); /* but no memory hierarchy */
	assert_int_equal(arl_cgroups_open(&f.env, &l, &cgs, &err), -1);
	assert_null(cgs);
	assert_non_null(strstr(err.msg, "resources need a cgroup this runner can write"));
	assert_non_null(strstr(err.msg, "has no memory controller (not delegated)"));
	assert_non_null(strstr(err.msg, "no memory hierarchy at"));
	fake_done(&f);
}

/* A v1 hierarchy we may not write (a non-root runner): the probe's errno is the reason. */
static void test_not_writable(void **state)
{
	struct arl_limits l = {.pids = 10};
	struct arl_err err = ARL_ERR_INIT;
	struct arl_cgroups *cgs;
	struct fake f;
	char *p;

	(void)state;
	if (geteuid() == 0)
		skip(); /* root writes anyway */
	fake_init(&f, "8:pids:/\n0::/\n");
	put(f.root, "pids", NULL);
	p = arl_xasprintf("%s/pids", f.root);
	chmod(p, 0555);
	assert_int_equal(arl_cgroups_open(&f.env, &l, &cgs, &err), -1);
	assert_non_null(strstr(err.msg, "cannot create a cgroup in"));
	assert_non_null(strstr(err.msg, "Permission denied"));
	chmod(p, 0755);
	free(p);
	fake_done(&f);
}

static const char *gone_if_dead(const char *name, void *arg)
{
	(void)arg;
	return strstr(name, "dead") ? "runner gone" : NULL;
}

/* gc: only "sb-" cgroups whose runner is gone, in every hierarchy. */
static void test_sweep(void **state)
{
	struct fake f;
	char *out = NULL;
	size_t len = 0;
	FILE *o;

	(void)state;
	fake_init(&f, "8:pids:/\n4:memory:/api\n0::/\n");
	put(f.root, "unified/cgroup.controllers", "");
	put(f.root, "memory/api/sb-1-dead-1/memory.limit_in_bytes", "1");
	put(f.root, "memory/api/sb-1-live-1/memory.limit_in_bytes", "1");
	put(f.root, "memory/api/other-dead", NULL);
	put(f.root, "pids/sb-1-dead-1/pids.max", "1");
	assert_non_null(o = open_memstream(&out, &len));
	assert_int_equal(arl_cgroups_sweep(&f.env, true, gone_if_dead, NULL, o), 2);
	fclose(o);
	assert_non_null(strstr(out, "deleting cgroup"));
	assert_non_null(strstr(out, "sb-1-dead-1 (runner gone)"));
	assert_false(exists(f.root, "memory/api/sb-1-dead-1"));
	assert_false(exists(f.root, "pids/sb-1-dead-1"));
	assert_true(exists(f.root, "memory/api/sb-1-live-1"));
	assert_true(exists(f.root, "memory/api/other-dead"));
	free(out);
	fake_done(&f);
}

static void test_quantities(void **state)
{
	static const struct {
		const char *s;
		int64_t per;
		int64_t want; /* -1: invalid */
	} cases[] = {
	    {"2Gi", 1, 2LL << 30},
	    {"64Mi", 1, 64 << 20},
	    {"1.5Gi", 1, 3LL << 29},
	    {"1G", 1, 1000000000},
	    {"128974848", 1, 128974848},
	    {"129e6", 1, 129000000},
	    {"129E6", 1, 129000000},
	    {"1E", 1, 1000000000000000000LL},
	    {"123Mi", 1, 128974848},
	    {"1k", 1, 1000},
	    {"1Ki", 1, 1024},
	    {"1.5", 1000, 1500},
	    {"500m", 1000, 500},
	    {"2", 1000, 2000},
	    {".5", 1000, 500},
	    {"1.", 1000, 1000},
	    {"+1", 1000, 1000},
	    {"0.0001", 1000, 1}, /* rounded up */
	    {"1m", 1, 1},
	    {"-1", 1, -1 * 1},
	    {"", 1, -1},
	    {"Gi", 1, -1},
	    {"1gi", 1, -1},
	    {"1 Gi", 1, -1},
	    {"1.2.3", 1, -1},
	    {"1e", 1, -1},
	    {"1e3.5", 1, -1},
	    {"99Ei", 1, -1},
	    {"0x10", 1, -1},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t v = 0;
		int rc = arl_quantity_parse(cases[i].s, cases[i].per, &v);
		bool invalid = cases[i].want == -1 && strcmp(cases[i].s, "-1");

		if (invalid) {
			if (rc != -1)
				fail_msg("'%s' parsed as %lld", cases[i].s, (long long)v);
		} else {
			if (rc != 0 || v != cases[i].want)
				fail_msg("'%s': rc %d, %lld != %lld", cases[i].s, rc, (long long)v,
				         (long long)cases[i].want);
		}
	}
}

static void test_limits(void **state)
{
	struct arl_pool_resources r = {.set = true, .memory = "1Gi", .cpus = "250m", .pids = "100"};
	struct arl_limits l;
	char *why;

	(void)state;
	assert_int_equal(arl_resources_limits(&r, &l, &why), 0);
	assert_int_equal(l.memory_bytes, 1LL << 30);
	assert_int_equal(l.cpu_millis, 250);
	assert_int_equal(l.pids, 100);
	r.cpus = "5m";
	assert_int_equal(arl_resources_limits(&r, &l, &why), -1);
	assert_string_equal(why, "resources: cpus '5m' must be at least 10m (0.01 CPU)");
	free(why);
	r.cpus = NULL;
	r.memory = "0";
	assert_int_equal(arl_resources_limits(&r, &l, &why), -1);
	assert_string_equal(why, "resources: memory '0' must be more than 0");
	free(why);
	r.memory = NULL;
	r.pids = "1.5k";
	assert_int_equal(arl_resources_limits(&r, &l, &why), -1);
	assert_string_equal(why, "resources: pids '1.5k' is not an integer (e.g. 1024)");
	free(why);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_v2),           cmocka_unit_test(test_v2_memory_only),
	    cmocka_unit_test(test_v1_hybrid),    cmocka_unit_test(test_neither),
	    cmocka_unit_test(test_not_writable), cmocka_unit_test(test_sweep),
	    cmocka_unit_test(test_quantities),   cmocka_unit_test(test_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
