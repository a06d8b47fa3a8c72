/*
 * The backend boundary: a backend the loader and the runner have never heard of (the fake
 * one of fake_backend.c) is registered beside the built-in ones, its pools are checked by its
 * own key table (file:line:col diagnostics), and real job files run on it through the entry
 * point `arl-batch run` uses, into a results database.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "backend/backend.h"
#include "cmd/builtin_backends.h"
#include "cmd/cli.h"
#include "fake_backend.h"
#include "jobfile/jobload.h"
#include "run/progress.h"
#include "run/run.h"
#include "util.h"

struct fx {
	char dir[64];
	char path[128];
	char *diags; /* what loading printed */
};

static int setup(void **state)
{
	struct fx *f = arl_xcalloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/test_backend_registry.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f->diags);
	free(f);
	return 0;
}

/* Loads DIR/fake.yaml with its pools on @backend (NULL: theirs); f->diags: what was printed. */
static int load_on(struct fx *f, const struct arl_pool_kind *backend, struct arl_jobfile **out)
{
	FILE *diag;
	size_t len = 0;
	int rc;

	free(f->diags);
	f->diags = NULL;
	diag = open_memstream(&f->diags, &len);
	assert_non_null(diag);
	rc = arl_jobfile_load_on(f->path, backend, out, diag);
	fclose(diag);
	return rc;
}

/* Writes @yaml to DIR/fake.yaml and loads it. */
static int load(struct fx *f, const char *yaml, struct arl_jobfile **out)
{
	FILE *fp;

	snprintf(f->path, sizeof(f->path), "%s/fake.yaml", f->dir);
	fp = fopen(f->path, "w");
	assert_non_null(fp);
	fputs(yaml, fp);
	assert_int_equal(fclose(fp), 0);
	return load_on(f, NULL, out);
}

/* Fails, showing what was printed, unless loading printed "PATH:@want". */
static void assert_printed(const struct fx *f, const char *want)
{
	char *line = arl_xasprintf("%s:%s", f->path, want);

	if (!strstr(f->diags, line))
		fail_msg("no '%s' in:\n%s", line, f->diags);
	free(line);
}

/* The rows of @sql over DIR/results.db, one "a|b|c" line each. */
static char *query(const struct fx *f, const char *sql)
{
	char db[128];
	sqlite3 *h;
	sqlite3_stmt *st;
	char *out = arl_xstrdup("");

	snprintf(db, sizeof(db), "%s/results.db", f->dir);
	assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		for (int c = 0; c < sqlite3_column_count(st); c++) {
			const char *v = (const char *)sqlite3_column_text(st, c);
			char *next = arl_xasprintf("%s%s%s", out, c ? "|" : "", v ? v : "");

			free(out);
			out = next;
		}
		char *next = arl_xasprintf("%s\n", out);

		free(out);
		out = next;
	}
	sqlite3_finalize(st);
	sqlite3_close(h);
	return out;
}

static const char *const fake_file =
    "version: 1\n"
    "pools:\n"
    "  greeter:\n"
    "    backend: fake\n"
    "    greeting: hello\n"
    "    replicas: 2\n"
    "jobs:\n"
    "  - name: ok\n"
    "    pool: greeter\n"
    "    steps:\n"
    "      - {name: say, type: Command, command: [\"true\", world]}\n"
    "  - name: bad\n"
    "    pool: greeter\n"
    "    steps:\n"
    "      - {name: say, type: Command, command: [\"false\"]}\n"
    "      - {name: never, type: Command, command: [\"true\"]}\n";

static void test_fake_backend_runs_jobs(void **state)
{
	struct fx *f = *state;
	struct arl_jobfile *file = NULL;
	struct arl_run_opts ro = ARL_RUN_OPTS_INIT;
	char db[128];
	char *rows;

	assert_int_equal(load(f, fake_file, &file), 0);
	assert_string_equal(f->diags, "");
	assert_ptr_equal(file->pools[0].kind, arl_fake_backend.pool);
	assert_string_equal(((const struct arl_fake_pool *)file->pools[0].config)->greeting,
	                    "hello");

	snprintf(db, sizeof(db), "%s/results.db", f->dir);
	ro.db_path = db;
	ro.quiet = 1;
	ro.progress = ARL_PROGRESS_NONE;
	/* Exit 1: a job failed (the runner's exit codes). */
	assert_int_equal(arl_run_execute(&file, 1, &ro), 1);
	assert_int_equal(arl_fake_backend_opened, 1);

	rows = query(f, "SELECT key, state, ifnull(error_class, ''), exit_code FROM jobs "
	                "ORDER BY key");
	assert_string_equal(rows, "fake/bad|Failed|failed|1\nfake/ok|Succeeded||0\n");
	free(rows);
	rows = query(f, "SELECT j.name, s.name, s.state, s.stdout FROM steps s "
	                "JOIN attempts a ON a.id = s.attempt_id JOIN jobs j ON j.id = a.job_id "
	                "ORDER BY j.name, s.idx");
	assert_string_equal(rows, "bad|say|Failed|hello\n\n"
	                          "bad|never|Skipped|\n"
	                          "ok|say|Succeeded|hello world\n\n");
	free(rows);
	rows = query(f, "SELECT count(*) FROM attempts WHERE sandbox LIKE 'fake-%'");
	assert_string_equal(rows, "2\n");
	free(rows);
	/* With no labels of its own, a backend's pools record its name as the isolation. */
	rows = query(f, "SELECT isolation FROM runs");
	assert_string_equal(rows, "fake\n");
	free(rows);
	arl_jobfile_free(file);
}

