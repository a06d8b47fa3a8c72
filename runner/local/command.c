/*
 * A Command step: its environment and working directory, the program found as a shell would
 * (isolation none) or the bwrap command line, and the spawn (see DESIGN in backend_local.c).
 */
#include "local/command.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "capture.h"
#include "local/agent_client.h"
#include "local/container.h"
#include "image/image.h"
#include "local/identity.h"
#include "local/image_root.h"
#include "local/limits.h"
#include "local/local.h"
#include "live.h"
#include "log.h"
#include "spawn.h"
#include "util.h"
#include "banned.h"

/* Whether "KEY=VALUE" entry @e of an image's Env sets @key. */
static bool env_sets(const char *e, const char *key)
{
	size_t n = strlen(key);

	return !strncmp(e, key, n) && e[n] == '=';
}

/* Whether the image's Env (@ic; NULL: none) sets @key. */
static bool image_sets(const struct arl_image_config *ic, const char *key)
{
	for (size_t i = 0; ic && i < ic->nenv; i++)
		if (env_sets(ic->env[i], key))
			return true;
	return false;
}

/*
 * The program's environment: our defaults, the image's Env (@ic; NULL: none) over them, the
 * step's env over both, ARL_WORKSPACE last so it always tells the truth. @ws is the
 * workspace as the program sees it.
 */
static int build_env(struct strvec *env, const struct arl_step *step, const char *ws,
                     const struct arl_image_config *ic, struct arl_buf *msg)
{
	const struct arl_kv defaults[] = {
	    {"PATH", SANDBOX_PATH}, {"HOME", (char *)ws}, {"LANG", SANDBOX_LANG}};

	for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
		if (!arl_strmap_get(&step->env, defaults[i].key) &&
		    !image_sets(ic, defaults[i].key))
			arl_local_sv_take(env,
			                  arl_xasprintf("%s=%s", defaults[i].key, defaults[i].val));
	for (size_t i = 0; ic && i < ic->nenv; i++) {
		const char *eq = strchr(ic->env[i], '=');
		char *key;

		if (!eq || eq == ic->env[i] || env_sets(ic->env[i], "ARL_WORKSPACE"))
			continue;
		key = arl_xstrndup(ic->env[i], (size_t)(eq - ic->env[i]));
		if (!arl_strmap_get(&step->env, key))
			arl_local_sv_push(env, ic->env[i]);
		free(key);
	}
	for (size_t i = 0; i < step->env.n; i++) {
		const struct arl_kv *kv = &step->env.v[i];

		if (!kv->key[0] || strchr(kv->key, '=')) {
			arl_buf_addf(msg, ARL_LOG_PREFIX "env name '%s' is not valid\n", kv->key);
			return -1;
		}
		if (strcmp(kv->key, "ARL_WORKSPACE"))
			arl_local_sv_take(env,
			                  arl_xasprintf("%s=%s", kv->key, kv->val ? kv->val : ""));
	}
	arl_local_sv_take(env, arl_xasprintf("ARL_WORKSPACE=%s", ws));
	return 0;
}

/* True when a '..' component appears in @path. */
static bool has_dotdot(const char *path)
{
	for (const char *p = path; (p = strstr(p, "..")); p += 2)
		if ((p == path || p[-1] == '/') && (p[2] == '/' || !p[2]))
			return true;
	return false;
}

/* The part of @path after "/workspace", or NULL when it is not inside it. */
static const char *strip_ws(const char *path)
{
	size_t n = strlen(WS_INSIDE);

	if (strncmp(path, WS_INSIDE, n) || (path[n] && path[n] != '/'))
		return NULL;
	return path + n;
}

