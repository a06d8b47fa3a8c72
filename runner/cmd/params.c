#include "cmd/params.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "log.h"
#include "util.h"
#include "banned.h"

/* A parameter's value read from a file: as much as a job file may hold. */
#define PARAM_FILE_MAX (16u << 20)

static int add(struct arl_cli_params *p, const char *arg, char *value, struct arl_err *err)
{
	size_t n = strcspn(arg, "=");
	char *name;

	if (!arg[n] || !n) {
		free(value);
		return arl_error(err, ARL_E_USAGE, "expected NAME=%s", value ? "PATH" : "VALUE");
	}
	name = arl_xstrndup(arg, n);
	if (!value)
		value = arl_xstrdup(arg + n + 1);
	p->v = arl_xrealloc(p->v, (p->n + 1) * sizeof(*p->v));
	p->seen = arl_xrealloc(p->seen, (p->n + 1) * sizeof(*p->seen));
	p->owned = arl_xrealloc(p->owned, 2 * (p->n + 1) * sizeof(*p->owned));
	p->v[p->n] = (struct arl_param_set){name, value};
	p->seen[p->n] = false;
	p->owned[2 * p->n] = name;
	p->owned[2 * p->n + 1] = value;
	p->n++;
	return 0;
}

int arl_cli_param_set(const struct arl_option *o, const char *arg, struct arl_err *err)
{
	return add(o->value, arg, NULL, err);
}

int arl_cli_param_set_file(const struct arl_option *o, const char *arg, struct arl_err *err)
{
	struct arl_buf b = ARL_BUF_INIT;
	const char *eq = strchr(arg, '=');

	if (!eq || eq == arg)
		return arl_error(err, ARL_E_USAGE, "expected NAME=PATH");
	if (arl_buf_read_file(&b, eq + 1, PARAM_FILE_MAX, err) < 0) {
		arl_buf_release(&b);
		return -1;
	}
	if (memchr(b.p ? b.p : "", '\0', b.len)) {
		arl_buf_release(&b);
		return arl_error(err, ARL_E_USAGE, "'%s' holds a NUL byte: not text", eq + 1);
	}
	/* One final newline goes, as most files end with one and $(cat FILE) drops it. */
	if (b.len && b.p[b.len - 1] == '\n')
		b.p[--b.len] = '\0';
	return add(o->value, arg, b.p ? arl_buf_detach(&b, NULL) : arl_xstrdup(""), err);
}

void arl_cli_params_seen(struct arl_cli_params *p, const struct arl_jobfile *f)
{
	for (size_t i = 0; i < p->n; i++)
		if (cJSON_GetObjectItemCaseSensitive(f->params, p->v[i].name))
			p->seen[i] = true;
}

int arl_cli_params_unknown(const struct arl_cli_params *p)
{
	int bad = 0;

	for (size_t i = 0; i < p->n; i++) {
		bool again = false;

		for (size_t k = 0; k < i; k++)
			again |= !strcmp(p->v[k].name, p->v[i].name);
		if (p->seen[i] || again)
			continue;
		arl_log_error("--set %s: no job file declares a parameter '%s' (in 'params:')",
		              p->v[i].name, p->v[i].name);
		bad++;
	}
	return bad;
}

void arl_cli_params_release(struct arl_cli_params *p)
{
	for (size_t i = 0; i < 2 * p->n; i++)
		free(p->owned[i]);
	free(p->owned);
	free(p->v);
	free(p->seen);
	memset(p, 0, sizeof(*p));
}