/* The fake's own key table judges its pools, with the loader's locations and words. */
static void test_fake_keys_are_checked(void **state)
{
	struct fx *f = *state;
	struct arl_jobfile *file = NULL;

	assert_int_equal(load(f,
	                      "version: 1\n"
	                      "pools:\n"
	                      "  greeter:\n"
	                      "    backend: fake\n"
	                      "    greting: hello\n"
	                      "jobs:\n"
	                      "  - {name: j, pool: greeter, steps: [{name: s, type: Command, "
	                      "command: [\"true\"]}]}\n",
	                      &file),
	                 -1);
	assert_printed(f, "5:5: error: unknown key 'greting' in pool 'greeter'; did you mean "
	                  "'greeting'?");
	assert_printed(f, "4:5: error: missing required key 'greeting' in pool 'greeter'");

	assert_int_equal(load(f,
	                      "version: 1\n"
	                      "pools:\n"
	                      "  greeter: {backend: fake, greeting: [a, b]}\n"
	                      "jobs:\n"
	                      "  - {name: j, pool: greeter, steps: [{name: s, type: Command, "
	                      "command: [\"true\"]}]}\n",
	                      &file),
	                 -1);
	assert_printed(f, "3:38: error: 'greeting' must be a string, got a list");
}

/* 'backend:' takes the registered names; other backends' keys have no effect. */
static void test_backend_names_and_foreign_keys(void **state)
{
	struct fx *f = *state;
	struct arl_jobfile *file = NULL;

	assert_int_equal(
	    load(f,
	         "version: 1\n"
	         "pools:\n"
	         "  p: {backend: fak}\n"
	         "jobs:\n"
	         "  - {name: j, pool: p, steps: [{name: s, type: Command, command: [\"true\"]}]}\n",
	         &file),
	    -1);
	assert_printed(f, "3:16: error: 'backend' must be one of 'local', 'kubernetes', "
	                  "'gateway', 'fake', got 'fak'; did you mean 'fake'?");

	assert_int_equal(
	    load(f,
	         "version: 1\n"
	         "pools:\n"
	         "  p: {isolation: none, greeting: hi}\n"
	         "  q: {backend: fake, greeting: hi, isolation: none}\n"
	         "jobs:\n"
	         "  - {name: j, pool: p, steps: [{name: s, type: Command, command: [\"true\"]}]}\n",
	         &file),
	    0);
	assert_printed(f, "3:24: warning: 'greeting' has no effect on a local pool");
	assert_printed(f, "4:36: warning: 'isolation' has no effect on a fake pool");

	arl_jobfile_free(file);
}

/* `run --backend fake`: each pool's config is the fake's, read from the pool's mapping. */
static void test_run_on_another_backend(void **state)
{
	struct fx *f = *state;
	struct arl_jobfile *file = NULL;

	assert_int_equal(load(f,
	                      "version: 1\n"
	                      "pools:\n"
	                      "  p: {isolation: none, greeting: hi}\n"
	                      "jobs:\n"
	                      "  - {name: j, pool: p, steps: [{name: s, type: Command, command: "
	                      "[\"true\"]}]}\n",
	                      &file),
	                 0);
	arl_jobfile_free(file);
	file = NULL;
	assert_int_equal(load_on(f, arl_fake_backend.pool, &file), 0);
	assert_ptr_equal(file->pools[0].kind, arl_fake_backend.pool);
	assert_string_equal(((const struct arl_fake_pool *)file->pools[0].config)->greeting, "hi");
	arl_jobfile_free(file);

	/* A key the fake requires and a local pool lacks is an error, where the pool is. */
	assert_int_equal(load(f,
	                      "version: 1\n"
	                      "pools:\n"
	                      "  p: {isolation: none}\n"
	                      "jobs:\n"
	                      "  - {name: j, pool: p, steps: [{name: s, type: Command, command: "
	                      "[\"true\"]}]}\n",
	                      &file),
	                 0);
	arl_jobfile_free(file);
	file = NULL;
	assert_int_equal(load_on(f, arl_fake_backend.pool, &file), -1);
	assert_null(file);
	assert_printed(f, "3:6: error: missing required key 'greeting' in pool 'p'");
}

