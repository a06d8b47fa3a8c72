/*
 * Unit tests for the local backend (backend_local.c) and the backend registry: Command exit
 * codes, environment and workDir; FilePatch and its refusals (.., outside paths, symlink and
 * FIFO tricks); what bwrap hides and forbids (host files, /usr and /etc, network); the pool
 * workspace copy; timeouts and cancellation with no process left; isolation: none; warm
 * pools, hostile leftovers and concurrency, each ending with an empty state directory.
 * Recycling: a released directory is handed out again empty and 0700 whatever its step left
 * in it, and never after a timeout, a cancel or a process that outlived its step; close()
 * deletes ready, spare and queued directories alike. Directories are told apart by inode
 * and birth time, since release() renames them.
 *
 * The isolation-none group always runs; the bwrap group needs a working bubblewrap, and
 * without one the program exits 77 (skipped) once the rest has passed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/fs.h>

#include <cmocka.h>

#include "backend/backend.h"
#include "cmd/builtin_backends.h"
#include "local/backend_local.h"
#include "local/local.h"
#include "local/local_pool.h"
#include "spawn.h"
#include "util.h"
#include "banned.h"

#define SKIP 77

struct fx {
	char root[256];  /* private temp dir of the test */
	char state[300]; /* the backend's state_dir, inside root */
	struct arl_pool pool;
	struct arl_local_pool local; /* pool.config */
	const struct arl_pool *pools[1];
	void *st;
	int cancel_fd;
};

static bool have_python;

/* The host uid steps run as: ours, or as root the sandbox uid main() sets (+ 1: none's). */
#define TEST_SANDBOX_UID 65529
static uid_t step_uid(const struct fx *f)
{
	if (geteuid())
		return geteuid();
	return f->local.isolation == ARL_ISO_NONE ? TEST_SANDBOX_UID + 1 : TEST_SANDBOX_UID;
}

/* rm -rf that also copes with the mode-0 directories some tests leave. */
static void rm_rf(const char *path)
{
	char *cmd = arl_xasprintf("chmod -R u+rwx '%s' 2>/dev/null; rm -rf '%s'", path, path);

	(void)!system(cmd);
	free(cmd);
}

/* Entries of @dir, but those whose name starts with @skip (NULL: none). */
static size_t count_entries_but(const char *dir, const char *skip)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    (!skip || strncmp(de->d_name, skip, strlen(skip))))
			n++;
	closedir(d);
	return n;
}

static size_t count_entries(const char *dir)
{
	return count_entries_but(dir, NULL);
}

/* Processes whose command line contains @marker (we do not depend on pgrep). */
static int count_procs(const char *marker)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d))) {
		char path[300], buf[4096];
		ssize_t len;
		int fd;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			continue;
		len = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (len <= 0)
			continue;
		for (ssize_t i = 0; i < len; i++)
			if (!buf[i])
				buf[i] = ' ';
		buf[len] = '\0';
		if (strstr(buf, marker))
			n++;
	}
	closedir(d);
	return n;
}

/* Waits for states, never for a time: a hang is the failure, and ctest's timeout reports it. */
static void wait_no_procs(const char *marker)
{
	while (count_procs(marker))
		usleep(10000);
}

static void write_file(const char *path, const char *content, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
}

static int fx_setup(void **state)
{
	struct fx *f = arl_xcalloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");

	snprintf(f->root, sizeof(f->root), "%s/arl-test-local-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(f->root)) {
		free(f);
		return -1;
	}
	snprintf(f->state, sizeof(f->state), "%s/state", f->root);
	f->pools[0] = &f->pool;
	f->cancel_fd = -1;
	*state = f;
	return 0;
}

static void fx_close(struct fx *f)
{
	if (!f->st)
		return;
	arl_backend_local.close(f->st);
	f->st = NULL;
	/* Whatever happened, nothing may be left behind. */
	assert_int_equal(count_entries(f->state), 0);
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	if (f->st)
		arl_backend_local.close(f->st);
	rm_rf(f->root);
	free(f);
	return 0;
}

static int fx_try_open(struct fx *f, enum arl_isolation iso, bool network, const char *workspace,
                       int replicas, struct arl_err *err)
{
	struct arl_backend_opts o = {
	    .state_dir = f->state, .run_id = 7, .run_name = "t", .cancel_fd = f->cancel_fd};

	f->pool.name = "pool";
	f->pool.kind = &arl_local_pool_kind;
	f->pool.config = &f->local;
	f->local.isolation = iso;
	f->local.network = network;
	f->local.workspace = (char *)workspace;
	f->pool.replicas = replicas;
	return arl_backend_local.open(&f->st, &o, f->pools, 1, err);
}

static void fx_open(struct fx *f, enum arl_isolation iso, bool network, const char *workspace,
                    int replicas)
{
	struct arl_err err = ARL_ERR_INIT;

	if (fx_try_open(f, iso, network, workspace, replicas, &err) < 0)
		fail_msg("open: %s", err.msg);
}

static struct arl_sandbox *acquire(struct fx *f)
{
	struct arl_sandbox *sb = NULL;
	struct arl_err err = ARL_ERR_INIT;
	struct arl_sandbox_req req = {.attempt = 1};

	if (arl_backend_local.acquire(f->st, &f->pool, &req, &sb, &err) < 0)
		fail_msg("acquire: %s", err.msg);
	return sb;
}

/*
 * Where @rel of a sandbox's /workspace is on the host: in the sandbox directory, or in its
 * workspace's upper layer when /workspace is a copy-on-write overlay (bwrap pools). "": the
 * sandbox directory itself.
 */
static char *host_path(struct fx *f, struct arl_sandbox *sb, const char *rel)
{
	char *upper =
	    arl_xasprintf("%s/%s/upper/workspace", f->state, arl_backend_local.sandbox_name(sb));
	struct stat st;
	char *p;

	if (rel[0] && lstat(upper, &st) == 0 && S_ISDIR(st.st_mode))
		p = arl_xasprintf("%s/%s", upper, rel);
	else
		p = arl_xasprintf("%s/%s/%s", f->state, arl_backend_local.sandbox_name(sb), rel);
	free(upper);
	return p;
}

/* Runs @step with a deadline @timeout_ms from now (0: none); asserts exec() returned 0. */
static void exec_step(struct fx *f, struct arl_sandbox *sb, const struct arl_step *step,
                      int64_t timeout_ms, struct arl_step_result *res, enum arl_class *cls)
{
	struct arl_exec_ctx ctx = {.deadline_ms = timeout_ms ? arl_now_ms() + timeout_ms : 0};
	struct arl_err err = ARL_ERR_INIT;

	memset(res, 0, sizeof(*res));
	if (arl_backend_exec(&arl_backend_local, f->st, sb, step, &ctx, res, cls, &err) < 0)
		fail_msg("exec: %s", err.msg);
	assert_non_null(res->out.data);
	assert_non_null(res->err.data);
}

/* `sh -c script` in @wd (NULL: default) with env pairs "K", "V", ..., NULL. */
static void sh_env(struct fx *f, struct arl_sandbox *sb, const char *wd, const char *script,
                   int64_t timeout_ms, struct arl_step_result *res, enum arl_class *cls, ...)
{
	char *argv[] = {"sh", "-c", (char *)script, NULL};
	struct arl_kv kv[8];
	struct arl_step step = {.name = "cmd",
	                        .type = ARL_STEP_COMMAND,
	                        .argv = argv,
	                        .argc = 3,
	                        .work_dir = (char *)wd};
	va_list ap;
	const char *k;

	va_start(ap, cls);
	while ((k = va_arg(ap, const char *)) && step.env.n < 8) {
		kv[step.env.n].key = (char *)k;
		kv[step.env.n++].val = va_arg(ap, char *);
	}
	va_end(ap);
	step.env.v = kv;
	exec_step(f, sb, &step, timeout_ms, res, cls);
}

/* Runs @script and expects success; returns its stdout (owned). */
static char *sh_ok(struct fx *f, struct arl_sandbox *sb, const char *wd, const char *script)
{
	struct arl_step_result res;
	enum arl_class cls;
	char *out;

	sh_env(f, sb, wd, script, 20000, &res, &cls, NULL);
	if (cls != ARL_CLASS_NONE || res.state != ARL_STATE_SUCCEEDED)
		fail_msg("'%s' failed (exit %d): %s", script, res.exit_code, res.err.data);
	out = arl_xstrdup(res.out.data);
	arl_step_result_release(&res);
	return out;
}

/* Runs @script and expects a plain failure; returns its exit code. */
static int sh_fails(struct fx *f, struct arl_sandbox *sb, const char *script)
{
	struct arl_step_result res;
	enum arl_class cls;
	int code;

	sh_env(f, sb, NULL, script, 20000, &res, &cls, NULL);
	if (cls != ARL_CLASS_FAILED || res.state != ARL_STATE_FAILED)
		fail_msg("'%s' did not fail (class %d): %s", script, (int)cls, res.out.data);
	code = res.exit_code;
	arl_step_result_release(&res);
	return code;
}

static void patch(struct fx *f, struct arl_sandbox *sb, const char *path, const char *content,
                  size_t len, struct arl_step_result *res, enum arl_class *cls)
{
	struct arl_step step = {.name = "patch",
	                        .type = ARL_STEP_FILEPATCH,
	                        .path = (char *)path,
	                        .content = (char *)content,
	                        .content_len = len};

	exec_step(f, sb, &step, 0, res, cls);
	assert_string_equal(res->type, "FilePatch");
}

/* Expects FilePatch of @path to be refused with @why in its stderr. */
static void patch_refused(struct fx *f, struct arl_sandbox *sb, const char *path, const char *why)
{
	struct arl_step_result res;
	enum arl_class cls;

	patch(f, sb, path, "evil\n", 5, &res, &cls);
	if (cls != ARL_CLASS_FAILED || res.state != ARL_STATE_FAILED || !strstr(res.err.data, why))
		fail_msg("FilePatch '%s': class %d, stderr '%s', wanted '%s'", path, (int)cls,
		         res.err.data, why);
	assert_int_equal(res.exit_code, 1);
	assert_string_equal(res.out.data, "");
	arl_step_result_release(&res);
}

