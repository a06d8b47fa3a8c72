/*
 * FilePatch writes from the runner into the sandbox directory: the path is split into
 * components ('..' refused) and opened one at a time from the directory's fd with O_NOFOLLOW,
 * creating parents, so a symlink planted by an earlier step can never redirect the write (see
 * DESIGN in backend_local.c). The file is opened O_NONBLOCK and must be regular, so a planted
 * FIFO cannot hang the worker.
 */
#include "local/filepatch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "local/agent_client.h"
#include "local/container.h"
#include "local/identity.h"
#include "local/local.h"
#include "log.h"
#include "util.h"
#include "banned.h"

/*
 * Splits a FilePatch path into its components, refusing what the local rule refuses
 * (local_pool.h): in a @container anything but the kernel's and the agent's own, otherwise
 * anything not plainly inside /workspace. The message says what to do instead.
 */
static int patch_components(bool container, const char *path, struct strvec *comps,
                            struct arl_buf *msg)
{
	char *copy, *save = NULL;
	char *why = arl_filepatch_local_refusal(container, path, path ? strlen(path) : 0);

	/* The same rule `validate` applies to local pools (job.h). */
	if (why) {
		arl_buf_addf(msg, ARL_LOG_PREFIX "%s\n", why);
		free(why);
		return -1;
	}
	copy = arl_xstrdup(path);
	for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save))
		if (strcmp(c, "."))
			arl_local_sv_push(comps, c);
	free(copy);
	return 0;
}

/* Why opening component @i of @comps failed, for the step's stderr. */
static void patch_open_error(struct arl_buf *msg, int errnum, int fd, const struct strvec *comps,
                             size_t i)
{
	struct arl_buf shown = ARL_BUF_INIT;
	struct stat st;
	char ebuf[128];

	for (size_t k = 0; k <= i; k++)
		arl_buf_addf(&shown, "/%s", comps->v[k]);
	if (errnum == EISDIR) {
		arl_buf_addf(msg, ARL_LOG_PREFIX "FilePatch refused: '%s' is a directory\n",
		             shown.p);
	} else if ((errnum == ELOOP || errnum == ENOTDIR || errnum == ENXIO) &&
	           !fstatat(fd, comps->v[i], &st, AT_SYMLINK_NOFOLLOW)) {
		if (S_ISLNK(st.st_mode))
			arl_buf_addf(msg,
			             ARL_LOG_PREFIX
			             "FilePatch refused: '%s' is a symlink, and FilePatch "
			             "never follows symlinks\n",
			             shown.p);
		else if (i + 1 < comps->n && !S_ISDIR(st.st_mode))
			arl_buf_addf(msg,
			             ARL_LOG_PREFIX "FilePatch refused: '%s' is not a directory\n",
			             shown.p);
		else
			arl_buf_addf(
			    msg, ARL_LOG_PREFIX "FilePatch refused: '%s' is not a regular file\n",
			    shown.p);
	} else {
		arl_buf_addf(msg, ARL_LOG_PREFIX "FilePatch cannot open '%s': %s\n", shown.p,
		             arl_strerror(errnum, ebuf, sizeof(ebuf)));
	}
	arl_buf_release(&shown);
}

/*
 * With the copy-on-write root /workspace is an overlay, which a write into the sandbox
 * directory would bypass (overlayfs leaves changes to a mounted upper undefined): the agent
 * writes the file, with the steps' view. It runs as they do, without capabilities, so a
 * symlink a step planted in a parent leads only where a step could write anyway.
 */
static int patch_via_agent(struct arl_sandbox *sb, const struct arl_step *step, struct arl_buf *msg,
                           struct arl_err *err)
{
	struct arl_agent_event ev;
	uint32_t id;

	if (arl_agent_write(sb->agent, step->path, 0644, step->content ? step->content : "",
	                    step->content ? step->content_len : 0, &id, err) < 0 ||
	    arl_agent_next(sb->agent, 0, -1, &ev, err) < 0)
		return -1;
	if (ev.kind == ARL_AGENT_OK)
		return 0;
	if (ev.kind != ARL_AGENT_ERROR)
		return arl_error(err, ARL_E_PROTO, "sandbox agent: unexpected answer to a WRITE");
	arl_buf_addf(msg, ARL_LOG_PREFIX "FilePatch refused: %.*s\n", (int)ev.len, ev.data);
	return 1;
}

