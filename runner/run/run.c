/*
 * DESIGN: `run` in four phases. (1) Open the store and record the run with every job Pending
 * or, standing on an earlier result (--resume, --rerun), Skipped, in one transaction, so that
 * a crash at any later point leaves a complete picture and an earlier one leaves nothing. (2) Open one backend per kind
 * in use; a missing prerequisite (bwrap, a cluster) fails here, before any job. (3) Let the
 * scheduler run the jobs; its hooks run on this (the main) thread and commit each finished
 * job at once. (4) Close the backends (releasing warm sandboxes), finish the run row, print the
 * summary and map the outcome to the exit codes of docs/cli.md.
 */
#include "run/run.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "backend/backend.h"
#include "err.h"
#include "log.h"
#include "run/events.h"
#include "run/ledger.h"
#include "run/progress.h"
#include "run/runlock.h"
#include "run/scheduler.h"
#include "run/secrets.h"
#include "store/store.h"
#include "store/store_runs.h"
#include "store/store_artifacts.h"
#include "live.h"
#include "util.h"
#include "banned.h"

static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
	int saved = errno;
	unsigned char b = (unsigned char)sig;

	(void)!write(sig_pipe[1], &b, 1); /* O_NONBLOCK: a full pipe is fine */
	errno = saved;
}

struct run {
	const struct arl_run_opts *o;
	struct arl_store *store;
	int64_t run_id;
	char run_id_str[24];
	char *run_name;
	struct arl_sched_job *jobs; /* the jobs to run (skipped ones are not scheduled) */
	struct arl_secrets secrets; /* the files' secrets: given to steps, masked in results */
	cJSON *params;              /* the run's parameters (runs.params), NULL: none */
	int64_t *job_ids;           /* jobs.id of each of r.jobs */
	size_t njobs, done;         /* njobs: all jobs of the run, skipped included */
	size_t succeeded, failed, cancelled, skipped, by_class[5];
	/* Of the skipped jobs, those whose standing result is not a success (they count). */
	size_t carried_failed, carried_cancelled, carried_class[5];
	size_t recorded, not_started; /* results committed; jobs cancelled before they started */
	size_t spec_changed; /* --resume: succeeded before, but their spec changed: run again */
	int store_failed;
	bool store_full; /* the first store failure was a full disk */
	struct arl_err store_err;
	bool abort; /* the scheduler's: set to stop the run */
	int64_t started;
	struct arl_progress *progress; /* while jobs run, everything for stderr goes through it */
	struct arl_events *events;     /* --events, or NULL */
	char *artifacts_dir;           /* beside the database (store_artifacts.h) */
	int live_fd;                   /* DB.live/RUN (live.h), or -1: no live output */
};

/*
 * The store refused a write, so more jobs would only lose their results too: keep the first
 * error and stop the run as an interrupt does (jobs in flight cancelled, their sandboxes
 * released, nothing new started) without being one, so that it exits 3.
 */
static void stop_on_store_failure(struct run *r, const struct arl_err *err)
{
	if (r->store_failed++)
		return;
	r->store_err = *err;
	r->store_full = arl_store_full(r->store);
	r->abort = true;
}

static void on_start(void *ctx, struct arl_sched_job *j)
{
	struct run *r = ctx;
	struct arl_err err = ARL_ERR_INIT;

	/* After a failure the run's end closes what is left, in one transaction. */
	if (!r->store_failed &&
	    arl_store_job_set_running(r->store, r->job_ids[j - r->jobs], 0, &err) < 0)
		stop_on_store_failure(r, &err);
	arl_progress_job_start(r->progress, (size_t)(j - r->jobs), j->job->key);
	arl_events_job_started(r->events, j->job->key, r->job_ids[j - r->jobs], j->env.pool->name);
}

static void record_done(void *ctx, struct arl_sched_job *j)
{
	struct run *r = ctx;
	struct arl_err err = ARL_ERR_INIT;
	const struct arl_job_result *res = &j->result;

	/*
	 * Once a write failed, the jobs still to report are the ones the stop cancels: trying
	 * each (after a 5 s busy wait, say) would only delay the stop.
	 */
	bool recorded = false;

	if (!r->store_failed) {
		if (arl_store_job_finish(r->store, r->job_ids[j - r->jobs], res, &err) < 0) {
			stop_on_store_failure(r, &err);
		} else {
			recorded = true;
			/* The database has the output now. */
			arl_live_job_done(r->live_fd, r->job_ids[j - r->jobs]);
		}
	}
	r->recorded += recorded;
	if (!res->nattempts)
		r->not_started++;
	r->done++;
	/*
	 * The summary counts what the database holds: a result that could not be written is a
	 * job the run's end (or the repair) closes as Cancelled.
	 */
	if (!recorded)
		r->cancelled++;
	else if (res->state == ARL_STATE_SUCCEEDED)
		r->succeeded++;
	else if (res->state == ARL_STATE_CANCELLED)
		r->cancelled++;
	else
		r->failed++;
	r->by_class[recorded ? res->cls : ARL_CLASS_CANCELLED]++;
	arl_events_job_finished(r->events, j->job->key, r->job_ids[j - r->jobs], res);
	arl_progress_job_done(r->progress, (size_t)(j - r->jobs), j->job->key, res);
}

