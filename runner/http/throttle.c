/*
 * DESIGN
 *
 * Why a window and not just backoff. Every request already backs off on its own, but N
 * workers that each back off still knock N times per backoff period, and when the server
 * returns they all arrive at once. Like a TCP sender, the run instead keeps a window of
 * creates in flight: refusals shrink it multiplicatively, successes grow it additively, so
 * the load offered to a struggling server drops fast and comes back gently.
 *
 * Parameters.
 * - Start and ceiling: @max, the most sandboxes the run can have at once (the sum of its
 *   pools' replicas); more creates than that are never in flight anyway.
 * - Decrease: halve (at least 1) on a refusal, but only when the server is refusing rather
 *   than failing now and then, and at most once per "round":
 *   - Refusing: a moving average of the tries' outcomes (refused 1, answered 0, weight 1/8)
 *     has reached 0.4. From a healthy state that takes 4 refusals in a row. Sporadic errors
 *     are absorbed by retries and must not shrink the window: with 15% of requests refused
 *     at random (test_k8s_faults), plain AIMD kept the window between 1 and 5 of 20 and
 *     doubled the run's time (10 s to 20 s); with the average, it halves a few times per
 *     thousand tries and the run takes as long as without a window.
 *   - Once per round: a refusal only counts when its try went out after the last decrease
 *     (TCP NewReno's recovery rule). The burst of refusals that the old, larger window
 *     provoked (an outage hits every request in flight) thus halves it once, not once per
 *     request; a server that goes on refusing the tries sent under the smaller window
 *     halves it again, down to 1 within log2(max) rounds. A round is a round trip plus the
 *     retry's backoff, so no clock is needed and the unit tests are deterministic.
 * - Increase: +1 per window's worth of successes (TCP congestion avoidance), up to @max. A
 *   window of 1 becomes 2 after one success, 8 becomes 9 after eight.
 * - A request holds its slot through its retries and their backoff sleeps: a create in
 *   backoff is still in flight (its answer is outstanding). One that finds itself beyond a
 *   shrunken window gives its slot up before its next try and queues again.
 * - Waiters are served first come, first served, so no worker's attempt starves behind
 *   others that keep winning the wake-up race.
 *
 * Waiting watches the cancel fd by polling it every 100 ms from a timed wait: a condition
 * variable cannot wait on an fd, and only waiters (at most one per worker) pay for it.
 */
#include "http/throttle.h"

#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "util.h"
#include "banned.h"

#define THROTTLE_POLL_MS  100   /* how often a waiter looks at the cancel fd */
#define THROTTLE_ALPHA    0.125 /* weight of one try in the refusal rate (1/8) */
#define THROTTLE_REFUSING 0.4   /* the refusal rate from which a refusal shrinks the window */

/* A thread waiting for a slot; lives on its stack, linked in arrival order. */
struct waiter {
	struct waiter *next;
};

struct arl_http_throttle {
	pthread_mutex_t mu; /* guards everything below; lock order: alone, never across I/O */
	pthread_cond_t cv;  /* a slot freed, the window grew, or the queue's head left */
	int max, window, in_flight, successes;
	uint64_t epoch;  /* bumped by each decrease */
	double refusing; /* moving average of refused tries (1) and answers (0) */
	int high;        /* the window before the first decrease of this episode; 0: none */
	int low;         /* the smallest window of this episode */
	bool floored;    /* this episode's fall to 1 was reported */
	struct waiter *head, *tail;
	int waiting;
	unsigned decreases, increases;
	arl_http_throttle_fn fn;
	void *arg;
	struct arl_clock clock;
};

struct arl_http_throttle *arl_http_throttle_new(int max, arl_http_throttle_fn fn, void *arg)
{
	struct arl_http_throttle *t = arl_xcalloc(1, sizeof(*t));

	pthread_mutex_init(&t->mu, NULL);
	arl_cond_init_monotonic(&t->cv);
	t->max = t->window = max > 0 ? max : 1;
	t->fn = fn;
	t->arg = arg;
	return t;
}

