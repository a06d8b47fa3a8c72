/* bubblewrap for the local backend: its command line, its environment fd, and the probes. */
#ifndef ARL_LOCAL_BWRAP_H
#define ARL_LOCAL_BWRAP_H

#include <stdbool.h>

#include "err.h"
#include "local/strvec.h"

struct local;
struct local_image; /* @img of arl_local_bwrap_argv: the root's image (NULL: the host's) */

/* bwrap's own environment: none (a step's comes in its EXEC, see container.h). */
extern char *const arl_local_no_env[];

/*
 * Appends the command line of a sandbox's container to @v: bwrap with the agent @agent (a
 * host path) as its first process on fd 3 and sandbox directory @ws (a host directory) at
 * /workspace, or, with the copy-on-write root (L->cow.skel), holding the uppers of /usr,
 * /etc... and of /workspace, whose lower is @ws_lower (NULL: empty), and the agent's plan
 * (every upper on disk when @all_on_disk: a sandbox to keep, see cow_root.h).
 */
void arl_local_bwrap_argv(const struct local *L, struct strvec *v, const char *ws,
                          const char *ws_lower, const char *agent, bool network,
                          const struct local_image *img, bool all_on_disk);

/* Whether the 64-bit ELF program @path has a program interpreter (is dynamically linked). */
bool arl_local_elf_dynamic(const char *path);

/* The absolute path of bwrap in our PATH, or NULL. */
char *arl_local_find_bwrap(void);

/* Notes how the host's /bin, /lib... and /etc/resolv.conf look, for arl_local_bwrap_argv(). */
void arl_local_probe_root_layout(struct local *L);

/* Starts and ends a container built as attempts' are, so open() fails with advice. */
int arl_local_probe_bwrap(struct local *L, const char *pool_name, bool network,
                          struct arl_err *err);

#endif
