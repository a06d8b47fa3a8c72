/*
 * DESIGN: the counters live in one struct under one mutex (lock order: log.c's mutex, then
 * p->mu; nothing is called with p->mu held that could take another). The run's main thread updates them from the scheduler's hooks; a progress thread
 * wakes every 200 ms to redraw the bar (the elapsed time, the rate and the ages of the
 * running jobs change even when no job does) or, in plain mode, to print a status line when
 * one is due. Every byte this module writes goes out under the mutex with one write() per
 * frame, so a message, a job line and a redraw can never interleave. While the bar is up it
 * is the log's sink (log.h): a message from any thread, a backend's worker included, clears
 * the bar, prints and redraws under that mutex instead of landing in the middle of the bar.
 *
 * The bar is one line that never reaches the last column (a line that does makes some
 * terminals wrap at once, and the next "\r" would then return to the wrong row). The width
 * is read again on every redraw, which is all a resize needs; no SIGWINCH handler, because
 * the run's signal handling is a self-pipe for INT/TERM/HUP only. When the terminal got
 * narrower than the line last drawn, terminals that reflow (tmux, VTE, kitty, iTerm2) have
 * wrapped it over several rows: the clear then moves up over them first.
 */
#include "run/progress.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "view/store_view.h"
#include "util.h"
#include "banned.h"

#define TICK_MS       200
#define DEFAULT_EVERY 30000
#define LONGEST_SHOWN 3
#define BAR_MAX_COLS  30
#define CLEAR_EOL     "\033[K"

enum slot_state { IDLE, RUNNING, BACKOFF, DONE };

struct slot {
	const char *key;   /* borrowed from the caller until the job is done */
	int64_t job_since; /* p->clock's time of the first attempt's start */
	enum slot_state state;
	size_t pos; /* index in p->running while RUNNING */
};

struct arl_progress {
	pthread_mutex_t mu; /* lock order: log.c's mutex (the sink), then mu */
	pthread_cond_t cv;  /* signalled to stop the thread */
	pthread_t thread;
	bool has_thread, stopping;

	enum arl_progress_mode mode;
	bool color;
	int fd;
	int concurrency;
	int64_t started, status_every, next_status;
	struct arl_clock clock;

	size_t total, done, ok, failed, cancelled, by_class[5];
	size_t retrying;
	struct slot *slots;
	size_t nslots;
	size_t *running; /* slots with an attempt in flight, unordered */
	size_t nrunning;
	int64_t dur_sum; /* durations of the jobs finished so far, for the ETA */
	size_t dur_n, finished_here;

	bool drawn;           /* a bar is on the screen */
	size_t drawn_cols;    /* its width in columns */
	struct arl_buf frame; /* reused for every write */
};

int arl_progress_parse_mode(const char *s, enum arl_progress_mode *out)
{
	static const char *const names[] = {"auto", "bar", "plain", "none"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!strcmp(s, names[i])) {
			*out = (enum arl_progress_mode)i;
			return 0;
		}
	}
	return -1;
}

int arl_progress_parse_color(const char *s, enum arl_color_mode *out)
{
	static const char *const names[] = {"auto", "always", "never"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!strcmp(s, names[i])) {
			*out = (enum arl_color_mode)i;
			return 0;
		}
	}
	return -1;
}

int arl_progress_use_color(enum arl_color_mode mode, int fd)
{
	const char *nc = getenv("NO_COLOR");

	if (mode == ARL_COLOR_ALWAYS)
		return 1;
	if (mode == ARL_COLOR_NEVER)
		return 0;
	/* https://no-color.org: set and not empty disables colour. */
	return isatty(fd) && !(nc && *nc);
}

/* ---- text helpers ---- */

/* Appends @s cut to @w columns (an ellipsis marks a cut); control characters as spaces. */
static void add_cut(struct arl_buf *b, const char *s, size_t w)
{
	size_t n = arl_utf8_cols(s) <= w ? strlen(s) : arl_utf8_prefix(s, w ? w - 1 : 0);
	size_t start = b->len;

	arl_buf_add(b, s, n);
	for (size_t i = start; i < b->len; i++)
		if ((unsigned char)b->p[i] < 0x20 || b->p[i] == 0x7f)
			b->p[i] = ' ';
	if (n < strlen(s) && w)
		arl_buf_addstr(b, "\u2026");
}

