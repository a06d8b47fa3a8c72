/* util.c's times as text: arl_rfc3339 at, before and far from the epoch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util.h"
#include "banned.h"

static void test_rfc3339(void **state)
{
	static const struct {
		int64_t ms;
		const char *text;
	} cases[] = {
	    {0, "1970-01-01T00:00:00.000Z"},
	    {INT64_C(1767323045678), "2026-01-02T03:04:05.678Z"},
	    /* Before 1970 the milliseconds count forward from the second below. */
	    {-1, "1969-12-31T23:59:59.999Z"},
	    {-1500, "1969-12-31T23:59:58.500Z"},
	    {INT64_C(253402300799999), "9999-12-31T23:59:59.999Z"},
	    {INT64_C(-62167219200000), "0000-01-01T00:00:00.000Z"},
	    /* Outside years 0-9999, the ends of that range: text that still sorts as time. */
	    {INT64_C(253402300800000), "9999-12-31T23:59:59.999Z"},
	    {INT64_C(-62167219200001), "0000-01-01T00:00:00.000Z"},
	    {INT64_C(-3600000) * 100000000, "0000-01-01T00:00:00.000Z"},
	    {INT64_MIN, "0000-01-01T00:00:00.000Z"},
	    {INT64_MAX, "9999-12-31T23:59:59.999Z"},
	};
	char buf[32];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(buf, 'x', sizeof(buf));
		arl_rfc3339(cases[i].ms, buf);
		if (strcmp(buf, cases[i].text))
			fail_msg("%lld ms: expected %s, got %.32s", (long long)cases[i].ms,
			         cases[i].text, buf);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc3339),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