static void release(struct fx *f, struct arl_sandbox *sb)
{
	arl_backend_local.release(f->st, sb, false);
}

/* --- recycling: which directory is which ------------------------------------------- */

/*
 * One directory, whatever its name (release() renames it): device and inode, plus the birth
 * time where the filesystem records one, because a directory made after another was deleted
 * may get the same inode number and must not pass for it.
 */
struct dir_id {
	unsigned dev_major, dev_minor;
	uint64_t ino;
	bool has_btime;
	struct statx_timestamp btime;
};

/* 0 and *id set, or -1 when @path is gone (the preparer deletes directories meanwhile). */
static int dir_id_get(const char *path, struct dir_id *id)
{
	struct statx stx;

	if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_TYPE | STATX_INO | STATX_BTIME, &stx) <
	    0)
		return -1;
	memset(id, 0, sizeof(*id));
	id->dev_major = stx.stx_dev_major;
	id->dev_minor = stx.stx_dev_minor;
	id->ino = stx.stx_ino;
	id->has_btime = (stx.stx_mask & STATX_BTIME) != 0;
	if (id->has_btime)
		id->btime = stx.stx_btime;
	return 0;
}

static bool dir_id_equal(const struct dir_id *a, const struct dir_id *b)
{
	return a->dev_major == b->dev_major && a->dev_minor == b->dev_minor && a->ino == b->ino &&
	       a->has_btime == b->has_btime &&
	       (!a->has_btime ||
	        (a->btime.tv_sec == b->btime.tv_sec && a->btime.tv_nsec == b->btime.tv_nsec));
}

static struct dir_id sb_id(struct fx *f, struct arl_sandbox *sb)
{
	char *path = arl_xasprintf("%s/%s", f->state, arl_backend_local.sandbox_name(sb));
	struct dir_id id;
	char ebuf[128];

	if (dir_id_get(path, &id) < 0)
		fail_msg("cannot stat sandbox '%s': %s", path,
		         arl_strerror(errno, ebuf, sizeof(ebuf)));
	free(path);
	return id;
}

/* The path of directory @id in the state directory, under whatever name it has now, or NULL. */
static char *find_dir(struct fx *f, const struct dir_id *id)
{
	DIR *d = opendir(f->state);
	struct dirent *de;
	char *found = NULL;

	assert_non_null(d);
	while (!found && (de = readdir(d))) {
		char *path;
		struct dir_id got;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		path = arl_xasprintf("%s/%s", f->state, de->d_name);
		if (dir_id_get(path, &got) == 0 && dir_id_equal(&got, id))
			found = path;
		else
			free(path);
	}
	closedir(d);
	return found;
}

/* Released with something that rules reuse out: the directory must go, never come back. */
static void release_deleted(struct fx *f, struct arl_sandbox *sb)
{
	struct dir_id id = sb_id(f, sb);
	char *left;

	release(f, sb);
	/* The preparer deletes it off the worker's path: give it time, not forever. */
	for (int i = 0; (left = find_dir(f, &id)) && i < 6000; i++) {
		free(left);
		usleep(10000);
	}
	if (left)
		fail_msg("sandbox directory '%s' was kept for reuse, not deleted", left);
}

/* Waits until directory @id is empty and mode 0700 again: recycled, or about to be a spare. */
/*
 * A recycled copy-on-write sandbox keeps its uppers' own directories (upper/T, work/T),
 * empty: whether @dir holds nothing else.
 */
static bool only_kept_uppers(const char *dir)
{
	static const char *const kinds[] = {"upper", "work"};
	size_t trees = 0;

	if (count_entries(dir) != 2)
		return false;
	for (size_t k = 0; k < 2; k++) {
		char *kd = arl_xasprintf("%s/%s", dir, kinds[k]);
		DIR *d = opendir(kd);
		struct dirent *de;
		bool ok = d != NULL;
		size_t n = 0;

		while (d && (de = readdir(d))) {
			char *sub;

			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			sub = arl_xasprintf("%s/%s", kd, de->d_name);
			ok = ok && de->d_type == DT_DIR && count_entries(sub) == 0;
			free(sub);
			n++;
		}
		if (d)
			closedir(d);
		free(kd);
		if (!ok || (k && n != trees))
			return false;
		trees = n;
	}
	return trees > 0;
}

static void wait_recycled(struct fx *f, const struct dir_id *id)
{
	for (int i = 0; i < 6000; i++) { /* 60 s: the reaper ends the container first */
		char *path = find_dir(f, id);
		struct stat st;
		bool done;

		if (!path)
			fail_msg("a released directory was deleted, not recycled");
		done = lstat(path, &st) == 0 && st.st_mode == (S_IFDIR | 0700) &&
		       (count_entries(path) == 0 || only_kept_uppers(path));
		free(path);
		if (done)
			return;
		usleep(10000);
	}
	fail_msg("a released directory was not emptied within 10 s");
}

/*
 * What a new attempt of a pool without a workspace must get, whichever directory it is: an
 * empty /workspace (as the step sees it), mode 0700 and ours (as the host sees it).
 */
static void check_fresh(struct fx *f, struct arl_sandbox *sb)
{
	char *path = arl_xasprintf("%s/%s", f->state, arl_backend_local.sandbox_name(sb));
	char *out = sh_ok(f, sb, NULL, "ls -A \"$ARL_WORKSPACE\" | wc -l; stat -c %a .");
	struct stat st;

	assert_string_equal(out, "0\n700\n");
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_mode, S_IFDIR | 0700);
	assert_int_equal(st.st_uid, step_uid(f));
	free(out);
	free(path);
}

/*
 * Acquires until the sandbox is directory @id, checking each one is fresh. Warm containers
 * come first, and the preparer reaps and recycles released ones behind them: each miss
 * gives it a moment before the next try. The others are released clean and become spares.
 */
static struct arl_sandbox *acquire_id(struct fx *f, const struct dir_id *id)
{
	struct arl_sandbox *held[16], *found = NULL;
	size_t n = 0;

	while (!found && n < sizeof(held) / sizeof(held[0])) {
		struct arl_sandbox *sb = acquire(f);
		struct dir_id got;

		check_fresh(f, sb);
		got = sb_id(f, sb);
		if (dir_id_equal(&got, id)) {
			found = sb;
		} else {
			held[n++] = sb;
			usleep(50000);
		}
	}
	for (size_t i = 0; i < n; i++)
		release(f, held[i]);
	if (!found)
		fail_msg("a recycled directory was not handed out again");
	return found;
}

