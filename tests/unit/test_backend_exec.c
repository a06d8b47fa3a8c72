/*
 * The backend forwarders (backend.h): a backend reports a step's class and its own output; the
 * step's state, name, type, times and empty outputs are filled once, by arl_backend_exec().
 * And the one head-and-tail clipping of an output (result.h) that backends share.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend/backend.h"
#include "util.h"

/* A backend that does only what the ops contract asks; argv[0] says what happens. */
static int fake_exec(void *state, struct arl_sandbox *sb, const struct arl_step *step,
                     const struct arl_exec_ctx *ctx, struct arl_step_result *res,
                     enum arl_class *cls, struct arl_err *err)
{
	const char *what = step->argv[0];

	(void)state, (void)sb, (void)ctx;
	if (!strcmp(what, "ok")) {
		res->has_exit = true;
		res->out.data = arl_xstrdup("hello\n");
		res->out.len = 6;
	} else if (!strcmp(what, "fail")) {
		res->has_exit = true;
		res->exit_code = 3;
		*cls = ARL_CLASS_FAILED;
	} else if (!strcmp(what, "timeout")) {
		*cls = ARL_CLASS_TIMEOUT;
	} else if (!strcmp(what, "cancel")) {
		*cls = ARL_CLASS_CANCELLED;
	} else if (!strcmp(what, "infra")) {
		return arl_error(err, ARL_E_BACKEND, "the platform failed");
	} else if (!strcmp(what, "dated")) {
		/* A backend that knows when the step really ended (a Task's duration). */
		res->has_exit = true;
		res->finished_ms = 42;
	}
	return 0;
}

static const struct arl_backend_ops fake = {.exec = fake_exec};

static void run(const char *what, struct arl_step_result *res, enum arl_class *cls, int *rc,
                struct arl_err *err)
{
	char *argv[] = {(char *)what, NULL};
	struct arl_step step = {.name = "s", .type = ARL_STEP_COMMAND, .argv = argv, .argc = 1};
	struct arl_exec_ctx ctx = {.deadline_ms = 0};
	int64_t before = arl_wall_ms();

	memset(res, 0, sizeof(*res));
	*cls = ARL_CLASS_INFRA; /* the forwarder starts from NONE, not from the caller's */
	*rc = arl_backend_exec(&fake, NULL, NULL, &step, &ctx, res, cls, err);
	assert_string_equal(res->name, "s");
	assert_string_equal(res->type, "Command");
	assert_true(res->started_ms >= before);
	assert_non_null(res->out.data);
	assert_non_null(res->err.data);
}

static void test_state_follows_class(void **state)
{
	static const struct {
		const char *what;
		enum arl_class cls;
		enum arl_state st;
	} cases[] = {
	    {"ok", ARL_CLASS_NONE, ARL_STATE_SUCCEEDED},
	    {"fail", ARL_CLASS_FAILED, ARL_STATE_FAILED},
	    {"timeout", ARL_CLASS_TIMEOUT, ARL_STATE_FAILED},
	    {"cancel", ARL_CLASS_CANCELLED, ARL_STATE_FAILED},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct arl_step_result res;
		struct arl_err err = ARL_ERR_INIT;
		enum arl_class cls;
		int rc;

		run(cases[i].what, &res, &cls, &rc, &err);
		assert_int_equal(rc, 0);
		assert_int_equal(cls, cases[i].cls);
		assert_int_equal(res.state, cases[i].st);
		assert_true(res.finished_ms >= res.started_ms);
		arl_step_result_release(&res);
	}
}

static void test_infra(void **state)
{
	struct arl_step_result res;
	struct arl_err err = ARL_ERR_INIT;
	enum arl_class cls;
	int rc;

	(void)state;
	run("infra", &res, &cls, &rc, &err);
	assert_int_equal(rc, -1);
	assert_int_equal(cls, ARL_CLASS_INFRA);
	assert_int_equal(res.state, ARL_STATE_FAILED);
	assert_string_equal(err.msg, "the platform failed");
	assert_int_equal(res.out.len, 0);
	assert_string_equal(res.err.data, "");
	arl_step_result_release(&res);
}

static void test_backend_times_kept(void **state)
{
	struct arl_step_result res;
	struct arl_err err = ARL_ERR_INIT;
	enum arl_class cls;
	int rc;

	(void)state;
	run("dated", &res, &cls, &rc, &err);
	assert_int_equal(res.finished_ms, 42);
	assert_int_equal(res.state, ARL_STATE_SUCCEEDED);
	arl_step_result_release(&res);
	run("ok", &res, &cls, &rc, &err);
	assert_string_equal(res.out.data, "hello\n");
	assert_string_equal(res.err.data, "");
	arl_step_result_release(&res);
}

/* A backend that gets a step's whole output keeps what spawn.c keeps of a local one. */
static void test_output_clipped(void **state)
{
	struct arl_output o = {0};

	(void)state;
	arl_output_take(&o, arl_xstrdup("0123456789"), 0);
	assert_string_equal(o.data, "0123456789");
	assert_false(o.truncated);
	arl_output_take(&o, arl_xstrdup("0123456789"), 10);
	assert_int_equal(o.len, 10);
	assert_false(o.truncated);
	arl_output_take(&o, arl_xstrdup("0123456789"), 5);
	assert_string_equal(o.data, "01\n[... 6 bytes truncated ...]\n89");
	assert_int_equal(o.len, strlen(o.data));
	assert_true(o.truncated);
	arl_output_release(&o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_state_follows_class),
	    cmocka_unit_test(test_infra),
	    cmocka_unit_test(test_backend_times_kept),
	    cmocka_unit_test(test_output_clipped),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
