/*
 * One image layer (tar, tar+gzip or tar+zstd, told by its magic) unpacked into an empty
 * directory, verified while streaming, never following a symlink; whiteouts become their
 * overlay form (a 0/0 character device; an opaque dir gets user.overlay.opaque=y).
 */
#ifndef ARL_IMAGE_UNPACK_H
#define ARL_IMAGE_UNPACK_H

#include <stdint.h>
#include <sys/types.h>

#include "err.h"

struct arl_unpack_opts {
	const char *layer;   /* how errors name the layer (its digest) */
	const char *digest;  /* "sha256:HEX" of the bytes of @fd as given, or NULL */
	const char *diff_id; /* "sha256:HEX" of the uncompressed tar, or NULL */
	bool chown;          /* make every entry owned by uid/gid (we are root) */
	uid_t uid;
	gid_t gid;
};

/* Sums of an unpack, for list sizes and benchmarks. */
struct arl_unpack_stats {
	uint64_t entries;
	uint64_t bytes;     /* of file data written */
	uint64_t tar_bytes; /* of the uncompressed tar */
};

/*
 * Unpacks the layer read from @fd into the empty directory @dir_fd. A hostile entry (absolute or
 * '..' names, a device node, a hard link leaving the layer, a write through a symlink) or a digest
 * mismatch fails naming the layer and the entry; the caller then deletes the directory.
 */
int arl_unpack_layer(int fd, int dir_fd, const struct arl_unpack_opts *o,
                     struct arl_unpack_stats *st, struct arl_err *err);

/*
 * Reads the layer from @fd without writing anything: checks its digests as arl_unpack_layer
 * does and gives the uncompressed tar's size in *tar_bytes.
 */
int arl_unpack_verify(int fd, const struct arl_unpack_opts *o, uint64_t *tar_bytes,
                      struct arl_err *err);

/* Deletes @name under @dirfd and everything below it, never following a symlink. */
int arl_unpack_rmtree(int at, const char *name, struct arl_err *err);

/* Hex sha256 of @len bytes into @hex (65 bytes). */
void arl_unpack_sha256_hex(const void *p, size_t len, char hex[65]);

#endif
