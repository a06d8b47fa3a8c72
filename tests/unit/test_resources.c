/*
 * A pool's resources: as job files write them: diagnostics at file:line:col for malformed
 * values, on both backends' pools, and the spec hash (only when set, by value).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cmd/builtin_backends.h"
#include "jobfile/job.h"
#include "jobfile/schema.h"
#include "local/local_pool.h"
#include "util.h"

/* The job file with pool @pool, or NULL with @d filled. */
static struct arl_jobfile *parse_pool(const char *pool, struct arl_diags *d)
{
	char *text = arl_xasprintf("version: 1\npools:\n  p: %s\njobs:\n  - {name: j, steps: "
	                           "[{type: Command, command: [\"true\"]}]}\n",
	                           pool);
	struct arl_jobfile *f = NULL;

	if (arl_jobfile_parse("/nonexistent/suite.yaml", text, strlen(text), &f, d) < 0)
		f = NULL;
	free(text);
	return f;
}

static char *hash_of(const char *pool)
{
	struct arl_diags d = ARL_DIAGS_INIT;
	struct arl_jobfile *f = parse_pool(pool, &d);
	char *h;

	if (!f)
		fail_msg("'%s' did not load: %s", pool, d.n ? d.v[0].msg : "?");
	h = arl_xstrdup(f->jobs[0].spec_hash);
	arl_jobfile_free(f);
	arl_diags_release(&d);
	return h;
}

static void test_parsed(void **state)
{
	struct arl_diags d = ARL_DIAGS_INIT;
	struct arl_jobfile *f = parse_pool("{resources: {memory: 2Gi, cpus: 1.5, pids: 1024}}", &d);
	const struct arl_local_pool *lp;

	(void)state;
	assert_non_null(f);
	lp = arl_local_pool(&f->pools[0]);
	assert_true(lp->resources.set);
	assert_string_equal(lp->resources.memory, "2Gi");
	assert_string_equal(lp->resources.cpus, "1.5"); /* a YAML number, as written */
	assert_string_equal(lp->resources.pids, "1024");
	arl_jobfile_free(f);
	arl_diags_release(&d);
}

/* Each malformed value is an error at its own position, on either backend's pool. */
static void test_malformed_at_position(void **state)
{
	static const struct {
		const char *pool;
		const char *at; /* the text the error points at */
		const char *msg;
	} cases[] = {
	    {"{resources: {memory: 2Gx}}", "2Gx",
	     "resources: memory '2Gx' is not a Kubernetes quantity (e.g. 512Mi, 2Gi or 1.5G)"},
	    {"{resources: {cpus: 5m}}", "5m",
	     "resources: cpus '5m' must be at least 10m (0.01 CPU)"},
	    {"{resources: {pids: 0}}", "0}", "resources: pids '0' must be more than 0"},
	    {"{resources: {pids: true}}", "true",
	     "'pids' must be a number or a string, got a boolean"},
	    {"{resources: {memory: -1Gi}}", "-1Gi", "resources: memory '-1Gi' must be more than 0"},
	    {"{backend: kubernetes, resources: {cpus: lots}}", "lots",
	     "resources: cpus 'lots' is not a Kubernetes quantity (e.g. \"1.5\", 500m or 2)"},
	    {"{resources: {disk: 1Gi}}", "disk",
	     NULL}, /* unknown key: the loader's usual message */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct arl_diags d = ARL_DIAGS_INIT;
		/* "  p: " precedes the pool on line 3; columns count from 1. */
		unsigned col = 6 + (unsigned)(strstr(cases[i].pool, cases[i].at) - cases[i].pool);

		assert_null(parse_pool(cases[i].pool, &d));
		assert_true(d.n >= 1);
		if (d.v[0].line != 3 || d.v[0].col != col ||
		    (cases[i].msg && strcmp(d.v[0].msg, cases[i].msg)))
			fail_msg("%s: got %u:%u '%s'", cases[i].pool, d.v[0].line, d.v[0].col,
			         d.v[0].msg);
		arl_diags_release(&d);
	}
}

/* Part of the hash only when set, and by value; a pool without it keeps its old hash. */
static void test_spec_hash(void **state)
{
	char *none = hash_of("{}"), *k8s = hash_of("{backend: kubernetes}");
	char *a = hash_of("{resources: {memory: 1Gi}}"),
	     *b = hash_of("{resources: {memory: 1024Mi}}");
	char *c = hash_of("{resources: {memory: 1Gi, pids: 10}}");
	char *k = hash_of("{backend: kubernetes, resources: {cpus: 500m}}");
	char *k2 = hash_of("{backend: kubernetes, resources: {cpus: \"0.5\"}}");

	(void)state;
	assert_string_equal(none, "66e5d405a6b7bd4780938007b4580fd3"); /* test_jobfile's */
	assert_string_equal(k8s, "cd599094432db246f98a7e43152a68d2");
	assert_string_not_equal(a, none);
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	assert_string_not_equal(k, k8s);
	assert_string_equal(k, k2);
	free(none);
	free(k8s);
	free(a);
	free(b);
	free(c);
	free(k);
	free(k2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parsed),
	    cmocka_unit_test(test_malformed_at_position),
	    cmocka_unit_test(test_spec_hash),
	};

	arl_register_builtin_backends();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
