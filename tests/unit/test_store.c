/*
 * The results store: migrations, writes read back through a second connection, counters,
 * recovery of runs whose runner died, the read-only authorizer, and the read commands'
 * exit codes and output shapes.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "cmd/cli.h"
#include "result.h"
#include "store/store.h"
#include "store/store_internal.h"
#include "store/store_jobs.h"
#include "store/store_query.h"
#include "store/store_migrations.h"
#include "store/store_rows.h"
#include "util.h"
#include "banned.h"

struct fx {
	char dir[64];
	char db[128];
};

static int setup(void **state)
{
	struct fx *f = arl_xcalloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/test_store.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->db, sizeof(f->db), "%s/results.db", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	static const char *const sfx[] = {"", "-wal", "-shm", "-journal", ".out"};
	char p[160];

	for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", f->db, sfx[i]);
		unlink(p);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

/* ---- a second, independent connection to check what really reached the file ---- */

static sqlite3 *raw_open(const char *path)
{
	sqlite3 *db = NULL;

	assert_int_equal(
	    sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
	    SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	return db;
}

static void raw_exec(const char *path, const char *sql)
{
	sqlite3 *db = raw_open(path);
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
	sqlite3_close(db);
}

static int64_t q_int(const char *path, const char *fmt, ...) ARL_PRINTF(2, 3);
static int64_t q_int(const char *path, const char *fmt, ...)
{
	sqlite3 *db = raw_open(path);
	sqlite3_stmt *st = NULL;
	char sql[512];
	va_list ap;
	int64_t v = -999;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_type(st, 0) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* The first column of the first row as text ("(null)" for NULL, "(none)" for no row). */
static char *q_text(const char *path, const char *fmt, ...) ARL_PRINTF(2, 3);
static char *q_text(const char *path, const char *fmt, ...)
{
	sqlite3 *db = raw_open(path);
	sqlite3_stmt *st = NULL;
	char sql[512], *v;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	if (sqlite3_step(st) == SQLITE_ROW)
		v = arl_xstrdup(sqlite3_column_type(st, 0) == SQLITE_NULL
		                    ? "(null)"
		                    : (const char *)sqlite3_column_text(st, 0));
	else
		v = arl_xstrdup("(none)");
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

#define assert_text(path, want, ...)                                                               \
	do {                                                                                       \
		char *got_ = q_text(path, __VA_ARGS__);                                            \
		assert_string_equal(got_, want);                                                   \
		free(got_);                                                                        \
	} while (0)

static int row_from_array(void *arg, size_t i, struct arl_job_row *row, struct arl_err *err)
{
	(void)err;
	*row = ((const struct arl_job_row *)arg)[i];
	return 0;
}

/* arl_store_jobs_add() of the rows of an array. */
static int add_rows(struct arl_store *s, int64_t run, const struct arl_job_row *rows, size_t n,
                    int64_t *ids, struct arl_err *err)
{
	return arl_store_jobs_add(s, run, n, row_from_array, (void *)rows, ids, err);
}

static struct arl_store *open_rw(const char *path)
{
	struct arl_store *s = NULL;
	struct arl_err err = ARL_ERR_INIT;

	if (arl_store_open(&s, path, 0, &err) < 0)
		fail_msg("open: %s", err.msg);
	return s;
}

/* A run with three Pending jobs a, b, c. */
static struct arl_store *run_with_jobs(const char *path, int64_t *run, int64_t ids[3])
{
	struct arl_store *s = open_rw(path);
	struct arl_err err = ARL_ERR_INIT;
	struct arl_run_info info = {.name = "nightly",
	                            .files = "[\"jobs/smoke.yaml\"]",
	                            .jobs_total = 3,
	                            .isolation = "bwrap"};
	struct arl_job_row rows[3] = {
	    {"smoke/a", "a", "jobs/smoke.yaml", "p", NULL, "{\"suite\":\"smoke\"}", "h-a", 0},
	    {"smoke/b", "b", "jobs/smoke.yaml", "p", "{\"n\":2}", NULL, "h-b", 0},
	    {"smoke/c", "c", "jobs/smoke.yaml", NULL, NULL, NULL, NULL, 0},
	};

	if (arl_store_run_begin(s, &info, run, &err) < 0 ||
	    add_rows(s, *run, rows, 3, ids, &err) < 0)
		fail_msg("%s", err.msg);
	return s;
}

/* ---- migrations ---- */

/* The whole of @rel (below the source tree), NUL-terminated; its length in *@len. */
static char *read_source(const char *rel, size_t *len)
{
	char path[512], *text;
	FILE *fp;
	long n;

	snprintf(path, sizeof(path), "%s/%s", SOURCE_DIR, rel);
	fp = fopen(path, "rb");
	assert_non_null(fp);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	n = ftell(fp);
	assert_true(n >= 0);
	rewind(fp);
	text = arl_xcalloc((size_t)n + 1, 1);
	assert_int_equal(fread(text, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	if (len)
		*len = (size_t)n;
	return text;
}

static void test_migrate_fresh(void **state)
{
	struct fx *f = *state;
	struct arl_store *s = open_rw(f->db);
	static const char *const spec_cols[][2] = {
	    {"runs", "id"},
	    {"runs", "name"},
	    {"runs", "status"},
	    {"runs", "started_at"},
	    {"runs", "finished_at"},
	    {"runs", "files"},
	    {"runs", "jobs_total"},
	    {"runs", "jobs_succeeded"},
	    {"runs", "jobs_failed"},
	    {"runs", "jobs_skipped"},
	    {"runs", "jobs_cancelled"},
	    {"jobs", "id"},
	    {"jobs", "run_id"},
	    {"jobs", "key"},
	    {"jobs", "name"},
	    {"jobs", "file"},
	    {"jobs", "pool"},
	    {"jobs", "state"},
	    {"jobs", "attempts"},
	    {"jobs", "exit_code"},
	    {"jobs", "error_class"},
	    {"jobs", "error"},
	    {"jobs", "started_at"},
	    {"jobs", "finished_at"},
	    {"jobs", "duration_ms"},
	    {"jobs", "item"},
	    {"jobs", "labels"},
	    {"jobs", "spec_hash"},
	    {"attempts", "id"},
	    {"attempts", "job_id"},
	    {"attempts", "number"},
	    {"attempts", "sandbox"},
	    {"attempts", "state"},
	    {"attempts", "exit_code"},
	    {"attempts", "error_class"},
	    {"attempts", "error"},
	    {"attempts", "started_at"},
	    {"attempts", "finished_at"},
	    {"attempts", "duration_ms"},
	    {"steps", "id"},
	    {"steps", "attempt_id"},
	    {"steps", "idx"},
	    {"steps", "name"},
	    {"steps", "type"},
	    {"steps", "phase"},
	    {"steps", "state"},
	    {"steps", "exit_code"},
	    {"steps", "stdout"},
	    {"steps", "stderr"},
	    {"steps", "stdout_truncated"},
	    {"steps", "stderr_truncated"},
	    {"steps", "started_at"},
	    {"steps", "finished_at"},
	    {"steps", "duration_ms"},
	    {"metrics", "job_id"},
	    {"metrics", "name"},
	    {"metrics", "value"},
	};

	arl_store_close(s);
	assert_int_equal(q_int(f->db, "PRAGMA user_version"), ARL_STORE_VERSION);
	assert_text(f->db, "wal", "PRAGMA journal_mode");
	for (size_t i = 0; i < sizeof(spec_cols) / sizeof(spec_cols[0]); i++)
		if (q_int(f->db, "SELECT count(*) FROM pragma_table_info('%s') WHERE name = '%s'",
		          spec_cols[i][0], spec_cols[i][1]) != 1)
			fail_msg("column %s.%s missing", spec_cols[i][0], spec_cols[i][1]);
	assert_int_equal(q_int(f->db, "SELECT count(*) FROM pragma_table_list WHERE strict = 1"
	                              " AND name IN ('runs','jobs','attempts','steps','metrics')"),
	                 5);
	assert_int_equal(q_int(f->db, "SELECT count(*) FROM sqlite_schema WHERE type = 'index'"
	                              " AND name IN ('jobs_run_state', 'jobs_key', 'attempts_job',"
	                              " 'steps_attempt', 'metrics_job')"),
	                 5);
	/* ON DELETE CASCADE on every child table */
	assert_int_equal(q_int(f->db, "SELECT count(*) FROM pragma_foreign_key_list('jobs')"
	                              " WHERE \"table\" = 'runs' AND on_delete = 'CASCADE'"),
	                 1);
	assert_int_equal(q_int(f->db, "SELECT count(*) FROM pragma_foreign_key_list('steps')"
	                              " WHERE on_delete = 'CASCADE'"),
	                 1);
}

/*
 * A version-1 database (the published schema of that release, kept as a fixture) upgrades to
 * the same columns, in the same order, as a new one, and keeps its rows.
 */
static void test_migrate_from_v1(void **state)
{
	struct fx *f = *state;
	char fresh[600], *text;
	static const char *const tables[] = {"runs",    "jobs",      "attempts", "steps",
	                                     "metrics", "artifacts", "leases"};

	text = read_source("tests/unit/fixtures/store/results-v1.sql", NULL);
	raw_exec(f->db, text);
	free(text);
	raw_exec(f->db,
	         "INSERT INTO runs (name, started_at) VALUES ('old', '2026-01-01T00:00:00Z')");
	assert_int_equal(q_int(f->db, "PRAGMA user_version"), 1);
	arl_store_close(open_rw(f->db));
	assert_int_equal(q_int(f->db, "PRAGMA user_version"), ARL_STORE_VERSION);
	assert_int_equal(q_int(f->db, "SELECT count(*) FROM runs WHERE name = 'old'"), 1);

	snprintf(fresh, sizeof(fresh), "%s.fresh", f->db);
	arl_store_close(open_rw(fresh));
	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
		int64_t cols =
		    q_int(fresh, "SELECT count(*) FROM pragma_table_info('%s')", tables[i]);

		assert_int_equal(
		    q_int(f->db, "SELECT count(*) FROM pragma_table_info('%s')", tables[i]), cols);
		for (int64_t c = 0; c < cols; c++) {
			char sql[160];
			int64_t h1, h2;

			snprintf(sql, sizeof(sql),
			         "SELECT unicode(name) * 1000 + length(name) * 10 + length(type)"
			         " FROM pragma_table_info('%s') WHERE cid = %lld",
			         tables[i], (long long)c);
			h1 = q_int(f->db, "%s", sql);
			h2 = q_int(fresh, "%s", sql);
			if (h1 != h2)
				fail_msg("%s: column %lld differs after the upgrade", tables[i],
				         (long long)c);
		}
	}
	unlink(fresh);
}

static void test_reopen_is_noop(void **state)
{
	struct fx *f = *state;
	int64_t schema;

	arl_store_close(open_rw(f->db));
	schema = q_int(f->db, "PRAGMA schema_version");
	assert_true(schema > 0);
	arl_store_close(open_rw(f->db));
	arl_store_close(open_rw(f->db));
	assert_int_equal(q_int(f->db, "PRAGMA schema_version"), schema);
	assert_int_equal(q_int(f->db, "PRAGMA user_version"), ARL_STORE_VERSION);
}

static void test_newer_db_refused(void **state)
{
	struct fx *f = *state;
	struct arl_store *s = NULL;
	struct arl_err err = ARL_ERR_INIT;
	char sql[64];

	arl_store_close(open_rw(f->db));
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", ARL_STORE_VERSION + 1);
	raw_exec(f->db, sql);
	assert_int_equal(arl_store_open(&s, f->db, 0, &err), -1);
	assert_null(s);
	assert_int_equal(err.code, ARL_E_DB);
	assert_non_null(strstr(err.msg, "newer"));
	arl_err_clear(&err);
	assert_int_equal(arl_store_open(&s, f->db, ARL_STORE_READONLY, &err), -1);
	assert_null(s);
	/* Refusing must not have touched it. */
	assert_int_equal(q_int(f->db, "PRAGMA user_version"), ARL_STORE_VERSION + 1);
}

static void test_foreign_db_refused(void **state)
{
	struct fx *f = *state;
	struct arl_store *s = NULL;
	struct arl_err err = ARL_ERR_INIT;

	raw_exec(f->db, "CREATE TABLE runs (x); INSERT INTO runs VALUES (1)");
	assert_int_equal(arl_store_open(&s, f->db, 0, &err), -1);
	assert_null(s);
	assert_non_null(strstr(err.msg, "not an arl-batch results database"));
	assert_int_equal(q_int(f->db, "SELECT count(*) FROM runs"), 1);
	assert_int_equal(q_int(f->db, "PRAGMA user_version"), 0);
	assert_text(f->db, "delete", "PRAGMA journal_mode");
}

static void test_missing_db(void **state)
{
	struct fx *f = *state;
	struct arl_store *s = NULL;
	struct arl_err err = ARL_ERR_INIT;

	assert_int_equal(arl_store_open(&s, f->db, ARL_STORE_NOCREATE, &err), -1);
	assert_int_equal(err.code, ARL_E_IO);
	assert_int_equal(access(f->db, F_OK), -1);
	arl_err_clear(&err);
	assert_int_equal(arl_store_open(&s, f->db, ARL_STORE_READONLY, &err), -1);
	assert_int_equal(access(f->db, F_OK), -1);
	assert_null(s);
}

/* The embedded migration is byte for byte the published schema file. */
static void test_schema_file_is_embedded(void **state)
{
	size_t n;
	char *text = read_source("schemas/results.sql", &n);

	(void)state;
	assert_int_equal(strlen(arl_results_sql), n);
	assert_memory_equal(arl_results_sql, text, n);
	assert_non_null(strstr(text, "PRAGMA user_version = 4;"));
	assert_int_equal(ARL_STORE_VERSION, 4);
	free(text);
}

/* ---- writing ---- */

static void set_out(struct arl_output *o, const char *data, size_t len, bool trunc)
{
	o->data = arl_xmalloc(len + 1);
	memcpy(o->data, data, len);
	o->data[len] = '\0';
	o->len = len;
	o->truncated = trunc;
}

static void step(struct arl_step_result *s, const char *name, const char *type, bool cb,
                 enum arl_state st, int exit_code, int64_t t0, int64_t t1)
{
	s->name = arl_xstrdup(name);
	s->type = type;
	s->callback = cb;
	s->state = st;
	s->has_exit = st != ARL_STATE_SKIPPED;
	s->exit_code = exit_code;
	s->started_ms = t0;
	s->finished_ms = t1;
}

/*
 * Job a: attempt 1 timed out in its second step; attempt 2 succeeded with a callback.
 * T is 2026-01-02T03:04:05Z.
 */
#define T 1767323045000LL

static void build_result(struct arl_job_result *r)
{
	struct arl_attempt_result *a;

	memset(r, 0, sizeof(*r));
	r->state = ARL_STATE_SUCCEEDED;
	r->has_exit = true;
	r->exit_code = 0;
	r->started_ms = T;
	r->finished_ms = T + 41234;
	r->nattempts = 2;
	r->attempts = arl_xcalloc(2, sizeof(*r->attempts));

	a = &r->attempts[0];
	a->number = 1;
	a->sandbox = arl_xstrdup("sb-1");
	a->state = ARL_STATE_FAILED;
	a->cls = ARL_CLASS_TIMEOUT;
	a->error = arl_xstrdup("step 'test' ran past 30s");
	a->started_ms = T;
	a->finished_ms = T + 30000;
	a->nsteps = 3;
	a->steps = arl_xcalloc(3, sizeof(*a->steps));
	step(&a->steps[0], "write", "FilePatch", false, ARL_STATE_SUCCEEDED, 0, T, T + 5);
	set_out(&a->steps[0].out, "File created: /workspace/x\n", 27, false);
	step(&a->steps[1], "test", "Command", false, ARL_STATE_FAILED, 137, T + 5, T + 30000);
	/* Invalid UTF-8 and a NUL: stored as text with U+FFFD each. */
	set_out(&a->steps[1].out, "ok\xff\0end", 7, true);
	set_out(&a->steps[1].err, "killed\n", 7, false);
	step(&a->steps[2], "report", "Command", false, ARL_STATE_SKIPPED, 0, 0, 0);

	a = &r->attempts[1];
	a->number = 2;
	a->sandbox = arl_xstrdup("sb-2");
	a->state = ARL_STATE_SUCCEEDED;
	a->has_exit = true;
	a->started_ms = T + 31000;
	a->finished_ms = T + 41234;
	a->nsteps = 2;
	a->steps = arl_xcalloc(2, sizeof(*a->steps));
	step(&a->steps[0], "test", "Command", false, ARL_STATE_SUCCEEDED, 0, T + 31000, T + 41000);
	set_out(&a->steps[0].out, "passed\n", 7, false);
	step(&a->steps[1], "notify", "Command", true, ARL_STATE_SUCCEEDED, 0, T + 41000, T + 41234);
	set_out(&a->steps[1].out, "sent\n", 5, false);

	r->nmetrics = 3;
	r->metrics = arl_xcalloc(3, sizeof(*r->metrics));
	r->metrics[0].name = arl_xstrdup("accuracy");
	r->metrics[0].kind = ARL_METRIC_NUMBER;
	r->metrics[0].number = 0.875;
	r->metrics[1].name = arl_xstrdup("model");
	r->metrics[1].kind = ARL_METRIC_TEXT;
	r->metrics[1].text = arl_xstrdup("m-1");
	r->metrics[2].name = arl_xstrdup("accuracy"); /* repeated: the last one wins */
	r->metrics[2].kind = ARL_METRIC_NUMBER;
	r->metrics[2].number = 0.9;
}

static void finish(struct arl_store *s, int64_t job, struct arl_job_result *r)
{
	struct arl_err err = ARL_ERR_INIT;

	if (arl_store_job_finish(s, job, r, &err) < 0)
		fail_msg("job_finish: %s", err.msg);
}

static void test_job_finish_rows(void **state)
{
	struct fx *f = *state;
	int64_t run, ids[3];
	struct arl_store *s = run_with_jobs(f->db, &run, ids);
	struct arl_err err = ARL_ERR_INIT;
	struct arl_job_result r;

	assert_int_equal(arl_store_job_set_running(s, ids[0], T, &err), 0);
	assert_text(f->db, "Running", "SELECT state FROM jobs WHERE id = %lld", (long long)ids[0]);
	build_result(&r);
	finish(s, ids[0], &r);
	arl_job_result_release(&r);

	/* the job row */
	assert_text(f->db,
	            "Succeeded|2|0|(null)|2026-01-02T03:04:05.000Z|2026-01-02T03:04:46.234Z|41234",
	            "SELECT state || '|' || attempts || '|' || exit_code || '|' ||"
	            " coalesce(error_class, '(null)') || '|' || started_at || '|' || finished_at"
	            " || '|' || duration_ms FROM jobs WHERE id = %lld",
	            (long long)ids[0]);
	assert_text(f->db, "{\"suite\":\"smoke\"}|h-a|(null)",
	            "SELECT labels || '|' || spec_hash || '|' || coalesce(item, '(null)')"
	            " FROM jobs WHERE id = %lld",
	            (long long)ids[0]);
	/* attempts */
	assert_int_equal(
	    q_int(f->db, "SELECT count(*) FROM attempts WHERE job_id = %lld", (long long)ids[0]),
	    2);
	assert_text(
	    f->db, "1|sb-1|Failed|timeout|step 'test' ran past 30s|30000|(null)",
	    "SELECT number || '|' || sandbox || '|' || state || '|' || error_class || '|' ||"
	    " error || '|' || duration_ms || '|' || coalesce(exit_code, '(null)')"
	    " FROM attempts WHERE job_id = %lld AND number = 1",
	    (long long)ids[0]);
	assert_text(f->db, "2|Succeeded|0",
	            "SELECT number || '|' || state || '|' || exit_code"
	            " FROM attempts WHERE job_id = %lld AND number = 2",
	            (long long)ids[0]);
	/* steps of attempt 1, including the one not run */
	assert_text(
	    f->db,
	    "0:write:FilePatch:main:Succeeded:0:0,1:test:Command:main:Failed:137:1,"
	    "2:report:Command:main:Skipped:-:0",
	    "SELECT group_concat(idx || ':' || name || ':' || type || ':' || phase || ':' ||"
	    " state || ':' || coalesce(exit_code, '-') || ':' || stdout_truncated, ',')"
	    " FROM (SELECT s.* FROM steps s JOIN attempts a ON a.id = s.attempt_id"
	    " WHERE a.job_id = %lld AND a.number = 1 ORDER BY s.idx)",
	    (long long)ids[0]);
	assert_text(f->db,
	            "ok\xEF\xBF\xBD\xEF\xBF\xBD"
	            "end",
	            "SELECT stdout FROM steps s JOIN attempts a ON a.id = s.attempt_id"
	            " WHERE a.job_id = %lld AND a.number = 1 AND s.idx = 1",
	            (long long)ids[0]);
	assert_text(
	    f->db, "(null)|(null)|(null)",
	    "SELECT coalesce(s.stdout, '(null)') || '|' || coalesce(s.started_at, '(null)') ||"
	    " '|' || coalesce(s.duration_ms, '(null)') FROM steps s JOIN attempts a"
	    " ON a.id = s.attempt_id WHERE a.job_id = %lld AND a.number = 1 AND s.idx = 2",
	    (long long)ids[0]);
	assert_text(f->db, "callback|234|sent\n",
	            "SELECT s.phase || '|' || s.duration_ms || '|' || s.stdout FROM steps s"
	            " JOIN attempts a ON a.id = s.attempt_id"
	            " WHERE a.job_id = %lld AND a.number = 2 AND s.name = 'notify'",
	            (long long)ids[0]);
	/* metrics: REAL for numbers, TEXT for text, a repeated name once */
	assert_text(f->db, "accuracy:real:0.9,model:text:m-1",
	            "SELECT group_concat(name || ':' || typeof(value) || ':' || value, ',')"
	            " FROM (SELECT * FROM metrics WHERE job_id = %lld ORDER BY name)",
	            (long long)ids[0]);
	/* counters */
	assert_text(f->db, "3|1|0|0|0",
	            "SELECT jobs_total || '|' || jobs_succeeded || '|' || jobs_failed || '|' ||"
	            " jobs_skipped || '|' || jobs_cancelled FROM runs WHERE id = %lld",
	            (long long)run);
	arl_store_close(s);
}

static void test_counters_and_refinish(void **state)
{
	struct fx *f = *state;
	int64_t run, ids[3];
	struct arl_store *s = run_with_jobs(f->db, &run, ids);
	struct arl_job_result r;

	memset(&r, 0, sizeof(r));
	r.state = ARL_STATE_FAILED;
	r.cls = ARL_CLASS_FAILED;
	r.has_exit = true;
	r.exit_code = 3;
	r.error = arl_xstrdup("step 'test' exited 3");
	finish(s, ids[1], &r);
	arl_job_result_release(&r);

	memset(&r, 0, sizeof(r));
	r.state = ARL_STATE_SKIPPED;
	finish(s, ids[2], &r);

	build_result(&r);
	finish(s, ids[0], &r);
	assert_text(f->db, "1|1|1|0",
	            "SELECT jobs_succeeded || '|' || jobs_failed || '|' ||"
	            " jobs_skipped || '|' || jobs_cancelled FROM runs");
	/* Finishing a job again replaces its rows and moves, not adds, its count. */
	finish(s, ids[0], &r);
	arl_job_result_release(&r);
	assert_int_equal(q_int(f->db, "SELECT count(*) FROM attempts"), 2);
	assert_int_equal(q_int(f->db, "SELECT count(*) FROM steps"), 5);
	assert_int_equal(q_int(f->db, "SELECT count(*) FROM metrics"), 2);
	memset(&r, 0, sizeof(r));
	r.state = ARL_STATE_SUCCEEDED;
	finish(s, ids[1], &r);
	assert_text(f->db, "2|0|1|0",
	            "SELECT jobs_succeeded || '|' || jobs_failed || '|' ||"
	            " jobs_skipped || '|' || jobs_cancelled FROM runs");
	assert_text(f->db, "(null)", "SELECT coalesce(error, '(null)') FROM jobs WHERE id = %lld",
	            (long long)ids[1]);
	arl_store_close(s);
}

/* A failure halfway through a job's rows leaves nothing of it behind. */
static void test_job_finish_atomic(void **state)
{
	struct fx *f = *state;
	int64_t run, ids[3];
	struct arl_store *s = run_with_jobs(f->db, &run, ids);
	struct arl_err err = ARL_ERR_INIT;
	struct arl_job_result r;

	build_result(&r);
	r.attempts[1].number = 1; /* two attempts numbered 1: the UNIQUE index refuses */
	assert_int_equal(arl_store_job_finish(s, ids[0], &r, &err), -1);
	assert_int_equal(err.code, ARL_E_DB);
	assert_non_null(strstr(err.msg, "UNIQUE"));
	assert_non_null(strstr(err.msg, "job "));
	arl_job_result_release(&r);

	assert_text(f->db, "Pending", "SELECT state FROM jobs WHERE id = %lld", (long long)ids[0]);
	assert_int_equal(q_int(f->db, "SELECT count(*) FROM attempts"), 0);
	assert_int_equal(q_int(f->db, "SELECT count(*) FROM steps"), 0);
	assert_int_equal(q_int(f->db, "SELECT count(*) FROM metrics"), 0);
	assert_int_equal(q_int(f->db, "SELECT jobs_succeeded FROM runs"), 0);

	/* The connection is still usable and not stuck in a transaction. */
	arl_err_clear(&err);
	build_result(&r);
	finish(s, ids[0], &r);
	arl_job_result_release(&r);
	assert_int_equal(q_int(f->db, "SELECT jobs_succeeded FROM runs"), 1);

	/* An unknown job is an error, not a silent no-op. */
	memset(&r, 0, sizeof(r));
	r.state = ARL_STATE_FAILED;
	assert_int_equal(arl_store_job_finish(s, 9999, &r, &err), -1);
	assert_non_null(strstr(err.msg, "no job 9999"));
	arl_store_close(s);
}

static void test_run_finish(void **state)
{
	struct fx *f = *state;
	int64_t run, ids[3];
	struct arl_store *s = run_with_jobs(f->db, &run, ids);
	struct arl_err err = ARL_ERR_INIT;
	struct arl_job_result r;

	assert_text(f->db, "running", "SELECT status FROM runs");
	assert_int_equal(q_int(f->db, "SELECT pid FROM runs"), (int64_t)getpid());
	build_result(&r);
	finish(s, ids[0], &r);
	arl_job_result_release(&r);
	assert_int_equal(arl_store_job_set_running(s, ids[1], 0, &err), 0);

	assert_int_equal(arl_store_run_finish(s, run, "bogus", 0, &err), -1);
	arl_err_clear(&err);
	assert_int_equal(arl_store_run_finish(s, run, "failed", 4, &err), 0);
	assert_text(f->db, "failed|4|1|0|0|2",
	            "SELECT status || '|' || exit_code || '|' || jobs_succeeded || '|' ||"
	            " jobs_failed || '|' || jobs_skipped || '|' || jobs_cancelled FROM runs");
	assert_int_equal(q_int(f->db, "SELECT finished_at IS NOT NULL AND duration_ms >= 0"
	                              " FROM runs"),
	                 1);
	assert_text(f->db, "Cancelled|cancelled",
	            "SELECT state || '|' || error_class FROM jobs"
	            " WHERE id = %lld",
	            (long long)ids[2]);
	/* the job that was Running got a finish time, hence a duration */
	assert_int_equal(q_int(f->db, "SELECT duration_ms IS NOT NULL FROM jobs WHERE id = %lld",
	                       (long long)ids[1]),
	                 1);
	arl_store_close(s);
}

/* ---- recovery of runs whose runner died ---- */

static pid_t dead_pid(void)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	return pid;
}

/* A run row of schema v1: the pid alone. */
static bool pid_alive(const char *host, pid_t pid)
{
	struct arl_owner o = {.pid = (long)pid};

	return arl_store_owner_alive(host, &o);
}

static void test_stale_run_interrupted(void **state)
{
	struct fx *f = *state;
	char host[256], sql[2048];
	struct arl_store *s;
	pid_t dead = dead_pid();

	arl_store_close(open_rw(f->db));
	assert_int_equal(gethostname(host, sizeof(host)), 0);
	host[sizeof(host) - 1] = '\0';
	snprintf(sql, sizeof(sql),
	         "INSERT INTO runs (id, name, status, started_at, host, pid, jobs_total,"
	         " jobs_succeeded, jobs_cancelled) VALUES"
	         " (1, 'dead', 'running', '2026-01-02T03:04:05.000Z', '%s', %d, 4, 1, 0),"
	         " (2, 'alive', 'running', '2026-01-02T03:04:05.000Z', '%s', %d, 0, 0, 0),"
	         " (3, 'elsewhere', 'running', '2026-01-02T03:04:05.000Z', 'not-%s', %d, 0, 0, 0);"
	         "INSERT INTO jobs (run_id, key, name, file, state, started_at, finished_at) VALUES"
	         " (1, 'f/a', 'a', 'f.yaml', 'Succeeded', '2026-01-02T03:04:06.000Z',"
	         "  '2026-01-02T03:04:07.000Z'),"
	         " (1, 'f/b', 'b', 'f.yaml', 'Running', '2026-01-02T03:04:06.000Z', NULL),"
	         " (1, 'f/c', 'c', 'f.yaml', 'Pending', NULL, NULL),"
	         " (1, 'f/d', 'd', 'f.yaml', 'Failed', NULL, NULL);",
	         host, (int)dead, host, (int)getpid(), host, (int)dead);
	raw_exec(f->db, sql);

	/* A read-only open changes nothing. */
	{
		struct arl_err err = ARL_ERR_INIT;

		s = NULL;
		assert_int_equal(arl_store_open(&s, f->db, ARL_STORE_READONLY, &err), 0);
		arl_store_close(s);
		assert_text(f->db, "running", "SELECT status FROM runs WHERE id = 1");
	}

	arl_store_close(open_rw(f->db));
	assert_text(f->db, "interrupted|1|1|0|2",
	            "SELECT status || '|' || jobs_succeeded || '|' || jobs_failed || '|' ||"
	            " jobs_skipped || '|' || jobs_cancelled FROM runs WHERE id = 1");
	/* It ended at its last known activity, not now. */
	assert_text(f->db, "2026-01-02T03:04:07.000Z|2000",
	            "SELECT finished_at || '|' || duration_ms FROM runs WHERE id = 1");
	assert_int_equal(q_int(f->db, "SELECT instr(notes, 'marked interrupted') > 0"
	                              " FROM runs WHERE id = 1"),
	                 1);
	assert_text(f->db, "Succeeded,Cancelled,Cancelled,Failed",
	            "SELECT group_concat(state, ',') FROM (SELECT state FROM jobs ORDER BY id)");
	assert_text(f->db, "cancelled|the run was interrupted",
	            "SELECT error_class || '|' || error FROM jobs WHERE key = 'f/b'");
	assert_text(f->db, "running", "SELECT status FROM runs WHERE id = 2");
	assert_text(f->db, "running", "SELECT status FROM runs WHERE id = 3");
	assert_true(pid_alive(host, getpid()));
	assert_false(pid_alive(host, dead));
	assert_true(pid_alive("some-other-host", dead));
	/* A runner killed but not yet reaped is a zombie: dead too. */
	{
		siginfo_t si;
		pid_t z = fork();

		assert_true(z >= 0);
		if (z == 0)
			_exit(0);
		/* WNOWAIT: wait until it is a zombie, and leave it one. */
		assert_int_equal(waitid(P_PID, (id_t)z, &si, WEXITED | WNOWAIT), 0);
		assert_false(pid_alive(host, z));
		assert_int_equal(waitpid(z, NULL, 0), z);
	}
}

/* A 'running' run row; @start 0 and NULL strings are NULL columns (a v1 row). */
static void run_row(const char *db, int id, const char *host, long pid, unsigned long long start,
                    const char *boot, const char *pidns)
{
	char sql[1024], st[32] = "NULL", bt[64] = "NULL", ns[48] = "NULL";

	if (start)
		snprintf(st, sizeof(st), "%llu", start);
	if (boot)
		snprintf(bt, sizeof(bt), "'%s'", boot);
	if (pidns)
		snprintf(ns, sizeof(ns), "'%s'", pidns);
	snprintf(sql, sizeof(sql),
	         "INSERT INTO runs (id, name, status, started_at, host, pid, owner_start,"
	         " owner_boot, owner_pidns) VALUES (%d, 'r%d', 'running',"
	         " '2026-01-02T03:04:05.000Z', '%s', %ld, %s, %s, %s)",
	         id, id, host, pid, st, bt, ns);
	raw_exec(db, sql);
}

/*
 * A run records its runner's whole identity, and a 'running' row is judged by all of it: a
 * pid of another PID namespace is never judged from here, one whose start time or boot is
 * not the recorded one is gone.
 */
static void test_stale_run_owner(void **state)
{
	struct fx *f = *state;
	struct arl_err err = ARL_ERR_INIT;
	struct arl_run_info info = {.name = "mine", .isolation = "none"};
	struct arl_owner me;
	char host[256], ns[24], other_boot[40];
	struct arl_store *s;
	int64_t run;
	pid_t dead = dead_pid();

	arl_owner_self(&me);
	assert_true(me.start > 0 && me.boot[0] && me.pidns[0]);
	snprintf(other_boot, sizeof(other_boot), "%s",
	         strcmp(me.boot, "00000000-0000-0000-0000-000000000000")
	             ? "00000000-0000-0000-0000-000000000000"
	             : "11111111-1111-1111-1111-111111111111");
	s = open_rw(f->db);
	assert_int_equal(arl_store_run_begin(s, &info, &run, &err), 0);
	arl_store_close(s);
	assert_text(f->db, "1",
	            "SELECT owner_start = %llu AND owner_boot = '%s' AND"
	            " owner_pidns = '%s' AND pid = %ld FROM runs WHERE id = %lld",
	            me.start, me.boot, me.pidns, me.pid, (long long)run);

	assert_int_equal(gethostname(host, sizeof(host)), 0);
	host[sizeof(host) - 1] = '\0';
	snprintf(ns, sizeof(ns), "%llu", strtoull(me.pidns, NULL, 10) + 1);
	/* another PID namespace, its pid not running here: never judged */
	run_row(f->db, 11, host, dead, me.start, me.boot, ns);
	/* ours, not running: gone */
	run_row(f->db, 12, host, dead, me.start, me.boot, me.pidns);
	/* our pid, another start time: reused, gone */
	run_row(f->db, 13, host, me.pid, me.start + 1, me.boot, me.pidns);
	/* our pid and start, another boot: gone */
	run_row(f->db, 14, host, me.pid, me.start, other_boot, me.pidns);
	/* us: alive */
	run_row(f->db, 15, host, me.pid, me.start, me.boot, me.pidns);
	/* schema v1: a live pid alone is alive */
	run_row(f->db, 16, host, me.pid, 0, NULL, NULL);
	arl_store_close(open_rw(f->db));
	assert_text(f->db,
	            "11 running,12 interrupted,13 interrupted,14 interrupted,15 running,"
	            "16 running",
	            "SELECT group_concat(id || ' ' || status, ',') FROM"
	            " (SELECT id, status FROM runs WHERE id > 10 ORDER BY id)");
	assert_int_equal(q_int(f->db,
	                       "SELECT count(*) FROM runs WHERE id = %lld AND"
	                       " status = 'running'",
	                       (long long)run),
	                 1);
	assert_int_equal(q_int(f->db, "SELECT instr(notes, 'its pid is another process now') > 0"
	                              " FROM runs WHERE id = 13"),
	                 1);
	assert_int_equal(q_int(f->db, "SELECT instr(notes, 'the host rebooted since') > 0"
	                              " FROM runs WHERE id = 14"),
	                 1);
}

/* ---- the read-only authorizer ---- */

static void test_readonly_authorizer(void **state)
{
	struct fx *f = *state;
	static const char *const refused[] = {
	    "INSERT INTO runs (name, started_at) VALUES ('x', 'y')",
	    "UPDATE runs SET name = 'x'",
	    "PRAGMA writable_schema = 1",
	    "DELETE FROM jobs",
	    "ATTACH DATABASE '/tmp/test_store_attach.db' AS other",
	    "DETACH DATABASE main",
	    "CREATE TABLE t (x)",
	    "CREATE TEMP TABLE t (x)",
	    "CREATE VIEW v AS SELECT 1",
	    "DROP TABLE runs",
	    "ALTER TABLE runs ADD COLUMN x TEXT",
	    "PRAGMA user_version = 7",
	    "PRAGMA journal_mode = DELETE",
	    "PRAGMA wal_checkpoint",
	    "BEGIN",
	    "REINDEX",
	    "WITH x AS (SELECT 1) INSERT INTO runs (name, started_at) SELECT 'a', 'b' FROM x",
	};
	static const char *const allowed[] = {
	    "SELECT count(*) FROM jobs",
	    "SELECT * FROM runs r JOIN jobs j ON j.run_id = r.id",
	    ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3)"
	     " SELECT sum(i) FROM n"),
	    "PRAGMA user_version",
	    "PRAGMA table_info(jobs)",
	    "SELECT name FROM pragma_table_info('jobs')",
	    "SELECT json_extract(labels, '$.suite') FROM jobs",
	    "SELECT j.key, l.key, l.value FROM jobs j, json_each(j.labels) l",
	    "SELECT * FROM pragma_user_version",
	};
	struct arl_store *s = NULL;
	struct arl_err err = ARL_ERR_INIT;
	sqlite3_stmt *st;
	int64_t run, ids[3];

	arl_store_close(run_with_jobs(f->db, &run, ids));
	assert_int_equal(arl_store_open(&s, f->db, ARL_STORE_READONLY, &err), 0);
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		st = NULL;
		arl_err_clear(&err);
		if (arl_store_prepare(s, refused[i], &st, NULL, &err) == 0) {
			sqlite3_finalize(st);
			fail_msg("not refused: %s", refused[i]);
		}
		assert_null(st);
		if (err.code != ARL_E_USAGE || !strstr(err.msg, "read-only"))
			fail_msg("%s: code %d: %s", refused[i], err.code, err.msg);
	}
	arl_err_clear(&err);
	assert_int_equal(arl_store_prepare(s, "DELETE FROM jobs", &st, NULL, &err), -1);
	assert_non_null(strstr(err.msg, "DELETE from 'jobs'"));
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
		int rc;

		st = NULL;
		arl_err_clear(&err);
		if (arl_store_prepare(s, allowed[i], &st, NULL, &err) < 0)
			fail_msg("refused: %s: %s", allowed[i], err.msg);
		while ((rc = arl_store_step(s, st, &err)) == 1)
			;
		assert_int_equal(rc, 0);
		sqlite3_finalize(st);
	}
	/* SQLite itself refuses this one (after the authorizer lets its eponymous-table
	 * case through); it must fail either way. */
	assert_int_equal(
	    arl_store_prepare(s, "UPDATE sqlite_master SET sql = 'x'", &st, NULL, &err), -1);
	/* A plain SQL error is not a refusal. */
	arl_err_clear(&err);
	assert_int_equal(arl_store_prepare(s, "SELECT nope FROM runs", &st, NULL, &err), -1);
	assert_int_equal(err.code, ARL_E_DB);
	arl_store_close(s);
	assert_int_equal(access("/tmp/test_store_attach.db", F_OK), -1);
	assert_int_equal(q_int(f->db, "SELECT count(*) FROM jobs"), 3);
	assert_int_equal(q_int(f->db, "PRAGMA user_version"), ARL_STORE_VERSION);
}

