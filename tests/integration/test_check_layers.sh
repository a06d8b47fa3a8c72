#!/usr/bin/env bash
# tools/check_layers.sh on a small made-up runner/ tree: the log module and the progress bar
# may write to stderr, and "stderr" in comments and string literals is no write; a stray
# fprintf(stderr, ...), write(2, ...), perror() or <err.h> elsewhere fails the check, naming
# file:line. An include against the folder rules fails it too.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

make_tmp
mkdir -p "$TMP/tools" "$TMP/runner/run" "$TMP/runner/cmd" "$TMP/runner/k8s" "$TMP/runner/view"
cp "$SOURCE_DIR/tools/check_layers.sh" "$TMP/tools/"

cat >"$TMP/runner/log.c" <<'EOF'
#include "log.h"
static void out(const char *s) { fputs(s, stderr); write(STDERR_FILENO, s, 1); }
EOF
cat >"$TMP/runner/run/progress.c" <<'EOF'
#include "run/progress.h"
static void draw(void) { write(2, "\r", 1); }
EOF
cat >"$TMP/runner/cmd/cmd_show.c" <<'EOF'
#include "log.h"
/* The step's stderr, and
 * stderr again in a comment over two lines. */
static const char *sql = "SELECT stderr FROM steps"; // stderr
static const char q = '"'; static const char *s2 = "a \" stderr";
EOF
check "a clean tree passes" bash "$TMP/tools/check_layers.sh"

cat >"$TMP/runner/k8s/stray.c" <<'EOF'
#include "log.h"

static void f(void) { fprintf(stderr, "arl-batch: x\n"); }
EOF
set +e
out=$(bash "$TMP/tools/check_layers.sh" 2>&1)
rc=$?
set -e
check_eq "a stray fprintf(stderr, ...) fails the check" "$rc" 1
check_match "... naming file and line" "$out" '^runner/k8s/stray\.c:3: writes to stderr'
rm "$TMP/runner/k8s/stray.c"

for stray in 'write(2, "x", 1);' 'perror("x");' 'dprintf(2, "x");' 'fputs("x", stderr);'; do
	printf 'static void g(void)\n{\n\t%s\n}\n' "$stray" >"$TMP/runner/cmd/stray.c"
	set +e
	out=$(bash "$TMP/tools/check_layers.sh" 2>&1)
	rc=$?
	set -e
	check_match "$stray fails the check at its line" "$rc:$out" '^1:runner/cmd/stray\.c:3: '
done
printf '#include <err.h>\n' >"$TMP/runner/cmd/stray.c"
set +e
out=$(bash "$TMP/tools/check_layers.sh" 2>&1)
set -e
check_match "<err.h> (err(3), warn(3)) fails the check" "$out" '^runner/cmd/stray\.c:1: '
rm "$TMP/runner/cmd/stray.c"

printf '#include "run/run.h"\n' >"$TMP/runner/view/up.c"
set +e
out=$(bash "$TMP/tools/check_layers.sh" 2>&1)
rc=$?
set -e
check_eq "view including run/ fails the check" "$rc" 1
check_match "... naming file and line" "$out" "^runner/view/up\\.c:1: 'view' may not include \"run/run.h\""

summary
