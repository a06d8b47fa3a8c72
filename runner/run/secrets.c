/*
 * DESIGN: masking works on the final captured text, never on read chunks, so a value split
 * across reads is still whole. Each value is masked, and each line of a multi-line one (a PEM
 * key printed line by line); longer masks first, so a value containing another is masked
 * whole. Output kept as head + marker + tail may have cut a value at the marker: the bytes
 * around it that are a value's start (before) or end (after) are masked too.
 */
#include "run/secrets.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "util.h"
#include "banned.h"

#define MASK "***"

static void add_mask(struct arl_secrets *s, const char *p, size_t n)
{
	if (n < ARL_SECRET_MIN_LEN)
		return;
	for (size_t i = 0; i < s->nmasks; i++)
		if (strlen(s->masks[i]) == n && !memcmp(s->masks[i], p, n))
			return;
	s->masks = arl_xrealloc(s->masks, (s->nmasks + 1) * sizeof(*s->masks));
	s->masks[s->nmasks++] = arl_xstrndup(p, n);
}

static int by_length_desc(const void *a, const void *b)
{
	size_t x = strlen(*(char *const *)a), y = strlen(*(char *const *)b);

	return (x < y) - (x > y);
}

int arl_secrets_load(struct arl_secrets *s, struct arl_jobfile *const *files, size_t nfiles,
                     struct arl_err *err)
{
	memset(s, 0, sizeof(*s));
	for (size_t i = 0; i < nfiles; i++) {
		for (size_t k = 0; k < files[i]->nsecrets; k++) {
			const char *name = files[i]->secrets[k], *v = getenv(name);

			if (arl_strmap_get(&s->env, name))
				continue;
			if (!v)
				return arl_error(err, ARL_E_USAGE,
				                 "%s: secret '%s' is not set in the environment",
				                 files[i]->path, name);
			if (strlen(v) < ARL_SECRET_MIN_LEN)
				return arl_error(
				    err, ARL_E_USAGE,
				    "%s: secret '%s' is shorter than %d bytes: too short to "
				    "mask in output",
				    files[i]->path, name, ARL_SECRET_MIN_LEN);
			arl_strmap_set(&s->env, name, v);
			add_mask(s, v, strlen(v));
			for (const char *l = v; *l;) {
				size_t n = strcspn(l, "\r\n");

				if (l != v || l[n])
					add_mask(s, l, n);
				l += n;
				l += strspn(l, "\r\n");
			}
		}
	}
	if (s->nmasks)
		qsort(s->masks, s->nmasks, sizeof(*s->masks), by_length_desc);
	s->lens = arl_xcalloc(s->nmasks + 1, sizeof(*s->lens));
	for (size_t i = 0; i < s->nmasks; i++) {
		s->lens[i] = strlen(s->masks[i]);
		s->first[(unsigned char)s->masks[i][0]] = true;
	}
	return 0;
}

void arl_secrets_release(struct arl_secrets *s)
{
	for (size_t i = 0; i < s->nmasks; i++) {
		/* The values do not outlive the run in freed memory either. */
		explicit_bzero(s->masks[i], strlen(s->masks[i]));
		free(s->masks[i]);
	}
	free(s->masks);
	free(s->lens);
	for (size_t i = 0; i < s->env.n; i++)
		explicit_bzero(s->env.v[i].val, strlen(s->env.v[i].val));
	arl_strmap_release(&s->env);
	memset(s, 0, sizeof(*s));
}

void arl_secrets_apply(const struct arl_secrets *s, const struct arl_jobfile *f,
                       struct arl_step *step)
{
	for (size_t i = 0; f && i < f->nsecrets; i++) {
		const char *v = arl_strmap_get(&s->env, f->secrets[i]);

		if (v)
			arl_strmap_set(&step->env, f->secrets[i], v);
	}
}

/* @p/@len with every mask replaced into @b; false when there was none. */
static bool mask_mem(const struct arl_secrets *s, const char *p, size_t len, struct arl_buf *b)
{
	bool any = false;
	size_t from = 0;

	for (size_t i = 0; i < len;) {
		size_t hit = 0;

		if (!s->first[(unsigned char)p[i]]) {
			i++;
			continue;
		}
		for (size_t k = 0; k < s->nmasks && !hit; k++)
			if (s->lens[k] <= len - i && !memcmp(p + i, s->masks[k], s->lens[k]))
				hit = s->lens[k];
		if (!hit) {
			i++;
			continue;
		}
		arl_buf_add(b, p + from, i - from);
		arl_buf_addstr(b, MASK);
		i += hit;
		from = i;
		any = true;
	}
	if (any)
		arl_buf_add(b, p + from, len - from);
	return any;
}

void arl_secrets_mask_str(const struct arl_secrets *s, char **p)
{
	struct arl_buf b = ARL_BUF_INIT;

	if (!s || !s->nmasks || !*p)
		return;
	if (mask_mem(s, *p, strlen(*p), &b)) {
		explicit_bzero(*p, strlen(*p));
		free(*p);
		*p = arl_buf_detach(&b, NULL);
	}
}

/* Masks, in place, the longest part of a value that ends (@head) or starts at @at. */
static void mask_cut(const struct arl_secrets *s, char *p, size_t len, size_t at, bool head)
{
	size_t best = 0;

	for (size_t k = 0; k < s->nmasks; k++) {
		const char *m = s->masks[k];
		size_t n = strlen(m);

		for (size_t c = n - 1; c > best; c--) {
			if (head ? c <= at && !memcmp(p + at - c, m, c)
			         : c <= len - at && !memcmp(p + at, m + n - c, c)) {
				best = c;
				break;
			}
		}
	}
	/* The same length of '*': the marker's position in the text does not move. */
	memset(head ? p + at - best : p + at, '*', best);
}

void arl_secrets_mask_output(const struct arl_secrets *s, struct arl_output *o)
{
	struct arl_buf b = ARL_BUF_INIT;

	if (!s || !s->nmasks || !o->data)
		return;
	if (o->truncated) {
		static const char open[] = "\n[... ", close[] = " bytes truncated ...]\n";
		char *m = o->data, *end = o->data + o->len, *c;

		while ((m = memmem(m, (size_t)(end - m), open, sizeof(open) - 1)) &&
		       (c = memmem(m, (size_t)(end - m), close, sizeof(close) - 1))) {
			mask_cut(s, o->data, o->len, (size_t)(m - o->data), true);
			mask_cut(s, o->data, o->len, (size_t)(c + sizeof(close) - 1 - o->data),
			         false);
			m = c;
		}
	}
	if (mask_mem(s, o->data, o->len, &b)) {
		explicit_bzero(o->data, o->len);
		free(o->data);
		o->data = arl_buf_detach(&b, &o->len);
	}
}

void arl_secrets_mask_attempt(const struct arl_secrets *s, struct arl_attempt_result *a)
{
	if (!s || !s->nmasks)
		return;
	arl_secrets_mask_str(s, &a->error);
	for (size_t i = 0; i < a->nsteps; i++) {
		arl_secrets_mask_output(s, &a->steps[i].out);
		arl_secrets_mask_output(s, &a->steps[i].err);
		arl_secrets_mask_str(s, &a->steps[i].metrics_error);
	}
	/* A file's name is the step's to choose: it may spell a value too. */
	for (size_t i = 0; i < a->nartifacts; i++) {
		arl_secrets_mask_str(s, &a->artifacts[i].path);
		arl_secrets_mask_str(s, &a->artifacts[i].error);
	}
}
