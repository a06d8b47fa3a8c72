#include "backend/backend.h"

#include <stdlib.h>
#include <string.h>

#include "banned.h"

/* A handful at most; registered at startup, only read afterwards (no lock). */
#define MAX_BACKENDS 16

static const struct arl_backend_ops *backends[MAX_BACKENDS];
static size_t nbackends;

void arl_backend_register(const struct arl_backend_ops *ops)
{
	if (arl_backend_find(arl_backend_name(ops)))
		return;
	if (nbackends == MAX_BACKENDS)
		abort(); /* a build with more backends raises MAX_BACKENDS */
	backends[nbackends++] = ops;
	arl_pool_kind_register(ops->pool);
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
