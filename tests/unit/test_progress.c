/*
 * Live progress (progress.c) drawn into a pipe: the bar fits the width ($COLUMNS, as a pipe
 * has no window size) however long the job keys, breaks down failures by class, shows the
 * running and retrying jobs; plain mode prints a line per job and status lines without a
 * single escape code; colour follows --color and NO_COLOR.
 */
#include <errno.h>
#include <fcntl.h>
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
#include "run/progress.h"
#include "util.h"
#include "fake_clock.h"
#include "banned.h"

static int fds[2];

static int setup(void **state)
{
	(void)state;
	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	/* A pipe holds 64 KiB: plenty for the frames of one test, read after the fact. */
	unsetenv("NO_COLOR");
	unsetenv("ARL_BATCH_STATUS_EVERY");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]);
	return 0;
}

/* Everything written so far (the write end is closed first). */
static char *drain(void)
{
	struct arl_buf b = ARL_BUF_INIT;
	char chunk[4096];
	ssize_t n;

	close(fds[1]);
	fds[1] = -1;
	while ((n = read(fds[0], chunk, sizeof(chunk))) > 0)
		arl_buf_add(&b, chunk, (size_t)n);
	return arl_buf_detach(&b, NULL);
}

/* @s without CSI sequences ("\033[...X"). */
static char *strip_csi(const char *s)
{
	char *o = arl_xstrdup(s), *w = o;

	while (*s) {
		if (s[0] == '\033' && s[1] == '[') {
			s += 2;
			while (*s && !(*s >= 0x40 && *s <= 0x7e))
				s++;
			if (*s)
				s++;
			continue;
		}
		*w++ = *s++;
	}
	*w = '\0';
	return o;
}

/* Columns of the widest piece of @s between \r and \n, in code points. */
static size_t widest(const char *s)
{
	size_t best = 0, cur = 0;

	for (; *s; s++) {
		if (*s == '\r' || *s == '\n') {
			cur = 0;
			continue;
		}
		if (((unsigned char)*s & 0xC0) != 0x80 && ++cur > best)
			best = cur;
	}
	return best;
}

/* The last bar frame: the text after the last "\r" that is not followed by a line. */
static char *last_frame(const char *plain)
{
	const char *cr = strrchr(plain, '\r');

	return arl_xstrdup(cr ? cr + 1 : plain);
}

static struct arl_progress *start(enum arl_progress_mode mode, enum arl_color_mode color,
                                  size_t total, size_t nslots)
{
	struct arl_progress_opts o = {.mode = mode,
	                              .color = color,
	                              .fd = fds[1],
	                              .total = total,
	                              .nslots = nslots,
	                              .concurrency = 4,
	                              .status_every = -1};
	struct arl_progress *p = NULL;
	struct arl_err err = ARL_ERR_INIT;

	assert_int_equal(arl_progress_new(&p, &o, &err), 0);
	return p;
}

static struct arl_job_result result(enum arl_state state, enum arl_class cls, size_t attempts)
{
	int64_t now = arl_wall_ms();

	return (struct arl_job_result){.state = state,
	                               .cls = cls,
	                               .nattempts = attempts,
	                               .started_ms = now - 1500,
	                               .finished_ms = now};
}

static void scenario(struct arl_progress *p, const char *const *keys)
{
	struct arl_job_result ok = result(ARL_STATE_SUCCEEDED, ARL_CLASS_NONE, 1),
	                      to = result(ARL_STATE_FAILED, ARL_CLASS_TIMEOUT, 1),
	                      fl = result(ARL_STATE_FAILED, ARL_CLASS_FAILED, 2);

	for (size_t i = 0; i < 5; i++) {
		arl_progress_job_start(p, i, keys[i]);
		arl_progress_attempt_start(p, i, 1);
	}
	arl_progress_attempt_done(p, 0);
	arl_progress_job_done(p, 0, keys[0], &ok);
	arl_progress_attempt_done(p, 1);
	arl_progress_job_done(p, 1, keys[1], &to);
	arl_progress_attempt_done(p, 2);
	arl_progress_retry(p, 2, 1, ARL_CLASS_FAILED, 1000);
	arl_progress_attempt_start(p, 2, 2);
	arl_progress_attempt_done(p, 2);
	arl_progress_job_done(p, 2, keys[2], &fl);
	arl_progress_attempt_done(p, 3);
	arl_progress_retry(p, 3, 1, ARL_CLASS_INFRA, 5000);
	/* Slot 4 is still running, slot 3 in backoff. */
	arl_progress_printf(p, "arl-batch: a message");
}