/* ---- reading helpers ---- */

static void test_run_resolve_and_skip_link(void **state)
{
	struct fx *f = *state;
	struct arl_store *s = open_rw(f->db);
	struct arl_err err = ARL_ERR_INIT;
	struct arl_run_info a = {.name = "a"}, b = {.name = "b"};
	struct arl_job_row row = {"f/x", "x", "f.yaml", NULL, NULL, NULL, "hash-1", 0};
	int64_t id = 0, r1, r2, r3, job;

	assert_int_equal(arl_store_run_resolve(s, NULL, &id, &err), -1);
	assert_int_equal(err.code, ARL_E_INVALID);
	assert_non_null(strstr(err.msg, "no runs"));
	assert_int_equal(id, 0);
	arl_err_clear(&err);
	assert_int_equal(arl_store_run_begin(s, &a, &r1, &err), 0);
	assert_int_equal(arl_store_run_begin(s, &b, &r2, &err), 0);
	assert_int_equal(arl_store_run_begin(s, &a, &r3, &err), 0);
	assert_int_equal(arl_store_run_resolve(s, NULL, &id, &err), 0);
	assert_int_equal(id, r3);
	assert_int_equal(arl_store_run_resolve(s, "latest", &id, &err), 0);
	assert_int_equal(id, r3);
	assert_int_equal(arl_store_run_resolve(s, "a", &id, &err), 0);
	assert_int_equal(id, r3);
	assert_int_equal(arl_store_run_resolve(s, "b", &id, &err), 0);
	assert_int_equal(id, r2);
	assert_int_equal(arl_store_run_resolve(s, "1", &id, &err), 0);
	assert_int_equal(id, r1);
	assert_int_equal(arl_store_run_resolve(s, "99", &id, &err), -1);
	assert_int_equal(err.code, ARL_E_INVALID);
	arl_err_clear(&err);
	assert_int_equal(arl_store_run_resolve(s, "zzz", &id, &err), -1);
	arl_err_clear(&err);
	assert_text(f->db, "[]", "SELECT files FROM runs WHERE id = 1");

	assert_int_equal(add_rows(s, r2, &row, 1, &job, &err), 0);
	/* skipped_from links the new job to the old one */
	row.skipped_from = job;
	assert_int_equal(add_rows(s, r3, &row, 1, &id, &err), 0);
	assert_int_equal(
	    q_int(f->db, "SELECT skipped_from FROM jobs WHERE id = %lld", (long long)id), job);
	/* jobs_add is atomic too: a bad row in the middle leaves none of them */
	{
		struct arl_job_row bad[2] = {row, row};
		int64_t two[2] = {0, 0};

		bad[1].labels = "{not json";
		assert_int_equal(add_rows(s, r1, bad, 2, two, &err), -1);
		assert_int_equal(two[0], 0);
		assert_int_equal(
		    q_int(f->db, "SELECT count(*) FROM jobs WHERE run_id = %lld", (long long)r1),
		    0);
	}
	arl_store_close(s);
}

