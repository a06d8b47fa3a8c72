/* Finding the job a read command names (job_lookup.h). */
#include "cmd/job_lookup.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cmd/cli.h"
#include "log.h"
#include "view/store_view.h"
#include "util.h"
#include "banned.h"

struct lookup {
	struct arl_store *store;
	struct arl_job_reader *reader;
	struct arl_err err;
};

/* The newest run holding a job with this key, else with this name. */
static int newest_run_with(struct lookup *c, const char *job, int64_t *run_id, bool *found)
{
	int rc = 0;

	*found = false;
	for (int by_name = 0; by_name < 2 && !*found; by_name++) {
		rc = arl_job_newest_run(c->reader, job, by_name, run_id, &c->err);
		if (rc < 0)
			return -1;
		*found = rc == 1;
	}
	return 0;
}

struct suggestion {
	const char *job;
	char *best;
	unsigned best_d;
};

static int consider(void *arg, const struct arl_job_ref *ref, struct arl_err *err)
{
	struct suggestion *sg = arg;
	const char *const cands[] = {ref->key, ref->name};

	(void)err;
	for (size_t i = 0; i < 2; i++) {
		unsigned d = arl_edit_distance(sg->job, cands[i]);

		if (d < sg->best_d) {
			sg->best_d = d;
			free(sg->best);
			sg->best = arl_xstrdup(cands[i]);
		}
	}
	return 0;
}

/* "did you mean" from the keys and names of the run: the closest within 3 edits. The error is
 * already printed, so failures here only lose the hint. */
static void suggest(struct lookup *c, int64_t run_id, const char *job)
{
	struct suggestion sg = {job, NULL, 4};
	struct arl_err ignored = ARL_ERR_INIT;
	char *best;

	(void)arl_job_refs_each(c->reader, run_id, consider, &sg, &ignored);
	best = sg.best;
	if (best) {
		char *shown = arl_term_str(best); /* a newline in it is escaped too */

		arl_log_info("did you mean '%s'?", shown);
		free(shown);
	}
	free(best);
}

/* The jobs of a run matching JOB: the first, and up to five keys for an ambiguity. */
struct matches {
	const char *job;
	struct arl_buf keys;
	size_t n;
	int64_t first;
	bool exact;
};

static int match(void *arg, const struct arl_job_ref *ref, struct arl_err *err)
{
	struct matches *m = arg;

	(void)err;
	if (m->exact)
		return 0;
	if (m->n == 0)
		m->first = ref->id;
	if (m->n == 0 && !strcmp(ref->key, m->job)) {
		m->n = 1;
		m->exact = true;
		return 0;
	}
	if (m->n < 5)
		arl_buf_addf(&m->keys, "%s'%s'", m->n ? ", " : "", ref->key);
	m->n++;
	return 0;
}

/*
 * Finds JOB in the run: an exact key wins, then a name that only one job has. Returns 1 and
 * sets *job_id, 0 when not found or *ambiguous (message in c->err), -1 on a database error.
 */
static int find_job(struct lookup *c, int64_t run_id, const char *job, int64_t *job_id,
                    bool *ambiguous)
{
	struct matches m = {job, ARL_BUF_INIT, 0, 0, false};
	int ret = -1;

	if (arl_job_refs_matching(c->reader, run_id, job, match, &m, &c->err) < 0)
		goto out;
	if (m.n == 0)
		arl_error(&c->err, ARL_E_INVALID, "no job '%s' in run %lld", job,
		          (long long)run_id);
	*ambiguous = m.n > 1;
	if (m.n > 1)
		arl_error(&c->err, ARL_E_INVALID,
		          "job name '%s' is ambiguous in run %lld: %s%s; give the key", job,
		          (long long)run_id, m.keys.p, m.n > 5 ? ", ..." : "");
	if (m.n == 1)
		*job_id = m.first;
	ret = m.n == 1;
out:
	arl_buf_release(&m.keys);
	return ret;
}

int arl_cli_find_job(struct arl_store *store, struct arl_job_reader *reader, const char *run,
                     const char *job, int64_t *job_id, struct arl_err *err)
{
	struct lookup c = {.store = store, .reader = reader, .err = ARL_ERR_INIT};
	int64_t run_id = 0, suggest_run = 0;
	bool found, ambiguous = false;
	int rc, ret = ARL_EXIT_INCOMPLETE;

	if (run) {
		if (arl_store_run_resolve(c.store, run, &run_id, &c.err) < 0) {
			if (c.err.code == ARL_E_INVALID)
				ret = ARL_EXIT_FAILED;
			goto out;
		}
	} else {
		if (newest_run_with(&c, job, &run_id, &found) < 0)
			goto out;
		if (!found) {
			struct arl_err ignored = ARL_ERR_INIT;

			arl_error(&c.err, ARL_E_INVALID, "no job '%s' in any run in '%s'", job,
			          arl_store_path(c.store));
			ret = ARL_EXIT_FAILED;
			if (arl_store_run_resolve(c.store, NULL, &run_id, &ignored) == 0)
				suggest_run = run_id;
			goto out;
		}
	}
	rc = find_job(&c, run_id, job, job_id, &ambiguous);
	if (rc < 0)
		goto out;
	if (rc == 0) {
		ret = ARL_EXIT_FAILED;
		if (!ambiguous)
			suggest_run = run_id;
		goto out;
	}
	ret = ARL_EXIT_OK;
out:
	if (ret != ARL_EXIT_OK)
		arl_view_error(&c.err);
	if (suggest_run)
		suggest(&c, suggest_run, job);
	*err = (struct arl_err)ARL_ERR_INIT;
	return ret;
}

int arl_cli_one_job_error(const struct arl_command_usage *u, int nargs)
{
	return arl_options_error(u, "%s",
	                         nargs ? "give one JOB" : "which job? give a key or a name");
}