/* Once stored, a result's output is not needed: memory must not grow with what jobs print. */
static void on_done(void *ctx, struct arl_sched_job *j)
{
	record_done(ctx, j);
	arl_job_result_release(&j->result);
}

/* Attempts and retries only feed the live display and the event stream. */
static void on_attempt_start(void *ctx, struct arl_sched_job *j, int number)
{
	struct run *r = ctx;

	arl_progress_attempt_start(r->progress, (size_t)(j - r->jobs), number);
	arl_events_attempt_started(r->events, j->job->key, r->job_ids[j - r->jobs], number);
}

static void on_attempt_done(void *ctx, struct arl_sched_job *j, const struct arl_attempt_result *a)
{
	struct run *r = ctx;

	arl_progress_attempt_done(r->progress, (size_t)(j - r->jobs));
	arl_events_attempt_finished(r->events, j->job->key, r->job_ids[j - r->jobs], a);
}

static void on_budget(void *ctx, const struct arl_sched_budget *b)
{
	struct run *r = ctx;

	arl_events_budget(r->events, b->metric, b->max, b->spent);
}

/* Why the run stopped starting jobs, for runs.halted_by; NULL when it did not halt. */
static const char *halt_text(const struct arl_sched_outcome *out, const struct arl_run_opts *o,
                             char *buf, size_t len)
{
	switch (out->stop) {
	case ARL_STOP_BUDGET:
		return out->budget_msg;
	case ARL_STOP_FAILURES:
		if (o->max_failures == 1)
			return "--fail-fast: a job failed";
		snprintf(buf, len, "--max-failures %d reached", o->max_failures);
		return buf;
	case ARL_STOP_DEADLINE:
		return "--deadline passed";
	case ARL_STOP_DRAIN:
		return "SIGHUP: drained";
	default:
		return NULL;
	}
}

static void on_retry(void *ctx, struct arl_sched_job *j, int64_t delay_ms)
{
	struct run *r = ctx;
	const struct arl_attempt_result *a = &j->result.attempts[j->result.nattempts - 1];

	arl_progress_retry(r->progress, (size_t)(j - r->jobs), a->number, a->cls, delay_ms);
	arl_events_retry(r->events, j->job->key, r->job_ids[j - r->jobs], a, delay_ms);
}

/* Starts the live display and the event stream (skipped jobs are final from the start). */
static int start_views(struct run *r, struct arl_jobfile *const *files, size_t nfiles,
                       const int64_t *skipped_from, const int64_t *ids, size_t nrun,
                       int concurrency, struct arl_err *err)
{
	struct arl_progress_opts po = {.mode = r->o->quiet ? ARL_PROGRESS_NONE
	                                                   : (enum arl_progress_mode)r->o->progress,
	                               .color = (enum arl_color_mode)r->o->color,
	                               .fd = arl_log_fd(),
	                               .total = r->njobs,
	                               .skipped = r->skipped,
	                               .nslots = nrun,
	                               .concurrency = concurrency};
	struct arl_job_result skip = {.state = ARL_STATE_SKIPPED};
	size_t k = 0;

	arl_events_run_started(r->events, r->run_id, r->run_name, r->params, r->njobs, r->skipped,
	                       concurrency);
	for (size_t i = 0; i < nfiles; i++)
		for (size_t j = 0; j < files[i]->njobs; j++, k++)
			if (skipped_from[k])
				arl_events_job_finished(r->events, files[i]->jobs[j].key, ids[k],
				                        &skip);
	return arl_progress_new(&r->progress, &po, err);
}

/* Run-level events end with the run; a write error is reported, not fatal. */
static void finish_views(struct run *r, const char *status, int code)
{
	struct arl_err err = ARL_ERR_INIT;
	struct arl_events_counts c = {r->njobs, r->succeeded, r->failed, r->skipped, r->cancelled};

	arl_progress_free(r->progress);
	r->progress = NULL;
	if (status)
		arl_events_run_finished(r->events, status, code, arl_now_ms() - r->started, &c);
	if (arl_events_close(r->events, &err) < 0)
		arl_log_err(NULL, &err);
	r->events = NULL;
}

static char *default_run_name(struct arl_jobfile *const *files, size_t n)
{
	size_t len = 1;
	char *s;

	for (size_t i = 0; i < n; i++)
		len += strlen(files[i]->name) + 1;
	s = arl_xcalloc(1, len);
	for (size_t i = 0; i < n; i++) {
		if (i)
			memcpy(s + strlen(s), "+", 2);
		memcpy(s + strlen(s), files[i]->name, strlen(files[i]->name) + 1);
	}
	return s;
}

static int install_signals(void)
{
	struct sigaction sa;

	if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	return 0;
}

static void restore_signals(void)
{
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
}

