#include "local/cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "util.h"
#include "banned.h"

#define CPU_PERIOD_US 100000
/* How long a cgroup's last processes may take to die before we give up on its rmdir. */
#define DESTROY_TRIES 5000 /* of 1 ms */

enum ctl { CTL_MEMORY, CTL_PIDS, CTL_CPU, NCTL };
static const char *const ctl_names[NCTL] = {"memory", "pids", "cpu"};

struct arl_cgroups {
	int version;
	bool fake;
	size_t n;
	char *base[NCTL];   /* v2: base[0] only */
	enum ctl ctl[NCTL]; /* v1: the controller of base[i] */
};

struct arl_cgroup {
	int version;
	bool fake;
	size_t n;
	char *dir[NCTL];
	enum ctl ctl[NCTL]; /* v1 */
};

static const char *env_root(const struct arl_cgroup_env *env)
{
	return env && env->root ? env->root : "/sys/fs/cgroup";
}

/* The whole of a small file, NUL-terminated (owned), or NULL with errno set. */
static char *read_text(const char *path)
{
	struct arl_buf b = ARL_BUF_INIT;
	char chunk[4096];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0 || (n < 0 && errno == EINTR))
		if (n > 0)
			arl_buf_add(&b, chunk, (size_t)n);
	close(fd);
	return arl_buf_detach(&b, NULL);
}

static int write_text(const char *path, const char *s, bool fake)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC | (fake ? O_CREAT | O_TRUNC : 0), 0644);
	ssize_t n;
	int e;

	if (fd < 0)
		return -1;
	n = write(fd, s, strlen(s));
	e = errno;
	close(fd);
	errno = e;
	return n == (ssize_t)strlen(s) ? 0 : -1;
}

static bool is_dir(const char *path)
{
	DIR *d = opendir(path);

	if (d)
		closedir(d);
	return d != NULL;
}

/* Whether the space-separated @list names @word (a leading '+' ignored). */
static bool word_in(const char *list, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = list; p && *p;) {
		p += strspn(p, " \t\n+");
		if (!strncmp(p, word, n) && (!p[n] || strchr(" \t\n", p[n])))
			return true;
		p += strcspn(p, " \t\n");
	}
	return false;
}

/*
 * Our path in the hierarchy of /proc/self/cgroup whose controller list holds @ctl ("" for
 * v2's "0::" line), and that list (both owned); -1 when there is none.
 */
static int self_path(const struct arl_cgroup_env *env, const char *ctl, char **path, char **list)
{
	char *text = read_text(env && env->self ? env->self : "/proc/self/cgroup");
	char *save = NULL;
	int ret = -1;

	if (!text)
		return -1;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		bool match = false;

		if (!c2)
			continue;
		*c2 = '\0';
		if (!ctl[0]) {
			match = c1 == line + 1 && line[0] == '0' && c2 == c1 + 1;
		} else {
			char *lsave = NULL, *copy = arl_xstrdup(c1 + 1);

			for (char *w = strtok_r(copy, ",", &lsave); w && !match;
			     w = strtok_r(NULL, ",", &lsave))
				match = !strcmp(w, ctl);
			free(copy);
		}
		if (match) {
			*path = arl_xstrdup(c2 + 1);
			*list = arl_xstrdup(c1 + 1);
			ret = 0;
			break;
		}
	}
	free(text);
	return ret;
}

/* Path @a + @b, without a doubled '/' when @b is "/". Owned. */
static char *join(const char *a, const char *b)
{
	return arl_xasprintf("%s%s%s", a, b[0] == '/' ? "" : "/", strcmp(b, "/") ? b : "");
}

/* Can we make cgroups in @base? mkdir and rmdir of a probe say it. */
static int probe(const char *base, struct arl_buf *why)
{
	char *p = arl_xasprintf("%s/arl-probe-%ld", base, (long)getpid());
	char ebuf[128];
	int ret = 0;

	if (mkdir(p, 0755) < 0) {
		arl_buf_addf(why, "cannot create a cgroup in '%s': %s", base,
		             arl_strerror(errno, ebuf, sizeof(ebuf)));
		ret = -1;
	} else {
		rmdir(p);
	}
	free(p);
	return ret;
}

static bool needs(const struct arl_limits *w, enum ctl c)
{
	return c == CTL_MEMORY ? w->memory_bytes > 0
	       : c == CTL_PIDS ? w->pids > 0
	                       : w->cpu_millis > 0;
}

