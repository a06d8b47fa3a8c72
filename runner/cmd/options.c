#include "cmd/options.h"

#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"
#include "banned.h"

#define HELP_COL  26 /* where the help of an option starts in --help */
#define USAGE_COL 17 /* strlen("usage: arl-batch "): where a synopsis continues */

static const struct arl_option help_option =
    ARL_OPT_FLAG('h', "help", (bool *)NULL, "show this help");

void arl_opt_strings_add(struct arl_opt_strings *l, const char *s)
{
	l->v = arl_xrealloc(l->v, (l->n + 2) * sizeof(*l->v));
	l->v[l->n++] = s;
	l->v[l->n] = NULL;
}

static bool takes_value(const struct arl_option *o)
{
	return o->type != ARL_OPT_FLAG;
}

/* "--concurrency", else "-j": how messages name @o. */
static const char *opt_name(const struct arl_option *o, char *buf, size_t len)
{
	if (o->long_name)
		snprintf(buf, len, "--%s", o->long_name);
	else
		snprintf(buf, len, "-%c", o->short_name);
	return buf;
}

static void print_synopsis(const struct arl_command_usage *u, FILE *out)
{
	for (size_t i = 0; u->synopsis && u->synopsis[i]; i++) {
		const char *line = u->synopsis[i];

		if (line[0] == ' ') /* continues the line above */
			fprintf(out, "%*s%s\n", USAGE_COL, "", line);
		else
			fprintf(out, "%s arl-batch %s\n", i ? "      " : "usage:", line);
	}
}

static void vusage_error(const struct arl_command_usage *u, const char *fmt, va_list ap)
    ARL_PRINTF(2, 0);
static void vusage_error(const struct arl_command_usage *u, const char *fmt, va_list ap)
{
	struct arl_log_blob hint;
	FILE *out;

	arl_log_verror(u->name, fmt, ap);
	out = arl_log_begin(&hint);
	print_synopsis(u, out);
	fprintf(out, "see 'arl-batch%s%s --help'\n", u->name ? " " : "", u->name ? u->name : "");
	arl_log_end(&hint);
}

int arl_options_error(const struct arl_command_usage *u, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vusage_error(u, fmt, ap);
	va_end(ap);
	return ARL_EXIT_USAGE;
}

static void print_option(const struct arl_option *o, FILE *out)
{
	char left[256];
	size_t len;
	int col;

	len = (size_t)snprintf(left, sizeof(left), "  %c%c%s%s%s", o->short_name ? '-' : ' ',
	                       o->short_name ? o->short_name : ' ',
	                       o->short_name && o->long_name ? ", " : "  ",
	                       o->long_name ? "--" : "", o->long_name ? o->long_name : "");
	if (takes_value(o) && len < sizeof(left)) {
		len += (size_t)snprintf(left + len, sizeof(left) - len, " %s",
		                        o->argh                     ? o->argh
		                        : o->type == ARL_OPT_CHOICE ? ""
		                                                    : "VALUE");
		/* A choice's argument lists its names: "local|kubernetes". */
		for (size_t i = 0; !o->argh && o->type == ARL_OPT_CHOICE && o->choices[i].name &&
		                   len < sizeof(left);
		     i++)
			len += (size_t)snprintf(left + len, sizeof(left) - len, "%s%s",
			                        i ? "|" : "", o->choices[i].name);
	}
	fputs(left, out);
	col = (int)strlen(left);
	if (col >= HELP_COL - 1) {
		fputc('\n', out);
		col = 0;
	}
	for (const char *h = o->help ? o->help : ""; *h;) {
		size_t n = strcspn(h, "\n");

		fprintf(out, "%*s%.*s\n", HELP_COL - col, "", (int)n, h);
		col = 0;
		h += n + (h[n] == '\n');
	}
	if (!o->help || !*o->help)
		fputc('\n', out);
}