/* Makes the job rows one at a time, in the order of the run's jobs. */
struct row_cursor {
	struct arl_jobfile *const *files;
	size_t file, job;
	char (*hashes)[33];
	const int64_t *skipped_from;
	char *item, *labels; /* the current row's */
};

static int next_row(void *arg, size_t k, struct arl_job_row *row, struct arl_err *err)
{
	struct row_cursor *c = arg;
	const struct arl_jobfile *f;
	const struct arl_job *job;
	cJSON *lab = cJSON_CreateObject();

	while (c->job >= c->files[c->file]->njobs) {
		c->file++;
		c->job = 0;
	}
	f = c->files[c->file];
	job = &f->jobs[c->job++];
	for (size_t l = 0; l < job->labels.n; l++)
		cJSON_AddStringToObject(lab, job->labels.v[l].key, job->labels.v[l].val);
	cJSON_free(c->labels);
	c->labels = cJSON_PrintUnformatted(lab);
	cJSON_Delete(lab);
	/* .jsonl jobs keep no item text (job.h): it is read back for its row only */
	free(c->item);
	c->item = NULL;
	if (arl_job_item(job, &c->item, err) < 0)
		return -1;
	*row =
	    (struct arl_job_row){.key = job->key,
	                         .name = job->name,
	                         .file = f->path,
	                         .pool = f->pools[job->pool].name,
	                         .item = c->item,
	                         .labels = c->labels,
	                         .spec_hash = c->hashes[k],
	                         .skipped_from = c->skipped_from[k] > 0 ? c->skipped_from[k] : 0};
	return 0;
}

/* Records the run with its Pending and Skipped jobs, in one transaction. */
/* Does @str hold the value of one of @s's secrets? */
static bool has_secret(const struct arl_secrets *s, const char *str)
{
	char *c;
	bool found;

	if (!str || !s->nmasks)
		return false;
	c = arl_xstrdup(str);
	arl_secrets_mask_str(s, &c);
	found = strcmp(c, str) != 0;
	free(c);
	return found;
}

/*
 * A secret's value given as a parameter (or in a foreach item) would be recorded in clear
 * through what it renders: the run's name, a job's key, name, labels or item, which the
 * database, events and report keep. Such a run is refused before anything is recorded.
 */
static int refuse_recorded_secrets(const struct run *r, struct arl_jobfile *const *files,
                                   size_t nfiles, struct arl_err *err)
{
	const char *tail = "a secret is never recorded: give it to steps through `secrets:` only";

	if (has_secret(&r->secrets, r->run_name))
		return arl_error(err, ARL_E_USAGE, "the run's name holds the value of a secret; %s",
		                 tail);
	for (size_t i = 0; i < nfiles; i++)
		for (size_t j = 0; j < files[i]->njobs; j++) {
			const struct arl_job *job = &files[i]->jobs[j];
			const char *what = NULL;

			if (has_secret(&r->secrets, job->key))
				what = "name holds";
			else if (has_secret(&r->secrets, job->item))
				what = "item holds";
			for (size_t l = 0; !what && l < job->labels.n; l++)
				if (has_secret(&r->secrets, job->labels.v[l].key) ||
				    has_secret(&r->secrets, job->labels.v[l].val))
					what = "labels hold";
			if (what) {
				char *key = arl_xstrdup(job->key);

				arl_secrets_mask_str(&r->secrets, &key);
				arl_error(err, ARL_E_USAGE,
				          "%s: job '%s': its %s the value of a secret (from a"
				          " parameter or item); %s",
				          files[i]->path, key, what, tail);
				free(key);
				return -1;
			}
		}
	return 0;
}

static int record_run(struct run *r, struct arl_jobfile *const *files, size_t nfiles,
                      const char *isolation, const char *notes, char (*hashes)[33],
                      const int64_t *skipped_from, int64_t *ids, struct arl_err *err)
{
	cJSON *fl = cJSON_CreateArray();
	char *files_json, *params_json = NULL;
	struct row_cursor cur = {.files = files, .hashes = hashes, .skipped_from = skipped_from};
	struct arl_run_info info = {0};
	int ret = -1;

	for (size_t i = 0; i < nfiles; i++)
		cJSON_AddItemToArray(fl, cJSON_CreateString(files[i]->path));
	files_json = cJSON_PrintUnformatted(fl);
	/* Every file's parameters; a name two files declare is recorded once (the first's). */
	for (size_t i = 0; i < nfiles; i++) {
		for (const cJSON *p = files[i]->params ? files[i]->params->child : NULL; p;
		     p = p->next) {
			char *v = arl_xstrdup(p->valuestring);

			if (!r->params)
				r->params = cJSON_CreateObject();
			/* A secret given as a parameter too is not recorded in clear either. */
			arl_secrets_mask_str(&r->secrets, &v);
			if (!cJSON_GetObjectItemCaseSensitive(r->params, p->string))
				cJSON_AddItemToObject(r->params, p->string, cJSON_CreateString(v));
			free(v);
		}
	}
	if (r->params)
		info.params = params_json = cJSON_PrintUnformatted(r->params);
	info.name = r->run_name;
	info.files = files_json;
	info.jobs_total = (int64_t)r->njobs;
	info.isolation = isolation;
	info.notes = notes;
	ret = arl_store_run_plan(r->store, &info, r->njobs, next_row, &cur, &r->run_id, ids, err);
	cJSON_free(cur.labels);
	free(cur.item);
	cJSON_free(files_json);
	cJSON_free(params_json);
	cJSON_Delete(fl);
	return ret;
}

