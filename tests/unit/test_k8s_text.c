/*
 * Unit tests for k8s_text.c: Go durations as the operator writes them (status.duration) and
 * reads them (spec.timeout), RFC 3339 times, object names and label values, base64.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "k8s/k8s_text.h"
#include "util.h"
#include "banned.h"

static int64_t go_ns(const char *s)
{
	int64_t ns = 12345;

	if (arl_k8s_parse_go_duration(s, &ns) < 0)
		fail_msg("'%s' should parse", s);
	return ns;
}

static void go_bad(const char *s)
{
	int64_t ns = 12345;

	if (arl_k8s_parse_go_duration(s, &ns) == 0)
		fail_msg("'%s' should not parse", s);
	assert_int_equal(ns, 12345); /* untouched on failure */
}

static void test_go_duration(void **state)
{
	(void)state;
	/* What Duration.String() produces. */
	assert_int_equal(go_ns("0s"), 0);
	assert_int_equal(go_ns("0"), 0);
	assert_int_equal(go_ns("1.234567891s"), 1234567891);
	assert_int_equal(go_ns("2m3.5s"), 123500000000);
	assert_int_equal(go_ns("1h0m0s"), 3600000000000);
	assert_int_equal(go_ns("1h30m"), 5400000000000);
	assert_int_equal(go_ns("500ms"), 500000000);
	assert_int_equal(go_ns("1.5ms"), 1500000);
	assert_int_equal(go_ns("3us"), 3000);
	assert_int_equal(go_ns("3\xc2\xb5s"), 3000); /* micro sign */
	assert_int_equal(go_ns("3\xce\xbcs"), 3000); /* Greek mu */
	assert_int_equal(go_ns("42ns"), 42);
	assert_int_equal(go_ns("-1.5s"), -1500000000);
	assert_int_equal(go_ns("+2s"), 2000000000);
	assert_int_equal(go_ns(".5s"), 500000000);
	assert_int_equal(go_ns("1.s"), 1000000000);
	assert_int_equal(go_ns("2562047h"), 2562047LL * 3600 * 1000000000LL);
	/* What Go refuses: no unit, unknown unit, no digits, empty, overflow. */
	go_bad("");
	go_bad("1");
	go_bad("30");
	go_bad("s");
	go_bad(".s");
	go_bad("1x");
	go_bad("1d");
	go_bad("-");
	go_bad("1s ");
	go_bad(" 1s");
	go_bad("3000000h");
}

static void test_format_timeout(void **state)
{
	char buf[32];

	(void)state;
	/* Whole seconds, rounded up, at least 1: the operator truncates and 0 means no limit. */
	assert_string_equal(arl_k8s_format_timeout(1, buf, sizeof(buf)), "1s");
	assert_string_equal(arl_k8s_format_timeout(999, buf, sizeof(buf)), "1s");
	assert_string_equal(arl_k8s_format_timeout(1000, buf, sizeof(buf)), "1s");
	assert_string_equal(arl_k8s_format_timeout(1001, buf, sizeof(buf)), "2s");
	assert_string_equal(arl_k8s_format_timeout(0, buf, sizeof(buf)), "1s");
	assert_string_equal(arl_k8s_format_timeout(-5000, buf, sizeof(buf)), "1s");
	assert_string_equal(arl_k8s_format_timeout(3600000, buf, sizeof(buf)), "3600s");
	/* Every output is a valid Go duration that reads back as at least the input. */
	for (int64_t ms = 1; ms < 5000; ms += 7) {
		int64_t ns;

		arl_k8s_format_timeout(ms, buf, sizeof(buf));
		assert_int_equal(arl_k8s_parse_go_duration(buf, &ns), 0);
		assert_true(ns >= ms * 1000000);
		assert_true(ns < (ms + 1000) * 1000000);
	}
}

static void test_parse_time(void **state)
{
	int64_t ms = 7;

	(void)state;
	assert_int_equal(arl_k8s_parse_time("2026-01-08T11:41:36Z", &ms), 0);
	assert_int_equal(ms, 1767872496000);
	assert_int_equal(arl_k8s_parse_time("2026-01-08T11:41:36.25Z", &ms), 0);
	assert_int_equal(ms, 1767872496250);
	assert_int_equal(arl_k8s_parse_time("2026-01-08T13:41:36+02:00", &ms), 0);
	assert_int_equal(ms, 1767872496000);
	assert_int_equal(arl_k8s_parse_time("1970-01-01T00:00:00Z", &ms), 0);
	assert_int_equal(ms, 0);
	ms = 7;
	assert_int_equal(arl_k8s_parse_time("2026-01-08", &ms), -1);
	assert_int_equal(arl_k8s_parse_time("2026-01-08T11:41:36", &ms), -1);
	assert_int_equal(arl_k8s_parse_time("2026-13-08T11:41:36Z", &ms), -1);
	assert_int_equal(arl_k8s_parse_time("2026-01-08T25:41:36Z", &ms), -1);
	assert_int_equal(arl_k8s_parse_time("2026-01-08T11:41:36Zjunk", &ms), -1);
	assert_int_equal(arl_k8s_parse_time("", &ms), -1);
	assert_int_equal(ms, 7);
}