int arl_local_run_filepatch(struct local *L, struct arl_sandbox *sb, const struct arl_step *step,
                            struct arl_step_result *res, enum arl_class *cls, struct arl_err *err)
{
	struct strvec comps = {0};
	struct arl_buf msg = ARL_BUF_INIT;
	const char *data = step->content ? step->content : "";
	size_t len = step->content ? step->content_len : 0, off = 0;
	struct stat st;
	char ebuf[128];
	int cur = -1, fd = -1, ret = -1;

	/* The agent writes with the steps' view; without it only /workspace is reachable. */
	if (patch_components(L->cow.skel && sb->agent, step->path, &comps, &msg) < 0)
		goto refused;
	if (L->cow.skel && sb->agent) {
		int rc = patch_via_agent(sb, step, &msg, err);

		if (rc < 0) {
			/* A dead agent or a malformed frame: the sandbox is gone (command.c). */
			*cls = ARL_CLASS_INFRA;
			sb->tainted = true;
			arl_local_container_stop(sb);
			goto out;
		}
		if (rc > 0)
			goto refused;
		goto created;
	}
	cur = openat(L->state_fd, sb->dir.name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (cur < 0) {
		arl_error_errno(err, errno, "cannot open sandbox '%s'", sb->path);
		*cls = ARL_CLASS_INFRA;
		goto out;
	}
	/* comps[0] is "workspace", which is the sandbox directory itself. */
	for (size_t i = 1; i + 1 < comps.n; i++) {
		const char *c = comps.v[i];
		int next = openat(cur, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

		bool made = false;

		if (next < 0 && errno == ENOENT) {
			made = mkdirat(cur, c, 0755) == 0;
			if (!made && errno != EEXIST) {
				patch_open_error(&msg, errno, cur, &comps, i);
				goto refused;
			}
			next = openat(cur, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		/* As root: the step's uid must be able to change what we made for it. */
		if (next >= 0 && made && L->drop &&
		    fchown(next, arl_local_pool_uid(L, sb->pool), arl_local_pool_gid(L, sb->pool)) <
		        0) {
			int e = errno;

			close(next);
			next = -1;
			errno = e;
		}
		if (next < 0) {
			patch_open_error(&msg, errno, cur, &comps, i);
			goto refused;
		}
		close(cur);
		cur = next;
	}
	/* O_NONBLOCK: a FIFO planted here fails with ENXIO instead of blocking the worker. */
	fd = openat(cur, comps.v[comps.n - 1],
	            O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC,
	            0644);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		patch_open_error(&msg, fd < 0 ? errno : ENXIO, cur, &comps, comps.n - 1);
		goto refused;
	}
	if (L->drop &&
	    (st.st_uid != arl_local_pool_uid(L, sb->pool) ||
	     st.st_gid != arl_local_pool_gid(L, sb->pool)) &&
	    fchown(fd, arl_local_pool_uid(L, sb->pool), arl_local_pool_gid(L, sb->pool)) < 0) {
		patch_open_error(&msg, errno, cur, &comps, comps.n - 1);
		goto refused;
	}
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			arl_buf_addf(&msg, ARL_LOG_PREFIX "FilePatch cannot write '%s': %s\n",
			             step->path, arl_strerror(errno, ebuf, sizeof(ebuf)));
			goto refused;
		}
		off += (size_t)n;
	}
	if (close(fd) < 0) {
		fd = -1;
		arl_buf_addf(&msg, ARL_LOG_PREFIX "FilePatch cannot write '%s': %s\n", step->path,
		             arl_strerror(errno, ebuf, sizeof(ebuf)));
		goto refused;
	}
	fd = -1;
created:
	arl_buf_addf(&msg, "File created: %s\n", step->path); /* ARL's wording */
	res->has_exit = true;
	res->exit_code = 0;
	arl_local_set_output(&res->out, msg.p);
	arl_local_set_output(&res->err, "");
	*cls = ARL_CLASS_NONE;
	ret = 0;
	goto out;
refused:
	arl_local_step_fail(res, cls, 1, msg.p);
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	if (cur >= 0)
		close(cur);
	arl_local_sv_release(&comps);
	arl_buf_release(&msg);
	return ret;
}
