/*
 * `arl-batch show JOB`: one job's summary, then every attempt and every step with its state,
 * exit code, duration and output. A Skipped job ran nothing: it shows the result it carries
 * (from which run) and that job's attempts.
 *
 * JOB is a key (FILE_STEM/JOB_NAME) or a job name. Without --run it is looked up in the
 * newest run that has it, so `show` works right after any run that contained the job.
 *
 * Exit: 0 shown, 1 no such job or run (or an ambiguous name), 2 usage, 3 the database could
 * not be opened or read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "buf.h"
#include "cmd/cli.h"
#include "cmd/options.h"
#include "err.h"
#include "store/store.h"
#include "view/store_view.h"
#include "util.h"
#include "banned.h"

static const char *const synopsis[] = {"show [--db PATH] [--run RUN] JOB", NULL};

static const char about[] =
    "Show a job's attempts and steps with their output. JOB is a key (FILE_STEM/JOB_NAME)\n"
    "or a job name.\n";

static const char newest_by_key_sql[] =
    "SELECT run_id FROM jobs WHERE key = ?1 ORDER BY id DESC LIMIT 1";
/* Names have no index: this scan only runs when JOB is not a key. */
static const char newest_by_name_sql[] =
    "SELECT run_id FROM jobs WHERE name = ?1 ORDER BY id DESC LIMIT 1";
static const char in_run_sql[] =
    "SELECT id, key, name FROM jobs WHERE run_id = ?1 AND (key = ?2 OR name = ?2)"
    " ORDER BY key = ?2 DESC, id";
static const char all_in_run_sql[] = "SELECT key, name FROM jobs WHERE run_id = ?1 ORDER BY id";

static const char job_sql[] =
    "SELECT j.id, j.key, j.name, j.file, j.pool, j.state, j.attempts, j.exit_code,"
    " j.error_class, j.error, j.started_at, j.finished_at, j.duration_ms, j.item, j.labels,"
    " j.spec_hash, s.run_id, j.run_id, r.name, s.id, s.state, s.error_class, s.error,"
    " s.exit_code, s.attempts, (SELECT name FROM runs WHERE id = s.run_id)"
    " FROM jobs j JOIN runs r ON r.id = j.run_id"
    " LEFT JOIN jobs s ON j.state = 'Skipped' AND s.id = j.skipped_from WHERE j.id = ?1";

/* Columns of job_sql, in SELECT order. */
enum {
	J_ID,
	J_KEY,
	J_NAME,
	J_FILE,
	J_POOL,
	J_STATE,
	J_ATTEMPTS,
	J_EXIT,
	J_CLASS,
	J_ERROR,
	J_STARTED,
	J_FINISHED,
	J_DURATION,
	J_ITEM,
	J_LABELS,
	J_SPEC,
	J_SKIPPED_RUN,
	J_RUN,
	J_RUN_NAME,
	J_FROM_ID, /* the job a Skipped one stands for; NULL when that run was pruned */
	J_FROM_STATE,
	J_FROM_CLASS,
	J_FROM_ERROR,
	J_FROM_EXIT,
	J_FROM_ATTEMPTS,
	J_FROM_RUN_NAME
};

static const char attempts_sql[] =
    "SELECT id, number, sandbox, state, exit_code, error_class, error, started_at,"
    " duration_ms, prepare_ms FROM attempts WHERE job_id = ?1 ORDER BY number";

/* Columns of attempts_sql. */
enum {
	A_ID,
	A_NUMBER,
	A_SANDBOX,
	A_STATE,
	A_EXIT,
	A_CLASS,
	A_ERROR,
	A_STARTED,
	A_DURATION,
	A_PREPARE
};

static const char steps_sql[] =
    "SELECT idx, name, type, phase, state, exit_code, stdout, stderr, stdout_truncated,"
    " stderr_truncated, duration_ms, metrics_error FROM steps WHERE attempt_id = ?1"
    " ORDER BY idx";

enum {
	S_IDX,
	S_NAME,
	S_TYPE,
	S_PHASE,
	S_STATE,
	S_EXIT,
	S_STDOUT,
	S_STDERR,
	S_OUT_TRUNC,
	S_ERR_TRUNC,
	S_DURATION,
	S_METRICS_ERROR
};

