/* The images of job files' local pools, before a run or in validate (cli_images.h). */
#include "cmd/cli_images.h"

#include <stdlib.h>
#include <string.h>

#include "image/image.h"
#include "jobfile/job.h"
#include "local/image_root.h"
#include "local/local_pool.h"
#include "log.h"
#include "util.h"
#include "banned.h"

/* One image reference and what became of it. */
struct ref {
	const char *ref; /* borrowed from the job file */
	char *id;        /* resolved: its id; NULL: not (yet), or unusable */
	bool bad;
};

/* The image a job's sandbox runs from: its own, else its pool's; NULL: the host's root. */
static const char *job_image(const struct arl_jobfile *f, const struct arl_job *j)
{
	const struct arl_pool *p = &f->pools[j->pool];

	if (p->kind != &arl_local_pool_kind)
		return NULL;
	return j->image ? j->image : arl_local_pool(p)->image;
}

static struct ref *find(struct ref *v, size_t n, const char *ref)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].ref, ref))
			return &v[i];
	return NULL;
}

/* Adds @ref (NULL: nothing) to @v unless it is there. */
static void add(struct ref **v, size_t *n, size_t *cap, const char *ref)
{
	if (!ref || find(*v, *n, ref))
		return;
	ARL_GROW(*v, *cap, *n + 1);
	(*v)[(*n)++] = (struct ref){.ref = ref};
}

/*
 * Resolves @r: unpacked as the sandboxes will use it (for @uid/@gid; -1: ours), within their
 * reach, and its User looked up.
 */
static void resolve_one(struct arl_image_store *s, struct ref *r, uid_t uid, gid_t gid)
{
	struct arl_err err = ARL_ERR_INIT;
	struct arl_image *im = NULL;
	uid_t iu;
	gid_t ig;

	/* The store's messages name the image already. */
	if (arl_image_get(s, r->ref, &im, &err) < 0) {
		arl_log_error("%s", err.msg);
		r->bad = true;
	} else if (arl_local_image_user(im->layers, im->nlayers, im->config.user, &iu, &ig, &err) <
	           0) {
		arl_log_error("image '%s': %s", r->ref, err.msg);
		r->bad = true;
	}
	for (size_t i = 0; im && uid != (uid_t)-1 && !r->bad && i < im->nlayers; i++) {
		if (arl_local_image_reachable(uid, gid, im->layers[i], &err) < 0) {
			arl_log_error("image '%s': %s", r->ref, err.msg);
			r->bad = true;
		}
	}
	if (!r->bad)
		r->id = arl_xstrdup(im->id);
	arl_image_free(im);
}

size_t arl_cli_images(struct arl_jobfile *const *files, size_t nfiles, bool resolve)
{
	struct arl_image_store *store = NULL;
	struct arl_err err = ARL_ERR_INIT;
	struct ref *refs = NULL;
	size_t nrefs = 0, cap = 0, bad = 0;
	uid_t uid;
	gid_t gid;

	for (size_t i = 0; i < nfiles; i++) {
		for (size_t k = 0; k < files[i]->npools; k++)
			if (files[i]->pools[k].kind == &arl_local_pool_kind)
				add(&refs, &nrefs, &cap,
				    arl_local_pool(&files[i]->pools[k])->image);
		for (size_t j = 0; j < files[i]->njobs; j++)
			add(&refs, &nrefs, &cap, job_image(files[i], &files[i]->jobs[j]));
	}
	if (!nrefs)
		return 0;
	/* The sandboxes' owner: layers are unpacked once per owner (image.h). */
	if (arl_local_image_owner(&uid, &gid, &err) < 0 ||
	    arl_image_store_open(&store, NULL, uid, gid, &err) < 0) {
		arl_log_error("%s", err.msg);
		free(refs);
		return nrefs;
	}
	for (size_t i = 0; i < nrefs; i++) {
		if (resolve) {
			resolve_one(store, &refs[i], uid, gid);
		} else if (arl_image_check(store, refs[i].ref, &err) < 0) {
			arl_log_error("%s", err.msg);
			refs[i].bad = true;
			err = (struct arl_err)ARL_ERR_INIT;
		}
		bad += refs[i].bad;
	}
	for (size_t i = 0; resolve && !bad && i < nfiles; i++) {
		for (size_t j = 0; j < files[i]->njobs; j++) {
			const char *ref = job_image(files[i], &files[i]->jobs[j]);
			const struct ref *r = ref ? find(refs, nrefs, ref) : NULL;

			if (r && r->id)
				arl_job_spec_hash_fold(files[i]->jobs[j].spec_hash, r->id);
		}
	}
	for (size_t i = 0; i < nrefs; i++)
		free(refs[i].id);
	free(refs);
	arl_image_store_close(store);
	return bad;
}
