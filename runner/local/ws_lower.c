/*
 * The lower layer of /workspace (ws_lower.h).
 *
 * DESIGN
 * - Not as root, the pool's workspace is the lower layer as it is: its files are ours, so
 *   the uid that is 0 inside writes them in place (through the overlay's copy-up).
 * - As root, the workspace's files belong to host uids the sandbox cannot map (they would
 *   show as nobody and be replaced only by a rename), so it is copied once per run and
 *   pool, every entry chowned to the sandbox uid, into "ws-sb-RUN-OWNER-N" beside the
 *   sandboxes (gc judges it by that name, as a sandbox). Every sandbox of the pool binds it
 *   read-only below its overlay: preparing one costs the uppers' mkdirs whatever the size.
 *   The copy is made by the first sandbox that needs it, within that attempt's bound
 *   (prepareTimeout, cancel); others wait for it within theirs; a failed copy is deleted and
 *   the next sandbox tries again. It is deleted at close, or kept as "keep-ws-..." beside
 *   keepAlive sandboxes, whose upper layers mean nothing without it. The state directory
 *   may be closed to the sandbox uid, so the child that starts bwrap binds it from an O_PATH
 *   fd on ROOT_LOWER, as it binds the sandbox directory on ROOT_MNT (identity.h).
 */
#include "local/ws_lower.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "local/identity.h"
#include "local/local.h"
#include "log.h"
#include "util.h"
#include "banned.h"

/* How often a sandbox waiting for another's copy looks at its deadline (cancel wakes it). */
#define WAIT_SLICE_MS 50

/* @pool's entry, added when missing; called with L->mu held. */
static struct ws_copy *find(struct local *L, const struct arl_pool *pool, bool add)
{
	for (size_t i = 0; i < L->nwscopy; i++)
		if (L->wscopy[i].pool == pool)
			return &L->wscopy[i];
	if (!add)
		return NULL;
	ARL_GROW(L->wscopy, L->capwscopy, L->nwscopy + 1);
	L->wscopy[L->nwscopy] = (struct ws_copy){.pool = pool};
	return &L->wscopy[L->nwscopy++];
}

/* Whether @pool's sandboxes get a lower layer at all (its workspace, copy-on-write root). */
static bool has_lower(const struct local *L, const struct arl_pool *pool)
{
	const struct arl_local_pool *lp = pool ? arl_local_pool(pool) : NULL;

	return lp && lp->workspace && L->cow.skel && lp->isolation == ARL_ISO_BWRAP;
}

const char *arl_local_ws_lower(struct local *L, const struct arl_pool *pool)
{
	const struct ws_copy *c;
	bool made;

	if (!has_lower(L, pool))
		return NULL;
	if (!L->drop)
		return arl_local_pool(pool)->workspace;
	pthread_mutex_lock(&L->mu);
	c = find(L, pool, false);
	made = c && c->name;
	pthread_mutex_unlock(&L->mu);
	return made ? ROOT_LOWER : NULL;
}