/* What @cmd(@argv) printed on stdout, in *@text (owned); returns its exit code. */
static int captured(struct fx *f, int (*cmd)(int, char **), char **argv, char **text)
{
	char out[160];
	int saved, fd, argc = 0, rc;
	FILE *fp;
	long len;

	while (argv[argc])
		argc++;
	snprintf(out, sizeof(out), "%s/stdout.txt", f->dir);
	fflush(stdout);
	saved = dup(1);
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(saved >= 0 && fd >= 0);
	dup2(fd, 1);
	close(fd);
	rc = cmd(argc, argv);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	fp = fopen(out, "r");
	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	len = ftell(fp);
	rewind(fp);
	*text = arl_xcalloc(1, (size_t)len + 1);
	assert_int_equal(fread(*text, 1, (size_t)len, fp), (size_t)len);
	fclose(fp);
	return rc;
}

static void assert_has(const char *text, const char *want)
{
	if (!strstr(text, want))
		fail_msg("no '%s' in:\n%s", want, text);
}

/* `run --help` names every registered backend as --backend's values, the fake one too. */
static void test_run_help_names_the_backends(void **state)
{
	char *argv[] = {"run", "--help", NULL}, *text;

	assert_int_equal(captured(*state, cmd_run, argv, &text), 0);
	assert_has(text, "      --backend local|kubernetes|gateway|fake\n");
	free(text);
}

/* `gc` sweeps through the registry: the fake's gc, chosen by name or by its own option. */
static void test_gc_reaches_every_backend(void **state)
{
	char *help[] = {"gc", "--help", NULL};
	char *fake[] = {"gc", "--backend", "fake", "--fake-where", "here", "--yes", NULL};
	char *wrong[] = {"gc", "--backend", "kubernetes", "--fake-where", "here", NULL};
	char *text;

	assert_int_equal(captured(*state, cmd_gc, help, &text), 0);
	assert_has(text,
	           "usage: arl-batch gc [--yes] [--backend local|kubernetes|gateway|fake|all]");
	assert_has(text, "[--fake-where W]\n");
	assert_has(text, "      --fake-where W      fake: where to look\n");
	free(text);
	assert_int_equal(captured(*state, cmd_gc, fake, &text), 0);
	assert_string_equal(text, "fake gc --yes in here\n");
	free(text);
	/* Its option with another backend only: a usage error, nothing swept. */
	assert_int_equal(captured(*state, cmd_gc, wrong, &text), 2);
	assert_string_equal(text, "");
	free(text);
}

static const struct arl_pool_key no_keys[] = {{.name = NULL}};
static const struct arl_pool_kind clash_kind = {.name = "clash", .keys = no_keys};
static const struct arl_pool_kind fake_again_kind = {.name = "fake", .keys = no_keys};

/* @ops when registering it succeeds; else NULL, the error being @want. */
static const struct arl_backend_ops *registered(const struct arl_backend_ops *ops, const char *want)
{
	struct arl_err err = ARL_ERR_INIT;

	if (arl_backend_register(ops, &err) == 0)
		return ops;
	assert_string_equal(err.msg, want);
	return NULL;
}

/* `run` parses every backend's options: two backends may not both own one, nor share a name. */
static void test_clashes_are_refused(void **state)
{
	static const struct arl_backend_option kubeconfig[] = {{.name = "kubeconfig"}, {NULL}};
	static const struct arl_backend_option twice[] = {
	    {.name = "colour"}, {.name = "clash-x"}, {.name = "clash-x"}, {NULL}};
	static const struct arl_backend_ops takes_kubeconfig = {.pool = &clash_kind,
	                                                        .options = kubeconfig};
	static const struct arl_backend_ops lists_twice = {.pool = &clash_kind, .options = twice};
	static const struct arl_backend_ops another_fake = {.pool = &fake_again_kind};
	struct arl_err err = ARL_ERR_INIT;

	(void)state;
	assert_null(registered(&takes_kubeconfig, "backend 'clash': option '--kubeconfig' is "
	                                          "backend 'kubernetes''s already"));
	assert_null(
	    registered(&lists_twice, "backend 'clash': option '--clash-x' is listed twice"));
	assert_null(registered(&another_fake, "backend 'fake' is registered already"));
	assert_null(arl_backend_find("clash"));
	assert_null(arl_pool_kind_find("clash"));
	assert_ptr_equal(arl_backend_find("fake"), &arl_fake_backend);
	assert_ptr_equal(arl_backend_option_find("kubeconfig"),
	                 arl_backend_find("kubernetes")->options);
	/* The same backend again is no clash. */
	assert_int_equal(arl_backend_register(&arl_fake_backend, &err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_fake_backend_runs_jobs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fake_keys_are_checked, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_backend_names_and_foreign_keys, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_run_on_another_backend, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_run_help_names_the_backends, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gc_reaches_every_backend, setup, teardown),
	    cmocka_unit_test(test_clashes_are_refused),
	};
	struct arl_err err = ARL_ERR_INIT;

	arl_register_builtin_backends();
	/* The third: nothing else names it. */
	if (arl_backend_register(&arl_fake_backend, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
