/*
 * The digest of a workspace tree, for pools with `hashWorkspace: true`: what the job's result
 * depends on beyond its spec (docs/jobfile.md, "What a job's result depends on").
 */
#ifndef ARL_WS_HASH_H
#define ARL_WS_HASH_H

#include "err.h"

/*
 * SHA-256 (hex, 64 digits and a NUL, into @out) over @dir's tree: every entry's path relative
 * to @dir, in byte order of names, its type and permission bits, a regular file's size and
 * content, a symbolic link's target (links are never followed), nothing else (no times,
 * owners). Another kind of file (a socket, a device) is refused, as is one that cannot be read.
 */
int arl_ws_hash(const char *dir, char out[65], struct arl_err *err);

#endif
