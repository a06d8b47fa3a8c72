/*
 * {{ ... }} templates in job strings. An expression is a variable (item, item.a.b, item.list.0,
 * params.NAME, job.name, run.id, run.name, attempt) or a quoted string literal: {{ "{{" }} writes a
 * literal "{{". Rendering happens twice: at load time with the item and job name known, and
 * per attempt for run.* and attempt, which load time leaves in place ("deferred").
 */
#ifndef ARL_TEMPLATE_H
#define ARL_TEMPLATE_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "err.h"

struct arl_tmpl_ctx {
	const cJSON *item;    /* NULL: the job has no foreach item */
	const cJSON *params;  /* the file's parameters (name -> string); NULL: it declares none */
	const char *job_name; /* NULL: not known yet (while rendering the name itself) */
	/* All NULL at load time: expressions naming them are kept for the attempt. */
	const char *run_id, *run_name, *attempt;
	/*
	 * Non-NULL: nothing job-specific is bound in this place (e.g. "a pool"); only params.NAME
	 * and quoted literals render.
	 */
	const char *no_vars;
};

/* True when @s contains "{{" at all (rendering can be skipped otherwise). */
bool arl_tmpl_has(const char *s);

/*
 * Renders @s into a new string (*out, owned by the caller). *deferred (may be NULL) is set when
 * run-time expressions were kept; then item values that contain "{{" are escaped so that the
 * second rendering reproduces them exactly. On error returns -1 with a message quoting the
 * expression, and *out is untouched.
 */
int arl_tmpl_render(const char *s, const struct arl_tmpl_ctx *c, char **out, bool *deferred,
                    struct arl_err *err);

#endif
