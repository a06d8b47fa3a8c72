/* `arl-batch run FILE...`: load every file, then print the plan (--dry-run) or run it. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "backend/backend.h"
#include "buf.h"
#include "cmd/cli_images.h"
#include "cmd/cli.h"
#include "cmd/options.h"
#include "cmd/params.h"
#include "jobfile/dataset.h"
#include "result.h"
#include "err.h"
#include "jobfile/jobload.h"
#include "log.h"
#include "run/progress.h"
#include "run/run.h"
#include "jobfile/expand.h"
#include "run/runlock.h"
#include "jobfile/select.h"
#include "util.h"
#include "banned.h"

static const char *const synopsis[] = {"run [OPTIONS] FILE...", NULL};

static const char about[] =
    "Runs the jobs of the given job files in sandboxes and records every run, job,\n"
    "attempt and step in the results database.\n";

static const char epilog[] =
    "Exit status: 0 all succeeded, 1 a job failed, 2 invalid input (nothing ran),\n"
    "3 results incomplete (infra failures, database or backend trouble), 4 halted by\n"
    "--deadline/--fail-fast/--max-failures, 130/143 interrupted.\n";

static const struct arl_opt_choice progress_modes[] = {{"auto", ARL_PROGRESS_AUTO},
                                                       {"bar", ARL_PROGRESS_BAR},
                                                       {"plain", ARL_PROGRESS_PLAIN},
                                                       {"none", ARL_PROGRESS_NONE},
                                                       {NULL, 0}};
static const struct arl_opt_choice color_modes[] = {
    {"auto", ARL_COLOR_AUTO}, {"always", ARL_COLOR_ALWAYS}, {"never", ARL_COLOR_NEVER}, {NULL, 0}};
static const struct arl_opt_choice overlaps[] = {{"forbid", ARL_OVERLAP_FORBID},
                                                 {"wait", ARL_OVERLAP_WAIT},
                                                 {"allow", ARL_OVERLAP_ALLOW},
                                                 {NULL, 0}};

/*
 * The plan. With @skip and @why (--resume, --rerun): per job whether it would run or be
 * skipped, and why, then the counts.
 */
static void print_plan(struct arl_jobfile *const *files, size_t nfiles, const bool *skip,
                       char *const *why)
{
	char tbuf[32];
	size_t n = 0, nskip = 0;

	/* On stderr: stdout is the plan's table, one line per job. */
	for (size_t i = 0; i < nfiles; i++) {
		struct arl_buf b = ARL_BUF_INIT;

		for (const cJSON *p = files[i]->params ? files[i]->params->child : NULL; p;
		     p = p->next)
			arl_buf_addf(&b, " %s=%s", p->string, p->valuestring);
		if (b.len) {
			char *v = arl_term_str(b.p);

			arl_log_info("%s: params:%s", files[i]->path, v);
			free(v);
		}
		arl_buf_release(&b);
	}
	if (skip)
		printf("%-6s ", "PLAN");
	printf("%-40s %-16s %-10s %-8s %-8s %s%s\n", "KEY", "POOL", "BACKEND", "TIMEOUT", "RETRIES",
	       "STEPS", skip ? "  WHY" : "");
	for (size_t i = 0; i < nfiles; i++) {
		const struct arl_jobfile *f = files[i];

		for (size_t k = 0; k < f->njobs; k++, n++) {
			const struct arl_job *j = &f->jobs[k];
			const struct arl_pool *p = &f->pools[j->pool];

			if (skip) {
				printf("%-6s ", skip[n] ? "skip" : "run");
				nskip += skip[n];
			}

			printf("%-40s %-16s %-10s %-8s %-8d ", j->key, p->name, p->kind->name,
			       arl_fmt_duration(j->timeout_ms, tbuf, sizeof(tbuf)), j->retries);
			struct arl_job full;
			struct arl_err err = ARL_ERR_INIT;
			const struct arl_job *shown = j;

			if (j->lazy && arl_job_materialize(f, j, &full, &err) == 0)
				shown = &full;
			for (size_t s = 0; s < shown->steps.n; s++)
				printf("%s%s", s ? "," : "", shown->steps.v[s].name);
			if (skip) {
				char *w = arl_term_str(why[n]);

				printf("  %s", w);
				free(w);
			}
			putchar('\n');
			if (shown != j)
				arl_job_release(&full);
		}
	}
	if (skip)
		printf("would run %zu job%s, skip %zu\n", n - nskip, n - nskip == 1 ? "" : "s",
		       nskip);
}

