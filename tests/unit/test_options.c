/*
 * Unit tests for cmd/options.c: the option table parser every command uses. Ranges,
 * durations, sizes, choices, repeatable options, missing and unknown options, `--`, and the
 * --help text generated from the table. Messages are caught with a log sink.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cmd/options.h"
#include "log.h"
#include "banned.h"

static char said[4096];

static void catch_log(void *arg, const char *text, size_t len)
{
	size_t have = strlen(said);

	(void)arg;
	if (have + len < sizeof(said)) {
		memcpy(said + have, text, len);
		said[have + len] = '\0';
	}
}

/* The values a test table fills. */
struct vals {
	int jobs;
	int64_t limit, deadline;
	size_t capture;
	const char *db;
	bool dry, yes;
	int backend;
	struct arl_opt_strings cmds;
	int shard;
};

static int parse_shard(const struct arl_option *o, const char *arg, struct arl_err *err)
{
	if (strcmp(arg, "1/2") && strcmp(arg, "2/2"))
		return arl_error(err, ARL_E_USAGE, "expected I/N with 1 <= I <= N");
	*(int *)o->value = arg[0] - '0';
	return 0;
}

static const struct arl_opt_choice backends[] = {{"local", 1}, {"kubernetes", 2}, {NULL, 0}};

/* Parses @words (NULL-terminated, after the command name) into @v; returns as the parser. */
static int parse(struct vals *v, const char *const *words, char ***operands, unsigned flags,
                 int *code)
{
	static char *argv[32];
	const struct arl_option opts[] = {
	    ARL_OPT_INT('j', "concurrency", &v->jobs, 1, 1024, "N", "jobs in flight"),
	    ARL_OPT_INT(0, "limit", &v->limit, 0, INT64_MAX, "N", "at most N"),
	    ARL_OPT_DURATION(0, "deadline", &v->deadline, 1, INT64_MAX, "DURATION", "limit"),
	    ARL_OPT_SIZE(0, "capture-max", &v->capture, 1024, (int64_t)1 << 30, "BYTES", "kept"),
	    ARL_OPT_STRING(0, "db", &v->db, "PATH", "results database"),
	    ARL_OPT_FLAG('n', "dry-run", &v->dry, "run nothing"),
	    ARL_OPT_FLAG('y', "yes", &v->yes, "delete"),
	    ARL_OPT_CHOICE(0, "backend", &v->backend, backends, "where to run\nevery pool"),
	    ARL_OPT_STRINGS('c', "command", &v->cmds, "ARG", "one word (repeatable)"),
	    ARL_OPT_CALLBACK(0, "shard", &v->shard, parse_shard, "I/N", "one shard"),
	    ARL_OPT_END(),
	};
	static const char *const synopsis[] = {"t [OPTIONS] FILE...", NULL};
	const struct arl_command_usage u = {"t", synopsis, NULL, opts, NULL, NULL};
	int argc = 0, n;

	argv[argc++] = (char *)"t";
	while (*words)
		argv[argc++] = (char *)*words++;
	argv[argc] = NULL;
	said[0] = '\0';
	*code = -1;
	n = arl_options_parse(&u, argc, argv, flags, code);
	*operands = argv;
	return n;
}

#define WORDS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Parses and expects a usage error whose first line is @msg. */
static void refused(const char *const *words, const char *msg)
{
	struct vals v = {0};
	char **ops;
	int code;

	assert_int_equal(parse(&v, words, &ops, 0, &code), -1);
	assert_int_equal(code, ARL_EXIT_USAGE);
	if (strncmp(said, msg, strlen(msg)) || said[strlen(msg)] != '\n')
		fail_msg("expected '%s', got '%s'", msg, said);
	/* Every error ends with the same hint. */
	assert_non_null(strstr(said, "\nusage: arl-batch t [OPTIONS] FILE...\n"
	                             "see 'arl-batch t --help'\n"));
	assert_null(v.cmds.v);
}

static void test_ranges(void **state)
{
	struct vals v = {0};
	char **ops;
	int code;

	(void)state;
	assert_int_equal(parse(&v, WORDS("-j", "4"), &ops, 0, &code), 0);
	assert_int_equal(v.jobs, 4);
	assert_int_equal(parse(&v, WORDS("-j1024", "--limit=0"), &ops, 0, &code), 0);
	assert_int_equal(v.jobs, 1024);
	assert_int_equal(v.limit, 0);
	refused(
	    WORDS("-j", "0"),
	    "arl-batch t: invalid value '0' for --concurrency: expected a number from 1 to 1024");
	refused(WORDS("--concurrency=1025"), "arl-batch t: invalid value '1025' for --concurrency: "
	                                     "expected a number from 1 to 1024");
	refused(
	    WORDS("--concurrency", "4x"),
	    "arl-batch t: invalid value '4x' for --concurrency: expected a number from 1 to 1024");
	refused(WORDS("--limit", "-1"),
	        "arl-batch t: invalid value '-1' for --limit: expected a number of at least 0");
}

