/*
 * DESIGN: a single pass over libyaml's events builds the tree with an explicit stack, so
 * nesting costs heap, not C stack, and the depth cap is checked before anything is pushed.
 * Aliases point at the anchored node instead of copying it; the node's precomputed weight
 * (its subtree size) is charged against ARL_YAML_MAX_EXPANSION at every use, which refuses a
 * "billion laughs" document after a few kilobytes of work. Every node is also kept in doc->all
 * so that freeing never follows shared pointers twice.
 */
#include "jobfile/yaml_load.h"

#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "util.h"
#include "banned.h"

struct anchor {
	char *name;
	struct arl_node *node;
};

struct loader {
	const char *path;
	struct arl_doc *doc;
	struct arl_diags *diags;
	struct arl_node **stack; /* open collections */
	size_t depth, capstack;
	struct anchor *anchors;
	size_t nanchors, capanchors;
	struct arl_strindex index; /* of anchors: the newest of a name */
	size_t expansion;
	int failed;
};

static struct arl_loc mark_loc(const struct loader *l, yaml_mark_t m)
{
	struct arl_loc loc = {l->path, (unsigned)m.line + 1, (unsigned)m.column + 1};

	return loc;
}

static int fail(struct loader *l, yaml_mark_t m, const char *fmt, ...) ARL_PRINTF(3, 4);
static int fail(struct loader *l, yaml_mark_t m, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	arl_diags_vadd(l->diags, ARL_SEV_ERROR, mark_loc(l, m), 1, fmt, ap);
	va_end(ap);
	l->failed = 1;
	return -1;
}

static yaml_mark_t mark_of(const struct arl_node *n)
{
	yaml_mark_t m = {0};

	m.line = n->loc.line - 1;
	m.column = n->loc.col - 1;
	return m;
}

static struct arl_node *new_node(struct loader *l, enum arl_node_kind kind, yaml_mark_t m)
{
	struct arl_doc *d = l->doc;
	struct arl_node *n;

	if (d->nall >= ARL_YAML_MAX_NODES) {
		fail(l, m, "document has more than %u nodes", ARL_YAML_MAX_NODES);
		return NULL;
	}
	n = arl_xcalloc(1, sizeof(*n));
	n->kind = kind;
	n->loc = mark_loc(l, m);
	n->weight = 1;
	ARL_GROW(d->all, d->capall, d->nall + 1);
	d->all[d->nall++] = n;
	return n;
}

static const char *anchor_name(const void *l, size_t i)
{
	return ((const struct loader *)l)->anchors[i].name;
}

/*
 * Hashed: a scan per alias made 10,000 anchors and 900,000 aliases take 26 s. The count is
 * still capped, as every anchor's name is kept until the end.
 */
static int add_anchor(struct loader *l, const yaml_char_t *name, struct arl_node *n)
{
	if (l->nanchors >= ARL_YAML_MAX_ANCHORS)
		return fail(l, mark_of(n), "more than %u anchors", ARL_YAML_MAX_ANCHORS);
	arl_strindex_reserve(&l->index, l->nanchors + 1, l->nanchors, anchor_name, l);
	ARL_GROW(l->anchors, l->capanchors, l->nanchors + 1);
	l->anchors[l->nanchors].name = arl_xstrdup((const char *)name);
	l->anchors[l->nanchors].node = n;
	l->nanchors++;
	/* A redefined anchor shadows the earlier one: the slot points at the newest. */
	*arl_strindex_slot(&l->index, (const char *)name, anchor_name, l) = l->nanchors;
	return 0;
}

static struct anchor *find_anchor(struct loader *l, const char *name)
{
	size_t s = l->index.slot ? *arl_strindex_slot(&l->index, name, anchor_name, l) : 0;

	return s ? &l->anchors[s - 1] : NULL;
}