/* Our cgroup in the v2 hierarchy (owned), or NULL when we are in none. */
static char *v2_base(const struct arl_cgroup_env *env)
{
	const char *root = env_root(env);
	char *f = join(root, "cgroup.controllers"), *mnt, *path, *list, *base = NULL;

	mnt = access(f, F_OK) == 0 ? arl_xstrdup(root) : join(root, "unified");
	if (self_path(env, "", &path, &list) == 0) {
		base = join(mnt, path);
		free(path);
		free(list);
	}
	free(mnt);
	free(f);
	return base;
}

/* Our cgroup in controller @c's v1 hierarchy (owned; it may not exist), or NULL. */
static char *v1_base(const struct arl_cgroup_env *env, enum ctl c)
{
	char *path, *list, *dir, *base;

	if (self_path(env, ctl_names[c], &path, &list) < 0)
		return NULL;
	/* Comounted controllers ("cpu,cpuacct") are usually linked by each name too. */
	dir = join(env_root(env), ctl_names[c]);
	if (!is_dir(dir)) {
		free(dir);
		dir = join(env_root(env), list);
	}
	base = join(dir, path);
	free(dir);
	free(path);
	free(list);
	return base;
}

static int open_v2(const struct arl_cgroup_env *env, const struct arl_limits *want,
                   struct arl_cgroups *cgs, struct arl_buf *why)
{
	char *base = v2_base(env), *f = NULL, *text = NULL;
	struct arl_buf enable = ARL_BUF_INIT;
	char ebuf[128];
	int ret = -1;

	if (!base) {
		arl_buf_addstr(why, "this process is in no cgroup v2");
		goto out;
	}
	f = join(base, "cgroup.controllers");
	text = read_text(f);
	free(f);
	f = NULL;
	for (int c = 0; c < NCTL; c++) {
		if (!needs(want, c))
			continue;
		if (!text || !word_in(text, ctl_names[c])) {
			arl_buf_addf(why, "'%s' has no %s controller (not delegated)", base,
			             ctl_names[c]);
			goto out;
		}
	}
	free(text);
	f = join(base, "cgroup.subtree_control");
	text = read_text(f);
	for (int c = 0; c < NCTL; c++)
		if (needs(want, c) && !(text && word_in(text, ctl_names[c])))
			arl_buf_addf(&enable, "%s+%s", enable.len ? " " : "", ctl_names[c]);
	if (enable.len && write_text(f, enable.p, env && env->fake) < 0) {
		arl_buf_addf(why, "cannot enable %s in '%s': %s", enable.p, f,
		             arl_strerror(errno, ebuf, sizeof(ebuf)));
		goto out;
	}
	if (probe(base, why) < 0)
		goto out;
	cgs->version = 2;
	cgs->base[cgs->n++] = base;
	base = NULL;
	ret = 0;
out:
	arl_buf_release(&enable);
	free(text);
	free(f);
	free(base);
	return ret;
}

static int open_v1(const struct arl_cgroup_env *env, const struct arl_limits *want,
                   struct arl_cgroups *cgs, struct arl_buf *why)
{
	for (int c = 0; c < NCTL; c++) {
		char *base;

		if (!needs(want, c))
			continue;
		if (!(base = v1_base(env, c))) {
			arl_buf_addf(why, "no %s controller is mounted", ctl_names[c]);
			return -1;
		}
		cgs->base[cgs->n] = base;
		cgs->ctl[cgs->n++] = c;
		if (!is_dir(base)) {
			arl_buf_addf(why, "no %s hierarchy at '%s'", ctl_names[c], base);
			return -1;
		}
		if (probe(base, why) < 0)
			return -1;
	}
	cgs->version = 1;
	return 0;
}

static void reset(struct arl_cgroups *cgs)
{
	for (size_t i = 0; i < cgs->n; i++)
		free(cgs->base[i]);
	cgs->n = 0;
}

int arl_cgroups_open(const struct arl_cgroup_env *env, const struct arl_limits *want,
                     struct arl_cgroups **out, struct arl_err *err)
{
	struct arl_cgroups *cgs = arl_xcalloc(1, sizeof(*cgs));
	struct arl_buf why2 = ARL_BUF_INIT, why1 = ARL_BUF_INIT;
	int ret = 0;

