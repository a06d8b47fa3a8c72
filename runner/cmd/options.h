/*
 * One command-line dialect for every command (git's parse-options): a command describes its
 * options in a table, and that table drives the parsing, the range checks, the messages and
 * the option list of --help.
 *
 * Parsing: options may come before, between and after operands; `--` ends them. A long option
 * takes its value as `--opt=value` or `--opt value` and may be abbreviated to a unique prefix;
 * short options as `-j4` or `-j 4`, flags bundled (`-yq`). -h and --help are added to every
 * table. Every mistake is reported in one form, on stderr, with exit code ARL_EXIT_USAGE:
 *
 *   arl-batch run: invalid value 'x' for --concurrency: expected a number from 1 to 100000
 *   usage: arl-batch run [OPTIONS] FILE...
 *   see 'arl-batch run --help'
 */
#ifndef ARL_OPTIONS_H
#define ARL_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"

enum arl_opt_type {
	ARL_OPT_END,      /* ends a table */
	ARL_OPT_FLAG,     /* no value: sets *value (bool or int) to @set */
	ARL_OPT_STRING,   /* const char **: the value, borrowed from argv; the last one wins */
	ARL_OPT_STRINGS,  /* struct arl_opt_strings *: every value, in order (repeatable) */
	ARL_OPT_INT,      /* int, int64_t or size_t: a whole number in [min, max] */
	ARL_OPT_DURATION, /* int64_t ms: "90s", "1h30m", bare seconds; in [min, max] */
	ARL_OPT_SIZE,   /* int64_t or size_t bytes: a number, or one with Ki, Mi, Gi; [min, max] */
	ARL_OPT_CHOICE, /* int: the value of the name given, one of @choices */
	ARL_OPT_CALLBACK, /* @cb parses the value into *value */
};

/* What *value of an option is: set by the ARL_OPT_* macros from the pointer's type. */
enum arl_opt_width { ARL_OPT_W_NONE, ARL_OPT_W_BOOL, ARL_OPT_W_INT, ARL_OPT_W_I64, ARL_OPT_W_SIZE };
#define ARL_OPT_WIDTH_(p)                                                                          \
	_Generic((p), bool *: ARL_OPT_W_BOOL, int *: ARL_OPT_W_INT, int64_t *: ARL_OPT_W_I64,      \
	         size_t *: ARL_OPT_W_SIZE)
/* A flag sets a bool or an int: any other pointer is a compile error. */
#define ARL_OPT_FLAG_WIDTH_(p) _Generic((p), bool * : ARL_OPT_W_BOOL, int * : ARL_OPT_W_INT)

/* @v itself, but a compile error unless it has type @T. */
#define ARL_OPT_PTR_(T, v) (1 ? (v) : (T)0)

struct arl_opt_choice {
	const char *name;
	int value;
};

/* The values of a repeatable option; @v ends with NULL and is freed by the caller (free()). */
struct arl_opt_strings {
	const char **v;
	size_t n;
};
/* Appends @s (borrowed) to @l. */
void arl_opt_strings_add(struct arl_opt_strings *l, const char *s);

struct arl_option;
/* Parses @arg into @opt->value; on a bad value returns -1 with why in @err (no prefix). */
typedef int arl_opt_cb(const struct arl_option *opt, const char *arg, struct arl_err *err);

struct arl_option {
	enum arl_opt_type type;
	int short_name;        /* 0: none */
	const char *long_name; /* NULL: none */
	void *value;
	const char *argh; /* the value's name in --help ("N", "PATH"); a choice lists its names */
	const char *help; /* may hold '\n': the next line is indented under the first */
	enum arl_opt_width width;
	int64_t min, max;                     /* INT, DURATION (ms), SIZE */
	int set;                              /* FLAG */
	const struct arl_opt_choice *choices; /* CHOICE: ends with {NULL, 0} */
	arl_opt_cb *cb;                       /* CALLBACK */
};

#define ARL_OPT_FLAG(s, l, v, h) ARL_OPT_SET(s, l, v, 1, h)
#define ARL_OPT_SET(s, l, v, val, h)                                                               \
	{                                                                                          \
		.type = ARL_OPT_FLAG, .short_name = (s), .long_name = (l), .value = (v),           \
		.width = ARL_OPT_FLAG_WIDTH_(v), .set = (val), .help = (h)                         \
	}
