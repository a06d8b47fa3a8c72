/*
 * HTML output helpers (html.c): escaping of text and attributes, C0 controls, numbers, and
 * a chart whose every label and series name is escaped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "view/html.h"
#include "util.h"
#include "banned.h"

/* What @fn writes, as a string (the caller frees it). */
static char *capture_esc(const char *s, size_t len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);

	assert_non_null(f);
	arl_html_escn(f, s, len);
	fclose(f);
	return buf;
}

static void test_escape(void **state)
{
	static const char in[] = "<script>alert('x') & \"y\"</script>\tok\nnext";
	char *out = capture_esc(in, strlen(in));

	(void)state;
	assert_string_equal(out,
	                    "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
	                    "\tok\nnext");
	free(out);
}

static void test_controls_and_nul(void **state)
{
	static const char in[] = {'a', '\0', 'b', '\033', '[', '3', '1', 'm', 0x7f, 'c'};
	char *out = capture_esc(in, sizeof(in));

	(void)state;
	/* NUL, ESC and DEL become U+FFFD; UTF-8 passes through. */
	assert_string_equal(out, "a\xEF\xBF\xBD"
	                         "b\xEF\xBF\xBD[31m\xEF\xBF\xBD"
	                         "c");
	free(out);
	out = capture_esc("\xc3\xa9t\xc3\xa9", 5);
	assert_string_equal(out, "\xc3\xa9t\xc3\xa9");
	free(out);
}

static void test_numbers(void **state)
{
	char b[32];

	(void)state;
	assert_string_equal(arl_html_num(42, b, sizeof(b)), "42");
	assert_string_equal(arl_html_num(-3, b, sizeof(b)), "-3");
	assert_string_equal(arl_html_num(0.83125, b, sizeof(b)), "0.8313");
	assert_string_equal(arl_html_num(1.5e20, b, sizeof(b)), "1.5e+20");
}

static void test_chart_escapes_labels(void **state)
{
	static const char *const labels[] = {"<a>", "b&c"};
	static const char *const series[] = {"\"s\"", "t"};
	static const uint64_t counts[] = {1, 2, 3, 0};
	struct arl_html_chart c = {.title = "t<i>tle",
	                           .nbins = 2,
	                           .nseries = 2,
	                           .bin_labels = labels,
	                           .series = series,
	                           .counts = counts,
	                           .unit = "jobs"};
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);

	(void)state;
	arl_html_chart(f, &c);
	fclose(f);
	assert_null(strstr(buf, "<a>"));
	assert_null(strstr(buf, "<i>"));
	assert_non_null(strstr(buf, "&lt;a&gt;: 1 jobs (&quot;s&quot;)"));
	assert_non_null(strstr(buf, "b&amp;c: 2 jobs (&quot;s&quot;)"));
	assert_non_null(strstr(buf, "&lt;a&gt;: 3 jobs (t)"));
	/* 3 non-empty segments, a legend with both series. */
	{
		size_t rects = 0;

		for (const char *p = buf; (p = strstr(p, "<rect ")); p++)
			rects++;
		assert_int_equal(rects, 3);
	}
	assert_non_null(strstr(buf, "class=\"legend\""));
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_escape),
	    cmocka_unit_test(test_controls_and_nul),
	    cmocka_unit_test(test_numbers),
	    cmocka_unit_test(test_chart_escapes_labels),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
