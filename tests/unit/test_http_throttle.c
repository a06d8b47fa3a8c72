/*
 * The creation window (http/throttle.c): it starts at its maximum and bounds the slots in
 * flight; stray refusals leave it alone, but when most tries are refused a refusal halves it,
 * at most once per round (refusals of tries sent before the last decrease do not count),
 * never below 1; successes grow it by one per window's worth, never past the maximum; waiters queue first come, first served and give up at their deadline or
 * at once when the cancel fd turns readable; and the changes worth a log line are reported.
 */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "http/throttle.h"
#include "util.h"
#include "fake_clock.h"
#include "banned.h"

static struct arl_http_throttle_stats stats_of(struct arl_http_throttle *t)
{
	struct arl_http_throttle_stats st;

	arl_http_throttle_get_stats(t, &st);
	return st;
}

#define WINDOW(t)    (stats_of(t).window)
#define IN_FLIGHT(t) (stats_of(t).in_flight)

static struct arl_http_throttle *new_on_test_clock(int max, int64_t start, int64_t step)
{
	struct arl_http_throttle *t = arl_http_throttle_new(max, NULL, NULL);

	atomic_store(&fake_clock_ms, start);
	atomic_store(&fake_clock_step, step);
	atomic_store(&fake_clock_last, -1);
	arl_http_throttle_set_clock(t, (struct arl_clock){fake_clock_now, NULL});
	return t;
}

/* Takes a slot the window has room for: no deadline, as it must not wait. */
static void take(struct arl_http_throttle *t, struct arl_http_throttle_slot *s)
{
	assert_int_equal(arl_http_throttle_acquire(t, s, 0, -1), ARL_HTTP_THROTTLE_OK);
	assert_true(s->held);
	arl_http_throttle_sent(t, s);
}

/* The reported changes, as "SHRANK 8 4;FLOOR 2 1;". */
static char events[512];
static pthread_mutex_t events_mu = PTHREAD_MUTEX_INITIALIZER;

static void on_change(void *arg, enum arl_http_throttle_change what, int from, int to)
{
	static const char *const names[] = {"SHRANK", "FLOOR", "RECOVERED"};
	size_t n;

	assert_ptr_equal(arg, events);
	pthread_mutex_lock(&events_mu);
	n = strlen(events);
	snprintf(events + n, sizeof(events) - n, "%s %d %d;", names[what], from, to);
	pthread_mutex_unlock(&events_mu);
}

static int setup(void **state)
{
	(void)state;
	events[0] = '\0';
	return 0;
}

static void test_window_bounds_slots(void **state)
{
	/* Every look at the clock moves it 50 ms on. */
	struct arl_http_throttle *t = new_on_test_clock(3, 1000, 50);
	struct arl_http_throttle_slot s[4] = {
	    ARL_HTTP_THROTTLE_SLOT_INIT, ARL_HTTP_THROTTLE_SLOT_INIT, ARL_HTTP_THROTTLE_SLOT_INIT,
	    ARL_HTTP_THROTTLE_SLOT_INIT};

	(void)state;
	assert_int_equal(WINDOW(t), 3);
	for (int i = 0; i < 3; i++)
		take(t, &s[i]);
	assert_int_equal(IN_FLIGHT(t), 3);
	/*
	 * Full: a fourth waits, and gives up at its deadline: not before it, and at the first
	 * look at the clock that reaches it (1000, 1050, 1100, 1150).
	 */
	assert_int_equal(arl_http_throttle_acquire(t, &s[3], 1150, -1), ARL_HTTP_THROTTLE_TIMEOUT);
	assert_int_equal(atomic_load(&fake_clock_last), 1150);
	assert_false(s[3].held);
	assert_int_equal(IN_FLIGHT(t), 3);
	assert_int_equal(stats_of(t).waiting, 0);
	/* A neutral release frees a slot without growing the window (already at its max). */
	arl_http_throttle_release(t, &s[0], false);
	assert_false(s[0].held);
	arl_http_throttle_release(t, &s[0], false); /* not held: a no-op */
	assert_int_equal(IN_FLIGHT(t), 2);
	take(t, &s[3]);
	for (int i = 1; i < 4; i++)
		arl_http_throttle_release(t, &s[i], true);
	assert_int_equal(IN_FLIGHT(t), 0);
	assert_int_equal(WINDOW(t), 3); /* never past its max */
	arl_http_throttle_free(t);

	/* A window of at least 1, and a NULL throttle that never limits. */
	t = arl_http_throttle_new(0, NULL, NULL);
	assert_int_equal(WINDOW(t), 1);
	arl_http_throttle_free(t);
	take(NULL, &s[0]);
	assert_false(arl_http_throttle_refused(NULL, &s[0]));
	arl_http_throttle_release(NULL, &s[0], true);
	assert_false(s[0].held);
}

