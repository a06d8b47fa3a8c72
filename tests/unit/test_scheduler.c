/*
 * The scheduler against a scripted fake backend: a step's argv[0] says what it does
 * ("ok", "fail", "sleep:MS", "infra", "block" until cancelled, "gate:N" until N steps or all
 * the unfinished ones are in flight). Tests that set fx.fake_clock run the scheduler on the
 * test's clock, which moves only when a "sleep:MS" step or the test moves it.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "run/scheduler.h"
#include "util.h"
#include "fake_clock.h"

struct arl_sandbox {
	int id;
};

static atomic_int in_flight, max_in_flight, acquired, released, finished;
static atomic_int cancels_seen; /* "block" steps that the cancel pipe ended */
static atomic_int dispatched;
static int cancel_pipe[2];

static bool fake_clock; /* set by a test before run() */
static int jobs_in_run; /* set by run() */

/* What the steps did, on the test's clock. */
struct exec_rec {
	const struct arl_step *step;
	int64_t start, end;
};
static struct exec_rec exec_log[64];
static atomic_int nexec;

static int fake_acquire(void *st, const struct arl_pool *pool, const struct arl_sandbox_req *req,
                        struct arl_sandbox **out, struct arl_err *err)
{
	(void)st, (void)pool, (void)req, (void)err;
	*out = arl_xcalloc(1, sizeof(**out));
	atomic_fetch_add(&acquired, 1);
	return 0;
}

static int fake_exec(void *st, struct arl_sandbox *sb, const struct arl_step *step,
                     const struct arl_exec_ctx *ctx, struct arl_step_result *res,
                     enum arl_class *cls, struct arl_err *err)
{
	const char *what = step->argv[0];
	int now = atomic_fetch_add(&in_flight, 1) + 1, max = atomic_load(&max_in_flight);
	int ret = 0;

	(void)st, (void)sb, (void)ctx;
	while (now > max && !atomic_compare_exchange_weak(&max_in_flight, &max, now))
		;
	int64_t start = atomic_load(&fake_clock_ms);

	/* As a backend does: the class only; arl_backend_exec() derives the step's state. */
	*cls = ARL_CLASS_NONE;
	res->has_exit = true;
	if (!strncmp(what, "sleep:", 6)) {
		if (fake_clock)
			atomic_fetch_add(&fake_clock_ms, atoi(what + 6));
		else
			usleep((useconds_t)atoi(what + 6) * 1000);
	} else if (!strncmp(what, "gate:", 5)) {
		int n = atoi(what + 5);

		while (atomic_load(&in_flight) < n &&
		       atomic_load(&in_flight) < jobs_in_run - atomic_load(&finished))
			usleep(1000);
	} else if (!strncmp(what, "cost:", 5)) {
		/* For `metrics: json`: the step prints {"cost": N}. */
		res->out.data = arl_xasprintf("{\"cost\": %s}\n", what + 5);
		res->out.len = strlen(res->out.data);
	} else if (!strcmp(what, "fail")) {
		res->exit_code = 1;
		*cls = ARL_CLASS_FAILED;
	} else if (!strcmp(what, "infra")) {
		ret = arl_error(err, ARL_E_BACKEND, "scripted infra failure");
	} else if (!strcmp(what, "block")) {
		struct pollfd p = {.fd = cancel_pipe[0], .events = POLLIN};

		/* Only the cancel ends it (a hang is the failure; ctest's timeout reports it). */
		if (poll(&p, 1, -1) == 1 && (p.revents & POLLIN))
			atomic_fetch_add(&cancels_seen, 1);
		*cls = ARL_CLASS_CANCELLED;
	}
	{
		int i = atomic_fetch_add(&nexec, 1);

		assert_true(i < (int)(sizeof(exec_log) / sizeof(exec_log[0])));
		exec_log[i] = (struct exec_rec){step, start, atomic_load(&fake_clock_ms)};
	}
	atomic_fetch_add(&finished, 1);
	atomic_fetch_sub(&in_flight, 1);
	return ret;
}