/* Copies @pool's workspace into new directory @name, owned by the sandbox uid. */
static int copy(struct local *L, const struct arl_pool *pool, const char *name,
                const struct copy_bound *b, struct arl_err *err)
{
	const char *workspace = arl_local_pool(pool)->workspace;
	struct copy_bound cb = *b;
	struct arl_buf rel = ARL_BUF_INIT;
	int sfd = -1, dfd = -1, ret = -1;

	cb.chown = true;
	cb.uid = L->sb_uid;
	cb.gid = L->sb_gid;
	if (mkdirat(L->state_fd, name, 0700) < 0 ||
	    (dfd = openat(L->state_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) <
	        0 ||
	    fchown(dfd, cb.uid, cb.gid) < 0 || fchmod(dfd, 0700) < 0) {
		arl_error_errno(err, errno, "cannot make '%s/%s'", L->state_dir, name);
		goto out;
	}
	if ((sfd = open(workspace, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		arl_error_errno(err, errno, "cannot open workspace '%s'", workspace);
		goto out;
	}
	arl_buf_add(&rel, "", 0);
	ret = arl_local_copy_tree(sfd, dfd, &rel, 0, &cb, err);
out:
	if (sfd >= 0)
		close(sfd);
	if (dfd >= 0)
		close(dfd);
	arl_buf_release(&rel);
	if (ret < 0) {
		struct arl_err ignored = ARL_ERR_INIT;

		arl_local_rm_tree(L->state_fd, name, &ignored);
	}
	return ret;
}

/* Waits (mu released) until @b's deadline, its cancel, or WAIT_SLICE_MS: 0 or -1. */
static int wait_slice(const struct copy_bound *b, struct arl_err *err)
{
	int64_t left = b->deadline - arl_now_ms();
	struct pollfd p = {.fd = b->cancel_fd, .events = POLLIN};

	if (left <= 0)
		return arl_error(err, ARL_E_TIMEOUT, "timed out waiting for the workspace's copy");
	if (poll(&p, b->cancel_fd >= 0, (int)(left < WAIT_SLICE_MS ? left : WAIT_SLICE_MS)) > 0)
		return arl_error(err, ARL_E_CANCELLED, "cancelled");
	return 0;
}

int arl_local_ws_lower_make(struct local *L, const struct arl_pool *pool,
                            const struct copy_bound *b, struct arl_err *err)
{
	struct ws_copy *c;
	char *name;
	int rc;

	if (!L->drop || !has_lower(L, pool))
		return 0;
	pthread_mutex_lock(&L->mu);
	while ((c = find(L, pool, true))->busy) {
		pthread_mutex_unlock(&L->mu);
		if (wait_slice(b, err) < 0)
			return -1;
		pthread_mutex_lock(&L->mu);
	}
	if (c->name) {
		pthread_mutex_unlock(&L->mu);
		return 0;
	}
	c->busy = true;
	name = arl_xasprintf(WS_LOWER_PREFIX "sb-%lld-%s-%lu", (long long)L->run_id, L->owner,
	                     ++L->counter);
	pthread_mutex_unlock(&L->mu);
	rc = copy(L, pool, name, b, err);
	pthread_mutex_lock(&L->mu);
	c = find(L, pool, false); /* the array may have grown meanwhile */
	c->busy = false;
	if (rc == 0)
		c->name = name;
	else
		free(name);
	pthread_mutex_unlock(&L->mu);
	return rc;
}

int arl_local_ws_lower_fd(struct local *L, const struct arl_pool *pool, struct arl_err *err)
{
	const struct ws_copy *c;
	int fd = -1, e = ENOENT;

	pthread_mutex_lock(&L->mu);
	c = find(L, pool, false);
	if (c && c->name) {
		fd = openat(L->state_fd, c->name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		e = errno;
	}
	pthread_mutex_unlock(&L->mu);
	if (fd < 0)
		arl_error_errno(err, e, "cannot open the copy of pool '%s''s workspace",
		                pool->name);
	return fd;
}

void arl_local_ws_lower_keep(struct local *L, const struct arl_pool *pool)
{
	struct ws_copy *c;

	pthread_mutex_lock(&L->mu);
	if ((c = find(L, pool, false)))
		c->kept = true;
	pthread_mutex_unlock(&L->mu);
}

void arl_local_ws_lower_close(struct local *L)
{
	for (size_t i = 0; i < L->nwscopy; i++) {
		struct ws_copy *c = &L->wscopy[i];
		struct arl_err err = ARL_ERR_INIT;
		char *kept;

		if (!c->name)
			continue;
		kept = c->kept ? arl_xasprintf("keep-%s", c->name) : NULL;
		/* "keep-" takes it out of gc's sight, as it does the kept sandboxes. */
		if (kept && renameat(L->state_fd, c->name, L->state_fd, kept) == 0)
			arl_log_info("keeping '%s/%s', the lower layer of the /workspace of pool "
			             "'%s''s kept sandboxes",
			             L->state_dir, kept, c->pool->name);
		else if (arl_local_rm_tree(L->state_fd, c->name, &err) < 0)
			arl_log_warn("cannot delete '%s/%s': %s", L->state_dir, c->name, err.msg);
		free(kept);
		free(c->name);
	}
	free(L->wscopy);
	L->wscopy = NULL;
	L->nwscopy = L->capwscopy = 0;
}
