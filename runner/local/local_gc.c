/* `arl-batch gc` for the local backend: sandboxes whose runner is gone. */
#include "local/backend_local.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "local/cgroup.h"
#include "local/cow_root.h"
#include "local/skel_cache.h"
#include "local/tree.h"
#include "local/ws_lower.h"
#include "log.h"
#include "util.h"
#include "banned.h"

/*
 * Why the runner that made sandbox @name is gone, or NULL: alive, not ours to judge (another
 * PID namespace: *@foreign is set), or not a sandbox name. The identity in the name is the
 * runner's own; a step cannot rename its directory, whose parent it cannot see.
 */
static const char *owner_gone(const char *name, const struct arl_owner *me, bool *foreign)
{
	struct arl_owner o = {0};
	unsigned long long pidns;
	unsigned long n;
	long long run;
	char boot[9];
	const char *why;
	int end = 0;

	*foreign = false;
	if (sscanf(name, "sb-%lld-%ld-%llu-%8[0-9a-f]-%llu-%lu%n", &run, &o.pid, &o.start, boot,
	           &pidns, &n, &end) != 6 ||
	    name[end]) {
		/*
		 * A name of an older version, "sb-RUN-PID-N": the pid alone, so only a pid that is
		 * not running is certain. A reused one keeps it until that process ends.
		 */
		memset(&o, 0, sizeof(o)); /* the failed match may have filled some */
		end = 0;
		if (sscanf(name, "sb-%lld-%ld-%lu%n", &run, &o.pid, &n, &end) != 3 || name[end])
			return NULL;
		return arl_owner_gone(&o, me);
	}
	if (strlen(boot) == 8)
		memcpy(o.boot, boot, sizeof(boot));
	if (pidns)
		snprintf(o.pidns, sizeof(o.pidns), "%llu", pidns);
	why = arl_owner_gone(&o, me);
	*foreign = !why && o.pidns[0] && me->pidns[0] && strcmp(o.pidns, me->pidns) != 0;
	return why;
}

/* For arl_cgroups_sweep(): a sandbox's cgroup goes with its runner, as its directory does. */
static const char *cgroup_gone(const char *name, void *arg)
{
	bool foreign;

	return owner_gone(name, arg, &foreign);
}

/*
 * Deletes (when @remove) the copy-on-write skeletons of runners that are gone, ours only
 * (cow_root.h): a run's own goes at its close, one killed with -9 leaves it in a tmpfs.
 */
static void sweep_skeletons(const struct arl_owner *me, bool remove)
{
	DIR *d = remove ? opendir(COW_SKEL_DIR) : NULL;
	struct dirent *de;

	while (d && (de = readdir(d))) {
		struct arl_err rm = ARL_ERR_INIT;
		const char *name = de->d_name + strlen(COW_SKEL_PREFIX);
		struct stat st;
		bool other_ns;

		if (strncmp(de->d_name, COW_SKEL_PREFIX, strlen(COW_SKEL_PREFIX)) ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
		    !owner_gone(name, me, &other_ns))
			continue;
		if (arl_local_rm_tree(dirfd(d), de->d_name, &rm) < 0)
			arl_log_warn("cannot delete '" COW_SKEL_DIR "/%s': %s", de->d_name, rm.msg);
	}
	if (d)
		closedir(d);
}

int arl_local_gc(const char *state_dir, bool remove, FILE *out, int *foreign, struct arl_err *err)
{
	int dfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct arl_owner me;
	DIR *d;
	struct dirent *de;
	int found = 0, others = 0;

	if (foreign)
		*foreign = 0;
	if (dfd < 0)
		return errno == ENOENT ? 0
		                       : arl_error_errno(err, errno, "cannot open '%s'", state_dir);
	d = fdopendir(dup(dfd));
	if (!d) {
		close(dfd);
		return arl_error_errno(err, errno, "cannot read '%s'", state_dir);
	}
	arl_owner_self(&me);
	while ((de = readdir(d))) {
		struct arl_err rm = ARL_ERR_INIT;
		const char *why, *name = de->d_name;
		bool other_ns;

		/* A root run's copy of a workspace is named after a sandbox (ws_lower.h). */
		if (!strncmp(name, WS_LOWER_PREFIX, strlen(WS_LOWER_PREFIX)))
			name += strlen(WS_LOWER_PREFIX);
		if (strncmp(name, "sb-", 3))
			continue;
		if (!(why = owner_gone(name, &me, &other_ns))) {
			others += other_ns;
			continue;
		}
		found++;
		if (out)
			fprintf(out, "%s %s/%s (%s)\n", remove ? "deleting" : "orphaned", state_dir,
			        de->d_name, why);
		if (remove && arl_local_rm_tree(dfd, de->d_name, &rm) < 0 && out)
			fprintf(out, ARL_LOG_PREFIX "cannot delete '%s/%s': %s\n", state_dir,
			        de->d_name, rm.msg);
	}
	closedir(d);
	close(dfd);
	sweep_skeletons(&me, remove);
	/* Their cgroups (resources-limited pools, local/cgroup.h): named alike, not counted. */
	arl_cgroups_sweep(NULL, remove, cgroup_gone, &me, out);
	if (foreign)
		*foreign = others;
	return found;
}

int arl_local_backend_gc(const struct arl_backend_gc_opts *g)
{
	struct arl_err err = ARL_ERR_INIT;
	int foreign = 0, n = arl_local_gc(g->state_dir, g->yes, stdout, &foreign, &err);

	if (n < 0)
		arl_log_err(NULL, &err);
	else if (n == 0)
		printf("no orphaned sandboxes in %s\n", g->state_dir);
	else if (!g->yes)
		printf("%d orphaned sandbox%s; run 'arl-batch gc --yes' to delete\n", n,
		       n == 1 ? "" : "es");
	if (foreign > 0)
		printf("%d sandbox%s of runners in another PID namespace not checked: their pids "
		       "mean nothing here; run gc where they run\n",
		       foreign, foreign == 1 ? "" : "es");
	/*
	 * Only here, after the sandboxes' lines: a run's own sweep (arl_local_gc()) must leave
	 * them for the next runs.
	 */
	arl_skel_cache_sweep(COW_SKEL_DIR, g->yes, stdout);
	return n < 0 ? ARL_EXIT_INCOMPLETE : ARL_EXIT_OK;
}
