#include "fake_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "util.h"

size_t arl_fake_backend_opened;

struct arl_sandbox {
	const struct arl_fake_pool *pool;
	char name[32];
};

static const struct arl_pool_key fake_keys[] = {
    {.name = "greeting",
     .type = ARL_POOL_KEY_STRING,
     .required = true,
     .offset = offsetof(struct arl_fake_pool, greeting)},
    {.name = NULL},
};

/*
 * An empty label list: its pools record the kind's name. A label follows it in memory, which
 * a reader going past the list's end would take for one of its own.
 */
static const struct {
	const char *const labels[1];
	const char *past_the_end;
} no_labels = {{NULL}, "past-the-end"};

static const struct arl_pool_kind fake_kind = {.name = "fake",
                                               .keys = fake_keys,
                                               .config_size = sizeof(struct arl_fake_pool),
                                               .isolation_labels = no_labels.labels};

static int fake_open(void **state, const struct arl_backend_opts *o,
                     const struct arl_pool *const *pools, size_t npools, struct arl_err *err)
{
	(void)o, (void)pools, (void)err;
	arl_fake_backend_opened = npools;
	*state = arl_xcalloc(1, sizeof(int)); /* the count of sandboxes made */
	return 0;
}

static int fake_acquire(void *state, const struct arl_pool *pool, const struct arl_sandbox_req *req,
                        struct arl_sandbox **out, struct arl_err *err)
{
	(void)req, (void)err;
	*out = arl_xcalloc(1, sizeof(**out));
	(*out)->pool = pool->config;
	snprintf((*out)->name, sizeof((*out)->name), "fake-%d", ++*(int *)state);
	return 0;
}

static int fake_exec(void *state, struct arl_sandbox *sb, const struct arl_step *step,
                     const struct arl_exec_ctx *ctx, struct arl_step_result *res,
                     enum arl_class *cls, struct arl_err *err)
{
	struct arl_buf out = ARL_BUF_INIT;
	bool ok = step->type != ARL_STEP_COMMAND || !strcmp(step->argv[0], "true");

	(void)state, (void)ctx, (void)err;
	if (step->type == ARL_STEP_COMMAND) {
		arl_buf_addstr(&out, sb->pool->greeting);
		for (size_t i = 1; i < step->argc; i++)
			arl_buf_addf(&out, " %s", step->argv[i]);
		arl_buf_addstr(&out, "\n");
		res->out.data = arl_buf_detach(&out, &res->out.len);
		res->has_exit = true;
		res->exit_code = ok ? 0 : 1;
	}
	*cls = ok ? ARL_CLASS_NONE : ARL_CLASS_FAILED; /* arl_backend_exec() does the rest */
	return 0;
}

static const char *fake_sandbox_name(const struct arl_sandbox *sb)
{
	return sb->name;
}

static void fake_release(void *state, struct arl_sandbox *sb, bool keep)
{
	(void)state, (void)keep;
	free(sb);
}

/* gc: says what it was given. */
static int fake_gc(const struct arl_backend_gc_opts *g)
{
	const struct arl_backend_opts o = {.settings = g->settings, .nsettings = g->nsettings};
	const char *where = arl_backend_setting(&o, "fake-where");

	printf("fake gc%s in %s\n", g->yes ? " --yes" : "", where ? where : "?");
	return 0;
}

static const struct arl_backend_option fake_gc_options[] = {
    {.name = "fake-where", .argh = "W", .help = "fake: where to look"},
    {.name = NULL},
};

const struct arl_backend_ops arl_fake_backend = {
    .pool = &fake_kind,
    .open = fake_open,
    .acquire = fake_acquire,
    .exec = fake_exec,
    .sandbox_name = fake_sandbox_name,
    .release = fake_release,
    .close = free,
    .gc = fake_gc,
    .gc_options = fake_gc_options,
};