/* Coarse clock time for the bar: "9s", "1m05s", "2h03m". */
static const char *fmt_clock(int64_t ms, char *buf, size_t len)
{
	int64_t s = ms / 1000;

	if (s < 60)
		snprintf(buf, len, "%llds", (long long)s);
	else if (s < 3600)
		snprintf(buf, len, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
	else
		snprintf(buf, len, "%lldh%02lldm", (long long)(s / 3600), (long long)(s / 60 % 60));
	return buf;
}

static unsigned term_cols(int fd)
{
	struct winsize ws;
	const char *env = getenv("COLUMNS");
	int64_t n;

	if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	if (env && arl_parse_i64(env, 10, 10000, &n) == 0)
		return (unsigned)n;
	return 80;
}

/* Writes the frame whole; a terminal that is gone (EIO, EPIPE) is simply not drawn on. */
static void flush_frame(struct arl_progress *p)
{
	const char *s = p->frame.p;
	size_t n = p->frame.len;

	while (n) {
		ssize_t w = write(p->fd, s, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		s += w;
		n -= (size_t)w;
	}
	arl_buf_reset(&p->frame);
}

/* ---- the numbers ---- */

struct snapshot {
	int64_t now, elapsed;
	double rate; /* jobs finished per second */
	int64_t eta; /* ms; -1: unknown */
	size_t longest[LONGEST_SHOWN], nlongest;
};

static void take_snapshot(const struct arl_progress *p, struct snapshot *s)
{
	size_t remaining = p->total - p->done;

	memset(s, 0, sizeof(*s));
	s->now = arl_clock_now(&p->clock);
	s->elapsed = s->now - p->started;
	s->rate = s->elapsed > 0 ? (double)p->finished_here * 1000.0 / (double)s->elapsed : 0;
	s->eta = -1;
	if (p->dur_n && remaining) {
		/*
		 * From the durations seen so far: the remaining jobs' work at the mean
		 * duration, less what the running ones have already done, spread over the
		 * slots that will be busy. Throughput alone (remaining / rate) would be wrong
		 * for the first minutes of a run whose jobs all take longer than that.
		 */
		double mean = (double)p->dur_sum / (double)p->dur_n;
		double work = mean * (double)remaining;
		size_t par =
		    remaining < (size_t)p->concurrency ? remaining : (size_t)p->concurrency;

		for (size_t i = 0; i < p->nrunning; i++) {
			double age = (double)(s->now - p->slots[p->running[i]].job_since);

			work -= age < mean ? age : mean;
		}
		s->eta = (int64_t)((work > 0 ? work : 0) / (double)(par ? par : 1));
	}
	/* The few oldest running jobs: a partial selection, the list is short. */
	for (size_t i = 0; i < p->nrunning; i++) {
		size_t slot = p->running[i], k = s->nlongest;

		if (k < LONGEST_SHOWN)
			s->nlongest++;
		else if (p->slots[slot].job_since >= p->slots[s->longest[k - 1]].job_since)
			continue;
		else
			k--;
		while (k > 0 && p->slots[s->longest[k - 1]].job_since > p->slots[slot].job_since) {
			s->longest[k] = s->longest[k - 1];
			k--;
		}
		s->longest[k] = slot;
	}
}

/* ---- the bar ---- */

struct seg {
	char text[160];
	const char *color;
	int prio; /* the lowest goes first when the line is too wide */
	bool on;
};

static void seg_set(struct seg *s, int prio, const char *color, const char *fmt, ...)
    ARL_PRINTF(4, 5);

static void seg_set(struct seg *s, int prio, const char *color, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->text, sizeof(s->text), fmt, ap);
	va_end(ap);
	s->color = color;
	s->prio = prio;
	s->on = true;
}

static void add_colored(struct arl_progress *p, const char *color, const char *text, size_t w)
{
	if (p->color && color)
		arl_buf_addstr(&p->frame, color);
	add_cut(&p->frame, text, w);
	if (p->color && color)
		arl_buf_addstr(&p->frame, ARL_VIEW_RESET);
}

/*
 * "failed 3 (2 timeout, 1 infra)" for the bar, "3 failed (...)" for a sentence; the class
 * breakdown only when it says more.
 */
static void failed_text(const struct arl_progress *p, char *buf, size_t len, bool detail,
                        bool sentence)
{
	static const enum arl_class classes[] = {ARL_CLASS_FAILED, ARL_CLASS_TIMEOUT,
	                                         ARL_CLASS_INFRA};
	size_t o = (size_t)snprintf(buf, len, sentence ? "%zu failed" : "failed %zu", p->failed);
	int shown = 0;

	/* "failed 2 (2 failed)" says nothing more: break down only when classes differ. */
	if (!detail || !p->failed || p->by_class[ARL_CLASS_FAILED] == p->failed)
		return;
	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]) && o < len; i++) {
		if (!p->by_class[classes[i]])
			continue;
		o += (size_t)snprintf(buf + o, len - o, "%s%zu %s", shown++ ? ", " : " (",
		                      p->by_class[classes[i]], arl_class_name(classes[i]));
	}
	if (shown && o < len)
		snprintf(buf + o, len - o, ")");
}