/* A TCP listener on 127.0.0.1; returns the fd and sets *port. */
static int listen_local(int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

/* --- shared by both isolation modes ------------------------------------------------- */

static void check_exit_codes(struct fx *f, struct arl_sandbox *sb)
{
	struct arl_step_result res;
	enum arl_class cls;
	char *out = sh_ok(f, sb, NULL, "echo out; echo err >&2");

	assert_string_equal(out, "out\n");
	free(out);
	sh_env(f, sb, NULL, "echo oops >&2; exit 3", 0, &res, &cls, NULL);
	assert_int_equal(cls, ARL_CLASS_FAILED);
	assert_int_equal(res.state, ARL_STATE_FAILED);
	assert_true(res.has_exit);
	assert_int_equal(res.exit_code, 3);
	assert_string_equal(res.err.data, "oops\n");
	assert_string_equal(res.name, "cmd");
	assert_string_equal(res.type, "Command");
	assert_true(res.started_ms > 0 && res.finished_ms >= res.started_ms);
	arl_step_result_release(&res);
	assert_int_equal(sh_fails(f, sb, "kill -9 $$"), 128 + 9);
}

static void check_filepatch(struct fx *f, struct arl_sandbox *sb)
{
	static const char content[] = "line one\n\0binary\xff\n";
	struct arl_step_result res;
	enum arl_class cls;
	char *host = host_path(f, sb, "a/b/c.txt"), got[64];
	int fd;
	ssize_t n;

	patch(f, sb, "/workspace/a/b/c.txt", content, sizeof(content) - 1, &res, &cls);
	assert_int_equal(cls, ARL_CLASS_NONE);
	assert_int_equal(res.state, ARL_STATE_SUCCEEDED);
	assert_int_equal(res.exit_code, 0);
	assert_string_equal(res.out.data, "File created: /workspace/a/b/c.txt\n");
	arl_step_result_release(&res);
	assert_true((fd = open(host, O_RDONLY | O_CLOEXEC)) >= 0);
	n = read(fd, got, sizeof(got));
	close(fd);
	assert_int_equal(n, sizeof(content) - 1);
	assert_memory_equal(got, content, sizeof(content) - 1);
	/* The program sees the same bytes, and an overwrite truncates. */
	char *out = sh_ok(f, sb, NULL, "wc -c < a/b/c.txt");

	assert_int_equal(strtol(out, NULL, 10), (long)sizeof(content) - 1);
	free(out);
	patch(f, sb, "/workspace//./a/b/c.txt", "x", 1, &res, &cls);
	assert_int_equal(cls, ARL_CLASS_NONE);
	arl_step_result_release(&res);
	out = sh_ok(f, sb, "/workspace/a", "cat b/c.txt");
	assert_string_equal(out, "x");
	free(out);
	free(host);
}

/*
 * @agent: the sandbox's agent writes the file (bwrap pools: /workspace is an overlay), and
 * words the refusals its way.
 */
static void check_filepatch_refusals(struct fx *f, struct arl_sandbox *sb, bool agent)
{
#define LINK(p) (agent ? "'" p "': it is a symlink" : "'" p "' is a symlink")
	char *outside = arl_xasprintf("%s/outside", f->root);
	char *script;

	assert_int_equal(mkdir(outside, 0755), 0);
	patch_refused(f, sb, "/workspace/../outside/x", "must not contain '..'");
	patch_refused(f, sb, "/workspace/a/../../x", "must not contain '..'");
	if (agent) {
		/* A container's FilePatch writes any file of its own root, never the host's. */
		char *in_outside = arl_xasprintf("%s/x", outside), *out;
		struct arl_step_result res;
		enum arl_class cls;

		for (int i = 0; i < 3; i++) {
			const char *p = i == 0   ? "/etc/arl-evil"
			                : i == 1 ? "/tmp/arl-evil"
			                         : in_outside;

			patch(f, sb, p, "in\n", 3, &res, &cls);
			assert_int_equal(cls, ARL_CLASS_NONE);
			arl_step_result_release(&res);
		}
		out = sh_ok(f, sb, NULL, "cat /etc/arl-evil /tmp/arl-evil");
		assert_string_equal(out, "in\nin\n");
		free(out);
		assert_int_equal(access("/etc/arl-evil", F_OK), -1);
		free(in_outside);
		patch_refused(f, sb, "/proc/sys/kernel/arl-evil", "/proc, /sys and /dev are");
		patch_refused(f, sb, "/dev/arl-evil", "/proc, /sys and /dev are");
		patch_refused(f, sb, "/.arl-batch-agent", "is the sandbox agent's own");
	} else {
		patch_refused(f, sb, "/etc/arl-evil", "outside /workspace");
		patch_refused(f, sb, "/workspacex/evil", "outside /workspace");
		patch_refused(f, sb, outside, "arl-batch: FilePatch path '");
		patch_refused(f, sb, "/tmp/evil", "outside /workspace");
	}
	patch_refused(f, sb, "workspace/evil", "absolute path");
	patch_refused(f, sb, "/workspace", "names a directory");
	patch_refused(f, sb, "/workspace/dir/", "names a directory");
	/* Links planted by a step, absolute (to a host dir) and relative (up and out). */
	script = arl_xasprintf("ln -s '%s' link && ln -s '%s/f' flink && ln -s .. up && "
	                       "mkfifo fifo && touch file && mkdir -p d && ln -s '%s' d/inner",
	                       outside, outside, outside);
	free(sh_ok(f, sb, NULL, script));
	free(script);
	patch_refused(f, sb, "/workspace/link/x", LINK("/workspace/link"));
	patch_refused(f, sb, "/workspace/link/sub/x", LINK("/workspace/link"));
	patch_refused(f, sb, "/workspace/flink", LINK("/workspace/flink"));
	patch_refused(f, sb, "/workspace/up/x", LINK("/workspace/up"));
	patch_refused(f, sb, "/workspace/d/inner/x", LINK("/workspace/d/inner"));
	patch_refused(f, sb, "/workspace/fifo", "not a regular file");
	patch_refused(f, sb, "/workspace/file/x",
	              agent ? "'/workspace/file': not a directory"
	                    : "'/workspace/file' is not a directory");
	patch_refused(f, sb, "/workspace/d",
	              agent ? "'/workspace/d': it is a directory"
	                    : "'/workspace/d' is a directory");
	assert_int_equal(count_entries(outside), 0);
	free(outside);
#undef LINK
}

/* --- bwrap -------------------------------------------------------------------------- */

static void test_exit_codes(void **state)
{
	struct fx *f = *state;
	struct arl_step_result res;
	enum arl_class cls;
	struct arl_sandbox *sb;

	fx_open(f, ARL_ISO_BWRAP, false, NULL, 1);
	sb = acquire(f);
	assert_non_null(strstr(arl_backend_local.sandbox_name(sb), "sb-7-"));
	check_exit_codes(f, sb);
	/* A missing program is the step's failure, not the backend's. */
	char *argv[] = {"no-such-program-arl", NULL};
	struct arl_step step = {.name = "x", .type = ARL_STEP_COMMAND, .argv = argv, .argc = 1};

	exec_step(f, sb, &step, 0, &res, &cls);
	assert_int_equal(cls, ARL_CLASS_FAILED);
	assert_int_not_equal(res.exit_code, 0);
	arl_step_result_release(&res);
	release(f, sb);
	fx_close(f);
}

/*
 * One container per attempt: what a step leaves (a process, a file in /tmp) is there for the
 * next step, its env is not; a program the agent cannot start is the step's
 * 127 or 126, an unenterable workDir its 1, each with the agent's reason; a container that
 * cannot start (no agent there) fails acquire, naming the sandbox, and leaves nothing.
 */
static void test_container(void **state)
{
	struct fx *f = *state;
	struct arl_step_result res;
	enum arl_class cls;
	struct arl_sandbox *sb = NULL;
	struct arl_sandbox_req req = {.attempt = 1};
	struct arl_err err = ARL_ERR_INIT;
	char *argv[] = {"no-such-program-arl", NULL};
	struct arl_step step = {.name = "x", .type = ARL_STEP_COMMAND, .argv = argv, .argc = 1};
	char *out;

	fx_open(f, ARL_ISO_BWRAP, false, NULL, 1);
	sb = acquire(f);
	free(sh_ok(f, sb, NULL,
	           "sleep 300 & echo $! > /tmp/pid; echo kept > /tmp/f; export GONE=1"));
	out = sh_ok(f, sb, NULL, "kill -0 $(cat /tmp/pid) && cat /tmp/f; echo \"${GONE-unset}\"");
	assert_string_equal(out, "kept\nunset\n");
	free(out);
	exec_step(f, sb, &step, 0, &res, &cls);
	assert_int_equal(cls, ARL_CLASS_FAILED);
	assert_int_equal(res.exit_code, 127);
	assert_string_equal(
	    res.err.data,
	    "arl-batch: cannot run 'no-such-program-arl': No such file or directory\n");
	arl_step_result_release(&res);
	free(sh_ok(f, sb, NULL, "printf '#!/bin/sh\\n' > s.sh; chmod 644 s.sh"));
	argv[0] = "./s.sh";
	exec_step(f, sb, &step, 0, &res, &cls);
	assert_int_equal(res.exit_code, 126);
	assert_non_null(strstr(res.err.data, "cannot run './s.sh': Permission denied"));
	arl_step_result_release(&res);
	sh_env(f, sb, "/workspace/nope", "pwd", 0, &res, &cls, NULL);
	assert_int_equal(cls, ARL_CLASS_FAILED);
	assert_int_equal(res.exit_code, 1);
	assert_non_null(strstr(res.err.data, "cannot change to work directory '/workspace/nope'"));
	arl_step_result_release(&res);
	release(f, sb);
	fx_close(f);

	/* No agent at that path: acquire fails and says so; the directory goes. */
	setenv("ARL_BATCH_AGENT", "/no/such/arl-batch-agent", 1);
	assert_int_equal(fx_try_open(f, ARL_ISO_BWRAP, false, NULL, 1, &err), -1);
	assert_non_null(strstr(err.msg, "bwrap cannot create a sandbox"));
	setenv("ARL_BATCH_AGENT", "/bin/true", 1); /* starts, never says HELLO */
	arl_err_clear(&err);
	assert_int_equal(fx_try_open(f, ARL_ISO_BWRAP, false, NULL, 1, &err), -1);
	assert_non_null(strstr(err.msg, "bwrap cannot create a sandbox"));
	setenv("ARL_BATCH_AGENT", ARL_AGENT_BIN, 1);
	fx_open(f, ARL_ISO_BWRAP, false, NULL, 1);
	setenv("ARL_BATCH_AGENT", "/bin/true", 1); /* read at open: this one still works */
	sb = NULL;
	assert_int_equal(arl_backend_local.acquire(f->st, &f->pool, &req, &sb, &err), 0);
	release(f, sb);
	setenv("ARL_BATCH_AGENT", ARL_AGENT_BIN, 1);
	fx_close(f);
}

static void test_env_and_workdir(void **state)
{
	struct fx *f = *state;
	struct arl_step_result res;
	enum arl_class cls;
	struct arl_sandbox *sb;
	char *out;

	setenv("ARL_TEST_SECRET", "leaked", 1);
	fx_open(f, ARL_ISO_BWRAP, false, NULL, 1);
	sb = acquire(f);
	sh_env(f, sb, NULL,
	       "echo \"$PATH|$HOME|$LANG|$ARL_WORKSPACE|$FOO|${ARL_TEST_SECRET-unset}|$(pwd)\"", 0,
	       &res, &cls, "FOO", "bar baz", "ARL_WORKSPACE", "/elsewhere", NULL);
	assert_int_equal(cls, ARL_CLASS_NONE);
	assert_string_equal(
	    res.out.data,
	    "/usr/local/bin:/usr/bin:/bin|/workspace|C.UTF-8|/workspace|bar baz|unset|"
	    "/workspace\n");
	arl_step_result_release(&res);
	sh_env(f, sb, NULL, "echo \"$PATH|$LANG\"", 0, &res, &cls, "PATH", "/usr/bin", "LANG", "C",
	       NULL);
	assert_string_equal(res.out.data, "/usr/bin|C\n");
	arl_step_result_release(&res);
	free(sh_ok(f, sb, NULL, "mkdir -p sub/deeper"));
	out = sh_ok(f, sb, "/workspace/sub/deeper", "pwd; hostname");
	assert_string_equal(out, "/workspace/sub/deeper\nsandbox\n");
	free(out);
	out = sh_ok(f, sb, "/usr", "pwd");
	assert_string_equal(out, "/usr\n");
	free(out);
	/* A workDir that does not exist fails the step (bwrap cannot chdir), it is not infra. */
	sh_env(f, sb, "/workspace/nope", "pwd", 0, &res, &cls, NULL);
	assert_int_equal(cls, ARL_CLASS_FAILED);
	arl_step_result_release(&res);
	release(f, sb);
	fx_close(f);
	unsetenv("ARL_TEST_SECRET");
}

static void test_filepatch(void **state)
{
	struct fx *f = *state;
	struct arl_sandbox *sb;

	fx_open(f, ARL_ISO_BWRAP, false, NULL, 1);
	sb = acquire(f);
	check_filepatch(f, sb);
	check_filepatch_refusals(f, sb, true);
	release(f, sb);
	fx_close(f);
}

static void test_isolation(void **state)
{
	struct fx *f = *state;
	struct arl_sandbox *sb;
	char *hostfile = arl_xasprintf("%s/visible-on-host", f->root);
	char *script, *out,
	    *tmpmark = arl_xasprintf("/tmp/arl-test-local-mark-%ld", (long)getpid());

	write_file(hostfile, "secret\n", 0644);
	fx_open(f, ARL_ISO_BWRAP, false, NULL, 1);
	sb = acquire(f);
	/* /usr and /etc are copy-on-write: writable inside, never on the host. */
	script = arl_xasprintf("touch /usr/arl-test-%ld /etc/arl-test-%ld && echo ok",
	                       (long)getpid(), (long)getpid());
	out = sh_ok(f, sb, NULL, script);
	assert_string_equal(out, "ok\n");
	free(out);
	free(script);
	script = arl_xasprintf("/usr/arl-test-%ld", (long)getpid());
	assert_int_equal(access(script, F_OK), -1);
	free(script);
	script = arl_xasprintf("/etc/arl-test-%ld", (long)getpid());
	assert_int_equal(access(script, F_OK), -1);
	free(script);
	assert_int_not_equal(sh_fails(f, sb, "cat /etc/shadow | grep -q ."), 0);
	assert_int_not_equal(sh_fails(f, sb, "mount -o remount,ro /usr"), 0);
	assert_int_not_equal(sh_fails(f, sb, "unshare -U true"), 0);
	script = arl_xasprintf("test -e '%s'", hostfile);
	assert_int_equal(sh_fails(f, sb, script), 1);
	free(script);
	assert_int_equal(sh_fails(f, sb, "test -e /root || test -e /home || test -e /var"), 1);
	/* /tmp is writable but private. */
	script = arl_xasprintf("echo x > '%s' && cat '%s'", tmpmark, tmpmark);
	out = sh_ok(f, sb, NULL, script);
	assert_string_equal(out, "x\n");
	assert_int_equal(access(tmpmark, F_OK), -1);
	free(out);
	free(script);
	/* Own PID namespace: we see a handful of processes, not the host's. */
	out = sh_ok(f, sb, NULL, "ls /proc | grep -c '^[0-9]'");
	assert_true(strtol(out, NULL, 10) < 8);
	free(out);
	/* Capabilities are gone even when the runner is root. */
	out = sh_ok(f, sb, NULL, "grep CapEff /proc/self/status");
	assert_string_equal(out, "CapEff:\t0000000000000000\n");
	free(out);
	release(f, sb);
	fx_close(f);
	free(hostfile);
	free(tmpmark);
}

static void test_network(void **state)
{
	struct fx *f = *state;
	struct arl_sandbox *sb;
	int port, lfd = listen_local(&port);
	char *script, *out;

	fx_open(f, ARL_ISO_BWRAP, false, NULL, 1);
	sb = acquire(f);
	/* Only the loopback interface exists, and it is not the host's. */
	out = sh_ok(f, sb, NULL, "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '");
	assert_string_equal(out, "lo\n");
	free(out);
	script = arl_xasprintf("python3 -c \"import socket; "
	                       "socket.create_connection(('127.0.0.1', %d), 2)\"",
	                       port);
	if (have_python)
		assert_int_equal(sh_fails(f, sb, script), 1);
	release(f, sb);
	fx_close(f);

	fx_open(f, ARL_ISO_BWRAP, true, NULL, 1);
	sb = acquire(f);
	if (have_python)
		free(sh_ok(f, sb, NULL, script));
	release(f, sb);
	fx_close(f);
	free(script);
	close(lfd);
}

static void make_workspace(const char *ws)
{
	char *p;

	assert_int_equal(mkdir(ws, 0755), 0);
	p = arl_xasprintf("%s/a.txt", ws);
	write_file(p, "A\n", 0644);
	free(p);
	p = arl_xasprintf("%s/secret", ws);
	write_file(p, "S\n", 0600);
	free(p);
	p = arl_xasprintf("%s/sub", ws);
	assert_int_equal(mkdir(p, 0750), 0);
	free(p);
	p = arl_xasprintf("%s/sub/b.sh", ws);
	write_file(p, "#!/bin/sh\necho B\n", 0755);
	free(p);
	p = arl_xasprintf("%s/link", ws);
	assert_int_equal(symlink("a.txt", p), 0);
	free(p);
	p = arl_xasprintf("%s/empty", ws);
	assert_int_equal(mkdir(p, 0700), 0);
	free(p);
	/* Not copied: a FIFO (not workspace content) and the setuid bit. */
	p = arl_xasprintf("%s/fifo", ws);
	assert_int_equal(mkfifo(p, 0644), 0);
	free(p);
	p = arl_xasprintf("%s/suid", ws);
	write_file(p, "#!/bin/sh\n", 04755);
	free(p);
}

static void check_workspace_copy(struct fx *f, const char *ws)
{
	struct arl_sandbox *sb[3];
	char *orig = arl_xasprintf("%s/a.txt", ws), buf[16] = {0};
	int fd;

	for (int i = 0; i < 3; i++) {
		char *out;

		sb[i] = acquire(f);
		out = sh_ok(f, sb[i], NULL,
		            "cat a.txt secret; sub/b.sh; readlink link; test -d empty && "
		            "stat -c '%a %n' sub sub/b.sh secret empty suid; test ! -e fifo && "
		            "echo changed > a.txt");
		assert_string_equal(out, "A\nS\nB\na.txt\n750 sub\n755 sub/b.sh\n600 secret\n"
		                         "700 empty\n755 suid\n");
		free(out);
	}
	for (int i = 0; i < 3; i++)
		release(f, sb[i]);
	/* The source is only read. */
	assert_true((fd = open(orig, O_RDONLY | O_CLOEXEC)) >= 0);
	assert_int_equal(read(fd, buf, sizeof(buf) - 1), 2);
	close(fd);
	assert_string_equal(buf, "A\n");
	free(orig);
}

static void test_workspace_copy(void **state)
{
	struct fx *f = *state;
	char *ws = arl_xasprintf("%s/ws", f->root);

	make_workspace(ws);
	fx_open(f, ARL_ISO_BWRAP, false, ws, 2);
	check_workspace_copy(f, ws);
	fx_close(f);
	free(ws);
}

static void check_timeout(struct fx *f, struct arl_sandbox *sb)
{
	struct arl_step_result res;
	enum arl_class cls;
	char marker[64], *script;
	int64_t t0;

	/* A sleep length nobody else uses is the marker: it shows in both sh's and sleep's argv. */
	snprintf(marker, sizeof(marker), "sleep 37.%ld", (long)getpid() % 100000 + 100000);
	script = arl_xasprintf("%s; echo after", marker);
	t0 = arl_now_ms();
	sh_env(f, sb, NULL, script, 1000, &res, &cls, NULL);
	t0 = arl_now_ms() - t0;
	assert_int_equal(cls, ARL_CLASS_TIMEOUT);
	assert_int_equal(res.state, ARL_STATE_FAILED);
	/* Killed by the SIGTERM sent at the timeout (not a SIGKILL after the grace), not before. */
	assert_true(res.has_exit);
	assert_int_equal(res.exit_code, 128 + SIGTERM);
	assert_true(t0 >= 900);
	assert_string_equal(res.out.data, "");
	arl_step_result_release(&res);
	wait_no_procs(marker);
	free(script);
}

static void test_timeout(void **state)
{
	struct fx *f = *state;
	struct arl_sandbox *sb;

	fx_open(f, ARL_ISO_BWRAP, false, NULL, 1);
	sb = acquire(f);
	check_timeout(f, sb);
	/* A killed sandbox may still be writing for a moment: its directory is never reused. */
	release_deleted(f, sb);
	fx_close(f);
}

struct cancel_when_running {
	const char *marker; /* in the argv of the step's sleep only */
	int fd;
};

/* Cancels once the step's sleep runs (a hang here is the failure; ctest's timeout ends it). */
static void *cancel_when_running(void *arg)
{
	struct cancel_when_running *c = arg;

	while (count_procs(c->marker) == 0)
		usleep(1000);
	assert_int_equal(write(c->fd, "x", 1), 1);
	return NULL;
}

/* A cancelled step is killed promptly, and its directory is deleted, never reused. */
static void check_cancel(struct fx *f, enum arl_isolation iso)
{
	struct arl_step_result res;
	enum arl_class cls;
	struct arl_sandbox *sb;
	struct cancel_when_running c;
	pthread_t t;
	int p[2];
	char marker[64], *script;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	f->cancel_fd = p[0];
	fx_open(f, iso, false, NULL, 1);
	sb = acquire(f);
	/* Through a variable, so that only sleep's argv shows the marker, not sh's or bwrap's. */
	snprintf(marker, sizeof(marker), "sleep 38.%ld", (long)getpid() % 100000 + 100000);
	script = arl_xasprintf("s=%s; sleep $s; echo after", marker + strlen("sleep "));
	c = (struct cancel_when_running){marker, p[1]};
	assert_int_equal(pthread_create(&t, NULL, cancel_when_running, &c), 0);
	sh_env(f, sb, NULL, script, 20000, &res, &cls, NULL);
	pthread_join(t, NULL);
	assert_int_equal(cls, ARL_CLASS_CANCELLED);
	assert_int_equal(res.state, ARL_STATE_FAILED);
	/* Killed by the SIGTERM the cancel sent, not by a SIGKILL after the grace. */
	assert_true(res.has_exit);
	assert_int_equal(res.exit_code, 128 + SIGTERM);
	assert_string_equal(res.out.data, "");
	arl_step_result_release(&res);
	free(script);
	release_deleted(f, sb);
	fx_close(f);
	close(p[0]);
	close(p[1]);
}

static void test_cancel(void **state)
{
	check_cancel(*state, ARL_ISO_BWRAP);
}

/* Leftovers a step may create on purpose: locked dirs, deep trees, links out, FIFOs. */
static void test_release_hostile(void **state)
{
	struct fx *f = *state;
	char *outside = arl_xasprintf("%s/outside", f->root), *keep, *script, *dir;
	struct arl_sandbox *sb;

	assert_int_equal(mkdir(outside, 0755), 0);
	keep = arl_xasprintf("%s/keep.txt", outside);
	write_file(keep, "keep\n", 0644);
	fx_open(f, ARL_ISO_BWRAP, false, NULL, 1);
	sb = acquire(f);
	dir = arl_xasprintf("%s/%s", f->state, arl_backend_local.sandbox_name(sb));
	script = arl_xasprintf(
	    "mkdir -p locked/in && touch locked/in/f locked/g && chmod 000 locked/in && "
	    "chmod 500 locked && mkdir ro && touch ro/f && chmod 500 ro && "
	    "ln -s '%s' out && ln -s '%s' outfile && mkfifo pipe && "
	    "d=deep; i=0; while [ $i -lt 150 ]; do mkdir $d; cd $d; touch f; i=$((i+1)); done",
	    outside, keep);
	free(sh_ok(f, sb, NULL, script));
	free(script);
	release(f, sb);
	assert_int_equal(access(dir, F_OK), -1); /* the warm one the preparer made may remain */
	assert_int_equal(errno, ENOENT);
	assert_int_equal(access(keep, F_OK), 0);
	assert_int_equal(count_entries(outside), 1);
	fx_close(f);
	free(dir);
	free(keep);
	free(outside);
}

static void test_keep(void **state)
{
	struct fx *f = *state;
	struct arl_sandbox *sb;
	char *path;

	fx_open(f, ARL_ISO_BWRAP, false, NULL, 1);
	sb = acquire(f);
	/* Kept sandboxes are renamed keep-NAME, out of gc's reach. */
	path = arl_xasprintf("%s/keep-%s", f->state, arl_backend_local.sandbox_name(sb));
	free(sh_ok(f, sb, NULL, "echo kept > k"));
	arl_backend_local.release(f->st, sb, true);
	assert_int_equal(access(path, F_OK), 0);
	arl_backend_local.close(f->st);
	f->st = NULL;
	assert_int_equal(count_entries(f->state), 1); /* only the kept one */
	rm_rf(path);
	free(path);
}

/* The name of the oldest warm container of @f's one pool (the next one taken), or NULL. */
static char *oldest_warm(struct fx *f)
{
	struct local *L = f->st;
	char *name = NULL;

	pthread_mutex_lock(&L->mu);
	if (L->warm[0].nboxes)
		name = arl_xstrdup(arl_backend_local.sandbox_name(L->warm[0].boxes[0]));
	pthread_mutex_unlock(&L->mu);
	return name;
}

/*
 * A warm container's /etc upper is in memory: a job keeping its sandbox never takes one,
 * and its /etc changes are in the kept directory; another job takes the warm one.
 */
static void test_keep_takes_no_warm(void **state)
{
	struct fx *f = *state;
	struct arl_job job = {.name = "kept", .keep_alive = true};
	struct arl_sandbox_req req = {.attempt = 1, .job = &job};
	struct arl_err err = ARL_ERR_INIT;
	struct arl_sandbox *sb = NULL, *other;
	char *path, *etc, *warm, *mem;

	fx_open(f, ARL_ISO_BWRAP, false, NULL, 1);
	if (!((struct local *)f->st)->cow.skel)
		skip(); /* the fallback: /etc is read-only, nothing in memory */
	/* Names, not counts: the preparer refills the queue as soon as one is taken. */
	while (!(warm = oldest_warm(f))) /* ctest's timeout fails a preparer that never does */
		usleep(10000);
	if (arl_backend_local.acquire(f->st, &f->pool, &req, &sb, &err) < 0)
		fail_msg("acquire: %s", err.msg);
	assert_string_not_equal(arl_backend_local.sandbox_name(sb), warm);
	path = arl_xasprintf("%s/keep-%s", f->state, arl_backend_local.sandbox_name(sb));
	etc = arl_xasprintf("%s/upper/etc/kept", path);
	free(sh_ok(f, sb, NULL, "echo e > /etc/kept"));
	arl_backend_local.release(f->st, sb, true);
	assert_int_equal(access(etc, F_OK), 0);

	other = acquire(f);
	assert_string_equal(arl_backend_local.sandbox_name(other), warm);
	/* In memory where tmpfs holds the overlay's xattrs (Linux >= 6.6), else on disk. */
	mem = sh_ok(f, other, NULL,
	            "echo m > /etc/mem && grep -c 'upperdir=" COW_STAGING "/mem-etc/' "
	            "/proc/self/mountinfo || true");
	free(etc);
	etc = arl_xasprintf("%s/%s/upper/etc/mem", f->state, arl_backend_local.sandbox_name(other));
	assert_int_equal(access(etc, F_OK) == 0, strcmp(mem, "1\n") != 0);
	free(mem);
	release(f, other);
	rm_rf(path); /* then nothing may be left */
	fx_close(f);
	free(path);
	free(etc);
	free(warm);
}

/*
 * As root, steps run as the sandbox uid: the directory, the workspace copy, FilePatch files
 * and the parents FilePatch makes are that uid's, so steps can change all of them; and
 * ARL_SANDBOX_UID/GID refuse root and anything not a plain id.
 */
static void test_root_identity(void **state)
{
	static const char *const bad[] = {"0", "-5", "abc", "4294967295", " 7", "12x"};
	struct fx *f = *state;
	struct arl_err err = ARL_ERR_INIT;
	char *ws = arl_xasprintf("%s/ws", f->root), *want, *out, *p;
	struct arl_step_result res;
	enum arl_class cls;
	struct arl_sandbox *sb;
	struct stat st;

	if (geteuid() != 0) {
		free(ws);
		skip();
	}
	for (size_t i = 0; i < 2 * sizeof(bad) / sizeof(bad[0]); i++) {
		const char *var = i % 2 ? "ARL_SANDBOX_GID" : "ARL_SANDBOX_UID";

		setenv(var, bad[i / 2], 1);
		arl_err_clear(&err);
		assert_int_equal(fx_try_open(f, ARL_ISO_NONE, false, NULL, 1, &err), -1);
		assert_null(f->st);
		want = arl_xasprintf("%s '%s' is not valid: give an unprivileged numeric id (1 to "
		                     "4294967293; steps never run as root)",
		                     var, bad[i / 2]);
		assert_string_equal(err.msg, want);
		free(want);
		setenv("ARL_SANDBOX_UID", "65529", 1);
		unsetenv("ARL_SANDBOX_GID");
	}
	make_workspace(ws);
	fx_open(f, ARL_ISO_BWRAP, false, ws, 1);
	sb = acquire(f);
	patch(f, sb, "/workspace/new/dir/f.txt", "x\n", 2, &res, &cls);
	assert_int_equal(cls, ARL_CLASS_NONE);
	arl_step_result_release(&res);
	for (int i = 0; i < 5; i++) {
		static const char *const rel[] = {"", "new", "new/dir", "new/dir/f.txt", NULL};
		glob_t g;

		if (rel[i]) {
			p = host_path(f, sb, rel[i]);
		} else {
			/* The workspace's files: in the run's one copy of it (ws_lower.h). */
			p = arl_xasprintf("%s/ws-sb-*/sub/b.sh", f->state);
			assert_int_equal(glob(p, 0, NULL, &g), 0);
			assert_int_equal(g.gl_pathc, 1);
			free(p);
			p = arl_xstrdup(g.gl_pathv[0]);
			globfree(&g);
		}
		assert_int_equal(lstat(p, &st), 0);
		assert_int_equal(st.st_uid, TEST_SANDBOX_UID);
		assert_int_equal(st.st_gid, TEST_SANDBOX_UID);
		free(p);
	}
	out = sh_ok(f, sb, NULL,
	            "echo y >> new/dir/f.txt && touch new/dir/g sub/c && echo z > secret && "
	            "rm link && cat new/dir/f.txt secret");
	assert_string_equal(out, "x\ny\nz\n");
	free(out);
	release(f, sb);
	fx_close(f);
	/*
	 * isolation: none too: a plain process in no group of ours, but never bwrap's uid (a
	 * process it leaves behind would own bwrap steps' user namespaces): uid + 1 by default,
	 * and ARL_SANDBOX_NONE_UID may not be bwrap's uid, nor root.
	 */
	fx_open(f, ARL_ISO_NONE, false, ws, 1);
	sb = acquire(f);
	patch(f, sb, "/workspace/new/f.txt", "x\n", 2, &res, &cls);
	assert_int_equal(cls, ARL_CLASS_NONE);
	arl_step_result_release(&res);
	for (int i = 0; i < 4; i++) {
		static const char *const rel[] = {"", "new", "new/f.txt", "sub/b.sh"};

		p = host_path(f, sb, rel[i]);
		assert_int_equal(lstat(p, &st), 0);
		assert_int_equal(st.st_uid, TEST_SANDBOX_UID + 1);
		free(p);
	}
	out = sh_ok(f, sb, NULL, "id -u; id -G; touch f && echo written");
	assert_string_equal(out, "65530\n65530\nwritten\n");
	free(out);
	release(f, sb);
	fx_close(f);
	for (int i = 0; i < 2; i++) {
		setenv("ARL_SANDBOX_NONE_UID", i ? "0" : "65529", 1);
		arl_err_clear(&err);
		assert_int_equal(fx_try_open(f, ARL_ISO_NONE, false, NULL, 1, &err), -1);
		assert_null(f->st);
		assert_string_equal(err.msg,
		                    i ? "ARL_SANDBOX_NONE_UID '0' is not valid: give an "
		                        "unprivileged numeric id (1 to 4294967293; steps "
		                        "never run as root)"
		                      : "ARL_SANDBOX_NONE_UID '65529' is not valid: isolation "
		                        "none steps need an unprivileged id of their own, "
		                        "not ARL_SANDBOX_UID's (65529)");
	}
	unsetenv("ARL_SANDBOX_NONE_UID");
	free(ws);
}

/* The preparer fills the warm pool up to `replicas`; close() deletes what was not used. */
static void test_warm_pool(void **state)
{
	struct fx *f = *state;
	char *ws = arl_xasprintf("%s/ws", f->root);
	struct arl_sandbox *sb;
	char *out;

	make_workspace(ws);
	fx_open(f, ARL_ISO_BWRAP, false, ws, 3);
	/* As root the run's copy of the workspace is there too ("ws-sb-...", ws_lower.h). */
	while (count_entries_but(f->state, "ws-") < 3)
		usleep(10000);
	assert_int_equal(count_entries_but(f->state, "ws-"), 3);
	sb = acquire(f);
	/* After an acquire the preparer tops the pool up again: 3 ready plus ours. */
	while (count_entries_but(f->state, "ws-") < 4)
		usleep(10000);
	assert_int_equal(count_entries_but(f->state, "ws-"), 4);
	out = sh_ok(f, sb, NULL, "cat a.txt");
	assert_string_equal(out, "A\n");
	free(out);
	release(f, sb);
	fx_close(f);
	free(ws);
}

struct worker {
	struct fx *f;
	int id;
	int ok;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < 20; i++) {
		struct arl_sandbox *sb = NULL;
		struct arl_err err = ARL_ERR_INIT;
		struct arl_sandbox_req req = {.attempt = 1};
		struct arl_step_result res;
		struct arl_exec_ctx ctx = {.deadline_ms = arl_now_ms() + 20000};
		enum arl_class cls;
		char content[64], *argv[] = {"cat", "f.txt", NULL};
		struct arl_step p = {.name = "p",
		                     .type = ARL_STEP_FILEPATCH,
		                     .path = "/workspace/f.txt",
		                     .content = content};
		struct arl_step c = {
		    .name = "c", .type = ARL_STEP_COMMAND, .argv = argv, .argc = 2};

		snprintf(content, sizeof(content), "worker %d item %d\n", w->id, i);
		p.content_len = strlen(content);
		if (arl_backend_local.acquire(w->f->st, &w->f->pool, &req, &sb, &err) < 0)
			continue;
		memset(&res, 0, sizeof(res));
		if (arl_backend_exec(&arl_backend_local, w->f->st, sb, &p, &ctx, &res, &cls,
		                     &err) == 0 &&
		    cls == ARL_CLASS_NONE) {
			arl_step_result_release(&res);
			memset(&res, 0, sizeof(res));
			if (arl_backend_exec(&arl_backend_local, w->f->st, sb, &c, &ctx, &res, &cls,
			                     &err) == 0 &&
			    cls == ARL_CLASS_NONE && !strcmp(res.out.data, content))
				w->ok++;
		}
		arl_step_result_release(&res);
		arl_backend_local.release(w->f->st, sb, false);
	}
	return NULL;
}

