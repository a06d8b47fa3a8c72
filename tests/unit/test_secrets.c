/* run/secrets.c: loading secrets from the environment and masking their values in output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "jobfile/job.h"
#include "result.h"
#include "run/secrets.h"
#include "util.h"
#include "banned.h"

static char *names[] = {"T_SECRET_A", "T_SECRET_B"};

static void load(struct arl_secrets *s, const char *a, const char *b, int want)
{
	struct arl_jobfile f = {.path = "f.yaml", .secrets = names, .nsecrets = 2};
	struct arl_jobfile *files[] = {&f};
	struct arl_err err = ARL_ERR_INIT;

	if (a)
		setenv("T_SECRET_A", a, 1);
	else
		unsetenv("T_SECRET_A");
	setenv("T_SECRET_B", b, 1);
	assert_int_equal(arl_secrets_load(s, files, 1, &err), want);
	if (want < 0) {
		/* The message names the variable, never a value. */
		assert_non_null(strstr(err.msg, a ? "T_SECRET_" : "'T_SECRET_A' is not set"));
		assert_null(strstr(err.msg, b));
		arl_secrets_release(s);
	}
}

static char *masked(const struct arl_secrets *s, const char *text)
{
	char *p = arl_xstrdup(text);

	arl_secrets_mask_str(s, &p);
	return p;
}

static void test_load_errors(void **state)
{
	struct arl_secrets s;

	(void)state;
	load(&s, NULL, "value-b", -1);
	load(&s, "abc", "value-b", -1);
	load(&s, "long-enough", "value-b", 0);
	assert_string_equal(arl_strmap_get(&s.env, "T_SECRET_A"), "long-enough");
	arl_secrets_release(&s);
}

static void test_mask(void **state)
{
	struct arl_secrets s;
	char *p;

	(void)state;
	/* B contains A: the longer is masked whole. */
	load(&s, "sk-123", "xx-sk-123-yy\nline-two", 0);
	p = masked(&s, "a sk-123 b xx-sk-123-yy\nline-two c sk-12 line-two");
	assert_string_equal(p, "a *** b *** c sk-12 ***");
	free(p);
	p = masked(&s, "sk-123sk-123");
	assert_string_equal(p, "******");
	free(p);
	p = masked(&s, "nothing here");
	assert_string_equal(p, "nothing here");
	free(p);
	arl_secrets_release(&s);
}

static void test_mask_output(void **state)
{
	struct arl_secrets s;
	struct arl_output o = {0};
	char raw[64];

	(void)state;
	load(&s, "SECRETVALUE", "other-one", 0);
	/* A value across a NUL, and one cut by the elision of a 16-byte capture. */
	memcpy(raw, "xxSECRETVALUExx\0SECRETVALUE", 28);
	o.data = arl_xmalloc(28);
	memcpy(o.data, raw, 28);
	o.len = 27;
	arl_secrets_mask_output(&s, &o);
	assert_int_equal(o.len, 11);
	assert_memory_equal(o.data, "xx***xx\0***", 11);
	arl_output_release(&o);
	arl_output_take(&o, arl_xstrdup("abcdefSECRETVALUE and more text, long enough, VALUEend"),
	                16);
	assert_true(o.truncated);
	arl_secrets_mask_output(&s, &o);
	assert_non_null(strstr(o.data, "abcdef**\n[... "));
	assert_non_null(strstr(o.data, "truncated ...]\n*****end"));
	arl_output_release(&o);
	arl_secrets_release(&s);
}

static void test_apply(void **state)
{
	struct arl_secrets s;
	struct arl_jobfile f = {.secrets = names, .nsecrets = 1};
	struct arl_step step = {0};

	(void)state;
	load(&s, "value-a!", "value-b", 0);
	arl_strmap_set(&step.env, "T_SECRET_A", "from the job file");
	arl_secrets_apply(&s, &f, &step);
	assert_string_equal(arl_strmap_get(&step.env, "T_SECRET_A"), "value-a!");
	assert_null(arl_strmap_get(&step.env, "T_SECRET_B")); /* not this file's */
	arl_step_release(&step);
	arl_secrets_release(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_load_errors),
	    cmocka_unit_test(test_mask),
	    cmocka_unit_test(test_mask_output),
	    cmocka_unit_test(test_apply),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
