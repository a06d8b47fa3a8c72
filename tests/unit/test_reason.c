/*
 * A failed job's one-line reason (view/store_view.h arl_view_reason): the failing step, the
 * class, the last non-empty stderr line for failures, the job's message otherwise (timeouts,
 * stalls, infra) without repeating the step, and the cut of a long line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "view/store_view.h"
#include "util.h"
#include "banned.h"

static void check(const char *step, const char *cls, const char *error, const char *tail,
                  const char *want)
{
	char *got = arl_view_reason(step, cls, error, tail);

	if (!want) {
		assert_null(got);
		return;
	}
	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static void test_failed(void **state)
{
	(void)state;
	check("test", "failed", "step 'test' exited with 1",
	      "collected 3 items\nE   AssertionError: 2 != 3\n\n  \t\n",
	      "test: failed: E   AssertionError: 2 != 3");
	check("test", "failed", "step 'test' exited with 1", "only line",
	      "test: failed: only line");
	check("test", "failed", "step 'test' exited with 1", "last\r\n", "test: failed: last");
	/* No stderr: the job's message, without the step it names again. */
	check("test", "failed", "step 'test' exited with 1", "", "test: failed: exited with 1");
	check("test", "failed", "step 'test' exited with 1", NULL, "test: failed: exited with 1");
	check("test", "failed", "step 'test' exited with 1", " \n\n",
	      "test: failed: exited with 1");
	/* A message naming another step is kept whole. */
	check("t", "failed", "step 'test' exited with 1", NULL,
	      "t: failed: step 'test' exited with 1");
}

static void test_timeout_infra(void **state)
{
	(void)state;
	/* Timeouts and stalls give their message, not the killed step's last words. */
	check("s", "timeout", "step 's' timed out", "still working\n", "s: timeout: timed out");
	check("agent", "timeout", "step 'agent': no output for 10m", "waiting for the API\n",
	      "agent: timeout: no output for 10m");
	check(NULL, "infra", "cannot allocate a sandbox from pool 'p': no space", NULL,
	      "infra: cannot allocate a sandbox from pool 'p': no space");
	check(NULL, "cancelled", NULL, NULL, "cancelled");
	check("x", "succeeded?", NULL, NULL, "x: succeeded?");
	check(NULL, NULL, "whatever", NULL, NULL);
}

static void test_cut(void **state)
{
	char line[1000], want[400];

	(void)state;
	memset(line, 'a', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\0';
	snprintf(want, sizeof(want), "s: failed: %.*s\u2026", ARL_VIEW_REASON_COLS, line);
	check("s", "failed", "step 's' exited with 1", line, want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_failed),
	    cmocka_unit_test(test_timeout_infra),
	    cmocka_unit_test(test_cut),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
