/*
 * `arl-batch diff [RUN_A] [RUN_B]`: how the jobs of two runs compare, by job key. Jobs that
 * ended in `infra` or were cancelled in either run say nothing about the work under test, so
 * they are listed apart and left out of the counts, the pass rates and the McNemar test.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "cli.h"
#include "err.h"
#include "store.h"
#include "util.h"
#include "banned.h"

enum outcome { PASS, FAIL, OTHER }; /* OTHER: infra, cancelled, never ran */
enum flip { FIXED, BROKEN, STILL_FAILING, STILL_PASSING, ADDED, MISSING, INFRA, NFLIPS };

static const char *const flip_names[] = {"fixed", "broken",  "still_failing", "still_passing",
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

static void usage(FILE *out)
{
	fputs(
	    "usage: arl-batch diff [--db PATH] [--format table|json|markdown] [--metrics]\n"
	    "                      [--fail-on-regression] [RUN_A [RUN_B]]\n"
	    "\n"
	    "Compares two runs job by job (by key): fixed (Failed -> Succeeded), broken\n"
	    "(Succeeded -> Failed), still failing, added, missing. Jobs that ended in 'infra' or\n"
	    "were cancelled in either run are listed apart and excluded from the counts. Prints\n"
	    "each run's pass rate, McNemar's exact p-value for the flips, and metric means.\n"
	    "\n"
	    "Without runs: the latest run and the one before it of the same name. With RUN_A\n"
	    "only: RUN_A against the latest run of its name. A run is an id, 'latest' or a name.\n"
	    "\n"
	    "      --metrics             also list metric deltas per job\n"
	    "      --fail-on-regression  exit 1 when any job broke\n",
	    out);
}

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

static const char metric_sql[] =
    "SELECT m.name, avg(m.value), count(*) FROM metrics m JOIN jobs j ON j.id = m.job_id"
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
		cJSON *list = cJSON_AddArrayToObject(jobs, flip_names[f]);

		cJSON_AddNumberToObject(counts, flip_names[f], (double)d->count[f]);
		if (f == STILL_PASSING)
			continue; /* the bulk of a good run: counted, not listed */
		for (size_t i = 0; i < d->n; i++)
			if ((int)d->v[i].flip == f)
				cJSON_AddItemToArray(list, cJSON_CreateString(d->v[i].key));
	}
	cJSON_AddNumberToObject(o, "mcnemarP", p);
	return o;
}

static void print_text(const cJSON *o, bool markdown, bool per_job)
{
	const cJSON *runs = cJSON_GetObjectItem(o, "runs"), *jobs = cJSON_GetObjectItem(o, "jobs");
	const cJSON *counts = cJSON_GetObjectItem(o, "counts"), *it;
	const char *h = markdown ? "### " : "";

	if (markdown)
		printf("## arl-batch diff: run %d -> run %d\n\n| run | name | passed | failed | "
		       "pass rate |\n|---|---|---|---|---|\n",
		       cJSON_GetArrayItem(runs, 0)->child->valueint,
		       cJSON_GetArrayItem(runs, 1)->child->valueint);
	cJSON_ArrayForEach(it, runs)
	{
		int id = cJSON_GetObjectItem(it, "id")->valueint;
		const char *name = cJSON_GetObjectItem(it, "name")->valuestring;
		int pass = cJSON_GetObjectItem(it, "passed")->valueint;
		int fail = cJSON_GetObjectItem(it, "failed")->valueint;
		double r = cJSON_GetObjectItem(it, "passRate")->valuedouble * 100;

		if (markdown)
			printf("| %d | %s | %d | %d | %.1f%% |\n", id, name, pass, fail, r);
		else
			printf("run %-6d %-30s pass rate %5.1f%% (%d passed, %d failed)\n", id,
			       name, r, pass, fail);
	}
	printf("%s%sfixed %d, broken %d, still failing %d, still passing %d, added %d, missing %d; "
	       "infra/cancelled (not counted) %d; McNemar exact p = %.4g%s\n",
	       markdown ? "\n" : "", markdown ? "**" : "",
	       cJSON_GetObjectItem(counts, "fixed")->valueint,
	       cJSON_GetObjectItem(counts, "broken")->valueint,
	       cJSON_GetObjectItem(counts, "still_failing")->valueint,
	       cJSON_GetObjectItem(counts, "still_passing")->valueint,
	       cJSON_GetObjectItem(counts, "added")->valueint,
	       cJSON_GetObjectItem(counts, "missing")->valueint,
	       cJSON_GetObjectItem(counts, "infra")->valueint,
	       cJSON_GetObjectItem(o, "mcnemarP")->valuedouble, markdown ? "**" : "");
	if (markdown)
		printf("\n");
	for (int f = 0; f < NFLIPS; f++) {
		const cJSON *list = cJSON_GetObjectItem(jobs, flip_names[f]), *k;

		if (!cJSON_GetArraySize(list))
			continue;
		printf("\n%s%s (%d):\n", h, flip_names[f], cJSON_GetArraySize(list));
		cJSON_ArrayForEach(k, list)
		    printf(markdown ? "- `%s`\n" : "  %s\n", k->valuestring);
	}
	if (cJSON_GetArraySize(cJSON_GetObjectItem(o, "metrics"))) {
		printf(
		    markdown
		        ? "\n%smetrics\n\n| metric | mean A | mean B | delta |\n|---|---|---|---|\n"
		        : "\n%smetrics (mean A -> mean B, delta):\n",
		    h);
		cJSON_ArrayForEach(it, cJSON_GetObjectItem(o, "metrics"))
		{
			const cJSON *a = cJSON_GetObjectItem(it, "meanA"),
			            *b = cJSON_GetObjectItem(it, "meanB");
			const cJSON *dl = cJSON_GetObjectItem(it, "delta");
			char sa[32] = "-", sb[32] = "-", sd[32] = "-";

			if (a)
				snprintf(sa, sizeof(sa), "%.6g", a->valuedouble);
			if (b)
				snprintf(sb, sizeof(sb), "%.6g", b->valuedouble);
			if (dl)
				snprintf(sd, sizeof(sd), "%+.6g", dl->valuedouble);
			printf(markdown ? "| %s | %s | %s | %s |\n" : "  %-24s %12s -> %-12s %s\n",
			       cJSON_GetObjectItem(it, "name")->valuestring, sa, sb, sd);
		}
	}
	if (per_job && cJSON_GetArraySize(cJSON_GetObjectItem(o, "jobMetrics"))) {
		printf("\n%smetric changes per job:\n", h);
		cJSON_ArrayForEach(it, cJSON_GetObjectItem(o, "jobMetrics"))
		    printf(markdown ? "- `%s` %s: %.6g -> %.6g\n" : "  %-40s %-20s %.6g -> %.6g\n",
		           cJSON_GetObjectItem(it, "key")->valuestring,
		           cJSON_GetObjectItem(it, "name")->valuestring,
		           cJSON_GetObjectItem(it, "a")->valuedouble,
		           cJSON_GetObjectItem(it, "b")->valuedouble);
	}
}