static const char *fake_name(const struct arl_sandbox *sb)
{
	(void)sb;
	return "fake";
}

static void fake_release(void *st, struct arl_sandbox *sb, bool keep)
{
	(void)st, (void)keep;
	atomic_fetch_add(&released, 1);
	free(sb);
}

static const struct arl_pool_key no_keys[] = {{.name = NULL}};
static const struct arl_pool_kind fake_kind = {.name = "fake", .keys = no_keys};

static const struct arl_backend_ops fake_ops = {
    .pool = &fake_kind,
    .acquire = fake_acquire,
    .exec = fake_exec,
    .sandbox_name = fake_name,
    .release = fake_release,
};

struct fixture {
	struct arl_pool pools[2];
	struct arl_job *jobs;
	struct arl_sched_job *sj;
	size_t n;
	int pool_limits[2], file_limits[1];
	int done_count;
	int64_t *done_order; /* job index per completion */
	int sig_pipe[2];
	int attempt_starts, attempt_dones, retries; /* the optional hooks' calls */
	int peak_open; /* most attempts started and not yet done, as the hooks saw them */
	bool abort;
	int abort_after; /* on_done sets abort after this many jobs; 0: never */
};

static struct fixture fx;
/* Budgets for the next run() (a test sets them); on_budget's calls. */
static struct arl_sched_budget *budgets;
static size_t nbudgets;
static int budget_calls;

static void add_job(const char *name, const char *what, size_t pool, int retries, unsigned retry_on,
                    int64_t backoff_ms)
{
	struct arl_job *j;

	fx.jobs = arl_xrealloc(fx.jobs, (fx.n + 1) * sizeof(*fx.jobs));
	j = &fx.jobs[fx.n++];
	memset(j, 0, sizeof(*j));
	j->name = arl_xstrdup(name);
	j->key = arl_xasprintf("t/%s", name);
	j->pool = pool;
	j->timeout_ms = 30000;
	j->retries = retries;
	j->retry_on = retry_on;
	j->backoff_ms = backoff_ms;
	j->steps.v = arl_xcalloc(1, sizeof(*j->steps.v));
	j->steps.n = 1;
	j->steps.v[0].name = arl_xstrdup("s");
	j->steps.v[0].argv = arl_xcalloc(2, sizeof(char *));
	j->steps.v[0].argv[0] = arl_xstrdup(what);
	j->steps.v[0].argc = 1;
}

static void on_done(void *ctx, struct arl_sched_job *j)
{
	(void)ctx;
	fx.done_order[fx.done_count++] = j - fx.sj;
	if (fx.done_count == fx.abort_after)
		fx.abort = true;
}

static void on_attempt_start(void *ctx, struct arl_sched_job *j, int number)
{
	(void)ctx;
	fx.attempt_starts++;
	if (fx.attempt_starts - fx.attempt_dones > fx.peak_open)
		fx.peak_open = fx.attempt_starts - fx.attempt_dones;
	atomic_fetch_add(&dispatched, 1);
	assert_int_equal(number, (int)j->result.nattempts + 1);
}

static void on_attempt_done(void *ctx, struct arl_sched_job *j, const struct arl_attempt_result *a)
{
	(void)ctx;
	fx.attempt_dones++;
	/* The attempt is already the job's last, and the job is not reported yet. */
	assert_ptr_equal(a, &j->result.attempts[j->result.nattempts - 1]);
	assert_int_equal(a->number, (int)j->result.nattempts);
}

static void on_retry(void *ctx, struct arl_sched_job *j, int64_t delay_ms)
{
	(void)ctx;
	fx.retries++;
	assert_true(delay_ms >= 0 && delay_ms <= j->job->backoff_ms * 4 + 1);
}

static void on_budget(void *ctx, const struct arl_sched_budget *b)
{
	(void)ctx;
	budget_calls++;
	assert_true(b->spent >= b->max);
}