void arl_http_throttle_free(struct arl_http_throttle *t)
{
	if (!t)
		return;
	pthread_cond_destroy(&t->cv);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

void arl_http_throttle_set_clock(struct arl_http_throttle *t, struct arl_clock clock)
{
	t->clock = clock;
}

/* Unlinks @w from the queue; t->mu held. */
static void dequeue(struct arl_http_throttle *t, struct waiter *w)
{
	struct waiter **p = &t->head, *prev = NULL;

	while (*p && *p != w) {
		prev = *p;
		p = &(*p)->next;
	}
	if (!*p)
		return;
	*p = w->next;
	if (t->tail == w)
		t->tail = prev;
	t->waiting--;
}

enum arl_http_throttle_wait arl_http_throttle_acquire(struct arl_http_throttle *t,
                                                      struct arl_http_throttle_slot *s,
                                                      int64_t deadline_ms, int cancel_fd)
{
	struct waiter me = {NULL};
	enum arl_http_throttle_wait rc = ARL_HTTP_THROTTLE_OK;

	if (!t) {
		s->held = true;
		return ARL_HTTP_THROTTLE_OK;
	}
	pthread_mutex_lock(&t->mu);
	if (!t->head && t->in_flight < t->window)
		goto take;
	if (t->tail)
		t->tail->next = &me;
	else
		t->head = &me;
	t->tail = &me;
	t->waiting++;
	for (;;) {
		int64_t now, until;

		if (t->head == &me && t->in_flight < t->window)
			break;
		/* The fd and the clock are looked at with the lock held: both are cheap. */
		if (arl_fd_readable(cancel_fd)) {
			rc = ARL_HTTP_THROTTLE_CANCELLED;
			break;
		}
		now = arl_clock_now(&t->clock);
		if (deadline_ms && now >= deadline_ms) {
			rc = ARL_HTTP_THROTTLE_TIMEOUT;
			break;
		}
		until = now + THROTTLE_POLL_MS;
		if (deadline_ms && deadline_ms < until)
			until = deadline_ms;
		arl_cond_wait_until(&t->cv, &t->mu, arl_now_ms() + (until - now));
	}
	dequeue(t, &me);
	/* The next in line may be able to go now (room left, or we gave up our turn). */
	if (t->head)
		pthread_cond_broadcast(&t->cv);
	if (rc != ARL_HTTP_THROTTLE_OK) {
		pthread_mutex_unlock(&t->mu);
		return rc;
	}
take:
	t->in_flight++;
	s->held = true;
	s->epoch = t->epoch;
	pthread_mutex_unlock(&t->mu);
	return ARL_HTTP_THROTTLE_OK;
}

void arl_http_throttle_sent(struct arl_http_throttle *t, struct arl_http_throttle_slot *s)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->mu);
	s->epoch = t->epoch;
	pthread_mutex_unlock(&t->mu);
}

bool arl_http_throttle_refused(struct arl_http_throttle *t, struct arl_http_throttle_slot *s)
{
	enum arl_http_throttle_change what = ARL_HTTP_THROTTLE_SHRANK;
	int from = 0, to = 0;
	bool over, tell = false;

	if (!t)
		return false;
	pthread_mutex_lock(&t->mu);
	t->refusing += THROTTLE_ALPHA * (1 - t->refusing);
	/* Only news about the current window counts, and noise does not: see "Decrease". */
	if (s->epoch == t->epoch && t->window > 1 && t->refusing >= THROTTLE_REFUSING) {
		from = t->window;
		to = t->window / 2;
		t->window = to;
		t->epoch++;
		t->successes = 0;
		t->decreases++;
		if (!t->high || to < t->low)
			t->low = to;
		if (!t->high) {
			t->high = from;
			tell = true;
		}
		if (to == 1 && !t->floored) {
			t->floored = true;
			if (!tell) {
				what = ARL_HTTP_THROTTLE_FLOOR;
				tell = true;
			}
		}
	}
	over = s->held && t->in_flight > t->window;
	pthread_mutex_unlock(&t->mu);
	if (tell && t->fn)
		t->fn(t->arg, what, from, to);
	return over;
}

void arl_http_throttle_release(struct arl_http_throttle *t, struct arl_http_throttle_slot *s,
                               bool succeeded)
{
	int from = 0, to = 0;

	if (!s->held)
		return;
	s->held = false;
	if (!t)
		return;
	pthread_mutex_lock(&t->mu);
	t->in_flight--;
	if (succeeded)
		t->refusing -= THROTTLE_ALPHA * t->refusing;
	if (succeeded && t->window < t->max && ++t->successes >= t->window) {
		t->successes = 0;
		t->window++;
		t->increases++;
		if (t->high && t->window >= t->high) {
			from = t->low;
			to = t->window;
			t->high = 0;
			t->floored = false;
		}
	}
	if (t->head)
		pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
	if (to && t->fn)
		t->fn(t->arg, ARL_HTTP_THROTTLE_RECOVERED, from, to);
}

void arl_http_throttle_get_stats(struct arl_http_throttle *t, struct arl_http_throttle_stats *out)
{
	pthread_mutex_lock(&t->mu);
	out->window = t->window;
	out->in_flight = t->in_flight;
	out->waiting = t->waiting;
	out->max = t->max;
	out->decreases = t->decreases;
	out->increases = t->increases;
	pthread_mutex_unlock(&t->mu);
}
