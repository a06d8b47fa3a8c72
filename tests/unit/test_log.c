/*
 * The log module (log.c): the forms of its lines, escaping, whole messages from many threads,
 * a sink that is not running once it has been replaced, fd 2 without a sink, and the
 * progress bar's sink (a message clears the bar, stands on its own line, and the bar is
 * redrawn under it).
 */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "log.h"
#include "run/progress.h"
#include "util.h"
#include "banned.h"

/* ---- a sink that records ---- */

static pthread_mutex_t rec_mu = PTHREAD_MUTEX_INITIALIZER;
static struct arl_buf rec;     /* every message, one after the other */
static size_t rec_calls;       /* sink calls */
static atomic_int rec_inside;  /* sink calls running right now */
static atomic_int rec_overlap; /* times two ran at once */

static void record(void *arg, const char *text, size_t len)
{
	assert_ptr_equal(arg, &rec);
	if (atomic_fetch_add(&rec_inside, 1) != 0)
		atomic_fetch_add(&rec_overlap, 1);
	pthread_mutex_lock(&rec_mu);
	arl_buf_add(&rec, text, len);
	rec_calls++;
	pthread_mutex_unlock(&rec_mu);
	atomic_fetch_sub(&rec_inside, 1);
}

static int setup(void **state)
{
	(void)state;
	arl_buf_reset(&rec);
	rec_calls = 0;
	atomic_store(&rec_overlap, 0);
	arl_log_set_sink(record, &rec);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	arl_log_set_sink(NULL, NULL);
	arl_buf_release(&rec);
	return 0;
}

/* What the sink got so far, NUL-terminated; emptied. */
static char *taken(void)
{
	char *s;

	pthread_mutex_lock(&rec_mu);
	s = arl_xstrdup(rec.len ? rec.p : "");
	arl_buf_reset(&rec);
	rec_calls = 0;
	pthread_mutex_unlock(&rec_mu);
	return s;
}

static void assert_taken(const char *want)
{
	char *got = taken();

	assert_string_equal(got, want);
	free(got);
}

static void test_forms(void **state)
{
	struct arl_err err = ARL_ERR_INIT;

	(void)state;
	arl_log_error("cannot open '%s': %s", "x.db", "No such file or directory");
	assert_taken("arl-batch: cannot open 'x.db': No such file or directory\n");
	arl_log_warn("pool '%s': 'workspace' is a local-backend setting", "p");
	assert_taken("arl-batch: pool 'p': 'workspace' is a local-backend setting\n");
	arl_log_cmd_error("gc", "unexpected argument '%s'", "z");
	assert_taken("arl-batch gc: unexpected argument 'z'\n");
	arl_log_cmd_error(NULL, "plain");
	assert_taken("arl-batch: plain\n");
	/* A message that brings its own newline gets no second one. */
	arl_log_error("no runs in '%s'\n", "a.db");
	assert_taken("arl-batch: no runs in 'a.db'\n");
	arl_log_err(NULL, &err);
	assert_taken("arl-batch: unknown error\n");
	arl_error(&err, ARL_E_IO, "disk full");
	arl_log_err("prune", &err);
	assert_taken("arl-batch prune: disk full\n");
	arl_log_err(NULL, &err);
	assert_taken("arl-batch: disk full\n");
	/* Raw text goes as it is, one sink call. */
	arl_log_puts("usage: arl-batch run FILE...\n  -j N\n");
	assert_int_equal(rec_calls, 1);
	assert_taken("usage: arl-batch run FILE...\n  -j N\n");
	arl_log_write("", 0);
	assert_int_equal(rec_calls, 0);
}

static void test_escaped(void **state)
{
	(void)state;
	/* Untrusted text cannot drive the terminal; tabs, newlines and UTF-8 stay. */
	arl_log_error("server said '%s'", "\033]0;pwned\007\tok\nline 2 \xc3\xa9 \xff");
	assert_taken("arl-batch: server said '\\x1b]0;pwned\\x07\tok\nline 2 \xc3\xa9 \\xff'\n");
	arl_log_cmd_error("show", "%s", "\r\033[2J");
	assert_taken("arl-batch show: \\x0d\\x1b[2J\n");
}