static void run_concurrently(struct fx *f)
{
	struct worker w[2] = {{f, 0, 0}, {f, 1, 0}};
	pthread_t t[2];

	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(w[0].ok, 20);
	assert_int_equal(w[1].ok, 20);
}

static void test_concurrency(void **state)
{
	struct fx *f = *state;
	char *ws = arl_xasprintf("%s/ws", f->root);

	make_workspace(ws);
	fx_open(f, ARL_ISO_BWRAP, false, ws, 2);
	run_concurrently(f);
	fx_close(f);
	free(ws);
}

/* --- recycling, both isolation modes ------------------------------------------------- */

/* Sets a user extended attribute on @path; false when this filesystem has none. */
static bool set_user_xattr(const char *path)
{
	char ebuf[128];

	if (setxattr(path, "user.arl-test", "1", 1, 0) == 0)
		return true;
	if (errno != ENOTSUP)
		fail_msg("setxattr '%s': %s", path, arl_strerror(errno, ebuf, sizeof(ebuf)));
	fprintf(stderr, "no user extended attributes on this filesystem: that part skipped\n");
	return false;
}

/*
 * Leftovers meant to trip up the emptying of a released directory: files and a directory
 * mode 000, a read-only tree, a tree deeper than the deleter descends, links out of the
 * sandbox, a FIFO, a file with an extended attribute, and the directory's own mode changed
 * (setgid included, or emptied but left 0500). The next attempt must see an empty
 * /workspace, mode 0700. That it is the same directory shows the emptying really ran; that
 * the targets of the links are intact shows it never followed one. The links point only at
 * files of this test: a deleter that did follow them must not reach anything else.
 */
