/*
 * DESIGN
 *
 * A local sandbox is a directory `sb-<run>-<owner>-<n>` under the state directory, <owner>
 * being the runner's pid, its start time, boot id and PID namespace (see owner_gone(), local_gc.c). With
 * `isolation: bwrap` (the default) an attempt's sandbox is one container, started at acquire
 * and ended at release (container.c): a bubblewrap whose first process is the sandbox agent
 * (runner/agent/, bound read-only at /.arl-batch-agent), serving fd 3, one end of a
 * SOCK_SEQPACKET socketpair. Without the copy-on-write root (the fallback, below) the
 * sandbox directory is bound read-write at /workspace and the rest of the root is built
 * from scratch:
 *
 *   bwrap --unshare-user --uid 0 --gid 0 --disable-userns --die-with-parent --unshare-pid
 *         --as-pid-1 --unshare-ipc --unshare-uts --unshare-cgroup-try [--unshare-net]
 *         --new-session --cap-drop ALL --ro-bind /usr /usr --ro-bind /etc /etc
 *         [--symlink usr/bin /bin ... | --ro-bind /lib /lib ...]   (as the host has them)
 *         [--ro-bind-try DIR DIR]        (network pools: where /etc/resolv.conf points)
 *         --proc /proc --ro-bind-try /proc/sys /proc/sys (sysrq-trigger, irq, bus alike)
 *         --dev /dev --tmpfs /tmp --bind SANDBOX_DIR /workspace --ro-bind AGENT /.arl-batch-agent
 *         --chdir /workspace --hostname sandbox -- /.arl-batch-agent --fd 3 [MOUNT PLAN]
 *
 * With the copy-on-write root (the default; cow_root.h), "--disable-userns", "--cap-drop
 * ALL", the /usr and /etc binds, their masks and the /workspace bind give way to: the four
 * capabilities the agent needs to mount (it drops them all before its HELLO), the run's
 * skeleton, each host tree, the pool's workspace (as root, the run's one copy of it, whose
 * files are the sandbox uid's: ws_lower.h) and the sandbox
 * directory (holding upper/ and work/) bound under COW_STAGING; the agent's plan mounts an
 * overlay on each tree and on /workspace, masks the secrets again, forbids user namespaces
 * and detaches COW_STAGING. open() finds (or builds) the skeleton in /dev/shm (skel_cache.h)
 * and probes a container with it; when the agent cannot mount an overlay (or
 * ARL_BATCH_NO_OVERLAY=1), the run
 * falls back to the layout above, said once on stderr and in runs.notes (the note op).
 *
 * A Command step is one EXEC (argv, env, workDir) to the agent, which runs it in a session
 * (so a process group) of its own and streams its stdout and stderr into spawn's capture
 * (capture.c: same caps and markers). The step ends when its first process does (pod
 * semantics): what it started in the background keeps running, and /tmp and every file keep
 * their contents, until release. A step's timeout or the run's cancel sends SIGTERM to the
 * step's group, SIGKILL after ARL_KILL_GRACE_MS; the agent kills what is left of a signalled
 * group when its leader ends. A program the agent cannot start is the step's exit 127 (126
 * when not runnable, 1 for a workDir it cannot enter), as a shell's; any other agent error, a
 * malformed frame or a dead agent is an infra failure of the attempt, and the container is
 * ended. Release closes the socket: the agent, PID 1, exits and the kernel ends the whole PID
 * namespace; bwrap is reaped (killed if it lingers). A runner killed outright takes it along
 * (--die-with-parent). bwrap and the agent start with an empty environment; a step's is
 * exactly PATH=/usr/local/bin:/usr/bin:/bin, HOME=/workspace, LANG=C.UTF-8, then the step's
 * env, then ARL_WORKSPACE (always /workspace here), sent in its EXEC (argv in /proc is
 * world-readable; frames are not).
 *
 * Identity: whoever starts us, a step is uid 0 in a user namespace mapped to an unprivileged
 * host uid, never the host's root. Started as root, bwrap run as
 * root would create no user namespace, and uid 0 without capabilities still writes host
 * sysctls (the kernel checks only the uid) and owns root's keyrings. So the child that execs
 * bwrap (spawn's arl_spawn_ident) drops to the sandbox uid and gid (SANDBOX_ID_DEFAULT, or
 * ARL_SANDBOX_UID/GID; never 0) and bwrap maps that uid to 0 inside; started as an ordinary
 * user, bwrap maps that user's uid. The state directory's
 * parents may be closed to that uid, and bwrap 0.8 resolves bind sources by path (its
 * --bind-fd too), so the child first enters a mount namespace of its own and binds the
 * sandbox directory, from an O_PATH fd, on ROOT_MNT, which bwrap binds from (the agent
 * alike, on ROOT_AGENT). Directories, workspace copies and
 * FilePatch files are chowned to that uid, the directory 0700: the step can change them and
 * no one else can. Every container, root or not, joins a fresh session keyring.
 * --die-with-parent SIGKILLs the sandbox's pid 1 when the thread that started bwrap goes,
 * and the kernel takes the whole pid namespace with it. PR_SET_PDEATHSIG follows the
 * spawning thread, and the scheduler's workers live for the whole run.
 *
 * Images (image_root.h): a pool's `image:`, or a job's own, makes the container's root the
 * image's layers (overlay lowers) under the sandbox's upper instead of the host trees; the
 * agent's plan mounts it, mounts /workspace as above, and pivots into it (/proc, /dev, /tmp,
 * /workspace moved in); an image User becomes, for every step, the uid the sandbox's host
 * uid maps to (a user namespace the agent enters last). Pool images are resolved at open,
 * a job's own when its sandbox is made; warm containers are spawned with the pool's root, so
 * a job with its own image makes its sandbox at acquire.
 *
 * FilePatch (the rule: arl_filepatch_local_refusal()). With the copy-on-write root the agent
 * writes it (a WRITE frame), as overlayfs ignores changes made to a mounted upper layer
 * from outside, anywhere in the container's root but /proc, /sys, /dev and the agent's own
 * /.arl-*; a symlink among the path's components is refused there too. Otherwise (isolation
 * none, or the fallback) only paths inside /workspace, written from the runner into the
 * sandbox directory, the container's /workspace itself (the steps' view, not a copy): the path is split into components ('..' refused) and opened
 * one component at a time from the directory's fd with O_NOFOLLOW, creating parents, so a
 * symlink planted by an earlier step can never redirect the write outside (Linux's openat2
 * RESOLVE_IN_ROOT would instead follow such a link to a different file than the sandbox
 * sees, and parents must be created one by one anyway). The file itself is opened
 * O_NONBLOCK and must be regular, so a planted FIFO cannot hang the worker.
 *
 * `isolation: none` runs the program directly with the sandbox directory as /workspace:
 * workDir /workspace/x becomes DIR/x, HOME and ARL_WORKSPACE are DIR, argv is not rewritten.
 * As root DIR is ROOT_MNT, bound as for bwrap, and the step is a uid of its own (none_uid),
 * never bwrap's: what it leaves behind (setsid) would otherwise own every later bwrap step's
 * user namespace (/proc/PID/root, environ, signals). Its directories are that uid's (a spare
 * changes hands when the other kind of pool takes it). The child enters workDir by path after
 * the ids change, so a symlink the step planted leads only where that uid may go. We do not
 * kill none_uid's processes at release: every none step of every root runner shares it.
 *
 * The modules: tree.c copies and deletes directory trees, sandbox_dir.c makes, recycles and
 * keeps warm the sandbox directories, identity.c says who a step runs as, bwrap.c builds the
 * bubblewrap command line and probes, command.c runs Command steps, filepatch.c FilePatch
 * steps, local_gc.c finds orphans for `arl-batch gc`; this file holds the ops and their glue.
 *
 * Warm pool: preparer threads keep up to `replicas` warm sandboxes per pool: for bwrap
 * pools a container already spawned in its directory (made or recycled, uppers made,
 * workspace copied in as root, cgroup made), whose HELLO acquire() reads; for isolation
 * none a ready directory (a spare counts as one without a workspace). acquire() pops one
 * or, when none is at hand (or the warm container failed), prepares its own as before, and
 * wakes the preparer only when there is work for it. A warm container is as fresh as one
 * started at acquire: nothing ran in it, and it is never handed out twice. The preparer
 * spawns them, so they die with it (--die-with-parent); it lives until close().
 * Release closes the agent's socket (the PID namespace ends at once) and renames the
 * directory, then queues the rest for the preparer: reaping bwrap, removing the cgroup and
 * recycling the directory (done on the worker when the queue is full or the run stops). Copying and deleting walk directories
 * with openat() and never follow symlinks; deletion restores u+rwx on directories a step
 * locked, and moves subtrees deeper than RM_MAX_DEPTH up to the top to keep the fds held
 * bounded.
 *
 * Recycling: making and removing a directory per attempt is most of what a run of short jobs
 * costs the kernel (on ext4 without a journal, every mkdir walks past each inode freed in the
 * last minute). So release() renames the directory to the next fresh name (its old name is
 * gone when release() returns, and every attempt records a name of its own) and keeps it as
 * a spare for the next sandbox of any pool if it is exactly as made: empty, same inode, owner
 * and group, mode 0700, no extended attribute (ACLs are ones), inode flags and project
 * unchanged, not grown (ext4 directories never shrink). The worker checks the usual case, a
 * step that left nothing behind, in seven system calls; anything else is queued for the
 * preparer, which empties it off the worker's path (restoring the mode) and checks again.
 * What fails the checks is deleted as before, and so is the directory of an attempt that may
 * have left a process behind: a step killed on timeout or cancel (a dying sandbox can still
 * write for a moment), or one whose output was still held by a process outside its group.
 * With bwrap nothing of an attempt outlives its release: the agent, pid 1, takes every
 * process of its namespace with it. With isolation: none, a process a step detached
 * completely (setsid, its output redirected) is out of our sight, as it always was; it keeps
 * the directory as its working directory and could write into whichever attempt gets it
 * next, as it could write anywhere else the user can. Spares and queued directories keep the
 * "sb-RUN-OWNER-N" names, so gc finds them when their runner dies; close() deletes them.
 */
