/*
 * Writing HTML by hand for the report: escaping and the few inline SVG charts it draws.
 * Nothing here loads anything from anywhere: the charts are plain <svg> elements styled by
 * the page's own CSS classes (s0..s3 for series, see report.c), with a <title> per bar for
 * the tooltip.
 *
 * Everything writes to a FILE the caller owns; write errors are left in the stream for the
 * caller's final ferror()/fclose() check.
 */
#ifndef ARL_HTML_H
#define ARL_HTML_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"

/*
 * Writes @s as HTML text or attribute value: & < > " ' escaped, and control characters other
 * than tab and newline (which HTML does not allow) as U+FFFD. NULL writes nothing.
 */
void arl_html_esc(FILE *out, const char *s);
void arl_html_escn(FILE *out, const char *s, size_t len);

/* A stacked bar chart: one bar per bin, one segment per series. */
struct arl_html_chart {
	const char *title; /* aria-label and <title> of the chart */
	size_t nbins, nseries;
	const char *const *bin_labels; /* nbins labels under the bars (may thin out) */
	const char *const *series;     /* nseries names, for the tooltips and the legend */
	const uint64_t *counts;        /* nseries * nbins, counts[s * nbins + b] */
	const char *unit;              /* what is counted ("jobs"), for the tooltips */
	int width;                     /* of the viewBox: about the CSS pixels the chart will
	                                * take, so that its text is drawn near its own size;
	                                * 0: 1000 */
};
void arl_html_chart(FILE *out, const struct arl_html_chart *c);

/* A small horizontal bar for a ratio in [0, 1] (pass rates in tables). */
void arl_html_ratio_bar(FILE *out, double ratio);

/* A number as text for a table or an attribute: integers without ".0", else 4 significant
 * digits ("0.8312", "1234", "1.5e+06"). */
const char *arl_html_num(double v, char *buf, size_t len);

#endif
