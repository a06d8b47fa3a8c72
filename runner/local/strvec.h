/* A NULL-terminated vector of owned strings (argv, envp). */
#ifndef ARL_LOCAL_STRVEC_H
#define ARL_LOCAL_STRVEC_H

#include <stddef.h>

struct strvec {
	char **v;
	size_t n, cap;
};

/* Appends @s, taking ownership of it. */
void arl_local_sv_take(struct strvec *sv, char *s);
/* Appends a copy of @s. */
void arl_local_sv_push(struct strvec *sv, const char *s);
/* Frees every string and the vector, and empties it. */
void arl_local_sv_release(struct strvec *sv);

#endif
