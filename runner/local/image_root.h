/*
 * An image as a local sandbox's root (issue 15): the image's layers (image/image.h) become the
 * lowers of an overlay that the agent makes the root, under the sandbox's own upper; the
 * image's Env, WorkingDir and User apply to its steps (see DESIGN in image_root.c).
 */
#ifndef ARL_LOCAL_IMAGE_ROOT_H
#define ARL_LOCAL_IMAGE_ROOT_H

#include <stdbool.h>
#include <sys/types.h>

#include "err.h"
#include "local/strvec.h"

struct local;
struct arl_image;
struct arl_image_config;

/* An image resolved for a run's sandboxes: shared by them, freed at the backend's close. */
struct local_image {
	struct arl_image *im;
	uid_t uid; /* the image's User inside the sandbox (the one uid mapped to the host's) */
	gid_t gid;
};

/* Where the image's root is mounted, under the staging place, before it becomes the root. */
#define IMAGE_ROOT_STAGING "/.arl-layers/root"

/*
 * The image @ref for a sandbox of the run: resolved, unpacked and its User looked up once per
 * run (later calls are a lookup). Thread-safe. -1 with a message naming the image.
 */
int arl_local_image_get(struct local *L, const char *ref, const struct local_image **out,
                        struct arl_err *err);

/*
 * Who the image store unpacks layers for (image.h unpacks once per owner): the sandboxes'
 * host uid and gid, as the backend will run them (the sandbox ids as root, ours otherwise).
 */
int arl_local_image_owner(uid_t *uid, gid_t *gid, struct arl_err *err);

/*
 * As root: whether @uid/@gid (the sandbox's) may pass through every directory down to layer
 * @path, which bwrap binds by path as that uid. -1 with a message saying where and how not.
 */
int arl_local_image_reachable(uid_t uid, gid_t gid, const char *path, struct arl_err *err);

/* Frees the images the run resolved, and its image store. */
void arl_local_images_close(struct local *L);

/* Makes the image root's upper and work directories in sandbox directory @sbfd. */
int arl_local_image_uppers(const struct local *L, int sbfd, struct arl_err *err);

/*
 * Appends to bwrap's options the staging of @img's layers and of the sandbox directory @sb
 * (uppers) and the pool's workspace @ws_lower (NULL: an empty one), as
 * arl_cow_root_bwrap_args() does for the host's trees.
 */
void arl_local_image_bwrap_args(const struct local_image *img, struct strvec *v, const char *sb,
                                const char *ws_lower);

/* Appends the agent's plan: the image's root, the workspace's overlay, then the pivot. */
void arl_local_image_plan(const struct local_image *img, struct strvec *plan);

/*
 * The image's User as ids inside, looked up in its own /etc/passwd and /etc/group (@layers,
 * bottom first, read without following any link): "" is root; "name", "uid", "name:group",
 * "uid:gid". -1 with a message when it names no user there.
 */
int arl_local_image_user(char *const *layers, size_t nlayers, const char *user, uid_t *uid,
                         gid_t *gid, struct arl_err *err);

#endif
