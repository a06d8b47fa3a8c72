/*
 * The HTML report of a run (`arl-batch report`): one self-contained page, no network, no
 * external scripts or fonts (a Content-Security-Policy says so to the browser too), charts
 * as inline SVG, every string from the database HTML-escaped.
 *
 * It is built to open at once for a run of 100 000 jobs: every section is an aggregate
 * computed in SQL (or a single pass over one integer column), and the only tables of jobs
 * are capped (the failed jobs, the slowest, the flips) with a count of what is not shown.
 *
 * Machine-readable numbers are in data-* attributes (on <body>, on table rows and sections)
 * so that tests and scripts can check the page against the database.
 */
#ifndef ARL_REPORT_H
#define ARL_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"
#include "store/store.h"

struct arl_report_opts {
	int64_t run_id;     /* the run to report on */
	int64_t compare_id; /* 0: no comparison; else the baseline run ("before") */
	size_t max_failed;  /* rows of the failed-jobs table; 0: 200 */
	size_t max_rows;    /* rows of the other job tables; 0: 25 */
	/*
	 * Where the stored artifacts are as seen from the report (a relative URL path to
	 * DB.artifacts, without a trailing '/'): their digests link there. NULL: listed only.
	 */
	const char *artifacts_href;
};

/*
 * Writes the report to @out (borrowed; the caller checks ferror() and closes it). Reads
 * @s only. On failure @err says which query failed and @out holds a partial page.
 */
int arl_report_write(struct arl_store *s, const struct arl_report_opts *o, FILE *out,
                     struct arl_err *err);

#endif