/* Which registered backend (arl_backend_at()) runs pools of @kind; their count if none. */
static size_t backend_slot(const struct arl_pool_kind *kind)
{
	const struct arl_backend_ops *ops;
	size_t b = 0;

	while ((ops = arl_backend_at(b)) && ops->pool != kind)
		b++;
	return b;
}

static size_t backend_count(void)
{
	return backend_slot(NULL);
}

/* Opens every backend with a pool in use; states[b] is arl_backend_at(b)'s handle. */
static int open_backends(struct arl_jobfile *const *files, size_t nfiles,
                         const struct arl_backend_opts *bo, void **states, struct arl_err *err)
{
	const struct arl_backend_ops *ops;

	for (size_t i = 0; i < nfiles; i++)
		for (size_t p = 0; p < files[i]->npools; p++)
			if (backend_slot(files[i]->pools[p].kind) == backend_count())
				return arl_error(
				    err, ARL_E_BACKEND,
				    "pool '%s' uses the %s backend, which is not available",
				    files[i]->pools[p].name, files[i]->pools[p].kind->name);
	for (size_t b = 0; (ops = arl_backend_at(b)); b++) {
		const struct arl_pool **pools = NULL;
		size_t n = 0;
		int rc;

		for (size_t i = 0; i < nfiles; i++)
			for (size_t p = 0; p < files[i]->npools; p++)
				if (files[i]->pools[p].kind == ops->pool) {
					pools = arl_xrealloc(pools, (n + 1) * sizeof(*pools));
					pools[n++] = &files[i]->pools[p];
				}
		if (!n)
			continue;
		rc = ops->open(&states[b], bo, pools, n, err);
		free(pools);
		if (rc < 0) {
			arl_err_prefix(err, "%s backend", arl_backend_name(ops));
			return -1;
		}
	}
	return 0;
}

static void close_backends(void **states)
{
	const struct arl_backend_ops *ops;

	for (size_t b = 0; states && (ops = arl_backend_at(b)); b++) {
		if (states[b])
			ops->close(states[b]);
		states[b] = NULL;
	}
}

/*
 * The run's isolation: the labels of the pools in use ("bwrap,none", "kubernetes"), in the
 * order the backends list them, and their notes (a pool that runs steps as plain processes).
 */
static void describe_isolation(struct arl_jobfile *const *files, size_t nfiles, char *iso,
                               size_t isolen, char *notes, size_t nlen)
{
	const struct arl_pool_kind *kind;

	notes[0] = iso[0] = '\0';
	for (size_t x = 0; (kind = arl_pool_kind_at(x)); x++) {
		const char *const *labels = kind->isolation_labels;
		size_t nlabels = 0;

		while (labels && labels[nlabels])
			nlabels++;
		if (!nlabels) { /* none listed: its name, for every pool */
			labels = NULL;
			nlabels = 1;
		}
		for (size_t l = 0; l < nlabels; l++) {
			bool seen = false;

			for (size_t i = 0; i < nfiles; i++) {
				for (size_t p = 0; p < files[i]->npools; p++) {
					const struct arl_pool *pool = &files[i]->pools[p];
					const char *note = NULL;

					if (pool->kind != kind ||
					    (kind->isolation ? kind->isolation(pool->config, &note)
					                     : 0) != l)
						continue;
					seen = true;
					if (note)
						snprintf(
						    notes + strlen(notes), nlen - strlen(notes),
						    "%spool '%s' (%s): %s", notes[0] ? "; " : "",
						    pool->name, files[i]->path, note);
				}
			}
			if (seen)
				snprintf(iso + strlen(iso), isolen - strlen(iso), "%s%s",
				         iso[0] ? "," : "", labels ? labels[l] : kind->name);
		}
	}
}

/*
 * Whether a job with standing result @p (@found: it has one) is skipped under --resume or
 * --rerun, and why, in @why: "succeeded in run 3, spec unchanged", "spec changed since its
 * success in run 3", "no earlier result", ... (docs/cli.md, --dry-run).
 */
