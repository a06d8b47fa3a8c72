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

#include "util.h"
#include "banned.h"

enum outcome { PASS, FAIL, OTHER }; /* OTHER: infra, cancelled, never ran */
enum flip { FIXED, BROKEN, STILL_FAILING, STILL_PASSING, ADDED, MISSING, INFRA, NFLIPS };
_Static_assert(NFLIPS == ARL_RUNDIFF_NFLIPS, "rundiff.h names every flip");

const char *const arl_rundiff_flip_names[] = {"fixed", "broken",  "still_failing", "still_passing",
                                              "added", "missing", "infra"};

struct entry {
	char *key;
	enum outcome a, b;
	bool in_a, in_b;
	enum flip flip;
};

struct diff {
	int64_t run[2];
	char *name[2];
	struct entry *v;
	size_t n, cap;
	size_t count[NFLIPS];
	size_t pass[2], fail[2];
};

/* Skipped jobs stand for the result they point at; a Skipped with none counts as passed. */
static const char job_sql[] =
    "SELECT j.key, coalesce(s.state, CASE j.state WHEN 'Skipped' THEN 'Succeeded' ELSE j.state "
    "END),"
    " coalesce(s.error_class, j.error_class)"
    " FROM jobs j LEFT JOIN jobs s ON j.state = 'Skipped' AND s.id = j.skipped_from"
    " WHERE j.run_id = ?1 ORDER BY j.key";

static enum outcome classify(const char *state, const char *cls)
{
	if (state && !strcmp(state, "Succeeded"))
		return PASS;
	if (state && !strcmp(state, "Failed") && cls &&
	    (!strcmp(cls, "failed") || !strcmp(cls, "timeout")))
		return FAIL;
	return OTHER;
}

static int entry_cmp(const void *x, const void *y)
{
	return strcmp(((const struct entry *)x)->key, ((const struct entry *)y)->key);
}

/* Looks @key up among the first @n entries (side A's, sorted by key). */
static struct entry *find(struct diff *d, size_t n, const char *key)
{
	struct entry probe = {.key = (char *)key};

	return bsearch(&probe, d->v, n, sizeof(*d->v), entry_cmp);
}