#include "local/backend_local.h"
#include "local/collect.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/backend.h"
#include "local/bwrap.h"
#include "local/command.h"
#include "local/container.h"
#include "local/agent_client.h"
#include "local/filepatch.h"
#include "local/identity.h"
#include "local/image_root.h"
#include "local/limits.h"
#include "local/reaper.h"
#include "local/local.h"
#include "local/sandbox_dir.h"
#include "log.h"
#include "util.h"
#include "banned.h"

/* Released directories queued for the preparer, and spares kept, at the least. */
#define BACKLOG_MIN 4

void arl_local_set_output(struct arl_output *o, const char *s)
{
	arl_output_release(o);
	o->data = arl_xstrdup(s ? s : "");
	o->len = strlen(o->data);
}

/* A step that failed before (or instead of) running anything: a FAILED step, not infra. */
void arl_local_step_fail(struct arl_step_result *res, enum arl_class *cls, int code,
                         const char *msg)
{
	res->has_exit = true;
	res->exit_code = code;
	arl_local_set_output(&res->out, "");
	arl_local_set_output(&res->err, msg);
	*cls = ARL_CLASS_FAILED;
}

/* --- open and close ------------------------------------------------------------------ */

/* mkdir -p with mode 0700 for what it creates; then checks we own the result. */
static int open_state_dir(struct local *L, const char *dir, struct arl_err *err)
{
	char *path, *canon = NULL;
	struct stat st, cst;
	int ret = -1;

	if (dir && dir[0]) {
		path = arl_xstrdup(dir);
	} else {
		const char *tmp = getenv("TMPDIR");

		path = arl_xasprintf("%s/arl-batch-%u", tmp && tmp[0] == '/' ? tmp : "/tmp",
		                     (unsigned)geteuid());
	}
	for (char *p = path + 1;; p++) {
		if (*p == '/' || !*p) {
			char c = *p;

			*p = '\0';
			if (mkdir(path, 0700) < 0 && errno != EEXIST) {
				arl_error_errno(err, errno, "cannot create state directory '%s'",
				                path);
				goto out;
			}
			*p = c;
			if (!c)
				break;
		}
	}
	/* A link planted in its place (beside the database, by default) is not followed. */
	L->state_fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (L->state_fd < 0 && (errno == ELOOP || errno == ENOTDIR)) {
		arl_error(err, ARL_E_SYS, "state directory '%s' is %s; refusing it", path,
		          lstat(path, &st) == 0 && S_ISLNK(st.st_mode) ? "a symbolic link"
		                                                       : "not a directory");
		goto out;
	}
	if (L->state_fd < 0 || fstat(L->state_fd, &st) < 0 || !(canon = realpath(path, NULL)) ||
	    stat(canon, &cst) < 0) {
		arl_error_errno(err, errno, "cannot open state directory '%s'", path);
		goto out;
	}
	if (cst.st_dev != st.st_dev || cst.st_ino != st.st_ino) {
		arl_error(err, ARL_E_SYS, "state directory '%s' was replaced while it was opened",
		          path);
		goto out;
	}
	/* In a shared /tmp someone else may have made it first, to watch or swap our sandboxes. */
	if (st.st_uid != geteuid()) {
		arl_error(err, ARL_E_SYS, "state directory '%s' belongs to uid %u, not to us",
		          canon, (unsigned)st.st_uid);
		goto out;
	}
	if ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX)) {
		arl_error(err, ARL_E_SYS, "state directory '%s' is writable by other users", canon);
		goto out;
	}
	L->state_dir = canon;
	canon = NULL;
	ret = 0;