/* Attaches @n to the innermost open collection, or makes it the root. */
static void attach(struct loader *l, struct arl_node *n)
{
	struct arl_node *parent;

	if (l->depth == 0) {
		l->doc->root = n;
		return;
	}
	parent = l->stack[l->depth - 1];
	/* Capacity doubles at powers of two (implicit in nkids): one realloc per item would be
	 * quadratic where realloc copies, as under ASan. */
	if (parent->nkids >= 4 && !(parent->nkids & (parent->nkids - 1)))
		parent->kids =
		    arl_xrealloc(parent->kids, 2 * parent->nkids * sizeof(*parent->kids));
	else if (!parent->kids)
		parent->kids = arl_xcalloc(4, sizeof(*parent->kids));
	parent->kids[parent->nkids++] = n;
}

static int key_cmp(const void *a, const void *b)
{
	const struct arl_node *x = *(struct arl_node *const *)a, *y = *(struct arl_node *const *)b;
	int c = strcmp(x->str, y->str);

	if (c)
		return c;
	if (x->loc.line != y->loc.line)
		return x->loc.line < y->loc.line ? -1 : 1;
	return x->loc.col < y->loc.col ? -1 : x->loc.col > y->loc.col;
}

/* Sorting the keys keeps a hostile 100,000-key mapping at n log n. */
static void check_duplicate_keys(struct loader *l, struct arl_node *map)
{
	size_t n = map->nkids / 2, k = 0;
	struct arl_node **keys = arl_xmalloc((n ? n : 1) * sizeof(*keys));

	for (size_t i = 0; i < n; i++)
		if (map->kids[2 * i]->kind == ARL_NODE_SCALAR)
			keys[k++] = map->kids[2 * i];
	qsort(keys, k, sizeof(*keys), key_cmp);
	for (size_t i = 1; i < k; i++) {
		if (strcmp(keys[i]->str, keys[i - 1]->str))
			continue;
		arl_diags_add(l->diags, ARL_SEV_ERROR, keys[i]->loc, arl_node_width(keys[i]),
		              "duplicate key '%s' (first at %u:%u)", keys[i]->str,
		              keys[i - 1]->loc.line, keys[i - 1]->loc.col);
		l->failed = 1;
	}
	free(keys);
}

static int on_scalar(struct loader *l, yaml_event_t *ev)
{
	struct arl_node *n;
	const char *tag = (const char *)ev->data.scalar.tag;

	if (ev->data.scalar.length > ARL_YAML_MAX_SCALAR)
		return fail(l, ev->start_mark, "scalar of %zu bytes exceeds the limit of %u bytes",
		            ev->data.scalar.length, ARL_YAML_MAX_SCALAR);
	n = new_node(l, ARL_NODE_SCALAR, ev->start_mark);
	if (!n)
		return -1;
	n->str = arl_xstrndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
	n->len = ev->data.scalar.length;
	/* An explicit !!str tag makes "123" a string, as a quote would. */
	n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	           !(tag && !strcmp(tag, YAML_STR_TAG));
	if (ev->data.scalar.anchor && add_anchor(l, ev->data.scalar.anchor, n) < 0)
		return -1;
	attach(l, n);
	return 0;
}

static int on_start(struct loader *l, yaml_event_t *ev, enum arl_node_kind kind,
                    const yaml_char_t *anchor)
{
	struct arl_node *n;

	if (l->depth >= ARL_YAML_MAX_DEPTH)
		return fail(l, ev->start_mark, "nesting deeper than %u levels", ARL_YAML_MAX_DEPTH);
	n = new_node(l, kind, ev->start_mark);
	if (!n)
		return -1;
	if (anchor && add_anchor(l, anchor, n) < 0)
		return -1;
	attach(l, n);
	ARL_GROW(l->stack, l->capstack, l->depth + 1);
	l->stack[l->depth++] = n;
	return 0;
}

static void on_end(struct loader *l)
{
	struct arl_node *n = l->stack[--l->depth];

	for (size_t i = 0; i < n->nkids; i++)
		n->weight += n->kids[i]->weight;
	if (n->kind == ARL_NODE_MAP)
		check_duplicate_keys(l, n);
}