/* isolation none: workDir /workspace/x is DIR/x, and it must exist. */
static int none_cwd(const struct arl_sandbox *sb, const char *wd, char **cwd, struct arl_buf *msg)
{
	const char *rel;
	struct stat st;

	if (!wd)
		wd = WS_INSIDE;
	if (!(rel = wd[0] == '/' ? strip_ws(wd) : wd)) {
		arl_buf_addf(msg,
		             ARL_LOG_PREFIX
		             "workDir '%s' must be inside /workspace with isolation: none\n",
		             wd);
		return -1;
	}
	if (has_dotdot(rel)) {
		arl_buf_addf(msg, ARL_LOG_PREFIX "workDir '%s' must not contain '..'\n", wd);
		return -1;
	}
	*cwd = arl_xasprintf("%s%s%s", sb->path, rel[0] == '/' || !rel[0] ? "" : "/", rel);
	if (stat(*cwd, &st) < 0 || !S_ISDIR(st.st_mode)) {
		arl_buf_addf(msg, ARL_LOG_PREFIX "workDir '%s' does not exist in the sandbox\n",
		             wd);
		free(*cwd);
		*cwd = NULL;
		return -1;
	}
	return 0;
}

/* Host path @p as a root runner's isolation none step reaches it: under ROOT_MNT. Owned. */
static char *mnt_path(const struct arl_sandbox *sb, const char *p)
{
	size_t n = strlen(sb->path);

	if (!strncmp(p, sb->path, n) && (p[n] == '/' || !p[n]))
		return arl_xasprintf("%s%s", ROOT_MNT, p + n);
	return arl_xstrdup(p);
}

static bool is_executable(const char *path, int *why)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		*why = errno;
		return false;
	}
	if (S_ISDIR(st.st_mode)) {
		*why = EISDIR;
		return false;
	}
	if (access(path, X_OK) < 0) {
		*why = errno;
		return false;
	}
	return true;
}

/*
 * isolation none: finds @prog as a shell would (in @path, relative names against @cwd) so
 * that a missing program is the step's failure (127, or 126 when not executable), not an
 * infra error from spawn. Returns 0 and sets *out, or the exit code with @msg filled.
 */
static int resolve_program(const char *prog, const char *path, const char *cwd, char **out,
                           struct arl_buf *msg)
{
	char ebuf[128], *found = NULL;
	int why = ENOENT, dirfd;

	if (strchr(prog, '/')) {
		char *full = prog[0] == '/' ? arl_xstrdup(prog) : arl_xasprintf("%s/%s", cwd, prog);

		if (is_executable(full, &why)) {
			*out = full;
			return 0;
		}
		free(full);
		arl_buf_addf(msg, ARL_LOG_PREFIX "cannot run '%s': %s\n", prog,
		             arl_strerror(why, ebuf, sizeof(ebuf)));
		return why == ENOENT || why == ENOTDIR ? 127 : 126;
	}
	dirfd = open(cwd, O_PATH | O_DIRECTORY | O_CLOEXEC);
	why = arl_spawn_search_path(prog, path, dirfd, &found);
	if (dirfd >= 0)
		close(dirfd);
	if (why == 0) {
		/* Relative PATH entries were searched in @cwd: name the program from there. */
		if (found[0] == '/')
			*out = found;
		else
			*out = arl_xasprintf("%s/%s", cwd,
			                     strncmp(found, "./", 2) ? found : found + 2);
		if (*out != found)
			free(found);
		return 0;
	}
	if (why == EACCES) {
		arl_buf_addf(msg, ARL_LOG_PREFIX "cannot run '%s': Permission denied\n", prog);
		return 126;
	}
	arl_buf_addf(msg, ARL_LOG_PREFIX "command '%s' not found in PATH '%s'\n", prog, path);
	return 127;
}

/* Ends a step the agent could not start as a shell would: 127 missing, 126 not runnable. */
static int start_failed(const struct arl_agent_event *ev, struct arl_step_result *res,
                        enum arl_class *cls, struct arl_buf *msg)
{
	int code = 1; /* a workDir bwrap could not enter was its exit 1 */

