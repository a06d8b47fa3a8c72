/* The image store (image.h). */
#include "image/image.h"

#include <stdlib.h>
#include <unistd.h>

#include "util.h"

struct arl_image_store {
	char *dir;
	uid_t uid;
	gid_t gid;
};

static int not_yet(struct arl_err *err)
{
	return arl_error(err, ARL_E_BACKEND, "images are not supported yet");
}

char *arl_image_store_default_dir(void)
{
	const char *env = getenv("ARL_BATCH_IMAGES");
	const char *xdg, *home;

	if (env && *env)
		return arl_xstrdup(env);
	if (geteuid() == 0)
		return arl_xstrdup("/var/lib/arl-batch/images");
	xdg = getenv("XDG_DATA_HOME");
	if (xdg && *xdg == '/')
		return arl_xasprintf("%s/arl-batch/images", xdg);
	home = getenv("HOME");
	return arl_xasprintf("%s/.local/share/arl-batch/images", home && *home ? home : "/tmp");
}

int arl_image_store_open(struct arl_image_store **out, const char *dir, uid_t uid, gid_t gid,
                         struct arl_err *err)
{
	struct arl_image_store *s = arl_xcalloc(1, sizeof(*s));

	(void)err;
	s->dir = dir ? arl_xstrdup(dir) : arl_image_store_default_dir();
	s->uid = uid == (uid_t)-1 ? geteuid() : uid;
	s->gid = gid == (gid_t)-1 ? getegid() : gid;
	*out = s;
	return 0;
}

void arl_image_store_close(struct arl_image_store *s)
{
	if (!s)
		return;
	free(s->dir);
	free(s);
}

const char *arl_image_store_dir(const struct arl_image_store *s)
{
	return s->dir;
}

int arl_image_ref_check_syntax(const char *ref, struct arl_err *err)
{
	if (!ref || !*ref)
		return arl_error(err, ARL_E_INVALID, "empty image reference");
	return 0;
}

int arl_image_get(struct arl_image_store *s, const char *ref, struct arl_image **out,
                  struct arl_err *err)
{
	(void)s, (void)ref, (void)out;
	return not_yet(err);
}

int arl_image_check(struct arl_image_store *s, const char *ref, struct arl_err *err)
{
	(void)s, (void)ref;
	return not_yet(err);
}

void arl_image_free(struct arl_image *im)
{
	(void)im;
}

int arl_image_load(struct arl_image_store *s, const char *path, char ***tags, size_t *ntags,
                   struct arl_err *err)
{
	(void)s, (void)path, (void)tags, (void)ntags;
	return not_yet(err);
}

void arl_image_strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

int arl_image_list(struct arl_image_store *s, struct arl_image_info **out, size_t *n,
                   struct arl_err *err)
{
	(void)s, (void)out, (void)n;
	return not_yet(err);
}

void arl_image_infos_free(struct arl_image_info *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].id);
	}
	free(v);
}

int arl_image_rm(struct arl_image_store *s, const char *name, struct arl_err *err)
{
	(void)s, (void)name;
	return not_yet(err);
}

int arl_image_prune(struct arl_image_store *s, bool dry_run, struct arl_image_prune_stats *st,
                    struct arl_err *err)
{
	(void)s, (void)dry_run, (void)st;
	return not_yet(err);
}