void arl_options_usage(const struct arl_command_usage *u, FILE *out)
{
	print_synopsis(u, out);
	if (u->about)
		fprintf(out, "\n%s", u->about);
	fputc('\n', out);
	for (const struct arl_option *o = u->options; o->type != ARL_OPT_END; o++)
		print_option(o, out);
	print_option(&help_option, out);
	if (u->more)
		u->more(out);
	if (u->epilog)
		fprintf(out, "\n%s", u->epilog);
}

/* "a number from 1 to 100000"; @what names the kind of number. */
static void describe_range(const struct arl_option *o, int64_t lo, int64_t hi, const char *what,
                           struct arl_err *why)
{
	char a[32], b[32];

	if (o->type == ARL_OPT_DURATION) {
		if (hi == INT64_MAX && lo <= 0)
			arl_error(why, ARL_E_USAGE, "expected a duration such as 90s, 5m or 1h30m");
		else if (hi == INT64_MAX)
			arl_error(why, ARL_E_USAGE,
			          "expected a duration of at least %s, such as 90s, 5m or 1h30m",
			          arl_fmt_duration(lo, a, sizeof(a)));
		else
			arl_error(why, ARL_E_USAGE, "expected a duration from %s to %s",
			          arl_fmt_duration(lo, a, sizeof(a)),
			          arl_fmt_duration(hi, b, sizeof(b)));
		return;
	}
	if (hi == INT64_MAX)
		arl_error(why, ARL_E_USAGE, "expected %s of at least %" PRId64, what, lo);
	else
		arl_error(why, ARL_E_USAGE, "expected %s from %" PRId64 " to %" PRId64, what, lo,
		          hi);
}

/* A whole number of bytes, or one with a binary suffix (Ki, Mi, Gi) as Kubernetes writes them. */
static int parse_size(const char *s, int64_t *out)
{
	static const struct {
		const char *suffix;
		int shift;
	} units[] = {{"Ki", 10}, {"Mi", 20}, {"Gi", 30}};
	size_t n = strspn(s, "0123456789");
	char digits[24];
	int64_t v;

	if (!n || n >= sizeof(digits))
		return -1;
	memcpy(digits, s, n);
	digits[n] = '\0';
	if (arl_parse_i64(digits, 0, INT64_MAX, &v) < 0)
		return -1;
	if (!s[n]) {
		*out = v;
		return 0;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(s + n, units[i].suffix))
			continue;
		if (v > INT64_MAX >> units[i].shift)
			return -1;
		*out = v << units[i].shift;
		return 0;
	}
	return -1;
}

static void store_number(const struct arl_option *o, int64_t v)
{
	switch (o->width) {
	case ARL_OPT_W_INT:
		*(int *)o->value = (int)v;
		break;
	case ARL_OPT_W_SIZE:
		*(size_t *)o->value = (size_t)v;
		break;
	default:
		*(int64_t *)o->value = v;
		break;
	}
}