	if (!strncmp(ev->data, "cannot run ", 11))
		code = ev->errnum == ENOENT || ev->errnum == ENOTDIR ? 127 : 126;
	else if (strncmp(ev->data, "cannot change to work directory ", 32))
		return -1; /* pipe, fork, too many steps: the sandbox's trouble */
	arl_buf_addf(msg, ARL_LOG_PREFIX "%s\n", ev->data);
	arl_local_step_fail(res, cls, code, msg->p);
	return 0;
}

/*
 * A Command step through the sandbox's agent (see DESIGN in backend_local.c): output into the
 * same capture as spawn's, the deadline and the cancel fd as SIGTERM to the step's group,
 * SIGKILL after ARL_KILL_GRACE_MS. What the agent cannot be trusted to say is infra.
 */
static int run_in_container(struct local *L, struct arl_sandbox *sb, char *const *argv,
                            char *const *env, const char *wd, int64_t stall_ms,
                            const struct arl_exec_ctx *ctx, struct arl_step_result *res,
                            enum arl_class *cls, struct arl_err *err)
{
	struct arl_capture cap[2];
	struct arl_agent_event ev;
	struct arl_buf msg = ARL_BUF_INIT;
	int64_t deadline = ctx ? ctx->deadline_ms : 0, kill_at = 0, last_out = arl_now_ms(), wake;
	int cancel_fd = L->cancel_fd, ret = -1;
	bool timed_out = false, cancelled = false, stalled = false, stall;
	uint32_t id;

	arl_capture_init(&cap[0], L->capture_max ? L->capture_max : ARL_SPAWN_DEFAULT_CAPTURE);
	arl_capture_init(&cap[1], L->capture_max ? L->capture_max : ARL_SPAWN_DEFAULT_CAPTURE);
	if (!sb->agent) {
		arl_error(err, ARL_E_BACKEND, "the sandbox's container is not running");
		goto infra;
	}
	if (arl_agent_exec(sb->agent, argv, env, wd, &id, err) < 0)
		goto infra;
	for (;;) {
		struct arl_err e = ARL_ERR_INIT;

		/* Silence past stall_ms ends it as the deadline would (the deadline wins a tie). */
		wake = kill_at ? kill_at : deadline;
		stall = !kill_at && stall_ms > 0 && !timed_out && !cancelled &&
		        (!wake || last_out + stall_ms < wake);
		if (stall)
			wake = last_out + stall_ms;
		if (arl_agent_next(sb->agent, wake, cancel_fd, &ev, &e) < 0) {
			if (e.code != ARL_E_TIMEOUT && e.code != ARL_E_CANCELLED) {
				arl_error(err, e.code, "%s", e.msg);
				goto infra;
			}
			/* The first cause is recorded; the group gets SIGTERM, then SIGKILL. */
			if (!timed_out && !cancelled) {
				timed_out = e.code == ARL_E_TIMEOUT;
				cancelled = e.code == ARL_E_CANCELLED;
				stalled = timed_out && stall;
			}
			cancel_fd = -1;
			sb->tainted = true;
			if (arl_agent_signal(sb->agent, id, kill_at ? SIGKILL : SIGTERM, err) < 0)
				goto infra;
			deadline = 0;
			kill_at = kill_at ? 0 : arl_now_ms() + ARL_KILL_GRACE_MS;
			continue;
		}
		if (ev.kind == ARL_AGENT_STDOUT || ev.kind == ARL_AGENT_STDERR) {
			arl_capture_add(&cap[ev.kind == ARL_AGENT_STDERR], ev.data, ev.len);
			arl_live_write(ctx ? ctx->live : NULL, ev.kind == ARL_AGENT_STDERR, ev.data,
			               ev.len);
			if (ev.len)
				last_out = arl_now_ms();
		} else if (ev.kind == ARL_AGENT_EXIT)
			break;
		else if (ev.kind == ARL_AGENT_ERROR && start_failed(&ev, res, cls, &msg) == 0)
			goto done;
		else {
			arl_error(err, ARL_E_BACKEND, "the sandbox could not start the step: %s",
			          ev.kind == ARL_AGENT_ERROR ? ev.data : "unexpected reply");
			goto infra;
		}
	}
	res->has_exit = true;
	res->exit_code = ev.exit_code;
	arl_output_release(&res->out);
	arl_output_release(&res->err);
	arl_capture_finish(&cap[0], &res->out);
	arl_capture_finish(&cap[1], &res->err);
	if (cancelled)
		*cls = ARL_CLASS_CANCELLED;
	else if (timed_out)
		*cls = ARL_CLASS_TIMEOUT;
	else
		*cls = ev.exit_code != 0 ? ARL_CLASS_FAILED : ARL_CLASS_NONE;
	res->stalled = stalled;
done:
	ret = 0;
	goto out;
infra:
	/*
	 * A dead agent, a malformed frame: the attempt's sandbox is gone, never a step result
	 * (unless the memory limit ended it: arl_local_oom_ended()). What the step printed
	 * until then is kept.
	 */
	arl_output_release(&res->out);
	arl_output_release(&res->err);
	arl_capture_finish(&cap[0], &res->out);
	arl_capture_finish(&cap[1], &res->err);
	*cls = ARL_CLASS_INFRA;
	sb->tainted = true;
	arl_local_container_stop(sb);
out:
	arl_capture_release(&cap[0]);
	arl_capture_release(&cap[1]);
	arl_buf_release(&msg);
	return ret;
}

