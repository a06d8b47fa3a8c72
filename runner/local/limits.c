#include "local/limits.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "local/local.h"
#include "log.h"
#include "util.h"
#include "banned.h"

/* A pool's limits; 0 each when it has no 'resources:'. Valid: the loader checked them. */
static void pool_limits(const struct arl_pool *p, struct arl_limits *l)
{
	char *why = NULL;

	if (arl_resources_limits(&arl_local_pool(p)->resources, l, &why) < 0)
		memset(l, 0, sizeof(*l));
	free(why);
}

static bool any(const struct arl_limits *l)
{
	return l->memory_bytes || l->cpu_millis || l->pids;
}

int arl_local_limits_open(struct local *L, const struct arl_pool *const *pools, size_t npools,
                          struct arl_err *err)
{
	struct arl_limits want = {0};
	const char *first = NULL;

	/* Every controller any pool needs, so that one hierarchy serves them all. */
	for (size_t i = 0; i < npools; i++) {
		struct arl_limits l;

		pool_limits(pools[i], &l);
		if (!any(&l))
			continue;
		if (!first)
			first = pools[i]->name;
		want.memory_bytes |= l.memory_bytes;
		want.cpu_millis |= l.cpu_millis;
		want.pids |= l.pids;
	}
	if (!first)
		return 0;
	if (arl_cgroups_open(NULL, &want, &L->cgroups, err) < 0) {
		arl_err_prefix(err, "pool '%s' sets resources", first);
		return -1;
	}
	return 0;
}

int arl_local_limits_create(struct local *L, struct arl_sandbox *sb, struct arl_err *err)
{
	struct arl_limits l;

	pool_limits(sb->pool, &l);
	if (!any(&l) || !L->cgroups)
		return 0;
	/* Named like the sandbox: gc's ownership rules find it when we die. */
	return arl_cgroup_create(L->cgroups, sb->dir.name, &l, &sb->cgroup, err);
}

void arl_local_limits_release(struct arl_sandbox *sb)
{
	struct arl_err err = ARL_ERR_INIT;

	if (arl_cgroup_destroy(sb->cgroup, &err) < 0)
		arl_log_warn("%s", err.msg);
	sb->cgroup = NULL;
}

int arl_local_limits_join(const struct arl_sandbox *sb, struct arl_spawn_ident *id,
                          int fds[ARL_CGROUP_MAX_FDS], struct arl_err *err)
{
	int n;

	if (!sb->cgroup)
		return 0;
	if ((n = arl_cgroup_procs_fds(sb->cgroup, fds, err)) < 0)
		return -1;
	id->cgroup_fds = fds;
	id->ncgroup_fds = (size_t)n;
	return n;
}

void arl_local_limits_join_done(int fds[ARL_CGROUP_MAX_FDS], int n)
{
	for (int i = 0; i < n; i++)
		close(fds[i]);
}

struct arl_oom_mark arl_local_oom_mark(const struct arl_sandbox *sb)
{
	return sb->cgroup ? arl_cgroup_oom_mark(sb->cgroup) : (struct arl_oom_mark){0, 0};
}

/* As the kubelet says: a container the memory limit killed exited 137, OOMKilled. */
static void oom_killed(const struct arl_sandbox *sb, const char *who, struct arl_step_result *res,
                       enum arl_class *cls)
{
	struct arl_output *e = &res->err;
	char *note;

	res->has_exit = true;
	res->exit_code = 137;
	res->reason = "OOMKilled";
	*cls = ARL_CLASS_FAILED;
	note = arl_xasprintf("%s" ARL_LOG_PREFIX "OOMKilled: %s went over the pool's memory limit "
	                     "(resources: memory %s)\n",
	                     e->len && e->data[e->len - 1] != '\n' ? "\n" : "", who,
	                     arl_local_pool(sb->pool)->resources.memory);
	/* Appended as bytes: the output may hold NULs. */
	e->data = arl_xrealloc(e->data, e->len + strlen(note) + 1);
	memcpy(e->data + e->len, note, strlen(note) + 1);
	e->len += strlen(note);
	free(note);
}

bool arl_local_oom_ended(const struct arl_sandbox *sb, struct arl_oom_mark mark,
                         struct arl_step_result *res, enum arl_class *cls)
{
	if (*cls != ARL_CLASS_INFRA || !sb->cgroup || !arl_cgroup_oom_since(sb->cgroup, mark))
		return false;
	/* Not the step alone: what the sandbox keeps in /tmp and /etc, its background too. */
	oom_killed(sb, "the sandbox (its processes, files in /tmp and under /etc)", res, cls);
	return true;
}

void arl_local_oom_check(const struct arl_sandbox *sb, struct arl_oom_mark mark,
                         struct arl_step_result *res, enum arl_class *cls)
{
	if (sb->cgroup && res->has_exit && res->exit_code != 0 && *cls != ARL_CLASS_CANCELLED &&
	    arl_cgroup_oom_since(sb->cgroup, mark))
		oom_killed(sb, "the step", res, cls);
}