/* --dry-run with --resume or --rerun: the plan with each job's decision, from the database. */
static int print_decided_plan(struct arl_jobfile *const *files, size_t nfiles,
                              const struct arl_run_opts *ro)
{
	size_t n = 0;
	bool *skip;
	char **why;
	struct arl_err err = ARL_ERR_INIT;
	int ret = 0;

	for (size_t i = 0; i < nfiles; i++)
		n += files[i]->njobs;
	skip = arl_xcalloc(n ? n : 1, sizeof(*skip));
	why = arl_xcalloc(n ? n : 1, sizeof(*why));
	if (arl_run_decide(files, nfiles, ro, skip, why, &err) < 0) {
		arl_log_err(NULL, &err);
		ret = ARL_EXIT_INCOMPLETE;
	} else {
		print_plan(files, nfiles, skip, why);
	}
	for (size_t i = 0; i < n; i++)
		free(why[i]);
	free(why);
	free(skip);
	return ret;
}

/* The options a backend owns (--kubeconfig ...), checked by it and handed to it as given. */
struct backend_settings {
	struct arl_backend_setting v[32];
	size_t n;
};

static int add_backend_setting(struct backend_settings *s, const char *name, const char *value,
                               struct arl_err *err)
{
	size_t i = 0;

	if (arl_backend_option_check(name, value, err) < 0)
		return -1;
	while (i < s->n && strcmp(s->v[i].name, name))
		i++; /* given again: the last wins */
	if (i == sizeof(s->v) / sizeof(s->v[0]))
		return arl_error(err, ARL_E_USAGE, "too many backend options");
	s->v[i] = (struct arl_backend_setting){name, value};
	s->n += i == s->n;
	return 0;
}

/* --kubeconfig and the other options a backend owns: value is the struct backend_settings. */
static int backend_setting(const struct arl_option *o, const char *arg, struct arl_err *err)
{
	return add_backend_setting(o->value, o->long_name, arg, err);
}

/*
 * @fixed (@n options), then the options every registered backend owns (kubernetes:
 * --kubeconfig ...), collected into @settings for the backends to read; then the end.
 */
static struct arl_option *with_backend_options(const struct arl_option *fixed, size_t n,
                                               struct backend_settings *settings)
{
	const struct arl_backend_ops *b;
	struct arl_option *opts;
	size_t total = n + 1;

	for (size_t i = 0; (b = arl_backend_at(i)); i++)
		for (const struct arl_backend_option *o = b->options; o && o->name; o++)
			total++;
	opts = arl_xcalloc(total, sizeof(*opts)); /* zeroed: the last is ARL_OPT_END() */
	memcpy(opts, fixed, n * sizeof(*fixed));
	for (size_t i = 0; (b = arl_backend_at(i)); i++)
		for (const struct arl_backend_option *o = b->options; o && o->name; o++)
			opts[n++] = (struct arl_option)ARL_OPT_CALLBACK(
			    0, o->name, settings, backend_setting, o->argh, o->help);
	return opts;
}

/* The registered backends' names into @buf: "a, b or c" (@sep NULL) or "a|b|c" (@sep "|"). */
static const char *backend_names(char *buf, size_t size, const char *sep)
{
	const struct arl_backend_ops *x;
	size_t len = 0;

	buf[0] = '\0';
	for (size_t i = 0; (x = arl_backend_at(i)) && len < size; i++)
		len += (size_t)snprintf(buf + len, size - len, "%s%s",
		                        !i                      ? ""
		                        : sep                   ? sep
		                        : arl_backend_at(i + 1) ? ", "
		                                                : " or ",
		                        arl_backend_name(x));
	return buf;
}

/* --backend NAME: a registered backend. */
static int pick_backend(const struct arl_option *o, const char *arg, struct arl_err *err)
{
	const struct arl_backend_ops *b = arl_backend_find(arg);
	char names[256];

	if (b) {
		*(const struct arl_backend_ops **)o->value = b;
		return 0;
	}
	return arl_error(err, ARL_E_USAGE, "expected %s",
	                 backend_names(names, sizeof(names), NULL));
}

/* --rerun "infra,timeout" -> ARL_RETRY_BIT()s in *(unsigned *)o->value. */
static int parse_classes(const struct arl_option *o, const char *arg, struct arl_err *err)
{
	char buf[128];
	unsigned bits = 0;

	snprintf(buf, sizeof(buf), "%s", arg);
	for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		enum arl_class c;

		if (arl_class_parse(tok, &c) < 0)
			bits = 0;
		else
			bits |= ARL_RETRY_BIT(c);
		if (!bits)
			break;
	}
	if (!bits)
		return arl_error(err, ARL_E_USAGE,
		                 "expected classes among failed, timeout, infra and cancelled, "
		                 "comma-separated");
	*(unsigned *)o->value = bits;
	return 0;
}

