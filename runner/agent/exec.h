/*
 * A step's program started as glibc's execvpe() starts it, whichever libc the agent is
 * linked with (musl's execvp neither runs a file without "#!" through /bin/sh nor searches
 * the same default PATH).
 */
#ifndef ARL_AGENT_EXEC_H
#define ARL_AGENT_EXEC_H

/*
 * Executes @file with @argv and the environment @env: a @file with a '/' as it is, otherwise
 * each directory of @env's PATH (default "/bin:/usr/bin"; an empty element is the working
 * directory) in turn, skipping those where it is missing or not executable. A file the
 * kernel cannot execute (ENOEXEC) runs as a script: /bin/sh FILE ARGV[1]... Returns only on
 * failure, -1 with errno set (EACCES when only unexecutable files were found). @scratch has
 * room for @argv's count + 2 pointers: it allocates nothing, so a vfork()ed child may call it.
 */
int arl_agent_execvpe(const char *file, char *const argv[], char *const env[], char **scratch);

#endif
