/*
 * DESIGN: a .jsonl dataset is streamed, a line at a time through a window that only grows for
 * a line longer than it: each record is parsed, checked and dropped, and what stays is its
 * offset, length and a hash of its text. A .json array is read whole (it need not have one
 * record a line) but parsed an element at a time into the same spans. Expansion then reads the
 * records again in order (arl_dataset_take, a window at a time) and running jobs read theirs
 * alone (arl_dataset_read); the hash makes a file edited in the meantime an error rather than a
 * silently different job. The page cache holds the text, not the heap. A .json file that
 * does not parse element by element falls back to the whole-file parse, so its errors read
 * as before. A .csv dataset becomes cJSON trees of strings, which expansion takes one by one.
 */
#include "jobfile/dataset.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "util.h"
#include "banned.h"

/* Read-ahead of the sequential passes over a dataset file. */
#define WINDOW ((size_t)1 << 20)

static size_t max_record = ARL_DATASET_MAX_RECORD;

void arl_dataset_set_max_record(size_t bytes)
{
	max_record = bytes;
}

size_t arl_dataset_max_record(void)
{
	return max_record;
}

#define TOO_BIG "record of more than %zu bytes (the limit; raise it with --max-record)"

struct reader {
	struct arl_dataset *ds;
	struct arl_diags *diags;
	const char *text; /* .json and .csv: the whole file */
	size_t len;
	size_t cap; /* of ds->items/recs and ds->lines */
	int failed;
};

/* Past this many, errors are counted but not located (locating one scans the file). */
#define MAX_LOCATED 50

static void vbad_at(struct reader *r, struct arl_loc loc, const char *fmt, va_list ap)
    ARL_PRINTF(3, 0);
static void vbad_at(struct reader *r, struct arl_loc loc, const char *fmt, va_list ap)
{
	if (r->failed++ >= MAX_LOCATED)
		return;
	arl_diags_vadd(r->diags, ARL_SEV_ERROR, loc, 1, fmt, ap);
}

static void bad_at(struct reader *r, struct arl_loc loc, const char *fmt, ...) ARL_PRINTF(3, 4);
static void bad_at(struct reader *r, struct arl_loc loc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vbad_at(r, loc, fmt, ap);
	va_end(ap);
}

/* Column of @at in the line starting at @line: one per code point. */
static unsigned col_of(const char *line, const char *at)
{
	unsigned col = 1;

	for (const char *p = line; p < at; p++)
		if (((unsigned char)*p & 0xC0) != 0x80)
			col++;
	return col;
}

/* An error at byte @off of the whole text (.json, .csv). */
static void bad(struct reader *r, size_t off, const char *fmt, ...) ARL_PRINTF(3, 4);
static void bad(struct reader *r, size_t off, const char *fmt, ...)
{
	struct arl_loc loc = {r->ds->path, 1, 1};
	const char *line = r->text;
	va_list ap;

	if (r->failed >= MAX_LOCATED) {
		r->failed++;
		return;
	}
	for (size_t i = 0; i < off && i < r->len; i++) {
		if (r->text[i] == '\n') {
			loc.line++;
			line = r->text + i + 1;
		}
	}
	loc.col = col_of(line, r->text + (off < r->len ? off : r->len));
	va_start(ap, fmt);
	vbad_at(r, loc, fmt, ap);
	va_end(ap);
}

static void push_item(struct reader *r, cJSON *item, unsigned line)
{
	struct arl_dataset *ds = r->ds;

	if (ds->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 64;
		ds->items = arl_xrealloc(ds->items, r->cap * sizeof(*ds->items));
		ds->lines = arl_xrealloc(ds->lines, r->cap * sizeof(*ds->lines));
	}
	ds->items[ds->n] = item;
	ds->lines[ds->n++] = line;
}

static bool blank(const char *p, const char *end)
{
	for (; p < end; p++)
		if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
			return false;
	return true;
}

/* FNV-1a, 32 bits: tells a record's text from an edited one, nothing more. */
static uint32_t text_sum(const char *p, size_t n)
{
	return (uint32_t)arl_fnv1a_n(p, n);
}

/* True when a number in @v overflowed a double: cJSON saturates it to infinity. */
static bool has_inf(const cJSON *v)
{
	for (; v; v = v->next) {
		if (cJSON_IsNumber(v) && isinf(v->valuedouble))
			return true;
		if (v->child && has_inf(v->child))
			return true;
	}
	return false;
}

