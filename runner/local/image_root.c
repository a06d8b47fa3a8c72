/*
 * An image as a local sandbox's root (image_root.h).
 *
 * DESIGN
 * - bwrap binds each unpacked layer read-only at IMAGE_STAGING/0 (the bottom) ... N-1 and the
 *   sandbox directory (uppers) at COW_STAGING/sb, as for the copy-on-write root (cow_root.h).
 *   The agent (agent/mounts.h) mounts the overlay of the layers, named relative to
 *   IMAGE_STAGING so that even 500 fit in the kernel's one page of mount options, on
 *   IMAGE_ROOT_STAGING with the upper upper/.image; then the workspace's overlay as for the
 *   host root; then forbids user namespaces and pivots: /proc, /dev, /tmp and /workspace move
 *   into the image's root, which becomes the root, and bwrap's root (host binds, staging)
 *   is detached. Nothing of the host's /usr or /etc is left in sight.
 * - The layers' files belong to the sandbox's host uid (the image store unpacks them so), the
 *   one uid the sandbox maps: bwrap maps it to the image's User instead of 0 (its uid and
 *   gid, looked up in the image's own /etc/passwd and /etc/group), so steps run as that user
 *   and every file of the image is theirs to change (copied up; the cached layer never
 *   changes). Other ids do not exist inside: files show as the User's, setuid() to any other
 *   uid fails, as in a rootless container with one mapped id.
 * - Images are resolved once per run, on first use (a pool's or a job's own), and kept until
 *   the backend closes; two workers resolving one image at once both ask the store (which
 *   unpacks once) and the second copy is dropped.
 */
#include "local/image_root.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/image.h"
#include "local/cow_root.h"
#include "local/identity.h"
#include "local/local.h"
#include "util.h"
#include "banned.h"

#define IMAGE_STAGING COW_STAGING "/img"
#define IMAGE_UPPER   ".image" /* in upper/ and work/: no host tree has this name */
#define PASSWD_MAX    (4 << 20)

/*
 * As root bwrap runs as the sandbox uid and finds the layers by path: every directory above
 * them must let that uid through. Said once per image, at its first use, rather than as
 * bwrap's "Can't find source path" in every attempt.
 */
int arl_local_image_reachable(uid_t uid, gid_t gid, const char *path, struct arl_err *err)
{
	char *p = arl_xstrdup(path);
	struct stat st;
	int ret = 0;

	for (char *s = p + 1;; s++) {
		char c = *s;

		if (c != '/' && c)
			continue;
		*s = '\0';
		if (stat(p, &st) < 0) {
			ret = arl_error_errno(err, errno, "cannot use layer '%s'", path);
			break;
		}
		if (!(st.st_mode & S_IXOTH) && !(st.st_uid == uid && (st.st_mode & S_IXUSR)) &&
		    !(st.st_gid == gid && (st.st_mode & S_IXGRP))) {
			ret =
			    arl_error(err, ARL_E_BACKEND,
			              "its layers in '%s' are out of the sandbox uid %u's reach "
			              "('%s' is mode %04o): keep the image store where every user "
			              "may pass ($ARL_BATCH_IMAGES; the default "
			              "/var/lib/arl-batch/images is)",
			              path, (unsigned)uid, p, (unsigned)(st.st_mode & 07777));
			break;
		}
		*s = c;
		if (!c)
			break;
	}
	free(p);
	return ret;
}

int arl_local_image_get(struct local *L, const char *ref, const struct local_image **out,
                        struct arl_err *err)
{
	struct local_image *li = NULL;
	struct arl_image *im = NULL;
	struct arl_image_store *store;
	int ret = -1;

	pthread_mutex_lock(&L->img_mu);
	for (size_t i = 0; i < L->nimages; i++) {
		if (!strcmp(L->images[i]->im->ref, ref)) {
			*out = L->images[i];
			pthread_mutex_unlock(&L->img_mu);
			return 0;
		}
	}
	if (!L->image_store &&
	    arl_image_store_open(&L->image_store, NULL, L->drop ? L->sb_uid : (uid_t)-1,
	                         L->drop ? L->sb_gid : (gid_t)-1, err) < 0) {
		pthread_mutex_unlock(&L->img_mu);
		return -1;
	}
	store = L->image_store;
	pthread_mutex_unlock(&L->img_mu);
	/* Unlocked: a first use unpacks, and other images may be resolved meanwhile. */
	if (arl_image_get(store, ref, &im, err) < 0)
		goto out;
	if (!im->nlayers) {
		arl_error(err, ARL_E_INVALID, "image '%s' has no layers", ref);
		goto out;
	}
	for (size_t i = 0; L->drop && i < im->nlayers; i++)
		if (arl_local_image_reachable(L->sb_uid, L->sb_gid, im->layers[i], err) < 0)
			goto out;
	li = arl_xcalloc(1, sizeof(*li));
	if (arl_local_image_user(im->layers, im->nlayers, im->config.user, &li->uid, &li->gid,
	                         err) < 0)
		goto out;
	pthread_mutex_lock(&L->img_mu);
	for (size_t i = 0; i < L->nimages && li; i++) {
		if (!strcmp(L->images[i]->im->ref, ref)) {
			*out = L->images[i];
			pthread_mutex_unlock(&L->img_mu);
			ret = 0;
			goto out; /* resolved meanwhile by another worker */
		}
	}
	ARL_GROW(L->images, L->capimages, L->nimages + 1);
	li->im = im;
	L->images[L->nimages++] = li;
	*out = li;
	pthread_mutex_unlock(&L->img_mu);
	return 0;
out:
	if (ret < 0 && !strstr(err->msg, ref))
		arl_err_prefix(err, "image '%s'", ref);
	free(li);
	arl_image_free(im);
	return ret;
}

