#include "jobfile/pool_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobfile/pool_kind.h"
#include "util.h"
#include "banned.h"

/* The keys every pool has, whatever its backend. */
static const char *const common_keys[] = {"backend", "replicas", NULL};

struct arl_pool_ctx {
	struct arl_fields *r;
	const char *dir;
};

void arl_pool_error(struct arl_pool_ctx *c, const struct arl_node *n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	arl_field_vdiag(c->r, n, fmt, ap);
	va_end(ap);
}

const char *arl_pool_dir(const struct arl_pool_ctx *c)
{
	return c->dir;
}

static void warn(struct arl_fields *r, const struct arl_node *n, const char *fmt, ...)
    ARL_PRINTF(3, 4);
static void warn(struct arl_fields *r, const struct arl_node *n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	arl_field_vwarn(r, n, fmt, ap);
	va_end(ap);
}

static const struct arl_pool_key *find_key(const struct arl_pool_key *keys, const char *name)
{
	for (const struct arl_pool_key *k = keys; k->name; k++)
		if (!strcmp(k->name, name))
			return k;
	return NULL;
}

/* The names of @keys, NULL-terminated (the array is owned, the names are not). */
static const char **key_names(const struct arl_pool_key *keys)
{
	size_t n = 0;
	const char **v;

	while (keys[n].name)
		n++;
	v = arl_xcalloc(n + 1, sizeof(*v));
	for (size_t i = 0; i < n; i++)
		v[i] = keys[i].name;
	return v;
}

/* What a pool mapping may hold: the common keys, then every registered kind's. */
static const char **pool_vocabulary(void)
{
	const struct arl_pool_kind *kind;
	size_t n = 0, i = 0;
	const char **v;

	for (size_t k = 0; (kind = arl_pool_kind_at(k)); k++)
		for (const struct arl_pool_key *key = kind->keys; key->name; key++)
			n++;
	v = arl_xcalloc(n + sizeof(common_keys) / sizeof(*common_keys), sizeof(*v));
	for (; common_keys[i]; i++)
		v[i] = common_keys[i];
	for (size_t k = 0; (kind = arl_pool_kind_at(k)); k++)
		for (const struct arl_pool_key *key = kind->keys; key->name; key++)
			v[i++] = key->name;
	return v;
}

/* The registered kinds' names, the values 'backend:' may take, NULL-terminated (owned). */
static const char **kind_names(void)
{
	size_t n = 0;
	const char **v;

	while (arl_pool_kind_at(n))
		n++;
	v = arl_xcalloc(n + 1, sizeof(*v));
	for (size_t i = 0; i < n; i++)
		v[i] = arl_pool_kind_at(i)->name;
	return v;
}

/* Reads the keys of @keys present in @map (named @where) into @config. */
static void parse_keys(struct arl_pool_ctx *c, const struct arl_node *map,
                       const struct arl_pool_key *keys, const char *where, void *config,
                       bool require)
{
	for (const struct arl_pool_key *k = keys; k->name; k++) {
		const struct arl_node *v = arl_node_get(map, k->name);
		void *field = (char *)config + k->offset;
		bool ok = false;

		if (!v) {
			if (k->required && require)
				arl_field_diag(c->r, map, "missing required key '%s' in %s",
				               k->name, where);
			continue;
		}
		switch (k->type) {
		case ARL_POOL_KEY_STRING:
			ok = (*(char **)field = arl_field_str(c->r, v, k->name)) != NULL;
			break;
		case ARL_POOL_KEY_SCALAR:
			if (v->kind != ARL_NODE_SCALAR || arl_node_is_null(v) ||
			    arl_node_is_bool(v, NULL))
				arl_field_diag(c->r, v, "'%s' must be a number or a string, got %s",
				               k->name, arl_node_describe(v));
			else
				ok = (*(char **)field = arl_xstrdup(v->str)) != NULL;
			break;
		case ARL_POOL_KEY_BOOL:
			ok = arl_field_bool(c->r, v, k->name, field);
			break;
		case ARL_POOL_KEY_ENUM:
			ok = arl_field_enum(c->r, v, k->name, k->choices, field);
			break;
		case ARL_POOL_KEY_MAP:
			if ((ok = arl_field_want(c->r, v, ARL_NODE_MAP, k->name))) {
				const char **inner = key_names(k->keys);
				char in[80];

				*(bool *)field = true;
				snprintf(in, sizeof(in), "'%s'", k->name);
				arl_field_check_keys(c->r, v, in, inner);
				free(inner);
				parse_keys(c, v, k->keys, in, config, true);
			}
			break;
		}
		if (ok && k->check)
			k->check(c, v, field);
	}
}

/* @kind's config from the pool mapping @n; @own: the pool's own kind (else checked only). */
static void *parse_config(struct arl_pool_ctx *c, const struct arl_node *n,
                          const struct arl_pool_kind *kind, const char *where, bool own)
{
	void *config = arl_xcalloc(1, kind->config_size ? kind->config_size : 1);

	parse_keys(c, n, kind->keys, where, config, own);
	if (own && kind->finish)
		kind->finish(c, n, config);
	return config;
}