static bool number_char(char c)
{
	return (c >= '0' && c <= '9') || c == '+' || c == '-' || c == 'e' || c == 'E' || c == '.';
}

/*
 * Offset of the first number in the JSON text @s that strtod() takes to infinity, reading at
 * most 63 characters of it as cJSON does; @n when there is none. *tok gets its length.
 */
static size_t inf_number(const char *s, size_t n, size_t *tok)
{
	for (size_t i = 0; i < n; i++) {
		char buf[64];
		size_t k = 0;

		if (s[i] == '"') {
			for (i++; i < n && s[i] != '"'; i++)
				if (s[i] == '\\')
					i++;
			continue;
		}
		if (s[i] != '-' && (s[i] < '0' || s[i] > '9'))
			continue;
		while (i + k < n && k < sizeof(buf) - 1 && number_char(s[i + k]))
			k++;
		memcpy(buf, s + i, k);
		buf[k] = '\0';
		if (isinf(strtod(buf, NULL))) {
			*tok = k;
			return i;
		}
		i += k - 1;
	}
	*tok = 0;
	return n;
}

/* Reads @fd a line at a time through a window that grows only for a longer line. */
struct lines {
	int fd;
	const char *path;
	size_t max;      /* bytes of the whole file */
	size_t max_line; /* bytes of one line: the window grows no further */
	bool too_long;   /* next_line() stopped at a line longer than max_line */
	char *buf;
	size_t cap, start, end; /* unread: buf[start, end) */
	uint64_t off;           /* file offset of buf[start] */
	uint64_t total;
	bool eof;
};

/*
 * The next line, without its '\n', in *p and *len (valid until the next call) and its offset
 * in *off. Returns 1, 0 at the end, -1 with @err on a read error or past the size limit.
 */
static int next_line(struct lines *l, const char **p, size_t *len, uint64_t *off,
                     struct arl_err *err)
{
	for (;;) {
		char *s = l->buf ? l->buf + l->start : NULL; /* NULL + 0 is undefined */
		char *nl = l->end > l->start ? memchr(s, '\n', l->end - l->start) : NULL;
		ssize_t got;

		if ((nl ? (size_t)(nl - s) : l->end - l->start) > l->max_line) {
			l->too_long = true;
			return arl_error(err, ARL_E_LIMIT, TOO_BIG, l->max_line);
		}
		if (nl || (l->eof && l->end > l->start)) {
			*p = s;
			*len = nl ? (size_t)(nl - s) : l->end - l->start;
			*off = l->off;
			l->start += *len + (nl ? 1 : 0);
			l->off += *len + (nl ? 1 : 0);
			return 1;
		}
		if (l->eof)
			return 0;
		if (l->start) {
			memmove(l->buf, s, l->end - l->start);
			l->end -= l->start;
			l->start = 0;
		}
		if (l->end == l->cap) {
			l->cap = l->cap ? l->cap * 2 : WINDOW;
			l->buf = arl_xrealloc(l->buf, l->cap);
		}
		got = read(l->fd, l->buf + l->end, l->cap - l->end);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return arl_error_errno(err, errno, "cannot read '%s'", l->path);
		if (got == 0)
			l->eof = true;
		l->end += (size_t)got;
		l->total += (uint64_t)got;
		if (l->total > l->max)
			return arl_error(err, ARL_E_LIMIT,
			                 "'%s' is larger than the limit of %zu bytes", l->path,
			                 l->max);
	}
}

static void push_rec(struct reader *r, uint64_t off, const char *p, size_t len, unsigned line)
{
	struct arl_dataset *ds = r->ds;

	if (ds->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 64;
		ds->recs = arl_xrealloc(ds->recs, r->cap * sizeof(*ds->recs));
		ds->lines = arl_xrealloc(ds->lines, r->cap * sizeof(*ds->lines));
	}
	ds->recs[ds->n] = (struct arl_record){off, (uint32_t)len, text_sum(p, len)};
	ds->lines[ds->n++] = line;
}

