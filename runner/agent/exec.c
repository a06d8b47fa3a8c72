/* A step's program, searched and started as glibc's execvpe() does (exec.h). */
#include "agent/exec.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_PATH "/bin:/usr/bin" /* glibc's _CS_PATH */

/* After ENOEXEC: @path as a /bin/sh script, the arguments after @argv[0] its own. */
static void exec_script(const char *path, char *const argv[], char *const env[], char **v)
{
	size_t i = 1;

	v[0] = "/bin/sh";
	v[1] = (char *)path;
	for (; argv[i]; i++)
		v[i + 1] = argv[i];
	v[i + 1] = NULL;
	execve(v[0], v, env);
}

static const char *env_path(char *const env[])
{
	for (size_t i = 0; env[i]; i++)
		if (!strncmp(env[i], "PATH=", 5))
			return env[i] + 5;
	return DEFAULT_PATH;
}

int arl_agent_execvpe(const char *file, char *const argv[], char *const env[], char **scratch)
{
	char buf[PATH_MAX];
	size_t flen = strlen(file);
	int eacces = 0;

	if (!*file) {
		errno = ENOENT;
		return -1;
	}
	if (strchr(file, '/')) {
		execve(file, argv, env);
		if (errno == ENOEXEC)
			exec_script(file, argv, env, scratch);
		return -1;
	}
	if (flen > NAME_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (const char *p = env_path(env);;) {
		size_t n = strcspn(p, ":");

		if (n + 1 + flen < sizeof(buf)) {
			size_t at = n;

			memcpy(buf, p, n);
			if (n)
				buf[at++] = '/';
			memcpy(buf + at, file, flen + 1);
			execve(buf, argv, env);
			if (errno == ENOEXEC)
				exec_script(buf, argv, env, scratch);
			switch (errno) {
			case EACCES:
				eacces = 1;
				break;
			case ENOENT:
			case ESTALE:
			case ENOTDIR:
			case ENODEV:
			case ETIMEDOUT:
				break;
			default:
				return -1;
			}
		}
		if (!p[n])
			break;
		p += n + 1;
	}
	if (eacces)
		errno = EACCES; /* else the last directory's reason */
	return -1;
}