static void check_recycle_hostile(struct fx *f, enum arl_isolation iso)
{
	static const struct {
		bool leftovers;
		const char *mode;
	} rounds[] = {{true, "2755"}, {true, "755"}, {false, "755"}, {false, "500"}};
	char *outside = arl_xasprintf("%s/outside", f->root);
	char *keep = arl_xasprintf("%s/keep.txt", outside);
	char *junk = arl_xasprintf(
	    "touch z1 z2 && chmod 000 z1 z2 && mkdir locked && touch locked/a locked/b && "
	    "chmod 000 locked && mkdir -p ro/in && touch ro/in/f && chmod 500 ro/in ro && "
	    "ln -s '%s' out && ln -s '%s' outfile && mkfifo pipe && touch xf && "
	    "(d=deep; i=0; while [ $i -lt 100 ]; do mkdir $d && cd $d && touch f || exit 1; "
	    "i=$((i+1)); done)",
	    outside, keep);
	struct arl_sandbox *sb;

	assert_int_equal(mkdir(outside, 0755), 0);
	write_file(keep, "keep\n", 0644);
	fx_open(f, iso, false, NULL, 1);
	sb = acquire(f);
	for (size_t r = 0; r < sizeof(rounds) / sizeof(rounds[0]); r++) {
		char *script = arl_xasprintf("chmod %s .", rounds[r].mode);
		struct dir_id id = sb_id(f, sb);

		if (rounds[r].leftovers) {
			char *xf = host_path(f, sb, "xf");

			free(sh_ok(f, sb, NULL, junk));
			if (set_user_xattr(xf))
				assert_int_equal(getxattr(xf, "user.arl-test", NULL, 0), 1);
			free(xf);
		}
		free(sh_ok(f, sb, NULL, script));
		free(script);
		release(f, sb);
		wait_recycled(f, &id);
		sb = acquire_id(f, &id);
	}
	release(f, sb);
	assert_int_equal(access(keep, F_OK), 0);
	assert_int_equal(count_entries(outside), 1);
	fx_close(f);
	free(junk);
	free(keep);
	free(outside);
}