/* Checks @arg and stores it in @o's value; on a bad value says why in @why. */
static int apply(const struct arl_option *o, const char *arg, struct arl_err *why)
{
	int64_t v = 0, lo = o->min, hi = o->max;

	/* The bounds a value must have to fit where it goes. */
	if (o->width == ARL_OPT_W_INT) {
		lo = lo < INT_MIN ? INT_MIN : lo;
		hi = hi > INT_MAX ? INT_MAX : hi;
	} else if (o->width == ARL_OPT_W_SIZE && lo < 0) {
		lo = 0;
	}
	if (o->type == ARL_OPT_DURATION && hi > ARL_OPT_DURATION_MAX)
		hi = ARL_OPT_DURATION_MAX;
	switch (o->type) {
	case ARL_OPT_FLAG:
		if (o->width == ARL_OPT_W_BOOL)
			*(bool *)o->value = o->set;
		else
			*(int *)o->value = o->set;
		return 0;
	case ARL_OPT_STRING:
		*(const char **)o->value = arg;
		return 0;
	case ARL_OPT_STRINGS:
		arl_opt_strings_add(o->value, arg);
		return 0;
	case ARL_OPT_INT:
		if (arl_parse_i64(arg, lo, hi, &v) < 0) {
			describe_range(o, lo, hi, "a number", why);
			return -1;
		}
		store_number(o, v);
		return 0;
	case ARL_OPT_DURATION: {
		bool read = arl_parse_duration(arg, &v) == 0;

		if (read && v >= lo && v <= hi) {
			store_number(o, v);
			return 0;
		}
		/* An option without a limit of its own names the cap only to a value past it. */
		describe_range(o, lo,
		               (read && v > hi) || o->max < ARL_OPT_DURATION_MAX ? hi : INT64_MAX,
		               "a duration", why);
		return -1;
	}
	case ARL_OPT_SIZE:
		if (parse_size(arg, &v) < 0 || v < lo || v > hi) {
			describe_range(o, lo, hi, "a byte count", why);
			return -1;
		}
		store_number(o, v);
		return 0;
	case ARL_OPT_CHOICE: {
		char names[256] = "";
		size_t n = 0, len = 0;

		for (size_t i = 0; o->choices[i].name; i++, n++) {
			if (!strcmp(arg, o->choices[i].name)) {
				*(int *)o->value = o->choices[i].value;
				return 0;
			}
		}
		for (size_t i = 0; i < n && len < sizeof(names); i++)
			len += (size_t)snprintf(names + len, sizeof(names) - len, "%s%s",
			                        i == 0       ? ""
			                        : i + 1 == n ? " or "
			                                     : ", ",
			                        o->choices[i].name);
		return arl_error(why, ARL_E_USAGE, "expected %s", names);
	}
	case ARL_OPT_CALLBACK:
		return o->cb(o, arg, why) < 0 ? -1 : 0;
	case ARL_OPT_END:
		break;
	}
	return -1;
}

/* The option named by "--@name" (@len bytes): an exact match, else the one it abbreviates. */
static const struct arl_option *find_long(const struct arl_command_usage *u, const char *name,
                                          size_t len, bool *ambiguous)
{
	const struct arl_option *found = NULL;
	size_t nfound = 0;

	*ambiguous = false;
	if (len == 0) /* "--=x": no name, which every name would extend */
		return NULL;
	for (const struct arl_option *o = u->options;; o++) {
		if (o->type == ARL_OPT_END)
			o = &help_option;
		if (o->long_name && !strncmp(o->long_name, name, len)) {
			if (!o->long_name[len])
				return o;
			found = o;
			nfound++;
		}
		if (o == &help_option)
			break;
	}
	*ambiguous = nfound > 1;
	return nfound == 1 ? found : NULL;
}

static const struct arl_option *find_short(const struct arl_command_usage *u, int c)
{
	for (const struct arl_option *o = u->options; o->type != ARL_OPT_END; o++)
		if (o->short_name == c)
			return o;
	return c == 'h' ? &help_option : NULL;
}

static void release_lists(const struct arl_command_usage *u)
{
	for (const struct arl_option *o = u->options; o->type != ARL_OPT_END; o++) {
		if (o->type == ARL_OPT_STRINGS) {
			struct arl_opt_strings *l = o->value;

			free(l->v);
			l->v = NULL;
			l->n = 0;
		}
	}
}

/*
 * One option with its value (@arg, NULL for a flag). Returns 1 when it was --help, 0 when
 * applied, -1 after the message.
 */
static int take(const struct arl_command_usage *u, const struct arl_option *o, const char *arg)
{
	struct arl_err why = ARL_ERR_INIT;
	char name[80];

	if (o == &help_option)
		return 1;
	if (apply(o, arg, &why) == 0)
		return 0;
	arl_options_error(u, "invalid value '%s' for %s: %s", arg, opt_name(o, name, sizeof(name)),
	                  why.msg);
	return -1;
}

