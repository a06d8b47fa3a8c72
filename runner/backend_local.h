/* What the local backend offers beyond the backend interface. */
#ifndef ARL_BACKEND_LOCAL_H
#define ARL_BACKEND_LOCAL_H

#include <stdbool.h>
#include <stdio.h>

#include "err.h"

/*
 * Finds sandboxes in @state_dir whose runner is gone (its pid is not running, or was reused
 * since), lists each on @out (may be NULL) and deletes them when @remove. keepAlive sandboxes
 * ("keep-*") are never touched. Returns how many were found, or -1.
 */
int arl_local_gc(const char *state_dir, bool remove, FILE *out, struct arl_err *err);

#endif