/* @n requests in a row, one at a time, refused (or answered) once each. */
static void run_requests(struct arl_http_throttle *t, int n, bool refused)
{
	for (int i = 0; i < n; i++) {
		struct arl_http_throttle_slot s = ARL_HTTP_THROTTLE_SLOT_INIT;

		take(t, &s);
		if (refused)
			arl_http_throttle_refused(t, &s);
		arl_http_throttle_release(t, &s, !refused);
	}
}

static void test_stray_refusals_do_not_shrink_it(void **state)
{
	struct arl_http_throttle *t = arl_http_throttle_new(8, on_change, events);

	(void)state;
	/* One try in five refused, for a long while: retries absorb that, the window stays. */
	for (int i = 0; i < 200; i++) {
		run_requests(t, 1, true);
		run_requests(t, 4, false);
	}
	assert_int_equal(WINDOW(t), 8);
	assert_int_equal(stats_of(t).decreases, 0);
	/* After a quiet spell, three refusals in a row are not yet "refusing"; the fourth is. */
	run_requests(t, 30, false);
	run_requests(t, 3, true);
	assert_int_equal(WINDOW(t), 8);
	run_requests(t, 1, true);
	assert_int_equal(WINDOW(t), 4);
	assert_string_equal(events, "SHRANK 8 4;");
	arl_http_throttle_free(t);
}

static void test_refusals_halve_once_per_round(void **state)
{
	struct arl_http_throttle *t = arl_http_throttle_new(8, on_change, events);
	struct arl_http_throttle_slot s[8];
	int over = 0;

	(void)state;
	for (int i = 0; i < 8; i++) {
		s[i] = (struct arl_http_throttle_slot)ARL_HTTP_THROTTLE_SLOT_INIT;
		take(t, &s[i]);
	}
	/*
	 * An outage hits all eight tries, sent under the same window: the fourth refusal shows
	 * the server refusing and halves the window, the four after it are old news.
	 */
	for (int i = 0; i < 8; i++) {
		over += arl_http_throttle_refused(t, &s[i]);
		assert_int_equal(WINDOW(t), i < 3 ? 8 : 4);
	}
	assert_int_equal(stats_of(t).decreases, 1);
	assert_int_equal(over, 5); /* 8 in flight, room for 4: told to step back from then on */
	assert_string_equal(events, "SHRANK 8 4;");
	/* Four give their slot up; the others retry under the new window... */
	for (int i = 4; i < 8; i++)
		arl_http_throttle_release(t, &s[i], false);
	assert_false(arl_http_throttle_refused(t, &s[0])); /* stale: still 4, and 4 fit */
	assert_int_equal(WINDOW(t), 4);
	for (int i = 0; i < 4; i++)
		arl_http_throttle_sent(t, &s[i]);
	/* ... and refusals of those tries are news: halve again, and again, to 1, not 0. */
	assert_true(arl_http_throttle_refused(t, &s[0]));
	assert_int_equal(WINDOW(t), 2);
	assert_true(arl_http_throttle_refused(t, &s[1])); /* sent before the last halving */
	assert_int_equal(WINDOW(t), 2);
	arl_http_throttle_sent(t, &s[2]);
	assert_true(arl_http_throttle_refused(t, &s[2]));
	assert_int_equal(WINDOW(t), 1);
	arl_http_throttle_sent(t, &s[3]);
	arl_http_throttle_refused(t, &s[3]);
	assert_int_equal(WINDOW(t), 1);
	assert_int_equal(stats_of(t).decreases, 3);
	assert_string_equal(events, "SHRANK 8 4;FLOOR 2 1;");
	for (int i = 0; i < 4; i++)
		arl_http_throttle_release(t, &s[i], false);
	assert_int_equal(WINDOW(t), 1); /* giving up is no success */
	assert_int_equal(IN_FLIGHT(t), 0);
	arl_http_throttle_free(t);
}

