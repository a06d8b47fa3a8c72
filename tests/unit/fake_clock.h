/*
 * The unit tests' clock for a module's struct arl_clock: it moves only when the test stores a
 * time (or by fake_clock_step at each read), and it counts the reads, so that a test can wait
 * until the module under test has looked at it instead of sleeping for a while.
 */
#ifndef ARL_TEST_FAKE_CLOCK_H
#define ARL_TEST_FAKE_CLOCK_H

#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

static _Atomic int64_t fake_clock_ms, fake_clock_step, fake_clock_last;
static atomic_int fake_clock_reads;

/* For (struct arl_clock){fake_clock_now, NULL}. */
static inline int64_t fake_clock_now(void *arg)
{
	int64_t now = atomic_fetch_add(&fake_clock_ms, atomic_load(&fake_clock_step));

	(void)arg;
	atomic_store(&fake_clock_last, now);
	atomic_fetch_add(&fake_clock_reads, 1);
	return now;
}

/* Sets the clock to @ms and returns once it has been read @looks more times. */
static inline void fake_clock_set(int64_t ms, int looks)
{
	int reads;

	atomic_store(&fake_clock_ms, ms);
	reads = atomic_load(&fake_clock_reads);
	while (atomic_load(&fake_clock_reads) < reads + looks)
		usleep(1000);
}

#endif
