/*
 * How the jobs of two runs compare, by job key: the shared core of `diff` and `report
 * --compare`. Jobs that ended in `infra` or were cancelled in either run say nothing about
 * the work under test, so they are listed apart and left out of the counts, the pass rates
 * and the McNemar test.
 */
#include "view/rundiff.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_diff.h"
#include "util.h"
#include "banned.h"

enum outcome { PASS, FAIL, OTHER }; /* OTHER: infra, cancelled, never ran */

const char *const arl_rundiff_flip_names[] = {"fixed", "broken",  "still_failing", "still_passing",
                                              "added", "missing", "infra"};

static enum outcome classify(enum arl_state state, enum arl_class cls)
{
	if (state == ARL_STATE_SUCCEEDED)
		return PASS;
	if (state == ARL_STATE_FAILED && (cls == ARL_CLASS_FAILED || cls == ARL_CLASS_TIMEOUT))
		return FAIL;
	return OTHER;
}

static enum arl_rundiff_flip flip_of(const struct arl_diff_job *j, enum outcome a, enum outcome b)
{
	if (!j->in_a)
		return ARL_FLIP_ADDED;
	if (!j->in_b)
		return ARL_FLIP_MISSING;
	if (a == OTHER || b == OTHER)
		return ARL_FLIP_INFRA;
	if (a == FAIL && b == PASS)
		return ARL_FLIP_FIXED;
	if (a == PASS && b == FAIL)
		return ARL_FLIP_BROKEN;
	return a == FAIL ? ARL_FLIP_STILL_FAILING : ARL_FLIP_STILL_PASSING;
}

static void count_side(struct arl_rundiff_run *r, bool in, enum outcome o)
{
	if (in && o != OTHER)
		o == PASS ? r->passed++ : r->failed++;
}

static int on_job(void *arg, const struct arl_diff_job *j, struct arl_err *err)
{
	struct arl_rundiff *d = arg;
	enum outcome a = classify(j->state_a, j->cls_a), b = classify(j->state_b, j->cls_b);
	enum arl_rundiff_flip f = flip_of(j, a, b);

	(void)err;
	count_side(&d->runs[0], j->in_a, a);
	count_side(&d->runs[1], j->in_b, b);
	d->counts[f]++;
	if (f != ARL_FLIP_STILL_PASSING) {
		struct arl_rundiff_keys *k = &d->keys[f];

		ARL_GROW(k->v, k->cap, k->n + 1);
		k->v[k->n++] = arl_xstrdup(j->key);
	}
	return 0;
}

/* McNemar's exact test: two-sided binomial p-value of b broken vs c fixed, p = 1/2. */
static double mcnemar_exact(size_t b, size_t c)
{
	size_t n = b + c, k = b < c ? b : c;
	double sum = 0;

	if (n == 0)
		return 1.0;
	for (size_t i = 0; i <= k; i++)
		sum += exp(lgamma((double)n + 1) - lgamma((double)i + 1) -
		           lgamma((double)(n - i) + 1) - (double)n * log(2.0));
	return 2 * sum > 1 ? 1.0 : 2 * sum;
}

static double rate(size_t pass, size_t fail)
{
	return pass + fail ? (double)pass / (double)(pass + fail) : 0;
}

struct mean_side {
	struct arl_rundiff *d;
	int side;
};

static int on_mean(void *arg, const struct arl_diff_metric_mean *row, struct arl_err *err)
{
	struct mean_side *ms = arg;
	struct arl_rundiff *d = ms->d;
	struct arl_rundiff_metric *m = NULL;

	(void)err;
	for (size_t i = 0; i < d->nmetrics && !m; i++)
		if (!strcmp(d->metrics[i].name, row->name))
			m = &d->metrics[i];
	if (!m) {
		ARL_GROW(d->metrics, d->metrics_cap, d->nmetrics + 1);
		m = &d->metrics[d->nmetrics++];
		memset(m, 0, sizeof(*m));
		m->name = arl_xstrdup(row->name);
	}
	if (ms->side) {
		m->has_b = true;
		m->mean_b = row->mean;
		m->count_b = row->count;
	} else {
		m->has_a = true;
		m->mean_a = row->mean;
		m->count_a = row->count;
	}
	return 0;
}

static int on_job_metric(void *arg, const struct arl_diff_job_metric *row, struct arl_err *err)
{
	struct arl_rundiff *d = arg;
	struct arl_rundiff_job_metric *m;

	(void)err;
	ARL_GROW(d->job_metrics, d->job_metrics_cap, d->njob_metrics + 1);
	m = &d->job_metrics[d->njob_metrics++];
	m->key = arl_xstrdup(row->key);
	m->name = arl_xstrdup(row->name);
	m->a = row->a;
	m->b = row->b;
	m->delta = row->b - row->a;
	return 0;
}

char *arl_rundiff_run_name(struct arl_store *s, int64_t id)
{
	struct arl_err err = ARL_ERR_INIT;
	char *name = NULL;

	return arl_store_diff_run_name(s, id, &name, &err) == 1 ? name : arl_xstrdup("?");
}

