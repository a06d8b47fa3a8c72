/*
 * The reaper of released containers (reaper.h).
 *
 * DESIGN
 * - Releasing a container closes its agent's socket: the agent, PID 1, exits, and the
 *   kernel tears its namespaces down in that exit. Each overlay's unmount syncs the
 *   filesystem of its upper (its metadata written back, then a cache flush), and the mount
 *   and PID namespaces wait for RCU grace periods: 2 to 3 ms per container of waiting, with
 *   almost no CPU. The preparers used to wait for that one container at a time (~3 s of
 *   1 000 one-step jobs' 3.6 s run, measured in arl_spawn_stop()), so the workers found few
 *   warm containers and started their own. The reaper waits for every released container
 *   at once, in one poll() over their pidfds and an eventfd release() writes, and ends each
 *   as its bwrap exits (reaped, cgroup removed, directory recycled); one still alive past
 *   its stop_by (release + ARL_LOCAL_STOP_WAIT_MS) is killed, as release always did.
 * - L->released holds what it waits for: release() only appends, the reaper only removes,
 *   so the first n entries are the n it polled. At most L->backlog are queued (release()
 *   ends a sandbox itself beyond that, and once stopping); close() ends what is left after
 *   the reaper is joined.
 */
#include "local/reaper.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "local/container.h"
#include "local/local.h"
#include "log.h"
#include "util.h"
#include "banned.h"

static void wake(struct local *L)
{
	uint64_t one = 1;
	char ebuf[128];

	/* Fails only when the counter is full, and then it is readable anyway. */
	if (write(L->reap_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		arl_log_warn("cannot wake the sandbox reaper: %s",
		             arl_strerror(errno, ebuf, sizeof(ebuf)));
}

bool arl_local_reaper_queue(struct local *L, struct arl_sandbox *sb)
{
	bool queued = false;

	pthread_mutex_lock(&L->mu);
	if (L->reaper_running && !L->stopping && L->nreleased < L->backlog) {
		sb->stop_by = arl_now_ms() + ARL_LOCAL_STOP_WAIT_MS;
		ARL_GROW(L->released, L->capreleased, L->nreleased + 1);
		L->released[L->nreleased++] = sb;
		queued = true;
	}
	pthread_mutex_unlock(&L->mu);
	if (queued)
		wake(L);
	return queued;
}

/* Milliseconds until the first of the @n first released sandboxes is overdue; -1: none. */
static int first_due(const struct local *L, size_t n, int64_t now)
{
	int64_t first = INT64_MAX;

	for (size_t i = 0; i < n; i++)
		if (L->released[i]->stop_by < first)
			first = L->released[i]->stop_by;
	if (first == INT64_MAX)
		return -1;
	return first <= now ? 0 : first - now > INT_MAX ? INT_MAX : (int)(first - now);
}

static void *reaper_main(void *arg)
{
	struct local *L = arg;
	struct pollfd *pfd = NULL;
	struct arl_sandbox **ended = NULL;
	size_t cap = 0, capended = 0;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_mutex_lock(&L->mu);
	while (!L->stopping) {
		size_t n = L->nreleased, nended = 0, kept = 0;
		int timeout = first_due(L, n, arl_now_ms());
		uint64_t count;
		int64_t now;
		char ebuf[128];

		ARL_GROW(pfd, cap, n + 1);
		ARL_GROW(ended, capended, n);
		pfd[0] = (struct pollfd){.fd = L->reap_fd, .events = POLLIN};
		for (size_t i = 0; i < n; i++)
			pfd[i + 1] =
			    (struct pollfd){.fd = L->released[i]->bwrap_pidfd, .events = POLLIN};
		pthread_mutex_unlock(&L->mu);
		if (poll(pfd, n + 1, timeout) < 0 && errno != EINTR) {
			arl_log_warn("the sandbox reaper cannot wait: %s",
			             arl_strerror(errno, ebuf, sizeof(ebuf)));
			usleep(10000); /* not a busy loop; overdue ones are still ended below */
		}
		if (pfd[0].revents && read(L->reap_fd, &count, sizeof(count)) < 0 &&
		    errno != EAGAIN)
			arl_log_warn("the sandbox reaper cannot read its wake-ups: %s",
			             arl_strerror(errno, ebuf, sizeof(ebuf)));
		now = arl_now_ms();
		pthread_mutex_lock(&L->mu);
		for (size_t i = 0; i < L->nreleased; i++) {
			struct arl_sandbox *sb = L->released[i];

			/* A sandbox without a container (pidfd -1) has nothing to wait for. */
			if (i < n &&
			    (pfd[i + 1].revents || sb->bwrap_pidfd < 0 || sb->stop_by <= now))
				ended[nended++] = sb;
			else
				L->released[kept++] = sb;
		}
		L->nreleased = kept;
		pthread_mutex_unlock(&L->mu);
		/* Exited, or overdue (stop_by passed: killed without waiting more). */
		for (size_t i = 0; i < nended; i++)
			arl_local_sandbox_end(L, ended[i]);
		pthread_mutex_lock(&L->mu);
	}
	pthread_mutex_unlock(&L->mu);
	free(pfd);
	free(ended);
	return NULL;
}

int arl_local_reaper_start(struct local *L, struct arl_err *err)
{
	int rc;

	if ((L->reap_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		return arl_error_errno(err, errno, "cannot start the sandbox reaper: eventfd");
	if ((rc = pthread_create(&L->reaper, NULL, reaper_main, L))) {
		close(L->reap_fd);
		L->reap_fd = -1;
		return arl_error_errno(err, rc, "cannot start the sandbox reaper thread");
	}
	L->reaper_running = true;
	return 0;
}

void arl_local_reaper_stop(struct local *L)
{
	if (L->reaper_running) {
		wake(L);
		pthread_join(L->reaper, NULL);
		L->reaper_running = false;
	}
	if (L->reap_fd >= 0)
		close(L->reap_fd);
	L->reap_fd = -1;
}