static bool has_any_key(const struct arl_node *n, const struct arl_pool_key *keys)
{
	for (const struct arl_pool_key *k = keys; k->name; k++)
		if (arl_node_get(n, k->name))
			return true;
	return false;
}

static void add_other(struct arl_pool *p, const struct arl_pool_kind *kind, void *config)
{
	p->others = arl_xrealloc(p->others, (p->nothers + 1) * sizeof(*p->others));
	p->others[p->nothers++] = (struct arl_pool_other){kind, config};
}

/* Pool strings see nothing: without this, "{{ item.x }}" blamed a missing foreach item. */
static void scope_pool(struct arl_fields *r, struct arl_tmpl_ctx *t, const char *name, char *scope,
                       size_t len)
{
	*t = *r->t;
	snprintf(scope, len, "pool '%.60s', which all its jobs share", name);
	t->no_vars = scope;
	r->t = t;
}

void arl_pool_parse(struct arl_fields *r, const char *dir, const struct arl_node *k,
                    const struct arl_node *n, struct arl_pool *p)
{
	const struct arl_tmpl_ctx *saved = r->t;
	struct arl_pool_ctx c = {r, dir};
	const struct arl_pool_kind *kind;
	struct arl_tmpl_ctx t;
	const struct arl_node *v;
	const char **words;
	char where[120], scope[120];
	int e;
	int64_t i;

	p->name = arl_xstrdup(k->str);
	p->loc = k->loc;
	p->replicas = 1;
	p->node = n;
	p->kind = arl_pool_kind_at(0);
	scope_pool(r, &t, k->str, scope, sizeof(scope));
	if (!arl_is_dns_label(k->str))
		arl_field_diag(r, k,
		               "pool name '%s' is not a DNS label (lowercase letters, digits and "
		               "'-', at most 63)",
		               k->str);
	if (!p->kind)
		arl_field_diag(r, k, "pool '%s': no backend is available in this build", k->str);
	if (!p->kind || !arl_field_want(r, n, ARL_NODE_MAP, "pool"))
		goto out;
	snprintf(where, sizeof(where), "pool '%s'", k->str);
	words = pool_vocabulary();
	arl_field_check_keys(r, n, where, words);
	free(words);
	if ((v = arl_node_get(n, "backend"))) {
		words = kind_names();
		if (arl_field_enum(r, v, "backend", words, &e))
			p->kind = arl_pool_kind_at((size_t)e);
		free(words);
	}
	if ((v = arl_node_get(n, "replicas")) &&
	    arl_field_int(r, v, "replicas", 1, INT32_MAX, &i)) {
		if (i > 10000)
			arl_field_diag(r, v, "'replicas' must be between 1 and 10000, got %lld",
			               (long long)i);
		else
			p->replicas = (int)i;
	}
	/* In registration order, so that diagnostics come in the same order for every pool. */
	for (size_t x = 0; (kind = arl_pool_kind_at(x)); x++) {
		if (kind == p->kind)
			p->config = parse_config(&c, n, kind, where, true);
		else if (has_any_key(n, kind->keys))
			add_other(p, kind, parse_config(&c, n, kind, where, false));
	}
	/* Keys of another backend are harmless but probably a mistake. */
	for (size_t j = 0; j + 1 < n->nkids; j += 2) {
		const char *key = n->kids[j]->str;

		if (!key || arl_field_in_list(key, common_keys) || find_key(p->kind->keys, key))
			continue;
		for (size_t x = 0; (kind = arl_pool_kind_at(x)); x++) {
			if (find_key(kind->keys, key)) {
				warn(r, n->kids[j], "'%s' has no effect on a %s pool", key,
				     p->kind->name);
				break;
			}
		}
	}
out:
	/* Even an invalid pool has a config: a job's spec hash reads it. */
	if (p->kind && !p->config)
		p->config = arl_xcalloc(1, p->kind->config_size ? p->kind->config_size : 1);
	r->t = saved;
}

int arl_jobfile_set_backend(struct arl_jobfile *f, const struct arl_pool_kind *kind,
                            struct arl_diags *diags)
{
	struct arl_tmpl_ctx none = {0}, t;
	struct arl_fields r = {.d = diags, .path = f->path, .t = &none, .origin = ""};
	size_t before = diags->errors;
	struct arl_pool_ctx c = {&r, f->dir};
	char where[120], scope[120];

	for (size_t i = 0; i < f->npools; i++) {
		struct arl_pool *p = &f->pools[i];

		if (p->kind == kind)
			continue;
		/* The keys of its old kind become another kind's; @kind's are parsed as its own. */
		for (size_t k = 0; k < p->nothers; k++) {
			if (p->others[k].kind == kind) {
				arl_pool_config_free(kind, p->others[k].config);
				p->others[k] = p->others[--p->nothers];
				break;
			}
		}
		add_other(p, p->kind, p->config);
		p->kind = kind;
		scope_pool(&r, &t, p->name, scope, sizeof(scope));
		snprintf(where, sizeof(where), "pool '%s'", p->name);
		p->config = parse_config(&c, p->node, kind, where, true);
		r.t = &none;
	}
	return diags->errors == before ? 0 : -1;
}
