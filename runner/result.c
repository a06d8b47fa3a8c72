#include "result.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "banned.h"

const char *arl_state_name(enum arl_state s)
{
	static const char *const names[] = {"Pending", "Running", "Succeeded",
	                                    "Failed",  "Skipped", "Cancelled"};

	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "Unknown";
}

static const char *const class_names[] = {NULL, "failed", "timeout", "infra", "cancelled"};

const char *arl_class_name(enum arl_class c)
{
	return (unsigned)c < sizeof(class_names) / sizeof(class_names[0]) ? class_names[c] : NULL;
}

int arl_class_parse(const char *s, enum arl_class *out)
{
	for (size_t i = 1; i < sizeof(class_names) / sizeof(class_names[0]); i++) {
		if (!strcmp(s, class_names[i])) {
			*out = (enum arl_class)i;
			return 0;
		}
	}
	return -1;
}

void arl_output_take(struct arl_output *o, char *s, size_t max)
{
	size_t len = strlen(s), half = max / 2, mlen;
	uint64_t dropped = len - 2 * half;
	char marker[80];

	arl_output_release(o);
	if (!max || len <= max) {
		o->data = s;
		o->len = len;
		return;
	}
	mlen = (size_t)snprintf(marker, sizeof(marker), ARL_OUTPUT_ELIDED, dropped);
	o->len = 2 * half + mlen;
	o->data = arl_xmalloc(o->len + 1);
	memcpy(o->data, s, half);
	memcpy(o->data + half, marker, mlen);
	memcpy(o->data + half + mlen, s + len - half, half);
	o->data[o->len] = '\0';
	o->truncated = true;
	free(s);
}

void arl_output_release(struct arl_output *o)
{
	free(o->data);
	memset(o, 0, sizeof(*o));
}

void arl_step_result_release(struct arl_step_result *s)
{
	free(s->name);
	free(s->metrics_error);
	arl_output_release(&s->out);
	arl_output_release(&s->err);
	memset(s, 0, sizeof(*s));
}

void arl_attempt_result_release(struct arl_attempt_result *a)
{
	for (size_t i = 0; i < a->nsteps; i++)
		arl_step_result_release(&a->steps[i]);
	free(a->steps);
	for (size_t i = 0; i < a->nartifacts; i++) {
		free(a->artifacts[i].path);
		free(a->artifacts[i].error);
	}
	free(a->artifacts);
	free(a->sandbox);
	free(a->error);
	memset(a, 0, sizeof(*a));
}

void arl_job_result_release(struct arl_job_result *j)
{
	for (size_t i = 0; i < j->nattempts; i++)
		arl_attempt_result_release(&j->attempts[i]);
	free(j->attempts);
	for (size_t i = 0; i < j->nmetrics; i++) {
		free(j->metrics[i].name);
		free(j->metrics[i].text);
	}
	free(j->metrics);
	free(j->error);
	memset(j, 0, sizeof(*j));
}
