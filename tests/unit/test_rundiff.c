/*
 * The comparison of two runs (view/rundiff.h) on the store's diff readers (store_diff.h):
 * every flip, the two runs' pass counts, keys listed in key order with both ends of the
 * merge exercised (a key only in A before any other, one only in B after all), a Skipped
 * job standing for its result, metric means and per-job changes, and the JSON built from
 * the struct.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <cjson/cJSON.h>

#include "result.h"
#include "store/store.h"
#include "store/store_diff.h"
#include "view/rundiff.h"
#include "util.h"
#include "banned.h"

struct fx {
	char dir[64];
	char db[128];
	struct arl_store *s;
	int64_t run_a, run_b;
};

/* One job of a run: its key, how it ended, and the metric it reported (0: none). */
struct job {
	const char *key;
	enum arl_state state;
	enum arl_class cls;
	const char *stands_for; /* Skipped, standing for this key's job of run A */
	const char *metric;
	double value;
};

static int row_of(void *arg, size_t i, struct arl_job_row *row, struct arl_err *err)
{
	const struct arl_job_row *rows = arg;

	(void)err;
	*row = rows[i];
	return 0;
}

static int64_t job_id_of(const struct job *jobs, const int64_t *ids, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(jobs[i].key, key))
			return ids[i];
	fail_msg("no job '%s'", key);
	return 0;
}

/* Plans and finishes a run of @jobs; a Skipped one stands for its key's job in @a_ids. */
static int64_t make_run(struct arl_store *s, const struct job *jobs, size_t n,
                        const struct job *a_jobs, const int64_t *a_ids, size_t a_n, int64_t *ids)
{
	struct arl_run_info info = {.name = "suite", .jobs_total = (int64_t)n};
	struct arl_job_row *rows = arl_xcalloc(n, sizeof(*rows));
	struct arl_err err = ARL_ERR_INIT;
	int64_t run = 0;

	for (size_t i = 0; i < n; i++) {
		rows[i] =
		    (struct arl_job_row){.key = jobs[i].key, .name = jobs[i].key, .file = "f.yaml"};
		if (jobs[i].stands_for)
			rows[i].skipped_from = job_id_of(a_jobs, a_ids, a_n, jobs[i].stands_for);
	}
	if (arl_store_run_plan(s, &info, n, row_of, rows, &run, ids, &err) < 0)
		fail_msg("run_plan: %s", err.msg);
	free(rows);
	for (size_t i = 0; i < n; i++) {
		struct arl_metric m = {.name = (char *)jobs[i].metric,
		                       .kind = ARL_METRIC_NUMBER,
		                       .number = jobs[i].value};
		struct arl_job_result r = {.state = jobs[i].state, .cls = jobs[i].cls};

		if (jobs[i].stands_for)
			continue;
		if (jobs[i].metric) {
			r.metrics = &m;
			r.nmetrics = 1;
		}
		if (arl_store_job_finish(s, ids[i], &r, &err) < 0)
			fail_msg("job_finish: %s", err.msg);
	}
	if (arl_store_run_finish(s, run, "failed", 1, &err) < 0)
		fail_msg("run_finish: %s", err.msg);
	return run;
}

#define S  ARL_STATE_SUCCEEDED
#define F  ARL_STATE_FAILED
#define SK ARL_STATE_SKIPPED

static const struct job run_a[] = {
    {"a/first_missing", S, ARL_CLASS_NONE, NULL, NULL, 0},
    {"k/broken", S, ARL_CLASS_NONE, NULL, NULL, 0},
    {"k/fixed", F, ARL_CLASS_FAILED, NULL, NULL, 0},
    {"k/infra", S, ARL_CLASS_NONE, NULL, NULL, 0},
    {"k/missing", S, ARL_CLASS_NONE, NULL, NULL, 0},
    {"k/pass", S, ARL_CLASS_NONE, NULL, "score", 1.0},
    {"k/skip", F, ARL_CLASS_FAILED, NULL, NULL, 0},
    {"k/still_failing", F, ARL_CLASS_FAILED, NULL, "score", 5.0},
};

