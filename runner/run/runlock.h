/*
 * One run of a name at a time per database, for cron: an flock(2) on a lock file beside the
 * database. The kernel drops the lock when its holder dies, so a stale lock is taken over
 * without any guessing; the file's text only says who holds it.
 */
#ifndef ARL_RUNLOCK_H
#define ARL_RUNLOCK_H

#include "err.h"

enum arl_overlap { ARL_OVERLAP_FORBID, ARL_OVERLAP_WAIT, ARL_OVERLAP_ALLOW };

/*
 * Takes the lock of run @name for database @db. Returns 0 with *fd set (-1 for ALLOW; close it
 * to release), 1 when another live run holds it (FORBID; err says which pid, host and since
 * when), -1 on error.
 */
int arl_runlock_take(const char *db, const char *name, enum arl_overlap mode, int *fd,
                     struct arl_err *err);
void arl_runlock_release(int fd);

#endif