static int setup(void **state)
{
	(void)state;
	memset(&fx, 0, sizeof(fx));
	budgets = NULL;
	nbudgets = 0;
	budget_calls = 0;
	fx.pools[0].name = "a";
	fx.pools[1].name = "b";
	fx.pool_limits[0] = fx.pool_limits[1] = 8;
	atomic_store(&in_flight, 0);
	atomic_store(&max_in_flight, 0);
	atomic_store(&acquired, 0);
	atomic_store(&released, 0);
	atomic_store(&finished, 0);
	atomic_store(&cancels_seen, 0);
	atomic_store(&nexec, 0);
	atomic_store(&fake_clock_ms, 0);
	atomic_store(&fake_clock_reads, 0);
	atomic_store(&dispatched, 0);
	fake_clock = false;
	assert_int_equal(pipe(cancel_pipe), 0);
	assert_int_equal(pipe(fx.sig_pipe), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (size_t i = 0; i < fx.n; i++) {
		arl_job_result_release(&fx.sj[i].result);
		arl_job_release(&fx.jobs[i]);
	}
	free(fx.jobs);
	free(fx.sj);
	free(fx.done_order);
	close(cancel_pipe[0]);
	close(cancel_pipe[1]);
	close(fx.sig_pipe[0]);
	close(fx.sig_pipe[1]);
	return 0;
}

static void run(int concurrency, int max_failures, int64_t deadline_in_ms,
                struct arl_sched_outcome *out)
{
	struct arl_sched_opts o = {0};
	struct arl_err err = ARL_ERR_INIT;

	fx.sj = arl_xcalloc(fx.n, sizeof(*fx.sj));
	fx.done_order = arl_xcalloc(fx.n, sizeof(*fx.done_order));
	for (size_t i = 0; i < fx.n; i++) {
		fx.sj[i].job = &fx.jobs[i];
		fx.sj[i].pool_slot = fx.jobs[i].pool;
		fx.sj[i].env.ops = &fake_ops;
		fx.sj[i].env.pool = &fx.pools[fx.jobs[i].pool];
	}
	o.concurrency = concurrency;
	o.pool_limits = fx.pool_limits;
	o.npool_slots = 2;
	o.file_limits = fx.file_limits;
	o.nfile_slots = 1;
	o.max_failures = max_failures;
	jobs_in_run = (int)fx.n;
	if (fake_clock)
		o.clock = (struct arl_clock){fake_clock_now, NULL};
	o.deadline_ms = deadline_in_ms ? arl_clock_now(&o.clock) + deadline_in_ms : 0;
	o.cancel_wfd = cancel_pipe[1];
	o.signal_fd = fx.sig_pipe[0];
	o.on_done = on_done;
	o.on_attempt_start = on_attempt_start;
	o.on_attempt_done = on_attempt_done;
	o.on_retry = on_retry;
	o.on_budget = on_budget;
	o.budgets = budgets;
	o.nbudgets = nbudgets;
	o.abort = &fx.abort;
	assert_int_equal(arl_sched_run(fx.sj, fx.n, &o, out, &err), 0);
	assert_int_equal(fx.done_count, (int)fx.n); /* every job reported exactly once */
	{
		int attempts = 0, again = 0;

		for (size_t i = 0; i < fx.n; i++) {
			attempts += (int)fx.sj[i].result.nattempts;
			again += fx.sj[i].result.nattempts ? (int)fx.sj[i].result.nattempts - 1 : 0;
		}
		/* Every attempt started and ended once; a retry may be cut short by a stop. */
		assert_int_equal(fx.attempt_starts, attempts);
		assert_int_equal(fx.attempt_dones, attempts);
		assert_true(fx.retries >= again);
	}
}

/* The @nth (0-based) step run of job @i, from the log. */
static const struct exec_rec *exec_of(size_t i, int nth)
{
	int seen = 0;

	for (int k = 0; k < atomic_load(&nexec); k++)
		if (exec_log[k].step == &fx.jobs[i].steps.v[0] && seen++ == nth)
			return &exec_log[k];
	fail_msg("job %zu has no step run #%d", i, nth);
	return NULL;
}

/* Until @n steps are in flight. */
static void until_in_flight(int n)
{
	while (atomic_load(&in_flight) < n)
		usleep(1000);
}

#define RETRY_ALL                                                                                  \
	(ARL_RETRY_BIT(ARL_CLASS_FAILED) | ARL_RETRY_BIT(ARL_CLASS_TIMEOUT) |                      \
	 ARL_RETRY_BIT(ARL_CLASS_INFRA))

static void test_all_succeed_within_limits(void **state)
{
	struct arl_sched_outcome out;

	(void)state;
	fx.pool_limits[0] = 2;
	for (int i = 0; i < 20; i++) {
		char name[16];

		snprintf(name, sizeof(name), "j%d", i);
		add_job(name, "gate:2", 0, 0, 0, 0);
	}
	run(4, 0, 0, &out);
	assert_int_equal(out.stop, ARL_STOP_NONE);
	for (size_t i = 0; i < fx.n; i++) {
		assert_int_equal(fx.sj[i].result.state, ARL_STATE_SUCCEEDED);
		assert_int_equal(fx.sj[i].result.nattempts, 1);
	}
	/*
	 * The pool allows 2 even though 4 workers exist: as the scheduler counts (its hooks run
	 * on its thread, so this does not depend on how fast the workers are) and as the steps
	 * saw it.
	 */
	assert_int_equal(fx.peak_open, 2);
	assert_true(atomic_load(&max_in_flight) <= 2);
	assert_int_equal(atomic_load(&max_in_flight), 2);
	assert_int_equal(atomic_load(&acquired), atomic_load(&released));
}

static void test_global_limit(void **state)
{
	struct arl_sched_outcome out;

	(void)state;
	for (int i = 0; i < 12; i++) {
		char name[16];

		snprintf(name, sizeof(name), "j%d", i);
		add_job(name, "gate:3", (size_t)(i % 2), 0, 0, 0);
	}
	run(3, 0, 0, &out);
	assert_int_equal(fx.peak_open, 3);
	assert_int_equal(atomic_load(&max_in_flight), 3);
}

static void test_retries_and_retry_on(void **state)
{
	struct arl_sched_outcome out;

	(void)state;
	add_job("retried", "fail", 0, 2, RETRY_ALL, 10);
	add_job("not-retried", "fail", 0, 2,
	        ARL_RETRY_BIT(ARL_CLASS_TIMEOUT) | ARL_RETRY_BIT(ARL_CLASS_INFRA), 10);
	add_job("infra", "infra", 0, 1, ARL_RETRY_BIT(ARL_CLASS_INFRA), 10);
	run(2, 0, 0, &out);
	assert_int_equal(fx.sj[0].result.state, ARL_STATE_FAILED);
	assert_int_equal(fx.sj[0].result.nattempts, 3);
	assert_int_equal(fx.sj[0].result.cls, ARL_CLASS_FAILED);
	for (int a = 0; a < 3; a++)
		assert_int_equal(fx.sj[0].result.attempts[a].number, a + 1);
	assert_int_equal(fx.sj[1].result.nattempts, 1);
	assert_int_equal(fx.sj[2].result.nattempts, 2);
	assert_int_equal(fx.sj[2].result.cls, ARL_CLASS_INFRA);
	assert_non_null(fx.sj[2].result.error);
	assert_int_equal(fx.retries, 2 + 1); /* "retried" twice, "infra" once */
}

static atomic_int early; /* attempts started before their time */

/* Once both first attempts are over, the clock goes to 1 ms before the retry is due, then to it. */
static void *walk_through_the_backoff(void *arg)
{
	(void)arg;
	while (atomic_load(&finished) < 2)
		usleep(1000);
	fake_clock_set(299, 2); /* the scheduler looked twice */
	atomic_store(&early, atomic_load(&dispatched) - 2);
	atomic_store(&fake_clock_ms, 300);
	return NULL;
}

static void test_backoff_holds_no_worker(void **state)
{
	struct arl_sched_outcome out;
	pthread_t t;

	(void)state;
	fake_clock = true;
	add_job("flaky", "fail", 0, 1, RETRY_ALL, 300);
	add_job("other", "sleep:50", 0, 0, 0, 0);
	assert_int_equal(pthread_create(&t, NULL, walk_through_the_backoff, NULL), 0);
	run(1, 0, 0, &out);
	pthread_join(t, NULL);
	assert_int_equal(fx.sj[0].result.nattempts, 2);
	/* With one worker, "other" ran while "flaky" waited out its backoff, all of it. */
	assert_true(exec_of(1, 0)->start < exec_of(0, 1)->start);
	assert_int_equal(atomic_load(&early), 0);
	assert_int_equal(exec_of(0, 1)->start - exec_of(0, 0)->end, 300);
}

/* A retry goes to the front of its pool's queue, not behind the whole backlog. */
static void test_retry_goes_first(void **state)
{
	struct arl_sched_outcome out;

	(void)state;
	fake_clock = true;
	add_job("flaky", "fail", 0, 1, RETRY_ALL, 10); /* due while q0 runs */
	for (int i = 0; i < 4; i++) {
		char name[16];

		snprintf(name, sizeof(name), "q%d", i);
		add_job(name, "sleep:30", 0, 0, 0, 0);
	}
	run(1, 0, 0, &out);
	assert_int_equal(fx.sj[0].result.nattempts, 2);
	/* One worker: the retry runs right after the job that was running, before q1..q3. */
	assert_int_equal(fx.done_order[0], 1);
	assert_int_equal(fx.done_order[1], 0);
}

static void test_max_failures_cancels_the_rest(void **state)
{
	struct arl_sched_outcome out;

	(void)state;
	add_job("bad", "fail", 0, 0, 0, 0);
	for (int i = 0; i < 5; i++) {
		char name[16];

		snprintf(name, sizeof(name), "later%d", i);
		add_job(name, "ok", 0, 0, 0, 0);
	}
	run(1, 1, 0, &out);
	assert_int_equal(out.stop, ARL_STOP_FAILURES);
	assert_int_equal(fx.sj[0].result.state, ARL_STATE_FAILED);
	for (size_t i = 1; i < fx.n; i++) {
		assert_int_equal(fx.sj[i].result.state, ARL_STATE_CANCELLED);
		assert_int_equal(fx.sj[i].result.nattempts, 0);
	}
}

/* Once the jobs' metric sums to the budget, nothing new starts; the rest say why. */
static void test_budget_stops_new_jobs(void **state)
{
	struct arl_sched_budget b[2] = {{.metric = "other", .max = 1},
	                                {.metric = "cost", .max = 2.5}};
	struct arl_sched_outcome out;

	(void)state;
	budgets = b;
	nbudgets = 2;
	/* A job reporting a negative cost does not make room for more. */
	add_job("refund", "cost:-100", 0, 0, 0, 0);
	fx.jobs[0].steps.v[0].metrics_json = true;
	for (int i = 0; i < 6; i++) {
		char name[16];

		snprintf(name, sizeof(name), "j%d", i);
		add_job(name, "cost:1", 0, 0, 0, 0);
		fx.jobs[fx.n - 1].steps.v[0].metrics_json = true;
	}
	run(1, 0, 0, &out);
	assert_int_equal(out.stop, ARL_STOP_BUDGET);
	assert_int_equal(out.budget, 1);
	assert_string_equal(out.budget_msg, "budget cost 2.5 reached (3)");
	assert_int_equal(budget_calls, 1);
	assert_true(b[1].spent == 3 && b[0].spent == 0);
	for (size_t i = 0; i < fx.n; i++) {
		assert_int_equal(fx.sj[i].result.state,
		                 i < 4 ? ARL_STATE_SUCCEEDED : ARL_STATE_CANCELLED);
		if (i >= 4) {
			assert_int_equal(fx.sj[i].result.nattempts, 0);
			assert_string_equal(fx.sj[i].result.error,
			                    "not started: budget cost 2.5 reached (3)");
		}
	}
}

/* Once both stuck jobs run, the clock reaches the deadline. */
static void *pass_the_deadline(void *arg)
{
	(void)arg;
	until_in_flight(2);
	fake_clock_set(199, 2); /* the scheduler looked twice */
	atomic_store(&early, atomic_load(&cancels_seen));
	atomic_store(&fake_clock_ms, 200);
	return NULL;
}

static void test_deadline_cancels_in_flight(void **state)
{
	struct arl_sched_outcome out;
	pthread_t t;

	(void)state;
	fake_clock = true;
	add_job("stuck1", "block", 0, 3, RETRY_ALL, 10);
	add_job("stuck2", "block", 0, 0, 0, 0);
	add_job("queued", "ok", 0, 0, 0, 0);
	assert_int_equal(pthread_create(&t, NULL, pass_the_deadline, NULL), 0);
	run(2, 0, 200, &out);
	pthread_join(t, NULL);
	assert_int_equal(out.stop, ARL_STOP_DEADLINE);
	/* Not a millisecond early; and the cancel, not a time-out of their own, ended both. */
	assert_int_equal(atomic_load(&early), 0);
	assert_int_equal(atomic_load(&cancels_seen), 2);
	for (size_t i = 0; i < fx.n; i++)
		assert_int_equal(fx.sj[i].result.state, ARL_STATE_CANCELLED);
	/* A cancelled attempt is not retried. */
	assert_int_equal(fx.sj[0].result.nattempts, 1);
}

static void *send_sigint(void *arg)
{
	unsigned char b = SIGINT;

	(void)arg;
	until_in_flight(1); /* "stuck" runs */
	assert_int_equal(write(fx.sig_pipe[1], &b, 1), 1);
	return NULL;
}

static void test_signal_cancels(void **state)
{
	struct arl_sched_outcome out;
	pthread_t t;

	(void)state;
	add_job("stuck", "block", 0, 0, 0, 0);
	add_job("queued1", "ok", 0, 0, 0, 0);
	add_job("queued2", "ok", 0, 0, 0, 0);
	pthread_create(&t, NULL, send_sigint, NULL);
	run(1, 0, 0, &out);
	pthread_join(t, NULL);
	assert_int_equal(out.stop, ARL_STOP_SIGNAL);
	assert_int_equal(out.signal, SIGINT);
	assert_int_equal(atomic_load(&cancels_seen), 1); /* "stuck" was running, and cancelled */
	for (size_t i = 0; i < fx.n; i++)
		assert_int_equal(fx.sj[i].result.state, ARL_STATE_CANCELLED);
	assert_int_equal(atomic_load(&acquired), atomic_load(&released));
}

/* A hook that can no longer record results stops the run at once, as a signal would. */
static void test_abort_from_a_hook(void **state)
{
	struct arl_sched_outcome out;

	(void)state;
	add_job("first", "ok", 0, 0, 0, 0);
	add_job("stuck", "block", 0, 3, RETRY_ALL, 0);
	for (int i = 0; i < 4; i++) {
		char name[16];

		snprintf(name, sizeof(name), "queued%d", i);
		add_job(name, "ok", 0, 0, 0, 0);
	}
	fx.abort_after = 1;
	run(2, 0, 0, &out);
	assert_int_equal(out.stop, ARL_STOP_ABORT);
	assert_int_equal(out.signal, 0);
	assert_int_equal(fx.sj[0].result.state, ARL_STATE_SUCCEEDED);
	assert_int_equal(fx.sj[1].result.state, ARL_STATE_CANCELLED);
	assert_int_equal(fx.sj[1].result.nattempts, 1); /* cancelled, not retried */
	assert_int_equal(atomic_load(&cancels_seen), 1);
	for (size_t i = 2; i < fx.n; i++)
		assert_int_equal(fx.sj[i].result.nattempts, 0);
	assert_int_equal(atomic_load(&acquired), atomic_load(&released));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_all_succeed_within_limits, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_global_limit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_retries_and_retry_on, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_backoff_holds_no_worker, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_retry_goes_first, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_max_failures_cancels_the_rest, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_budget_stops_new_jobs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_deadline_cancels_in_flight, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_signal_cancels, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_abort_from_a_hook, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