int arl_local_image_owner(uid_t *uid, gid_t *gid, struct arl_err *err)
{
	struct local L = {0};

	*uid = (uid_t)-1;
	*gid = (gid_t)-1;
	if (geteuid() != 0)
		return 0;
	if (arl_local_sandbox_ids(&L, err) < 0)
		return -1;
	*uid = L.sb_uid;
	*gid = L.sb_gid;
	return 0;
}

void arl_local_images_close(struct local *L)
{
	for (size_t i = 0; i < L->nimages; i++) {
		arl_image_free(L->images[i]->im);
		free(L->images[i]);
	}
	free(L->images);
	L->images = NULL;
	L->nimages = L->capimages = 0;
	arl_image_store_close(L->image_store);
	L->image_store = NULL;
}

int arl_local_image_uppers(const struct local *L, int sbfd, struct arl_err *err)
{
	static const char *const dirs[] = {"upper/" IMAGE_UPPER, "work/" IMAGE_UPPER};

	for (size_t i = 0; i < 2; i++) {
		int fd;

		if (mkdirat(sbfd, dirs[i], 0755) < 0 ||
		    (fd = openat(sbfd, dirs[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) <
		        0)
			return arl_error_errno(
			    err, errno, "cannot make '%s' in the sandbox directory", dirs[i]);
		if (L->drop && fchown(fd, L->sb_uid, L->sb_gid) < 0) {
			close(fd);
			return arl_error_errno(
			    err, errno, "cannot chown '%s' in the sandbox directory", dirs[i]);
		}
		close(fd);
	}
	return 0;
}

static void push(struct strvec *v, const char *a, const char *b, const char *c)
{
	arl_local_sv_push(v, a);
	arl_local_sv_push(v, b);
	if (c)
		arl_local_sv_push(v, c);
}

void arl_local_image_bwrap_args(const struct local_image *img, struct strvec *v, const char *sb,
                                const char *ws_lower)
{
	/* As the copy-on-write root's, and CAP_SETFCAP to map the User (mounts.h's --as-user). */
	static const char *const caps[] = {"CAP_SYS_ADMIN", "CAP_DAC_OVERRIDE", "CAP_SYS_RESOURCE",
	                                   "CAP_SETPCAP", "CAP_SETFCAP"};

	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
		push(v, "--cap-add", caps[i], NULL);
	push(v, "--tmpfs", COW_STAGING, NULL);
	for (size_t i = 0; i < img->im->nlayers; i++) {
		char *at = arl_xasprintf(IMAGE_STAGING "/%zu", i);

		push(v, "--ro-bind", img->im->layers[i], at);
		free(at);
	}
	push(v, "--bind", sb, COW_STAGING "/sb");
	if (ws_lower)
		push(v, "--ro-bind", ws_lower, COW_STAGING "/low/workspace");
	else
		push(v, "--dir", COW_STAGING "/low/workspace", NULL);
	push(v, "--dir", WS_INSIDE, NULL);
	push(v, "--dir", IMAGE_ROOT_STAGING, NULL);
}

void arl_local_image_plan(const struct local_image *img, struct strvec *plan)
{
	arl_local_sv_push(plan, "--layers");
	push(plan, IMAGE_ROOT_STAGING, IMAGE_STAGING, NULL);
	arl_local_sv_take(plan, arl_xasprintf("%zu", img->im->nlayers));
	push(plan, COW_STAGING "/sb/upper/" IMAGE_UPPER, COW_STAGING "/sb/work/" IMAGE_UPPER, NULL);
	push(plan, "--overlay", WS_INSIDE, COW_STAGING "/low/workspace");
	push(plan, COW_STAGING "/sb/upper/workspace", COW_STAGING "/sb/work/workspace", NULL);
	push(plan, "--no-userns", COW_STAGING "/proc", NULL);
	push(plan, "--pivot", IMAGE_ROOT_STAGING, NULL);
	if (img->uid || img->gid) {
		arl_local_sv_push(plan, "--as-user");
		arl_local_sv_take(plan, arl_xasprintf("%u", (unsigned)img->uid));
		arl_local_sv_take(plan, arl_xasprintf("%u", (unsigned)img->gid));
	}
}

/*
 * The image's etc/@name (passwd, group) as the merged root shows it: from the topmost layer
 * that has it; a whiteout or anything not a regular file there hides it (*out NULL). Opened
 * one component at a time without following links: a layer's etc may be a symlink to any
 * host path, which we read as the runner.
 */
static int read_etc(char *const *layers, size_t n, const char *name, char **out,
                    struct arl_err *err)
{
	*out = NULL;
	for (size_t i = n; i-- > 0;) {
		int lfd = open(layers[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int efd = lfd < 0
		              ? -1
		              : openat(lfd, "etc", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		struct stat st;
		int fd = -1, found = 0;

		if (lfd < 0)
			return arl_error_errno(err, errno, "cannot open layer '%s'", layers[i]);
		if (efd >= 0 && fstatat(efd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			found = 1;
			if (S_ISREG(st.st_mode) && st.st_size < PASSWD_MAX)
				fd = openat(efd, name,
				            O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		} else if (efd < 0 && fstatat(lfd, "etc", &st, AT_SYMLINK_NOFOLLOW) == 0) {
			found = 1; /* etc is no directory here (a whiteout, a link): no file */
		}
		if (fd >= 0) {
			char *buf = arl_xmalloc((size_t)st.st_size + 1);
			ssize_t r = read(fd, buf, (size_t)st.st_size);

			buf[r > 0 ? r : 0] = '\0';
			*out = buf;
			close(fd);
		}
		if (efd >= 0)
			close(efd);
		close(lfd);
		if (found)
			return 0;
	}
	return 0;
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/*
 * Looks @key up in a passwd or group file @db: a name (field 0) or a number (field 2); the
 * numbers in fields 2 and 3 (3 only for passwd) go to *id and *gid. 0 when found.
 */
static int db_find(const char *db, const char *key, unsigned long *id, unsigned long *gid)
{
	bool by_number = all_digits(key);

	for (const char *line = db; line && *line;) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		char *copy = arl_xstrndup(line, len), *f[4] = {0}, *p = copy;
		size_t nf = 0;
		int ok = 0;

		while (nf < 4 && p) /* name:password:id:gid:... */
			f[nf++] = strsep(&p, ":");
		if (nf >= 3 && all_digits(f[2]) &&
		    (by_number ? !strcmp(f[2], key) : !strcmp(f[0], key))) {
			*id = strtoul(f[2], NULL, 10);
			if (gid)
				*gid = nf >= 4 && all_digits(f[3]) ? strtoul(f[3], NULL, 10) : 0;
			ok = 1;
		}
		free(copy);
		if (ok)
			return 0;
		line = end ? end + 1 : NULL;
	}
	return -1;
}

int arl_local_image_user(char *const *layers, size_t nlayers, const char *user, uid_t *uid,
                         gid_t *gid, struct arl_err *err)
{
	char *passwd = NULL, *group = NULL, *name = NULL;
	const char *grp;
	unsigned long u = 0, g = 0;
	int ret = -1;

	*uid = 0;
	*gid = 0;
	if (!user || !user[0])
		return 0;
	name = arl_xstrdup(user);
	grp = strchr(name, ':');
	if (grp)
		name[grp++ - name] = '\0';
	if (read_etc(layers, nlayers, "passwd", &passwd, err) < 0)
		goto out;
	if (!passwd || db_find(passwd, name, &u, &g) < 0) {
		if (!all_digits(name)) {
			arl_error(err, ARL_E_INVALID,
			          "its User '%s' is not a user of the image's /etc/passwd", user);
			goto out;
		}
		u = strtoul(name, NULL, 10); /* a plain uid may have no entry, as in Docker */
		g = 0;
	}
	if (grp) {
		if (read_etc(layers, nlayers, "group", &group, err) < 0)
			goto out;
		if ((!group || db_find(group, grp, &g, NULL) < 0) && !all_digits(grp)) {
			arl_error(err, ARL_E_INVALID,
			          "its User '%s' names group '%s', which the image's /etc/group "
			          "does not have",
			          user, grp);
			goto out;
		} else if (!group || db_find(group, grp, &g, NULL) < 0) {
			g = strtoul(grp, NULL, 10);
		}
	}
	if (u >= 0xfffffffeUL || g >= 0xfffffffeUL) {
		arl_error(err, ARL_E_INVALID, "its User '%s' is not an id a sandbox can map", user);
		goto out;
	}
	*uid = (uid_t)u;
	*gid = (gid_t)g;
	ret = 0;
out:
	free(passwd);
	free(group);
	free(name);
	return ret;
}