	cgs->fake = env && env->fake;
	if (open_v2(env, want, cgs, &why2) < 0) {
		reset(cgs);
		if (open_v1(env, want, cgs, &why1) < 0) {
			reset(cgs);
			ret =
			    arl_error(err, ARL_E_BACKEND,
			              "resources need a cgroup this runner can write, and there is "
			              "none: cgroup v2: %s; cgroup v1: %s (run as root on a host "
			              "with cgroup v1 controllers, or in a delegated cgroup v2 "
			              "subtree, e.g. under 'systemd-run --user -p Delegate=yes')",
			              why2.p ? why2.p : "", why1.p ? why1.p : "");
			free(cgs);
			cgs = NULL;
		}
	}
	arl_buf_release(&why2);
	arl_buf_release(&why1);
	*out = cgs;
	return ret;
}

void arl_cgroups_close(struct arl_cgroups *cgs)
{
	if (!cgs)
		return;
	reset(cgs);
	free(cgs);
}

int arl_cgroups_version(const struct arl_cgroups *cgs)
{
	return cgs->version;
}

/* Writes @val to @dir/@file; an @optional file that is not there is skipped. */
static int set(const struct arl_cgroup *cg, const char *dir, const char *file, int64_t val,
               const char *suffix, bool optional, struct arl_err *err)
{
	char *p = arl_xasprintf("%s/%s", dir, file);
	char *s = arl_xasprintf("%" PRId64 "%s", val, suffix);
	int ret = 0;

	if (!(optional && access(p, F_OK) < 0) && write_text(p, s, cg->fake) < 0)
		ret = arl_error_errno(err, errno, "cannot write '%s' to '%s'", s, p);
	free(s);
	free(p);
	return ret;
}

static int set_limits(const struct arl_cgroup *cg, const struct arl_limits *l, struct arl_err *err)
{
	int64_t quota = l->cpu_millis * (CPU_PERIOD_US / 1000);
	char period[32];

	snprintf(period, sizeof(period), " %d", CPU_PERIOD_US);
	if (cg->version == 2) {
		const char *d = cg->dir[0];

		return (l->memory_bytes &&
		        (set(cg, d, "memory.max", l->memory_bytes, "", false, err) < 0 ||
		         set(cg, d, "memory.swap.max", 0, "", true, err) < 0)) ||
		               (l->pids && set(cg, d, "pids.max", l->pids, "", false, err) < 0) ||
		               (l->cpu_millis &&
		                set(cg, d, "cpu.max", quota, period, false, err) < 0)
		           ? -1
		           : 0;
	}
	for (size_t i = 0; i < cg->n; i++) {
		const char *d = cg->dir[i];
		int rc = 0;

		switch (cg->ctl[i]) {
		case CTL_MEMORY:
			/* memsw (memory + swap) may not be below the memory limit: set it after. */
			rc = set(cg, d, "memory.limit_in_bytes", l->memory_bytes, "", false, err) <
			         0 ||
			     set(cg, d, "memory.memsw.limit_in_bytes", l->memory_bytes, "", true,
			         err) < 0;
			break;
		case CTL_PIDS:
			rc = set(cg, d, "pids.max", l->pids, "", false, err);
			break;
		case CTL_CPU:
			rc = set(cg, d, "cpu.cfs_period_us", CPU_PERIOD_US, "", false, err) < 0 ||
			     set(cg, d, "cpu.cfs_quota_us", quota, "", false, err) < 0;
			break;
		case NCTL:
			break;
		}
		if (rc)
			return -1;
	}
	return 0;
}

int arl_cgroup_create(struct arl_cgroups *cgs, const char *name, const struct arl_limits *l,
                      struct arl_cgroup **out, struct arl_err *err)
{
	struct arl_cgroup *cg = arl_xcalloc(1, sizeof(*cg));
	struct arl_err ignored = ARL_ERR_INIT;

	*out = NULL;
	cg->version = cgs->version;
	cg->fake = cgs->fake;
	for (size_t i = 0; i < cgs->n; i++) {
		char *d = arl_xasprintf("%s/%s", cgs->base[i], name);

		if (mkdir(d, 0755) < 0) {
			arl_error_errno(err, errno, "cannot create cgroup '%s'", d);
			free(d);
			arl_cgroup_destroy(cg, &ignored);
			return -1;
		}
		cg->ctl[cg->n] = cgs->ctl[i];
		cg->dir[cg->n++] = d;
	}
	if (set_limits(cg, l, err) < 0) {
		arl_cgroup_destroy(cg, &ignored);
		return -1;
	}
	*out = cg;
	return 0;
}