/* Not in key order: the store orders them. */
static const struct job run_b[] = {
    {"z/last_added", S, ARL_CLASS_NONE, NULL, NULL, 0},
    {"k/still_failing", F, ARL_CLASS_FAILED, NULL, "score", 5.0},
    {"k/broken", F, ARL_CLASS_TIMEOUT, NULL, NULL, 0},
    {"k/fixed", S, ARL_CLASS_NONE, NULL, NULL, 0},
    {"k/infra", F, ARL_CLASS_INFRA, NULL, NULL, 0},
    {"k/added", F, ARL_CLASS_FAILED, NULL, "tokens", 10},
    {"k/pass", S, ARL_CLASS_NONE, NULL, "score", 3.0},
    {"k/skip", SK, ARL_CLASS_NONE, "k/skip", NULL, 0},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static int setup(void **state)
{
	struct fx *f = arl_xcalloc(1, sizeof(*f));
	struct arl_err err = ARL_ERR_INIT;
	int64_t a_ids[N(run_a)], b_ids[N(run_b)];

	snprintf(f->dir, sizeof(f->dir), "/tmp/test_rundiff.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->db, sizeof(f->db), "%s/results.db", f->dir);
	if (arl_store_open(&f->s, f->db, 0, &err) < 0)
		fail_msg("open: %s", err.msg);
	f->run_a = make_run(f->s, run_a, N(run_a), NULL, NULL, 0, a_ids);
	f->run_b = make_run(f->s, run_b, N(run_b), run_a, a_ids, N(run_a), b_ids);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	static const char *const sfx[] = {"", "-wal", "-shm"};
	char p[160];

	arl_store_close(f->s);
	for (size_t i = 0; i < N(sfx); i++) {
		snprintf(p, sizeof(p), "%s%s", f->db, sfx[i]);
		unlink(p);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

static void assert_keys(const struct arl_rundiff *d, enum arl_rundiff_flip flip,
                        const char *const *want, size_t n)
{
	assert_int_equal(d->keys[flip].n, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(d->keys[flip].v[i], want[i]);
}

static void test_flips_and_counts(void **state)
{
	struct fx *f = *state;
	struct arl_err err = ARL_ERR_INIT;
	struct arl_rundiff d;
	static const size_t want[ARL_RUNDIFF_NFLIPS] = {
	    [ARL_FLIP_FIXED] = 1,         [ARL_FLIP_BROKEN] = 1, [ARL_FLIP_STILL_FAILING] = 2,
	    [ARL_FLIP_STILL_PASSING] = 1, [ARL_FLIP_ADDED] = 2,  [ARL_FLIP_MISSING] = 2,
	    [ARL_FLIP_INFRA] = 1};

	assert_int_equal(arl_rundiff(f->s, f->run_a, f->run_b, false, &d, &err), 0);
	for (int i = 0; i < ARL_RUNDIFF_NFLIPS; i++)
		assert_int_equal(d.counts[i], want[i]);
	assert_keys(&d, ARL_FLIP_FIXED, (const char *const[]){"k/fixed"}, 1);
	assert_keys(&d, ARL_FLIP_BROKEN, (const char *const[]){"k/broken"}, 1);
	/* k/skip stands for run A's failure: still failing, not a pass. */
	assert_keys(&d, ARL_FLIP_STILL_FAILING, (const char *const[]){"k/skip", "k/still_failing"},
	            2);
	assert_keys(&d, ARL_FLIP_STILL_PASSING, NULL, 0); /* counted, not listed */
	assert_keys(&d, ARL_FLIP_ADDED, (const char *const[]){"k/added", "z/last_added"}, 2);
	assert_keys(&d, ARL_FLIP_MISSING, (const char *const[]){"a/first_missing", "k/missing"}, 2);
	assert_keys(&d, ARL_FLIP_INFRA, (const char *const[]){"k/infra"}, 1);
	/* A: 5 passed, 3 failed. B: k/infra is excluded; k/skip counts as its failure. */
	assert_int_equal(d.runs[0].id, f->run_a);
	assert_string_equal(d.runs[0].name, "suite");
	assert_int_equal(d.runs[0].passed, 5);
	assert_int_equal(d.runs[0].failed, 3);
	assert_int_equal(d.runs[1].passed, 3);
	assert_int_equal(d.runs[1].failed, 4);
	assert_true(d.runs[1].pass_rate == 3.0 / 7.0);
	assert_true(d.mcnemar_p == 1.0); /* one broken, one fixed */
	assert_false(d.per_job);
	assert_int_equal(d.njob_metrics, 0);
	arl_rundiff_release(&d);
}

static void test_metrics(void **state)
{
	struct fx *f = *state;
	struct arl_err err = ARL_ERR_INIT;
	struct arl_rundiff d;

	assert_int_equal(arl_rundiff(f->s, f->run_a, f->run_b, true, &d, &err), 0);
	/* score: A (1 + 5) / 2, B (3 + 5) / 2; tokens only in B, after A's metrics. */
	assert_int_equal(d.nmetrics, 2);
	assert_string_equal(d.metrics[0].name, "score");
	assert_true(d.metrics[0].has_a && d.metrics[0].has_b);
	assert_true(d.metrics[0].mean_a == 3.0 && d.metrics[0].mean_b == 4.0);
	assert_true(d.metrics[0].delta == 1.0);
	assert_string_equal(d.metrics[1].name, "tokens");
	assert_false(d.metrics[1].has_a);
	assert_true(d.metrics[1].has_b && d.metrics[1].mean_b == 10.0);
	/* Per job: only the value that changed. */
	assert_int_equal(d.njob_metrics, 1);
	assert_string_equal(d.job_metrics[0].key, "k/pass");
	assert_string_equal(d.job_metrics[0].name, "score");
	assert_true(d.job_metrics[0].a == 1.0 && d.job_metrics[0].b == 3.0);
	assert_true(d.job_metrics[0].delta == 2.0);
	arl_rundiff_release(&d);
}

/* The JSON is the struct: a reader that loses a column would show here as well. */
static void test_json(void **state)
{
	struct fx *f = *state;
	struct arl_err err = ARL_ERR_INIT;
	struct arl_rundiff d;
	cJSON *o;
	const cJSON *jobs, *m;

	assert_int_equal(arl_rundiff(f->s, f->run_a, f->run_b, true, &d, &err), 0);
	o = arl_rundiff_json(&d);
	assert_int_equal(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(o, "counts"), "still_failing")->valueint, 2);
	jobs = cJSON_GetObjectItem(o, "jobs");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(jobs, "still_passing")), 0);
	assert_string_equal(
	    cJSON_GetArrayItem(cJSON_GetObjectItem(jobs, "missing"), 0)->valuestring,
	    "a/first_missing");
	m = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "metrics"), 1);
	assert_null(cJSON_GetObjectItem(m, "meanA"));
	assert_null(cJSON_GetObjectItem(m, "delta"));
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "jobMetrics")), 1);
	cJSON_Delete(o);
	arl_rundiff_release(&d);
}

