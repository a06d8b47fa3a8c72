/*
 * Unit tests for the local backend's reaper (runner/local/reaper.c), on a bare struct local
 * whose released "containers" are plain child processes: one that has exited is reaped, one
 * that outlives its stop_by is killed, both without close(), and the reaper never waits for
 * the one it is not done with; stop() ends what is still queued; a full queue and a stopping
 * backend hand the sandbox back to the caller.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "local/local.h"
#include "local/reaper.h"
#include "util.h"

static struct local *new_local(size_t backlog)
{
	struct local *L = arl_xcalloc(1, sizeof(*L));

	pthread_mutex_init(&L->mu, NULL);
	pthread_cond_init(&L->cv, NULL);
	L->state_fd = L->reap_fd = -1;
	L->backlog = backlog;
	return L;
}

static void free_local(struct local *L)
{
	free(L->released);
	pthread_cond_destroy(&L->cv);
	pthread_mutex_destroy(&L->mu);
	free(L);
}

/* A released sandbox whose bwrap is a child in a group of its own running @cmd. */
static struct arl_sandbox *child_sandbox(const char *cmd, pid_t *pid)
{
	struct arl_sandbox *sb = arl_xcalloc(1, sizeof(*sb));

	sb->bwrap_pid = fork();
	assert_true(sb->bwrap_pid >= 0);
	if (!sb->bwrap_pid) {
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* a hung test leaves nothing behind */
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	setpgid(sb->bwrap_pid, sb->bwrap_pid);
	sb->bwrap_pidfd = (int)syscall(SYS_pidfd_open, sb->bwrap_pid, 0);
	assert_true(sb->bwrap_pidfd >= 0);
	*pid = sb->bwrap_pid;
	return sb;
}

/* Whether @pid is still ours: alive, or a zombie no one reaped (WNOWAIT: we do not reap). */
static bool not_reaped(pid_t pid)
{
	siginfo_t si = {0};

	return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0;
}

/*
 * Until the reaper has reaped @pid: it leaves the queue before it is ended (mu is dropped
 * for that). A reaper that never does fails the test by ctest's timeout.
 */
static void wait_reaped(pid_t pid)
{
	while (not_reaped(pid))
		usleep(1000);
}

static size_t queued(struct local *L)
{
	size_t n;

	pthread_mutex_lock(&L->mu);
	n = L->nreleased;
	pthread_mutex_unlock(&L->mu);
	return n;
}

/* Until the reaper has emptied its queue; a reaper that never does fails the test by ctest's
 * timeout, not by a clock of ours. */
static void wait_drained(struct local *L)
{
	while (queued(L))
		usleep(1000);
}

/* What close() does before stopping the reaper. */
static void set_stopping(struct local *L)
{
	pthread_mutex_lock(&L->mu);
	L->stopping = true;
	pthread_mutex_unlock(&L->mu);
}

static void test_exited_reaped_and_overdue_killed(void **state)
{
	struct local *L = new_local(4);
	struct arl_err err = ARL_ERR_INIT;
	pid_t done_pid, stuck_pid, later_pid;
	struct arl_sandbox *stuck = child_sandbox("exec sleep 1000", &stuck_pid);
	struct arl_sandbox *later = child_sandbox("exec sleep 1000", &later_pid);

	(void)state;
	assert_int_equal(arl_local_reaper_start(L, &err), 0);
	assert_true(arl_local_reaper_queue(L, stuck));
	assert_true(arl_local_reaper_queue(L, later));
	/* Overdue at once: the reaper kills it rather than wait for it. */
	pthread_mutex_lock(&L->mu);
	stuck->stop_by = 1;
	later->stop_by = INT64_MAX / 2; /* never, whatever the machine's pace */
	pthread_mutex_unlock(&L->mu);
	/* Queued last, it wakes the reaper, which then sees stuck overdue. */
	assert_true(arl_local_reaper_queue(L, child_sandbox("exit 0", &done_pid)));
	wait_reaped(done_pid);
	wait_reaped(stuck_pid);
	assert_int_equal(queued(L), 1);
	/* Not overdue, still running: the reaper left it alone. */
	assert_true(not_reaped(later_pid));
	set_stopping(L);
	arl_local_reaper_stop(L);
	assert_int_equal(queued(L), 1);
	assert_int_equal(L->reap_fd, -1);
	/* What close() does with what the reaper left: killed once stop_by passes. */
	later->stop_by = 1;
	arl_local_sandbox_end(L, L->released[0]);
	assert_false(not_reaped(later_pid));
	free_local(L);
}

static void test_queue_refuses_when_full_or_stopping(void **state)
{
	struct local *L = new_local(1);
	struct arl_err err = ARL_ERR_INIT;
	struct arl_sandbox *a, *b;
	pid_t pa, pb;

	(void)state;
	a = child_sandbox("exec sleep 1000", &pa);
	b = child_sandbox("exec sleep 1000", &pb);
	/* Not started: the caller ends the sandbox itself. */
	assert_false(arl_local_reaper_queue(L, a));
	assert_int_equal(arl_local_reaper_start(L, &err), 0);
	assert_true(arl_local_reaper_queue(L, a));
	assert_false(arl_local_reaper_queue(L, b)); /* backlog 1 */
	set_stopping(L);
	assert_false(arl_local_reaper_queue(L, b));
	arl_local_reaper_stop(L);
	for (size_t i = 0; i < L->nreleased; i++) {
		L->released[i]->stop_by = 1;
		arl_local_sandbox_end(L, L->released[i]);
	}
	b->stop_by = 1;
	arl_local_sandbox_end(L, b);
	assert_false(not_reaped(pa));
	assert_false(not_reaped(pb));
	free_local(L);
}

static void test_drains_many(void **state)
{
	struct local *L = new_local(64);
	struct arl_err err = ARL_ERR_INIT;
	pid_t pids[64];

	(void)state;
	assert_int_equal(arl_local_reaper_start(L, &err), 0);
	for (size_t i = 0; i < 64; i++)
		assert_true(arl_local_reaper_queue(L, child_sandbox("exit 3", &pids[i])));
	wait_drained(L);
	for (size_t i = 0; i < 64; i++)
		wait_reaped(pids[i]);
	set_stopping(L);
	arl_local_reaper_stop(L);
	free_local(L);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_exited_reaped_and_overdue_killed),
	    cmocka_unit_test(test_queue_refuses_when_full_or_stopping),
	    cmocka_unit_test(test_drains_many),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
