#include "job.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "banned.h"

void arl_strmap_set(struct arl_strmap *m, const char *key, const char *val)
{
	for (size_t i = 0; i < m->n; i++) {
		if (!strcmp(m->v[i].key, key)) {
			free(m->v[i].val);
			m->v[i].val = arl_xstrdup(val);
			return;
		}
	}
	m->v = arl_xrealloc(m->v, (m->n + 1) * sizeof(*m->v));
	m->v[m->n].key = arl_xstrdup(key);
	m->v[m->n].val = arl_xstrdup(val);
	m->n++;
}

const char *arl_strmap_get(const struct arl_strmap *m, const char *key)
{
	for (size_t i = 0; i < m->n; i++)
		if (!strcmp(m->v[i].key, key))
			return m->v[i].val;
	return NULL;
}

void arl_strmap_release(struct arl_strmap *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->v[i].key);
		free(m->v[i].val);
	}
	free(m->v);
	m->v = NULL;
	m->n = 0;
}

void arl_step_release(struct arl_step *s)
{
	free(s->name);
	for (size_t i = 0; i < s->argc; i++)
		free(s->argv[i]);
	free(s->argv);
	free(s->work_dir);
	arl_strmap_release(&s->env);
	free(s->path);
	free(s->content);
	memset(s, 0, sizeof(*s));
}

void arl_steps_release(struct arl_steps *s)
{
	for (size_t i = 0; i < s->n; i++)
		arl_step_release(&s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

void arl_job_release(struct arl_job *j)
{
	free(j->name);
	free(j->key);
	arl_strmap_release(&j->labels);
	arl_steps_release(&j->steps);
	arl_steps_release(&j->on_success);
	arl_steps_release(&j->on_failure);
	arl_steps_release(&j->on_complete);
	free(j->item);
	memset(j, 0, sizeof(*j));
}

void arl_jobfile_free(struct arl_jobfile *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->npools; i++) {
		struct arl_pool *p = &f->pools[i];

		free(p->name);
		free(p->workspace);
		free(p->namespace);
		free(p->image);
		free(p->sidecar_image);
		free(p->testbed_path);
	}
	free(f->pools);
	for (size_t i = 0; i < f->njobs; i++)
		arl_job_release(&f->jobs[i]);
	free(f->jobs);
	free(f->path);
	free(f->stem);
	free(f->name);
	free(f);
}