/* Appends the bar's line (no "\r", no erase) fitted to @width columns; returns its width. */
static size_t render_bar(struct arl_progress *p, size_t width)
{
	enum {
		S_COUNT,
		S_OK,
		S_FAILED,
		S_CANCELLED,
		S_RUNNING,
		S_RETRYING,
		S_RATE,
		S_ELAPSED,
		S_ETA,
		NSEGS
	};
	struct seg seg[NSEGS] = {{{0}, NULL, 0, false}};
	struct snapshot s;
	char t1[32], fbuf[160];
	size_t total = 0, nshown = 0, used, barw = 0;

	take_snapshot(p, &s);
	seg_set(&seg[S_COUNT], 100, ARL_VIEW_BOLD, "%zu/%zu", p->done, p->total);
	seg_set(&seg[S_OK], 90, ARL_VIEW_GREEN, "ok %zu", p->ok);
	failed_text(p, fbuf, sizeof(fbuf), true, false);
	seg_set(&seg[S_FAILED], 85, p->failed ? ARL_VIEW_RED : NULL, "%s", fbuf);
	if (p->cancelled)
		seg_set(&seg[S_CANCELLED], 60, ARL_VIEW_YELLOW, "cancelled %zu", p->cancelled);
	seg_set(&seg[S_RUNNING], 80, ARL_VIEW_CYAN, "running %zu", p->nrunning);
	if (p->retrying)
		seg_set(&seg[S_RETRYING], 70, ARL_VIEW_YELLOW, "retrying %zu", p->retrying);
	seg_set(&seg[S_RATE], 40, NULL, "%.*f/s", s.rate < 10 ? 2 : 1, s.rate);
	seg_set(&seg[S_ELAPSED], 50, NULL, "elapsed %s", fmt_clock(s.elapsed, t1, sizeof(t1)));
	if (s.eta >= 0)
		seg_set(&seg[S_ETA], 65, NULL, "ETA %s", fmt_clock(s.eta, t1, sizeof(t1)));
	else if (p->done < p->total)
		seg_set(&seg[S_ETA], 65, ARL_VIEW_DIM, "ETA ?");

	for (;;) {
		int low = -1;

		total = 0;
		nshown = 0;
		for (int i = 0; i < NSEGS; i++) {
			if (!seg[i].on)
				continue;
			total += arl_utf8_cols(seg[i].text) + (nshown++ ? 2 : 0);
			if (low < 0 || seg[i].prio < seg[low].prio)
				low = i;
		}
		if (total <= width || nshown <= 1)
			break;
		/* Before dropping a segment, lose the class breakdown of the failed count. */
		if (p->failed && strchr(seg[S_FAILED].text, '(') && seg[S_FAILED].prio > 35) {
			failed_text(p, seg[S_FAILED].text, sizeof(seg[S_FAILED].text), false,
			            false);
			continue;
		}
		seg[low].on = false;
	}
	used = total;
	/*
	 * The graphic: a fifth of the width, so that it does not jump as the numbers grow,
	 * and only when the numbers leave room for it.
	 */
	barw = width / 5 > BAR_MAX_COLS ? BAR_MAX_COLS : width / 5;
	if (barw >= 8 && width >= used + barw + 1) {
		size_t inner = barw - 2,
		       fill = p->total
		                  ? (size_t)((double)inner * (double)p->done / (double)p->total)
		                  : inner;

		arl_buf_addstr(&p->frame, "[");
		if (p->color)
			arl_buf_addstr(&p->frame, ARL_VIEW_GREEN);
		for (size_t i = 0; i < fill; i++)
			arl_buf_addstr(&p->frame, "=");
		if (p->color)
			arl_buf_addstr(&p->frame, ARL_VIEW_RESET);
		arl_buf_addf(&p->frame, "%*s] ", (int)(inner - fill), "");
		used += barw + 1;
	}
	nshown = 0;
	for (int i = 0; i < NSEGS; i++) {
		if (!seg[i].on)
			continue;
		if (nshown++)
			arl_buf_addstr(&p->frame, "  ");
		add_colored(p, seg[i].color, seg[i].text, sizeof(seg[i].text));
	}
	/* The longest-running jobs get the rest of the line, cut to fit. */
	if (s.nlongest && width > used + 2 + 14) {
		struct arl_buf l = ARL_BUF_INIT;
		size_t room = width - used - 2;

		arl_buf_addstr(&l, "longest:");
		for (size_t i = 0; i < s.nlongest; i++)
			arl_buf_addf(
			    &l, "%s %s %s", i ? "," : "", p->slots[s.longest[i]].key,
			    fmt_clock(s.now - p->slots[s.longest[i]].job_since, t1, sizeof(t1)));
		arl_buf_addstr(&p->frame, "  ");
		add_colored(p, ARL_VIEW_DIM, l.p, room);
		used += 2 + (arl_utf8_cols(l.p) < room ? arl_utf8_cols(l.p) : room);
		arl_buf_release(&l);
	}
	return used;
}

