#include "backend/backend.h"

#include <stdlib.h>
#include <string.h>

#include "banned.h"

/* A handful at most; registered at startup, only read afterwards (no lock). */
#define MAX_BACKENDS 16

static const struct arl_backend_ops *backends[MAX_BACKENDS];
static size_t nbackends;

/* The registered backend other than @self that owns option @name, or NULL. */
static const struct arl_backend_ops *option_owner(const char *name,
                                                  const struct arl_backend_ops *self)
{
	for (size_t i = 0; i < nbackends; i++)
		for (const struct arl_backend_option *o = backends[i]->options; o && o->name; o++)
			if (backends[i] != self && !strcmp(o->name, name))
				return backends[i];
	return NULL;
}

int arl_backend_register(const struct arl_backend_ops *ops, struct arl_err *err)
{
	const struct arl_backend_ops *same = arl_backend_find(arl_backend_name(ops)), *owner;

	if (same == ops)
		return 0;
	if (same)
		return arl_error(err, ARL_E_INVALID, "backend '%s' is registered already",
		                 arl_backend_name(ops));
	/* `run` parses every backend's options: a name two of them use would reach only one. */
	for (const struct arl_backend_option *o = ops->options; o && o->name; o++) {
		if ((owner = option_owner(o->name, ops)))
			return arl_error(err, ARL_E_INVALID,
			                 "backend '%s': option '--%s' is backend '%s''s already",
			                 arl_backend_name(ops), o->name, arl_backend_name(owner));
		for (const struct arl_backend_option *p = ops->options; p != o; p++)
			if (!strcmp(p->name, o->name))
				return arl_error(err, ARL_E_INVALID,
				                 "backend '%s': option '--%s' is listed twice",
				                 arl_backend_name(ops), o->name);
	}
	if (nbackends == MAX_BACKENDS)
		abort(); /* a build with more backends raises MAX_BACKENDS */
	backends[nbackends++] = ops;
	arl_pool_kind_register(ops->pool);
	return 0;
}

const struct arl_backend_ops *arl_backend_find(const char *name)
{
	for (size_t i = 0; name && i < nbackends; i++)
		if (!strcmp(arl_backend_name(backends[i]), name))
			return backends[i];
	return NULL;
}

const struct arl_backend_ops *arl_backend_at(size_t i)
{
	return i < nbackends ? backends[i] : NULL;
}

const struct arl_backend_option *arl_backend_option_find(const char *name)
{
	for (size_t i = 0; i < nbackends; i++)
		for (const struct arl_backend_option *o = backends[i]->options; o && o->name; o++)
			if (!strcmp(o->name, name))
				return o;
	return NULL;
}

int arl_backend_option_check(const char *name, const char *value, struct arl_err *err)
{
	const struct arl_backend_option *o = arl_backend_option_find(name);

	if (!o)
		return arl_error(err, ARL_E_INVALID, "no backend has the option '--%s'", name);
	return o->check ? o->check(value, err) : 0;
}

const char *arl_backend_setting(const struct arl_backend_opts *o, const char *name)
{
	const char *v = NULL;

	for (size_t i = 0; i < o->nsettings; i++)
		if (!strcmp(o->settings[i].name, name))
			v = o->settings[i].value;
	return v;
}

void arl_backend_leases_free(struct arl_backend_lease *l, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(l[i].location);
		free(l[i].name);
		free(l[i].job_key);
	}
	free(l);
}