static int load_side(struct arl_store *s, struct diff *d, int side, struct arl_err *err)
{
	sqlite3_stmt *st = NULL;
	size_t before = d->n;
	int rc;

	if (arl_store_prepare(s, job_sql, &st, NULL, err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, d->run[side]);
	while ((rc = arl_store_step(s, st, err)) == 1) {
		const char *key = (const char *)sqlite3_column_text(st, 0);
		enum outcome o = classify((const char *)sqlite3_column_text(st, 1),
		                          (const char *)sqlite3_column_text(st, 2));
		/* B's new keys are appended after A's sorted block: search only that block. */
		struct entry *e = side ? find(d, before, key) : NULL;

		if (!e) {
			ARL_GROW(d->v, d->cap, d->n + 1);
			e = &d->v[d->n++];
			memset(e, 0, sizeof(*e));
			e->key = arl_xstrdup(key);
		}
		if (side) {
			e->in_b = true;
			e->b = o;
		} else {
			e->in_a = true;
			e->a = o;
		}
	}
	sqlite3_finalize(st);
	if (rc < 0)
		return -1;
	/* Side A is read in key order; B's additions are appended, so re-sort for lookups. */
	qsort(d->v, d->n, sizeof(*d->v), entry_cmp);
	return 0;
}

static void classify_all(struct diff *d)
{
	for (size_t i = 0; i < d->n; i++) {
		struct entry *e = &d->v[i];

		if (e->in_a && e->a != OTHER)
			e->a == PASS ? d->pass[0]++ : d->fail[0]++;
		if (e->in_b && e->b != OTHER)
			e->b == PASS ? d->pass[1]++ : d->fail[1]++;
		if (!e->in_a)
			e->flip = ADDED;
		else if (!e->in_b)
			e->flip = MISSING;
		else if (e->a == OTHER || e->b == OTHER)
			e->flip = INFRA;
		else if (e->a == FAIL && e->b == PASS)
			e->flip = FIXED;
		else if (e->a == PASS && e->b == FAIL)
			e->flip = BROKEN;
		else if (e->a == FAIL)
			e->flip = STILL_FAILING;
		else
			e->flip = STILL_PASSING;
		d->count[e->flip]++;
	}
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

/* A Skipped job's metrics are those of the job whose result stands for it. */
static const char metric_sql[] =
    "SELECT m.name, avg(m.value), count(*) FROM jobs j JOIN metrics m ON m.job_id ="
    " CASE WHEN j.state = 'Skipped' AND j.skipped_from IS NOT NULL THEN j.skipped_from"
    " ELSE j.id END"
    " WHERE j.run_id = ?1 AND typeof(m.value) IN ('integer', 'real') GROUP BY m.name";

static const char job_metric_sql[] =
    "SELECT a.key, ma.name, ma.value, mb.value FROM jobs a"
    " JOIN jobs b ON b.key = a.key AND b.run_id = ?2"
    " JOIN metrics ma ON ma.job_id = a.id JOIN metrics mb ON mb.job_id = b.id AND mb.name = ma.name"
    " WHERE a.run_id = ?1 AND typeof(ma.value) IN ('integer','real')"
    " AND typeof(mb.value) IN ('integer','real') AND ma.value != mb.value ORDER BY a.key, ma.name";

/* Metric means of both runs, as a JSON array (the table and markdown print from it too). */
static int metrics_json(struct arl_store *s, const struct diff *d, bool per_job, cJSON *out,
                        struct arl_err *err)
{
	cJSON *means = cJSON_AddArrayToObject(out, "metrics");
	sqlite3_stmt *st = NULL;
	int rc = 0;

	for (int side = 0; side < 2 && rc >= 0; side++) {
		if (arl_store_prepare(s, metric_sql, &st, NULL, err) < 0)
			return -1;
		sqlite3_bind_int64(st, 1, d->run[side]);
		while ((rc = arl_store_step(s, st, err)) == 1) {
			const char *name = (const char *)sqlite3_column_text(st, 0);
			cJSON *m = NULL, *it;

			cJSON_ArrayForEach(
			    it, means) if (!strcmp(cJSON_GetObjectItem(it, "name")->valuestring,
			                           name)) m = it;
			if (!m) {
				m = cJSON_CreateObject();
				cJSON_AddItemToArray(means, m);
				cJSON_AddStringToObject(m, "name", name);
			}
			cJSON_AddNumberToObject(m, side ? "meanB" : "meanA",
			                        sqlite3_column_double(st, 1));
		}
		sqlite3_finalize(st);
	}
	if (rc < 0)
		return -1;
	{
		cJSON *it;

		cJSON_ArrayForEach(it, means)
		{
			cJSON *a = cJSON_GetObjectItem(it, "meanA"),
			      *b = cJSON_GetObjectItem(it, "meanB");

			if (a && b)
				cJSON_AddNumberToObject(it, "delta",
				                        b->valuedouble - a->valuedouble);
		}
	}
	if (!per_job)
		return 0;
	means = cJSON_AddArrayToObject(out, "jobMetrics");
	if (arl_store_prepare(s, job_metric_sql, &st, NULL, err) < 0)
		return -1;
	sqlite3_bind_int64(st, 1, d->run[0]);
	sqlite3_bind_int64(st, 2, d->run[1]);
	while ((rc = arl_store_step(s, st, err)) == 1) {
		cJSON *m = cJSON_CreateObject();

		cJSON_AddItemToArray(means, m);
		cJSON_AddStringToObject(m, "key", (const char *)sqlite3_column_text(st, 0));
		cJSON_AddStringToObject(m, "name", (const char *)sqlite3_column_text(st, 1));
		cJSON_AddNumberToObject(m, "a", sqlite3_column_double(st, 2));
		cJSON_AddNumberToObject(m, "b", sqlite3_column_double(st, 3));
		cJSON_AddNumberToObject(
		    m, "delta", sqlite3_column_double(st, 3) - sqlite3_column_double(st, 2));
	}
	sqlite3_finalize(st);
	return rc < 0 ? -1 : 0;
}

static cJSON *to_json(const struct diff *d, double p)
{
	cJSON *o = cJSON_CreateObject(), *runs = cJSON_AddArrayToObject(o, "runs");
	cJSON *counts = cJSON_AddObjectToObject(o, "counts"),
	      *jobs = cJSON_AddObjectToObject(o, "jobs");

	for (int side = 0; side < 2; side++) {
		cJSON *r = cJSON_CreateObject();

		cJSON_AddItemToArray(runs, r);
		cJSON_AddNumberToObject(r, "id", (double)d->run[side]);
		cJSON_AddStringToObject(r, "name", d->name[side]);
		cJSON_AddNumberToObject(r, "passed", (double)d->pass[side]);
		cJSON_AddNumberToObject(r, "failed", (double)d->fail[side]);
		cJSON_AddNumberToObject(r, "passRate", rate(d->pass[side], d->fail[side]));
	}
	for (int f = 0; f < NFLIPS; f++) {
		cJSON *list = cJSON_AddArrayToObject(jobs, arl_rundiff_flip_names[f]);

		cJSON_AddNumberToObject(counts, arl_rundiff_flip_names[f], (double)d->count[f]);
		if (f == STILL_PASSING)
			continue; /* the bulk of a good run: counted, not listed */
		for (size_t i = 0; i < d->n; i++)
			if ((int)d->v[i].flip == f)
				cJSON_AddItemToArray(list, cJSON_CreateString(d->v[i].key));
	}
	cJSON_AddNumberToObject(o, "mcnemarP", p);
	return o;
}

char *arl_rundiff_run_name(struct arl_store *s, int64_t id)
{
	sqlite3_stmt *st = NULL;
	struct arl_err err = ARL_ERR_INIT;
	char *name = NULL;

	if (arl_store_prepare(s, "SELECT name FROM runs WHERE id = ?1", &st, NULL, &err) < 0)
		return arl_xstrdup("?");
	sqlite3_bind_int64(st, 1, id);
	if (arl_store_step(s, st, &err) == 1)
		name = arl_xstrdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return name ? name : arl_xstrdup("?");
}

int arl_rundiff_json(struct arl_store *s, int64_t run_a, int64_t run_b, bool per_job, cJSON **out,
                     struct arl_err *err)
{
	struct diff d = {.run = {run_a, run_b}};
	cJSON *o = NULL;
	int ret = -1;

	d.name[0] = arl_rundiff_run_name(s, run_a);
	d.name[1] = arl_rundiff_run_name(s, run_b);
	if (load_side(s, &d, 0, err) < 0 || load_side(s, &d, 1, err) < 0)
		goto out;
	classify_all(&d);
	o = to_json(&d, mcnemar_exact(d.count[BROKEN], d.count[FIXED]));
	if (metrics_json(s, &d, per_job, o, err) < 0)
		goto out;
	*out = o;
	o = NULL;
	ret = 0;
out:
	cJSON_Delete(o);
	for (size_t i = 0; i < d.n; i++)
		free(d.v[i].key);
	free(d.v);
	free(d.name[0]);
	free(d.name[1]);
	return ret;
}
