#!/usr/bin/env bash
# tools/check_layers.sh on a small made-up runner/ tree: the sandbox agent (runner/agent/) is a
# static program of its own, so it includes only its own folder, not even the core; the local
# backend may include it, other folders may not. Each violation fails the check at file:line.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

make_tmp
mkdir -p "$TMP/tools" "$TMP/runner/agent" "$TMP/runner/local" "$TMP/runner/k8s"
cp "$SOURCE_DIR/tools/check_layers.sh" "$TMP/tools/"

cat >"$TMP/runner/agent/agent_main.c" <<'EOF2'
#include <stdio.h>

#include "agent/protocol.h"
EOF2
cat >"$TMP/runner/local/agent_client.c" <<'EOF2'
#include "agent/protocol.h"
#include "local/agent_client.h"
#include "util.h"
EOF2
check "a clean tree passes" bash "$TMP/tools/check_layers.sh"

for inc in '"util.h"' '"banned.h"' '"jobfile/job.h"' '"local/agent_client.h"'; do
	printf '/* the agent */\n\n#include %s\n' "$inc" >"$TMP/runner/agent/stray.c"
	set +e
	out=$(bash "$TMP/tools/check_layers.sh" 2>&1)
	rc=$?
	set -e
	check_match "the agent including $inc fails the check at its line" "$rc:$out" \
		"^1:runner/agent/stray\\.c:3: 'agent' may not include"
done
rm "$TMP/runner/agent/stray.c"

printf '#include "agent/protocol.h"\n' >"$TMP/runner/k8s/stray.c"
set +e
out=$(bash "$TMP/tools/check_layers.sh" 2>&1)
rc=$?
set -e
check_match "k8s including the agent's protocol fails the check" "$rc:$out" \
	"^1:runner/k8s/stray\\.c:1: 'k8s' may not include \"agent/protocol.h\""

summary