/* One non-blank line: checked, then only its place is kept (see DESIGN). */
static void check_record(struct reader *r, const char *p, size_t len, uint64_t off, unsigned line)
{
	struct arl_dataset *ds = r->ds;
	struct arl_loc loc = {ds->path, line, 1};
	const char *stop = NULL, *end = p + len;
	cJSON *v = cJSON_ParseWithLengthOpts(p, len, &stop, 0);
	size_t at, tok;

	if (!v) {
		loc.col = col_of(p, stop && stop >= p && stop <= end ? stop : p);
		bad_at(r, loc, "invalid JSON in record on line %u", line);
		return;
	}
	if (!blank(stop, end)) {
		cJSON_Delete(v);
		loc.col = col_of(p, stop);
		bad_at(r, loc,
		       "invalid JSON: text after the value on line %u (one JSON value per line)",
		       line);
		return;
	}
	if (has_inf(v)) {
		/* Else it would be infinity, which JSON cannot write back: templates got null. */
		cJSON_Delete(v);
		at = inf_number(p, len, &tok);
		loc.col = col_of(p, p + (at < len ? at : 0));
		bad_at(r, loc,
		       "number out of range in record on line %u: '%.*s' does not fit a double",
		       line, (int)(tok > 40 ? 40 : tok), at < len ? p + at : "");
		return;
	}
	cJSON_Delete(v);
	push_rec(r, off, p, len, line);
}

static void move_diags(struct arl_diags *to, struct arl_diags *from)
{
	for (size_t i = 0; i < from->n; i++) {
		const struct arl_diag *g = &from->v[i];
		struct arl_loc loc = {g->path, g->line, g->col};

		arl_diags_add(to, g->sev, loc, g->width, "%s", g->msg);
	}
	arl_diags_release(from);
}

/*
 * One pass over a .jsonl file. As when the file was checked whole, invalid UTF-8 anywhere is
 * the only error reported, then a NUL byte; record errors wait in @pending until then.
 */
static int read_jsonl(struct reader *r, int fd, const char *fs_path, struct arl_err *err)
{
	struct lines lr = {
	    .fd = fd, .path = fs_path, .max = ARL_DATASET_MAX_BYTES, .max_line = max_record};
	struct arl_diags pending = ARL_DIAGS_INIT, *diags = r->diags;
	struct arl_loc nul = {r->ds->path, 0, 0};
	bool bad_utf8 = false;
	unsigned line = 0;
	const char *p = NULL, *z;
	size_t len = 0;
	uint64_t off = 0;
	int rc;

	r->diags = &pending;
	while ((rc = next_line(&lr, &p, &len, &off, err)) > 0) {
		line++;
		if (bad_utf8 || !arl_utf8_valid(p, len)) {
			bad_utf8 = true;
			continue;
		}
		if (nul.line)
			continue;
		if ((z = memchr(p, '\0', len))) { /* C strings would cut the record short */
			nul.line = line;
			nul.col = col_of(p, z);
			continue;
		}
		if (!blank(p, p + len))
			check_record(r, p, len, off, line);
	}
	free(lr.buf);
	r->diags = diags;
	if ((rc < 0 && !lr.too_long) || bad_utf8 || nul.line) {
		arl_diags_release(&pending);
		r->failed = 0;
		if (rc < 0 && !lr.too_long)
			return -1;
		if (bad_utf8)
			bad_at(r, (struct arl_loc){r->ds->path, 1, 1},
			       "dataset is not valid UTF-8");
		else
			bad_at(r, nul, "NUL byte in a dataset");
		return 0;
	}
	move_diags(diags, &pending);
	/* Where the record starts, not where the reading stopped. */
	if (lr.too_long)
		bad_at(r, (struct arl_loc){r->ds->path, line + 1, 1}, TOO_BIG, max_record);
	return 0;
}

/* Line of each top-level array element, found by a scan that skips strings. */
static void element_lines(const char *s, size_t n, unsigned *lines, size_t count)
{
	unsigned line = 1;
	int depth = 0;
	bool want = false;
	size_t k = 0;

	for (size_t i = 0; i < n && k < count; i++) {
		char c = s[i];

		if (c == '\n') {
			line++;
			continue;
		}
		if (want && depth == 1 && c != ' ' && c != '\t' && c != '\r' && c != ',' &&
		    c != ']') {
			lines[k++] = line;
			want = false;
		}
		if (c == '"') {
			for (i++; i < n && s[i] != '"'; i++)
				if (s[i] == '\\')
					i++;
		} else if (c == '[' || c == '{') {
			if (++depth == 1)
				want = true;
		} else if (c == ']' || c == '}') {
			depth--;
		} else if (c == ',' && depth == 1) {
			want = true;
		}
	}
}

