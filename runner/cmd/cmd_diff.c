/*
 * `arl-batch diff [RUN_A] [RUN_B]`: how the jobs of two runs compare, by job key. Jobs that
 * ended in `infra` or were cancelled in either run say nothing about the work under test, so
 * they are listed apart and left out of the counts, the pass rates and the McNemar test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cmd/cli.h"
#include "cmd/options.h"
#include "err.h"
#include "log.h"
#include "view/rundiff.h"
#include "store/store.h"
#include "store/store_diff.h"
#include "util.h"
#include "banned.h"

static const char *const synopsis[] = {
    "diff [--db PATH] [--format table|json|markdown] [--metrics]",
    "     [--fail-on-regression] [RUN_A [RUN_B]]", NULL};

static const char about[] =
    "Compares two runs job by job (by key): fixed (Failed -> Succeeded), broken\n"
    "(Succeeded -> Failed), still failing, added, missing. Jobs that ended in 'infra' or\n"
    "were cancelled in either run are listed apart and excluded from the counts. Prints\n"
    "each run's pass rate, McNemar's exact p-value for the flips, and metric means.\n"
    "\n"
    "Without runs: the latest run against the one before it of the same name. With one\n"
    "run: that run against the one before it of its name. A run is an id, 'latest' or\n"
    "a name.\n";

enum format { F_TABLE, F_JSON, F_MARKDOWN };

static const struct arl_opt_choice formats[] = {
    {"table", F_TABLE}, {"json", F_JSON}, {"markdown", F_MARKDOWN}, {NULL, 0}};

static void print_text(const struct arl_rundiff *d, bool markdown)
{
	const char *h = markdown ? "### " : "";

	if (markdown)
		printf(
		    "## arl-batch diff: run %lld -> run %lld\n\n| run | name | passed | failed | "
		    "pass rate |\n|---|---|---|---|---|\n",
		    (long long)d->runs[0].id, (long long)d->runs[1].id);
	for (int side = 0; side < 2; side++) {
		const struct arl_rundiff_run *rn = &d->runs[side];
		/* Names, keys and metric names may come from step output: escaped for the terminal. */
		char *name = arl_term_str(rn->name);
		double r = rn->pass_rate * 100;

		if (markdown)
			printf("| %lld | %s | %zu | %zu | %.1f%% |\n", (long long)rn->id, name,
			       rn->passed, rn->failed, r);
		else
			printf("run %-6lld %-30s pass rate %5.1f%% (%zu passed, %zu failed)\n",
			       (long long)rn->id, name, r, rn->passed, rn->failed);
		free(name);
	}
	printf(
	    "%s%sfixed %zu, broken %zu, still failing %zu, still passing %zu, added %zu, missing "
	    "%zu; infra/cancelled (not counted) %zu; McNemar exact p = %.4g%s\n",
	    markdown ? "\n" : "", markdown ? "**" : "", d->counts[ARL_FLIP_FIXED],
	    d->counts[ARL_FLIP_BROKEN], d->counts[ARL_FLIP_STILL_FAILING],
	    d->counts[ARL_FLIP_STILL_PASSING], d->counts[ARL_FLIP_ADDED],
	    d->counts[ARL_FLIP_MISSING], d->counts[ARL_FLIP_INFRA], d->mcnemar_p,
	    markdown ? "**" : "");
	if (markdown)
		printf("\n");
	for (int f = 0; f < ARL_RUNDIFF_NFLIPS; f++) {
		const struct arl_rundiff_keys *list = &d->keys[f];

		if (!list->n)
			continue;
		printf("\n%s%s (%zu):\n", h, arl_rundiff_flip_names[f], list->n);
		for (size_t i = 0; i < list->n; i++) {
			char *key = arl_term_str(list->v[i]);

			printf(markdown ? "- `%s`\n" : "  %s\n", key);
			free(key);
		}
	}
	if (d->nmetrics) {
		printf(markdown ? "\n%smetrics\n\n| metric | mean A (jobs) | mean B (jobs) | delta "
		                  "|\n|---|---|---|---|\n"
		                : "\n%smetrics (mean A (jobs) -> mean B (jobs), delta):\n",
		       h);
		for (size_t i = 0; i < d->nmetrics; i++) {
			const struct arl_rundiff_metric *m = &d->metrics[i];
			char sa[48] = "-", sb[48] = "-", sd[32] = "-", *name;

			/* How many jobs each mean is over: a mean of 3 jobs is not one of 300. */
			if (m->has_a)
				snprintf(sa, sizeof(sa), "%.6g (%lld)", m->mean_a,
				         (long long)m->count_a);
			if (m->has_b)
				snprintf(sb, sizeof(sb), "%.6g (%lld)", m->mean_b,
				         (long long)m->count_b);
			if (m->has_a && m->has_b)
				snprintf(sd, sizeof(sd), "%+.6g", m->delta);
			name = arl_term_str(m->name);
			printf(markdown ? "| %s | %s | %s | %s |\n" : "  %-24s %18s -> %-18s %s\n",
			       name, sa, sb, sd);
			free(name);
		}
	}
	if (d->per_job && d->njob_metrics) {
		printf("\n%smetric changes per job:\n", h);
		for (size_t i = 0; i < d->njob_metrics; i++) {
			const struct arl_rundiff_job_metric *m = &d->job_metrics[i];
			char *key = arl_term_str(m->key);
			char *name = arl_term_str(m->name);

			printf(markdown ? "- `%s` %s: %.6g -> %.6g\n"
			                : "  %-40s %-20s %.6g -> %.6g\n",
			       key, name, m->a, m->b);
			free(key);
			free(name);
		}
	}
}