/* A run named @name with one job "f/x" (0: none; > 0 Skipped, standing on that job). */
static int64_t plan_x(struct arl_store *s, const char *name, bool with_x, int64_t skipped_from,
                      int64_t *run)
{
	struct arl_err err = ARL_ERR_INIT;
	struct arl_run_info info = {.name = name, .jobs_total = 1};
	struct arl_job_row row = {"f/x", "x", "f.yaml", NULL, NULL, NULL, "h1", skipped_from};
	int64_t id = 0;

	if (arl_store_run_plan(s, &info, with_x ? 1 : 0, row_from_array, &row, run, &id, &err) < 0)
		fail_msg("run_plan: %s", err.msg);
	return id;
}

static void finish_as(struct arl_store *s, int64_t job, enum arl_state st, enum arl_class cls)
{
	struct arl_job_result r;

	memset(&r, 0, sizeof(r));
	r.state = st;
	r.cls = cls;
	finish(s, job, &r);
}

/*
 * The standing result of a key: a Skipped row stands for its target through any number of
 * runs; runs without the key, Pending rows and dangling Skipped rows hide nothing; another
 * run name is another history.
 */
static void test_standing_result(void **state)
{
	struct fx *f = *state;
	struct arl_store *s = open_rw(f->db);
	struct arl_err err = ARL_ERR_INIT;
	struct arl_store_prev p = {0};
	int64_t ra, rb, rx, a, b, c;

	assert_int_equal(arl_store_job_standing(s, "n", "f/x", "h1", &p, &err), 0);
	a = plan_x(s, "n", true, 0, &ra);
	finish_as(s, a, ARL_STATE_FAILED, ARL_CLASS_TIMEOUT);
	b = plan_x(s, "n", true, a, &rb); /* an earlier --rerun carried it: Skipped at once */
	assert_text(f->db, "Skipped|1|0",
	            "SELECT state || '|' || (SELECT jobs_skipped FROM runs"
	            " WHERE id = run_id) || '|' || duration_ms FROM jobs"
	            " WHERE id = %lld",
	            (long long)b);
	plan_x(s, "n", false, 0, &rx); /* killed while starting: no rows */
	plan_x(s, "n", true, 0, &rx);  /* killed before x started: Pending */
	c = plan_x(s, "other", true, 0, &rx);
	finish_as(s, c, ARL_STATE_SUCCEEDED, ARL_CLASS_NONE);
	plan_x(s, "n", true, 0, &rx);
	sqlite3_exec(arl_store_db(s),
	             "UPDATE jobs SET state = 'Skipped', skipped_from = NULL WHERE id = (SELECT"
	             " max(id) FROM jobs)",
	             NULL, NULL, NULL); /* its result was pruned */
	assert_int_equal(arl_store_job_standing(s, "n", "f/x", "h1", &p, &err), 1);
	assert_int_equal(p.job_id, a);
	assert_int_equal(p.run_id, ra);
	assert_int_equal(p.state, ARL_STATE_FAILED);
	assert_int_equal(p.cls, ARL_CLASS_TIMEOUT);
	assert_true(p.same_spec);
	assert_int_equal(arl_store_job_standing(s, "n", "f/x", "h2", &p, &err), 1);
	assert_false(p.same_spec);
	/* An old row pointing at a Skipped row is followed to the end of the chain. */
	plan_x(s, "n", true, b, &rx);
	assert_int_equal(arl_store_job_standing(s, "n", "f/x", "h1", &p, &err), 1);
	assert_int_equal(p.job_id, a);
	assert_int_equal(arl_store_job_standing(s, "other", "f/x", "h1", &p, &err), 1);
	assert_int_equal(p.job_id, c);
	assert_int_equal(p.state, ARL_STATE_SUCCEEDED);
	assert_int_equal(arl_store_job_standing(s, "n", "f/y", "h1", &p, &err), 0);
	arl_store_close(s);
}

