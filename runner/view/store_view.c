#include "view/store_view.h"

#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "util.h"
#include "banned.h"

static char *clean_cell(const char *s)
{
	size_t cap = s ? 4 * strlen(s) + 1 : 2;
	char *c = arl_xmalloc(cap);

	/* Other controls visibly (arl_term_escape); a newline inside a cell would break the
	 * table and a tab the alignment: spaces. */
	arl_term_escape(c, cap, s ? s : "-", true);
	for (char *p = c; *p; p++)
		if (*p == '\n' || *p == '\t')
			*p = ' ';
	return c;
}

void arl_view_table_add(struct arl_view_table *t, const char *const *cells,
                        const char *const *colors)
{
	size_t cap = t->cap; /* both arrays grow in step: one capacity serves them */

	ARL_GROW(t->cells, t->cap, (t->nrows + 1) * t->ncols);
	ARL_GROW(t->colors, cap, (t->nrows + 1) * t->ncols);
	for (size_t i = 0; i < t->ncols; i++) {
		t->cells[t->nrows * t->ncols + i] = clean_cell(cells[i]);
		t->colors[t->nrows * t->ncols + i] = colors ? colors[i] : NULL;
	}
	t->nrows++;
}

static void put_cell(FILE *out, const char *s, size_t w, bool right, bool pad, const char *color)
{
	size_t sw = arl_utf8_cols(s), n = sw;

	if (sw > w) {
		/* Keep w-1 columns and mark the cut with an ellipsis. */
		n = w ? w - 1 : 0;
		sw = w;
	}
	if (right)
		fprintf(out, "%*s", (int)(w - sw), "");
	if (color)
		fputs(color, out);
	if (n < arl_utf8_cols(s)) {
		fwrite(s, 1, arl_utf8_prefix(s, n), out);
		if (w)
			fputs("\u2026", out);
	} else {
		fputs(s, out);
	}
	if (color)
		fputs(ARL_VIEW_RESET, out);
	if (!right && pad)
		fprintf(out, "%*s", (int)(w - sw), "");
}

void arl_view_table_print(const struct arl_view_table *t, FILE *out, unsigned width, bool color)
{
	size_t *w = arl_xcalloc(t->ncols, sizeof(*w)), total = 0;

	for (size_t c = 0; c < t->ncols; c++) {
		w[c] = arl_utf8_cols(t->cols[c].title);
		for (size_t r = 0; r < t->nrows; r++) {
			size_t cw = arl_utf8_cols(t->cells[r * t->ncols + c]);

			if (cw > w[c])
				w[c] = cw;
		}
		total += w[c] + (c ? 2 : 0);
	}
	/* Take one column at a time from the widest cuttable column: long names and errors
	 * give way together instead of one of them vanishing. */
	while (width && total > width) {
		size_t best = t->ncols;

		for (size_t c = 0; c < t->ncols; c++)
			if (t->cols[c].shrink && w[c] > arl_utf8_cols(t->cols[c].title) &&
			    w[c] > 4 && (best == t->ncols || w[c] > w[best]))
				best = c;
		if (best == t->ncols)
			break;
		w[best]--;
		total--;
	}
	for (size_t c = 0; c < t->ncols; c++) {
		if (c)
			fputs("  ", out);
		put_cell(out, t->cols[c].title, w[c], t->cols[c].right, c + 1 < t->ncols,
		         color ? ARL_VIEW_BOLD : NULL);
	}
	fputc('\n', out);
	for (size_t r = 0; r < t->nrows; r++) {
		char **row = &t->cells[r * t->ncols];
		size_t end = t->ncols;

		/* Empty cells at the end of a row would only print trailing blanks. */
		while (end > 1 && !row[end - 1][0])
			end--;
		for (size_t c = 0; c < end; c++) {
			if (c)
				fputs("  ", out);
			put_cell(out, row[c], w[c], t->cols[c].right, c + 1 < end,
			         color ? t->colors[r * t->ncols + c] : NULL);
		}
		fputc('\n', out);
	}
	free(w);
}

void arl_view_table_release(struct arl_view_table *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t->colors);
	t->cells = NULL;
	t->colors = NULL;
	t->nrows = t->cap = 0;
}

/* Not a tty: no limit, so a pipe or a file gets whole names and messages. */
unsigned arl_view_width(int fd)
{
	struct winsize ws;
	const char *cols = getenv("COLUMNS");
	int64_t n;

	if (!isatty(fd))
		return 0;
	if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	if (cols && arl_parse_i64(cols, 20, 10000, &n) == 0)
		return (unsigned)n;
	return 80;
}

/* CRLF as RFC 4180 says; spreadsheet tools and Python's csv module read it, and so does
 * anything that reads LF. */