static void test_durations(void **state)
{
	struct vals v = {0};
	char **ops;
	int code;

	(void)state;
	assert_int_equal(parse(&v, WORDS("--deadline", "1h30m"), &ops, 0, &code), 0);
	assert_int_equal(v.deadline, 5400000);
	assert_int_equal(parse(&v, WORDS("--deadline=90"), &ops, 0, &code), 0);
	assert_int_equal(v.deadline, 90000);
	refused(WORDS("--deadline", "0"), "arl-batch t: invalid value '0' for --deadline: expected "
	                                  "a duration of at least 1ms, such as 90s, 5m or 1h30m");
	refused(WORDS("--deadline", "soon"), "arl-batch t: invalid value 'soon' for --deadline: "
	                                     "expected a duration of at least 1ms, such as 90s, 5m "
	                                     "or 1h30m");
	/* Every duration stops at 100 years, so a clock plus one cannot overflow. */
	assert_int_equal(parse(&v, WORDS("--deadline", "876000h"), &ops, 0, &code), 0);
	assert_int_equal(v.deadline, ARL_OPT_DURATION_MAX);
	refused(WORDS("--deadline", "876000h1ms"),
	        "arl-batch t: invalid value '876000h1ms' for --deadline: expected a duration from "
	        "1ms to 876000h");
	refused(WORDS("--deadline", "9223372036854775"),
	        "arl-batch t: invalid value '9223372036854775' for --deadline: expected a duration "
	        "of at least 1ms, such as 90s, 5m or 1h30m");
}

static void test_sizes(void **state)
{
	struct vals v = {0};
	char **ops;
	int code;

	(void)state;
	assert_int_equal(parse(&v, WORDS("--capture-max", "1048576"), &ops, 0, &code), 0);
	assert_int_equal(v.capture, 1048576);
	assert_int_equal(parse(&v, WORDS("--capture-max=64Ki"), &ops, 0, &code), 0);
	assert_int_equal(v.capture, 65536);
	assert_int_equal(parse(&v, WORDS("--capture-max", "1Gi"), &ops, 0, &code), 0);
	assert_int_equal(v.capture, (size_t)1 << 30);
	static const char *const bad[] = {"12", "2Gi",           "1M",  "1.5Mi", "Mi",
	                                  "-1", "99999999999Gi", "1 Ki"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char msg[256];

		snprintf(msg, sizeof(msg),
		         "arl-batch t: invalid value '%s' for --capture-max: expected a byte count "
		         "from 1024 to 1073741824",
		         bad[i]);
		refused(WORDS("--capture-max", bad[i]), msg);
	}
}

static void test_choice_and_callback(void **state)
{
	struct vals v = {0};
	char **ops;
	int code;

	(void)state;
	assert_int_equal(parse(&v, WORDS("--backend", "kubernetes", "--shard=2/2"), &ops, 0, &code),
	                 0);
	assert_int_equal(v.backend, 2);
	assert_int_equal(v.shard, 2);
	refused(WORDS("--backend", "docker"),
	        "arl-batch t: invalid value 'docker' for --backend: expected local or kubernetes");
	refused(WORDS("--shard", "3/2"),
	        "arl-batch t: invalid value '3/2' for --shard: expected I/N with 1 <= I <= N");
}

static void test_repeatable(void **state)
{
	struct vals v = {0};
	char **ops;
	int code;

	(void)state;
	assert_int_equal(parse(&v, WORDS("--command", "a", "x", "--command=b", "-cc", "-c", "d"),
	                       &ops, 0, &code),
	                 1);
	assert_int_equal(v.cmds.n, 4);
	assert_string_equal(v.cmds.v[0], "a");
	assert_string_equal(v.cmds.v[1], "b");
	assert_string_equal(v.cmds.v[2], "c");
	assert_string_equal(v.cmds.v[3], "d");
	assert_null(v.cmds.v[4]);
	assert_string_equal(ops[0], "x");
	free(v.cmds.v);
	/* An error after some values frees them (refused() checks the list is empty). */
	refused(WORDS("--command", "a", "--nope"), "arl-batch t: unknown option '--nope'");
}

static void test_missing_and_unknown(void **state)
{
	(void)state;
	refused(WORDS("--db"), "arl-batch t: option '--db' needs a value");
	refused(WORDS("FILE", "-j"), "arl-batch t: option '-j' needs a value");
	refused(WORDS("--foo"), "arl-batch t: unknown option '--foo'");
	refused(WORDS("--foo=1"), "arl-batch t: unknown option '--foo'");
	/* No name is no option, not an abbreviation of them all. */
	refused(WORDS("--=1"), "arl-batch t: unknown option '--=1'");
	refused(WORDS("-x"), "arl-batch t: unknown option '-x'");
	refused(WORDS("-yx"), "arl-batch t: unknown option '-x'");
	refused(WORDS("--dry-run=1"), "arl-batch t: option '--dry-run' takes no value");
	/* --c could be --concurrency, --capture-max or --command. */
	refused(WORDS("--c", "1"), "arl-batch t: ambiguous option '--c'");
}