static const char metrics_sql[] = "SELECT name, value FROM metrics WHERE job_id = ?1 ORDER BY name";

struct ctx {
	struct arl_store *store;
	bool color;
	struct arl_err err;
};

static const char *col_text(sqlite3_stmt *st, int c)
{
	return (const char *)sqlite3_column_text(st, c);
}

/* Prepares @sql, binds ?1 (an integer unless @text is set) and ?2, for a one-off query. */
static int query(struct ctx *c, const char *sql, int64_t i1, const char *t1, const char *t2,
                 sqlite3_stmt **out)
{
	sqlite3_stmt *st = NULL;

	if (arl_store_prepare(c->store, sql, &st, NULL, &c->err) < 0)
		return -1;
	if (t1)
		sqlite3_bind_text(st, 1, t1, -1, SQLITE_STATIC);
	else
		sqlite3_bind_int64(st, 1, i1);
	if (t2)
		sqlite3_bind_text(st, 2, t2, -1, SQLITE_STATIC);
	*out = st;
	return 0;
}

/* "Failed (timeout)"; the class only when it says more than the state ("Failed (failed)"). */
static void state_word(const struct ctx *c, const char *state, const char *cls)
{
	const char *color = c->color ? arl_view_state_color(state) : NULL;

	printf("%s%s%s", color ? color : "", state, color ? ARL_VIEW_RESET : "");
	if (cls && strncasecmp(state, cls, strlen(cls)) != 0)
		printf(" (%s)", cls);
}