/*
 * A recycled directory keeps its uppers' own directories (upper/usr, work/usr...), emptied:
 * what a step changed in /usr, /etc, /workspace (a file, a directory's mode, the root
 * directories' own modes) must never reach the next sandbox that gets the directory.
 */
static void test_recycle_uppers(void **state)
{
	struct fx *f = *state;
	/* Clean (the uppers are kept), the roots' modes alone, then files and a directory too. */
	const char *const rounds[] = {
	    "true", "chmod 711 /usr /etc && chmod 750 /workspace",
	    "touch /usr/left /etc/left /workspace/left && mkdir -p /usr/local/d && "
	    "chmod 700 /usr/local && chmod 711 /usr /etc && chmod 750 /workspace"};
	const char *look = "ls -A /workspace; ls -d /usr/left /etc/left /usr/local/d 2>&1 | wc -l; "
	                   "stat -c %a /usr /etc /usr/local /workspace";
	struct arl_sandbox *sb;
	struct dir_id id;
	char *out, *first;

	fx_open(f, ARL_ISO_BWRAP, false, NULL, 1);
	sb = acquire(f);
	first = sh_ok(f, sb, NULL, look);
	for (size_t r = 0; r < sizeof(rounds) / sizeof(rounds[0]); r++) {
		id = sb_id(f, sb);
		free(sh_ok(f, sb, NULL, rounds[r]));
		release(f, sb);
		wait_recycled(f, &id);
		sb = acquire_id(f, &id);
		out = sh_ok(f, sb, NULL, look);
		assert_string_equal(out, first);
		free(out);
	}
	release(f, sb);
	fx_close(f);
	free(first);
}

static void test_recycle_hostile(void **state)
{
	check_recycle_hostile(*state, ARL_ISO_BWRAP);
}

static void test_none_recycle_hostile(void **state)
{
	check_recycle_hostile(*state, ARL_ISO_NONE);
}

/*
 * A step whose grandchild left its session (setsid) and kept stdout open. With isolation
 * none it still runs after the step, with the directory as its cwd, so the directory is
 * deleted, never handed to the next attempt. With bwrap the sandbox's pid namespace takes it
 * along: nothing lingers, and the directory is recycled as usual.
 */