static void test_successes_grow_it_back(void **state)
{
	struct arl_http_throttle *t = arl_http_throttle_new(4, on_change, events);
	struct arl_http_throttle_slot s = ARL_HTTP_THROTTLE_SLOT_INIT;
	/* Successes needed to reach window w+1 from w: w of them (congestion avoidance). */
	static const int need[] = {0, 1, 2, 3};

	(void)state;
	run_requests(t, 5, true); /* the 4th halves, the 5th (sent after) halves again */
	assert_int_equal(WINDOW(t), 1);
	assert_string_equal(events, "SHRANK 4 2;FLOOR 2 1;");
	/* Up to 2 and down to 1 again: the same episode, not worth another line. */
	take(t, &s);
	arl_http_throttle_release(t, &s, true);
	assert_int_equal(WINDOW(t), 2);
	take(t, &s);
	assert_false(arl_http_throttle_refused(t, &s));
	arl_http_throttle_release(t, &s, false);
	assert_int_equal(WINDOW(t), 1);
	assert_string_equal(events, "SHRANK 4 2;FLOOR 2 1;");
	for (int w = 1; w < 4; w++) {
		for (int i = 0; i < need[w]; i++) {
			assert_int_equal(WINDOW(t), w);
			take(t, &s);
			arl_http_throttle_release(t, &s, true);
		}
		assert_int_equal(WINDOW(t), w + 1);
	}
	assert_string_equal(events, "SHRANK 4 2;FLOOR 2 1;RECOVERED 1 4;");
	for (int i = 0; i < 20; i++) {
		take(t, &s);
		arl_http_throttle_release(t, &s, true);
	}
	assert_int_equal(WINDOW(t), 4); /* capped */
	assert_int_equal(stats_of(t).increases, 4);
	assert_int_equal(stats_of(t).decreases, 3);
	/* A new episode is reported again. */
	run_requests(t, 4, true);
	assert_string_equal(events, "SHRANK 4 2;FLOOR 2 1;RECOVERED 1 4;SHRANK 4 2;");
	arl_http_throttle_free(t);
}

/* --- waiting ------------------------------------------------------------------------- */

struct waiter_arg {
	struct arl_http_throttle *t;
	int64_t deadline_ms;
	int cancel_fd;
	enum arl_http_throttle_wait rc;
	atomic_int *order; /* the next position to hand out */
	int position;      /* the order in which it got its slot */
	bool keep;         /* hold the slot when returning */
	struct arl_http_throttle_slot slot;
};

static void *waiter_main(void *p)
{
	struct waiter_arg *a = p;

	a->rc = arl_http_throttle_acquire(a->t, &a->slot, a->deadline_ms, a->cancel_fd);
	if (a->rc == ARL_HTTP_THROTTLE_OK) {
		if (a->order)
			a->position = atomic_fetch_add(a->order, 1);
		if (!a->keep)
			arl_http_throttle_release(a->t, &a->slot, true);
	}
	return NULL;
}

/* Starts a waiter_main thread on @a for @t; @order and @keep as in struct waiter_arg. */
static void start_waiter(struct waiter_arg *a, pthread_t *th, struct arl_http_throttle *t,
                         int64_t deadline_ms, int cancel_fd, atomic_int *order, bool keep)
{
	memset(a, 0, sizeof(*a));
	a->t = t;
	a->deadline_ms = deadline_ms;
	a->cancel_fd = cancel_fd;
	a->order = order;
	a->keep = keep;
	assert_int_equal(pthread_create(th, NULL, waiter_main, a), 0);
}