/* The newest run holding a job with this key, else with this name. */
static int newest_run_with(struct ctx *c, const char *job, int64_t *run_id, bool *found)
{
	const char *const sqls[] = {newest_by_key_sql, newest_by_name_sql};
	int rc = 0;

	*found = false;
	for (size_t i = 0; i < 2 && !*found; i++) {
		sqlite3_stmt *st = NULL;

		if (query(c, sqls[i], 0, job, NULL, &st) < 0)
			return -1;
		rc = arl_store_step(c->store, st, &c->err);
		if (rc == 1) {
			*run_id = sqlite3_column_int64(st, 0);
			*found = true;
		}
		sqlite3_finalize(st);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* "did you mean" from the keys and names of the run: the closest within 3 edits. The error is
 * already printed, so failures here only lose the hint. */
static void suggest(struct ctx *c, int64_t run_id, const char *job)
{
	sqlite3_stmt *st = NULL;
	char *best = NULL;
	unsigned best_d = 4;

	if (query(c, all_in_run_sql, run_id, NULL, NULL, &st) < 0)
		return;
	while (arl_store_step(c->store, st, &c->err) == 1) {
		for (int i = 0; i < 2; i++) {
			const char *cand = col_text(st, i);
			unsigned d = arl_edit_distance(job, cand);

			if (d < best_d) {
				best_d = d;
				free(best);
				best = arl_xstrdup(cand);
			}
		}
	}
	sqlite3_finalize(st);
	if (best) {
		fputs("arl-batch: did you mean '", stderr);
		arl_term_write(stderr, best, strlen(best), false);
		fputs("'?\n", stderr);
	}
	free(best);
}

/*
 * Finds JOB in the run: an exact key wins, then a name that only one job has. Returns 1 and
 * sets *job_id, 0 when not found or *ambiguous (message in c->err), -1 on a database error.
 */
static int find_job(struct ctx *c, int64_t run_id, const char *job, int64_t *job_id,
                    bool *ambiguous)
{
	struct arl_buf keys = ARL_BUF_INIT;
	sqlite3_stmt *st = NULL;
	size_t n = 0;
	int64_t first = 0;
	int rc, ret = -1;

	if (query(c, in_run_sql, run_id, NULL, job, &st) < 0)
		return -1;
	while ((rc = arl_store_step(c->store, st, &c->err)) == 1) {
		if (n == 0)
			first = sqlite3_column_int64(st, 0);
		if (n == 0 && !strcmp(col_text(st, 1), job)) {
			n = 1;
			break;
		}
		if (n < 5)
			arl_buf_addf(&keys, "%s'%s'", n ? ", " : "", col_text(st, 1));
		n++;
	}
	if (rc < 0)
		goto out;
	if (n == 0)
		arl_error(&c->err, ARL_E_INVALID, "no job '%s' in run %lld", job,
		          (long long)run_id);
	*ambiguous = n > 1;
	if (n > 1)
		arl_error(&c->err, ARL_E_INVALID,
		          "job name '%s' is ambiguous in run %lld: %s%s; give the key", job,
		          (long long)run_id, keys.p, n > 5 ? ", ..." : "");
	if (n == 1)
		*job_id = first;
	ret = n == 1;
out:
	sqlite3_finalize(st);
	arl_buf_release(&keys);
	return ret;
}

/* Step output and what came from it reach the terminal escaped (arl_term_write). */
static void put(const char *s)
{
	arl_term_write(stdout, s, strlen(s), false);
}

static void field(const char *label, const char *value)
{
	if (value) {
		printf("  %-11s", label);
		put(value);
		fputc('\n', stdout);
	}
}

/* Output indented under its step; a last line without a newline still ends the block. */
static void print_stream(const char *label, sqlite3_stmt *st, int col, int trunc_col)
{
	const char *p = col_text(st, col);
	size_t len = (size_t)sqlite3_column_bytes(st, col);
	bool truncated = sqlite3_column_int(st, trunc_col) != 0;

	if (!p || !len)
		return;
	printf("    %s%s:\n", label, truncated ? " (truncated: head and tail kept)" : "");
	while (len) {
		const char *nl = memchr(p, '\n', len);
		size_t n = nl ? (size_t)(nl - p) + 1 : len;

		fputs("      ", stdout);
		arl_term_write(stdout, p, n, true);
		if (!nl)
			fputc('\n', stdout);
		p += n;
		len -= n;
	}
}

static void print_step(struct ctx *c, sqlite3_stmt *st)
{
	const char *phase = col_text(st, S_PHASE);
	char dur[32];

	printf("  step %lld ", (long long)sqlite3_column_int64(st, S_IDX) + 1);
	put(col_text(st, S_NAME));
	printf(" (%s%s): ", col_text(st, S_TYPE), strcmp(phase, "callback") ? "" : ", callback");
	state_word(c, col_text(st, S_STATE), NULL);
	if (sqlite3_column_type(st, S_EXIT) != SQLITE_NULL)
		printf(", exit %d", sqlite3_column_int(st, S_EXIT));
	if (sqlite3_column_type(st, S_DURATION) != SQLITE_NULL)
		printf(", %s",
		       arl_fmt_duration(sqlite3_column_int64(st, S_DURATION), dur, sizeof(dur)));
	if (!strcmp(col_text(st, S_STATE), "Skipped"))
		fputs(" (not run)", stdout);
	fputc('\n', stdout);
	if (col_text(st, S_METRICS_ERROR)) {
		fputs("    metrics: ", stdout);
		put(col_text(st, S_METRICS_ERROR));
		fputc('\n', stdout);
	}
	print_stream("stdout", st, S_STDOUT, S_OUT_TRUNC);
	print_stream("stderr", st, S_STDERR, S_ERR_TRUNC);
}

static int print_attempts(struct ctx *c, int64_t job_id)
{
	sqlite3_stmt *at = NULL, *st = NULL;
	char dur[32];
	int rc = -1, src;

	if (query(c, attempts_sql, job_id, NULL, NULL, &at) < 0 ||
	    arl_store_prepare(c->store, steps_sql, &st, NULL, &c->err) < 0)
		goto out;
	while ((rc = arl_store_step(c->store, at, &c->err)) == 1) {
		printf("\nattempt %d: ", sqlite3_column_int(at, A_NUMBER));
		state_word(c, col_text(at, A_STATE), col_text(at, A_CLASS));
		if (sqlite3_column_type(at, A_EXIT) != SQLITE_NULL)
			printf(", exit %d", sqlite3_column_int(at, A_EXIT));
		if (sqlite3_column_type(at, A_DURATION) != SQLITE_NULL)
			printf(", %s", arl_fmt_duration(sqlite3_column_int64(at, A_DURATION), dur,
			                                sizeof(dur)));
		/* Not part of the job's timeout: shown apart from the duration it is in. */
		if (sqlite3_column_type(at, A_PREPARE) != SQLITE_NULL)
			printf(", prepared in %s",
			       arl_fmt_duration(sqlite3_column_int64(at, A_PREPARE), dur,
			                        sizeof(dur)));
		if (col_text(at, A_SANDBOX)) {
			fputs(", sandbox ", stdout);
			put(col_text(at, A_SANDBOX));
		}
		fputc('\n', stdout);
		if (col_text(at, A_STARTED))
			printf("  started %s\n", col_text(at, A_STARTED));
		if (col_text(at, A_ERROR)) {
			fputs("  error: ", stdout);
			put(col_text(at, A_ERROR));
			fputc('\n', stdout);
		}
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, sqlite3_column_int64(at, A_ID));
		while ((src = arl_store_step(c->store, st, &c->err)) == 1)
			print_step(c, st);
		if (src < 0) {
			rc = -1;
			break;
		}
	}
out:
	sqlite3_finalize(st);
	sqlite3_finalize(at);
	return rc < 0 ? -1 : 0;
}

static int print_metrics(struct ctx *c, int64_t job_id)
{
	sqlite3_stmt *st = NULL;
	size_t n = 0;
	int rc;

	if (query(c, metrics_sql, job_id, NULL, NULL, &st) < 0)
		return -1;
	while ((rc = arl_store_step(c->store, st, &c->err)) == 1) {
		fputs(n++ ? "  " : "  metrics:   ", stdout);
		put(col_text(st, 0));
		fputc('=', stdout);
		put(col_text(st, 1) ? col_text(st, 1) : "null");
	}
	if (n)
		fputc('\n', stdout);
	sqlite3_finalize(st);
	return rc < 0 ? -1 : 0;
}

/*
 * What a Skipped job stands for (it counts as that result, docs/database.md): "Failed
 * (timeout), exit 124, 2 attempts, from run 3 'nightly' (job id 17)", then that result's error.
 */
static void print_carried(const struct ctx *c, sqlite3_stmt *st)
{
	if (sqlite3_column_type(st, J_FROM_ID) == SQLITE_NULL) {
		fputs("  carried:   nothing: the earlier result it stood for was pruned\n", stdout);
		return;
	}
	fputs("  carried:   ", stdout);
	state_word(c, col_text(st, J_FROM_STATE), col_text(st, J_FROM_CLASS));
	if (sqlite3_column_type(st, J_FROM_EXIT) != SQLITE_NULL)
		printf(", exit %d", sqlite3_column_int(st, J_FROM_EXIT));
	if (sqlite3_column_type(st, J_FROM_ATTEMPTS) != SQLITE_NULL)
		printf(", %d attempt%s", sqlite3_column_int(st, J_FROM_ATTEMPTS),
		       sqlite3_column_int(st, J_FROM_ATTEMPTS) == 1 ? "" : "s");
	printf(", from run %lld", (long long)sqlite3_column_int64(st, J_SKIPPED_RUN));
	if (col_text(st, J_FROM_RUN_NAME)) {
		fputs(" '", stdout);
		put(col_text(st, J_FROM_RUN_NAME));
		fputc('\'', stdout);
	}
	printf(" (job id %lld)\n", (long long)sqlite3_column_int64(st, J_FROM_ID));
	field("error:", col_text(st, J_FROM_ERROR));
}

static int show_job(struct ctx *c, int64_t job_id)
{
	sqlite3_stmt *st = NULL;
	char dur[32], buf[64];
	int64_t from_id = 0;
	int ret = -1, rc;

	if (query(c, job_sql, job_id, NULL, NULL, &st) < 0)
		return -1;
	if ((rc = arl_store_step(c->store, st, &c->err)) <= 0) {
		if (rc == 0)
			arl_error(&c->err, ARL_E_INVALID, "job %lld vanished", (long long)job_id);
		goto out;
	}
	fputs("job ", stdout);
	put(col_text(st, J_KEY));
	printf(" (run %lld '", (long long)sqlite3_column_int64(st, J_RUN));
	put(col_text(st, J_RUN_NAME));
	printf("', job id %lld)\n", (long long)job_id);
	fputs("  state:     ", stdout);
	state_word(c, col_text(st, J_STATE), col_text(st, J_CLASS));
	fputc('\n', stdout);
	if (!strcmp(col_text(st, J_STATE), "Skipped")) {
		from_id = sqlite3_column_int64(st, J_FROM_ID);
		print_carried(c, st);
	}
	field("name:", col_text(st, J_NAME));
	field("file:", col_text(st, J_FILE));
	field("pool:", col_text(st, J_POOL));
	/* A Skipped job's own 0 attempts would contradict its carried line. */
	if (!from_id)
		field("attempts:", col_text(st, J_ATTEMPTS));
	field("exit code:", col_text(st, J_EXIT));
	field("started:", col_text(st, J_STARTED));
	field("finished:", col_text(st, J_FINISHED));
	if (sqlite3_column_type(st, J_DURATION) != SQLITE_NULL) {
		snprintf(buf, sizeof(buf), "%s",
		         arl_fmt_duration(sqlite3_column_int64(st, J_DURATION), dur, sizeof(dur)));
		field("duration:", buf);
	}
	field("error:", col_text(st, J_ERROR));
	if (col_text(st, J_LABELS) && strcmp(col_text(st, J_LABELS), "{}"))
		field("labels:", col_text(st, J_LABELS));
	field("item:", col_text(st, J_ITEM));
	field("spec hash:", col_text(st, J_SPEC));
	/* A Skipped job ran nothing: what it carries is the standing job's metrics and attempts. */
	if (print_metrics(c, from_id ? from_id : job_id) < 0)
		goto out;
	if (from_id) {
		printf("\nattempts of run %lld, whose result this job carries (arl-batch show ",
		       (long long)sqlite3_column_int64(st, J_SKIPPED_RUN));
		put(col_text(st, J_KEY));
		printf(" --run %lld):\n", (long long)sqlite3_column_int64(st, J_SKIPPED_RUN));
	}
	if (print_attempts(c, from_id ? from_id : job_id) < 0)
		goto out;
	ret = 0;
out:
	sqlite3_finalize(st);
	return ret;
}

int cmd_show(int argc, char **argv)
{
	struct ctx c = {.err = ARL_ERR_INIT};
	const char *db = NULL, *run = NULL, *job;
	int64_t run_id = 0, job_id = 0, suggest_run = 0;
	bool found, ambiguous = false;
	int rc, ret = ARL_EXIT_INCOMPLETE;
	const struct arl_option opts[] = {
	    ARL_OPT_STRING(0, "db", &db, "PATH",
	                   "results database (default $ARL_BATCH_DB, else ./arl-batch.db)"),
	    ARL_OPT_STRING(0, "run", &run, "RUN",
	                   "a run id, 'latest', or a run name (default: the newest\n"
	                   "run with JOB)"),
	    ARL_OPT_END(),
	};
	const struct arl_command_usage u = {
	    .name = "show", .synopsis = synopsis, .about = about, .options = opts};

	if ((rc = arl_options_parse(&u, argc, argv, 0, &ret)) < 0)
		return ret;
	if (rc != 1)
		return arl_options_error(&u, "%s",
		                         rc ? "give one JOB" : "which job? give a key or a name");
	ret = ARL_EXIT_INCOMPLETE;
	job = argv[0];
	c.color = arl_cli_color(STDOUT_FILENO);

	/*
	 * Read-write (but never creating) rather than read-only: opening repairs runs whose
	 * runner died, so a crashed run shows as interrupted instead of running forever.
	 */
	if (arl_store_open(&c.store, arl_cli_db_path(db), ARL_STORE_NOCREATE, &c.err) < 0)
		goto out;
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
	rc = find_job(&c, run_id, job, &job_id, &ambiguous);
	if (rc < 0)
		goto out;
	if (rc == 0) {
		ret = ARL_EXIT_FAILED;
		if (!ambiguous)
			suggest_run = run_id;
		goto out;
	}
	if (show_job(&c, job_id) < 0)
		goto out;
	ret = ARL_EXIT_OK;
out:
	if (ret != ARL_EXIT_OK)
		arl_view_error(&c.err);
	if (suggest_run)
		suggest(&c, suggest_run, job);
	arl_store_close(c.store);
	return ret;
}