static int on_alias(struct loader *l, yaml_event_t *ev)
{
	const char *name = (const char *)ev->data.alias.anchor;
	struct anchor *a = find_anchor(l, name);

	if (!a)
		return fail(l, ev->start_mark, "unknown alias '*%s'", name);
	/* An anchor still open on the stack would make the tree cyclic. */
	for (size_t i = 0; i < l->depth; i++)
		if (l->stack[i] == a->node)
			return fail(l, ev->start_mark,
			            "alias '*%s' refers to a node that contains it", name);
	l->expansion += a->node->weight;
	if (l->expansion > ARL_YAML_MAX_EXPANSION)
		return fail(l, ev->start_mark,
		            "alias expansion exceeds %u nodes (is this an alias bomb?)",
		            ARL_YAML_MAX_EXPANSION);
	attach(l, a->node);
	return 0;
}

/* Line and column of byte @off, for reader errors that only carry an offset. */
static yaml_mark_t offset_mark(const char *buf, size_t len, size_t off)
{
	yaml_mark_t m = {0};

	for (size_t i = 0; i < off && i < len; i++) {
		if (buf[i] == '\n') {
			m.line++;
			m.column = 0;
		} else if (((unsigned char)buf[i] & 0xC0) != 0x80) {
			m.column++;
		}
	}
	m.index = off;
	return m;
}

static int check_utf8(struct loader *l, const char *buf, size_t len)
{
	size_t good = 0, step = 4096;

	/* Find the first bad byte cheaply: validate in chunks ending at line breaks. */
	while (good < len) {
		size_t end = good + step < len ? good + step : len;

		while (end < len && buf[end - 1] != '\n')
			end++;
		if (!arl_utf8_valid(buf + good, end - good)) {
			for (size_t i = good; i < end; i++) {
				size_t j = i + 1;

				while (j < end && j < i + 4 &&
				       ((unsigned char)buf[j] & 0xC0) == 0x80)
					j++;
				if (!arl_utf8_valid(buf + i, j - i))
					return fail(
					    l, offset_mark(buf, len, i),
					    "invalid UTF-8 (byte 0x%02x): job files must be UTF-8",
					    (unsigned char)buf[i]);
				i = j - 1;
			}
		}
		good = end;
	}
	if (memchr(buf, '\0', len))
		return fail(
		    l, offset_mark(buf, len, (size_t)((const char *)memchr(buf, '\0', len) - buf)),
		    "NUL byte in a job file");
	return 0;
}

static void parser_error(struct loader *l, yaml_parser_t *p, const char *buf, size_t len)
{
	yaml_mark_t m = p->problem_mark;

	if (p->error == YAML_READER_ERROR)
		m = offset_mark(buf, len, p->problem_offset);
	if (p->context)
		fail(l, m, "YAML syntax error: %s %s (line %zu)", p->problem ? p->problem : "error",
		     p->context, p->context_mark.line + 1);
	else
		fail(l, m, "YAML syntax error: %s", p->problem ? p->problem : "unknown error");
}

int arl_yaml_load_mem(const char *path, const char *buf, size_t len, struct arl_doc **out,
                      struct arl_diags *diags)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	struct loader l = {.path = path, .diags = diags};
	int done = 0, docs = 0, ret = -1;
	yaml_mark_t zero = {0};

	l.doc = arl_xcalloc(1, sizeof(*l.doc));
	l.doc->path = arl_xstrdup(path);
	l.path = l.doc->path;
	if (len > ARL_YAML_MAX_INPUT) {
		fail(&l, zero, "file of %zu bytes exceeds the limit of %u bytes", len,
		     ARL_YAML_MAX_INPUT);
		goto out_doc;
	}
	if (check_utf8(&l, buf, len) < 0)
		goto out_doc;
	if (!yaml_parser_initialize(&parser)) {
		fail(&l, zero, "cannot initialise the YAML parser");
		goto out_doc;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	while (!done && !l.failed) {
		if (!yaml_parser_parse(&parser, &ev)) {
			parser_error(&l, &parser, buf, len);
			break;
		}
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = 1;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++docs > 1)
				fail(&l, ev.start_mark,
				     "a job file holds one YAML document; found a second");
			break;
		case YAML_SCALAR_EVENT:
			on_scalar(&l, &ev);
			break;
		case YAML_SEQUENCE_START_EVENT:
			on_start(&l, &ev, ARL_NODE_SEQ, ev.data.sequence_start.anchor);
			break;
		case YAML_MAPPING_START_EVENT:
			on_start(&l, &ev, ARL_NODE_MAP, ev.data.mapping_start.anchor);
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			on_end(&l);
			break;
		case YAML_ALIAS_EVENT:
			on_alias(&l, &ev);
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	if (!l.failed) {
		*out = l.doc;
		l.doc = NULL;
		ret = 0;
	}
out_doc:
	for (size_t i = 0; i < l.nanchors; i++)
		free(l.anchors[i].name);
	free(l.anchors);
	free(l.index.slot);
	free(l.stack);
	arl_doc_free(l.doc);
	return ret;
}