/* The latest run of @name with an id below @below (0: any). */
static int previous_of(struct arl_store *s, const char *name, int64_t below, int64_t *out,
                       struct arl_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (arl_store_prepare(s, "SELECT max(id) FROM runs WHERE name = ?1 AND (?2 = 0 OR id < ?2)",
	                      &st, NULL, err) < 0)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, below);
	rc = arl_store_step(s, st, err);
	if (rc == 1 && sqlite3_column_type(st, 0) != SQLITE_NULL)
		*out = sqlite3_column_int64(st, 0);
	else if (rc >= 0)
		rc = arl_error(err, ARL_E_INVALID, "no %s run named '%s' to compare with",
		               below ? "earlier" : "other", name);
	sqlite3_finalize(st);
	return rc < 0 ? -1 : 0;
}

static char *run_name(struct arl_store *s, int64_t id)
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

int cmd_diff(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"db", required_argument, NULL, 'd'}, {"format", required_argument, NULL, 'f'},
	    {"metrics", no_argument, NULL, 'm'},  {"fail-on-regression", no_argument, NULL, 'r'},
	    {"help", no_argument, NULL, 'h'},     {NULL, 0, NULL, 0},
	};
	const char *db_opt = NULL, *format = "table";
	bool per_job = false, fail_on_regression = false;
	struct arl_store *s = NULL;
	struct arl_err err = ARL_ERR_INIT;
	struct diff d = {0};
	cJSON *o = NULL;
	int c, ret = ARL_EXIT_INCOMPLETE;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			db_opt = optarg;
			break;
		case 'f':
			format = optarg;
			break;
		case 'm':
			per_job = true;
			break;
		case 'r':
			fail_on_regression = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return ARL_EXIT_USAGE;
		}
	}
	if (argc - optind > 2 ||
	    (strcmp(format, "table") && strcmp(format, "json") && strcmp(format, "markdown"))) {
		usage(stderr);
		return ARL_EXIT_USAGE;
	}
	if (arl_store_open(&s, arl_cli_db_path(db_opt), ARL_STORE_NOCREATE, &err) < 0)
		goto fail;
	if (argc - optind == 2) {
		if (arl_store_run_resolve(s, argv[optind], &d.run[0], &err) < 0 ||
		    arl_store_run_resolve(s, argv[optind + 1], &d.run[1], &err) < 0)
			goto fail;
		d.name[0] = run_name(s, d.run[0]);
		d.name[1] = run_name(s, d.run[1]);
	} else if (argc - optind == 1) {
		if (arl_store_run_resolve(s, argv[optind], &d.run[0], &err) < 0)
			goto fail;
		d.name[0] = run_name(s, d.run[0]);
		if (previous_of(s, d.name[0], 0, &d.run[1], &err) < 0)
			goto fail;
		d.name[1] = run_name(s, d.run[1]);
	} else {
		if (arl_store_run_resolve(s, "latest", &d.run[1], &err) < 0)
			goto fail;
		d.name[1] = run_name(s, d.run[1]);
		if (previous_of(s, d.name[1], d.run[1], &d.run[0], &err) < 0)
			goto fail;
		d.name[0] = run_name(s, d.run[0]);
	}
	if (load_side(s, &d, 0, &err) < 0 || load_side(s, &d, 1, &err) < 0)
		goto fail;
	classify_all(&d);
	o = to_json(&d, mcnemar_exact(d.count[BROKEN], d.count[FIXED]));
	if (metrics_json(s, &d, per_job, o, &err) < 0)
		goto fail;
	if (!strcmp(format, "json")) {
		char *text = cJSON_Print(o);

		puts(text);
		cJSON_free(text);
	} else {
		print_text(o, !strcmp(format, "markdown"), per_job);
	}
	ret = fail_on_regression && d.count[BROKEN] ? 1 : 0;
	goto out;
fail:
	fprintf(stderr, "arl-batch: %s\n", err.msg);
	ret = err.code == ARL_E_INVALID ? 1 : ARL_EXIT_INCOMPLETE;
out:
	cJSON_Delete(o);
	for (size_t i = 0; i < d.n; i++)
		free(d.v[i].key);
	free(d.v);
	free(d.name[0]);
	free(d.name[1]);
	arl_store_close(s);
	return ret;
}