static void test_label_value(void **state)
{
	char out[64], long_in[200];

	(void)state;
	arl_k8s_label_value("09-swebench/swe-demo__calc-101", out);
	assert_string_equal(out, "09-swebench.swe-demo__calc-101");
	assert_true(arl_k8s_is_label_value(out));
	arl_k8s_label_value("job name with spaces!", out);
	assert_string_equal(out, "job_name_with_spaces");
	arl_k8s_label_value("--x--", out);
	assert_string_equal(out, "x");
	arl_k8s_label_value("", out);
	assert_string_equal(out, "");
	arl_k8s_label_value("///", out);
	assert_true(arl_k8s_is_label_value(out));
	assert_true(strlen(out) > 0);
	/* Long values keep a head and a hash of the whole, so they stay distinct. */
	memset(long_in, 'a', sizeof(long_in) - 1);
	long_in[sizeof(long_in) - 1] = '\0';
	arl_k8s_label_value(long_in, out);
	assert_true(strlen(out) <= 63);
	assert_true(arl_k8s_is_label_value(out));
	{
		char other[64];

		long_in[150] = 'b';
		arl_k8s_label_value(long_in, other);
		assert_true(arl_k8s_is_label_value(other));
		assert_string_not_equal(out, other);
	}
	assert_false(arl_k8s_is_label_value("-a"));
	assert_false(arl_k8s_is_label_value("a b"));
	assert_true(arl_k8s_is_label_value("A.b_c-9"));
}

static void test_sandbox_name(void **state)
{
	char a[ARL_K8S_SANDBOX_NAME_MAX + 1], b[ARL_K8S_SANDBOX_NAME_MAX + 1], task[80];
	char rnd[7];

	(void)state;
	arl_k8s_sandbox_name(12, "01-basic/basic", 1, "x7k2qz", a);
	assert_true(arl_is_dns_label(a));
	assert_int_equal(strncmp(a, "arl-12-", 7), 0);
	assert_non_null(strstr(a, "-1-x7k2qz"));
	/* Deterministic in its inputs; each input changes it. */
	arl_k8s_sandbox_name(12, "01-basic/basic", 1, "x7k2qz", b);
	assert_string_equal(a, b);
	arl_k8s_sandbox_name(12, "01-basic/other", 1, "x7k2qz", b);
	assert_string_not_equal(a, b);
	arl_k8s_sandbox_name(12, "01-basic/basic", 2, "x7k2qz", b);
	assert_string_not_equal(a, b);
	/* The random part is cut to 6 of [a-z0-9], uppercase folded. */
	arl_k8s_sandbox_name(1, "k", 1, "AB_cd-ef!gh", b);
	assert_true(arl_is_dns_label(b));
	assert_non_null(strstr(b, "-abcdef"));
	/* The worst case stays within 52, so "<name>-<step>" Task names stay within 63. */
	arl_k8s_sandbox_name(INT64_MAX, "k", INT32_MAX, "zzzzzz", a);
	assert_true(strlen(a) <= ARL_K8S_SANDBOX_NAME_MAX);
	assert_true(arl_is_dns_label(a));
	snprintf(task, sizeof(task), "%s-%d", a, 999999);
	assert_true(arl_is_dns_label(task));
	/* Random suffixes are DNS-safe and differ. */
	arl_k8s_random_suffix(rnd, 6);
	assert_int_equal(strlen(rnd), 6);
	arl_k8s_sandbox_name(1, "k", 1, rnd, a);
	assert_true(arl_is_dns_label(a));
	{
		char r2[7];

		arl_k8s_random_suffix(r2, 6);
		assert_string_not_equal(rnd, r2);
	}
}

static void test_base64(void **state)
{
	size_t len = 0;
	char *s, *e;

	(void)state;
	s = arl_k8s_base64_decode("Q0EgUEVN", &len);
	assert_non_null(s);
	assert_int_equal(len, 6);
	assert_memory_equal(s, "CA PEM", 6);
	free(s);
	s = arl_k8s_base64_decode("S0VZ\nIFBF\r\nTQ==\n", &len);
	assert_non_null(s);
	assert_string_equal(s, "KEY PEM");
	free(s);
	s = arl_k8s_base64_decode("S0VZIFBFTQ", &len); /* padding optional */
	assert_non_null(s);
	assert_string_equal(s, "KEY PEM");
	free(s);
	assert_null(arl_k8s_base64_decode("not base64!", &len));
	assert_null(arl_k8s_base64_decode("QQ==QQ", &len));
	assert_null(arl_k8s_base64_decode("Q", &len));
	for (size_t n = 0; n < 40; n++) {
		char raw[40];

		for (size_t i = 0; i < n; i++)
			raw[i] = (char)(i * 37 + 11);
		e = arl_k8s_base64_encode(raw, n);
		s = arl_k8s_base64_decode(e, &len);
		assert_non_null(s);
		assert_int_equal(len, n);
		assert_memory_equal(s, raw, n);
		free(s);
		free(e);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_go_duration),  cmocka_unit_test(test_format_timeout),
	    cmocka_unit_test(test_parse_time),   cmocka_unit_test(test_label_value),
	    cmocka_unit_test(test_sandbox_name), cmocka_unit_test(test_base64),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