int arl_local_run_command(struct local *L, struct arl_sandbox *sb, const struct arl_step *step,
                          const struct arl_exec_ctx *ctx, struct arl_step_result *res,
                          enum arl_class *cls, struct arl_err *err)
{
	bool none = arl_local_pool(sb->pool)->isolation == ARL_ISO_NONE;
	struct strvec argv = {0}, env = {0};
	struct arl_buf msg = ARL_BUF_INIT;
	struct arl_spawn_opts so = {0};
	struct arl_spawn_ident id;
	struct arl_spawn_result sr;
	struct arl_err spawn_err = ARL_ERR_INIT; /* a refused workDir is the step's, not ours */
	char *cwd = NULL, *prog = NULL, *wd = NULL, *mnt_cwd = NULL;
	const char *path;
	int ret = -1, code = 1, ws_fd = -1, cg_fds[ARL_CGROUP_MAX_FDS], ncg = 0;
	struct arl_oom_mark oom_mark = arl_local_oom_mark(sb);

	memset(&sr, 0, sizeof(sr));
	if (!step->argv || !step->argv[0]) {
		arl_buf_addstr(&msg, ARL_LOG_PREFIX "the Command step has no command\n");
		goto refused;
	}
	/* As root, isolation none steps reach their workspace at ROOT_MNT (see DESIGN in backend_local.c). */
	if (build_env(&env, step,
	              !none     ? WS_INSIDE
	              : L->drop ? ROOT_MNT
	                        : sb->path,
	              sb->image ? &sb->image->im->config : NULL, &msg) < 0)
		goto refused;
	if (!(path = arl_strmap_get(&step->env, "PATH")))
		path = SANDBOX_PATH;
	if (none) {
		if (none_cwd(sb, step->work_dir, &cwd, &msg) < 0)
			goto refused;
		if ((code = resolve_program(step->argv[0], path, cwd, &prog, &msg)) != 0)
			goto refused;
		if (L->drop) {
			mnt_cwd = mnt_path(sb, cwd);
			arl_local_sv_take(&argv, mnt_path(sb, prog));
		} else {
			arl_local_sv_push(&argv, prog);
		}
	} else {
		if (!step->work_dir && sb->image && sb->image->im->config.workdir &&
		    sb->image->im->config.workdir[0] == '/')
			wd =
			    arl_xstrdup(sb->image->im->config.workdir); /* the image's WorkingDir */
		else if (!step->work_dir)
			wd = arl_xstrdup(WS_INSIDE);
		else if (step->work_dir[0] == '/')
			wd = arl_xstrdup(step->work_dir);
		else
			wd = arl_xasprintf("%s/%s", WS_INSIDE, step->work_dir);
		for (size_t i = 0; i < step->argc && step->argv[i]; i++)
			arl_local_sv_push(&argv, step->argv[i]);
		ret =
		    run_in_container(L, sb, argv.v, env.v, wd, step->stall_ms, ctx, res, cls, err);
		if (ret < 0 && arl_local_oom_ended(sb, oom_mark, res, cls)) {
			*err = (struct arl_err)ARL_ERR_INIT;
			ret = 0;
		} else if (ret == 0) {
			arl_local_oom_check(sb, oom_mark, res, cls);
		}
		goto out;
	}
	for (size_t i = 1; i < step->argc && step->argv[i]; i++)
		arl_local_sv_push(&argv, step->argv[i]);

