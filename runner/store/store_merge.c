/* Merging results databases (store_merge.h). */
#include "store/store_merge.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"
#include "store/store_artifacts.h"
#include "store/store_internal.h"
#include "util.h"
#include "banned.h"

/* Conflicting keys named in the error; the rest are counted. */
#define MAX_NAMED_CONFLICTS 10

struct input {
	const char *path;
	char *copy; /* the private copy, attached as inK */
	dev_t dev;
	ino_t ino;
	sqlite3_stmt *jobs, *copy_job, *copy_attempts, *copy_steps, *copy_artifacts, *copy_metrics,
	    *digests;
};

struct in_run {
	size_t k; /* input index */
	int64_t id, jobs;
	char *name, *params, *started_at, *finished_at;
};

struct merge {
	struct arl_store *s;
	sqlite3 *db;
	const struct arl_merge_opts *o;
	struct input *in;
	char *tmpdir;
	struct arl_merge_stats st;
	char *conflicts; /* the first keys, ", "-separated */
	int64_t nconflicts;
	char *conflict_run;
	sqlite3_stmt *find_run, *new_run, *join_run, *find_job, *del_job, *repoint, *map, *recount;
};

static int db_err(struct merge *m, struct arl_err *err, const char *what)
{
	return arl_error(err, ARL_E_DB, "cannot merge into '%s': %s: %s", arl_store_path(m->s),
	                 what, sqlite3_errmsg(m->db));
}

static int prep(struct merge *m, sqlite3_stmt **st, const char *sql, struct arl_err *err)
{
	if (sqlite3_prepare_v2(m->db, sql, -1, st, NULL) == SQLITE_OK)
		return 0;
	return db_err(m, err, "prepare a statement");
}

/* Runs @st to its end (reset after). */
static int run(struct merge *m, sqlite3_stmt *st, const char *what, struct arl_err *err)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	if (rc == SQLITE_DONE || rc == SQLITE_ROW)
		return 0;
	return db_err(m, err, what);
}

static char *col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t ? arl_xstrdup((const char *)t) : NULL;
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

/* ---- the inputs: private copies, upgraded, attached ---- */

