/*
 * Finding and reading the files a job keeps (`artifacts:`), libc only: the sandbox agent runs
 * it inside a container (an EXEC of ARL_COLLECT_ARGV0, its stream on stdout below), and the
 * local backend in the runner for isolation: none pools, where the sandbox directory is
 * /workspace.
 *
 * A pattern is an absolute path whose components may hold the wildcards *, ? and [...]
 * (fnmatch, a leading '.' matched only by a '.'). It is walked one component at a time from
 * a directory fd with O_NOFOLLOW: a symlink anywhere on the way, or as the file, is never
 * followed, so nothing outside the root fd's tree is read. Only regular files are read (opened
 * O_NONBLOCK, so a FIFO cannot hang the reader); anything else matched is reported as such.
 *
 * The stream arl_collect_main() writes on stdout, records one after another (u32: little endian):
 *   'B' u32 pattern index, u64 size, u32 length, the path
 *                                                     a file found (its size then)
 *   'D' u32 length, bytes                             its content, in order (at most 64 KiB)
 *   'E' u32 length, text                              its end: length 0 when all was sent,
 *                                                     else why not (nothing more of it comes)
 */
#ifndef ARL_AGENT_COLLECT_H
#define ARL_AGENT_COLLECT_H

#include <stddef.h>
#include <stdint.h>

#define ARL_COLLECT_CHUNK 65536

/*
 * One file the pattern matched, found in directory @dirfd as @name; @path is its full path as
 * the pattern spells it. Return -1 to stop the walk.
 */
typedef int (*arl_collect_fn)(void *arg, size_t spec, int dirfd, const char *name,
                              const char *path);

/*
 * Calls @fn for each path matching @pattern (absolute), in sorted order, at most @max times.
 * Its first @skip characters stand for @rootfd (0: rootfd is "/"), and what follows them must
 * be empty or start with '/'. Returns 0, or -1 when @fn stopped it.
 */
int arl_collect_glob(int rootfd, const char *pattern, size_t skip, size_t spec, size_t max,
                     arl_collect_fn fn, void *arg);

/*
 * Opens @name in @dirfd for reading when it is a regular file (not through a symlink), its
 * size in *size. Returns the fd, or -1 with *why (static text) saying what it is instead;
 * *why NULL: it does not exist (the pattern simply did not match).
 */
int arl_collect_open(int dirfd, const char *name, int64_t *size, const char **why);

/* True, with the message in @msg, when @size is over @max (both the agent and the runner). */
int arl_collect_too_large(int64_t size, int64_t max, char *msg, size_t len);

/*
 * An EXEC whose argv[0] is this runs no program: the agent's child for it calls
 * arl_collect_main() with argv = {ARL_COLLECT_ARGV0, "--collect", TOTAL, MAXFILES, MAXSIZE,
 * PATTERN, [MAXSIZE, PATTERN, ...]}, with the step's identity and view of the files. (A
 * control character: no program path has it.)
 */
#define ARL_COLLECT_ARGV0 "\001arl-batch-collect"
int arl_collect_main(int argc, char **argv);

#endif
