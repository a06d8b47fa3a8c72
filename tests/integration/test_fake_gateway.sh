#!/usr/bin/env bash
# The fake ARL gateway's own tests (tests/fake_gateway/test_server.py, stdlib unittest):
# every status code of ../shared/arl-gateway.md, both execute answers, SSE frames,
# uploads/downloads with SHA checks and trailers, the rate limit, ownership, faults,
# and no session, pod process or temp dir left. Exits 77 (skip) without python3 or bwrap.
set -u
: "${SOURCE_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"

if [ ! -x /usr/bin/python3 ]; then
	echo "SKIP: /usr/bin/python3 is needed"
	exit 77
fi
if ! command -v bwrap >/dev/null 2>&1; then
	echo "SKIP: bwrap (bubblewrap) is needed for the sessions' containers"
	exit 77
fi
/usr/bin/python3 "$SOURCE_DIR/tests/fake_gateway/test_server.py"