/* Until @n threads wait in @t (a hang here is the failure; ctest's timeout reports it). */
static void until_waiting(struct arl_http_throttle *t, int n)
{
	while (stats_of(t).waiting != n)
		usleep(1000);
}

/* Until @order has handed out more than @n positions. */
static void until_order(atomic_int *order, int n)
{
	while (atomic_load(order) <= n)
		usleep(1000);
}

static void test_waiters_wake_in_order(void **state)
{
	/* The clock stands still: no deadline can explain a return. */
	struct arl_http_throttle *t = new_on_test_clock(1, 0, 0);
	struct arl_http_throttle_slot mine = ARL_HTTP_THROTTLE_SLOT_INIT;
	struct waiter_arg a[3];
	pthread_t th[3];
	atomic_int order;

	(void)state;
	atomic_init(&order, 0);
	take(t, &mine);
	for (int i = 0; i < 3; i++) {
		start_waiter(&a[i], &th[i], t, 10000, -1, &order, true);
		until_waiting(t, i + 1); /* so that the arrival order is known */
	}
	assert_int_equal(atomic_load(&order), 0); /* nobody got past the full window */
	assert_int_equal(IN_FLIGHT(t), 1);
	arl_http_throttle_release(t, &mine, true);
	/* One slot: each gets it in turn, in arrival order, as the previous one lets go. */
	for (int i = 0; i < 3; i++) {
		until_order(&order, i);
		assert_int_equal(atomic_load(&order), i + 1);
		pthread_join(th[i], NULL);
		assert_int_equal(a[i].rc, ARL_HTTP_THROTTLE_OK);
		assert_int_equal(a[i].position, i);
		assert_int_equal(IN_FLIGHT(t), 1);
		arl_http_throttle_release(t, &a[i].slot, true);
	}
	assert_int_equal(stats_of(t).waiting, 0);
	assert_int_equal(IN_FLIGHT(t), 0);
	arl_http_throttle_free(t);
}

static void test_cancel_wakes_waiters(void **state)
{
	/* The clock stands still: only the cancel can explain a return. */
	struct arl_http_throttle *t = new_on_test_clock(1, 0, 0);
	struct arl_http_throttle_slot mine = ARL_HTTP_THROTTLE_SLOT_INIT;
	struct waiter_arg a[2];
	pthread_t th[2];
	int cancel[2];

	(void)state;
	assert_int_equal(pipe2(cancel, O_CLOEXEC), 0);
	take(t, &mine);
	for (int i = 0; i < 2; i++) {
		start_waiter(&a[i], &th[i], t, 4000 + 1000 * i, cancel[0], NULL, false);
	}
	until_waiting(t, 2);
	assert_int_equal(write(cancel[1], "x", 1), 1);
	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(a[i].rc, ARL_HTTP_THROTTLE_CANCELLED);
		assert_false(a[i].slot.held);
	}
	assert_int_equal(stats_of(t).waiting, 0);
	assert_int_equal(IN_FLIGHT(t), 1);
	/* Already cancelled: a full window answers at once. */
	assert_int_equal(arl_http_throttle_acquire(t, &a[0].slot, 0, cancel[0]),
	                 ARL_HTTP_THROTTLE_CANCELLED);
	arl_http_throttle_release(t, &mine, false);
	close(cancel[0]);
	close(cancel[1]);
	arl_http_throttle_free(t);
}