	if (L->drop && (ws_fd = arl_local_sandbox_fd(L, sb->dir.name, err)) < 0) {
		*cls = ARL_CLASS_INFRA;
		goto out;
	}
	arl_local_step_ident(L, none, &id, ws_fd, -1);
	/* As root, the child enters workDir as the step's uid (see DESIGN in backend_local.c), never as ours. */
	id.cwd_path = mnt_cwd;
	so.ident = &id;
	so.argv = argv.v;
	so.envp = env.v;
	so.cwd = mnt_cwd ? NULL : cwd;
	so.deadline_ms = ctx ? ctx->deadline_ms : 0;
	so.stall_ms = step->stall_ms;
	if (ctx && ctx->live) {
		so.on_output = arl_live_on_output;
		so.output_arg = ctx->live;
	}
	so.capture_max = L->capture_max;
	so.cancel_fd = L->cancel_fd;
	if ((ncg = arl_local_limits_join(sb, &id, cg_fds, err)) < 0) {
		*cls = ARL_CLASS_INFRA;
		goto out;
	}
	if (arl_spawn_run(&so, &sr, &spawn_err) < 0) {
		/* As root, workDir is entered as the step's uid: what it may not enter, it fails. */
		if (mnt_cwd && spawn_err.code == ARL_E_INVALID) {
			arl_buf_addf(&msg, ARL_LOG_PREFIX "workDir '%s': %s\n",
			             step->work_dir ? step->work_dir : WS_INSIDE, spawn_err.msg);
			goto refused;
		}
		arl_error(err, spawn_err.code, "%s", spawn_err.msg);
		sb->tainted = true; /* rare, and maybe after the start: take no chances */
		*cls = ARL_CLASS_INFRA;
		goto out;
	}
	/* Killed, or output still held from outside the group: something may still run. */
	if (sr.timed_out || sr.cancelled || sr.lingering)
		sb->tainted = true;
	res->stalled = sr.stalled;
	res->has_exit = true;
	res->exit_code = sr.exit_code;
	arl_output_release(&res->out);
	arl_output_release(&res->err);
	res->out = sr.out;
	res->err = sr.err;
	memset(&sr.out, 0, sizeof(sr.out));
	memset(&sr.err, 0, sizeof(sr.err));
	if (sr.cancelled)
		*cls = ARL_CLASS_CANCELLED;
	else if (sr.timed_out)
		*cls = ARL_CLASS_TIMEOUT;
	else if (sr.exit_code != 0)
		*cls = ARL_CLASS_FAILED;
	else
		*cls = ARL_CLASS_NONE;
	arl_local_oom_check(sb, oom_mark, res, cls);
	arl_spawn_result_release(&sr);
	ret = 0;
	goto out;
refused:
	arl_local_step_fail(res, cls, code, msg.p);
	ret = 0;
out:
	arl_local_sv_release(&argv);
	arl_local_sv_release(&env);
	arl_buf_release(&msg);
	if (ws_fd >= 0)
		close(ws_fd);
	arl_local_limits_join_done(cg_fds, ncg);
	free(cwd);
	free(mnt_cwd);
	free(prog);
	free(wd);
	return ret;
}
