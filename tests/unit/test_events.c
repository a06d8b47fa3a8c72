/*
 * The event stream (events.c): one JSON object per line, seq counting from 1, the run id on
 * every event, an attempt expanded into sandbox and step events with the attempt's own times,
 * null for what did not happen, and write errors kept for the close.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "buf.h"
#include "run/events.h"
#include "util.h"
#include "banned.h"

static char path[64];

static int setup(void **state)
{
	int fd;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/test_events.XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	return 0;
}

/* The file's lines parsed; *n is their count. The caller frees each and the array. */
static cJSON **read_events(size_t *n)
{
	struct arl_buf b = ARL_BUF_INIT;
	struct arl_err err = ARL_ERR_INIT;
	cJSON **v = NULL;
	size_t cap = 0;
	char *save = NULL;

	*n = 0;
	assert_int_equal(arl_buf_read_file(&b, path, 1 << 20, &err), 0);
	for (char *line = strtok_r(b.p, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		ARL_GROW(v, cap, *n + 1);
		v[*n] = cJSON_ParseWithLengthOpts(line, strlen(line) + 1, NULL, 1);
		assert_non_null(v[*n]);
		(*n)++;
	}
	arl_buf_release(&b);
	return v;
}

static const char *str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItem(o, k);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItem(o, k);

	assert_true(cJSON_IsNumber(v));
	return v->valuedouble;
}

static void test_attempt_expands(void **state)
{
	struct arl_events *e = NULL;
	struct arl_err err = ARL_ERR_INIT;
	struct arl_step_result steps[2] = {
	    {.name = "build",
	     .type = "Command",
	     .state = ARL_STATE_FAILED,
	     .has_exit = true,
	     .exit_code = 2,
	     .started_ms = 1700000000100,
	     .finished_ms = 1700000000350},
	    {.name = "test", .type = "Command", .state = ARL_STATE_SKIPPED}};
	struct arl_attempt_result a = {.number = 1,
	                               .sandbox = "sb-1",
	                               .state = ARL_STATE_FAILED,
	                               .cls = ARL_CLASS_FAILED,
	                               .has_exit = true,
	                               .exit_code = 2,
	                               .error = "step 'build' exited with 2",
	                               .started_ms = 1700000000000,
	                               .finished_ms = 1700000000400,
	                               .steps = steps,
	                               .nsteps = 2};
	struct arl_job_result j = {.state = ARL_STATE_FAILED,
	                           .cls = ARL_CLASS_FAILED,
	                           .started_ms = 1700000000000,
	                           .finished_ms = 1700000000400,
	                           .nattempts = 1};
	struct arl_events_counts c = {1, 0, 1, 0, 0};
	static const char *const want[] = {
	    "run.started",      "job.started",     "attempt.started", "sandbox.allocated",
	    "step.started",     "step.finished",   "step.finished",   "sandbox.released",
	    "attempt.finished", "retry.scheduled", "job.finished",    "run.finished"};
	cJSON **ev;
	size_t n;

	(void)state;
	assert_int_equal(arl_events_open(&e, path, &err), 0);
	arl_events_run_finished(e, "failed", 1, 0, &c); /* before run.started: nothing */
	arl_events_run_started(e, 7, "nightly", NULL, 1, 0, 2);
	arl_events_job_started(e, "f/j", 70, "pool-a");
	arl_events_attempt_started(e, "f/j", 70, 1);
	arl_events_attempt_finished(e, "f/j", 70, &a);
	arl_events_retry(e, "f/j", 70, &a, 1000);
	arl_events_job_finished(e, "f/j", 70, &j);
	arl_events_run_finished(e, "failed", 1, 400, &c);
	assert_int_equal(arl_events_close(e, &err), 0);

	ev = read_events(&n);
	assert_int_equal(n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(str(ev[i], "event"), want[i]);
		assert_int_equal((int)num(ev[i], "seq"), (int)i + 1);
		assert_int_equal((int)num(ev[i], "run_id"), 7);
		assert_non_null(str(ev[i], "time"));
	}
	/* The step's own times, not the time of writing. */
	assert_string_equal(str(ev[4], "time"), "2023-11-14T22:13:20.100Z");
	assert_string_equal(str(ev[5], "time"), "2023-11-14T22:13:20.350Z");
	assert_int_equal((int)num(ev[5], "exit_code"), 2);
	assert_int_equal((int)num(ev[5], "duration_ms"), 250);
	/* The step that did not run: finished only, Skipped, no exit code. */
	assert_string_equal(str(ev[6], "state"), "Skipped");
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(ev[6], "exit_code")));
	assert_string_equal(str(ev[8], "class"), "failed");
	assert_string_equal(str(ev[8], "sandbox"), "sb-1");
	assert_int_equal((int)num(ev[9], "next_attempt"), 2);
	assert_int_equal((int)num(ev[9], "delay_ms"), 1000);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(ev[10], "exit_code")));
	assert_int_equal((int)num(ev[11], "exit_code"), 1);
	for (size_t i = 0; i < n; i++)
		cJSON_Delete(ev[i]);
	free(ev);
}

static void test_open_and_write_errors(void **state)
{
	struct arl_events *e = NULL;
	struct arl_err err = ARL_ERR_INIT;

	(void)state;
	assert_int_equal(arl_events_open(&e, "/nonexistent-dir/x.jsonl", &err), -1);
	assert_null(e);
	assert_non_null(strstr(err.msg, "cannot open events file '/nonexistent-dir/x.jsonl'"));
	/* /dev/full: every write fails with ENOSPC; the run goes on, the close reports it. */
	if (access("/dev/full", W_OK) == 0) {
		arl_err_clear(&err);
		assert_int_equal(arl_events_open(&e, "/dev/full", &err), 0);
		arl_events_run_started(e, 1, "r", NULL, 0, 0, 1);
		assert_int_equal(arl_events_close(e, &err), -1);
		assert_non_null(strstr(err.msg, "cannot write events to '/dev/full'"));
	}
	assert_int_equal(arl_events_close(NULL, &err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_attempt_expands, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_and_write_errors, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
