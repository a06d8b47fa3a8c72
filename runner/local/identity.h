/*
 * Who a local step runs as. Started as root, steps never run as root: bwrap steps as the
 * sandbox uid, isolation none steps as one of their own, each with the sandbox directory
 * bound on ROOT_MNT (see DESIGN in backend_local.c).
 */
#ifndef ARL_LOCAL_IDENTITY_H
#define ARL_LOCAL_IDENTITY_H

#include <stdbool.h>
#include <sys/types.h>

#include "err.h"
#include "spawn.h"

/* As root, where a step's child binds its sandbox, in a mount namespace of its own. */
#define ROOT_MNT_DIR "/run/arl-batch"
#define ROOT_MNT     ROOT_MNT_DIR "/workspace"
/* As root, where a container's child binds the sandbox agent (an empty file of root's). */
#define ROOT_AGENT ROOT_MNT_DIR "/agent"
/* As root, where a container's child binds the run's copy of the pool's workspace (ws_lower.h). */
#define ROOT_LOWER ROOT_MNT_DIR "/lower"

struct local;
struct arl_pool;

/* As root, the host uid (and gid) @pool's steps run as, which owns its directories. */
uid_t arl_local_pool_uid(const struct local *L, const struct arl_pool *pool);
gid_t arl_local_pool_gid(const struct local *L, const struct arl_pool *pool);

/*
 * Fills @id for a step (@none: an isolation none one) with sandbox directory @ws_fd (O_PATH;
 * -1: none) bound on ROOT_MNT as root; @args_fd (or -1) becomes fd 3.
 */
void arl_local_step_ident(const struct local *L, bool none, struct arl_spawn_ident *id, int ws_fd,
                          int args_fd);

/* An O_PATH fd of sandbox @name for arl_local_step_ident() (the caller closes it), or -1. */
int arl_local_sandbox_fd(const struct local *L, const char *name, struct arl_err *err);

/* As root: the uids and gids steps run as, from ARL_SANDBOX_* or the defaults; sets L->drop. */
int arl_local_sandbox_ids(struct local *L, struct arl_err *err);

/* As root: makes the mount point ROOT_MNT, shared by root runners. */
int arl_local_make_root_mnt(struct arl_err *err);

#endif
