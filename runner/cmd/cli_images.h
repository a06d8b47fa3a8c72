/*
 * The images a job file's local pools run from (a pool's `image:` or a job's own), checked
 * before anything runs: validate says which are missing and how to load them; run also
 * resolves each (unpacking it on first use) and folds its id into the spec hashes of the
 * jobs that run in it, so that --resume runs a job again when its image changed.
 */
#ifndef ARL_CMD_CLI_IMAGES_H
#define ARL_CMD_CLI_IMAGES_H

#include <stdbool.h>
#include <stddef.h>

struct arl_jobfile;

/* Checks (@resolve: resolves) every image of @files' local pools and jobs; logs each
 * problem. Returns how many images are unusable (0: all good). */
size_t arl_cli_images(struct arl_jobfile *const *files, size_t nfiles, bool resolve);

#endif
