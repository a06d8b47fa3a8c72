#include "local/strvec.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "banned.h"

/* Appends @s, taking ownership of it. */
void arl_local_sv_take(struct strvec *sv, char *s)
{
	ARL_GROW(sv->v, sv->cap, sv->n + 2);
	sv->v[sv->n++] = s;
	sv->v[sv->n] = NULL;
}

void arl_local_sv_push(struct strvec *sv, const char *s)
{
	arl_local_sv_take(sv, arl_xstrdup(s));
}

void arl_local_sv_release(struct strvec *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	memset(sv, 0, sizeof(*sv));
}
