#!/usr/bin/env bash
# The fake ARL-Infra API server's own tests (tests/fake_arl/test_server.py, stdlib
# unittest). Prints "N passed, N failed, N skipped"; exits 77 (skip) when a
# prerequisite is missing: /usr/bin/python3 with PyYAML (python3-yaml), openssl, or
# the CRDs (tests/fake_arl/crds, a copy of ../shared/arl-crds, or $ARL_CRD_DIR).
# kubectl is optional: the kubectl test is skipped without one (KUBECTL=/path picks one).
set -u
: "${SOURCE_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"

PY=/usr/bin/python3
if [ ! -x "$PY" ]; then
	PY=$(command -v python3 || true)
fi
if [ -z "$PY" ] || ! "$PY" -c 'import yaml' >/dev/null 2>&1; then
	echo "SKIP: python3 with PyYAML (Debian python3-yaml) is needed"
	exit 77
fi
if ! command -v openssl >/dev/null 2>&1; then
	echo "SKIP: openssl is needed for the TLS tests"
	exit 77
fi
CRDS=${ARL_CRD_DIR:-$SOURCE_DIR/tests/fake_arl/crds}
if [ ! -f "$CRDS/arl.infra.io_tasks.yaml" ]; then
	echo "SKIP: no ARL CRDs in $CRDS (set ARL_CRD_DIR)"
	exit 77
fi
export ARL_CRD_DIR=$CRDS

cd "$SOURCE_DIR/tests/fake_arl" || exit 1
exec "$PY" test_server.py