static void check_escaped_child(struct fx *f, enum arl_isolation iso)
{
	struct arl_step_result res;
	enum arl_class cls;
	struct arl_sandbox *sb;
	struct dir_id id;
	char marker[64], *script;
	int64_t t0, pid = 0;

	if (access("/usr/bin/setsid", X_OK) < 0)
		skip();
	snprintf(marker, sizeof(marker), "sleep 5.%ld", (long)getpid() % 100000 + 200000);
	/* The pid is printed once setsid() ran: before that, spawn's group kill would reach it. */
	script = arl_xasprintf("setsid sh -c 'exec %s' & p=$!; "
	                       "while [ \"$(cut -d' ' -f6 /proc/$p/stat)\" != $p ]; do :; done; "
	                       "echo $p",
	                       marker);
	fx_open(f, iso, false, NULL, 1);
	sb = acquire(f);
	id = sb_id(f, sb);
	t0 = arl_now_ms();
	sh_env(f, sb, NULL, script, 20000, &res, &cls, NULL);
	t0 = arl_now_ms() - t0;
	assert_int_equal(cls, ARL_CLASS_NONE);
	assert_int_equal(res.exit_code, 0);
	res.out.data[strcspn(res.out.data, "\n")] = '\0';
	assert_int_equal(arl_parse_i64(res.out.data, 2, INT32_MAX, &pid), 0);
	arl_step_result_release(&res);
	if (iso == ARL_ISO_NONE) {
		/* Spawn read on for its drain time: the escaped sleep held stdout. */
		assert_true(t0 >= 900);
		assert_true(count_procs(marker) > 0);
		release_deleted(f, sb);
		kill((pid_t)pid, SIGKILL);
	} else {
		/* The pid was one of the sandbox's namespace, gone with it: not ours to kill. */
		release(f, sb);
		sb = acquire_id(f, &id);
		release(f, sb);
	}
	wait_no_procs(marker);
	fx_close(f);
	free(script);
}

static void test_escaped_child(void **state)
{
	check_escaped_child(*state, ARL_ISO_BWRAP);
}

static void test_none_lingering(void **state)
{
	check_escaped_child(*state, ARL_ISO_NONE);
}

/* Waits for @n sandboxes (not counting the run's copy of the workspace, as root). */
static void wait_entries(struct fx *f, size_t n)
{
	while (count_entries_but(f->state, "ws-") != n)
		usleep(10000);
}

/*
 * Leaves @n names in a read-only subdirectory of @sb: hard links to one file, so the
 * preparer has thousands of entries to delete where making as many inodes would be slow.
 */
static void add_links(struct fx *f, struct arl_sandbox *sb, int n)
{
	char *big = host_path(f, sb, "big"), *file = host_path(f, sb, "big/f");

	assert_int_equal(mkdir(big, 0700), 0);
	write_file(file, "", 0600);
	for (int i = 0; i < n; i++) {
		char *link_path = arl_xasprintf("%s/l%d", big, i);

		assert_int_equal(link(file, link_path), 0);
		free(link_path);
	}
	assert_int_equal(chmod(big, 0500), 0);
	free(file);
	free(big);
}

/*
 * close() with directories in every state: ready (made by the preparer), spare (released
 * and recycled), queued (released with a lot to empty while the preparer is still busy) and
 * being emptied. Nothing may be left in the state directory (fx_close() checks).
 */
static void check_close_all(struct fx *f, enum arl_isolation iso)
{
	char *ws = arl_xasprintf("%s/ws", f->root);
	struct arl_sandbox *sb[5];
	struct dir_id light[2];

	make_workspace(ws);
	fx_open(f, iso, false, ws, 2);
	for (int i = 0; i < 5; i++)
		sb[i] = acquire(f);
	for (int i = 2; i < 5; i++)
		add_links(f, sb[i], 2000);
	wait_entries(f, 5 + 2); /* ours, and the pool topped up to its two ready ones */
	/* Holding the workspace copy, these two take the preparer's path to become spares. */
	for (int i = 0; i < 2; i++) {
		light[i] = sb_id(f, sb[i]);
		release(f, sb[i]);
	}
	for (int i = 0; i < 2; i++)
		wait_recycled(f, &light[i]);
	/* The preparer is emptying the first of these when close() comes; the rest are queued. */
	for (int i = 2; i < 5; i++)
		release(f, sb[i]);
	fx_close(f);
	free(ws);
}

static void test_close_all(void **state)
{
	check_close_all(*state, ARL_ISO_BWRAP);
}

static void test_none_close_all(void **state)
{
	check_close_all(*state, ARL_ISO_NONE);
}

/*
 * What recycling refuses, changed from the host: an extended attribute on the directory
 * itself (ACLs are ones), an inode flag (chattr +A), another owner or group (as root only).
 * Each such directory is deleted, and the next attempt gets another one.
 */
static void test_none_recycle_refused(void **state)
{
	struct fx *f = *state;
	struct arl_sandbox *sb;
	bool chattr = false;
	char *dir;
	int fd, flags = 0;

	fx_open(f, ARL_ISO_NONE, false, NULL, 1);
	sb = acquire(f);
	dir = host_path(f, sb, "");
	if (set_user_xattr(dir)) {
		release_deleted(f, sb);
		sb = acquire(f);
		check_fresh(f, sb);
	}
	free(dir);
	dir = host_path(f, sb, "");
	assert_true((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0);
	if (ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 && !(flags & FS_NOATIME_FL)) {
		flags |= FS_NOATIME_FL;
		chattr = ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
	}
	close(fd);
	free(dir);
	if (chattr) {
		release_deleted(f, sb);
		sb = acquire(f);
		check_fresh(f, sb);
	} else {
		fprintf(stderr, "no settable inode flags on this filesystem: that part skipped\n");
	}
	/* Another owner, then another group: each is checked on its own. */
	for (int i = 0; i < 2 && geteuid() == 0; i++) {
		dir = host_path(f, sb, "");
		assert_int_equal(chown(dir, i ? (uid_t)-1 : 65534, i ? 65534 : (gid_t)-1), 0);
		free(dir);
		release_deleted(f, sb);
		sb = acquire(f);
		check_fresh(f, sb);
	}
	release(f, sb);
	fx_close(f);
}

/* --- isolation: none ---------------------------------------------------------------- */

static void test_none_basics(void **state)
{
	struct fx *f = *state;
	struct arl_step_result res;
	enum arl_class cls;
	struct arl_sandbox *sb;
	char *dir, *want, *out;

	fx_open(f, ARL_ISO_NONE, false, NULL, 1);
	sb = acquire(f);
	check_exit_codes(f, sb);
	/* As root, the step reaches its workspace through a mount point of its own. */
	dir = geteuid() ? arl_xasprintf("%s/%s", f->state, arl_backend_local.sandbox_name(sb))
	                : arl_xstrdup("/run/arl-batch/workspace");
	out = sh_ok(f, sb, NULL, "echo \"$(pwd -P)|$HOME|$ARL_WORKSPACE|$LANG|$PATH\"");
	want = arl_xasprintf("%s|%s|%s|C.UTF-8|/usr/local/bin:/usr/bin:/bin\n", dir, dir, dir);
	assert_string_equal(out, want);
	free(out);
	free(want);
	free(sh_ok(f, sb, NULL, "mkdir -p sub/x"));
	out = sh_ok(f, sb, "/workspace/sub/x", "pwd -P");
	want = arl_xasprintf("%s/sub/x\n", dir);
	assert_string_equal(out, want);
	free(out);
	free(want);
	sh_env(f, sb, "/tmp", "pwd", 0, &res, &cls, NULL);
	assert_int_equal(cls, ARL_CLASS_FAILED);
	assert_non_null(
	    strstr(res.err.data, "workDir '/tmp' must be inside /workspace with isolation: none"));
	arl_step_result_release(&res);
	sh_env(f, sb, "/workspace/../..", "pwd", 0, &res, &cls, NULL);
	assert_int_equal(cls, ARL_CLASS_FAILED);
	assert_non_null(strstr(res.err.data, "must not contain '..'"));
	arl_step_result_release(&res);
	sh_env(f, sb, "/workspace/nope", "pwd", 0, &res, &cls, NULL);
	assert_int_equal(cls, ARL_CLASS_FAILED);
	assert_non_null(strstr(res.err.data, "does not exist"));
	arl_step_result_release(&res);
	/* Programs are looked up like a shell would, in the step's PATH; missing is 127. */
	char *argv[] = {"no-such-program-arl", NULL};
	struct arl_step step = {.name = "x", .type = ARL_STEP_COMMAND, .argv = argv, .argc = 1};

	exec_step(f, sb, &step, 0, &res, &cls);
	assert_int_equal(cls, ARL_CLASS_FAILED);
	assert_int_equal(res.exit_code, 127);
	assert_non_null(strstr(res.err.data, "command 'no-such-program-arl' not found"));
	arl_step_result_release(&res);
	free(sh_ok(f, sb, NULL, "printf '#!/bin/sh\\necho hi\\n' > s.sh; chmod 644 s.sh"));
	argv[0] = "./s.sh";
	exec_step(f, sb, &step, 0, &res, &cls);
	assert_int_equal(res.exit_code, 126);
	arl_step_result_release(&res);
	free(sh_ok(f, sb, NULL, "chmod 755 s.sh"));
	exec_step(f, sb, &step, 0, &res, &cls);
	assert_int_equal(cls, ARL_CLASS_NONE);
	assert_string_equal(res.out.data, "hi\n");
	arl_step_result_release(&res);
	release(f, sb);
	fx_close(f);
	free(dir);
}

static void test_none_filepatch(void **state)
{
	struct fx *f = *state;
	struct arl_sandbox *sb;

	fx_open(f, ARL_ISO_NONE, false, NULL, 1);
	sb = acquire(f);
	check_filepatch(f, sb);
	check_filepatch_refusals(f, sb, false);
	release(f, sb);
	fx_close(f);
}

static void test_none_timeout_and_workspace(void **state)
{
	struct fx *f = *state;
	char *ws = arl_xasprintf("%s/ws", f->root);
	struct arl_sandbox *sb;

	make_workspace(ws);
	fx_open(f, ARL_ISO_NONE, false, ws, 2);
	sb = acquire(f);
	check_timeout(f, sb);
	release_deleted(f, sb);
	check_workspace_copy(f, ws);
	run_concurrently(f);
	fx_close(f);
	free(ws);
}

static void test_none_cancel(void **state)
{
	check_cancel(*state, ARL_ISO_NONE);
}

static void test_open_errors(void **state)
{
	struct fx *f = *state;
	struct arl_err err = ARL_ERR_INIT;
	char *missing = arl_xasprintf("%s/missing", f->root), *empty, *path;

	assert_int_equal(fx_try_open(f, ARL_ISO_NONE, false, missing, 1, &err), -1);
	assert_null(f->st);
	assert_non_null(strstr(err.msg, "pool 'pool': cannot use workspace '"));
	assert_non_null(strstr(err.msg, "No such file or directory"));
	/* No bwrap in PATH: say what to install, or what to set instead. */
	empty = arl_xasprintf("%s/emptybin", f->root);
	assert_int_equal(mkdir(empty, 0755), 0);
	path = arl_xstrdup(getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
	setenv("PATH", empty, 1);
	arl_err_clear(&err);
	assert_int_equal(fx_try_open(f, ARL_ISO_BWRAP, false, NULL, 1, &err), -1);
	setenv("PATH", path, 1);
	assert_string_equal(err.msg,
	                    "pool 'pool': bubblewrap is not installed (no 'bwrap' in PATH): "
	                    "apt-get install bubblewrap, or set 'isolation: none' on the pool");
	/* A bwrap that cannot create namespaces: its message, and the ways out. */
	char *fake = arl_xasprintf("%s/bwrap", empty);

	assert_int_equal(chmod(f->root, 0711), 0); /* as root, the sandbox uid runs it */

	write_file(fake,
	           "#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n",
	           0755);
	setenv("PATH", empty, 1);
	arl_err_clear(&err);
	assert_int_equal(fx_try_open(f, ARL_ISO_BWRAP, false, NULL, 1, &err), -1);
	setenv("PATH", path, 1);
	assert_null(f->st);
	assert_non_null(strstr(err.msg,
	                       "pool 'pool': bwrap cannot create a sandbox (bwrap: No "
	                       "permissions to create new namespace): allow unprivileged "
	                       "user namespaces (sysctl kernel.unprivileged_userns_clone=1"));
	assert_non_null(strstr(err.msg, "=0), or set 'isolation: none' on the pool"));
	assert_int_equal(unlink(fake), 0);
	free(fake);
	/* With isolation none, bwrap is not needed at all. */
	setenv("PATH", empty, 1);
	arl_err_clear(&err);
	fx_open(f, ARL_ISO_NONE, false, NULL, 1);
	setenv("PATH", path, 1);
	fx_close(f);
	free(path);
	free(empty);
	free(missing);
}

/* --- gc: whose sandbox is whose ------------------------------------------------------ */

/* A pid no process has: a child that was reaped. */
static pid_t gone_pid(void)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	return pid;
}

static void set_mtime(const char *path, time_t t)
{
	struct timespec ts[2] = {{.tv_sec = t}, {.tv_sec = t}};

	assert_int_equal(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW), 0);
}