/* --shard I/N into the struct arl_select. */
static int parse_shard(const struct arl_option *o, const char *arg, struct arl_err *err)
{
	struct arl_select *sel = o->value;

	if (arl_select_parse_shard(arg, &sel->shard_index, &sel->shard_count) < 0)
		return arl_error(err, ARL_E_USAGE, "expected I/N with 1 <= I <= N");
	return 0;
}

/* --budget METRIC=MAX into the run options. */
static int parse_budget(const struct arl_option *o, const char *arg, struct arl_err *err)
{
	struct arl_run_opts *ro = o->value;
	const char *eq = strchr(arg, '=');
	char *end = NULL;
	double max = 0;

	if (eq && eq != arg && (size_t)(eq - arg) == strcspn(arg, ":;=")) {
		errno = 0;
		max = strtod(eq + 1, &end);
	}
	if (!end || end == eq + 1 || *end || errno || !isfinite(max) || max <= 0)
		return arl_error(err, ARL_E_USAGE,
		                 "expected METRIC=MAX with MAX a number above 0 and METRIC"
		                 " without ':' or ';', e.g. cost_usd=25");
	free((char *)ro->budget_metric); /* the last --budget wins */
	ro->budget_metric = arl_xstrndup(arg, (size_t)(eq - arg));
	ro->budget_max = max;
	return 0;
}

