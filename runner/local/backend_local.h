/* What the local backend offers beyond the backend interface. */
#ifndef ARL_BACKEND_LOCAL_H
#define ARL_BACKEND_LOCAL_H

#include <stdbool.h>
#include <stdio.h>

#include "backend/backend.h"
#include "err.h"

extern const struct arl_backend_ops arl_backend_local;

/* Its gc op (backend.h): arl_local_gc() over g->state_dir, with what it found said. */
int arl_local_backend_gc(const struct arl_backend_gc_opts *g);

/*
 * Finds sandboxes in @state_dir whose runner is gone, judged by arl_owner_gone() from the
 * owner's identity in the directory's name (never from anything the sandbox can change), lists
 * each on @out (may be NULL) and deletes them when @remove. keepAlive sandboxes ("keep-*") are
 * never touched, nor are those of a runner in another PID namespace: *@foreign (may be NULL)
 * counts these. Returns how many were found, or -1.
 */
int arl_local_gc(const char *state_dir, bool remove, FILE *out, int *foreign, struct arl_err *err);

#endif
