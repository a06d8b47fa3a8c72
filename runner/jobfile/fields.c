#include "jobfile/fields.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util.h"
#include "banned.h"

void arl_field_vdiag(struct arl_fields *r, const struct arl_node *n, const char *fmt, va_list ap)
{
	struct arl_loc loc = n ? n->loc : (struct arl_loc){r->path, 1, 1};

	arl_diags_vadd(r->d, ARL_SEV_ERROR, loc, arl_node_width(n), fmt, ap);
	r->bad = true;
}

void arl_field_diag(struct arl_fields *r, const struct arl_node *n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	arl_field_vdiag(r, n, fmt, ap);
	va_end(ap);
}

void arl_field_vwarn(struct arl_fields *r, const struct arl_node *n, const char *fmt, va_list ap)
{
	arl_diags_vadd(r->d, ARL_SEV_WARNING, n->loc, arl_node_width(n), fmt, ap);
}

const char *arl_field_suggest(const char *key, const char *const *words)
{
	const char *best = NULL;
	unsigned best_d = 99, limit = strlen(key) <= 4 ? 1 : strlen(key) <= 8 ? 2 : 3;

	for (size_t i = 0; words[i]; i++) {
		unsigned dist = arl_edit_distance(key, words[i]);

		if (strcasecmp(key, words[i]) == 0)
			dist = 0;
		/* "on_complete" for "on_task_complete": a long key inside the word is a match. */
		else if (strlen(key) >= 5 && (strstr(words[i], key) ||
		                              (strlen(words[i]) >= 5 && strstr(key, words[i]))))
			dist = limit;
		else if (strlen(key) >= 6 && strlen(words[i]) > 8 &&
		         !strcmp(key + strlen(key) - 6, words[i] + strlen(words[i]) - 6))
			dist = limit;
		if (dist < best_d) {
			best_d = dist;
			best = words[i];
		}
	}
	return best_d <= limit ? best : NULL;
}

bool arl_field_in_list(const char *s, const char *const *words)
{
	for (size_t i = 0; words[i]; i++)
		if (!strcmp(s, words[i]))
			return true;
	return false;
}

void arl_field_unknown_key(struct arl_fields *r, const struct arl_node *k, const char *where,
                           const char *const *allowed)
{
	const char *s = arl_field_suggest(k->str, allowed);

	if (s)
		arl_field_diag(r, k, "unknown key '%s' in %s; did you mean '%s'?", k->str, where,
		               s);
	else
		arl_field_diag(r, k, "unknown key '%s' in %s", k->str, where);
}

void arl_field_check_keys(struct arl_fields *r, const struct arl_node *map, const char *where,
                          const char *const *allowed)
{
	for (size_t i = 0; i + 1 < map->nkids; i += 2) {
		const struct arl_node *k = map->kids[i];

		if (k->kind != ARL_NODE_SCALAR)
			arl_field_diag(r, k, "keys in %s must be strings, got %s", where,
			               arl_node_describe(k));
		else if (!arl_field_in_list(k->str, allowed))
			arl_field_unknown_key(r, k, where, allowed);
	}
}

bool arl_field_want(struct arl_fields *r, const struct arl_node *n, enum arl_node_kind kind,
                    const char *name)
{
	static const char *const kinds[] = {"a scalar", "a list", "a mapping"};

	if (n->kind == kind)
		return true;
	arl_field_diag(r, n, "'%s' must be %s, got %s", name, kinds[kind], arl_node_describe(n));
	return false;
}

bool arl_field_is_string(const struct arl_node *n)
{
	return n->kind == ARL_NODE_SCALAR && !strcmp(arl_node_describe(n), "a string");
}

/* Renders load-time templates of @s; errors name the expanded item. */
char *arl_field_render(struct arl_fields *r, const struct arl_node *n, const char *s)
{
	struct arl_err err = ARL_ERR_INIT;
	bool deferred = false;
	char *out;

	if (!arl_tmpl_has(s))
		return arl_xstrdup(s);
	if (arl_tmpl_render(s, r->t, &out, &deferred, &err) < 0) {
		if (r->origin[0])
			arl_field_diag(r, n, "%s (%s)", err.msg, r->origin);
		else
			arl_field_diag(r, n, "%s", err.msg);
		return NULL;
	}
	r->deferred |= deferred;
	return out;
}