int cmd_run(int argc, char **argv)
{
	struct arl_run_opts ro = ARL_RUN_OPTS_INIT;
	const struct arl_backend_ops *backend = NULL;
	struct backend_settings settings = {.n = 0};
	struct arl_select sel = {0};
	struct arl_cli_params params = {0};
	struct arl_jobfile **files = NULL;
	const char *db = NULL, *state = NULL;
	char *state_dir = NULL;
	size_t nfiles = 0, max_record = 0;
	int ret = ARL_EXIT_USAGE, bad = 0, dry = 0, n;
	size_t nbad;
	char backend_argh[256];
	const struct arl_option fixed[] = {
	    ARL_OPT_INT('j', "concurrency", &ro.concurrency, 1, 100000, "N",
	                "jobs in flight at most (default: sum of the pools' replicas)"),
	    ARL_OPT_DB(&db),
	    ARL_OPT_STRING(0, "run-name", &ro.run_name, "NAME",
	                   "label of the run (default: the files' batch names)"),
	    ARL_OPT_PARAMS(&params),
	    ARL_OPT_FLAG(0, "dry-run", &dry, "validate, expand and print the plan; run nothing"),
	    ARL_OPT_CALLBACK(0, "backend", &backend, pick_backend,
	                     backend_names(backend_argh, sizeof(backend_argh), "|"),
	                     "run every pool on this backend"),
	    ARL_OPT_SET(0, "fail-fast", &ro.max_failures, 1,
	                "stop starting jobs after the first failed job"),
	    ARL_OPT_INT(0, "max-failures", &ro.max_failures, 1, INT32_MAX, "N",
	                "stop starting jobs after N failed jobs"),
	    ARL_OPT_CALLBACK(0, "budget", &ro, parse_budget, "METRIC=MAX",
	                     "stop starting jobs once the run's jobs' METRIC sums to MAX\n"
	                     "(with the files' budget: blocks); the rest are cancelled"),
	    ARL_OPT_DURATION(0, "deadline", &ro.deadline_ms, 1, INT64_MAX, "DURATION",
	                     "limit for the whole run; what is left is cancelled"),
	    ARL_OPT_SIZE(0, "capture-max", &ro.capture_max, 1024, (int64_t)1 << 30, "BYTES",
	                 "output kept per step and stream (default 1048576; 1Mi)"),
	    ARL_OPT_SIZE(0, "max-record", &max_record, 1024, (int64_t)ARL_DATASET_MAX_BYTES,
	                 "BYTES", "longest foreach dataset record (default 16777216; 16Mi)"),
	    ARL_OPT_STRING(0, "state-dir", &state, "DIR",
	                   "where sandboxes live (default: next to the database)"),
	    ARL_OPT_CHOICE(0, "progress", &ro.progress, progress_modes,
	                   "progress on stderr: a live bar, a line per job, or nothing\n"
	                   "(default auto: the bar on a terminal, else plain)"),
	    ARL_OPT_CHOICE(0, "color", &ro.color, color_modes,
	                   "colour on stderr (default auto: a terminal, NO_COLOR unset)"),
	    ARL_OPT_STRING(0, "events", &ro.events_path, "FILE",
	                   "write JSON Lines events of the run to FILE ('-': stdout)"),
	    ARL_OPT_FLAG(0, "resume", &ro.resume,
	                 "skip jobs whose standing result in runs of this name (the\n"
	                 "newest, a skipped job's being what it stands for)\n"
	                 "succeeded unchanged (same spec hash)"),
	    ARL_OPT_CALLBACK(0, "rerun", &ro.rerun, parse_classes, "CLASSES",
	                     "run only jobs whose standing result failed in these\n"
	                     "classes (comma-separated: failed,timeout,infra,cancelled);\n"
	                     "the others are skipped and count as what they stand for"),
	    ARL_OPT_STRING(0, "only", &sel.only, "GLOB",
	                   "run only jobs whose name (or key) matches"),
	    ARL_OPT_INT(0, "limit", &sel.limit, 1, INT64_MAX, "N", "at most N jobs per file"),
	    ARL_OPT_CALLBACK(0, "shard", &sel, parse_shard, "I/N",
	                     "run only shard I of N (1-based; a stable split by job key)"),
	    ARL_OPT_CHOICE(0, "overlap", &ro.overlap, overlaps,
	                   "another run of this name holds the lock: exit 75 (forbid,\n"
	                   "the default), wait for it, or run anyway"),
	};
	struct arl_option *opts =
	    with_backend_options(fixed, sizeof(fixed) / sizeof(fixed[0]), &settings);
	struct arl_command_usage u = {
	    .name = "run", .synopsis = synopsis, .about = about, .options = opts, .epilog = epilog};

	n = arl_options_parse(&u, argc, argv, 0, &ret);
	free(opts);       /* parsed: the values are in place */
	u.options = NULL; /* later usage errors read only the name and synopsis */
	if (n < 0)
		goto out;
	ret = ARL_EXIT_USAGE;
	if (ro.resume && ro.rerun) {
		ret = arl_options_error(&u, "--resume and --rerun cannot be combined");
		goto out;
	}
	if (n == 0) {
		ret = arl_options_error(&u, "no job files given");
		goto out;
	}
	ro.quiet = ro.progress == ARL_PROGRESS_NONE;
	ro.backend_settings = settings.v;
	ro.nbackend_settings = settings.n;
	if (max_record)
		arl_dataset_set_max_record(max_record);
	/* run/ resolves nothing from the environment: the paths are the command line's. */
	ro.db_path = arl_cli_db_path(db);
	ro.state_dir = state_dir = arl_cli_state_dir(state, ro.db_path);
	files = arl_xcalloc((size_t)n, sizeof(*files));
	for (int i = 0; i < n; i++) {
		struct arl_jobfile *f = NULL;
		struct arl_log_blob diags;
		int rc = arl_jobfile_load_with(argv[i], backend ? backend->pool : NULL, params.v,
		                               params.n, &f, arl_log_begin(&diags));

		arl_log_end(&diags); /* a file's diagnostics, whole */
		if (rc < 0) {
			bad++;
			continue;
		}
		for (size_t k = 0; k < nfiles; k++) {
			if (!strcmp(files[k]->stem, f->stem)) {
				arl_log_error("'%s' and '%s' have the same name '%s': job keys "
				              "(FILE_STEM/JOB_NAME) would collide",
				              files[k]->path, f->path, f->stem);
				bad++;
			}
		}
		arl_cli_params_seen(&params, f);
		files[nfiles++] = f;
	}
	if (!bad)
		bad = arl_cli_params_unknown(&params);
	if (bad) {
		arl_log_error("nothing was run: %d invalid file%s", bad, bad == 1 ? "" : "s");
		goto out;
	}
	arl_select_apply(files, nfiles, &sel);
	/* The images the sandboxes run from, resolved (ids in the spec hashes) before any job. */
	if ((nbad = arl_cli_images(files, nfiles, !dry))) {
		arl_log_error("nothing was run: %zu image%s cannot be used", nbad,
		              nbad == 1 ? "" : "s");
		goto out;
	}
	if (dry) {
		if (ro.resume || ro.rerun) {
			ret = print_decided_plan(files, nfiles, &ro);
			goto out;
		}
		print_plan(files, nfiles, NULL, NULL);
		ret = 0;
		goto out;
	}
	ret = arl_run_execute(files, nfiles, &ro);
out:
	for (size_t i = 0; i < nfiles; i++)
		arl_jobfile_free(files[i]);
	free(files);
	free(state_dir);
	arl_cli_params_release(&params);
	free((char *)ro.budget_metric);
	return ret;
}