/* Containers nested in @v, itself included: cJSON refuses more than CJSON_NESTING_LIMIT. */
static unsigned nesting(const cJSON *v)
{
	unsigned most = 0;

	if (!cJSON_IsArray(v) && !cJSON_IsObject(v))
		return 0;
	for (const cJSON *k = v->child; k; k = k->next) {
		unsigned d = nesting(k);

		if (d > most)
			most = d;
	}
	return most + 1;
}

/* cJSON's whitespace, between the tokens of the array. */
static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && (unsigned char)*p <= 32)
		p++;
	return p;
}

/*
 * The length of the JSON value at @p by a lexical scan (strings skipped, brackets counted),
 * or something over @limit once it is known to be longer: nothing is built to learn it.
 */
static size_t value_extent(const char *p, const char *end, size_t limit)
{
	const char *q = p;
	size_t depth = 0;

	for (; q < end && (size_t)(q - p) <= limit; q++) {
		if (*q == '"') {
			for (q++; q < end && *q != '"'; q++)
				if (*q == '\\')
					q++;
			if (!depth)
				return (size_t)(q + 1 - p);
		} else if (*q == '[' || *q == '{') {
			depth++;
		} else if (*q == ']' || *q == '}') {
			if (!depth)
				return (size_t)(q - p);
			if (!--depth)
				return (size_t)(q + 1 - p);
		} else if (!depth && (*q == ',' || (unsigned char)*q <= 32)) {
			return (size_t)(q - p);
		}
	}
	return (size_t)(q - p);
}

/*
 * A valid array of records, one element at a time: each becomes a span like a .jsonl
 * record, and no tree of the whole file is built. Returns false (keeping nothing) at anything
 * unusual, and read_json() parses the file whole to report it exactly as it always has.
 */
static bool json_elements(struct reader *r)
{
	struct arl_dataset *ds = r->ds;
	const char *s = r->text, *end = s + r->len, *p = s, *counted = s, *stop;
	unsigned line = 1;
	cJSON *v;

	if (r->len >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3))
		p += 3;
	p = skip_ws(p, end);
	if (p >= end || *p != '[')
		return false;
	p = skip_ws(p + 1, end);
	if (p < end && *p == ']')
		return blank(p + 1, end);
	for (;;) {
		/* A byte-order mark is skipped only at the start of the text cJSON is given. */
		if (p >= end || (unsigned char)*p == 0xEF)
			goto fallback;
		if (value_extent(p, end, max_record) > max_record) {
			bad(r, (size_t)(p - s), TOO_BIG, max_record);
			return true; /* r->failed: the dataset is refused, nothing parsed */
		}
		v = cJSON_ParseWithLengthOpts(p, (size_t)(end - p), &stop, 0);
		/* Alone, an element may nest one level deeper than inside the array. */
		if (!v || has_inf(v) || nesting(v) >= CJSON_NESTING_LIMIT) {
			cJSON_Delete(v);
			goto fallback;
		}
		cJSON_Delete(v);
		for (; counted < p; counted++)
			line += *counted == '\n';
		push_rec(r, (uint64_t)(p - s), p, (size_t)(stop - p), line);
		p = skip_ws(stop, end);
		if (p < end && *p == ',') {
			p = skip_ws(p + 1, end);
			continue;
		}
		if (p < end && *p == ']' && blank(p + 1, end))
			return true;
		goto fallback;
	}
fallback:
	free(ds->recs);
	free(ds->lines);
	ds->recs = NULL;
	ds->lines = NULL;
	ds->n = r->cap = 0;
	return false;
}

static void read_json(struct reader *r)
{
	const char *stop = NULL;
	cJSON *arr;
	size_t count, at, tok;
	unsigned *lines;
	cJSON *v;

	if (json_elements(r))
		return;
	arr = cJSON_ParseWithLengthOpts(r->text, r->len, &stop, 0);
	if (!arr) {
		bad(r, (size_t)((stop ? stop : r->text) - r->text), "invalid JSON");
		return;
	}
	if (!blank(stop, r->text + r->len)) {
		bad(r, (size_t)(stop - r->text), "invalid JSON: text after the array");
		cJSON_Delete(arr);
		return;
	}
	if (!cJSON_IsArray(arr)) {
		bad(r, 0, "a .json dataset must hold a JSON array of records");
		cJSON_Delete(arr);
		return;
	}
	if (has_inf(arr)) {
		at = inf_number(r->text, r->len, &tok);
		bad(r, at < r->len ? at : 0, "number out of range: '%.*s' does not fit a double",
		    (int)(tok > 40 ? 40 : tok), at < r->len ? r->text + at : "");
		cJSON_Delete(arr);
		return;
	}
	count = (size_t)cJSON_GetArraySize(arr);
	lines = arl_xcalloc(count ? count : 1, sizeof(*lines));
	element_lines(r->text, r->len, lines, count);
	for (size_t i = 0; i < count; i++) {
		v = cJSON_DetachItemFromArray(arr, 0);
		push_item(r, v, lines[i]);
	}
	free(lines);
	cJSON_Delete(arr);
}

