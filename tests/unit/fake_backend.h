/*
 * A backend for tests, registered beside the built-in ones without touching the loader or the
 * runner: pools `backend: fake` with a key of its own (greeting, required) that its own key
 * table checks. A Command step succeeds when its argv[0] is "true" and prints the pool's
 * greeting and its other arguments; FilePatch steps succeed.
 */
#ifndef ARL_TEST_FAKE_BACKEND_H
#define ARL_TEST_FAKE_BACKEND_H

#include "backend/backend.h"

struct arl_fake_pool {
	char *greeting;
};

extern const struct arl_backend_ops arl_fake_backend;

/* Pools opened by the last open(), for tests to check what the runner handed over. */
extern size_t arl_fake_backend_opened;

#endif