/* Appends what erases the bar on the screen (the cursor ends at column 0 of its row). */
static void add_clear(struct arl_progress *p, unsigned cols)
{
	if (!p->drawn)
		return;
	if (cols > 0 && p->drawn_cols > cols) {
		/*
		 * Drawn wider than the terminal is now: a reflowing terminal wrapped it, and
		 * the cursor is on its last row. "\033[0A" would still move one row up.
		 */
		size_t up = (p->drawn_cols - 1) / cols;

		arl_buf_addf(&p->frame, "\r\033[%zuA\033[J", up);
	} else {
		arl_buf_addstr(&p->frame, "\r" CLEAR_EOL);
	}
	p->drawn = false;
}

static void draw(struct arl_progress *p)
{
	unsigned cols = term_cols(p->fd);
	size_t width = cols > 1 ? cols - 1 : 1;

	add_clear(p, cols);
	p->drawn_cols = render_bar(p, width);
	p->drawn = true;
	flush_frame(p);
}

/* ---- plain mode ---- */

static void add_status_line(struct arl_progress *p)
{
	struct snapshot s;
	char t1[32], t2[32], fbuf[160];

	take_snapshot(p, &s);
	failed_text(p, fbuf, sizeof(fbuf), true, true);
	arl_buf_addf(&p->frame,
	             ARL_LOG_PREFIX "status: %zu/%zu done, %zu succeeded, %s, %zu cancelled, %zu "
	                            "running, %zu retrying, %.2f jobs/s, elapsed %s, ETA %s",
	             p->done, p->total, p->ok, fbuf, p->cancelled, p->nrunning, p->retrying, s.rate,
	             fmt_clock(s.elapsed, t1, sizeof(t1)),
	             s.eta >= 0 ? fmt_clock(s.eta, t2, sizeof(t2)) : "unknown");
	for (size_t i = 0; i < s.nlongest; i++) {
		arl_buf_addf(&p->frame, "%s", i ? ", " : "; longest running: ");
		add_cut(&p->frame, p->slots[s.longest[i]].key, 200);
		arl_buf_addf(&p->frame, " (%s)",
		             fmt_clock(s.now - p->slots[s.longest[i]].job_since, t1, sizeof(t1)));
	}
	arl_buf_addstr(&p->frame, "\n");
}