/* One CSV field (RFC 4180) starting at *pp; returns it owned and advances past it. */
static char *csv_field(struct reader *r, const char **pp, const char *end, unsigned *line)
{
	const char *p = *pp;
	struct arl_buf b = ARL_BUF_INIT;

	if (p < end && *p == '"') {
		const char *start = p;

		for (p++;; p++) {
			if (p >= end) {
				bad(r, (size_t)(start - r->text), "unterminated quoted field");
				break;
			}
			if (*p == '"') {
				if (p + 1 < end && p[1] == '"') {
					arl_buf_add(&b, "\"", 1);
					p++;
					continue;
				}
				p++;
				break;
			}
			if (*p == '\n')
				(*line)++;
			if (b.len <= max_record) /* past it the record is refused: keep no more */
				arl_buf_add(&b, p, 1);
		}
		if (p < end && *p != ',' && *p != '\n' && *p != '\r')
			bad(r, (size_t)(p - r->text), "text after a quoted field");
		while (p < end && *p != ',' && *p != '\n')
			p++;
	} else {
		const char *s = p;
		size_t n;

		while (p < end && *p != ',' && *p != '\n')
			p++;
		n = (size_t)(p > s && p[-1] == '\r' ? p - 1 - s : p - s);
		arl_buf_add(&b, s, n > max_record ? max_record + 1 : n);
	}
	*pp = p;
	return arl_buf_detach(&b, NULL);
}

/* One record: fields into @out (up to @max kept, all counted). Returns the count. */
static size_t csv_record(struct reader *r, const char **pp, const char *end, unsigned *line,
                         char ***out, size_t *cap)
{
	size_t n = 0;

	for (;;) {
		char *f = csv_field(r, pp, end, line);

		ARL_GROW(*out, *cap, n + 1);
		(*out)[n++] = f;
		if (*pp < end && **pp == ',') {
			(*pp)++;
			continue;
		}
		if (*pp < end && **pp == '\n')
			(*pp)++;
		(*line)++;
		return n;
	}
}

struct named {
	const char *name;
	size_t i;
};

static int named_cmp(const void *a, const void *b)
{
	const struct named *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : (x->i > y->i) - (x->i < y->i);
}

/* A repeated header name would silently drop a column from every record: refused (sorted,
 * so a wide header costs n log n). */
static void csv_unique_header(struct reader *r, char **head, size_t nh)
{
	struct named *v = arl_xcalloc(nh ? nh : 1, sizeof(*v));

	for (size_t i = 0; i < nh; i++)
		v[i] = (struct named){head[i], i};
	qsort(v, nh, sizeof(*v), named_cmp);
	for (size_t i = 1, first = 0; i < nh; i++) {
		if (strcmp(v[i].name, v[first].name))
			first = i;
		else if (v[i].name[0])
			bad(r, 0, "header column %zu repeats the name '%s' of column %zu",
			    v[i].i + 1, v[i].name, v[first].i + 1);
	}
	free(v);
}