static int copy_input(struct merge *m, size_t k, struct arl_err *err)
{
	struct input *in = &m->in[k];
	sqlite3 *src = NULL, *dst = NULL;
	sqlite3_backup *b;
	sqlite3_stmt *st = NULL;
	struct arl_store *up = NULL;
	int64_t v = -1;
	int rc, ret = -1;
	struct stat sb;

	if (stat(in->path, &sb) < 0)
		return arl_error_errno(err, errno, "cannot read results database '%s'", in->path);
	if (!S_ISREG(sb.st_mode))
		return arl_error(err, ARL_E_IO, "'%s' is not a results database file", in->path);
	in->dev = sb.st_dev;
	in->ino = sb.st_ino;
	if (sqlite3_open_v2(in->path, &src, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
	    SQLITE_OK) {
		arl_error(err, ARL_E_IO, "cannot open results database '%s': %s", in->path,
		          src ? sqlite3_errmsg(src) : "out of memory");
		goto out;
	}
	sqlite3_busy_timeout(src, 5000);
	if (sqlite3_prepare_v2(src, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		arl_error(err, ARL_E_DB, "'%s' is not an arl-batch results database: %s", in->path,
		          sqlite3_errmsg(src));
		goto out;
	}
	v = sqlite3_column_int64(st, 0);
	if (v > ARL_STORE_VERSION) {
		arl_error(
		    err, ARL_E_DB,
		    "'%s' has schema version %lld, newer than this arl-batch (%d): use a newer"
		    " arl-batch to merge it",
		    in->path, (long long)v, ARL_STORE_VERSION);
		goto out;
	}
	if (v < 1) {
		arl_error(err, ARL_E_DB, "'%s' is not an arl-batch results database", in->path);
		goto out;
	}
	in->copy = arl_xasprintf("%s/in%zu.db", m->tmpdir, k);
	if (sqlite3_open_v2(in->copy, &dst,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
	                    NULL) != SQLITE_OK) {
		arl_error(err, ARL_E_IO, "cannot create a copy of '%s' in '%s': %s", in->path,
		          m->tmpdir, dst ? sqlite3_errmsg(dst) : "out of memory");
		goto out;
	}
	/* The backup API reads one consistent snapshot, WAL included, and writes nothing. */
	if (!(b = sqlite3_backup_init(dst, "main", src, "main"))) {
		arl_error(err, ARL_E_IO, "cannot copy '%s': %s", in->path, sqlite3_errmsg(dst));
		goto out;
	}
	rc = sqlite3_backup_step(b, -1);
	sqlite3_backup_finish(b);
	if (rc != SQLITE_DONE) {
		arl_error(err, ARL_E_IO, "cannot copy '%s': %s", in->path, sqlite3_errstr(rc));
		goto out;
	}
	sqlite3_close_v2(dst);
	dst = NULL;
	/* Upgrades the copy to this schema (and closes runs whose runner here is gone). */
	if (arl_store_open(&up, in->copy, ARL_STORE_NOCREATE, err) < 0) {
		arl_err_prefix(err, "merging '%s'", in->path);
		goto out;
	}
	ret = 0;
out:
	arl_store_close(up);
	sqlite3_finalize(st);
	sqlite3_close_v2(dst);
	sqlite3_close_v2(src);
	return ret;
}

static int attach_inputs(struct merge *m, struct arl_err *err)
{
	int max = sqlite3_limit(m->db, SQLITE_LIMIT_ATTACHED, -1);
	sqlite3_stmt *st = NULL;
	struct stat sb;
	int ret = -1;

	if (m->o->ninputs > (size_t)max)
		return arl_error(
		    err, ARL_E_USAGE,
		    "at most %d databases can be merged at once; merge the rest into the"
		    " output with a second merge --into",
		    max);
	if (stat(arl_store_path(m->s), &sb) < 0)
		return arl_error_errno(err, errno, "cannot stat '%s'", arl_store_path(m->s));
	for (size_t k = 0; k < m->o->ninputs; k++) {
		m->in[k].path = m->o->inputs[k];
		if (copy_input(m, k, err) < 0)
			return -1;
		if (m->in[k].dev == sb.st_dev && m->in[k].ino == sb.st_ino)
			return arl_error(err, ARL_E_USAGE, "'%s' is the output database itself",
			                 m->in[k].path);
		for (size_t j = 0; j < k; j++)
			if (m->in[j].dev == m->in[k].dev && m->in[j].ino == m->in[k].ino)
				return arl_error(err, ARL_E_USAGE, "'%s' is given twice",
				                 m->in[k].path);
	}
	for (size_t k = 0; k < m->o->ninputs; k++) {
		char *sql = arl_xasprintf("ATTACH ?1 AS in%zu", k);

		if (prep(m, &st, sql, err) < 0) {
			free(sql);
			goto out;
		}
		free(sql);
		sqlite3_bind_text(st, 1, m->in[k].copy, -1, SQLITE_STATIC);
		if (run(m, st, "attach an input", err) < 0)
			goto out;
		sqlite3_finalize(st);
		st = NULL;
	}
	ret = 0;
out:
	sqlite3_finalize(st);
	return ret;
}

/* Statements reading input @k, inserting into the output. ?1 is the input job, ?2 the new. */
static int prep_input(struct merge *m, size_t k, struct arl_err *err)
{
	struct input *in = &m->in[k];
	char *q[7];
	int ret = 0;

	q[0] = arl_xasprintf("SELECT id, key, state, started_at, finished_at, spec_hash FROM"
	                     " in%zu.jobs WHERE run_id = ?1 ORDER BY id",
	                     k);
	q[1] = arl_xasprintf(
	    "INSERT INTO main.jobs (run_id, key, name, file, pool, state, attempts, exit_code,"
	    " error_class, error, started_at, finished_at, duration_ms, item, labels, spec_hash,"
	    " skipped_from) SELECT ?2, key, name, file, pool, state, attempts, exit_code,"
	    " error_class, error, started_at, finished_at, duration_ms, item, labels, spec_hash,"
	    " (SELECT new_id FROM temp.merge_map WHERE input = %zu AND old_id = j.skipped_from)"
	    " FROM in%zu.jobs j WHERE id = ?1",
	    k, k);
	q[2] =
	    arl_xasprintf("INSERT INTO main.attempts (job_id, number, sandbox, state, exit_code,"
	                  " error_class, error, started_at, finished_at, duration_ms, prepare_ms)"
	                  " SELECT ?2, number, sandbox, state, exit_code, error_class, error,"
	                  " started_at, finished_at, duration_ms, prepare_ms FROM in%zu.attempts"
	                  " WHERE job_id = ?1 ORDER BY number",
	                  k);
	q[3] = arl_xasprintf(
	    "INSERT INTO main.steps (attempt_id, idx, name, type, phase, state, exit_code, stdout,"
	    " stderr, stdout_truncated, stderr_truncated, started_at, finished_at, duration_ms,"
	    " metrics_error) SELECT na.id, s.idx, s.name, s.type, s.phase, s.state, s.exit_code,"
	    " s.stdout, s.stderr, s.stdout_truncated, s.stderr_truncated, s.started_at,"
	    " s.finished_at, s.duration_ms, s.metrics_error FROM in%zu.attempts a"
	    " JOIN main.attempts na ON na.job_id = ?2 AND na.number = a.number"
	    " JOIN in%zu.steps s ON s.attempt_id = a.id"
	    /* Not by s.id: SQLite would then scan every step of the input for each job. */
	    " WHERE a.job_id = ?1 ORDER BY a.number, s.idx",
	    k, k);
	q[4] =
	    arl_xasprintf("INSERT INTO main.artifacts (attempt_id, path, size, sha256, error)"
	                  " SELECT na.id, r.path, r.size, r.sha256, r.error FROM in%zu.artifacts r"
	                  " JOIN in%zu.attempts a ON a.id = r.attempt_id"
	                  " JOIN main.attempts na ON na.job_id = ?2 AND na.number = a.number"
	                  " WHERE a.job_id = ?1 ORDER BY r.id",
	                  k, k);
	q[5] = arl_xasprintf("INSERT INTO main.metrics (job_id, name, value) SELECT ?2, name, value"
	                     " FROM in%zu.metrics WHERE job_id = ?1",
	                     k);
	q[6] = arl_xasprintf("SELECT DISTINCT r.sha256 FROM in%zu.artifacts r"
	                     " JOIN in%zu.attempts a ON a.id = r.attempt_id"
	                     " WHERE a.job_id = ?1 AND r.sha256 IS NOT NULL",
	                     k, k);
	if (prep(m, &in->jobs, q[0], err) < 0 || prep(m, &in->copy_job, q[1], err) < 0 ||
	    prep(m, &in->copy_attempts, q[2], err) < 0 || prep(m, &in->copy_steps, q[3], err) < 0 ||
	    prep(m, &in->copy_artifacts, q[4], err) < 0 ||
	    prep(m, &in->copy_metrics, q[5], err) < 0 || prep(m, &in->digests, q[6], err) < 0)
		ret = -1;
	for (size_t i = 0; i < 7; i++)
		free(q[i]);
	return ret;
}

/* ---- artifact contents ---- */

static bool is_digest(const char *d)
{
	size_t n = 0;

	for (; d[n]; n++)
		if (!((d[n] >= '0' && d[n] <= '9') || (d[n] >= 'a' && d[n] <= 'f')))
			return false;
	return n == 64;
}

/*
 * Copies DIGEST's content from beside input @in to beside the output, unless the output has
 * it, through the artifact store (store_artifacts.h): written aside, checked against its
 * digest, renamed into place. Content that does not match the digest its row claims is not
 * kept under that digest (the row then names a missing file, as for content the input lacks).
 */
static int copy_content(struct merge *m, const struct input *in, const char *digest,
                        struct arl_err *err)
{
	char *dir = arl_artifacts_dir(arl_store_path(m->s)), *dst = NULL, *src = NULL;
	char got[65];
	struct arl_blob *b = NULL;
	int sfd = -1, ret = -1;
	struct stat sb;
	char buf[65536];
	ssize_t n;

	if (!is_digest(digest)) {
		m->st.files_missing++;
		ret = 0;
		goto out;
	}
	dst = arl_artifacts_file(dir, digest);
	if (lstat(dst, &sb) == 0) {
		ret = 0;
		goto out;
	}
	src = arl_xasprintf("%s.artifacts/sha256/%.2s/%s", in->path, digest, digest);
	sfd = open(src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (sfd < 0 || fstat(sfd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		m->st.files_missing++;
		ret = 0;
		goto out;
	}
	if (arl_blob_begin(dir, &b, err) < 0)
		goto out;
	while ((n = read(sfd, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			arl_error_errno(err, errno, "cannot read '%s'", src);
			goto out;
		}
		if (arl_blob_write(b, buf, (size_t)n, err) < 0)
			goto out;
	}
	n = arl_blob_commit(b, got, err);
	b = NULL;
	if (n < 0)
		goto out;
	if (strcmp(got, digest) != 0)
		m->st.files_mismatched++;
	else
		m->st.files_copied++;
	ret = 0;
out:
	arl_blob_abort(b);
	if (sfd >= 0)
		close(sfd);
	free(src);
	free(dst);
	free(dir);
	return ret;
}

/* ---- runs and jobs ---- */

static int cmp_run(const void *a, const void *b)
{
	const struct in_run *x = a, *y = b;
	int c = strcmp(x->started_at, y->started_at);

	if (c)
		return c;
	if (x->k != y->k)
		return x->k < y->k ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static int read_runs(struct merge *m, struct in_run **out, size_t *nout, struct arl_err *err)
{
	struct in_run *r = NULL;
	size_t n = 0, cap = 0;
	sqlite3_stmt *st = NULL;
	int rc, ret = -1;

	for (size_t k = 0; k < m->o->ninputs; k++) {
		char *sql =
		    arl_xasprintf("SELECT id, name, params, started_at, finished_at, status,"
		                  " (SELECT count(*) FROM in%zu.jobs j WHERE j.run_id = r.id)"
		                  " FROM in%zu.runs r ORDER BY id",
		                  k, k);

		rc = prep(m, &st, sql, err);
		free(sql);
		if (rc < 0)
			goto out;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			const char *status = (const char *)sqlite3_column_text(st, 5);

			if (status && strcmp(status, "running") == 0) {
				arl_error(err, ARL_E_INVALID,
				          "run %lld of '%s' is still running: merge it once it"
				          " ended (a read-write command on its own host closes a"
				          " run whose runner died)",
				          (long long)sqlite3_column_int64(st, 0), m->in[k].path);
				goto out;
			}
			ARL_GROW(r, cap, n + 1);
			r[n] = (struct in_run){.k = k,
			                       .id = sqlite3_column_int64(st, 0),
			                       .name = col_dup(st, 1),
			                       .params = col_dup(st, 2),
			                       .started_at = col_dup(st, 3),
			                       .finished_at = col_dup(st, 4),
			                       .jobs = sqlite3_column_int64(st, 6)};
			if (!r[n].started_at)
				r[n].started_at = arl_xstrdup("");
			n++;
		}
		if (rc != SQLITE_DONE) {
			db_err(m, err, "read the input's runs");
			goto out;
		}
		sqlite3_finalize(st);
		st = NULL;
	}
	qsort(r, n, sizeof(*r), cmp_run);
	ret = 0;
out:
	sqlite3_finalize(st);
	*out = r;
	*nout = n;
	return ret;
}

/* Finds or creates the output run input run @r goes into. */
static int target_run(struct merge *m, const struct in_run *r, int64_t *out, bool *joined,
                      struct arl_err *err)
{
	char window[32];
	char *note = arl_xasprintf("merged from %s run %lld", m->in[r->k].path, (long long)r->id);
	sqlite3_stmt *st = m->find_run;
	int rc, ret = -1;

	snprintf(window, sizeof(window), "%+lld seconds", (long long)(m->o->window_ms / 1000));
	bind_text(st, 1, r->name);
	bind_text(st, 2, r->params);
	bind_text(st, 3, r->started_at);
	bind_text(st, 4, r->finished_at);
	sqlite3_bind_int64(st, 5, m->o->window_ms);
	sqlite3_bind_int64(st, 6, (int64_t)r->k);
	rc = sqlite3_step(st);
	*joined = rc == SQLITE_ROW;
	if (*joined)
		*out = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		db_err(m, err, "look for the run to merge into");
		goto out;
	}
	st = *joined ? m->join_run : m->new_run;
	sqlite3_bind_int64(st, 1, *joined ? *out : 0);
	sqlite3_bind_int64(st, 2, r->id);
	bind_text(st, 3, note);
	if (run(m, st, *joined ? "join a run" : "add a run", err) < 0)
		goto out;
	if (!*joined) {
		*out = sqlite3_last_insert_rowid(m->db);
		m->st.runs_new++;
	}
	ret = 0;
out:
	free(note);
	return ret;
}

static void add_conflict(struct merge *m, const char *key, const char *run_name)
{
	if (m->nconflicts++ >= MAX_NAMED_CONFLICTS)
		return;
	if (!m->conflict_run)
		m->conflict_run = arl_xstrdup(run_name);
	char *c = m->conflicts ? arl_xasprintf("%s, %s", m->conflicts, key) : arl_xstrdup(key);

	free(m->conflicts);
	m->conflicts = c;
}

static int map_job(struct merge *m, size_t k, int64_t old_id, int64_t new_id, struct arl_err *err)
{
	sqlite3_bind_int64(m->map, 1, (int64_t)k);
	sqlite3_bind_int64(m->map, 2, old_id);
	sqlite3_bind_int64(m->map, 3, new_id);
	return run(m, m->map, "map a job", err);
}

static int copy_job(struct merge *m, size_t k, int64_t old_id, int64_t run_id, int64_t *new_id,
                    struct arl_err *err)
{
	struct input *in = &m->in[k];
	sqlite3_stmt *cp[] = {in->copy_attempts, in->copy_steps, in->copy_artifacts,
	                      in->copy_metrics};
	int rc;

	sqlite3_bind_int64(in->copy_job, 1, old_id);
	sqlite3_bind_int64(in->copy_job, 2, run_id);
	if (run(m, in->copy_job, "copy a job", err) < 0)
		return -1;
	*new_id = sqlite3_last_insert_rowid(m->db);
	for (size_t i = 0; i < sizeof(cp) / sizeof(cp[0]); i++) {
		sqlite3_bind_int64(cp[i], 1, old_id);
		sqlite3_bind_int64(cp[i], 2, *new_id);
		if (run(m, cp[i], "copy a job's attempts, steps, artifacts and metrics", err) < 0)
			return -1;
	}
	sqlite3_bind_int64(in->digests, 1, old_id);
	while ((rc = sqlite3_step(in->digests)) == SQLITE_ROW) {
		char *d = col_dup(in->digests, 0);

		rc = copy_content(m, in, d, err);
		free(d);
		if (rc < 0) {
			sqlite3_reset(in->digests);
			return -1;
		}
	}
	sqlite3_reset(in->digests);
	if (rc != SQLITE_DONE)
		return db_err(m, err, "read a job's artifacts");
	m->st.jobs_copied++;
	return map_job(m, k, old_id, *new_id, err);
}

/* A result's end for --prefer newest: when it finished, else when it started. */
static const char *when(const char *finished, const char *started)
{
	return finished ? finished : started ? started : "";
}

static bool eq(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static int merge_jobs(struct merge *m, const struct in_run *r, int64_t run_id, struct arl_err *err)
{
	struct input *in = &m->in[r->k];
	sqlite3_stmt *js = in->jobs, *f = m->find_job;
	int rc, ret = -1;

	sqlite3_bind_int64(js, 1, r->id);
	while ((rc = sqlite3_step(js)) == SQLITE_ROW) {
		int64_t old_id = sqlite3_column_int64(js, 0), have = 0, new_id;
		char *key = col_dup(js, 1), *state = col_dup(js, 2), *started = col_dup(js, 3),
		     *finished = col_dup(js, 4), *hash = col_dup(js, 5);
		char *h_state = NULL, *h_started = NULL, *h_finished = NULL, *h_hash = NULL;
		int frc;

		m->st.jobs_in++;
		sqlite3_bind_int64(f, 1, run_id);
		bind_text(f, 2, key);
		if ((frc = sqlite3_step(f)) == SQLITE_ROW) {
			have = sqlite3_column_int64(f, 0);
			h_state = col_dup(f, 1);
			h_started = col_dup(f, 2);
			h_finished = col_dup(f, 3);
			h_hash = col_dup(f, 4);
		}
		sqlite3_reset(f);
		if (frc != SQLITE_ROW && frc != SQLITE_DONE) {
			db_err(m, err, "look for a key");
			frc = -1;
		} else if (!have) {
			frc = copy_job(m, r->k, old_id, run_id, &new_id, err);
		} else if (eq(state, h_state) && eq(started, h_started) &&
		           eq(finished, h_finished) && eq(hash, h_hash)) {
			m->st.jobs_same++;
			frc = map_job(m, r->k, old_id, have, err);
		} else if (!m->o->prefer_newest) {
			add_conflict(m, key, r->name);
			frc = 0;
		} else if (strcmp(when(finished, started), when(h_finished, h_started)) > 0) {
			/* Skipped jobs that stood for the older result now stand for this one. */
			frc = copy_job(m, r->k, old_id, run_id, &new_id, err);
			if (frc == 0) {
				sqlite3_bind_int64(m->repoint, 1, have);
				sqlite3_bind_int64(m->repoint, 2, new_id);
				frc = run(m, m->repoint, "repoint skipped jobs", err);
			}
			if (frc == 0) {
				sqlite3_bind_int64(m->del_job, 1, have);
				frc = run(m, m->del_job, "replace a job", err);
			}
			m->st.jobs_replaced++;
			m->st.jobs_copied--;
		} else {
			m->st.jobs_older++;
			frc = map_job(m, r->k, old_id, have, err);
		}
		free(key);
		free(state);
		free(started);
		free(finished);
		free(hash);
		free(h_state);
		free(h_started);
		free(h_finished);
		free(h_hash);
		if (frc < 0)
			goto out;
	}
	if (rc != SQLITE_DONE) {
		db_err(m, err, "read the input's jobs");
		goto out;
	}
	ret = 0;
out:
	sqlite3_reset(js);
	return ret;
}

/* ---- the output's statements ---- */

/* SQL is kept as written. */
/* clang-format off */
/* The worse of two run statuses. */
#define WORSE_STATUS(a, b) \
	"CASE WHEN 'interrupted' IN (" a ", " b ") THEN 'interrupted'" \
	" WHEN 'failed' IN (" a ", " b ") THEN 'failed' ELSE " a " END"
/* A comma-separated list with @b added unless already in it. */
#define ADD_TO_LIST(a, b) \
	"CASE WHEN " b " IS NULL OR " b " = '' THEN " a \
	" WHEN " a " IS NULL OR " a " = '' THEN " b \
	" WHEN instr(',' || " a " || ',', ',' || " b " || ',') > 0 THEN " a \
	" ELSE " a " || ',' || " b " END"
#define COUNT_STATE(st) \
	"(SELECT count(*) FROM main.jobs WHERE run_id = runs.id AND state = '" st "')"

/*
 * The output run an input run joins: same name and parameters, time ranges overlapping once
 * widened by ?5 ms. ?3 and ?4 are the input run's start and end. A run never joins one that
 * already holds a run of its own input (?6): each input is one machine's history, and two of
 * its runs are two runs.
 */
static const char find_run_sql[] =
	"SELECT id FROM main.runs WHERE name = ?1 AND params IS ?2 AND status != 'running'"
	" AND julianday(started_at) * 86400000 <= julianday(coalesce(?4, ?3)) * 86400000 + ?5"
	" AND julianday(coalesce(finished_at, started_at)) * 86400000"
	"  >= julianday(?3) * 86400000 - ?5"
	" AND id NOT IN (SELECT run_id FROM temp.merge_src WHERE input = ?6)"
	" ORDER BY started_at, id LIMIT 1";
static const char find_job_sql[] =
	"SELECT id, state, started_at, finished_at, spec_hash FROM main.jobs"
	" WHERE run_id = ?1 AND key = ?2 ORDER BY id LIMIT 1";
static const char recount_sql[] =
	"UPDATE main.runs SET"
	" jobs_total = (SELECT count(*) FROM main.jobs WHERE run_id = runs.id),"
	" jobs_succeeded = " COUNT_STATE("Succeeded") ","
	" jobs_failed = " COUNT_STATE("Failed") ","
	" jobs_skipped = " COUNT_STATE("Skipped") ","
	" jobs_cancelled = " COUNT_STATE("Cancelled") ","
	" duration_ms = CASE WHEN finished_at IS NULL THEN NULL ELSE"
	"  CAST(round((julianday(finished_at) - julianday(started_at)) * 86400000) AS INTEGER)"
	"  END"
	" WHERE id IN (SELECT run_id FROM temp.merge_runs)";
/* %s: the input's runs table. ?2 is the input run, ?3 the note saying where it came from. */
static const char new_run_fmt[] =
	"INSERT INTO main.runs (name, status, started_at, finished_at, files, jobs_total,"
	" duration_ms, exit_code, host, isolation, notes, params, halted_by)"
	" SELECT name, status, started_at, finished_at, files, jobs_total, duration_ms,"
	" exit_code, host, isolation,"
	" CASE WHEN coalesce(notes, '') = '' THEN ?3 ELSE notes || char(10) || ?3 END,"
	" params, halted_by FROM %s WHERE id = ?2 AND ?1 = 0";
/* ?1 is the output run. The runner's identity goes: no pid of a merged run is its own. */
static const char join_run_fmt[] =
	"UPDATE main.runs SET"
	" status = " WORSE_STATUS("runs.status", "i.status") ","
	" started_at = min(runs.started_at, i.started_at),"
	" finished_at = CASE WHEN runs.finished_at IS NULL OR i.finished_at IS NULL"
	"  THEN coalesce(runs.finished_at, i.finished_at)"
	"  ELSE max(runs.finished_at, i.finished_at) END,"
	" files = (SELECT json_group_array(value) FROM (SELECT value FROM json_each(runs.files)"
	"  UNION SELECT value FROM json_each(i.files))),"
	" exit_code = max(coalesce(runs.exit_code, i.exit_code),"
	"  coalesce(i.exit_code, runs.exit_code)),"
	" host = " ADD_TO_LIST("runs.host", "i.host") ","
	" isolation = " ADD_TO_LIST("runs.isolation", "i.isolation") ","
	" halted_by = " ADD_TO_LIST("runs.halted_by", "i.halted_by") ","
	" notes = CASE WHEN coalesce(runs.notes, '') = '' THEN ?3"
	"  ELSE runs.notes || char(10) || ?3 END,"
	" pid = NULL, owner_start = NULL, owner_boot = NULL, owner_pidns = NULL"
	" FROM (SELECT * FROM %s WHERE id = ?2) AS i WHERE runs.id = ?1";
/* clang-format on */

static int prep_output(struct merge *m, struct arl_err *err)
{
	if (prep(m, &m->find_run, find_run_sql, err) < 0 ||
	    prep(m, &m->find_job, find_job_sql, err) < 0 ||
	    prep(m, &m->del_job, "DELETE FROM main.jobs WHERE id = ?1", err) < 0 ||
	    prep(m, &m->repoint, "UPDATE main.jobs SET skipped_from = ?2 WHERE skipped_from = ?1",
	         err) < 0 ||
	    prep(m, &m->map, "INSERT OR REPLACE INTO temp.merge_map VALUES (?1, ?2, ?3)", err) <
	        0 ||
	    prep(m, &m->recount, recount_sql, err) < 0)
		return -1;
	return 0;
}

/* new_run and join_run name the input's runs table: made again for each input. */
static int prep_run_stmts(struct merge *m, size_t k, struct arl_err *err)
{
	char tbl[32];
	char *sql;
	int rc;

	snprintf(tbl, sizeof(tbl), "in%zu.runs", k);
	sqlite3_finalize(m->new_run);
	sqlite3_finalize(m->join_run);
	m->new_run = m->join_run = NULL;
	sql = arl_xasprintf(new_run_fmt, tbl);
	rc = prep(m, &m->new_run, sql, err);
	free(sql);
	if (rc < 0)
		return -1;
	sql = arl_xasprintf(join_run_fmt, tbl);
	rc = prep(m, &m->join_run, sql, err);
	free(sql);
	return rc;
}

static int exec(struct merge *m, const char *sql, struct arl_err *err)
{
	if (sqlite3_exec(m->db, sql, NULL, NULL, NULL) == SQLITE_OK)
		return 0;
	return db_err(m, err, sql);
}

static void cleanup(struct merge *m)
{
	sqlite3_stmt *os[] = {m->find_run, m->new_run, m->join_run, m->find_job,
	                      m->del_job,  m->repoint, m->map,      m->recount};

	for (size_t i = 0; i < sizeof(os) / sizeof(os[0]); i++)
		sqlite3_finalize(os[i]);
	for (size_t k = 0; m->in && k < m->o->ninputs; k++) {
		struct input *in = &m->in[k];
		sqlite3_stmt *is[] = {in->jobs,       in->copy_job,       in->copy_attempts,
		                      in->copy_steps, in->copy_artifacts, in->copy_metrics,
		                      in->digests};
		char *sql = arl_xasprintf("DETACH in%zu", k);

		for (size_t i = 0; i < sizeof(is) / sizeof(is[0]); i++)
			sqlite3_finalize(is[i]);
		sqlite3_exec(m->db, sql, NULL, NULL, NULL);
		free(sql);
		if (in->copy) {
			static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};

			for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
				char *f = arl_xasprintf("%s%s", in->copy, suffix[i]);

				unlink(f);
				free(f);
			}
			free(in->copy);
		}
	}
	sqlite3_exec(m->db,
	             "DROP TABLE IF EXISTS temp.merge_map; DROP TABLE IF EXISTS"
	             " temp.merge_runs; DROP TABLE IF EXISTS temp.merge_src",
	             NULL, NULL, NULL);
	if (m->tmpdir)
		rmdir(m->tmpdir);
	free(m->tmpdir);
	free(m->in);
	free(m->conflicts);
	free(m->conflict_run);
}

int arl_store_merge(struct arl_store *out, const struct arl_merge_opts *o, arl_merge_fn fn,
                    void *arg, struct arl_merge_stats *stats, struct arl_err *err)
{
	struct merge m = {.s = out, .db = arl_store_db(out), .o = o};
	struct in_run *runs = NULL;
	size_t nruns = 0, cur = (size_t)-1, nev = 0, evcap = 0;
	struct arl_merge_event *evs = NULL;
	const char *tdir = o->tmpdir ? o->tmpdir : getenv("TMPDIR");
	char *tmpl;
	bool in_tx = false;
	int ret = -1;

	tmpl = arl_xasprintf("%s/arl-batch-merge-XXXXXX", tdir && *tdir ? tdir : "/tmp");
	if (!mkdtemp(tmpl)) {
		arl_error_errno(err, errno, "cannot create a directory in '%s'",
		                tdir && *tdir ? tdir : "/tmp");
		free(tmpl);
		return -1;
	}
	m.tmpdir = tmpl;
	m.in = arl_xcalloc(o->ninputs ? o->ninputs : 1, sizeof(*m.in));
	if (attach_inputs(&m, err) < 0 ||
	    exec(&m,
	         "CREATE TEMP TABLE merge_map (input INTEGER, old_id INTEGER, new_id INTEGER,"
	         " PRIMARY KEY (input, old_id)); CREATE TEMP TABLE merge_runs (run_id INTEGER"
	         " PRIMARY KEY); CREATE TEMP TABLE merge_src (run_id INTEGER, input INTEGER,"
	         " PRIMARY KEY (run_id, input))",
	         err) < 0 ||
	    prep_output(&m, err) < 0)
		goto out;
	for (size_t k = 0; k < o->ninputs; k++)
		if (prep_input(&m, k, err) < 0)
			goto out;
	if (exec(&m, "BEGIN IMMEDIATE", err) < 0)
		goto out;
	in_tx = true;
	if (read_runs(&m, &runs, &nruns, err) < 0)
		goto out;
	for (size_t i = 0; i < nruns; i++) {
		const struct in_run *r = &runs[i];
		struct arl_merge_event ev = {
		    .input = m.in[r->k].path, .in_run = r->id, .name = r->name, .jobs = r->jobs};
		char *sql;
		int rc;

		if (cur != r->k) {
			if (prep_run_stmts(&m, r->k, err) < 0)
				goto out;
			cur = r->k;
		}
		if (target_run(&m, r, &ev.out_run, &ev.joined, err) < 0 ||
		    merge_jobs(&m, r, ev.out_run, err) < 0)
			goto out;
		sql = arl_xasprintf("INSERT OR IGNORE INTO temp.merge_runs VALUES (%lld);"
		                    " INSERT OR IGNORE INTO temp.merge_src VALUES (%lld, %zu)",
		                    (long long)ev.out_run, (long long)ev.out_run, r->k);
		rc = exec(&m, sql, err);
		free(sql);
		if (rc < 0)
			goto out;
		m.st.runs_in++;
		ARL_GROW(evs, evcap, nev + 1);
		evs[nev++] = ev;
	}
	if (m.nconflicts) {
		arl_error(err, ARL_E_INVALID,
		          "%lld key%s of run '%s' %s results in more than one input (%s%s): they"
		          " would be counted twice; give --prefer newest to keep the result that"
		          " finished last",
		          (long long)m.nconflicts, m.nconflicts == 1 ? "" : "s", m.conflict_run,
		          m.nconflicts == 1 ? "has" : "have", m.conflicts,
		          m.nconflicts > MAX_NAMED_CONFLICTS ? ", ..." : "");
		goto out;
	}
	if (run(&m, m.recount, "recount the merged runs", err) < 0 || exec(&m, "COMMIT", err) < 0)
		goto out;
	in_tx = false;
	/* Told once committed: a refused merge printed no line saying where a run went. */
	for (size_t i = 0; fn && i < nev; i++)
		fn(arg, &evs[i]);
	if (stats)
		*stats = m.st;
	ret = 0;
out:
	if (in_tx)
		sqlite3_exec(m.db, "ROLLBACK", NULL, NULL, NULL);
	for (size_t i = 0; i < nruns; i++) {
		free(runs[i].name);
		free(runs[i].params);
		free(runs[i].started_at);
		free(runs[i].finished_at);
	}
	free(runs);
	free(evs);
	cleanup(&m);
	return ret;
}
