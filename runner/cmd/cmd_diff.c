/*
 * `arl-batch diff [RUN_A] [RUN_B]`: how the jobs of two runs compare, by job key. Jobs that
 * ended in `infra` or were cancelled in either run say nothing about the work under test, so
 * they are listed apart and left out of the counts, the pass rates and the McNemar test.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "cmd/cli.h"
#include "err.h"
#include "view/rundiff.h"
#include "store/store.h"
#include "util.h"
#include "banned.h"

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
	    "Without runs: the latest run against the one before it of the same name. With one\n"
	    "run: that run against the one before it of its name. A run is an id, 'latest' or\n"
	    "a name.\n"
	    "\n"
	    "      --metrics             also list metric deltas per job\n"
	    "      --fail-on-regression  exit 1 when any job broke\n",
	    out);
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
		/* Names, keys and metric names may come from step output: escaped for the terminal. */
		char *name = arl_term_str(cJSON_GetObjectItem(it, "name")->valuestring);
		int pass = cJSON_GetObjectItem(it, "passed")->valueint;
		int fail = cJSON_GetObjectItem(it, "failed")->valueint;
		double r = cJSON_GetObjectItem(it, "passRate")->valuedouble * 100;

		if (markdown)
			printf("| %d | %s | %d | %d | %.1f%% |\n", id, name, pass, fail, r);
		else
			printf("run %-6d %-30s pass rate %5.1f%% (%d passed, %d failed)\n", id,
			       name, r, pass, fail);
		free(name);
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
	for (int f = 0; f < ARL_RUNDIFF_NFLIPS; f++) {
		const cJSON *list = cJSON_GetObjectItem(jobs, arl_rundiff_flip_names[f]), *k;

		if (!cJSON_GetArraySize(list))
			continue;
		printf("\n%s%s (%d):\n", h, arl_rundiff_flip_names[f], cJSON_GetArraySize(list));
		cJSON_ArrayForEach(k, list)
		{
			char *key = arl_term_str(k->valuestring);

			printf(markdown ? "- `%s`\n" : "  %s\n", key);
			free(key);
		}
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
			char sa[32] = "-", sb[32] = "-", sd[32] = "-", *name;

			if (a)
				snprintf(sa, sizeof(sa), "%.6g", a->valuedouble);
			if (b)
				snprintf(sb, sizeof(sb), "%.6g", b->valuedouble);
			if (dl)
				snprintf(sd, sizeof(sd), "%+.6g", dl->valuedouble);
			name = arl_term_str(cJSON_GetObjectItem(it, "name")->valuestring);
			printf(markdown ? "| %s | %s | %s | %s |\n" : "  %-24s %12s -> %-12s %s\n",
			       name, sa, sb, sd);
			free(name);
		}
	}
	if (per_job && cJSON_GetArraySize(cJSON_GetObjectItem(o, "jobMetrics"))) {
		printf("\n%smetric changes per job:\n", h);
		cJSON_ArrayForEach(it, cJSON_GetObjectItem(o, "jobMetrics"))
		{
			char *key = arl_term_str(cJSON_GetObjectItem(it, "key")->valuestring);
			char *name = arl_term_str(cJSON_GetObjectItem(it, "name")->valuestring);

			printf(markdown ? "- `%s` %s: %.6g -> %.6g\n"
			                : "  %-40s %-20s %.6g -> %.6g\n",
			       key, name, cJSON_GetObjectItem(it, "a")->valuedouble,
			       cJSON_GetObjectItem(it, "b")->valuedouble);
			free(key);
			free(name);
		}
	}
}

/* The latest run of @name with an id below @below. */
static int previous_of(struct arl_store *s, const char *name, int64_t below, int64_t *out,
                       struct arl_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (arl_store_prepare(s, "SELECT max(id) FROM runs WHERE name = ?1 AND id < ?2", &st, NULL,
	                      err) < 0)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, below);
	rc = arl_store_step(s, st, err);
	if (rc == 1 && sqlite3_column_type(st, 0) != SQLITE_NULL)
		*out = sqlite3_column_int64(st, 0);
	else if (rc >= 0)
		rc = arl_error(err, ARL_E_INVALID,
		               "no run named '%s' before run %lld to compare with", name,
		               (long long)below);
	sqlite3_finalize(st);
	return rc < 0 ? -1 : 0;
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
	int64_t run[2] = {0, 0};
	char *name = NULL;
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
		if (arl_store_run_resolve(s, argv[optind], &run[0], &err) < 0 ||
		    arl_store_run_resolve(s, argv[optind + 1], &run[1], &err) < 0)
			goto fail;
	} else {
		/* One run (or none: the latest) against the one before it of the same name. */
		if (arl_store_run_resolve(s, argc - optind == 1 ? argv[optind] : "latest", &run[1],
		                          &err) < 0)
			goto fail;
		name = arl_rundiff_run_name(s, run[1]);
		if (previous_of(s, name, run[1], &run[0], &err) < 0)
			goto fail;
	}
	if (arl_rundiff_json(s, run[0], run[1], per_job, &o, &err) < 0)
		goto fail;
	if (!strcmp(format, "json")) {
		char *text = cJSON_Print(o);

		puts(text);
		cJSON_free(text);
	} else {
		print_text(o, !strcmp(format, "markdown"), per_job);
	}
	ret = fail_on_regression &&
	              cJSON_GetObjectItem(cJSON_GetObjectItem(o, "counts"), "broken")->valueint
	          ? 1
	          : 0;
	goto out;
fail:
	fprintf(stderr, "arl-batch: %s\n", err.msg);
	ret = err.code == ARL_E_INVALID ? 1 : ARL_EXIT_INCOMPLETE;
out:
	cJSON_Delete(o);
	free(name);
	arl_store_close(s);
	return ret;
}