/* A run against itself: nothing flips, every key is in both. */
static void test_same_run(void **state)
{
	struct fx *f = *state;
	struct arl_err err = ARL_ERR_INIT;
	struct arl_rundiff d;

	assert_int_equal(arl_rundiff(f->s, f->run_b, f->run_b, false, &d, &err), 0);
	assert_int_equal(d.counts[ARL_FLIP_ADDED] + d.counts[ARL_FLIP_MISSING], 0);
	assert_int_equal(d.counts[ARL_FLIP_FIXED] + d.counts[ARL_FLIP_BROKEN], 0);
	assert_int_equal(d.counts[ARL_FLIP_STILL_PASSING], 3);
	assert_int_equal(d.counts[ARL_FLIP_STILL_FAILING], 4);
	assert_int_equal(d.counts[ARL_FLIP_INFRA], 1);
	arl_rundiff_release(&d);
}

static void test_run_before(void **state)
{
	struct fx *f = *state;
	struct arl_err err = ARL_ERR_INIT;
	int64_t id = 0;
	char *name = NULL;

	assert_int_equal(arl_store_diff_run_before(f->s, "suite", f->run_b, &id, &err), 1);
	assert_int_equal(id, f->run_a);
	assert_int_equal(arl_store_diff_run_before(f->s, "suite", f->run_a, &id, &err), 0);
	assert_int_equal(arl_store_diff_run_name(f->s, f->run_a, &name, &err), 1);
	assert_string_equal(name, "suite");
	free(name);
	assert_int_equal(arl_store_diff_run_name(f->s, 999, &name, &err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_flips_and_counts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_json, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_same_run, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_run_before, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