static bool decide_one(const struct arl_run_opts *o, int found, const struct arl_store_prev *p,
                       char *why, size_t len)
{
	const char *cls = found ? arl_class_name(p->cls) : NULL;
	char res[64];
	bool skip;

	if (!found) {
		snprintf(why, len, "no earlier result");
		return false;
	}
	if (cls && p->state != ARL_STATE_SUCCEEDED)
		snprintf(res, sizeof(res), "%s (%s)", arl_state_name(p->state), cls);
	else
		snprintf(res, sizeof(res), "%s", arl_state_name(p->state));
	if (o->rerun) {
		/* A Cancelled job ran for none of its classes: --rerun cancelled runs it. */
		skip = p->state == ARL_STATE_SUCCEEDED ||
		       !((o->rerun & ARL_RETRY_BIT(p->cls)) ||
		         (p->state == ARL_STATE_CANCELLED &&
		          (o->rerun & ARL_RETRY_BIT(ARL_CLASS_CANCELLED))));
		snprintf(why, len, "%s in run %lld%s", res, (long long)p->run_id,
		         p->state == ARL_STATE_SUCCEEDED ? ""
		         : skip                          ? ", not a --rerun class"
		                                         : ", a --rerun class");
		return skip;
	}
	/* --resume trusts only an unchanged success */
	skip = p->state == ARL_STATE_SUCCEEDED && p->same_spec;
	if (p->state == ARL_STATE_SUCCEEDED)
		snprintf(why, len,
		         skip ? "succeeded in run %lld, spec unchanged"
		              : "spec changed since its success in run %lld",
		         (long long)p->run_id);
	else
		snprintf(why, len, "%s in run %lld", res, (long long)p->run_id);
	return skip;
}

/*
 * --resume and --rerun: which jobs stand on an earlier result of this run name. Each key's
 * standing result is found over all runs of the name (arl_store_job_standing()), so neither
 * an earlier --rerun's Skipped rows nor a run killed early hide it. skipped_from[k]: 0 runs
 * the job; > 0 skips it in favour of that (never Skipped) job. A key with no standing
 * result runs.
 */
static int decide_skips(struct run *r, struct arl_jobfile *const *files, size_t nfiles,
                        char (*hashes)[33], int64_t *skipped_from, struct arl_err *err)
{
	size_t k = 0, found_any = 0;

	if (!r->o->resume && !r->o->rerun)
		return 0;
	for (size_t i = 0; i < nfiles; i++) {
		for (size_t j = 0; j < files[i]->njobs; j++, k++) {
			struct arl_store_prev p;
			char why[160];
			int found = arl_store_job_standing(
			    r->store, r->run_name, files[i]->jobs[j].key, hashes[k], &p, err);

			if (found < 0)
				return -1;
			if (!found)
				continue;
			found_any++;
			if (!decide_one(r->o, found, &p, why, sizeof(why))) {
				if (!r->o->rerun && p.state == ARL_STATE_SUCCEEDED)
					r->spec_changed++;
				continue;
			}
			skipped_from[k] = p.job_id;
			r->skipped++;
			if (p.state == ARL_STATE_FAILED)
				r->carried_failed++;
			else if (p.state == ARL_STATE_CANCELLED)
				r->carried_cancelled++;
			if (p.state != ARL_STATE_SUCCEEDED)
				r->carried_class[p.cls]++;
		}
	}
	if (!found_any && !r->o->quiet)
		arl_log_info("no earlier result in runs named '%s': running every job",
		             r->run_name);
	return 0;
}

int arl_run_decide(struct arl_jobfile *const *files, size_t nfiles, const struct arl_run_opts *o,
                   bool *skip, char **why, struct arl_err *err)
{
	struct arl_store *s = NULL;
	char *name = o->run_name ? arl_xstrdup(o->run_name) : default_run_name(files, nfiles);
	size_t k = 0;
	int ret = -1;
	struct stat sb;

	/* No database yet: nothing stands, every job would run. */
	if (stat(o->db_path, &sb) == 0 &&
	    arl_store_open(&s, o->db_path, ARL_STORE_READONLY, err) < 0)
		goto out;
	for (size_t i = 0; i < nfiles; i++) {
		for (size_t j = 0; j < files[i]->njobs; j++, k++) {
			struct arl_store_prev p = {0};
			char buf[160];
			int found = 0;

			if (s && (found = arl_store_job_standing(s, name, files[i]->jobs[j].key,
			                                         files[i]->jobs[j].spec_hash, &p,
			                                         err)) < 0)
				goto out;
			skip[k] = decide_one(o, found, &p, buf, sizeof(buf));
			why[k] = arl_xstrdup(buf);
		}
	}
	ret = 0;
out:
	arl_store_close(s);
	free(name);
	return ret;
}

/*
 * Whether run @run_id of this database has no runner left: the store's open repaired the runs
 * of dead runners, so one still 'running' is another live runner's. A run pruned is gone.
 */
static bool live_run_gone(void *arg, int64_t run_id)
{
	struct arl_run_view v = {0};
	struct arl_err err = ARL_ERR_INIT;
	bool gone;
	int rc = arl_run_get(arg, run_id, &v, &err);

	if (rc < 0)
		return false;
	gone = rc == 0 || !v.status || strcmp(v.status, "running");
	if (rc > 0)
		arl_run_view_release(&v);
	return gone;
}