#define ARL_OPT_STRING(s, l, v, a, h)                                                              \
	{                                                                                          \
		.type = ARL_OPT_STRING, .short_name = (s), .long_name = (l),                       \
		.value = ARL_OPT_PTR_(const char **, v), .argh = (a), .help = (h)                  \
	}
#define ARL_OPT_STRINGS(s, l, v, a, h)                                                             \
	{                                                                                          \
		.type = ARL_OPT_STRINGS, .short_name = (s), .long_name = (l),                      \
		.value = ARL_OPT_PTR_(struct arl_opt_strings *, v), .argh = (a), .help = (h)       \
	}
#define ARL_OPT_INT(s, l, v, lo, hi, a, h)                                                         \
	{                                                                                          \
		.type = ARL_OPT_INT, .short_name = (s), .long_name = (l), .value = (v),            \
		.width = ARL_OPT_WIDTH_(v), .min = (lo), .max = (hi), .argh = (a), .help = (h)     \
	}
/*
 * The longest duration any option takes, whatever its table says: 100 years (876000h), so a
 * clock in ms plus or minus one never overflows. A table's max of INT64_MAX means no limit of
 * its own, and its message names none unless a value goes past this one.
 */
#define ARL_OPT_DURATION_MAX ((int64_t)876000 * 3600 * 1000)
#define ARL_OPT_DURATION(s, l, v, lo, hi, a, h)                                                    \
	{                                                                                          \
		.type = ARL_OPT_DURATION, .short_name = (s), .long_name = (l),                     \
		.value = ARL_OPT_PTR_(int64_t *, v), .width = ARL_OPT_W_I64, .min = (lo),          \
		.max = (hi), .argh = (a), .help = (h)                                              \
	}
#define ARL_OPT_SIZE(s, l, v, lo, hi, a, h)                                                        \
	{                                                                                          \
		.type = ARL_OPT_SIZE, .short_name = (s), .long_name = (l), .value = (v),           \
		.width = ARL_OPT_WIDTH_(v), .min = (lo), .max = (hi), .argh = (a), .help = (h)     \
	}
#define ARL_OPT_CHOICE(s, l, v, c, h)                                                              \
	{                                                                                          \
		.type = ARL_OPT_CHOICE, .short_name = (s), .long_name = (l),                       \
		.value = ARL_OPT_PTR_(int *, v), .choices = (c), .help = (h)                       \
	}
#define ARL_OPT_CALLBACK(s, l, v, fn, a, h)                                                        \
	{                                                                                          \
		.type = ARL_OPT_CALLBACK, .short_name = (s), .long_name = (l), .value = (v),       \
		.cb = (fn), .argh = (a), .help = (h)                                               \
	}
#define ARL_OPT_END()                                                                              \
	{                                                                                          \
		.type = ARL_OPT_END                                                                \
	}

/* A command as its messages and its --help show it. */
struct arl_command_usage {
	const char *name; /* "run": messages say "arl-batch run: "; NULL: none */
	/* After "usage: arl-batch ", one per line, NULL-terminated; " ..." continues a line. */
	const char *const *synopsis;
	const char *about;                /* between the synopsis and the options; may be NULL */
	const struct arl_option *options; /* ends with ARL_OPT_END() */
	const char *epilog;               /* after the options (exit status); may be NULL */
	void (*more)(FILE *out);          /* printed before @epilog (main's command list) */
};

enum {
	ARL_OPTS_STOP_AT_OPERAND = 1, /* the first operand ends the options (a subcommand's name) */
};

/*
 * Parses argv[1..argc-1] by @u's table and moves the operands, in order, to argv[0..n-1].
 * Returns n, or -1 when the command is done: then *code is 0 after --help (printed on
 * stdout) or ARL_EXIT_USAGE after a message on stderr, and every ARL_OPT_STRINGS list has
 * been freed and emptied.
 */
int arl_options_parse(const struct arl_command_usage *u, int argc, char **argv, unsigned flags,
                      int *code);

/* The whole --help text. */
void arl_options_usage(const struct arl_command_usage *u, FILE *out);

/*
 * A usage error found after parsing, in the same form as the parser's ("arl-batch CMD: MSG",
 * the synopsis, the pointer to --help) on stderr. Reads only @u's name and synopsis. Returns
 * ARL_EXIT_USAGE.
 */
int arl_options_error(const struct arl_command_usage *u, const char *fmt, ...) ARL_PRINTF(2, 3);

#endif