static void test_long_message(void **state)
{
	char *big = arl_xmalloc(20001), *got;

	(void)state;
	memset(big, 'x', 20000);
	big[20000] = '\0';
	arl_log_error("%s", big);
	assert_int_equal(rec_calls, 1);
	got = taken();
	assert_int_equal(strlen(got), strlen("arl-batch: ") + 20000 + 1);
	assert_memory_equal(got, "arl-batch: xxx", 14);
	assert_int_equal(got[strlen(got) - 1], '\n');
	free(got);
	free(big);
}

static void test_blob(void **state)
{
	struct arl_log_blob b;
	FILE *f;

	(void)state;
	f = arl_log_begin(&b);
	assert_non_null(f);
	fputs("x.yaml:3:5: error: unknown key 'stpes'\n", f);
	fprintf(f, "    %s\n    ^\n", "stpes: []");
	assert_int_equal(rec_calls, 0); /* nothing before the end */
	arl_log_end(&b);
	assert_int_equal(rec_calls, 1); /* the diagnostic and its caret, whole */
	assert_taken("x.yaml:3:5: error: unknown key 'stpes'\n    stpes: []\n    ^\n");
	/* An empty blob says nothing. */
	arl_log_begin(&b);
	arl_log_end(&b);
	assert_int_equal(rec_calls, 0);
}

/* ---- fd 2 ---- */

/* Runs @fn with fd 2 on a pipe; returns what was written. */
static char *on_fd2(void (*fn)(void))
{
	int p[2], saved = dup(2);
	struct arl_buf out = ARL_BUF_INIT;
	char chunk[512];
	ssize_t n;

	assert_true(saved >= 0);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(dup2(p[1], 2), 2);
	close(p[1]);
	fn();
	assert_int_equal(dup2(saved, 2), 2);
	close(saved);
	while ((n = read(p[0], chunk, sizeof(chunk))) > 0)
		arl_buf_add(&out, chunk, (size_t)n);
	close(p[0]);
	return arl_buf_detach(&out, NULL);
}

static void say_without_sink(void)
{
	arl_log_set_sink(NULL, NULL);
	arl_log_error("to fd %d", 2);
	arl_log_puts("raw\n");
}

static void say_fatal(void)
{
	arl_log_fatal("out of memory allocating %zu bytes", (size_t)64);
}

static void test_fd2(void **state)
{
	char *s;

	(void)state;
	s = on_fd2(say_without_sink);
	assert_string_equal(s, "arl-batch: to fd 2\nraw\n");
	free(s);
	/* Last words skip the sink (its lock may be the dying thread's) and the lock. */
	arl_log_set_sink(record, &rec);
	s = on_fd2(say_fatal);
	assert_string_equal(s, "arl-batch: out of memory allocating 64 bytes\n");
	assert_int_equal(rec_calls, 0);
	free(s);
}

/* ---- threads ---- */

#define NTHREADS 4
#define PER      300

static void *chatter(void *arg)
{
	int t = (int)(intptr_t)arg;

	for (int i = 0; i < PER; i++)
		arl_log_error("thread %d message %d", t, i);
	return NULL;
}