out:
	free(canon);
	free(path);
	return ret;
}

/* Test hook: as if the kernel refused the overlay (the fallback path, see cow_open()). */
#define NO_OVERLAY_ENV "ARL_BATCH_NO_OVERLAY"

static bool no_overlay_forced(void)
{
	const char *v = getenv(NO_OVERLAY_ENV);

	return v && !strcmp(v, "1");
}

/* ARL_BATCH_SKEL_KEEP=0: the run builds a skeleton of its own and deletes it at its end. */
static bool no_skel_keep(void)
{
	const char *v = getenv("ARL_BATCH_SKEL_KEEP");

	return v && !strcmp(v, "0");
}

static void cow_close(struct local *L)
{
	arl_cow_root_close(&L->cow);
	arl_skel_cache_close(&L->skel);
}

/*
 * The run's copy-on-write root: skeletons of /usr, /etc and the host's real top-level
 * directories among /bin, /lib... on a tmpfs (~0.2 s to build; ext4 takes ten times that),
 * reachable by the sandbox uid, kept for the next runs while those trees do not change
 * (skel_cache.h). Not built when the test hook says so; a failure to build it is the
 * fallback's too, never the run's.
 */
static void cow_open(struct local *L)
{
	struct arl_err why = ARL_ERR_INIT;
	const char *trees[8] = {"/usr", "/etc"};
	size_t n = 2;
	static unsigned long seq;
	uid_t uid = L->drop ? L->sb_uid : geteuid();
	gid_t gid = L->drop ? L->sb_gid : getegid();
	char *name;

	if (no_overlay_forced())
		return;
	for (size_t i = 0; i + 2 < L->root_args.n && n < 8; i += 3)
		if (!strcmp(L->root_args.v[i], "--ro-bind"))
			trees[n++] = L->root_args.v[i + 1];
	/* A build is named like a sandbox, for gc; /dev/shm is sticky: no one else swaps it. */
	name = arl_xasprintf(COW_SKEL_PREFIX "sb-%lld-%s-%lu", (long long)L->run_id, L->owner,
	                     __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
	if (arl_skel_cache_open(&L->skel, COW_SKEL_DIR, name, trees, n, uid, gid, !no_skel_keep(),
	                        &why) < 0)
		arl_log_warn("%s", why.msg);
	else
		arl_cow_root_use(&L->cow, L->skel.skel, trees, n, uid, gid);
	free(name);
}

static void local_close(void *state)
{
	struct local *L = state;

	if (!L)
		return;
	pthread_mutex_lock(&L->mu);
	L->stopping = true;
	pthread_cond_broadcast(&L->cv);
	pthread_mutex_unlock(&L->mu);
	for (size_t i = 0; i < L->npreparers; i++)
		pthread_join(L->preparer[i], NULL);
	arl_local_reaper_stop(L);
	/* Retired after the joins: recycled at once, or deleted, and the spares go below. */
	for (size_t i = 0; i < L->nreleased; i++)
		arl_local_sandbox_end(L, L->released[i]);
	free(L->released);
	for (size_t i = 0; i < L->nwarm; i++) {
		struct warm_pool *w = &L->warm[i];

		for (size_t k = 0; k < w->nboxes; k++)
			arl_local_sandbox_end(L, w->boxes[k]);
		free(w->boxes);
		for (size_t k = 0; k < w->nready; k++)
			arl_local_discard(L, &w->ready[k]);
		free(w->ready);
	}
	free(L->warm);
	/* Queued ones too: deleted, as nothing will use them now. */
	for (size_t i = 0; i < L->ndirty; i++)
		arl_local_discard(L, &L->dirty[i]);
	free(L->dirty);
	for (size_t i = 0; i < L->nspare; i++)
		arl_local_discard(L, &L->spare[i]);
	free(L->spare);
	arl_local_ws_lower_close(L);
	if (L->state_fd >= 0)
		close(L->state_fd);
	free(L->state_dir);
	free(L->owner);
	free(L->bwrap);
	free(L->agent);
	free(L->cow_note);
	cow_close(L);
	arl_local_images_close(L);
	pthread_mutex_destroy(&L->img_mu);
	arl_cgroups_close(L->cgroups);
	arl_local_sv_release(&L->root_args);
	arl_local_sv_release(&L->net_args);
	pthread_cond_destroy(&L->cv);
	pthread_mutex_destroy(&L->mu);
	free(L);
}

static const char *local_note(void *state)
{
	return ((struct local *)state)->cow_note;
}

/*
 * The pools' images, resolved (unpacked on first use) now, so that a missing one or a User
 * that cannot be honoured fails the run before any job; a job's own image is resolved when
 * its sandbox is made (the run checked it exists). An image needs the overlay mounts.
 */
static int open_images(struct local *L, const struct arl_pool *const *pools, size_t npools,
                       struct arl_err *err)
{
	for (size_t i = 0; i < npools; i++) {
		const struct arl_local_pool *lp = arl_local_pool(pools[i]);
		const struct local_image *img;

		if (!lp->image)
			continue;
		if (!L->cow.skel)
			return arl_error(
			    err, ARL_E_BACKEND,
			    "pool '%s': its image needs overlay mounts in the sandbox, "
			    "which are not available here (%s)",
			    pools[i]->name, L->cow_note ? L->cow_note : "no overlay");
		if (arl_local_image_get(L, lp->image, &img, err) < 0) {
			arl_err_prefix(err, "pool '%s'", pools[i]->name);
			return -1;
		}
	}
	return 0;
}

static int local_open(void **state, const struct arl_backend_opts *o,
                      const struct arl_pool *const *pools, size_t npools, struct arl_err *err)
{
	struct local *L = arl_xcalloc(1, sizeof(*L));
	const char *bwrap_pool = NULL;
	bool need_netns = false;
	int ret = -1;

	pthread_mutex_init(&L->mu, NULL);
	pthread_cond_init(&L->cv, NULL);
	pthread_mutex_init(&L->img_mu, NULL);
	L->state_fd = -1;
	L->reap_fd = -1;
	L->run_id = o->run_id;
	L->owner = arl_local_owner_tag();
	L->etc_ssh = access("/etc/ssh", F_OK) == 0;
	L->capture_max = o->capture_max;
	L->cancel_fd = o->cancel_fd;
	/* Whoever starts us, a step is never the host's root (see DESIGN). */
	if (geteuid() == 0 &&
	    (arl_local_sandbox_ids(L, err) < 0 || arl_local_make_root_mnt(err) < 0))
		goto out;
	if (open_state_dir(L, o->state_dir, err) < 0)
		goto out;
	/* Sweep what runners killed before their cleanup left behind (same as `arl-batch gc`). */
	{
		struct arl_err ignored = ARL_ERR_INIT;
		int swept = arl_local_gc(o->state_dir, true, NULL, NULL, &ignored);

		if (swept > 0)
			arl_log_info("deleted %d sandbox%s left by runners that died", swept,
			             swept == 1 ? "" : "es");
	}
	L->warm = arl_xcalloc(npools ? npools : 1, sizeof(*L->warm));
	for (size_t i = 0; i < npools; i++) {
		const struct arl_pool *p = pools[i];
		const struct arl_local_pool *lp = arl_local_pool(p);
		struct stat st;

		if (lp->workspace) {
			int e = 0;

			if (lp->workspace[0] != '/')
				e = EINVAL; /* the loader makes it absolute; a relative one is a bug */
			else if (stat(lp->workspace, &st) < 0)
				e = errno;
			else if (!S_ISDIR(st.st_mode))
				e = ENOTDIR;
			if (e) {
				arl_error_errno(err, e, "pool '%s': cannot use workspace '%s'",
				                p->name, lp->workspace);
				goto out;
			}
		}
		if (lp->isolation == ARL_ISO_BWRAP) {
			if (!bwrap_pool)
				bwrap_pool = p->name;
			if (!lp->network)
				need_netns = true;
		}
		L->warm[L->nwarm++].pool = p;
		L->backlog += p->replicas > 0 ? (size_t)p->replicas : 1;
	}
	if (L->backlog < BACKLOG_MIN)
		L->backlog = BACKLOG_MIN;
	if (arl_local_limits_open(L, pools, npools, err) < 0)
		goto out;
	if (bwrap_pool) {
		if (!(L->bwrap = arl_local_find_bwrap())) {
			arl_error(
			    err, ARL_E_BACKEND,
			    "pool '%s': bubblewrap is not installed (no 'bwrap' in PATH): "
			    "apt-get install bubblewrap, or set 'isolation: none' on the pool",
			    bwrap_pool);
			goto out;
		}
		const char *agent = getenv("ARL_BATCH_AGENT");

		/* Where an install or a test keeps the agent elsewhere than beside us. */
		if (agent && agent[0] == '/')
			L->agent = arl_xstrdup(agent);
		else if (arl_agent_path(&L->agent, err) < 0) {
			arl_err_prefix(err, "pool '%s'", bwrap_pool);
			goto out;
		}
		arl_local_probe_root_layout(L);
		L->agent_dynamic = arl_local_elf_dynamic(L->agent);
		cow_open(L);
		if (L->cow.skel && arl_local_probe_bwrap(L, bwrap_pool, !need_netns, err) < 0) {
			/* Where the overlay cannot be mounted, today's copy, said once. */
			const char *why = strstr(err->msg, "cannot mount an overlay");

			if (!why)
				goto out;
			/* The agent's reason only: the probe's hint about user namespaces is not it. */
			L->cow_note = arl_xasprintf(
			    "the sandbox agent %.*s (does the filesystem of '%s' refuse to hold an "
			    "overlay's upper layer?)",
			    (int)strcspn(why, ")"), why, L->state_dir);
			*err = (struct arl_err)ARL_ERR_INIT;
			cow_close(L);
		} else if (!L->cow.skel) {
			L->cow_note = arl_xstrdup(no_overlay_forced()
			                              ? NO_OVERLAY_ENV "=1: no copy-on-write root"
			                              : "no copy-on-write root (no skeleton)");
		}
		if (L->cow_note) {
			char *full =
			    arl_xasprintf("local sandboxes: %s: workspaces are copied, and "
			                  "/usr and /etc are read-only",
			                  L->cow_note);

			free(L->cow_note);
			L->cow_note = full;
			arl_log_warn("%s", full);
		}
		if (!L->cow.skel && arl_local_probe_bwrap(L, bwrap_pool, !need_netns, err) < 0)
			goto out;
	}
	if (open_images(L, pools, npools, err) < 0)
		goto out;
	if (L->nwarm && arl_local_reaper_start(L, err) < 0)
		goto out;
	for (size_t i = 0; L->nwarm && i < LOCAL_PREPARERS; i++) {
		int rc = pthread_create(&L->preparer[i], NULL, arl_local_preparer_main, L);

		if (rc && !i) {
			arl_error_errno(err, rc, "cannot start the sandbox preparer thread");
			goto out;
		}
		if (rc)
			break; /* one is enough to run */
		L->npreparers++;
		L->preparer_running = true;
	}
	*state = L;
	L = NULL;
	ret = 0;
out:
	local_close(L);
	return ret;
}

/* --- the ops table ------------------------------------------------------------------- */

static void local_release(void *state, struct arl_sandbox *sb, bool keep);

/* The image @sb's root comes from (the job's own, else its pool's), with its uppers made. */
static int sandbox_image(struct local *L, const struct arl_pool *pool,
                         const struct arl_sandbox_req *req, struct arl_sandbox *sb,
                         struct arl_err *err)
{
	const char *ref =
	    req && req->job && req->job->image ? req->job->image : arl_local_pool(pool)->image;
	int fd, r;

	if (!ref)
		return 0;
	if (arl_local_pool(pool)->isolation != ARL_ISO_BWRAP)
		return arl_error(err, ARL_E_INVALID,
		                 "image '%s' needs 'isolation: bwrap' (a sandbox of its own root)",
		                 ref);
	if (!L->cow.skel)
		return arl_error(err, ARL_E_BACKEND,
		                 "image '%s' needs overlay mounts in the sandbox, which are not "
		                 "available here (%s)",
		                 ref, L->cow_note ? L->cow_note : "no overlay");
	if (arl_local_image_get(L, ref, &sb->image, err) < 0)
		return -1;
	if ((fd = openat(L->state_fd, sb->dir.name,
	                 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return arl_error_errno(err, errno, "cannot open sandbox '%s'", sb->path);
	r = arl_local_image_uppers(L, fd, err);
	close(fd);
	return r;
}

struct arl_sandbox *arl_local_sandbox_new(struct local *L, const struct arl_pool *pool,
                                          const struct arl_sandbox_req *req, struct sbdir *d,
                                          struct arl_err *err)
{
	struct arl_sandbox *sb = arl_xcalloc(1, sizeof(*sb));

	sb->pool = pool;
	sb->dir = *d;
	d->name = NULL;
	sb->path = arl_xasprintf("%s/%s", L->state_dir, sb->dir.name);
	sb->bwrap_pid = sb->bwrap_pidfd = -1;
	sb->keep_alive = req && req->job && req->job->keep_alive;
	if (sandbox_image(L, pool, req, sb, err) < 0 || arl_local_limits_create(L, sb, err) < 0) {
		arl_err_prefix(err, "pool '%s'", pool->name);
		arl_local_sandbox_end(L, sb);
		return NULL;
	}
	return sb;
}

void arl_local_sandbox_end(struct local *L, struct arl_sandbox *sb)
{
	/* The whole PID namespace ends here: nothing of the sandbox outlives its attempt. */
	arl_local_container_stop(sb);
	arl_local_limits_release(sb);
	if (sb->dir.name)
		arl_local_retire(L, sb);
	free(sb->path);
	free(sb->job);
	free(sb);
}

/*
 * A container the preparer started for @pool, once its agent said HELLO; NULL when there is
 * none, or it failed to start (then acquire() starts one itself, which reports why).
 */
static struct arl_sandbox *take_warm(struct local *L, struct arl_sandbox *sb,
                                     const struct arl_sandbox_req *req, struct arl_err *err,
                                     int *rc)
{
	struct arl_err why = ARL_ERR_INIT;

	*rc = 0;
	if (!sb || arl_local_container_ready(L, sb, req ? req->deadline_ms : 0, &why) == 0)
		return sb;
	if (why.code == ARL_E_TIMEOUT || why.code == ARL_E_CANCELLED) {
		*err = why;
		*rc = -1;
	}
	sb->tainted = true;
	arl_local_sandbox_end(L, sb);
	return NULL;
}

static int local_acquire(void *state, const struct arl_pool *pool,
                         const struct arl_sandbox_req *req, struct arl_sandbox **out,
                         struct arl_err *err)
{
	struct local *L = state;
	struct arl_sandbox *sb = NULL;
	struct warm_pool *w;
	struct sbdir d = {0};
	struct copy_bound b = {.deadline = req && req->deadline_ms ? req->deadline_ms : INT64_MAX,
	                       .cancel_fd = L->cancel_fd};
	int rc;

	pthread_mutex_lock(&L->mu);
	if ((w = arl_local_find_warm(L, pool))) {
		bool retry = w->failed;

		/*
		 * Warm containers have the pool's root and /etc's upper in memory: a job's own
		 * image, or a job keeping its sandbox, needs one of its own (cow_root.c). The
		 * oldest first: it is the likeliest to have said HELLO already.
		 */
		if (w->nboxes && !(req && req->job && (req->job->image || req->job->keep_alive))) {
			sb = w->boxes[0];
			memmove(w->boxes, w->boxes + 1, --w->nboxes * sizeof(*w->boxes));
		} else if (w->nready)
			d = w->ready[--w->nready];
		w->failed = false; /* demand is back: let the preparer try again */
		/* A wake-up costs the worker more than the pop: only when there is work. */
		if (retry || L->ndirty || arl_local_pool_short(L, w))
			pthread_cond_signal(&L->cv);
	}
	pthread_mutex_unlock(&L->mu);
	if ((sb = take_warm(L, sb, req, err, &rc)) || rc < 0)
		goto out;
	if (!d.name && arl_local_make_sandbox(L, pool, &b, &d, err) < 0) {
		if (err->code != ARL_E_TIMEOUT && err->code != ARL_E_CANCELLED)
			arl_err_prefix(err, "pool '%s'", pool->name);
		return -1;
	}
	if (!(sb = arl_local_sandbox_new(L, pool, req, &d, err)))
		return -1;
	if (arl_local_pool(pool)->isolation == ARL_ISO_BWRAP &&
	    arl_local_container_start(L, sb, arl_local_pool(pool)->network,
	                              req ? req->deadline_ms : 0, err) < 0) {
		if (err->code != ARL_E_TIMEOUT && err->code != ARL_E_CANCELLED)
			arl_err_prefix(err, "pool '%s': cannot start the sandbox", pool->name);
		local_release(L, sb, false);
		return -1;
	}
out:
	if (!sb)
		return -1;
	if (req && req->job && req->job->name)
		sb->job = arl_xstrdup(req->job->name);
	*out = sb;
	return 0;
}

/*
 * Whether @sb's directory is no longer in the state directory, or is another one by that
 * name: something on the host deleted it. Judged by the name (a held fd would keep the
 * inode, and a removed one cannot come back); errors other than ENOENT say nothing.
 */
static bool sandbox_removed(const struct local *L, const struct arl_sandbox *sb)
{
	struct stat st;

	if (fstatat(L->state_fd, sb->dir.name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT;
	return !S_ISDIR(st.st_mode) || (sb->dir.made.ino && (st.st_dev != sb->dir.made.dev ||
	                                                     st.st_ino != sb->dir.made.ino));
}

static int local_exec(void *state, struct arl_sandbox *sb, const struct arl_step *step,
                      const struct arl_exec_ctx *ctx, struct arl_step_result *res,
                      enum arl_class *cls, struct arl_err *err)
{
	struct local *L = state;
	/* The step's own error: a removed sandbox replaces it before it reaches the caller's. */
	struct arl_err step_err = ARL_ERR_INIT;
	int ret;

	if (step->type == ARL_STEP_FILEPATCH)
		ret = arl_local_run_filepatch(L, sb, step, res, cls, &step_err);
	else
		ret = arl_local_run_command(L, sb, step, ctx, res, cls, &step_err);
	/*
	 * A step that failed in a directory deleted under it did nothing wrong: the failure is
	 * the host's (infra, retried), not a result of the step. Behind bwrap a step cannot
	 * delete its own /workspace (a mount point) nor see the state directory.
	 */
	if ((ret < 0 || *cls == ARL_CLASS_FAILED || *cls == ARL_CLASS_TIMEOUT) &&
	    sandbox_removed(L, sb)) {
		arl_error(err, ARL_E_BACKEND,
		          "the sandbox directory '%s' was removed from the host while the step ran",
		          sb->path);
		sb->tainted = true;
		ret = -1;
	} else if (ret < 0) {
		arl_error(err, step_err.code, "%s", step_err.msg);
	}
	return ret;
}

static const char *local_sandbox_name(const struct arl_sandbox *sb)
{
	return sb->dir.name;
}

static void local_release(void *state, struct arl_sandbox *sb, bool keep)
{
	struct local *L = state;

	if (!sb)
		return;
	if (keep) {
		/* "keep-" takes it out of gc's sight: an ownerless sb-* directory is garbage. */
		char *kept = arl_xasprintf("keep-%s", sb->dir.name);
		const char *where;

		arl_local_container_stop(sb);
		arl_local_limits_release(sb);
		where = renameat(L->state_fd, sb->dir.name, L->state_fd, kept) == 0 ? kept
		                                                                    : sb->dir.name;
		arl_log_info("%s%s%skeeping sandbox '%s/%s' (keepAlive)", sb->job ? "job '" : "",
		             sb->job ? sb->job : "", sb->job ? "': " : "", L->state_dir, where);
		arl_local_ws_lower_keep(L, sb->pool);
		free(kept);
		free(sb->dir.name);
		sb->dir.name = NULL;
		arl_local_sandbox_end(L, sb);
		return;
	}
	/*
	 * The agent's EOF ends the PID namespace at once; waiting for it, the cgroup's removal
	 * and the directory's recycling are the reaper's, off the worker's path.
	 */
	arl_local_container_close(sb);
	/* Its name is gone when release() returns, whoever recycles it. */
	if (!arl_local_retire_rename(L, sb) || !arl_local_reaper_queue(L, sb))
		arl_local_sandbox_end(L, sb);
}

const struct arl_backend_ops arl_backend_local = {
    .pool = &arl_local_pool_kind,
    .open = local_open,
    .acquire = local_acquire,
    .exec = local_exec,
    .sandbox_name = local_sandbox_name,
    .release = local_release,
    .close = local_close,
    .gc = arl_local_backend_gc,
    .note = local_note,
    .collect = arl_local_collect,
};