static const char *const short_keys[] = {"t/a", "t/b", "t/c", "t/d", "t/long-running-one"};

static void test_bar_fields(void **state)
{
	struct arl_progress *p;
	char *out, *plain, *bar;

	(void)state;
	setenv("COLUMNS", "200", 1);
	p = start(ARL_PROGRESS_BAR, ARL_COLOR_NEVER, 10, 5);
	assert_int_equal(arl_progress_mode(p), ARL_PROGRESS_BAR);
	scenario(p, short_keys);
	/* Redraw once more after the message, then stop: the bar is erased. */
	arl_progress_free(p);
	out = drain();
	plain = strip_csi(out);
	assert_null(strstr(out, "\033[0m")); /* --color never: no SGR at all */
	/* The message stands on its own line, above the bar. */
	assert_non_null(strstr(plain, "arl-batch: a message\n"));
	/* Failures leave a line; successes do not. */
	assert_non_null(strstr(plain, "[2/10] timeout   t/b"));
	assert_non_null(strstr(plain, "[3/10] failed    t/c"));
	assert_null(strstr(plain, "] ok "));
	/* The frame drawn after the message: every field. */
	bar = strstr(plain, "arl-batch: a message\n");
	assert_non_null(bar);
	bar += strlen("arl-batch: a message\n");
	assert_non_null(strstr(bar, "3/10"));
	assert_non_null(strstr(bar, "ok 1"));
	assert_non_null(strstr(bar, "failed 2 (1 failed, 1 timeout)"));
	assert_non_null(strstr(bar, "running 1"));
	assert_non_null(strstr(bar, "retrying 1"));
	assert_non_null(strstr(bar, "/s"));
	assert_non_null(strstr(bar, "elapsed "));
	assert_non_null(strstr(bar, "ETA "));
	assert_non_null(strstr(bar, "longest: t/long-running-one"));
	assert_true(widest(plain) <= 199);
	/* arl_progress_free() erased the last frame: nothing follows the final "\r". */
	{
		char *last = last_frame(plain);

		assert_string_equal(last, "");
		free(last);
	}
	free(plain);
	free(out);
}

static void test_bar_fits_narrow_terminals(void **state)
{
	static const char *const long_keys[] = {
	    /* Parenthesised: one element, not a missing comma (clang -Wstring-concatenation). */
	    ("suite/an-extremely-long-job-name-that-would-never-fit-on-any-line-"
	     "0123456789-0123456789-0123456789-0123456789"),
	    "suite/b", "suite/c", "suite/d",
	    "suite/\xc3\xa9t\xc3\xa9-unicode-name-that-is-long-too-0123456789-0123456789"};
	static const char *const widths[] = {"20", "40", "60", "80", "120"};

	(void)state;
	for (size_t w = 0; w < sizeof(widths) / sizeof(widths[0]); w++) {
		struct arl_progress *p;
		char *out, *plain;
		size_t cols = (size_t)strtoul(widths[w], NULL, 10);

		if (w) {
			close(fds[0]);
			assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
		}
		setenv("COLUMNS", widths[w], 1);
		p = start(ARL_PROGRESS_BAR, ARL_COLOR_ALWAYS, 100000, 5);
		scenario(p, long_keys);
		arl_progress_free(p);
		out = drain();
		plain = strip_csi(out);
		/*
		 * Job lines may wrap like any output; the bar itself never reaches the edge.
		 * A bar frame is any piece of the output ended by "\r" (the next redraw or the
		 * erase) or by the end; a piece ended by "\n" is a message.
		 */
		for (const char *q = plain; *q;) {
			size_t n = strcspn(q, "\r\n");
			char *piece = arl_xstrndup(q, n);

			if (q[n] != '\n')
				assert_true(widest(piece) <= cols - 1);
			free(piece);
			q += n + (q[n] ? 1 : 0);
		}
		/* The count is the last thing to go. */
		assert_non_null(strstr(plain, "3/100000"));
		/* Colour was asked for. */
		assert_non_null(strstr(out, "\033[32m"));
		free(plain);
		free(out);
	}
}