int arl_cgroup_attach(const struct arl_cgroup *cg, pid_t pid, struct arl_err *err)
{
	for (size_t i = 0; i < cg->n; i++)
		if (set(cg, cg->dir[i], "cgroup.procs", pid, "", false, err) < 0)
			return -1;
	return 0;
}

int arl_cgroup_procs_fds(const struct arl_cgroup *cg, int *fds, struct arl_err *err)
{
	for (size_t i = 0; i < cg->n; i++) {
		char *p = arl_xasprintf("%s/cgroup.procs", cg->dir[i]);

		fds[i] = open(p, O_WRONLY | O_CLOEXEC | (cg->fake ? O_CREAT : 0), 0644);
		if (fds[i] < 0) {
			arl_error_errno(err, errno, "cannot open '%s'", p);
			free(p);
			while (i--)
				close(fds[i]);
			return -1;
		}
		free(p);
	}
	return (int)cg->n;
}

/* The memory controller's directory of @cg, or NULL when memory is not limited. */
static const char *memory_dir(const struct arl_cgroup *cg)
{
	if (cg->version == 2)
		return cg->n ? cg->dir[0] : NULL;
	for (size_t i = 0; i < cg->n; i++)
		if (cg->ctl[i] == CTL_MEMORY)
			return cg->dir[i];
	return NULL;
}

/* The number on @text's line "@key N" (a flat keyed file); 0 when there is none. */
static uint64_t keyed(const char *text, const char *key)
{
	size_t n = strlen(key);

	for (const char *at = text; at && (at = strstr(at, key)); at++)
		if ((at == text || at[-1] == '\n') && at[n] == ' ')
			return strtoull(at + n + 1, NULL, 10);
	return 0;
}

/* The text of @dir/@name (owned), or NULL when unreadable. */
static char *read_at(const char *dir, const char *name)
{
	char *p = arl_xasprintf("%s/%s", dir, name);
	char *text = read_text(p);

	free(p);
	return text;
}

/* The number @dir/@name holds (or its line @key); 0 when unreadable. */
static uint64_t counter(const char *dir, const char *name, const char *key)
{
	char *text = read_at(dir, name);
	uint64_t n = !text ? 0 : key ? keyed(text, key) : strtoull(text, NULL, 10);

	free(text);
	return n;
}

/* v1 peaks (usage, usage + swap) against their limits, a pair per row. */
static const char *const v1_peaks[][2] = {
    {"memory.max_usage_in_bytes", "memory.limit_in_bytes"},
    {"memory.memsw.max_usage_in_bytes", "memory.memsw.limit_in_bytes"},
};

/* Whether a v1 peak reached its limit: its memory.failcnt stays 0 on recent kernels. */
static bool v1_peak_at_limit(const char *dir)
{
	for (size_t i = 0; i < sizeof(v1_peaks) / sizeof(v1_peaks[0]); i++) {
		uint64_t limit = counter(dir, v1_peaks[i][1], NULL);

		if (limit && counter(dir, v1_peaks[i][0], NULL) >= limit)
			return true;
	}
	return false;
}

/* v2 counts both in memory.events: its processes' OOM kills, and its own limit reached. */
static struct arl_oom_mark v2_mark(const char *dir)
{
	char *events = read_at(dir, "memory.events");
	struct arl_oom_mark m = {keyed(events, "oom_kill"), keyed(events, "oom")};

	free(events);
	return m;
}

/* v1 (Linux >= 4.13) counts its processes' OOM kills in memory.oom_control. */
static uint64_t v1_kills(const char *dir)
{
	return counter(dir, "memory.oom_control", "oom_kill");
}

struct arl_oom_mark arl_cgroup_oom_mark(const struct arl_cgroup *cg)
{
	const char *dir = memory_dir(cg);

	if (!dir)
		return (struct arl_oom_mark){0, 0};
	if (cg->version == 2)
		return v2_mark(dir);
	/*
	 * v1 has no count of its limit reached: its peaks start again here (a write that fails,
	 * or a file this kernel lacks, leaves the peak since the sandbox began: a weaker test).
	 */
	for (size_t i = 0; i < sizeof(v1_peaks) / sizeof(v1_peaks[0]); i++) {
		char *p = arl_xasprintf("%s/%s", dir, v1_peaks[i][0]);

		(void)write_text(p, "0", cg->fake);
		free(p);
	}
	return (struct arl_oom_mark){v1_kills(dir), 0};
}