/* Names two options share (a backend's like the command's own) stop the command at once. */
static void test_clashing_names(void **state)
{
	static const char *const synopsis[] = {"t", NULL};
	bool a = false, b = false;
	const struct arl_option longs[] = {ARL_OPT_FLAG(0, "deadline", &a, "the command's"),
	                                   ARL_OPT_FLAG(0, "deadline", &b, "a backend's"),
	                                   ARL_OPT_END()};
	const struct arl_option shorts[] = {ARL_OPT_FLAG('n', "dry-run", &a, "the command's"),
	                                    ARL_OPT_FLAG('n', "namespace", &b, "a backend's"),
	                                    ARL_OPT_END()};
	const struct arl_option help[] = {ARL_OPT_FLAG(0, "help", &a, "a backend's"),
	                                  ARL_OPT_END()};
	const struct {
		const struct arl_option *opts;
		const char *said;
	} cases[] = {
	    {longs, "arl-batch t: option '--deadline' is defined twice\n"},
	    {shorts, "arl-batch t: option '--namespace' is defined twice\n"},
	    {help, "arl-batch t: option '--help' is defined twice\n"},
	};
	char *argv[] = {"t", "--dry-run", NULL};
	int code;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct arl_command_usage u = {
		    .name = "t", .synopsis = synopsis, .options = cases[i].opts};

		said[0] = '\0';
		code = -1;
		assert_int_equal(arl_options_parse(&u, 2, argv, 0, &code), -1);
		assert_int_equal(code, ARL_EXIT_INCOMPLETE);
		assert_string_equal(said, cases[i].said);
		assert_false(a || b);
	}
}

static void test_operands(void **state)
{
	struct vals v = {0};
	char **ops;
	int code;

	(void)state;
	/* Options anywhere, `--` ends them, "-" is an operand, a value may start with '-'. */
	assert_int_equal(parse(&v,
	                       WORDS("a.yaml", "--db", "-x.db", "-yn", "-", "--", "--dry", "-j"),
	                       &ops, 0, &code),
	                 4);
	assert_string_equal(v.db, "-x.db");
	assert_true(v.dry && v.yes);
	assert_string_equal(ops[0], "a.yaml");
	assert_string_equal(ops[1], "-");
	assert_string_equal(ops[2], "--dry");
	assert_string_equal(ops[3], "-j");
	/* A unique prefix is the option it abbreviates. */
	v.dry = false;
	assert_int_equal(parse(&v, WORDS("--dry", "--conc", "3"), &ops, 0, &code), 0);
	assert_true(v.dry);
	assert_int_equal(v.jobs, 3);
	/* A subcommand's name ends the options. */
	v = (struct vals){0};
	assert_int_equal(
	    parse(&v, WORDS("-y", "sub", "--foo", "-j"), &ops, ARL_OPTS_STOP_AT_OPERAND, &code), 3);
	assert_true(v.yes);
	assert_string_equal(ops[0], "sub");
	assert_string_equal(ops[1], "--foo");
}

static void test_help_text(void **state)
{
	static const char *const synopsis[] = {"t [OPTIONS] FILE...", "t other", NULL};
	int jobs = 0, backend = 0;
	bool dry = false;
	const struct arl_option opts[] = {
	    ARL_OPT_INT('j', "concurrency", &jobs, 1, 1024, "N", "jobs in flight"),
	    ARL_OPT_FLAG(0, "dry-run", &dry, "run nothing"),
	    ARL_OPT_CHOICE(0, "backend", &backend, backends, "where to run\nevery pool"),
	    ARL_OPT_END(),
	};
	const struct arl_command_usage u = {"t", synopsis, "About t.\n", opts, "Exit status: 0.\n",
	                                    NULL};
	char *text = NULL, *argv[] = {(char *)"t", (char *)"--concurrency", (char *)"--help", NULL};
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	int code = -1;

	(void)state;
	assert_non_null(f);
	arl_options_usage(&u, f);
	fclose(f);
	assert_string_equal(text, "usage: arl-batch t [OPTIONS] FILE...\n"
	                          "       arl-batch t other\n"
	                          "\n"
	                          "About t.\n"
	                          "\n"
	                          "  -j, --concurrency N     jobs in flight\n"
	                          "      --dry-run           run nothing\n"
	                          "      --backend local|kubernetes\n"
	                          "                          where to run\n"
	                          "                          every pool\n"
	                          "  -h, --help              show this help\n"
	                          "\n"
	                          "Exit status: 0.\n");
	free(text);
	/* --help as the value of an option is the value; only -h/--help themselves are help. */
	said[0] = '\0';
	assert_int_equal(arl_options_parse(&u, 3, argv, 0, &code), -1);
	assert_int_equal(code, ARL_EXIT_USAGE);
	assert_non_null(strstr(said, "invalid value '--help' for --concurrency"));
}

static int setup(void **state)
{
	(void)state;
	arl_log_set_sink(catch_log, NULL);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ranges),         cmocka_unit_test(test_durations),
	    cmocka_unit_test(test_sizes),          cmocka_unit_test(test_choice_and_callback),
	    cmocka_unit_test(test_repeatable),     cmocka_unit_test(test_missing_and_unknown),
	    cmocka_unit_test(test_operands),       cmocka_unit_test(test_help_text),
	    cmocka_unit_test(test_clashing_names),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