/* A plan is visible whole or not at all: a bad row leaves not even the run. */
static void test_run_plan_atomic(void **state)
{
	struct fx *f = *state;
	struct arl_store *s = open_rw(f->db);
	struct arl_err err = ARL_ERR_INIT;
	struct arl_run_info info = {.name = "n", .jobs_total = 2};
	struct arl_job_row rows[2] = {
	    {"f/x", "x", "f.yaml", NULL, NULL, NULL, "h1", 0},
	    {"f/y", "y", "f.yaml", NULL, NULL, "{not json", "h1", 0},
	};
	int64_t run = 0, ids[2] = {0, 0};

	assert_int_equal(arl_store_run_plan(s, &info, 2, row_from_array, rows, &run, ids, &err),
	                 -1);
	assert_int_equal(run, 0);
	assert_int_equal(q_int(f->db, "SELECT count(*) FROM runs"), 0);
	assert_int_equal(q_int(f->db, "SELECT count(*) FROM jobs"), 0);
	arl_store_close(s);
}

/* ---- the commands ---- */

/* Runs a command with stdout sent to a file; returns its exit code and the output. */
static int run_cmd(struct fx *f, char **out, int argc, ...)
{
	char *argv[16], path[160];
	va_list ap;
	int saved, fd, code;
	FILE *fp;
	long n;

	va_start(ap, argc);
	for (int i = 0; i < argc; i++)
		argv[i] = va_arg(ap, char *);
	va_end(ap);
	argv[argc] = NULL;
	snprintf(path, sizeof(path), "%s.out", f->db);
	fflush(stdout);
	saved = dup(STDOUT_FILENO);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(saved >= 0 && fd >= 0);
	dup2(fd, STDOUT_FILENO);
	close(fd);
	if (!strcmp(argv[0], "runs"))
		code = cmd_runs(argc, argv);
	else if (!strcmp(argv[0], "results"))
		code = cmd_results(argc, argv);
	else if (!strcmp(argv[0], "show"))
		code = cmd_show(argc, argv);
	else
		code = cmd_query(argc, argv);
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	fp = fopen(path, "rb");
	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	rewind(fp);
	*out = arl_xcalloc((size_t)n + 1, 1);
	assert_int_equal(fread(*out, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	return code;
}

static void test_commands(void **state)
{
	struct fx *f = *state;
	int64_t run, ids[3];
	struct arl_store *s = run_with_jobs(f->db, &run, ids);
	struct arl_err err = ARL_ERR_INIT;
	struct arl_job_result r;
	char *out, missing[160];
	cJSON *json, *job, *status;

	build_result(&r);
	finish(s, ids[0], &r);
	arl_job_result_release(&r);
	assert_int_equal(arl_store_run_finish(s, run, "failed", 3, &err), 0);
	arl_store_close(s);
	snprintf(missing, sizeof(missing), "%s/none.db", f->dir);

	/* results --format json: Task-shaped objects */
	assert_int_equal(run_cmd(f, &out, 5, "results", "--db", f->db, "--format", "json"), 0);
	json = cJSON_Parse(out);
	assert_non_null(json);
	assert_int_equal(cJSON_GetArraySize(json), 3);
	job = cJSON_GetArrayItem(json, 0);
	assert_string_equal(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(job, "metadata"), "name")->valuestring, "a");
	assert_string_equal(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(job, "metadata"), "labels"),
	                        "suite")
	        ->valuestring,
	    "smoke");
	status = cJSON_GetObjectItem(job, "status");
	assert_string_equal(cJSON_GetObjectItem(status, "state")->valuestring, "Succeeded");
	assert_int_equal(cJSON_GetObjectItem(status, "exitCode")->valuedouble, 0);
	assert_string_equal(cJSON_GetObjectItem(status, "duration")->valuestring, "41.234s");
	/* main steps of the last attempt, concatenated; not the callback */
	assert_string_equal(cJSON_GetObjectItem(status, "stdout")->valuestring, "passed\n");
	assert_string_equal(cJSON_GetObjectItem(status, "startTime")->valuestring,
	                    "2026-01-02T03:04:05.000Z");
	assert_string_equal(cJSON_GetObjectItem(job, "key")->valuestring, "smoke/a");
	assert_int_equal(cJSON_GetObjectItem(job, "attempts")->valuedouble, 2);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(job, "steps")), 2);
	assert_string_equal(
	    cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(job, "steps"), 1), "phase")
	        ->valuestring,
	    "callback");
	assert_true(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(job, "metrics"), "accuracy")->valuedouble ==
	    0.9);
	status = cJSON_GetObjectItem(cJSON_GetArrayItem(json, 2), "status");
	assert_string_equal(cJSON_GetObjectItem(status, "state")->valuestring, "Cancelled");
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(status, "exitCode")));
	cJSON_Delete(json);
	free(out);

	assert_int_equal(run_cmd(f, &out, 5, "results", "--db", f->db, "--state", "cancelled"), 0);
	assert_non_null(strstr(out, "smoke/b"));
	assert_null(strstr(out, "smoke/a "));
	free(out);

	assert_int_equal(run_cmd(f, &out, 5, "results", "--db", f->db, "--format", "csv"), 0);
	assert_memory_equal(out, "run_id,key,name,file,pool,state,attempts,exit_code,", 51);
	assert_non_null(strstr(out, "\r\n1,smoke/a,a,jobs/smoke.yaml,p,Succeeded,2,0,,,"));
	free(out);

	assert_int_equal(run_cmd(f, &out, 5, "results", "--db", f->db, "--format", "junit"), 0);
	/* one testsuite per job file, named after its stem */
	assert_non_null(strstr(out, "<testsuites name=\"nightly\" tests=\"3\" failures=\"0\""
	                            " errors=\"2\""));
	assert_non_null(strstr(out, "<testsuite name=\"smoke\" tests=\"3\" failures=\"0\""
	                            " errors=\"2\" skipped=\"0\""));
	assert_non_null(strstr(out, "<testcase name=\"a\" classname=\"smoke\""));
	assert_non_null(strstr(out, "<system-out>passed\n</system-out>"));
	free(out);

	assert_int_equal(run_cmd(f, &out, 5, "results", "--db", f->db, "--run", "7"), 1);
	free(out);
	assert_int_equal(run_cmd(f, &out, 5, "results", "--db", f->db, "--format", "xml"), 2);
	free(out);
	assert_int_equal(run_cmd(f, &out, 3, "results", "--db", missing), 3);
	assert_int_equal(access(missing, F_OK), -1);
	free(out);

	assert_int_equal(run_cmd(f, &out, 3, "runs", "--db", f->db), 0);
	assert_non_null(strstr(out, "nightly"));
	assert_non_null(strstr(out, "failed"));
	free(out);
	assert_int_equal(run_cmd(f, &out, 5, "runs", "--db", f->db, "--format", "json"), 0);
	json = cJSON_Parse(out);
	assert_non_null(json);
	assert_int_equal(cJSON_GetObjectItem(
	                     cJSON_GetObjectItem(cJSON_GetArrayItem(json, 0), "jobs"), "cancelled")
	                     ->valuedouble,
	                 2);
	cJSON_Delete(json);
	free(out);

	assert_int_equal(run_cmd(f, &out, 4, "show", "--db", f->db, "a"), 0);
	assert_non_null(strstr(out, "job smoke/a"));
	assert_non_null(strstr(out, "attempt 1: Failed (timeout)"));
	assert_non_null(strstr(out, "    stdout (truncated"));
	assert_non_null(strstr(out, "      passed\n"));
	free(out);
	assert_int_equal(run_cmd(f, &out, 4, "show", "--db", f->db, "smoke/zz"), 1);
	free(out);

	assert_int_equal(run_cmd(f, &out, 6, "query", "--db", f->db, "--format", "csv",
	                         "SELECT key, attempts FROM jobs ORDER BY id"),
	                 0);
	assert_string_equal(out, "key,attempts\r\nsmoke/a,2\r\nsmoke/b,0\r\nsmoke/c,0\r\n");
	free(out);
	assert_int_equal(run_cmd(f, &out, 4, "query", "--db", f->db, "DELETE FROM jobs"), 2);
	free(out);
	assert_int_equal(run_cmd(f, &out, 4, "query", "--db", f->db, "SELECT 1; SELECT 2"), 2);
	free(out);
	assert_int_equal(run_cmd(f, &out, 4, "query", "--db", f->db, "SELECT nope FROM jobs"), 1);
	free(out);
	assert_int_equal(run_cmd(f, &out, 4, "query", "--db", missing, "SELECT 1"), 3);
	free(out);
	assert_int_equal(q_int(f->db, "SELECT count(*) FROM jobs"), 3);
}