void arl_doc_free(struct arl_doc *doc)
{
	if (!doc)
		return;
	for (size_t i = 0; i < doc->nall; i++) {
		free(doc->all[i]->str);
		free(doc->all[i]->kids);
		free(doc->all[i]);
	}
	free(doc->all);
	free(doc->path);
	free(doc);
}

struct arl_node *arl_node_get(const struct arl_node *map, const char *key)
{
	if (!map || map->kind != ARL_NODE_MAP)
		return NULL;
	for (size_t i = 0; i + 1 < map->nkids; i += 2)
		if (map->kids[i]->kind == ARL_NODE_SCALAR && !strcmp(map->kids[i]->str, key))
			return map->kids[i + 1];
	return NULL;
}

unsigned arl_node_width(const struct arl_node *n)
{
	size_t w;

	if (!n || n->kind != ARL_NODE_SCALAR || !n->len)
		return 1;
	w = strcspn(n->str, "\n");
	if (!n->plain)
		w += 2; /* the quotes */
	return w > 80 ? 80 : (unsigned)w;
}

bool arl_node_is_null(const struct arl_node *n)
{
	return n->kind == ARL_NODE_SCALAR && n->plain &&
	       (!n->len || !strcmp(n->str, "~") || !strcmp(n->str, "null") ||
	        !strcmp(n->str, "Null") || !strcmp(n->str, "NULL"));
}

bool arl_node_is_bool(const struct arl_node *n, bool *v)
{
	static const char *const yes[] = {"true", "True", "TRUE"}, *const no[] = {"false", "False",
	                                                                          "FALSE"};

	if (n->kind != ARL_NODE_SCALAR || !n->plain)
		return false;
	for (size_t i = 0; i < 3; i++) {
		if (!strcmp(n->str, yes[i]) || !strcmp(n->str, no[i])) {
			if (v)
				*v = !strcmp(n->str, yes[i]);
			return true;
		}
	}
	return false;
}

bool arl_node_is_float(const struct arl_node *n)
{
	char *end;

	if (n->kind != ARL_NODE_SCALAR || !n->plain || !n->len)
		return false;
	if (!strcmp(n->str, ".inf") || !strcmp(n->str, "-.inf") || !strcmp(n->str, ".nan"))
		return true;
	if (!strpbrk(n->str, "0123456789") || strpbrk(n->str, "xXpP_") || strpbrk(n->str, "nN"))
		return false;
	strtod(n->str, &end);
	return *end == '\0';
}

const char *arl_node_describe(const struct arl_node *n)
{
	int64_t i;

	switch (n->kind) {
	case ARL_NODE_MAP:
		return "a mapping";
	case ARL_NODE_SEQ:
		return "a list";
	case ARL_NODE_SCALAR:
		break;
	}
	if (!n->plain)
		return "a string";
	if (arl_node_is_null(n))
		return "null";
	if (arl_node_is_bool(n, NULL))
		return "a boolean";
	if (arl_parse_i64(n->str, INT64_MIN, INT64_MAX, &i) == 0)
		return "an integer";
	if (arl_node_is_float(n))
		return "a number";
	return "a string";
}