int arl_run_execute(struct arl_jobfile *const *files, size_t nfiles, const struct arl_run_opts *o)
{
	struct run r = {.o = o, .live_fd = -1};
	struct arl_err err = ARL_ERR_INIT;
	const char *db = o->db_path;
	char iso[64], notes[1024], dbuf[32], carried[160] = "";
	void **backends = arl_xcalloc(backend_count() + 1, sizeof(*backends));
	int cancel[2] = {-1, -1};
	int *pool_limits = NULL, *file_limits = NULL, code = ARL_EXIT_INCOMPLETE, lock = -1;
	size_t npools = 0, k = 0, nrun = 0;
	char(*hashes)[33] = NULL;
	int64_t *skipped_from = NULL, *all_ids = NULL;
	struct arl_sched_opts so = {0};
	struct arl_sched_outcome outcome = {0};
	struct arl_backend_opts bo = {0};
	struct arl_run_ledger *ledger = NULL;
	struct arl_sched_budget *budgets = NULL;
	const char *status, *halted;
	char hbuf[64];

	r.started = arl_now_ms();
	for (size_t i = 0; i < nfiles; i++) {
		r.njobs += files[i]->njobs;
		npools += files[i]->npools;
	}
	r.run_name = o->run_name ? arl_xstrdup(o->run_name) : default_run_name(files, nfiles);
	r.jobs = arl_xcalloc(r.njobs ? r.njobs : 1, sizeof(*r.jobs));
	r.job_ids = arl_xcalloc(r.njobs ? r.njobs : 1, sizeof(*r.job_ids));
	hashes = arl_xcalloc(r.njobs ? r.njobs : 1, sizeof(*hashes));
	skipped_from = arl_xcalloc(r.njobs ? r.njobs : 1, sizeof(*skipped_from));
	all_ids = arl_xcalloc(r.njobs ? r.njobs : 1, sizeof(*all_ids));
	/* Before anything is recorded: a run that cannot give its steps their secrets is none. */
	if (arl_secrets_load(&r.secrets, files, nfiles, &err) < 0 ||
	    refuse_recorded_secrets(&r, files, nfiles, &err) < 0) {
		arl_log_err(NULL, &err);
		code = ARL_EXIT_USAGE;
		goto out;
	}
	/* The lock comes first: a second cron run must not even touch the database. */
	switch (arl_runlock_take(db, r.run_name, (enum arl_overlap)o->overlap, &lock, &err)) {
	case 1:
		arl_log_err(NULL, &err);
		code = ARL_EXIT_LOCKED;
		goto out;
	case -1:
		goto fail;
	}
	r.started = arl_now_ms(); /* the run's time, not the wait for the lock */
	if (o->events_path && arl_events_open(&r.events, o->events_path, &err) < 0)
		goto fail;
	if (arl_store_open(&r.store, db, 0, &err) == 0)
		r.artifacts_dir = arl_artifacts_dir(arl_store_path(r.store));
	if (!r.store)
		goto fail;
	for (size_t i = 0; i < nfiles; i++)
		for (size_t j = 0; j < files[i]->njobs; j++, k++)
			memcpy(hashes[k], files[i]->jobs[j].spec_hash, sizeof(hashes[k]));
	if (decide_skips(&r, files, nfiles, hashes, skipped_from, &err) < 0)
		goto fail;
	describe_isolation(files, nfiles, iso, sizeof(iso), notes, sizeof(notes));
	if (record_run(&r, files, nfiles, iso, notes[0] ? notes : NULL, hashes, skipped_from,
	               all_ids, &err) < 0)
		goto fail;
#ifdef __GLIBC__
	/*
	 * The rows' items, labels and SQLite's scratch were freed in the middle of the heap,
	 * below what stays: hand the pages back, or the run keeps them resident to its end.
	 */
	malloc_trim(0);
#endif
	/* Skipped jobs were recorded final with the plan, pointing at the result that stands. */
	r.recorded += r.skipped;
	r.done += r.skipped;
	snprintf(r.run_id_str, sizeof(r.run_id_str), "%lld", (long long)r.run_id);
	/* Live output is a convenience (`logs -f`): without it the run goes on. */
	if (arl_live_run_open(db, r.run_id, &r.live_fd, &err) < 0) {
		arl_log_warn("no live output for `logs -f`: %s", err.msg);
		arl_err_clear(&err);
	} else if (r.live_fd <= 2) {
		close(r.live_fd);
		r.live_fd = -1;
	} else {
		arl_live_sweep(r.live_fd, r.run_id, live_run_gone, r.store);
	}
	if (pipe2(cancel, O_CLOEXEC | O_NONBLOCK) < 0 || install_signals() < 0) {
		arl_error_errno(&err, errno, "cannot create pipes");
		goto fail_run;
	}
	ledger = arl_run_ledger_new(db, r.run_id);
	bo = (struct arl_backend_opts){.state_dir = o->state_dir,
	                               .run_id = r.run_id,
	                               .run_name = r.run_name,
	                               .capture_max = o->capture_max,
	                               .cancel_fd = cancel[0],
	                               .settings = o->backend_settings,
	                               .nsettings = o->nbackend_settings,
	                               .ledger = arl_run_ledger_ops(ledger)};
	if (open_backends(files, nfiles, &bo, backends, &err) < 0)
		goto fail_run;
	for (size_t b = 0; arl_backend_at(b); b++) {
		const struct arl_backend_ops *ops = arl_backend_at(b);
		const char *note = backends[b] && ops->note ? ops->note(backends[b]) : NULL;

		if (note && arl_store_run_add_note(r.store, r.run_id, note, &err) < 0)
			goto fail_run;
	}

	pool_limits = arl_xcalloc(npools ? npools : 1, sizeof(int));
	file_limits = arl_xcalloc(nfiles ? nfiles : 1, sizeof(int));
	k = 0;
	for (size_t i = 0, base = 0; i < nfiles; base += files[i]->npools, i++) {
		file_limits[i] = files[i]->concurrency;
		for (size_t p = 0; p < files[i]->npools; p++) {
			pool_limits[base + p] = files[i]->pools[p].replicas;
			so.concurrency += files[i]->pools[p].replicas;
		}
		for (size_t j = 0; j < files[i]->njobs; j++, k++) {
			struct arl_sched_job *sj;
			const struct arl_job *job = &files[i]->jobs[j];
			const struct arl_pool *pool = &files[i]->pools[job->pool];

			if (skipped_from[k])
				continue;
			r.job_ids[nrun] = all_ids[k];
			sj = &r.jobs[nrun++];
			sj->job = job;
			sj->pool_slot = base + job->pool;
			sj->file_slot = i;
			sj->env = (struct arl_attempt_env){
			    .ops = arl_backend_at(backend_slot(pool->kind)),
			    .backend = backends[backend_slot(pool->kind)],
			    .pool = pool,
			    .file = files[i],
			    .run_id = r.run_id_str,
			    .run_name = r.run_name,
			    .artifacts_dir = r.artifacts_dir,
			    .secrets = &r.secrets,
			    .live_dirfd = r.live_fd,
			    .job_id = all_ids[k],
			    .live_cap = o->capture_max};
		}
	}
	if (o->concurrency)
		so.concurrency = o->concurrency;
	so.pool_limits = pool_limits;
	so.npool_slots = npools;
	so.file_limits = file_limits;
	so.nfile_slots = nfiles;
	so.max_failures = o->max_failures;
	/* Budgets: --budget, then each file's; each one halts the run when reached. */
	budgets = arl_xcalloc(nfiles + 1, sizeof(*budgets));
	if (o->budget_metric)
		budgets[so.nbudgets++] =
		    (struct arl_sched_budget){.metric = o->budget_metric, .max = o->budget_max};
	for (size_t i = 0; i < nfiles; i++)
		if (files[i]->budget_metric)
			budgets[so.nbudgets++] = (struct arl_sched_budget){
			    .metric = files[i]->budget_metric, .max = files[i]->budget_max};
	so.budgets = budgets;
	so.on_budget = on_budget;
	/* Saturated: a deadline past the clock's end is no deadline sooner. */
	so.deadline_ms = !o->deadline_ms                          ? 0
	                 : o->deadline_ms > INT64_MAX - r.started ? INT64_MAX
	                                                          : r.started + o->deadline_ms;
	so.cancel_wfd = cancel[1];
	so.signal_fd = sig_pipe[0];
	so.abort = &r.abort;
	so.on_start = on_start;
	so.on_done = on_done;
	so.on_attempt_start = on_attempt_start;
	so.on_attempt_done = on_attempt_done;
	so.on_retry = on_retry;
	so.ctx = &r;
	if (start_views(&r, files, nfiles, skipped_from, all_ids, nrun, so.concurrency, &err) < 0)
		goto fail_run;
	if (!o->quiet)
		arl_log_info("run %lld '%s': %zu job%s (%zu skipped), up to %d at once",
		             (long long)r.run_id, r.run_name, r.njobs, r.njobs == 1 ? "" : "s",
		             r.skipped, so.concurrency);
	if (arl_sched_run(r.jobs, nrun, &so, &outcome, &err) < 0)
		goto fail_run;
	/* The bar is cleared before anything else is printed. */
	arl_progress_free(r.progress);
	r.progress = NULL;
	if ((halted = halt_text(&outcome, o, hbuf, sizeof(hbuf)))) {
		arl_log_info("run %lld '%s' halted: %s; no new job started", (long long)r.run_id,
		             r.run_name, halted);
		if (!r.store_failed &&
		    arl_store_run_set_halted(r.store, r.run_id, halted, &err) < 0)
			arl_err_clear(&err);
	}
	/* What each budget spent, for `runs`, `show` and the report (runs.notes). */
	for (size_t b = 0; b < so.nbudgets && !r.store_failed; b++) {
		char note[200];

		snprintf(note, sizeof(note), "budget %s: %g of %g spent", budgets[b].metric,
		         budgets[b].spent, budgets[b].max);
		if (arl_store_run_add_note(r.store, r.run_id, note, &err) < 0)
			arl_err_clear(&err);
	}

	/* Exit codes: the first in docs/cli.md's order wins (2, 130/143, 75, 3, 4, 1, 0). */
	if (outcome.signal)
		code = outcome.signal == SIGTERM ? ARL_EXIT_SIGTERM : ARL_EXIT_SIGINT;
	else if (r.store_failed || r.by_class[ARL_CLASS_INFRA] || r.carried_class[ARL_CLASS_INFRA])
		code = ARL_EXIT_INCOMPLETE;
	else if (outcome.stop != ARL_STOP_NONE)
		code = ARL_EXIT_HALTED;
	else if (r.failed || r.cancelled || r.carried_failed || r.carried_cancelled)
		code = ARL_EXIT_FAILED; /* a skipped job counts as the result it stands for */
	else
		code = ARL_EXIT_OK;
	/* Cut short by the store: the status its repair gives a run that could not close. */
	status = outcome.signal || r.store_failed ? "interrupted"
	         : code == ARL_EXIT_OK            ? "succeeded"
	                                          : "failed";
	if (arl_store_run_finish(r.store, r.run_id, status, code, &err) < 0 && !r.store_failed++) {
		/* Every job is recorded, but the run still says 'running' until the repair. */
		r.store_err = err;
		r.store_full = arl_store_full(r.store);
		if (!outcome.signal)
			code = ARL_EXIT_INCOMPLETE;
		status = "interrupted";
	}
	if (r.store_failed)
		arl_log_error("%s (%zu of %zu jobs recorded, %zu not started); %srun again with "
		              "--resume",
		              r.store_err.msg, r.recorded, r.njobs, r.not_started,
		              r.store_full ? "free space and " : "");
	finish_views(&r, status, code);
	if (outcome.abandoned)
		_exit(code); /* a second signal: the workers are not waited for */
	close_backends(backends);
	if (o->resume && r.spec_changed)
		snprintf(carried, sizeof(carried),
		         " (succeeded before, spec unchanged; %zu more succeeded before but their"
		         " spec changed: run again)",
		         r.spec_changed);
	else if (o->resume && r.skipped)
		snprintf(carried, sizeof(carried), " (succeeded before, spec unchanged)");
	else if (r.carried_failed || r.carried_cancelled)
		snprintf(carried, sizeof(carried),
		         " (carried from earlier runs: %zu failed (%zu failed, %zu timeout, %zu "
		         "infra), %zu cancelled)",
		         r.carried_failed, r.carried_class[ARL_CLASS_FAILED],
		         r.carried_class[ARL_CLASS_TIMEOUT], r.carried_class[ARL_CLASS_INFRA],
		         r.carried_cancelled);
	arl_log_info(
	    "run %lld '%s' %s (exit %d) in %s: %zu succeeded, %zu skipped%s, %zu failed "
	    "(%zu failed, %zu timeout, %zu infra), %zu cancelled; see: arl-batch results --db %s "
	    "--run %lld",
	    (long long)r.run_id, r.run_name, status, code,
	    arl_fmt_duration(arl_now_ms() - r.started, dbuf, sizeof(dbuf)), r.succeeded, r.skipped,
	    carried, r.failed, r.by_class[ARL_CLASS_FAILED], r.by_class[ARL_CLASS_TIMEOUT],
	    r.by_class[ARL_CLASS_INFRA], r.cancelled, db, (long long)r.run_id);
	goto out;

fail_run:
	arl_progress_free(r.progress);
	r.progress = NULL;
	arl_log_err(NULL, &err);
	finish_views(&r, "failed", ARL_EXIT_INCOMPLETE);
	arl_store_run_finish(r.store, r.run_id, "failed", ARL_EXIT_INCOMPLETE, &err);
	close_backends(backends);
	code = ARL_EXIT_INCOMPLETE;
	goto out;
fail:
	arl_log_err(NULL, &err);
	code = ARL_EXIT_INCOMPLETE;
out:
	finish_views(&r, NULL, 0);
	restore_signals();
	for (size_t i = 0; i < nrun; i++)
		arl_job_result_release(&r.jobs[i].result);
	arl_runlock_release(lock);
	free(hashes);
	free(skipped_from);
	free(all_ids);
	for (int i = 0; i < 2; i++) {
		if (cancel[i] >= 0)
			close(cancel[i]);
		if (sig_pipe[i] >= 0)
			close(sig_pipe[i]);
		sig_pipe[i] = -1;
	}
	arl_live_run_close(db, r.run_id, r.live_fd);
	arl_run_ledger_free(ledger); /* the backends are closed: no record comes any more */
	arl_store_close(r.store);
	free(pool_limits);
	free(file_limits);
	free(budgets);
	free(backends);
	free(r.jobs);
	free(r.job_ids);
	free(r.run_name);
	free(r.artifacts_dir);
	arl_secrets_release(&r.secrets);
	cJSON_Delete(r.params);
	return code;
}