bool arl_cgroup_oom_since(const struct arl_cgroup *cg, struct arl_oom_mark mark)
{
	const char *dir = memory_dir(cg);
	struct arl_oom_mark now;

	if (!dir)
		return false;
	if (cg->version == 2) {
		now = v2_mark(dir);
		return now.kills > mark.kills && now.hits > mark.hits;
	}
	return v1_kills(dir) > mark.kills && v1_peak_at_limit(dir);
}

/* SIGKILLs every process listed in @dir/cgroup.procs; true when there was none. */
static bool kill_listed(const char *dir)
{
	char *p = arl_xasprintf("%s/cgroup.procs", dir);
	char *text = read_text(p), *end;
	bool empty = true;

	for (const char *s = text; s && *s; s = end) {
		long pid = strtol(s, &end, 10);

		if (end == s)
			break;
		if (pid > 0) {
			kill((pid_t)pid, SIGKILL);
			empty = false;
		}
	}
	free(text);
	free(p);
	return empty;
}

/* A fake cgroup's files, which cgroupfs would drop itself. */
static void remove_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d)))
		if (de->d_type == DT_REG)
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
}

/* Kills what is in cgroup @dir until it is empty, then removes it. */
static int remove_one(const char *dir, bool fake, struct arl_err *err)
{
	const struct timespec ms = {0, 1000000};
	char *kill_file = arl_xasprintf("%s/cgroup.kill", dir);
	int e = 0;

	/* v2 (Linux >= 5.14) kills the whole cgroup at once, with no pid to race for. */
	if (!fake && access(kill_file, F_OK) == 0)
		write_text(kill_file, "1", false);
	free(kill_file);
	for (int tries = 0; tries < DESTROY_TRIES; tries++) {
		if (!kill_listed(dir)) {
			nanosleep(&ms, NULL);
			continue;
		}
		if (fake)
			remove_files(dir);
		if (rmdir(dir) == 0 || errno == ENOENT)
			return 0;
		if ((e = errno) != EBUSY)
			break;
		nanosleep(&ms, NULL);
	}
	return arl_error_errno(err, e ? e : EBUSY, "cannot remove cgroup '%s'", dir);
}

int arl_cgroup_destroy(struct arl_cgroup *cg, struct arl_err *err)
{
	int ret = 0;

	if (!cg)
		return 0;
	/* The last hierarchy first: the memory one holds the OOM counter a caller may read. */
	for (size_t i = cg->n; i--;) {
		struct arl_err e = ARL_ERR_INIT;

		if (remove_one(cg->dir[i], cg->fake, &e) < 0 && ret == 0)
			ret = arl_error(err, e.code, "%s", e.msg);
		free(cg->dir[i]);
	}
	free(cg);
	return ret;
}

int arl_cgroups_sweep(const struct arl_cgroup_env *env, bool remove,
                      const char *(*gone)(const char *name, void *arg), void *arg, FILE *out)
{
	char *bases[1 + NCTL];
	size_t n = 0;
	int found = 0;

	/* Every hierarchy a runner could have used; nothing is created here. */
	bases[n++] = v2_base(env);
	for (int c = 0; c < NCTL; c++)
		bases[n++] = v1_base(env, c);
	for (size_t i = 0; i < n; i++) {
		DIR *d = bases[i] ? opendir(bases[i]) : NULL;
		struct dirent *de;

		while (d && (de = readdir(d))) {
			struct arl_err e = ARL_ERR_INIT;
			const char *why;
			char *dir;

			if (strncmp(de->d_name, "sb-", 3) || de->d_type != DT_DIR ||
			    !(why = gone(de->d_name, arg)))
				continue;
			found++;
			dir = arl_xasprintf("%s/%s", bases[i], de->d_name);
			if (out)
				fprintf(out, "%s cgroup %s (%s)\n",
				        remove ? "deleting" : "orphaned", dir, why);
			if (remove && remove_one(dir, env && env->fake, &e) < 0 && out)
				fprintf(out, ARL_LOG_PREFIX "%s\n", e.msg);
			free(dir);
		}
		if (d)
			closedir(d);
		free(bases[i]);
	}
	return found;
}