static void read_csv(struct reader *r)
{
	const char *p = r->text, *end = r->text + r->len;
	char **head = NULL, **row = NULL;
	size_t hcap = 0, rcap = 0, nh, nr;
	unsigned line = 1;

	if (r->len >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3))
		p += 3;
	if (p >= end) {
		bad(r, 0, "empty CSV file: a header row is required");
		return;
	}
	nh = csv_record(r, &p, end, &line, &head, &hcap);
	for (size_t i = 0; i < nh; i++)
		if (!head[i][0])
			bad(r, 0, "header column %zu is empty", i + 1);
	csv_unique_header(r, head, nh);
	while (p < end && !r->failed) {
		unsigned start = line;
		const char *rec = p;
		cJSON *obj;

		if (*p == '\n' || (*p == '\r' && p + 1 < end && p[1] == '\n')) {
			p += *p == '\n' ? 1 : 2;
			line++;
			continue;
		}
		nr = csv_record(r, &p, end, &line, &row, &rcap);
		if ((size_t)(p - rec) > max_record) {
			bad(r, (size_t)(rec - r->text), TOO_BIG, max_record);
		} else if (nr != nh) {
			bad(r, (size_t)(rec - r->text), "record has %zu fields, the header has %zu",
			    nr, nh);
		} else {
			obj = cJSON_CreateObject();
			for (size_t i = 0; i < nh; i++)
				cJSON_AddItemToObject(obj, head[i], cJSON_CreateString(row[i]));
			push_item(r, obj, start);
		}
		for (size_t i = 0; i < nr; i++)
			free(row[i]);
	}
	for (size_t i = 0; i < nh; i++)
		free(head[i]);
	free(head);
	free(row);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcmp(s + n - m, suffix);
}

/* .json and .csv: the whole text, then records as trees. */
static int read_whole(struct reader *r, const char *fs_path, struct arl_err *err)
{
	struct arl_buf b = ARL_BUF_INIT;
	const char *path = r->ds->path;

	if (arl_buf_read_file(&b, fs_path, ARL_DATASET_MAX_BYTES, err) < 0) {
		arl_buf_release(&b);
		return -1;
	}
	r->text = b.p;
	r->len = b.len;
	if (!arl_utf8_valid(b.p, b.len))
		bad(r, 0, "dataset is not valid UTF-8");
	else if (memchr(b.p, '\0', b.len)) /* C strings would cut the record short */
		bad(r, (size_t)((const char *)memchr(b.p, '\0', b.len) - b.p),
		    "NUL byte in a dataset");
	else if (ends_with(path, ".json"))
		read_json(r);
	else if (ends_with(path, ".csv"))
		read_csv(r);
	else
		bad(r, 0, "unknown dataset format: expected .jsonl, .json or .csv");
	r->text = NULL;
	arl_buf_release(&b);
	/* Records kept as spans are read again (-1: by opening the file each time). */
	if (r->ds->recs)
		r->ds->fd = open(fs_path, O_RDONLY | O_CLOEXEC);
	return 0;
}

int arl_dataset_load(struct arl_dataset *ds, const char *path, const char *fs_path,
                     struct arl_loc ref, struct arl_diags *diags)
{
	struct arl_err err = ARL_ERR_INIT;
	struct reader r = {.ds = ds, .diags = diags};
	struct stat st;
	int rc;

	memset(ds, 0, sizeof(*ds));
	ds->fd = -1;
	ds->path = arl_xstrdup(path);
	ds->fs_path = arl_xstrdup(fs_path);
	if (!ends_with(path, ".jsonl")) {
		rc = read_whole(&r, fs_path, &err);
	} else if ((ds->fd = open(fs_path, O_RDONLY | O_CLOEXEC)) < 0) {
		rc = arl_error_errno(&err, errno, "cannot open '%s'", fs_path);
	} else if (fstat(ds->fd, &st) == 0 && S_ISREG(st.st_mode) &&
	           (uint64_t)st.st_size > ARL_DATASET_MAX_BYTES) {
		rc = arl_error(&err, ARL_E_LIMIT, "'%s' is larger than the limit of %zu bytes",
		               fs_path, ARL_DATASET_MAX_BYTES);
	} else {
		rc = read_jsonl(&r, ds->fd, fs_path, &err);
	}
	/* No doubling slack for the whole run. */
	if (ds->recs && ds->n && ds->n < r.cap) {
		ds->recs = arl_xrealloc(ds->recs, ds->n * sizeof(*ds->recs));
		ds->lines = arl_xrealloc(ds->lines, ds->n * sizeof(*ds->lines));
	}
	if (rc < 0) {
		arl_diags_add(diags, ARL_SEV_ERROR, ref, 1, "%s", err.msg);
		return -1;
	}
	return r.failed ? -1 : 0;
}

/* Reads up to @n bytes at @off; returns how many (short only at the end of the file). */
static ssize_t pread_full(int fd, char *buf, size_t n, uint64_t off)
{
	size_t got = 0;

	while (got < n) {
		ssize_t k = pread(fd, buf + got, n - got, (off_t)(off + got));

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -1;
		if (k == 0)
			break;
		got += (size_t)k;
	}
	return (ssize_t)got;
}

