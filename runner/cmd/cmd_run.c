/* `arl-batch run FILE...`: load every file, then print the plan (--dry-run) or run it. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"
#include "jobfile/dataset.h"
#include "result.h"
#include "err.h"
#include "jobfile/jobload.h"
#include "run/progress.h"
#include "run/run.h"
#include "jobfile/expand.h"
#include "run/runlock.h"
#include "jobfile/select.h"
#include "util.h"
#include "banned.h"

static void usage(FILE *out)
{
	fputs(
	    "usage: arl-batch run [OPTIONS] FILE...\n"
	    "\n"
	    "Runs the jobs of the given job files in sandboxes and records every run, job,\n"
	    "attempt and step in the results database.\n"
	    "\n"
	    "  -j, --concurrency N     jobs in flight at most (default: sum of the pools' "
	    "replicas)\n"
	    "      --db PATH           results database (default $ARL_BATCH_DB, else "
	    "./arl-batch.db)\n"
	    "      --run-name NAME     label of the run (default: the files' batch names)\n"
	    "      --dry-run           validate, expand and print the plan; run nothing\n"
	    "      --backend local|kubernetes\n"
	    "                          run every pool on this backend\n"
	    "      --fail-fast         stop starting jobs after the first failed job\n"
	    "      --max-failures N    stop starting jobs after N failed jobs\n"
	    "      --deadline DURATION limit for the whole run; what is left is cancelled\n"
	    "      --capture-max BYTES output kept per step and stream (default 1048576)\n"
	    "      --max-record BYTES  longest foreach dataset record (default 16777216)\n"
	    "      --state-dir DIR     where sandboxes live (default: next to the database)\n"
	    "      --progress auto|bar|plain|none\n"
	    "                          progress on stderr: a live bar, a line per job, or nothing\n"
	    "                          (default auto: the bar on a terminal, else plain)\n"
	    "      --color auto|always|never\n"
	    "                          colour on stderr (default auto: a terminal, NO_COLOR "
	    "unset)\n"
	    "      --events FILE       write JSON Lines events of the run to FILE ('-': stdout)\n"
	    "      --resume            skip jobs whose standing result in runs of this name (the\n"
	    "                          newest, a skipped job's being what it stands for)\n"
	    "                          succeeded unchanged (same spec hash)\n"
	    "      --rerun CLASSES     run only jobs whose standing result failed in these\n"
	    "                          classes (comma-separated: failed,timeout,infra,cancelled);\n"
	    "                          the others are skipped and count as what they stand for\n"
	    "      --only GLOB         run only jobs whose name (or key) matches\n"
	    "      --limit N           at most N jobs per file\n"
	    "      --shard I/N         run only shard I of N (1-based; a stable split by job key)\n"
	    "      --overlap forbid|wait|allow\n"
	    "                          another run of this name holds the lock: exit 75 (forbid,\n"
	    "                          the default), wait for it, or run anyway\n"
	    "      --kubeconfig PATH   kubernetes: the kubeconfig (default $KUBECONFIG,\n"
	    "                          ~/.kube/config, else the in-cluster service account)\n"
	    "      --context NAME      kubernetes: the kubeconfig context (default: current)\n"
	    "      --kube-qps N        kubernetes: API requests per second (default: 10 per\n"
	    "                          kubernetes pool replica, at least 50)\n"
	    "      --kube-burst N      kubernetes: API request burst (default: 2 per replica,\n"
	    "                          at least 100)\n"
	    "  -h, --help              show this help\n"
	    "\n"
	    "Exit status: 0 all succeeded, 1 a job failed, 2 invalid input (nothing ran),\n"
	    "3 results incomplete (infra failures, database or backend trouble), 4 halted by\n"
	    "--deadline/--fail-fast/--max-failures, 130/143 interrupted.\n",
	    out);
}

enum {
	OPT_DB = 256,
	OPT_RUN_NAME,
	OPT_DRY_RUN,
	OPT_BACKEND,
	OPT_FAIL_FAST,
	OPT_MAX_FAILURES,
	OPT_DEADLINE,
	OPT_CAPTURE_MAX,
	OPT_MAX_RECORD,
	OPT_STATE_DIR,
	OPT_PROGRESS,
	OPT_COLOR,
	OPT_EVENTS,
	OPT_RESUME,
	OPT_RERUN,
	OPT_ONLY,
	OPT_LIMIT,
	OPT_SHARD,
	OPT_OVERLAP,
	OPT_KUBECONFIG,
	OPT_CONTEXT,
	OPT_KUBE_QPS,
	OPT_KUBE_BURST,
};

static void print_plan(struct arl_jobfile *const *files, size_t nfiles)
{
	char tbuf[32];

	printf("%-40s %-16s %-10s %-8s %-8s %s\n", "KEY", "POOL", "BACKEND", "TIMEOUT", "RETRIES",
	       "STEPS");
	for (size_t i = 0; i < nfiles; i++) {
		const struct arl_jobfile *f = files[i];

		for (size_t k = 0; k < f->njobs; k++) {
			const struct arl_job *j = &f->jobs[k];
			const struct arl_pool *p = &f->pools[j->pool];

			printf("%-40s %-16s %-10s %-8s %-8d ", j->key, p->name,
			       p->backend == ARL_BACKEND_KUBERNETES ? "kubernetes" : "local",
			       arl_fmt_duration(j->timeout_ms, tbuf, sizeof(tbuf)), j->retries);
			struct arl_job full;
			struct arl_err err = ARL_ERR_INIT;
			const struct arl_job *shown = j;

			if (j->lazy && arl_job_materialize(f, j, &full, &err) == 0)
				shown = &full;
			for (size_t s = 0; s < shown->steps.n; s++)
				printf("%s%s", s ? "," : "", shown->steps.v[s].name);
			putchar('\n');
			if (shown != j)
				arl_job_release(&full);
		}
	}
}

/* "infra,timeout" -> ARL_RETRY_BIT()s. */
static int parse_classes(const char *s, unsigned *out)
{
	char buf[128];
	unsigned bits = 0;

	snprintf(buf, sizeof(buf), "%s", s);
	for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		enum arl_class c;

		if (arl_class_parse(tok, &c) < 0)
			return -1;
		bits |= ARL_RETRY_BIT(c);
	}
	if (!bits)
		return -1;
	*out = bits;
	return 0;
}