char *arl_field_str(struct arl_fields *r, const struct arl_node *n, const char *name)
{
	if (!arl_field_is_string(n)) {
		arl_field_diag(r, n, "'%s' must be a string, got %s", name, arl_node_describe(n));
		return NULL;
	}
	return arl_field_render(r, n, n->str);
}

bool arl_field_int(struct arl_fields *r, const struct arl_node *n, const char *name, int64_t min,
                   int64_t max, int64_t *out)
{
	int64_t v;

	if (n->kind != ARL_NODE_SCALAR || !n->plain ||
	    arl_parse_i64(n->str, INT64_MIN, INT64_MAX, &v) < 0) {
		arl_field_diag(r, n, "'%s' must be an integer, got %s", name, arl_node_describe(n));
		return false;
	}
	if (v < min || v > max) {
		if (max == INT32_MAX)
			arl_field_diag(r, n, "'%s' must be at least %lld, got %lld", name,
			               (long long)min, (long long)v);
		else
			arl_field_diag(r, n, "'%s' must be between %lld and %lld, got %lld", name,
			               (long long)min, (long long)max, (long long)v);
		return false;
	}
	*out = v;
	return true;
}

bool arl_field_bool(struct arl_fields *r, const struct arl_node *n, const char *name, bool *out)
{
	if (!arl_node_is_bool(n, out)) {
		arl_field_diag(r, n, "'%s' must be a boolean (true or false), got %s", name,
		               arl_node_describe(n));
		return false;
	}
	return true;
}

bool arl_field_duration(struct arl_fields *r, const struct arl_node *n, const char *name,
                        int64_t max_ms, bool zero_ok, int64_t *out)
{
	int64_t ms;
	char buf[32];

	if (n->kind != ARL_NODE_SCALAR || arl_parse_duration(n->str, &ms) < 0) {
		arl_field_diag(
		    r, n, "'%s' must be a duration like \"90s\", \"5m\" or \"1h30m\", got %s%s%s",
		    name, n->kind == ARL_NODE_SCALAR ? "'" : "",
		    n->kind == ARL_NODE_SCALAR ? n->str : arl_node_describe(n),
		    n->kind == ARL_NODE_SCALAR ? "'" : "");
		return false;
	}
	if (ms <= 0 && !zero_ok) {
		arl_field_diag(r, n, "'%s' must be longer than 0", name);
		return false;
	}
	if (ms > max_ms) {
		arl_field_diag(r, n, "'%s' must be at most %s", name,
		               arl_fmt_duration(max_ms, buf, sizeof(buf)));
		return false;
	}
	*out = ms;
	return true;
}

bool arl_field_enum(struct arl_fields *r, const struct arl_node *n, const char *name,
                    const char *const *choices, int *out)
{
	char list[200] = "";
	const char *s;

	if (n->kind == ARL_NODE_SCALAR) {
		for (int i = 0; choices[i]; i++) {
			if (!strcmp(n->str, choices[i])) {
				*out = i;
				return true;
			}
		}
	}
	for (int i = 0; choices[i]; i++) {
		size_t o = strlen(list);

		snprintf(list + o, sizeof(list) - o, "%s'%s'", i ? ", " : "", choices[i]);
	}
	s = n->kind == ARL_NODE_SCALAR ? arl_field_suggest(n->str, choices) : NULL;
	if (s)
		arl_field_diag(r, n, "'%s' must be one of %s, got '%s'; did you mean '%s'?", name,
		               list, n->str, s);
	else if (n->kind == ARL_NODE_SCALAR)
		arl_field_diag(r, n, "'%s' must be one of %s, got '%s'", name, list, n->str);
	else
		arl_field_diag(r, n, "'%s' must be one of %s, got %s", name, list,
		               arl_node_describe(n));
	return false;
}

bool arl_field_env_name_ok(const char *s)
{
	if (!*s || (*s >= '0' && *s <= '9'))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}