/* A waiter that times out leaves the queue: the one behind it is not stuck. */
static void test_timed_out_head_does_not_block_the_queue(void **state)
{
	struct arl_http_throttle *t = new_on_test_clock(1, 0, 0);
	struct arl_http_throttle_slot mine = ARL_HTTP_THROTTLE_SLOT_INIT;
	struct waiter_arg a[2];
	pthread_t th[2];

	(void)state;
	take(t, &mine);
	for (int i = 0; i < 2; i++) {
		start_waiter(&a[i], &th[i], t, i == 0 ? 200 : 10000, -1, NULL, false);
		until_waiting(t, i + 1);
	}
	/* Both queued; now the head's deadline (and only the head's) passes. */
	atomic_store(&fake_clock_ms, 200);
	pthread_join(th[0], NULL);
	assert_int_equal(a[0].rc, ARL_HTTP_THROTTLE_TIMEOUT);
	until_waiting(t, 1);
	arl_http_throttle_release(t, &mine, true);
	pthread_join(th[1], NULL);
	assert_int_equal(a[1].rc, ARL_HTTP_THROTTLE_OK);
	assert_int_equal(IN_FLIGHT(t), 0);
	arl_http_throttle_free(t);
}

/* Many threads hammering one throttle: in flight never exceeds the window (TSan: no race). */
struct hammer_arg {
	struct arl_http_throttle *t;
	atomic_int *inside, *peak;
	int id;
};

static void *hammer_main(void *p)
{
	struct hammer_arg *h = p;

	for (int i = 0; i < 200; i++) {
		struct arl_http_throttle_slot s = ARL_HTTP_THROTTLE_SLOT_INIT;
		struct arl_http_throttle_stats st;
		int now;

		if (arl_http_throttle_acquire(h->t, &s, 0, -1) != ARL_HTTP_THROTTLE_OK)
			continue;
		arl_http_throttle_sent(h->t, &s);
		now = atomic_fetch_add(h->inside, 1) + 1;
		for (int p0 = atomic_load(h->peak); now > p0;)
			if (atomic_compare_exchange_weak(h->peak, &p0, now))
				break;
		arl_http_throttle_get_stats(h->t, &st);
		/* Refused at first, then answered: the window moves while others hold slots. */
		if (i < 50 && arl_http_throttle_refused(h->t, &s)) {
			atomic_fetch_sub(h->inside, 1);
			arl_http_throttle_release(h->t, &s, false);
			continue;
		}
		atomic_fetch_sub(h->inside, 1);
		arl_http_throttle_release(h->t, &s, i >= 50);
	}
	return NULL;
}

static void test_threads_stay_within_the_maximum(void **state)
{
	struct arl_http_throttle *t = arl_http_throttle_new(4, on_change, events);
	struct hammer_arg h[8];
	pthread_t th[8];
	atomic_int inside, peak;

	(void)state;
	atomic_init(&inside, 0);
	atomic_init(&peak, 0);
	for (int i = 0; i < 8; i++) {
		h[i] = (struct hammer_arg){t, &inside, &peak, i};
		assert_int_equal(pthread_create(&th[i], NULL, hammer_main, &h[i]), 0);
	}
	for (int i = 0; i < 8; i++)
		pthread_join(th[i], NULL);
	assert_true(atomic_load(&peak) >= 1);
	assert_true(atomic_load(&peak) <= 4);
	assert_int_equal(IN_FLIGHT(t), 0);
	assert_int_equal(stats_of(t).waiting, 0);
	assert_true(stats_of(t).decreases >= 1);
	assert_true(stats_of(t).increases >= 1);
	assert_true(WINDOW(t) >= 1 && WINDOW(t) <= 4);
	arl_http_throttle_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_window_bounds_slots, setup, NULL),
	    cmocka_unit_test_setup_teardown(test_stray_refusals_do_not_shrink_it, setup, NULL),
	    cmocka_unit_test_setup_teardown(test_refusals_halve_once_per_round, setup, NULL),
	    cmocka_unit_test_setup_teardown(test_successes_grow_it_back, setup, NULL),
	    cmocka_unit_test_setup_teardown(test_waiters_wake_in_order, setup, NULL),
	    cmocka_unit_test_setup_teardown(test_cancel_wakes_waiters, setup, NULL),
	    cmocka_unit_test_setup_teardown(test_timed_out_head_does_not_block_the_queue, setup,
	                                    NULL),
	    cmocka_unit_test_setup_teardown(test_threads_stay_within_the_maximum, setup, NULL),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