static void test_threads(void **state)
{
	pthread_t th[NTHREADS];
	char *all, *line, *save = NULL;
	int seen[NTHREADS] = {0};

	(void)state;
	for (int t = 0; t < NTHREADS; t++)
		assert_int_equal(pthread_create(&th[t], NULL, chatter, (void *)(intptr_t)t), 0);
	for (int t = 0; t < NTHREADS; t++)
		pthread_join(th[t], NULL);
	assert_int_equal(atomic_load(&rec_overlap), 0); /* one message at a time */
	assert_int_equal(rec_calls, NTHREADS * PER);
	all = taken();
	/* Every line whole, each thread's in its order. */
	for (line = strtok_r(all, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		int t, i;

		assert_int_equal(sscanf(line, "arl-batch: thread %d message %d", &t, &i), 2);
		assert_true(t >= 0 && t < NTHREADS);
		assert_int_equal(i, seen[t]);
		seen[t]++;
	}
	for (int t = 0; t < NTHREADS; t++)
		assert_int_equal(seen[t], PER);
	free(all);
}

/* A sink that holds its caller until released. */
static atomic_int slow_entered, slow_release, replaced;

static void slow_sink(void *arg, const char *text, size_t len)
{
	(void)arg;
	(void)text;
	(void)len;
	atomic_store(&slow_entered, 1);
	while (!atomic_load(&slow_release))
		usleep(1000);
}

static void *slow_logger(void *arg)
{
	(void)arg;
	arl_log_error("held");
	return NULL;
}

static void *replacer(void *arg)
{
	(void)arg;
	arl_log_set_sink(record, &rec);
	atomic_store(&replaced, 1);
	return NULL;
}

/*
 * The bar frees itself after arl_log_set_sink(NULL): that call must not return while its
 * sink runs. A replacer started while the sink is held has not returned when the sink is
 * released (however long it was given), and the next message goes to the new sink.
 */
static void test_replace_waits_for_sink(void **state)
{
	pthread_t logger, rep;

	(void)state;
	atomic_store(&slow_entered, 0);
	atomic_store(&slow_release, 0);
	atomic_store(&replaced, 0);
	arl_log_set_sink(slow_sink, NULL);
	assert_int_equal(pthread_create(&logger, NULL, slow_logger, NULL), 0);
	while (!atomic_load(&slow_entered))
		usleep(1000);
	assert_int_equal(pthread_create(&rep, NULL, replacer, NULL), 0);
	usleep(50000); /* time for a wrong replacer to return; a right one never does */
	assert_int_equal(atomic_load(&replaced), 0);
	atomic_store(&slow_release, 1);
	pthread_join(logger, NULL);
	pthread_join(rep, NULL);
	assert_int_equal(atomic_load(&replaced), 1);
	assert_int_equal(rec_calls, 0);
	arl_log_error("after");
	assert_taken("arl-batch: after\n");
}

/* ---- the progress bar's sink ---- */

static int bar_fds[2];

static void say_after_bar(void)
{
	arl_log_error("after the bar");
}

static void *keepalive_worker(void *arg)
{
	(void)arg;
	arl_log_error("job '%s': keeping sandbox '%s' (keepAlive)", "t/a", "/s/keep-sb-1");
	return NULL;
}

static void test_bar_sink(void **state)
{
	struct arl_progress_opts o = {.mode = ARL_PROGRESS_BAR,
	                              .color = ARL_COLOR_NEVER,
	                              .total = 3,
	                              .nslots = 3,
	                              .concurrency = 3,
	                              .status_every = -1};
	struct arl_err err = ARL_ERR_INIT;
	struct arl_progress *p = NULL;
	struct arl_buf out = ARL_BUF_INIT;
	const char *msg = "arl-batch: job 't/a': keeping sandbox '/s/keep-sb-1' (keepAlive)\n";
	char chunk[4096], *s, *at;
	ssize_t n;
	pthread_t th;

	(void)state;
	setenv("COLUMNS", "120", 1);
	assert_int_equal(pipe2(bar_fds, O_CLOEXEC), 0);
	o.fd = bar_fds[1];
	assert_int_equal(arl_progress_new(&p, &o, &err), 0);
	arl_progress_job_start(p, 0, "t/a");
	arl_progress_attempt_start(p, 0, 1);
	arl_progress_printf(p, "arl-batch: first"); /* the bar is drawn under it */
	/* From another thread, as the backends' workers do. */
	assert_int_equal(pthread_create(&th, NULL, keepalive_worker, NULL), 0);
	pthread_join(th, NULL);
	arl_log_puts("raw text without its newline");
	arl_progress_free(p);
	/* Once the bar is gone, messages go to fd 2 again. */
	s = on_fd2(say_after_bar);
	assert_string_equal(s, "arl-batch: after the bar\n");
	free(s);
	close(bar_fds[1]);
	while ((n = read(bar_fds[0], chunk, sizeof(chunk))) > 0)
		arl_buf_add(&out, chunk, (size_t)n);
	close(bar_fds[0]);
	s = arl_buf_detach(&out, NULL);
	at = strstr(s, msg);
	assert_non_null(at);
	/* The bar was cleared right before the message: it starts a line of its own. */
	assert_true(at - s >= 4);
	assert_memory_equal(at - 4, "\r\033[K", 4);
	/* And drawn again under it. */
	at += strlen(msg);
	assert_non_null(strstr(at, "0/3"));
	assert_non_null(strstr(at, "running 1"));
	/* Raw text that does not end its line still leaves the bar a line of its own. */
	at = strstr(at, "\r\033[Kraw text without its newline\n");
	assert_non_null(at);
	assert_non_null(strstr(at, "0/3"));
	free(s);
	unsetenv("COLUMNS");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_forms, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_escaped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_long_message, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_blob, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fd2, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_replace_waits_for_sink, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bar_sink, NULL, NULL),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
