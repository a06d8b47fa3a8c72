/*
 * The agent's mount plan: the copy-on-write root the runner asks for on the agent's command
 * line, mounted inside the sandbox's user and mount namespaces before the agent drops its
 * capabilities (see DESIGN in mounts.c). libc only, like the rest of the agent.
 */
#ifndef ARL_AGENT_MOUNTS_H
#define ARL_AGENT_MOUNTS_H

#include <stddef.h>

/* The most layers --layers stacks (overlayfs's own limit is 500). */
#define ARL_AGENT_LAYERS_MAX 500

/*
 * The plan's options, each followed by its operands (all absolute paths):
 *   --overlay TARGET LOWERS UPPER WORK  an overlay on TARGET; LOWERS is colon-separated,
 *                                       top first; UPPER and WORK on one mount (one
 *                                       empty lower: UPPER bound on TARGET instead)
 *   --overlay-mem TARGET LOWERS UPPER WORK MEMDIR
 *                                       the same, its upper and work directories made in
 *                                       a new directory MEMDIR on a tmpfs (the staging
 *                                       place's); UPPER and WORK where tmpfs cannot hold the
 *                                       overlay's xattrs
 *   --mask PATH                         /dev/null bound read-only over PATH, if it exists
 *   --tmpfs PATH                        an empty tmpfs over PATH, if it is a directory
 *   --detach PATH                       PATH unmounted (lazily): the layers' staging place
 *   --no-userns DIR                     no user namespace may be created any more (a procfs
 *                                       is mounted on DIR for that, then detached)
 *   --layers TARGET BASE N UPPER WORK   an overlay on TARGET whose lowers are BASE/0 (the
 *                                       bottom) to BASE/N-1 (the top), named relative to
 *                                       BASE so that up to ARL_AGENT_LAYERS_MAX fit in the
 *                                       kernel's one page of mount options (an image's root)
 *   --pivot NEWROOT                     /proc, /dev, /tmp and /workspace moved into NEWROOT
 *                                       (directories there, made if missing), which becomes
 *                                       the root; the old root, staging and all, detached
 *   --as-user UID GID                   the agent (so every step) enters a user namespace of
 *                                       its own where UID and GID are the sandbox's 0: an
 *                                       image's User (bwrap's own --uid would nest the
 *                                       sandbox before the agent could mount); --no-userns
 *                                       then leaves room for that one namespace only
 * Applied in the order given.
 */

/*
 * Checks @args[0..@n) as a plan without mounting anything. Returns 0, or -1 with a message
 * (naming the option or path) in @msg.
 */
int arl_agent_plan_check(char *const *args, int n, char *msg, size_t len);

/*
 * Mounts a checked plan. Returns 0, or -1 with errno set and what failed in @msg; what was
 * mounted before stays (the sandbox is abandoned on an error).
 */
int arl_agent_plan_apply(char *const *args, int n, char *msg, size_t len);

#endif