/* A number as a spreadsheet reads it ("-3", "+1.5e-3"): no formula, so left as it is. */
static bool plain_number(const char *s, size_t len)
{
	size_t i = s[0] == '-' || s[0] == '+', digits = 0;

	for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
		digits++;
	if (i < len && s[i] == '.')
		for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++)
			digits++;
	if (digits && i < len && (s[i] == 'e' || s[i] == 'E')) {
		size_t e = 0;

		i += i + 1 < len && (s[i + 1] == '-' || s[i + 1] == '+') ? 2 : 1;
		for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
			e++;
		if (!e)
			return false;
	}
	return digits && i == len;
}

void arl_view_csv(FILE *out, const char *s, size_t len, bool last)
{
	/*
	 * A spreadsheet runs a cell starting with = + - @ tab or CR as a formula (step output and
	 * metric names are the step's to choose): a leading ' makes it text, as OWASP advises.
	 */
	bool formula = s && len && s[0] && strchr("=+-@\t\r", s[0]) && !plain_number(s, len);

	/* RFC 4180: quote a field holding a comma, a quote or a line break; double quotes. */
	if (formula || (s && len && strcspn(s, ",\"\r\n") < len)) {
		fputc('"', out);
		if (formula)
			fputc('\'', out);
		for (size_t i = 0; i < len; i++) {
			if (s[i] == '"')
				fputc('"', out);
			fputc(s[i], out);
		}
		fputc('"', out);
	} else if (s) {
		fwrite(s, 1, len, out);
	}
	fputs(last ? "\r\n" : ",", out);
}

const char *arl_view_go_duration(int64_t ms, char *buf, size_t len)
{
	int64_t h, m, s, frac;
	char sec[32];

	if (ms < 0)
		ms = 0;
	if (ms == 0) {
		snprintf(buf, len, "0s");
		return buf;
	}
	if (ms < 1000) {
		snprintf(buf, len, "%lldms", (long long)ms);
		return buf;
	}
	h = ms / 3600000;
	m = ms / 60000 % 60;
	s = ms / 1000 % 60;
	frac = ms % 1000;
	if (frac) {
		/* Go prints the fraction without trailing zeros: 1.5s, not 1.500s. */
		int digits = 3;

		while (frac % 10 == 0) {
			frac /= 10;
			digits--;
		}
		snprintf(sec, sizeof(sec), "%lld.%0*lld", (long long)s, digits, (long long)frac);
	} else {
		snprintf(sec, sizeof(sec), "%lld", (long long)s);
	}
	if (h)
		snprintf(buf, len, "%lldh%lldm%ss", (long long)h, (long long)m, sec);
	else if (m)
		snprintf(buf, len, "%lldm%ss", (long long)m, sec);
	else
		snprintf(buf, len, "%ss", sec);
	return buf;
}

const char *arl_view_time(const char *rfc3339, char buf[24])
{
	if (!rfc3339 || strlen(rfc3339) < 19)
		return rfc3339 ? rfc3339 : "-";
	snprintf(buf, 24, "%.10s %.8s", rfc3339, rfc3339 + 11);
	return buf;
}

const char *arl_view_state_color(const char *state)
{
	static const struct {
		const char *state, *color;
	} map[] = {
	    {"Succeeded", ARL_VIEW_GREEN},  {"succeeded", ARL_VIEW_GREEN},
	    {"Failed", ARL_VIEW_RED},       {"failed", ARL_VIEW_RED},
	    {"Cancelled", ARL_VIEW_YELLOW}, {"interrupted", ARL_VIEW_YELLOW},
	    {"Running", ARL_VIEW_CYAN},     {"running", ARL_VIEW_CYAN},
	    {"Skipped", ARL_VIEW_DIM},      {"Pending", ARL_VIEW_DIM},
	};

	for (size_t i = 0; state && i < sizeof(map) / sizeof(map[0]); i++)
		if (!strcmp(state, map[i].state))
			return map[i].color;
	return NULL;
}

void arl_view_json_str(cJSON *obj, const char *name, const char *s)
{
	if (s)
		cJSON_AddStringToObject(obj, name, s);
	else
		cJSON_AddNullToObject(obj, name);
}

void arl_view_json_int(cJSON *obj, const char *name, bool null, int64_t v)
{
	/* Doubles hold integers exactly up to 2^53: ids, counts and ms all fit. */
	if (null)
		cJSON_AddNullToObject(obj, name);
	else
		cJSON_AddNumberToObject(obj, name, (double)v);
}