/* The latest run of @name with an id below @below. */
static int previous_of(struct arl_store *s, const char *name, int64_t below, int64_t *out,
                       struct arl_err *err)
{
	int rc = arl_store_diff_run_before(s, name, below, out, err);

	if (rc == 0)
		return arl_error(err, ARL_E_INVALID,
		                 "no run named '%s' before run %lld to compare with", name,
		                 (long long)below);
	return rc < 0 ? -1 : 0;
}

int cmd_diff(int argc, char **argv)
{
	const char *db_opt = NULL;
	bool per_job = false, fail_on_regression = false;
	struct arl_store *s = NULL;
	struct arl_err err = ARL_ERR_INIT;
	int64_t run[2] = {0, 0};
	char *name = NULL;
	struct arl_rundiff d = {0};
	int format = F_TABLE, nruns, ret = ARL_EXIT_INCOMPLETE;
	const struct arl_option opts[] = {
	    ARL_OPT_DB(&db_opt),
	    ARL_OPT_CHOICE(0, "format", &format, formats, "table (default), json or markdown"),
	    ARL_OPT_FLAG(0, "metrics", &per_job, "also list metric deltas per job"),
	    ARL_OPT_FLAG(0, "fail-on-regression", &fail_on_regression, "exit 1 when any job broke"),
	    ARL_OPT_END(),
	};
	const struct arl_command_usage u = {
	    .name = "diff", .synopsis = synopsis, .about = about, .options = opts};

	if ((nruns = arl_options_parse(&u, argc, argv, 0, &ret)) < 0)
		return ret;
	if (nruns > 2)
		return arl_cli_unexpected(&u, argv[2]);
	ret = ARL_EXIT_INCOMPLETE;
	if (arl_store_open(&s, arl_cli_db_path(db_opt), ARL_STORE_NOCREATE, &err) < 0)
		goto fail;
	if (nruns == 2) {
		if (arl_store_run_resolve(s, argv[0], &run[0], &err) < 0 ||
		    arl_store_run_resolve(s, argv[1], &run[1], &err) < 0)
			goto fail;
	} else {
		/* One run (or none: the latest) against the one before it of the same name. */
		if (arl_store_run_resolve(s, nruns == 1 ? argv[0] : "latest", &run[1], &err) < 0)
			goto fail;
		name = arl_rundiff_run_name(s, run[1]);
		if (previous_of(s, name, run[1], &run[0], &err) < 0)
			goto fail;
	}
	if (arl_rundiff(s, run[0], run[1], per_job, &d, &err) < 0)
		goto fail;
	if (format == F_JSON) {
		cJSON *o = arl_rundiff_json(&d);
		char *text = cJSON_Print(o);

		puts(text);
		cJSON_free(text);
		cJSON_Delete(o);
	} else {
		print_text(&d, format == F_MARKDOWN);
	}
	ret = fail_on_regression && d.counts[ARL_FLIP_BROKEN] ? 1 : 0;
	goto out;
fail:
	arl_log_err(NULL, &err);
	ret = err.code == ARL_E_INVALID ? 1 : ARL_EXIT_INCOMPLETE;
out:
	arl_rundiff_release(&d);
	free(name);
	arl_store_close(s);
	return ret;
}
