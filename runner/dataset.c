#include "dataset.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "util.h"
#include "banned.h"

struct reader {
	struct arl_dataset *ds;
	struct arl_diags *diags;
	const char *text;
	size_t len;
	size_t cap;
	int failed;
};

/* Past this many, errors are counted but not located (locating one scans the file). */
#define MAX_LOCATED 50

static void bad(struct reader *r, size_t off, const char *fmt, ...) ARL_PRINTF(3, 4);
static void bad(struct reader *r, size_t off, const char *fmt, ...)
{
	struct arl_loc loc = {r->ds->path, 1, 1};
	va_list ap;

	if (r->failed++ >= MAX_LOCATED)
		return;
	for (size_t i = 0; i < off && i < r->len; i++) {
		if (r->text[i] == '\n') {
			loc.line++;
			loc.col = 1;
		} else if (((unsigned char)r->text[i] & 0xC0) != 0x80) {
			loc.col++;
		}
	}
	va_start(ap, fmt);
	arl_diags_vadd(r->diags, ARL_SEV_ERROR, loc, 1, fmt, ap);
	va_end(ap);
}

static void push(struct reader *r, cJSON *item, unsigned line)
{
	struct arl_dataset *ds = r->ds;

	if (ds->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 64;
		ds->items = arl_xrealloc(ds->items, r->cap * sizeof(*ds->items));
		ds->lines = arl_xrealloc(ds->lines, r->cap * sizeof(*ds->lines));
		if (ds->spans || !item)
			ds->spans = arl_xrealloc(ds->spans, r->cap * sizeof(*ds->spans));
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

static void read_jsonl(struct reader *r)
{
	const char *p = r->text, *end = r->text + r->len;
	unsigned line = 0;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end, *stop = NULL;
		cJSON *v;

		line++;
		if (!blank(p, eol)) {
			v = cJSON_ParseWithLengthOpts(p, (size_t)(eol - p), &stop, 0);
			if (!v) {
				bad(r, (size_t)((stop ? stop : p) - r->text),
				    "invalid JSON in record on line %u", line);
			} else if (!blank(stop, eol)) {
				cJSON_Delete(v);
				bad(r, (size_t)(stop - r->text),
				    "invalid JSON: text after the value on line %u (one JSON value "
				    "per line)",
				    line);
			} else {
				/* Checked now, parsed again when taken: see struct arl_dataset. */
				cJSON_Delete(v);
				push(r, NULL, line);
				r->ds->spans[r->ds->n - 1] =
				    (struct arl_span){(size_t)(p - r->text), (size_t)(eol - p)};
			}
		}
		p = eol + (nl ? 1 : 0);
	}
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

static void read_json(struct reader *r)
{
	const char *stop = NULL;
	cJSON *arr = cJSON_ParseWithLengthOpts(r->text, r->len, &stop, 0);
	size_t count;
	unsigned *lines;
	cJSON *v;

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
	count = (size_t)cJSON_GetArraySize(arr);
	lines = arl_xcalloc(count ? count : 1, sizeof(*lines));
	element_lines(r->text, r->len, lines, count);
	for (size_t i = 0; i < count; i++) {
		v = cJSON_DetachItemFromArray(arr, 0);
		push(r, v, lines[i]);
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
			arl_buf_add(&b, p, 1);
		}
		if (p < end && *p != ',' && *p != '\n' && *p != '\r')
			bad(r, (size_t)(p - r->text), "text after a quoted field");
		while (p < end && *p != ',' && *p != '\n')
			p++;
	} else {
		const char *s = p;

		while (p < end && *p != ',' && *p != '\n')
			p++;
		arl_buf_add(&b, s, (size_t)(p > s && p[-1] == '\r' ? p - 1 - s : p - s));
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
		if (nr != nh) {
			bad(r, (size_t)(rec - r->text), "record has %zu fields, the header has %zu",
			    nr, nh);
		} else {
			obj = cJSON_CreateObject();
			for (size_t i = 0; i < nh; i++)
				cJSON_AddItemToObject(obj, head[i], cJSON_CreateString(row[i]));
			push(r, obj, start);
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

int arl_dataset_load(struct arl_dataset *ds, const char *path, const char *fs_path,
                     struct arl_loc ref, struct arl_diags *diags)
{
	struct arl_buf b = ARL_BUF_INIT;
	struct arl_err err = ARL_ERR_INIT;
	struct reader r = {.ds = ds, .diags = diags};

	memset(ds, 0, sizeof(*ds));
	ds->path = arl_xstrdup(path);
	if (arl_buf_read_file(&b, fs_path, ARL_DATASET_MAX_BYTES, &err) < 0) {
		arl_diags_add(diags, ARL_SEV_ERROR, ref, 1, "%s", err.msg);
		return -1;
	}
	r.text = b.p;
	r.len = b.len;
	if (!arl_utf8_valid(b.p, b.len))
		bad(&r, 0, "dataset is not valid UTF-8");
	else if (memchr(b.p, '\0', b.len)) /* C strings would cut the record short */
		bad(&r, (size_t)((const char *)memchr(b.p, '\0', b.len) - b.p),
		    "NUL byte in a dataset");
	else if (ends_with(path, ".jsonl"))
		read_jsonl(&r);
	else if (ends_with(path, ".json"))
		read_json(&r);
	else if (ends_with(path, ".csv"))
		read_csv(&r);
	else
		bad(&r, 0, "unknown dataset format: expected .jsonl, .json or .csv");
	if (ds->spans) /* JSONL records are taken from the text later */
		ds->text = arl_buf_detach(&b, NULL);
	arl_buf_release(&b);
	return r.failed ? -1 : 0;
}

cJSON *arl_dataset_take(struct arl_dataset *ds, size_t i)
{
	cJSON *v = ds->items[i];

	if (v) {
		ds->items[i] = NULL;
		return v;
	}
	if (!ds->text || !ds->spans)
		return NULL;
	return cJSON_ParseWithLength(ds->text + ds->spans[i].off, ds->spans[i].len);
}

void arl_dataset_release(struct arl_dataset *ds)
{
	for (size_t i = 0; i < ds->n; i++)
		cJSON_Delete(ds->items[i]);
	free(ds->items);
	free(ds->lines);
	free(ds->spans);
	free(ds->text);
	free(ds->path);
	memset(ds, 0, sizeof(*ds));
}
