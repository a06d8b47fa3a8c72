#include "jobfile/template.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "util.h"
#include "banned.h"

#define LITERAL_OPEN "{{ \"{{\" }}"

bool arl_tmpl_has(const char *s)
{
	return strstr(s, "{{") != NULL;
}

static void add_escaped(struct arl_buf *b, const char *s, bool escape)
{
	const char *p;

	if (!escape) {
		arl_buf_addstr(b, s);
		return;
	}
	while ((p = strstr(s, "{{"))) {
		arl_buf_add(b, s, (size_t)(p - s));
		arl_buf_addstr(b, LITERAL_OPEN);
		s = p + 2;
	}
	arl_buf_addstr(b, s);
}

static const cJSON *lookup(const cJSON *v, const char *path, const char **missing)
{
	char seg[256];

	while (*path) {
		size_t n = strcspn(path, ".");

		if (n == 0 || n >= sizeof(seg)) {
			*missing = path;
			return NULL;
		}
		memcpy(seg, path, n);
		seg[n] = '\0';
		if (cJSON_IsObject(v)) {
			v = cJSON_GetObjectItemCaseSensitive(v, seg);
		} else if (cJSON_IsArray(v)) {
			int64_t i;

			v = arl_parse_i64(seg, 0, INT32_MAX, &i) == 0
			        ? cJSON_GetArrayItem(v, (int)i)
			        : NULL;
		} else {
			v = NULL;
		}
		if (!v) {
			*missing = path;
			return NULL;
		}
		path += n;
		if (*path == '.')
			path++;
	}
	return v;
}

static void add_json(struct arl_buf *b, const cJSON *v, bool escape)
{
	char *s;

	if (cJSON_IsString(v)) {
		add_escaped(b, v->valuestring, escape);
		return;
	}
	s = cJSON_PrintUnformatted(v);
	if (s)
		add_escaped(b, s, escape);
	cJSON_free(s);
}

/* One expression (trimmed, NUL-terminated) into @b. Returns 1 when it had to be deferred. */
static int expr(struct arl_buf *b, const char *e, const struct arl_tmpl_ctx *c, bool escape,
                struct arl_err *err)
{
	size_t n = strlen(e);
	const char *missing = NULL;

	if (n >= 2 && (e[0] == '"' || e[0] == '\'') && e[n - 1] == e[0]) {
		if (memchr(e + 1, e[0], n - 2))
			return arl_error(err, ARL_E_INVALID, "'{{ %s }}': bad string literal", e);
		if (escape && n == 4 && !strncmp(e + 1, "{{", 2))
			arl_buf_addstr(b, LITERAL_OPEN);
		else
			arl_buf_add(b, e + 1, n - 2);
		return 0;
	}
	if (!strncmp(e, "params.", 7) || !strcmp(e, "params")) {
		const cJSON *v = e[6] ? cJSON_GetObjectItemCaseSensitive(c->params, e + 7) : NULL;

		if (!e[6])
			return arl_error(err, ARL_E_INVALID,
			                 "'{{ params }}': name a parameter (params.NAME)");
		if (!cJSON_IsString(v))
			return arl_error(err, ARL_E_INVALID,
			                 "'{{ %s }}': the file declares no parameter '%s' (see "
			                 "'params:')",
			                 e, e + 7);
		add_escaped(b, v->valuestring, escape);
		return 0;
	}
	if (c->no_vars)
		return arl_error(err, ARL_E_INVALID, "'{{ %s }}': templates are not allowed in %s",
		                 e, c->no_vars);
	if (!strcmp(e, "item") || !strncmp(e, "item.", 5)) {
		const cJSON *v;

		if (!c->item)
			return arl_error(err, ARL_E_INVALID,
			                 "'{{ %s }}': this job has no foreach item", e);
		v = e[4] ? lookup(c->item, e + 5, &missing) : c->item;
		if (!v) {
			size_t m = strcspn(missing, ".");

			return arl_error(err, ARL_E_INVALID,
			                 "'{{ %s }}': the item has no field '%.*s'", e, (int)m,
			                 missing);
		}
		add_json(b, v, escape);
		return 0;
	}
	if (!strcmp(e, "job.name")) {
		if (!c->job_name)
			return arl_error(err, ARL_E_INVALID,
			                 "'{{ job.name }}' cannot be used in the job's own name");
		add_escaped(b, c->job_name, escape);
		return 0;
	}
	if (!strcmp(e, "run.id") || !strcmp(e, "run.name") || !strcmp(e, "attempt")) {
		const char *v = e[0] == 'a' ? c->attempt : e[4] == 'i' ? c->run_id : c->run_name;

		if (!v) {
			arl_buf_addf(b, "{{ %s }}", e);
			return 1;
		}
		arl_buf_addstr(b, v);
		return 0;
	}
	return arl_error(err, ARL_E_INVALID,
	                 "unknown template variable '%s' in '{{ %s }}' (expected item.FIELD, "
	                 "params.NAME, job.name, run.id, run.name, attempt or a quoted string)",
	                 e, e);
}

static int render(const char *s, const struct arl_tmpl_ctx *c, bool escape, struct arl_buf *b,
                  bool *deferred, struct arl_err *err)
{
	const char *p;

	*deferred = false;
	while ((p = strstr(s, "{{"))) {
		const char *q = strstr(p + 2, "}}");
		const char *a = p + 2, *z;
		char *e;
		int r;

		arl_buf_add(b, s, (size_t)(p - s));
		if (!q)
			return arl_error(err, ARL_E_INVALID,
			                 "unterminated template (missing '}}') in '%.40s'", p);
		/* A literal "}}" inside a quoted literal: {{ "}}" }}. */
		if ((a[strspn(a, " \t")] == '"' || a[strspn(a, " \t")] == '\'')) {
			const char *lit = a + strspn(a, " \t");
			const char *close = strchr(lit + 1, lit[0]);

			if (close && close > q - 1)
				q = strstr(close + 1, "}}");
			if (!q)
				return arl_error(err, ARL_E_INVALID,
				                 "unterminated template (missing '}}') in '%.40s'",
				                 p);
		}
		z = q;
		while (a < z && (*a == ' ' || *a == '\t'))
			a++;
		while (z > a && (z[-1] == ' ' || z[-1] == '\t'))
			z--;
		if (a == z)
			return arl_error(err, ARL_E_INVALID, "empty template '{{}}'");
		e = arl_xstrndup(a, (size_t)(z - a));
		r = expr(b, e, c, escape, err);
		free(e);
		if (r < 0)
			return -1;
		if (r > 0)
			*deferred = true;
		s = q + 2;
	}
	arl_buf_addstr(b, s);
	return 0;
}

int arl_tmpl_render(const char *s, const struct arl_tmpl_ctx *c, char **out, bool *deferred,
                    struct arl_err *err)
{
	struct arl_buf b = ARL_BUF_INIT;
	bool def = false;

	if (render(s, c, false, &b, &def, err) < 0)
		goto fail;
	if (def) {
		/* Kept expressions will be rendered again: protect the values' own "{{". */
		arl_buf_reset(&b);
		if (render(s, c, true, &b, &def, err) < 0)
			goto fail;
	}
	if (deferred)
		*deferred = def;
	*out = arl_buf_detach(&b, NULL);
	return 0;
fail:
	arl_buf_release(&b);
	return -1;
}