static void test_plain_has_no_escapes(void **state)
{
	struct arl_progress *p;
	char *out;

	(void)state;
	setenv("COLUMNS", "80", 1);
	p = start(ARL_PROGRESS_PLAIN, ARL_COLOR_AUTO, 10, 5); /* a pipe: no colour */
	scenario(p, short_keys);
	arl_progress_free(p);
	out = drain();
	assert_null(strchr(out, '\033'));
	assert_null(strchr(out, '\r'));
	assert_non_null(strstr(out, "[1/10] ok        t/a (1.500s)\n"));
	assert_non_null(strstr(out, "[2/10] timeout   t/b (1.500s, 1 attempt)\n"));
	assert_non_null(strstr(out, "[2/10] retry     t/c (attempt 1: failed; again in 1s)\n"));
	assert_non_null(strstr(out, "[3/10] failed    t/c (1.500s, 2 attempts)\n"));
	assert_non_null(strstr(out, "arl-batch: a message\n"));
	free(out);
}

/* Reads the pipe until a whole line containing @needle has come: the thread printed it. */
static char *read_line_with(const char *needle)
{
	struct arl_buf b = ARL_BUF_INIT;
	char chunk[4096];
	const char *hit;
	ssize_t n;

	while (!b.p || !(hit = strstr(b.p, needle)) || !strchr(hit, '\n')) {
		n = read(fds[0], chunk, sizeof(chunk));
		assert_true(n > 0);
		arl_buf_add(&b, chunk, (size_t)n);
	}
	return arl_buf_detach(&b, NULL);
}

static void test_plain_status_lines(void **state)
{
	struct arl_progress_opts o = {.mode = ARL_PROGRESS_AUTO, /* a pipe: plain */
	                              .color = ARL_COLOR_AUTO,
	                              .fd = fds[1],
	                              .total = 3,
	                              .nslots = 3,
	                              .concurrency = 2,
	                              .clock = {fake_clock_now, NULL}};
	struct arl_progress *p = NULL;
	struct arl_err err = ARL_ERR_INIT;
	char *first, *rest;
	int reads;

	(void)state;
	atomic_store(&fake_clock_ms, 5000);
	setenv("ARL_BATCH_STATUS_EVERY", "50ms", 1);
	assert_int_equal(arl_progress_new(&p, &o, &err), 0);
	assert_int_equal(arl_progress_mode(p), ARL_PROGRESS_PLAIN);
	arl_progress_job_start(p, 0, "t/slow");
	arl_progress_attempt_start(p, 0, 1);
	/* One step past the first status time: exactly one line, with the times it implies. */
	atomic_store(&fake_clock_ms, 5000 + 61000);
	first = read_line_with("arl-batch: status: ");
	/* The thread goes on looking at the clock; let it look a few more times. */
	reads = atomic_load(&fake_clock_reads);
	while (atomic_load(&fake_clock_reads) < reads + 6)
		usleep(1000);
	arl_progress_free(p);
	rest = drain();
	assert_null(strchr(first, '\033'));
	assert_string_equal(strstr(first, "arl-batch: status: "),
	                    "arl-batch: status: 0/3 done, 0 succeeded, 0 failed, 0 cancelled, "
	                    "1 running, 0 retrying, 0.00 jobs/s, elapsed 1m01s, ETA unknown; "
	                    "longest running: t/slow (1m01s)\n");
	/* The clock stood still since: however often the thread looked, its time never came. */
	assert_null(strstr(rest, "status:"));
	free(first);
	free(rest);
}

static void test_color_modes(void **state)
{
	(void)state;
	unsetenv("NO_COLOR");
	assert_int_equal(arl_progress_use_color(ARL_COLOR_ALWAYS, fds[1]), 1);
	assert_int_equal(arl_progress_use_color(ARL_COLOR_NEVER, fds[1]), 0);
	assert_int_equal(arl_progress_use_color(ARL_COLOR_AUTO, fds[1]), 0); /* not a tty */
	setenv("NO_COLOR", "1", 1);
	assert_int_equal(arl_progress_use_color(ARL_COLOR_ALWAYS, fds[1]), 1);
	unsetenv("NO_COLOR");
}

static void test_parse(void **state)
{
	enum arl_progress_mode m;
	enum arl_color_mode c;

	(void)state;
	assert_int_equal(arl_progress_parse_mode("bar", &m), 0);
	assert_int_equal(m, ARL_PROGRESS_BAR);
	assert_int_equal(arl_progress_parse_mode("none", &m), 0);
	assert_int_equal(m, ARL_PROGRESS_NONE);
	assert_int_equal(arl_progress_parse_mode("fancy", &m), -1);
	assert_int_equal(arl_progress_parse_color("never", &c), 0);
	assert_int_equal(c, ARL_COLOR_NEVER);
	assert_int_equal(arl_progress_parse_color("sometimes", &c), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_bar_fields, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bar_fits_narrow_terminals, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_plain_has_no_escapes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_plain_status_lines, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_color_modes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_parse, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