void arl_view_json_value(cJSON *obj, const char *name, const struct arl_value *v)
{
	switch (v->type) {
	case ARL_VALUE_INT:
		arl_view_json_int(obj, name, false, v->i);
		break;
	case ARL_VALUE_REAL:
		cJSON_AddNumberToObject(obj, name, v->d);
		break;
	case ARL_VALUE_TEXT:
		cJSON_AddStringToObject(obj, name, v->p);
		break;
	case ARL_VALUE_BLOB: {
		const unsigned char *p = (const unsigned char *)v->p;
		char *hex = arl_xmalloc(v->len * 2 + 1);

		for (size_t i = 0; i < v->len; i++)
			snprintf(hex + 2 * i, 3, "%02x", p[i]);
		hex[v->len * 2] = '\0';
		cJSON_AddStringToObject(obj, name, hex);
		free(hex);
		break;
	}
	default:
		cJSON_AddNullToObject(obj, name);
		break;
	}
}

void arl_view_json_raw(cJSON *obj, const char *name, const char *json)
{
	cJSON *v;

	if (!json) {
		cJSON_AddNullToObject(obj, name);
		return;
	}
	/* The length includes the NUL: cJSON checks for it inside the given length. */
	v = cJSON_ParseWithLengthOpts(json, strlen(json) + 1, NULL, 1);
	if (v)
		cJSON_AddItemToObject(obj, name, v);
	else
		cJSON_AddStringToObject(obj, name, json);
}

void arl_view_json_item(struct arl_view_json_array *a, cJSON *item)
{
	char *text = cJSON_Print(item);

	fputs(a->n++ ? ",\n\t" : "[\n\t", a->out);
	/* Indent the element one level: real newlines only come from the formatting, since
	 * cJSON escapes the ones inside strings. */
	for (const char *p = text; p && *p; p++) {
		fputc(*p, a->out);
		if (*p == '\n')
			fputc('\t', a->out);
	}
	cJSON_free(text);
	cJSON_Delete(item);
}

void arl_view_json_end(struct arl_view_json_array *a)
{
	fputs(a->n ? "\n]\n" : "[]\n", a->out);
}

void arl_view_output_add(struct arl_view_output *o, const struct arl_step_view *st)
{
	if (st->callback)
		return;
	if (st->out)
		arl_buf_add(&o->out, st->out, strlen(st->out));
	if (st->err)
		arl_buf_add(&o->err, st->err, strlen(st->err));
	o->out_trunc |= st->out_truncated != 0;
	o->err_trunc |= st->err_truncated != 0;
}

int arl_view_output_step(void *arg, const struct arl_step_view *st, struct arl_err *err)
{
	(void)err;
	arl_view_output_add(arg, st);
	return 0;
}

void arl_view_output_release(struct arl_view_output *o)
{
	arl_buf_release(&o->out);
	arl_buf_release(&o->err);
}

void arl_view_error(const struct arl_err *err)
{
	arl_log_err(NULL, err);
}

/* The last line of @s with something besides blanks, as [*start, *end); false when none. */
static bool last_line(const char *s, const char **start, const char **end)
{
	const char *e = s + strlen(s), *b;

	while (e > s) {
		while (e > s && (e[-1] == '\n' || e[-1] == '\r'))
			e--;
		b = e;
		while (b > s && b[-1] != '\n')
			b--;
		for (const char *p = b; p < e; p++)
			if (*p != ' ' && *p != '\t' && *p != '\r') {
				while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
					e--;
				*start = p;
				*end = e;
				return true;
			}
		e = b;
	}
	return false;
}

char *arl_view_reason(const char *step, const char *cls, const char *error, const char *err_tail)
{
	struct arl_buf b = ARL_BUF_INIT;
	const char *ls = NULL, *le = NULL, *detail = error;
	char *line = NULL;
	size_t keep;

	if (!cls)
		return NULL;
	if (step && step[0])
		arl_buf_addf(&b, "%s: ", step);
	arl_buf_addstr(&b, cls);
	if (step && !strcmp(cls, "failed") && err_tail && last_line(err_tail, &ls, &le)) {
		line = arl_xstrndup(ls, (size_t)(le - ls));
		detail = line;
	} else if (step && detail && !strncmp(detail, "step '", 6) &&
	           !strncmp(detail + 6, step, strlen(step)) && detail[6 + strlen(step)] == '\'') {
		/* "step 'x' timed out" -> "timed out": the step is already named. */
		detail += 7 + strlen(step);
		detail += strspn(detail, ": ");
	}
	if (detail && detail[0]) {
		keep = arl_utf8_prefix(detail, ARL_VIEW_REASON_COLS);
		arl_buf_addf(&b, ": %.*s%s", (int)keep, detail, detail[keep] ? "\u2026" : "");
	}
	free(line);
	return arl_buf_detach(&b, NULL);
}
