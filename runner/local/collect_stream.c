/* The collector's stream (collect_stream.h). */
#include "local/collect_stream.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/collect.h"
#include "agent/protocol.h"
#include "util.h"
#include "banned.h"

static size_t header_len(unsigned char type)
{
	return type == 'B' ? 17 : 5;
}

static void stream_end(struct arl_collect_stream *st, const char *why)
{
	if (st->open)
		st->sink->end(st->sink->arg, why);
	st->open = st->begun = false;
}

static void stream_break(struct arl_collect_stream *st)
{
	stream_end(st, "the collector's output is malformed");
	st->broken = true;
}

/* Body bytes of the current record. */
static void stream_body(struct arl_collect_stream *st, const char *p, size_t n)
{
	unsigned char type = st->hdr[0];

	if (type == 'D') {
		if (st->open && st->sink->data(st->sink->arg, p, n) < 0) {
			st->sink->end(st->sink->arg, "refused");
			st->open = false;
		}
	} else if (type == 'B') {
		memcpy(st->path + st->npath, p, n);
		st->npath += n;
	} else {
		size_t take =
		    n < sizeof(st->text) - 1 - st->ntext ? n : sizeof(st->text) - 1 - st->ntext;

		memcpy(st->text + st->ntext, p, take);
		st->ntext += take;
	}
}

/* The current record is complete. */
static void stream_done(struct arl_collect_stream *st)
{
	unsigned char type = st->hdr[0];

	if (type == 'B') {
		uint32_t spec = arl_proto_get_u32(st->hdr + 1);
		int64_t size = (int64_t)((uint64_t)arl_proto_get_u32(st->hdr + 9) << 32 |
		                         arl_proto_get_u32(st->hdr + 5));

		st->path[st->npath] = '\0';
		if (spec >= st->nspecs || strlen(st->path) != st->npath) {
			stream_break(st);
		} else {
			st->begun = true;
			st->open = st->sink->begin(st->sink->arg, spec, st->path,
			                           size < 0 ? -1 : size) == 0;
		}
		free(st->path);
		st->path = NULL;
	} else if (type == 'E') {
		st->text[st->ntext] = '\0';
		for (size_t i = 0; i < st->ntext; i++)
			if ((unsigned char)st->text[i] < 0x20)
				st->text[i] = '?';
		stream_end(st, st->ntext ? st->text : NULL);
	}
	st->nhdr = 0;
}

void arl_collect_stream_feed(struct arl_collect_stream *st, const char *p, size_t n)
{
	while (n && !st->broken) {
		if (!st->body) {
			if (st->nhdr == 0) {
				unsigned char t = (unsigned char)*p;

				/* A file's records need its 'B' first; a 'B' inside one is bad. */
				if ((t != 'B' && t != 'D' && t != 'E') || (t != 'B') != st->begun) {
					stream_break(st);
					return;
				}
			}
			st->hdr[st->nhdr++] = (unsigned char)*p++;
			n--;
			if (st->nhdr < header_len(st->hdr[0]))
				continue;
			st->want = arl_proto_get_u32(st->hdr + header_len(st->hdr[0]) - 4);
			if ((st->hdr[0] == 'B' && st->want >= 4096) ||
			    (st->hdr[0] == 'D' && st->want > ARL_COLLECT_CHUNK) ||
			    (st->hdr[0] == 'E' && st->want > 4096)) {
				stream_break(st);
				return;
			}
			if (st->hdr[0] == 'B') {
				st->path = arl_xmalloc(st->want + 1);
				st->npath = 0;
			}
			st->ntext = 0;
			st->body = true;
		} else {
			size_t take = n < st->want ? n : st->want;

			stream_body(st, p, take);
			p += take, n -= take, st->want -= take;
		}
		if (st->body && !st->want) {
			st->body = false;
			stream_done(st);
		}
	}
}

void arl_collect_stream_init(struct arl_collect_stream *st, const struct arl_artifact_sink *sink,
                             size_t nspecs)
{
	memset(st, 0, sizeof(*st));
	st->sink = sink;
	st->nspecs = nspecs;
}

void arl_collect_stream_cut(struct arl_collect_stream *st, const char *why)
{
	stream_end(st, why);
	st->broken = true;
}

int arl_collect_stream_finish(struct arl_collect_stream *st)
{
	if (!st->broken && (st->nhdr || st->body || st->begun))
		stream_break(st); /* ended mid-record */
	return st->broken ? -1 : 0;
}

void arl_collect_stream_release(struct arl_collect_stream *st, const char *why)
{
	stream_end(st, why);
	free(st->path);
	st->path = NULL;
}
