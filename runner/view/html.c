#include "view/html.h"

#include <math.h>
#include <string.h>

#include "banned.h"

/* The chart's coordinate system; the <svg> scales to the width of its box. */
#define CHART_W    1000
#define CHART_H    230
#define PLOT_L     48
#define PLOT_R     8
#define PLOT_T     10
#define PLOT_B     40
#define MAX_LABELS 10

void arl_html_escn(FILE *out, const char *s, size_t len)
{
	size_t run = 0;

	if (!s)
		return;
	/* Copy runs of harmless bytes in one fwrite; stop at each byte that needs a rewrite. */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *rep = NULL;

		switch (c) {
		case '&':
			rep = "&amp;";
			break;
		case '<':
			rep = "&lt;";
			break;
		case '>':
			rep = "&gt;";
			break;
		case '"':
			rep = "&quot;";
			break;
		case '\'':
			rep = "&#39;";
			break;
		default:
			if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)
				rep = "\xEF\xBF\xBD"; /* U+FFFD: HTML forbids C0 controls in text */
			break;
		}
		if (!rep)
			continue;
		fwrite(s + run, 1, i - run, out);
		fputs(rep, out);
		run = i + 1;
	}
	fwrite(s + run, 1, len - run, out);
}

void arl_html_esc(FILE *out, const char *s)
{
	if (s)
		arl_html_escn(out, s, strlen(s));
}

const char *arl_html_num(double v, char *buf, size_t len)
{
	if (isfinite(v) && v == floor(v) && fabs(v) < 1e15)
		snprintf(buf, len, "%.0f", v);
	else
		snprintf(buf, len, "%.4g", v);
	return buf;
}

/* A round number >= @v for the top of the y axis: 1, 2, 5 x 10^k. */
static uint64_t nice_max(uint64_t v)
{
	uint64_t p = 1;

	if (v <= 1)
		return 1;
	while (p * 10 <= v)
		p *= 10;
	if (v <= p)
		return p;
	if (v <= 2 * p)
		return 2 * p;
	if (v <= 5 * p)
		return 5 * p;
	return 10 * p;
}

void arl_html_chart(FILE *out, const struct arl_html_chart *c)
{
	const int cw = c->width > 200 ? c->width : CHART_W;
	const double pw = cw - PLOT_L - PLOT_R, ph = CHART_H - PLOT_T - PLOT_B;
	uint64_t top = 0;
	/* About one label per 90 units, so that they never overlap. */
	size_t maxl = (size_t)(pw / 90) < MAX_LABELS ? (size_t)(pw / 90) : MAX_LABELS;
	size_t every = c->nbins > maxl ? (c->nbins + maxl - 1) / maxl : 1;
	double bw = c->nbins ? pw / (double)c->nbins : pw;

	for (size_t b = 0; b < c->nbins; b++) {
		uint64_t sum = 0;

		for (size_t s = 0; s < c->nseries; s++)
			sum += c->counts[s * c->nbins + b];
		top = sum > top ? sum : top;
	}
	top = nice_max(top);
	fprintf(out, "<svg class=\"chart\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"", cw,
	        CHART_H);
	arl_html_esc(out, c->title);
	fputs("\"><title>", out);
	arl_html_esc(out, c->title);
	fputs("</title>\n", out);
	/* Grid lines and y labels at 0, the top, and half of it when that is a whole number. */
	for (int i = 0; i <= 2; i++) {
		double y = PLOT_T + ph - ph * i / 2.0;

		if (i == 1 && top % 2)
			continue;
		fprintf(out,
		        "<line class=\"grid\" x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\"/>"
		        "<text class=\"ylab\" x=\"%d\" y=\"%.1f\">%llu</text>\n",
		        PLOT_L, cw - PLOT_R, y, y, PLOT_L - 6, y + 4,
		        (unsigned long long)(top * (unsigned)i / 2));
	}
	for (size_t b = 0; b < c->nbins; b++) {
		double x = PLOT_L + bw * (double)b, y = PLOT_T + ph;

		for (size_t s = 0; s < c->nseries; s++) {
			uint64_t n = c->counts[s * c->nbins + b];
			double h = ph * (double)n / (double)top;

			if (!n)
				continue;
			y -= h;
			fprintf(out,
			        "<rect class=\"s%zu\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
			        "height=\"%.1f\"><title>",
			        s % 4, x + bw * 0.08, y, bw * 0.84, h < 0.5 ? 0.5 : h);
			arl_html_esc(out, c->bin_labels[b]);
			fprintf(out, ": %llu %s", (unsigned long long)n, c->unit ? c->unit : "");
			if (c->nseries > 1) {
				fputs(" (", out);
				arl_html_esc(out, c->series[s]);
				fputs(")", out);
			}
			fputs("</title></rect>\n", out);
		}
		if (b % every == 0) {
			fprintf(out, "<text class=\"xlab\" x=\"%.1f\" y=\"%d\">", x + bw / 2,
			        CHART_H - PLOT_B + 16);
			arl_html_esc(out, c->bin_labels[b]);
			fputs("</text>\n", out);
		}
	}
	fputs("</svg>\n", out);
	if (c->nseries > 1) {
		fputs("<div class=\"legend\">", out);
		for (size_t s = 0; s < c->nseries; s++) {
			fprintf(out, "<span><i class=\"s%zu\"></i>", s % 4);
			arl_html_esc(out, c->series[s]);
			fputs("</span>", out);
		}
		fputs("</div>\n", out);
	}
}

void arl_html_ratio_bar(FILE *out, double ratio)
{
	double w = ratio < 0 ? 0 : ratio > 1 ? 100 : ratio * 100;

	fprintf(out,
	        "<svg class=\"ratio\" viewBox=\"0 0 100 8\" preserveAspectRatio=\"none\" "
	        "aria-hidden=\"true\"><rect class=\"s1\" width=\"100\" height=\"8\"/>"
	        "<rect class=\"s0\" width=\"%.2f\" height=\"8\"/></svg>",
	        w);
}
