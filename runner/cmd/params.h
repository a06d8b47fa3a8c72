/*
 * --set NAME=VALUE and --set-file NAME=PATH, shared by `run` and `validate`: the values that
 * override job files' 'params:' defaults (docs/jobfile.md, Parameters).
 */
#ifndef ARL_CMD_PARAMS_H
#define ARL_CMD_PARAMS_H

#include <stdbool.h>
#include <stddef.h>

#include "cmd/options.h"
#include "jobfile/job.h"

struct arl_cli_params {
	struct arl_param_set *v; /* names and values owned (the strings of @owned) */
	bool *seen;              /* v[i] is declared by a file loaded so far */
	char **owned;
	size_t n;
};

/* Option callbacks: @o->value is a struct arl_cli_params. */
arl_opt_cb arl_cli_param_set, arl_cli_param_set_file;

#define ARL_OPT_PARAMS(p)                                                                          \
	ARL_OPT_CALLBACK(0, "set", p, arl_cli_param_set, "NAME=VALUE",                             \
	                 "give parameter NAME (the file's 'params:') this value"),                 \
	    ARL_OPT_CALLBACK(0, "set-file", p, arl_cli_param_set_file, "NAME=PATH",                \
	                     "give parameter NAME the content of file PATH")

/* Marks the names @f declares; call for each file loaded. */
void arl_cli_params_seen(struct arl_cli_params *p, const struct arl_jobfile *f);
/* Logs an error for each name no file declared; returns how many there were. */
int arl_cli_params_unknown(const struct arl_cli_params *p);
void arl_cli_params_release(struct arl_cli_params *p);

#endif
