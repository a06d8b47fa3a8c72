/*
 * Container images for local pools (issue 15): a store of images on this machine and their
 * layers, each unpacked once into a content-addressed cache that every run shares, ready to be
 * stacked as overlay lower directories.
 *
 * A reference is one of:
 *   NAME[:TAG]              an image in the store (`arl-batch image load` put it there); no tag
 *                           means ":latest"
 *   docker-archive:FILE     what `docker save` / `podman save` write
 *   oci:DIR[:TAG]           an OCI image layout (oci-layout, index.json, blobs/)
 *   oci-archive:FILE[:TAG]  a tar of an OCI image layout
 * An archive or layout reference is loaded into the store on first use (under no name) and
 * found again by its path, size and modification time.
 *
 * Every function is safe between threads (each call opens what it needs) and between processes
 * (a lock file per layer and for the image index, temp dirs renamed into place).
 */
#ifndef ARL_IMAGE_H
#define ARL_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"

/* What the image's config says about how to run in it (fields NULL/0 when absent). */
struct arl_image_config {
	char **env; /* "KEY=VALUE", in the image's order */
	size_t nenv;
	char *workdir; /* WorkingDir */
	char *user;    /* User as written: "name", "uid", "name:group", "uid:gid" */
};

/* An image ready to be a stack of overlay lower layers. Owned by the caller (arl_image_free). */
struct arl_image {
	char *ref;     /* as the user wrote it */
	char *id;      /* "sha256:HEX" of its config blob */
	char **layers; /* absolute dirs of the unpacked layers, BOTTOM FIRST */
	size_t nlayers;
	struct arl_image_config config;
};

struct arl_image_store; /* opaque; one per process is enough, any thread may use it */

/*
 * Opens (creating it when missing) the store in @dir; @dir NULL: $ARL_BATCH_IMAGES when set
 * and not empty, else /var/lib/arl-batch/images as root, else
 * ${XDG_DATA_HOME:-$HOME/.local/share}/arl-batch/images. Layers unpacked through this store are
 * owned by @uid/@gid (the sandbox's host uid, so the sandbox may copy files up); (uid_t)-1 means
 * the caller's own ids.
 */
int arl_image_store_open(struct arl_image_store **out, const char *dir, uid_t uid, gid_t gid,
                         struct arl_err *err);
void arl_image_store_close(struct arl_image_store *s); /* NULL is a no-op */
/* The store's directory (borrowed). */
const char *arl_image_store_dir(const struct arl_image_store *s);
/* How many layers this store handle unpacked (not found unpacked already): for tests. */
size_t arl_image_store_unpacks(const struct arl_image_store *s);
/* The directory arl_image_store_open(NULL) would use, malloc()ed. */
char *arl_image_store_default_dir(void);

/*
 * Whether @ref is well-formed (one of the forms above) without touching any store: for
 * validating a job file. Returns -1 with a message saying what a reference looks like.
 */
int arl_image_ref_check_syntax(const char *ref, struct arl_err *err);

/*
 * Resolves @ref, loading an archive or layout into the store on first use, verifies and unpacks
 * any missing layer, and hands back the image. A missing name fails with ARL_E_INVALID and a
 * message saying how to load it. The layers of every image a store handle gives out are marked
 * in use until the handle is closed (one file under the store's inuse/, locked while the
 * process lives), so `image prune` leaves them alone: keep the handle open while sandboxes use
 * them. An image holds no file descriptor.
 */
int arl_image_get(struct arl_image_store *s, const char *ref, struct arl_image **out,
                  struct arl_err *err);
/*
 * Whether @ref can be resolved (a name is in the store, an archive or layout exists and is
 * readable) without unpacking or loading anything: for `validate`. The error says how to load a
 * missing image.
 */
int arl_image_check(struct arl_image_store *s, const char *ref, struct arl_err *err);
void arl_image_free(struct arl_image *im); /* NULL is a no-op */

/*
 * Loads a docker-archive or an oci-archive (detected by its contents) from @path ("-" or NULL:
 * standard input; a directory: an OCI layout) into the store, keeping the tags it names (as
 * `docker load` does). Layers are verified and unpacked now. On success *tags (may be NULL) gets
 * the names tagged, "NAME:TAG" each (free with arl_image_strv_free); an archive without tags
 * gives "sha256:ID" instead.
 */
int arl_image_load(struct arl_image_store *s, const char *path, char ***tags, size_t *ntags,
                   struct arl_err *err);
void arl_image_strv_free(char **v, size_t n);

/* One tagged image in the store, for `image list`. */
struct arl_image_info {
	char *name;    /* "NAME:TAG" */
	char *id;      /* "sha256:HEX" */
	uint64_t size; /* bytes of its layers as unpacked (each layer counted once per image) */
	size_t nlayers;
	int64_t created; /* when it was tagged in this store, unix seconds */
};
/* The store's tagged images, sorted by name. Free with arl_image_infos_free. */
int arl_image_list(struct arl_image_store *s, struct arl_image_info **out, size_t *n,
                   struct arl_err *err);
void arl_image_infos_free(struct arl_image_info *v, size_t n);

/* Removes the tag @name (NAME[:TAG], or an id "sha256:HEX" or a prefix of one naming one image).
 * The layers stay until arl_image_prune. ARL_E_INVALID when there is no such image. */
int arl_image_rm(struct arl_image_store *s, const char *name, struct arl_err *err);

struct arl_image_prune_stats {
	size_t layers;  /* unpacked layers removed (or that would be) */
	size_t blobs;   /* stored blobs (configs, manifests) removed */
	size_t images;  /* untagged images (archive references) forgotten */
	uint64_t bytes; /* bytes freed */
};
/*
 * Removes what no tagged image references: untagged images, their blobs and unpacked layers,
 * and the temp dirs of killed unpacks. @dry_run: counts only. Layers an open store handle gave
 * out (see arl_image_get) and layers being unpacked are kept.
 */
int arl_image_prune(struct arl_image_store *s, bool dry_run, struct arl_image_prune_stats *st,
                    struct arl_err *err);

#endif