/* ---- the thread ---- */

static void *progress_main(void *arg)
{
	struct arl_progress *p = arg;
	sigset_t all;

	/* Signals belong to the run's self-pipe on the main thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_mutex_lock(&p->mu);
	while (!p->stopping) {
		int64_t wait = p->mode == ARL_PROGRESS_BAR
		                   ? TICK_MS
		                   : p->next_status - arl_clock_now(&p->clock);

		/* Spurious wake-ups only cause an early redraw. */
		if (wait > 0)
			arl_cond_wait_until(&p->cv, &p->mu, arl_now_ms() + wait);
		if (p->stopping)
			break;
		if (p->mode == ARL_PROGRESS_BAR) {
			draw(p);
		} else if (arl_clock_now(&p->clock) >= p->next_status) {
			if (p->done < p->total) {
				add_status_line(p);
				flush_frame(p);
			}
			p->next_status = arl_clock_now(&p->clock) + p->status_every;
		}
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static int64_t status_interval(const struct arl_progress_opts *o)
{
	const char *env = getenv("ARL_BATCH_STATUS_EVERY");
	int64_t ms;

	if (o->status_every)
		return o->status_every;
	if (env && *env && arl_parse_duration(env, &ms) == 0 && ms > 0)
		return ms;
	return DEFAULT_EVERY;
}

static arl_log_sink_fn log_sink;

int arl_progress_new(struct arl_progress **out, const struct arl_progress_opts *o,
                     struct arl_err *err)
{
	struct arl_progress *p = arl_xcalloc(1, sizeof(*p));
	const char *term = getenv("TERM");
	int rc;

	p->mode = o->mode;
	if (p->mode == ARL_PROGRESS_AUTO)
		p->mode = isatty(o->fd) && !(term && !strcmp(term, "dumb")) ? ARL_PROGRESS_BAR
		                                                            : ARL_PROGRESS_PLAIN;
	p->color = arl_progress_use_color(o->color, o->fd);
	p->fd = o->fd;
	p->total = o->total;
	p->done = p->ok = o->skipped; /* skipped jobs count as succeeded (docs/cli.md) */
	p->nslots = o->nslots;
	p->slots = arl_xcalloc(o->nslots ? o->nslots : 1, sizeof(*p->slots));
	p->running = arl_xcalloc(o->nslots ? o->nslots : 1, sizeof(*p->running));
	p->concurrency = o->concurrency > 0 ? o->concurrency : 1;
	p->clock = o->clock;
	p->started = arl_clock_now(&p->clock);
	p->status_every = status_interval(o);
	p->next_status = p->started + p->status_every;
	pthread_mutex_init(&p->mu, NULL);
	arl_cond_init_monotonic(&p->cv);
	if (p->mode == ARL_PROGRESS_BAR || (p->mode == ARL_PROGRESS_PLAIN && p->status_every > 0)) {
		if ((rc = pthread_create(&p->thread, NULL, progress_main, p)) != 0) {
			arl_error_errno(err, rc, "cannot start the progress thread");
			arl_progress_free(p);
			return -1;
		}
		p->has_thread = true;
	}
	if (p->mode == ARL_PROGRESS_BAR)
		arl_log_set_sink(log_sink, p);
	*out = p;
	return 0;
}

void arl_progress_free(struct arl_progress *p)
{
	if (!p)
		return;
	if (p->mode == ARL_PROGRESS_BAR)
		arl_log_set_sink(NULL, NULL); /* returns once no message is being drawn */
	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	if (p->has_thread)
		pthread_join(p->thread, NULL);
	/* Leave the line empty for the summary: the last frame is history. */
	add_clear(p, term_cols(p->fd));
	flush_frame(p);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	arl_buf_release(&p->frame);
	free(p->slots);
	free(p->running);
	free(p);
}

enum arl_progress_mode arl_progress_mode(const struct arl_progress *p)
{
	return p ? p->mode : ARL_PROGRESS_NONE;
}

/* ---- events ---- */

static void set_running(struct arl_progress *p, struct slot *s, size_t slot, bool on)
{
	if (on && s->state != RUNNING) {
		s->pos = p->nrunning;
		p->running[p->nrunning++] = slot;
	} else if (!on && s->state == RUNNING) {
		/* Swap-remove: the list is unordered. */
		size_t last = p->running[--p->nrunning];

		p->running[s->pos] = last;
		p->slots[last].pos = s->pos;
	}
}

static void set_state(struct arl_progress *p, size_t slot, enum slot_state st)
{
	struct slot *s = &p->slots[slot];

	set_running(p, s, slot, st == RUNNING);
	if (s->state == BACKOFF && st != BACKOFF)
		p->retrying--;
	if (st == BACKOFF && s->state != BACKOFF)
		p->retrying++;
	s->state = st;
}

void arl_progress_job_start(struct arl_progress *p, size_t slot, const char *key)
{
	if (!p || slot >= p->nslots)
		return;
	pthread_mutex_lock(&p->mu);
	p->slots[slot].key = key;
	p->slots[slot].job_since = arl_clock_now(&p->clock);
	pthread_mutex_unlock(&p->mu);
}

void arl_progress_attempt_start(struct arl_progress *p, size_t slot, int number)
{
	(void)number;
	if (!p || slot >= p->nslots)
		return;
	pthread_mutex_lock(&p->mu);
	set_state(p, slot, RUNNING);
	pthread_mutex_unlock(&p->mu);
}

void arl_progress_attempt_done(struct arl_progress *p, size_t slot)
{
	if (!p || slot >= p->nslots)
		return;
	pthread_mutex_lock(&p->mu);
	set_state(p, slot, IDLE);
	pthread_mutex_unlock(&p->mu);
}

/* Adds a message line to the frame, erasing the bar first; the caller redraws. */
static void add_line_above(struct arl_progress *p)
{
	add_clear(p, term_cols(p->fd));
}

static void finish_lines(struct arl_progress *p)
{
	if (p->mode == ARL_PROGRESS_BAR && p->has_thread && !p->stopping) {
		unsigned cols = term_cols(p->fd);

		p->drawn_cols = render_bar(p, cols > 1 ? cols - 1 : 1);
		p->drawn = true;
	}
	flush_frame(p);
}

void arl_progress_retry(struct arl_progress *p, size_t slot, int number, enum arl_class cls,
                        int64_t delay_ms)
{
	char dbuf[32];

	if (!p || slot >= p->nslots)
		return;
	pthread_mutex_lock(&p->mu);
	set_state(p, slot, BACKOFF);
	if (p->mode == ARL_PROGRESS_PLAIN) {
		const char *c = p->color ? ARL_VIEW_YELLOW : "",
		           *r = p->color ? ARL_VIEW_RESET : "";

		arl_buf_addf(&p->frame, "[%zu/%zu] %sretry%s     ", p->done, p->total, c, r);
		add_cut(&p->frame, p->slots[slot].key ? p->slots[slot].key : "?", 1000);
		arl_buf_addf(&p->frame, " (attempt %d: %s; again in %s)\n", number,
		             arl_class_name(cls) ? arl_class_name(cls) : "failed",
		             arl_fmt_duration(delay_ms, dbuf, sizeof(dbuf)));
		flush_frame(p);
	}
	pthread_mutex_unlock(&p->mu);
}

/* The log's sink while the bar is up: a message clears the bar, prints and redraws it. */
static void log_sink(void *arg, const char *text, size_t len)
{
	struct arl_progress *p = arg;

	pthread_mutex_lock(&p->mu);
	add_line_above(p);
	arl_buf_add(&p->frame, text, len);
	if (len && text[len - 1] != '\n')
		arl_buf_addstr(&p->frame, "\n"); /* the bar goes on a line of its own */
	finish_lines(p);
	pthread_mutex_unlock(&p->mu);
}

void arl_progress_job_done(struct arl_progress *p, size_t slot, const char *key,
                           const struct arl_job_result *res)
{
	const char *what, *color;
	char dbuf[32];
	int64_t dur;
	bool line;

	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	if (slot < p->nslots)
		set_state(p, slot, DONE);
	p->done++;
	p->finished_here++;
	if (res->state == ARL_STATE_SUCCEEDED)
		p->ok++;
	else if (res->state == ARL_STATE_CANCELLED)
		p->cancelled++;
	else
		p->failed++;
	if (res->state != ARL_STATE_CANCELLED)
		p->by_class[res->cls]++;
	dur = res->finished_ms > res->started_ms && res->started_ms
	          ? res->finished_ms - res->started_ms
	          : 0;
	if (res->started_ms && res->state != ARL_STATE_CANCELLED) {
		p->dur_sum += dur;
		p->dur_n++;
	}
	/*
	 * Plain mode: every job. The bar: only failures, which stay on the screen above it;
	 * successes and (after an interrupt, thousands of) cancellations are in its counts.
	 */
	line = p->mode == ARL_PROGRESS_PLAIN ||
	       (p->mode == ARL_PROGRESS_BAR && res->state == ARL_STATE_FAILED);
	if (!line) {
		pthread_mutex_unlock(&p->mu);
		return;
	}
	add_line_above(p);
	arl_fmt_duration(dur, dbuf, sizeof(dbuf));
	what = res->state == ARL_STATE_SUCCEEDED ? "ok" : arl_class_name(res->cls);
	color = !p->color                           ? NULL
	        : res->state == ARL_STATE_SUCCEEDED ? ARL_VIEW_GREEN
	        : res->state == ARL_STATE_CANCELLED ? ARL_VIEW_YELLOW
	                                            : ARL_VIEW_RED;
	arl_buf_addf(&p->frame, "[%zu/%zu] %s%-9s%s ", p->done, p->total, color ? color : "",
	             what ? what : "failed", color ? ARL_VIEW_RESET : "");
	add_cut(&p->frame, key, 1000);
	if (res->state == ARL_STATE_SUCCEEDED) {
		arl_buf_addf(&p->frame, " (%s%s)\n", dbuf,
		             res->nattempts > 1 ? ", after retries" : "");
	} else {
		arl_buf_addf(&p->frame, " (%s, %zu attempt%s)%s", dbuf, res->nattempts,
		             res->nattempts == 1 ? "" : "s", res->error ? ": " : "");
		if (res->error)
			add_cut(&p->frame, res->error, 2000);
		arl_buf_addstr(&p->frame, "\n");
	}
	finish_lines(p);
	pthread_mutex_unlock(&p->mu);
}

void arl_progress_printf(struct arl_progress *p, const char *fmt, ...)
{
	va_list ap;
	struct arl_buf msg = ARL_BUF_INIT;
	char *text;

	va_start(ap, fmt);
	text = NULL;
	if (vasprintf(&text, fmt, ap) < 0)
		text = NULL;
	va_end(ap);
	if (!text)
		return;
	arl_buf_addstr(&msg, text);
	if (!msg.len || msg.p[msg.len - 1] != '\n')
		arl_buf_addstr(&msg, "\n");
	free(text);
	if (!p) {
		arl_log_write(msg.p, msg.len);
		arl_buf_release(&msg);
		return;
	}
	pthread_mutex_lock(&p->mu);
	add_line_above(p);
	arl_buf_add(&p->frame, msg.p, msg.len);
	finish_lines(p);
	pthread_mutex_unlock(&p->mu);
	arl_buf_release(&msg);
}