/* Makes directory @name in the state directory and returns its path (owned). */
static char *mk_named(struct fx *f, const char *name)
{
	char *path = arl_xasprintf("%s/%s", f->state, name);

	assert_int_equal(mkdir(path, 0700), 0);
	return path;
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/*
 * Owners are judged by the identity in the directory's name, never by its times: a live
 * runner's sandboxes survive gc whatever mtime their steps set; another PID namespace is
 * never judged; a pid not running, reused (another start time) or of another boot is gone.
 */
static void test_gc_owner(void **state)
{
	struct fx *f = *state;
	struct arl_err err = ARL_ERR_INIT;
	struct arl_sandbox *past, *future;
	struct arl_owner me;
	char name[200], *live[2], *foreign, *dead, *reused, *rebooted, *legacy_live, *legacy_dead;
	pid_t gone = gone_pid();
	int others = -1;

	arl_owner_self(&me);
	assert_true(me.start > 0 && strlen(me.boot) >= 8 && me.pidns[0]);
	fx_open(f, ARL_ISO_NONE, false, NULL, 2);
	past = acquire(f);
	future = acquire(f);
	live[0] = host_path(f, past, "");
	live[1] = host_path(f, future, "");
	/* What `touch -d` in a step does to its /workspace. */
	set_mtime(live[0], 946684800);  /* 2000-01-01 */
	set_mtime(live[1], 4102444800); /* 2100-01-01 */

	snprintf(name, sizeof(name), "sb-1-%ld-%llu-%.8s-%llu-1", (long)gone, me.start, me.boot,
	         strtoull(me.pidns, NULL, 10) + 1);
	foreign = mk_named(f, name);
	snprintf(name, sizeof(name), "sb-1-%ld-%llu-%.8s-%s-2", (long)gone, me.start, me.boot,
	         me.pidns);
	dead = mk_named(f, name);
	snprintf(name, sizeof(name), "sb-1-%ld-%llu-%.8s-%s-3", me.pid, me.start + 1, me.boot,
	         me.pidns);
	reused = mk_named(f, name);
	snprintf(name, sizeof(name), "sb-1-%ld-%llu-%s-%s-4", me.pid, me.start,
	         strncmp(me.boot, "00000000", 8) ? "00000000" : "11111111", me.pidns);
	rebooted = mk_named(f, name);
	/* Names of older versions: the pid alone; their times are not trusted either. */
	snprintf(name, sizeof(name), "sb-1-%ld-5", me.pid);
	legacy_live = mk_named(f, name);
	set_mtime(legacy_live, 946684800);
	snprintf(name, sizeof(name), "sb-1-%ld-6", (long)gone);
	legacy_dead = mk_named(f, name);

	assert_int_equal(arl_local_gc(f->state, true, NULL, &others, &err), 4);
	assert_true(exists(live[0]));
	assert_true(exists(live[1]));
	assert_true(exists(legacy_live));
	assert_true(exists(foreign));
	assert_int_equal(others, 1);
	assert_false(exists(dead));
	assert_false(exists(reused));
	assert_false(exists(rebooted));
	assert_false(exists(legacy_dead));

	/* The sandboxes are still usable, and the sweep of a second open spares them too. */
	free(sh_ok(f, past, NULL, "touch -d 2000-01-01 . && echo x > f"));
	{
		struct fx g = *f;
		struct arl_err e2 = ARL_ERR_INIT;

		g.st = NULL;
		assert_int_equal(fx_try_open(&g, ARL_ISO_NONE, false, NULL, 1, &e2), 0);
		arl_backend_local.close(g.st);
	}
	assert_true(exists(live[0]) && exists(live[1]));
	release(f, past);
	release(f, future);
	assert_int_equal(rmdir(foreign), 0);
	assert_int_equal(rmdir(legacy_live), 0);
	fx_close(f);
	free(live[0]);
	free(live[1]);
	free(foreign);
	free(dead);
	free(reused);
	free(rebooted);
	free(legacy_live);
	free(legacy_dead);
}

static void test_registry(void **state)
{
	(void)state;
	arl_register_builtin_backends();
	assert_ptr_equal(arl_backend_find("local"), &arl_backend_local);
	assert_non_null(arl_backend_find("kubernetes"));
	assert_ptr_not_equal(arl_backend_find("kubernetes"), &arl_backend_local);
	assert_string_equal(arl_backend_name(arl_backend_find("local")), "local");
	assert_string_equal(arl_backend_name(arl_backend_find("kubernetes")), "kubernetes");
	assert_string_equal(arl_backend_name(&arl_backend_local), "local");
	/* A pool that names no backend is local: the first registered. */
	assert_ptr_equal(arl_backend_at(0), &arl_backend_local);
	assert_ptr_equal(arl_pool_kind_at(0), arl_backend_local.pool);
}

/* The same check the style guide names for skipping: can bwrap make namespaces here? */
static bool bwrap_usable(void)
{
	return system("bwrap --unshare-all --die-with-parent --ro-bind / / --dev /dev --proc /proc "
	              "true >/dev/null 2>&1") == 0;
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
	const struct CMUnitTest common[] = {
	    cmocka_unit_test(test_registry),
	    T(test_open_errors),
	    T(test_none_basics),
	    T(test_none_filepatch),
	    T(test_none_timeout_and_workspace),
	    T(test_none_cancel),
	    T(test_none_recycle_hostile),
	    T(test_none_recycle_refused),
	    T(test_none_lingering),
	    T(test_none_close_all),
	    T(test_gc_owner),
	};
	const struct CMUnitTest bwrap[] = {
	    T(test_exit_codes),    T(test_env_and_workdir), T(test_filepatch),
	    T(test_isolation),     T(test_network),         T(test_workspace_copy),
	    T(test_timeout),       T(test_cancel),          T(test_release_hostile),
	    T(test_keep),          T(test_warm_pool),       T(test_keep_takes_no_warm),
	    T(test_concurrency),   T(test_recycle_hostile), T(test_recycle_uppers),
	    T(test_escaped_child), T(test_close_all),       T(test_root_identity),
	    T(test_container),
	};
	int failed;

	have_python = access("/usr/bin/python3", X_OK) == 0;
	/* Not the default: the variable is what sets it (test_sandbox_uid). */
	setenv("ARL_SANDBOX_UID", "65529", 1);
	/* This program is not installed beside the agent that containers start with. */
	setenv("ARL_BATCH_AGENT", ARL_AGENT_BIN, 1);
	failed = cmocka_run_group_tests_name("backend_local.common", common, NULL, NULL);
	if (!bwrap_usable()) {
		fprintf(stderr, "bwrap cannot create namespaces here: skipping the bwrap tests\n");
		return failed ? failed : SKIP;
	}
	failed += cmocka_run_group_tests_name("backend_local.bwrap", bwrap, NULL, NULL);
	return failed;
}