/* "--name[=value]" at argv[*i]; may consume argv[*i + 1]. Returns as take(). */
static int parse_long(const struct arl_command_usage *u, int argc, char **argv, int *i)
{
	const char *word = argv[*i] + 2, *eq = strchr(word, '=');
	size_t len = eq ? (size_t)(eq - word) : strlen(word);
	const struct arl_option *o;
	bool ambiguous;

	o = find_long(u, word, len, &ambiguous);
	if (!o) {
		/* Without a name, the whole word says what was given. */
		arl_options_error(u, "%s option '--%.*s'", ambiguous ? "ambiguous" : "unknown",
		                  (int)(len ? len : strlen(word)), word);
		return -1;
	}
	if (!takes_value(o)) {
		if (eq) {
			arl_options_error(u, "option '--%s' takes no value", o->long_name);
			return -1;
		}
		return take(u, o, NULL);
	}
	if (eq)
		return take(u, o, eq + 1);
	if (*i + 1 >= argc) {
		arl_options_error(u, "option '--%s' needs a value", o->long_name);
		return -1;
	}
	return take(u, o, argv[++*i]);
}

/* "-abc" or "-j4" at argv[*i]; may consume argv[*i + 1]. Returns as take(). */
static int parse_short(const struct arl_command_usage *u, int argc, char **argv, int *i)
{
	for (const char *p = argv[*i] + 1; *p; p++) {
		const struct arl_option *o = find_short(u, (unsigned char)*p);
		int rc;

		if (!o) {
			arl_options_error(u, "unknown option '-%c'", *p);
			return -1;
		}
		if (!takes_value(o)) {
			if ((rc = take(u, o, NULL)) != 0)
				return rc;
			continue;
		}
		if (p[1])
			return take(u, o, p + 1);
		if (*i + 1 >= argc) {
			arl_options_error(u, "option '-%c' needs a value", *p);
			return -1;
		}
		return take(u, o, argv[++*i]);
	}
	return 0;
}

/*
 * Whether @a and @b share a name, which only one of them would ever get: a backend's option
 * (merged into run's and gc's tables from the registry) named like the command's own.
 */
static bool same_name(const struct arl_option *a, const struct arl_option *b)
{
	return (a->long_name && b->long_name && !strcmp(a->long_name, b->long_name)) ||
	       (a->short_name && a->short_name == b->short_name);
}

static const struct arl_option *name_clash(const struct arl_command_usage *u)
{
	for (const struct arl_option *o = u->options; o->type != ARL_OPT_END; o++) {
		if (same_name(o, &help_option))
			return o;
		for (const struct arl_option *p = u->options; p != o; p++)
			if (same_name(o, p))
				return o;
	}
	return NULL;
}

int arl_options_parse(const struct arl_command_usage *u, int argc, char **argv, unsigned flags,
                      int *code)
{
	const struct arl_option *clash = name_clash(u);
	bool operands_only = false;
	int n = 0, rc;

	if (clash) { /* a build whose backends' options clash with the command's */
		if (clash->long_name)
			arl_log_cmd_error(u->name, "option '--%s' is defined twice",
			                  clash->long_name);
		else
			arl_log_cmd_error(u->name, "option '-%c' is defined twice",
			                  clash->short_name);
		*code = ARL_EXIT_INCOMPLETE;
		return -1;
	}

	/* Operands move down: n <= i, so a word is read before its slot is reused. */
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (operands_only || a[0] != '-' || !a[1]) {
			argv[n++] = argv[i];
			operands_only = operands_only || (flags & ARL_OPTS_STOP_AT_OPERAND);
			continue;
		}
		if (!strcmp(a, "--")) {
			operands_only = true;
			continue;
		}
		rc = a[1] == '-' ? parse_long(u, argc, argv, &i) : parse_short(u, argc, argv, &i);
		if (rc == 0)
			continue;
		release_lists(u);
		if (rc > 0)
			arl_options_usage(u, stdout);
		*code = rc > 0 ? ARL_EXIT_OK : ARL_EXIT_USAGE;
		return -1;
	}
	return n;
}