/* ---- the row mapper: columns read by name into a struct ---- */

struct row {
	int64_t id;
	int n;
	bool n_null;
	double x;
	char *label;
	bool label_null;
	enum arl_state state;
	enum arl_class cls;
	bool cls_null;
};

static const struct arl_col row_cols[] = {
    ARL_COL(struct row, id, ARL_COL_INT64),
    ARL_COL_N(struct row, n, ARL_COL_INT, n_null),
    ARL_COL(struct row, x, ARL_COL_DOUBLE),
    ARL_COL_N(struct row, label, ARL_COL_TEXT, label_null),
    ARL_COL(struct row, state, ARL_COL_STATE),
    ARL_COL_N(struct row, cls, ARL_COL_CLASS, cls_null),
};
#define NROW_COLS (sizeof(row_cols) / sizeof(row_cols[0]))

static sqlite3_stmt *mem_prepare(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	return st;
}

static void test_rows_by_name(void **state)
{
	(void)state;
	sqlite3 *db = NULL;
	struct arl_err err = ARL_ERR_INIT;
	int idx[NROW_COLS];
	struct row r;
	char *kept;

	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	/* the columns in another order than the struct's, and under other names (AS) */
	sqlite3_stmt *st = mem_prepare(
	    db, "SELECT 'timeout' AS cls, 'Failed' AS state, 'a\x01b' AS label, 2.5 AS x, 7 AS n,"
	        " 9000000000 AS id"
	        " UNION ALL SELECT NULL, 'Succeeded', NULL, 0, NULL, 2 ORDER BY id DESC");
	assert_int_equal(arl_rows_bind(st, row_cols, NROW_COLS, idx, &err), 0);

	memset(&r, 0xff, sizeof(r));
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	arl_rows_read(st, row_cols, NROW_COLS, idx, &r);
	assert_true(r.id == 9000000000LL);
	assert_int_equal(r.n, 7);
	assert_false(r.n_null);
	assert_true(r.x == 2.5);
	assert_string_equal(r.label, "a\x01b");
	assert_false(r.label_null);
	assert_int_equal(r.state, ARL_STATE_FAILED);
	assert_int_equal(r.cls, ARL_CLASS_TIMEOUT);
	assert_false(r.cls_null);
	/* TEXT is the caller's own copy: it outlives the row and the statement */
	kept = r.label;
	r.label = NULL;

	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	arl_rows_read(st, row_cols, NROW_COLS, idx, &r);
	assert_true(r.id == 2);
	assert_int_equal(r.n, 0);
	assert_true(r.n_null);
	assert_null(r.label);
	assert_true(r.label_null);
	assert_int_equal(r.state, ARL_STATE_SUCCEEDED);
	assert_int_equal(r.cls, ARL_CLASS_NONE);
	assert_true(r.cls_null);
	arl_rows_free(row_cols, NROW_COLS, &r);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	assert_string_equal(kept, "a\x01b");
	free(kept);

	/* arl_rows_free() frees every TEXT field and leaves it NULL */
	st = mem_prepare(db, "SELECT 1 AS id, 2 AS n, 3 AS x, 'l' AS label, 'Running' AS state,"
	                     " 'infra' AS cls");
	assert_int_equal(arl_rows_bind(st, row_cols, NROW_COLS, idx, &err), 0);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	arl_rows_read(st, row_cols, NROW_COLS, idx, &r);
	assert_string_equal(r.label, "l");
	assert_int_equal(r.state, ARL_STATE_RUNNING);
	assert_int_equal(r.cls, ARL_CLASS_INFRA);
	arl_rows_free(row_cols, NROW_COLS, &r);
	assert_null(r.label);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void test_rows_missing_column(void **state)
{
	(void)state;
	sqlite3 *db = NULL;
	struct arl_err err = ARL_ERR_INIT;
	int idx[NROW_COLS];

	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	/* a renamed column fails at bind time, naming the column and the query */
	sqlite3_stmt *st = mem_prepare(db, "SELECT 1 AS id, 2 AS n, 3 AS x, 'l' AS labels,"
	                                   " 'Running' AS state, NULL AS cls");
	assert_int_equal(arl_rows_bind(st, row_cols, NROW_COLS, idx, &err), -1);
	assert_int_equal(err.code, ARL_E_DB);
	assert_string_equal(err.msg, "column 'label' missing from query 'SELECT 1 AS id, 2 AS n,"
	                             " 3 AS x, 'l' AS labels, 'Running' AS ...'");
	sqlite3_finalize(st);

	/* a name that matches two result columns is refused, not read from either */
	err = (struct arl_err)ARL_ERR_INIT;
	st = mem_prepare(db, "SELECT 1 AS id, 2 AS n, 3 AS x, 'l' AS label, 'Running' AS state,"
	                     " NULL AS cls, 5 AS id");
	assert_int_equal(arl_rows_bind(st, row_cols, NROW_COLS, idx, &err), -1);
	assert_int_equal(err.code, ARL_E_DB);
	assert_non_null(strstr(err.msg, "column 'id' is ambiguous in query 'SELECT 1 AS id"));
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* The query type every reader runs its SQL with: opened by name, rows copied or borrowed. */
struct label_acc {
	char seen[64];
	const char *last; /* a borrowed row's label, as the callback saw it */
	int stop_at;
};

static int acc_label(void *arg, const struct row *r, struct arl_err *err)
{
	struct label_acc *a = arg;

	strncat(a->seen, r->label ? r->label : "-", sizeof(a->seen) - strlen(a->seen) - 1);
	a->last = r->label;
	if (a->stop_at && r->id == a->stop_at)
		return arl_error(err, ARL_E_INVALID, "stop at %lld", (long long)r->id);
	return 0;
}
typedef int (*row_fn)(void *arg, const struct row *r, struct arl_err *err);
ARL_ROWS_CALLER(call_row, row_fn, struct row)

static void test_rows_query(void **state)
{
	struct fx *f = *state;
	struct arl_store *s = open_rw(f->db);
	struct arl_err err = ARL_ERR_INIT;
	struct arl_rows_query q;
	struct label_acc acc = {{0}, NULL, 0};
	struct row r = {0};
	row_fn fn = acc_label;
	static const char three[] =
	    "WITH t(id) AS (VALUES (1), (2), (3)) SELECT id, id * 10 AS n, 0.5 AS x,"
	    " 'r' || id AS label, 'Succeeded' AS state, NULL AS cls FROM t ORDER BY id";

	/* every row to the callback, then closed (ASan: nothing copied is left) */
	assert_int_equal(arl_rows_open(&q, s, three, row_cols, NROW_COLS, &err), 0);
	assert_int_equal(arl_rows_each(s, &q, &r, call_row, &fn, &acc, &err), 0);
	assert_string_equal(acc.seen, "r1r2r3");
	assert_null(q.st);
	assert_null(r.label); /* copied rows are freed after each call */

	/* a callback's error stops the rows and is the reader's */
	memset(&acc, 0, sizeof(acc));
	acc.stop_at = 2;
	assert_int_equal(arl_rows_open(&q, s, three, row_cols, NROW_COLS, &err), 0);
	assert_int_equal(arl_rows_each(s, &q, &r, call_row, &fn, &acc, &err), -1);
	assert_string_equal(acc.seen, "r1r2");
	assert_string_equal(err.msg, "stop at 2");
	arl_err_clear(&err);

	/* borrowed rows point into the statement, no copy */
	memset(&acc, 0, sizeof(acc));
	assert_int_equal(arl_rows_open(&q, s, three, row_cols, NROW_COLS, &err), 0);
	q.borrowed = true;
	assert_int_equal(arl_rows_next(s, &q, &r, &err), 1);
	assert_ptr_equal(r.label, (const char *)sqlite3_column_text(q.st, 3));
	arl_rows_close(&q);
	assert_null(q.st);

	/* the first row only, the caller's to free; none is 0 */
	memset(&r, 0, sizeof(r));
	assert_int_equal(arl_rows_open(&q, s, three, row_cols, NROW_COLS, &err), 0);
	assert_int_equal(arl_rows_one(s, &q, &r, &err), 1);
	assert_true(r.id == 1);
	assert_int_equal(r.n, 10);
	assert_string_equal(r.label, "r1");
	arl_rows_free(row_cols, NROW_COLS, &r);
	assert_int_equal(arl_rows_open(&q, s,
	                               "SELECT 1 AS id, 2 AS n, 3 AS x, 'l' AS label,"
	                               " 'Running' AS state, NULL AS cls WHERE 0",
	                               row_cols, NROW_COLS, &err),
	                 0);
	assert_int_equal(arl_rows_one(s, &q, &r, &err), 0);

	/* a column missing from the query fails at open, by its name; nothing stays open */
	assert_int_equal(arl_rows_open(&q, s, "SELECT 1 AS id", row_cols, NROW_COLS, &err), -1);
	assert_int_equal(err.code, ARL_E_DB);
	assert_string_equal(err.msg, "column 'n' missing from query 'SELECT 1 AS id'");
	assert_null(q.st);
	arl_store_close(s);
}

/* ---- the job readers ---- */

struct seen_jobs {
	struct arl_job_reader *r;
	char keys[256];
	bool reenter;
	int reenter_rc;
	struct arl_err reenter_err;
};

static int see_job(void *arg, const struct arl_job_view *j, struct arl_err *err)
{
	struct seen_jobs *sj = arg;

	(void)err;
	snprintf(sj->keys + strlen(sj->keys), sizeof(sj->keys) - strlen(sj->keys), "%s%s:%s:%s",
	         sj->keys[0] ? " " : "", j->key, arl_state_name(j->state),
	         arl_class_name(j->cls) ? arl_class_name(j->cls) : "-");
	assert_true(j->from_null);
	if (sj->reenter) {
		sj->reenter = false;
		sj->reenter_rc = arl_jobs_each(sj->r, j->run_id, 0, ARL_JOBS_BY_ID, see_job, sj,
		                               &sj->reenter_err);
	}
	return 0;
}

static void test_job_readers(void **state)
{
	struct fx *f = *state;
	int64_t run, ids[3];
	struct arl_store *s = run_with_jobs(f->db, &run, ids);
	struct seen_jobs sj = {.reenter_err = ARL_ERR_INIT};
	struct arl_err err = ARL_ERR_INIT;
	struct arl_job_view j;

	finish_as(s, ids[1], ARL_STATE_FAILED, ARL_CLASS_TIMEOUT);
	arl_job_reader_new(s, &sj.r);

	assert_int_equal(arl_jobs_each(sj.r, run, 0, ARL_JOBS_BY_ID, see_job, &sj, &err), 0);
	assert_string_equal(sj.keys, "smoke/a:Pending:- smoke/b:Failed:timeout smoke/c:Pending:-");
	/* --state: only the states asked for, by both orders */
	sj.keys[0] = '\0';
	assert_int_equal(
	    arl_jobs_each(sj.r, run, 1u << ARL_STATE_FAILED, ARL_JOBS_BY_ID, see_job, &sj, &err),
	    0);
	assert_int_equal(
	    arl_jobs_each(sj.r, run, 1u << ARL_STATE_FAILED, ARL_JOBS_BY_FILE, see_job, &sj, &err),
	    0);
	assert_string_equal(sj.keys, "smoke/b:Failed:timeout smoke/b:Failed:timeout");

	/* a reader's query reentered from its own callback fails instead of resetting it */
	sj.keys[0] = '\0';
	sj.reenter = true;
	assert_int_equal(arl_jobs_each(sj.r, run, 0, ARL_JOBS_BY_ID, see_job, &sj, &err), 0);
	assert_int_equal(sj.reenter_rc, -1);
	assert_int_equal(sj.reenter_err.code, ARL_E_DB);

	/* one job, with its run's name, owned by the caller */
	assert_int_equal(arl_job_get(sj.r, ids[1], &j, &err), 1);
	assert_string_equal(j.key, "smoke/b");
	assert_string_equal(j.run_name, "nightly");
	assert_string_equal(j.item, "{\"n\":2}");
	assert_string_equal(j.labels, "{}");
	assert_string_equal(j.pool, "p");
	assert_int_equal(j.state, ARL_STATE_FAILED);
	assert_int_equal(j.cls, ARL_CLASS_TIMEOUT);
	assert_true(j.exit_null);
	assert_true(j.from_null);
	assert_null(j.from_run_name);
	arl_job_view_release(&j);
	assert_null(j.key);
	assert_int_equal(arl_job_get(sj.r, ids[2] + 100, &j, &err), 0);

	arl_job_reader_free(sj.r);
	arl_store_close(s);
}

/* ---- the user's SQL: one statement, typed values, read-only ---- */

static void test_query_cursor(void **state)
{
	struct fx *f = *state;
	int64_t run, ids[3];
	struct arl_store *s = run_with_jobs(f->db, &run, ids);
	struct arl_err err = ARL_ERR_INIT;
	struct arl_query *q = NULL;
	struct arl_value v;

	arl_store_close(s);
	assert_int_equal(arl_store_open(&s, f->db, ARL_STORE_READONLY, &err), 0);
	assert_int_equal(
	    arl_query_prepare(s, "SELECT 7 AS i, 2.5 AS d, 'x' AS t, NULL AS n, x'0aff' AS b", &q,
	                      &err),
	    0);
	assert_int_equal(arl_query_columns(q), 5);
	assert_string_equal(arl_query_column_name(q, 4), "b");
	assert_int_equal(arl_query_next(q, &err), 1);
	arl_query_value(q, 0, &v);
	assert_int_equal(v.type, ARL_VALUE_INT);
	assert_true(v.i == 7);
	assert_string_equal(v.p, "7");
	arl_query_value(q, 1, &v);
	assert_int_equal(v.type, ARL_VALUE_REAL);
	assert_true(v.d == 2.5);
	assert_string_equal(v.p, "2.5");
	arl_query_value(q, 2, &v);
	assert_int_equal(v.type, ARL_VALUE_TEXT);
	assert_string_equal(v.p, "x");
	arl_query_value(q, 3, &v);
	assert_int_equal(v.type, ARL_VALUE_NULL);
	assert_null(v.p);
	arl_query_value(q, 4, &v);
	assert_int_equal(v.type, ARL_VALUE_BLOB);
	assert_int_equal(v.len, 2);
	assert_memory_equal(v.p, "\x0a\xff", 2);
	assert_int_equal(arl_query_next(q, &err), 0);
	arl_query_free(q);
	q = NULL;

	assert_int_equal(arl_query_prepare(s, "SELECT 1; SELECT 2", &q, &err), -1);
	assert_int_equal(err.code, ARL_E_USAGE);
	assert_string_equal(err.msg, "give one SQL statement at a time");
	arl_err_clear(&err);
	/* a second statement that does not even compile is still a second statement */
	assert_int_equal(arl_query_prepare(s, "SELECT 1; SELECT nope FROM nowhere", &q, &err), -1);
	assert_int_equal(err.code, ARL_E_USAGE);
	assert_string_equal(err.msg, "give one SQL statement at a time");
	/* the caller's error is the caller's: the first one stays, as everywhere */
	assert_int_equal(arl_query_prepare(s, "SELECT 1; SELECT 2", &q, &err), -1);
	assert_string_equal(err.msg, "give one SQL statement at a time");
	arl_err_clear(&err);
	arl_error(&err, ARL_E_IO, "an earlier error");
	assert_int_equal(arl_query_prepare(s, "SELECT 1; SELECT nope FROM nowhere", &q, &err), -1);
	assert_int_equal(err.code, ARL_E_IO);
	assert_string_equal(err.msg, "an earlier error");
	assert_null(q);
	arl_err_clear(&err);
	assert_int_equal(arl_query_prepare(s, "SELECT 1; -- done", &q, &err), 0);
	arl_query_free(q);
	q = NULL;
	assert_int_equal(arl_query_prepare(s, " /* nothing */ ", &q, &err), -1);
	assert_int_equal(err.code, ARL_E_USAGE);
	assert_string_equal(err.msg, "the SQL holds no statement");
	arl_err_clear(&err);
	assert_int_equal(arl_query_prepare(s, "DELETE FROM jobs", &q, &err), -1);
	assert_int_equal(err.code, ARL_E_USAGE);
	assert_non_null(strstr(err.msg, "read-only query: "));
	arl_err_clear(&err);
	assert_int_equal(arl_query_prepare(s, "SELECT nope FROM jobs", &q, &err), -1);
	assert_int_equal(err.code, ARL_E_DB);
	assert_null(q);
	arl_store_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_migrate_fresh, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrate_from_v1, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reopen_is_noop, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_newer_db_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_foreign_db_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_missing_db, setup, teardown),
	    cmocka_unit_test(test_schema_file_is_embedded),
	    cmocka_unit_test_setup_teardown(test_job_finish_rows, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_counters_and_refinish, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_job_finish_atomic, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_run_finish, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stale_run_interrupted, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stale_run_owner, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_readonly_authorizer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_run_resolve_and_skip_link, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_standing_result, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_run_plan_atomic, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_commands, setup, teardown),
	    cmocka_unit_test(test_rows_by_name),
	    cmocka_unit_test(test_rows_missing_column),
	    cmocka_unit_test_setup_teardown(test_rows_query, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_job_readers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_query_cursor, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