int arl_rundiff(struct arl_store *s, int64_t run_a, int64_t run_b, bool per_job,
                struct arl_rundiff *out, struct arl_err *err)
{
	struct arl_rundiff d = {.runs = {{.id = run_a}, {.id = run_b}}, .per_job = per_job};

	d.runs[0].name = arl_rundiff_run_name(s, run_a);
	d.runs[1].name = arl_rundiff_run_name(s, run_b);
	if (arl_store_diff_jobs(s, run_a, run_b, on_job, &d, err) < 0)
		goto fail;
	for (int side = 0; side < 2; side++) {
		struct mean_side ms = {&d, side};

		d.runs[side].pass_rate = rate(d.runs[side].passed, d.runs[side].failed);
		if (arl_store_diff_metric_means(s, d.runs[side].id, on_mean, &ms, err) < 0)
			goto fail;
	}
	for (size_t i = 0; i < d.nmetrics; i++)
		if (d.metrics[i].has_a && d.metrics[i].has_b)
			d.metrics[i].delta = d.metrics[i].mean_b - d.metrics[i].mean_a;
	d.mcnemar_p = mcnemar_exact(d.counts[ARL_FLIP_BROKEN], d.counts[ARL_FLIP_FIXED]);
	if (per_job && arl_store_diff_job_metrics(s, run_a, run_b, 0, on_job_metric, &d, err) < 0)
		goto fail;
	*out = d;
	return 0;
fail:
	arl_rundiff_release(&d);
	return -1;
}

void arl_rundiff_release(struct arl_rundiff *d)
{
	for (int side = 0; side < 2; side++)
		free(d->runs[side].name);
	for (int f = 0; f < ARL_RUNDIFF_NFLIPS; f++) {
		for (size_t i = 0; i < d->keys[f].n; i++)
			free(d->keys[f].v[i]);
		free(d->keys[f].v);
	}
	for (size_t i = 0; i < d->nmetrics; i++)
		free(d->metrics[i].name);
	free(d->metrics);
	for (size_t i = 0; i < d->njob_metrics; i++) {
		free(d->job_metrics[i].key);
		free(d->job_metrics[i].name);
	}
	free(d->job_metrics);
	memset(d, 0, sizeof(*d));
}

cJSON *arl_rundiff_json(const struct arl_rundiff *d)
{
	cJSON *o = cJSON_CreateObject(), *runs = cJSON_AddArrayToObject(o, "runs");
	cJSON *counts = cJSON_AddObjectToObject(o, "counts"),
	      *jobs = cJSON_AddObjectToObject(o, "jobs"), *list;

	for (int side = 0; side < 2; side++) {
		const struct arl_rundiff_run *rn = &d->runs[side];
		cJSON *r = cJSON_CreateObject();

		cJSON_AddItemToArray(runs, r);
		cJSON_AddNumberToObject(r, "id", (double)rn->id);
		cJSON_AddStringToObject(r, "name", rn->name);
		cJSON_AddNumberToObject(r, "passed", (double)rn->passed);
		cJSON_AddNumberToObject(r, "failed", (double)rn->failed);
		cJSON_AddNumberToObject(r, "passRate", rn->pass_rate);
	}
	for (int f = 0; f < ARL_RUNDIFF_NFLIPS; f++) {
		list = cJSON_AddArrayToObject(jobs, arl_rundiff_flip_names[f]);
		cJSON_AddNumberToObject(counts, arl_rundiff_flip_names[f], (double)d->counts[f]);
		for (size_t i = 0; i < d->keys[f].n; i++)
			cJSON_AddItemToArray(list, cJSON_CreateString(d->keys[f].v[i]));
	}
	cJSON_AddNumberToObject(o, "mcnemarP", d->mcnemar_p);
	list = cJSON_AddArrayToObject(o, "metrics");
	for (size_t i = 0; i < d->nmetrics; i++) {
		const struct arl_rundiff_metric *m = &d->metrics[i];
		cJSON *it = cJSON_CreateObject();

		cJSON_AddItemToArray(list, it);
		cJSON_AddStringToObject(it, "name", m->name);
		if (m->has_a) {
			cJSON_AddNumberToObject(it, "meanA", m->mean_a);
			cJSON_AddNumberToObject(it, "countA", (double)m->count_a);
		}
		if (m->has_b) {
			cJSON_AddNumberToObject(it, "meanB", m->mean_b);
			cJSON_AddNumberToObject(it, "countB", (double)m->count_b);
		}
		if (m->has_a && m->has_b)
			cJSON_AddNumberToObject(it, "delta", m->delta);
	}
	if (!d->per_job)
		return o;
	list = cJSON_AddArrayToObject(o, "jobMetrics");
	for (size_t i = 0; i < d->njob_metrics; i++) {
		const struct arl_rundiff_job_metric *m = &d->job_metrics[i];
		cJSON *it = cJSON_CreateObject();

		cJSON_AddItemToArray(list, it);
		cJSON_AddStringToObject(it, "key", m->key);
		cJSON_AddStringToObject(it, "name", m->name);
		cJSON_AddNumberToObject(it, "a", m->a);
		cJSON_AddNumberToObject(it, "b", m->b);
		cJSON_AddNumberToObject(it, "delta", m->delta);
	}
	return o;
}
