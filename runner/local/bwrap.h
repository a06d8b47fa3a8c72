/* bubblewrap for the local backend: its command line, its environment fd, and the probes. */
#ifndef ARL_LOCAL_BWRAP_H
#define ARL_LOCAL_BWRAP_H

#include <stdbool.h>

#include "err.h"
#include "local/strvec.h"

struct local;

/* bwrap's own environment: none (the step's comes through --args, see arl_local_env_args()). */
extern char *const arl_local_no_env[];

/*
 * Appends the bwrap command line up to and including "--" to @v. @ws is the host directory
 * bound at /workspace, @workdir the absolute working directory inside.
 */
void arl_local_bwrap_argv(const struct local *L, struct strvec *v, const char *ws,
                          const char *workdir, bool network);

/* @env ("K=V" ...) as bwrap options in a sealed memfd for --args; returns the fd or -1. */
int arl_local_env_args(char *const *env, struct arl_err *err);

/* The absolute path of bwrap in our PATH, or NULL. */
char *arl_local_find_bwrap(void);

/* Notes how the host's /bin, /lib... and /etc/resolv.conf look, for arl_local_bwrap_argv(). */
void arl_local_probe_root_layout(struct local *L);

/* Runs `true` in a sandbox built exactly as steps' are, so open() fails with advice. */
int arl_local_probe_bwrap(struct local *L, const char *pool_name, bool network,
                          struct arl_err *err);

#endif
