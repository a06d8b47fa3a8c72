#!/usr/bin/env bash
# tools/check_layers.sh on a small made-up runner/ tree: only runner/store/ may talk to SQLite
# (sqlite3_*, <sqlite3.h>) or include the store's internal headers (store_internal.h,
# store_rows.h); anywhere else each fails the check, naming file:line.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

make_tmp
mkdir -p "$TMP/tools" "$TMP/runner/store" "$TMP/runner/cmd" "$TMP/runner/view"
cp "$SOURCE_DIR/tools/check_layers.sh" "$TMP/tools/"

cat >"$TMP/runner/store/store_jobs.c" <<'EOF2'
#include <sqlite3.h>

#include "store/store_internal.h"
#include "store/store_rows.h"
static int f(sqlite3_stmt *st) { return sqlite3_step(st); }
EOF2
cat >"$TMP/runner/cmd/cmd_results.c" <<'EOF2'
#include "store/store.h"
#include "store/store_jobs.h"
EOF2
check "a clean tree passes" bash "$TMP/tools/check_layers.sh"

for stray in '#include <sqlite3.h>' 'static int g(sqlite3_stmt *st);' \
	'#include "store/store_internal.h"' '#include "store/store_rows.h"'; do
	printf '/* a reader */\n\n%s\n' "$stray" >"$TMP/runner/view/stray.c"
	set +e
	out=$(bash "$TMP/tools/check_layers.sh" 2>&1)
	rc=$?
	set -e
	check_match "$stray outside runner/store/ fails the check at its line" "$rc:$out" \
		'^1:runner/view/stray\.c:3: uses SQLite or the store'"'"'s internals'
done

summary