/* Parses record @i from its text at @p, which must still be what was checked. */
static cJSON *parse_record(const struct arl_dataset *ds, size_t i, const char *p, size_t len,
                           struct arl_err *err)
{
	const struct arl_record *rec = &ds->recs[i];
	cJSON *v = NULL;

	if (len == rec->len && text_sum(p, len) == rec->sum)
		v = cJSON_ParseWithLength(p, len);
	if (!v)
		arl_error(err, ARL_E_INVALID,
		          "dataset '%s' changed since it was loaded: record %zu is not what was "
		          "checked",
		          ds->path, i + 1);
	return v;
}

cJSON *arl_dataset_take(struct arl_dataset *ds, size_t i, struct arl_err *err)
{
	const struct arl_record *rec;
	cJSON *v;
	ssize_t got;

	if (i >= ds->n)
		return arl_error(err, ARL_E_INVALID, "no record %zu in '%s'", i + 1, ds->path),
		       NULL;
	if (!ds->recs) {
		v = ds->items[i];
		ds->items[i] = NULL;
		if (!v)
			arl_error(err, ARL_E_INVALID, "record %zu of '%s' was taken already", i + 1,
			          ds->path);
		return v;
	}
	rec = &ds->recs[i];
	if (ds->fd < 0 || !ds->win || rec->off < ds->win_off ||
	    rec->off + rec->len > ds->win_off + ds->win_len) {
		size_t want = rec->len > WINDOW ? rec->len : WINDOW;

		if (ds->fd < 0) {
			if (arl_dataset_read(ds, i, &v, err) < 0)
				return NULL;
			return v;
		}
		if (ds->win_cap < want) {
			free(ds->win);
			ds->win = arl_xmalloc(want);
			ds->win_cap = want;
		}
		got = pread_full(ds->fd, ds->win, want, rec->off);
		if (got < 0) {
			ds->win_len = 0;
			arl_error_errno(err, errno, "cannot read '%s'", ds->fs_path);
			return NULL;
		}
		ds->win_off = rec->off;
		ds->win_len = (size_t)got;
		if (ds->win_len < rec->len)
			return parse_record(ds, i, ds->win, ds->win_len, err);
	}
	return parse_record(ds, i, ds->win + (rec->off - ds->win_off), rec->len, err);
}

int arl_dataset_read(const struct arl_dataset *ds, size_t i, cJSON **out, struct arl_err *err)
{
	const struct arl_record *rec;
	int fd = ds->fd;
	char *buf;
	ssize_t got;
	cJSON *v;

	if (!ds->recs || i >= ds->n)
		return arl_error(err, ARL_E_INVALID, "no record %zu in '%s'", i + 1, ds->path);
	rec = &ds->recs[i];
	if (fd < 0 && (fd = open(ds->fs_path, O_RDONLY | O_CLOEXEC)) < 0)
		return arl_error_errno(err, errno, "cannot open '%s'", ds->fs_path);
	buf = arl_xmalloc(rec->len ? rec->len : 1);
	got = pread_full(fd, buf, rec->len, rec->off);
	if (got < 0)
		arl_error_errno(err, errno, "cannot read '%s'", ds->fs_path);
	if (fd != ds->fd)
		close(fd);
	v = got < 0 ? NULL : parse_record(ds, i, buf, (size_t)got, err);
	free(buf);
	if (!v)
		return -1;
	*out = v;
	return 0;
}

void arl_dataset_trim(struct arl_dataset *ds, bool keep_open)
{
	free(ds->win);
	ds->win = NULL;
	ds->win_len = ds->win_cap = 0;
	free(ds->lines);
	ds->lines = NULL;
	if (!keep_open && ds->fd >= 0) {
		close(ds->fd);
		ds->fd = -1;
	}
}

void arl_dataset_release(struct arl_dataset *ds)
{
	for (size_t i = 0; ds->items && i < ds->n; i++)
		cJSON_Delete(ds->items[i]);
	free(ds->items);
	free(ds->lines);
	free(ds->recs);
	free(ds->win);
	/* A zeroed struct (never loaded) has no path and owns no descriptor. */
	if (ds->path && ds->fd >= 0)
		close(ds->fd);
	free(ds->fs_path);
	free(ds->path);
	memset(ds, 0, sizeof(*ds));
	ds->fd = -1;
}