int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"concurrency", required_argument, NULL, 'j'},
	    {"db", required_argument, NULL, OPT_DB},
	    {"run-name", required_argument, NULL, OPT_RUN_NAME},
	    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
	    {"backend", required_argument, NULL, OPT_BACKEND},
	    {"fail-fast", no_argument, NULL, OPT_FAIL_FAST},
	    {"max-failures", required_argument, NULL, OPT_MAX_FAILURES},
	    {"deadline", required_argument, NULL, OPT_DEADLINE},
	    {"capture-max", required_argument, NULL, OPT_CAPTURE_MAX},
	    {"max-record", required_argument, NULL, OPT_MAX_RECORD},
	    {"state-dir", required_argument, NULL, OPT_STATE_DIR},
	    {"progress", required_argument, NULL, OPT_PROGRESS},
	    {"color", required_argument, NULL, OPT_COLOR},
	    {"events", required_argument, NULL, OPT_EVENTS},
	    {"resume", no_argument, NULL, OPT_RESUME},
	    {"rerun", required_argument, NULL, OPT_RERUN},
	    {"only", required_argument, NULL, OPT_ONLY},
	    {"limit", required_argument, NULL, OPT_LIMIT},
	    {"shard", required_argument, NULL, OPT_SHARD},
	    {"overlap", required_argument, NULL, OPT_OVERLAP},
	    {"kubeconfig", required_argument, NULL, OPT_KUBECONFIG},
	    {"context", required_argument, NULL, OPT_CONTEXT},
	    {"kube-qps", required_argument, NULL, OPT_KUBE_QPS},
	    {"kube-burst", required_argument, NULL, OPT_KUBE_BURST},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct arl_run_opts ro = ARL_RUN_OPTS_INIT;
	struct arl_select sel = {0};
	struct arl_jobfile **files = NULL;
	size_t nfiles = 0;
	int c, ret = ARL_EXIT_USAGE, bad = 0, dry = 0, backend = -1, li;
	int64_t v;

	optind = 1;
	while ((li = -1, c = getopt_long(argc, argv, "j:h", opts, &li)) != -1) {
		switch (c) {
		case 'j':
			if (arl_parse_i64(optarg, 1, 100000, &v) < 0)
				goto bad_value;
			ro.concurrency = (int)v;
			break;
		case OPT_DB:
			ro.db_path = optarg;
			break;
		case OPT_RUN_NAME:
			ro.run_name = optarg;
			break;
		case OPT_DRY_RUN:
			dry = 1;
			break;
		case OPT_BACKEND:
			if (!strcmp(optarg, "local"))
				backend = ARL_BACKEND_LOCAL;
			else if (!strcmp(optarg, "kubernetes"))
				backend = ARL_BACKEND_KUBERNETES;
			else
				goto bad_value;
			break;
		case OPT_FAIL_FAST:
			ro.max_failures = 1;
			break;
		case OPT_MAX_FAILURES:
			if (arl_parse_i64(optarg, 1, INT32_MAX, &v) < 0)
				goto bad_value;
			ro.max_failures = (int)v;
			break;
		case OPT_DEADLINE:
			if (arl_parse_duration(optarg, &ro.deadline_ms) < 0 || ro.deadline_ms <= 0)
				goto bad_value;
			break;
		case OPT_MAX_RECORD:
			if (arl_parse_i64(optarg, 1024, (int64_t)ARL_DATASET_MAX_BYTES, &v) < 0)
				goto bad_value;
			arl_dataset_set_max_record((size_t)v);
			break;
		case OPT_CAPTURE_MAX:
			if (arl_parse_i64(optarg, 1024, (int64_t)1 << 30, &v) < 0)
				goto bad_value;
			ro.capture_max = (size_t)v;
			break;
		case OPT_STATE_DIR:
			ro.state_dir = optarg;
			break;
		case OPT_KUBECONFIG:
			ro.kubeconfig = optarg;
			break;
		case OPT_CONTEXT:
			ro.kube_context = optarg;
			break;
		case OPT_KUBE_QPS:
			if (arl_parse_i64(optarg, 1, 100000, &v) < 0)
				goto bad_value;
			ro.kube_qps = (double)v;
			break;
		case OPT_KUBE_BURST:
			if (arl_parse_i64(optarg, 1, 100000, &v) < 0)
				goto bad_value;
			ro.kube_burst = (int)v;
			break;
		case OPT_PROGRESS: {
			enum arl_progress_mode m;

			if (arl_progress_parse_mode(optarg, &m) < 0)
				goto bad_value;
			ro.progress = (int)m;
			ro.quiet = m == ARL_PROGRESS_NONE;
			break;
		}
		case OPT_COLOR: {
			enum arl_color_mode m;

			if (arl_progress_parse_color(optarg, &m) < 0)
				goto bad_value;
			ro.color = (int)m;
			break;
		}
		case OPT_EVENTS:
			ro.events_path = optarg;
			break;
		case OPT_RESUME:
			ro.resume = 1;
			break;
		case OPT_RERUN:
			if (parse_classes(optarg, &ro.rerun) < 0)
				goto bad_value;
			break;
		case OPT_ONLY:
			sel.only = optarg;
			break;
		case OPT_LIMIT:
			if (arl_parse_i64(optarg, 1, INT64_MAX, &v) < 0)
				goto bad_value;
			sel.limit = (size_t)v;
			break;
		case OPT_SHARD:
			if (arl_select_parse_shard(optarg, &sel.shard_index, &sel.shard_count) < 0)
				goto bad_value;
			break;
		case OPT_OVERLAP:
			if (!strcmp(optarg, "forbid"))
				ro.overlap = ARL_OVERLAP_FORBID;
			else if (!strcmp(optarg, "wait"))
				ro.overlap = ARL_OVERLAP_WAIT;
			else if (!strcmp(optarg, "allow"))
				ro.overlap = ARL_OVERLAP_ALLOW;
			else
				goto bad_value;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return ARL_EXIT_USAGE;
		}
	}
	if (ro.resume && ro.rerun) {
		fputs("arl-batch run: --resume and --rerun cannot be combined\n", stderr);
		return ARL_EXIT_USAGE;
	}
	if (optind >= argc) {
		fputs("arl-batch run: no job files given\n", stderr);
		usage(stderr);
		return ARL_EXIT_USAGE;
	}
	files = arl_xcalloc((size_t)(argc - optind), sizeof(*files));
	for (int i = optind; i < argc; i++) {
		struct arl_jobfile *f = NULL;

		if (arl_jobfile_load(argv[i], &f, stderr) < 0) {
			bad++;
			continue;
		}
		for (size_t k = 0; k < nfiles; k++) {
			if (!strcmp(files[k]->stem, f->stem)) {
				fprintf(
				    stderr,
				    "arl-batch: '%s' and '%s' have the same name '%s': job keys "
				    "(FILE_STEM/JOB_NAME) would collide\n",
				    files[k]->path, f->path, f->stem);
				bad++;
			}
		}
		if (backend >= 0)
			for (size_t p = 0; p < f->npools; p++)
				f->pools[p].backend = (enum arl_backend_kind)backend;
		files[nfiles++] = f;
	}
	if (bad) {
		fprintf(stderr, "arl-batch: nothing was run: %d invalid file%s\n", bad,
		        bad == 1 ? "" : "s");
		goto out;
	}
	arl_select_apply(files, nfiles, &sel);
	if (dry) {
		print_plan(files, nfiles);
		ret = 0;
		goto out;
	}
	ret = arl_run_execute(files, nfiles, &ro);
out:
	for (size_t i = 0; i < nfiles; i++)
		arl_jobfile_free(files[i]);
	free(files);
	return ret;
bad_value:
	fprintf(stderr, "arl-batch run: invalid value '%s' for %s%s (see --help)\n", optarg,
	        li >= 0 ? "--" : "-", li >= 0 ? opts[li].name : "j");
	return ARL_EXIT_USAGE;
}
