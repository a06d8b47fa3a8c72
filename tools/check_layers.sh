#!/usr/bin/env bash
# The include rules between runner/'s folders (docs/architecture.md draws them). Every
# '#include "DIR/file.h"' in runner/ must name a folder its own folder may use; the core
# (files at the top of runner/) uses only the core. Exits 1 listing each violation.
set -euo pipefail
cd "$(dirname "$0")/../runner"

allowed() { # FOLDER -> the folders it may include besides its own and the core
	case "$1" in
	core) echo "" ;;
	jobfile | store | image) echo "" ;;
	backend) echo "jobfile" ;;
	view) echo "store" ;;
	agent) echo "" ;; # the sandbox agent: a static program, not even the core (see below)
	local) echo "jobfile backend agent image" ;;
	http) echo "" ;; # the HTTP client the remote backends share
	k8s) echo "jobfile backend http" ;;
	gateway) echo "jobfile backend http" ;;
	run) echo "jobfile store backend view" ;;
	cmd) echo "jobfile store backend view run local k8s gateway image" ;;
	*) echo "?" ;;
	esac
}

bad=0
while IFS= read -r file; do
	dir=$(dirname "$file")
	from=${dir#./}
	[ "$from" = "." ] && from=core
	ok=$(allowed "$from")
	if [ "$ok" = "?" ]; then
		echo "runner/${file#./}: folder '$from' has no layering rule in tools/check_layers.sh"
		bad=1
		continue
	fi
	[ "$file" = "./main.c" ] && ok="cmd"
	while IFS=: read -r line inc; do
		case "$inc" in */*) to=${inc%%/*} ;; *) to=core ;; esac
		[ "$to" = "$from" ] && continue
		[ "$to" = core ] && [ "$from" != agent ] && continue
		case " $ok " in *" $to "*) continue ;; esac
		echo "runner/${file#./}:$line: '$from' may not include \"$inc\""
		bad=1
	done < <(grep -n '^#include "' "$file" | sed -E 's/^([0-9]+):#include "([^"]+)".*/\1:\2/')
done < <(find . -name '*.[ch]' | sort)

# One owner for stderr: only the log module (log.c) and the progress bar, which draws on it
# under the lock the log's sink takes, write there. Code only: comments and string and
# character literals are blanked first ("stderr" is also a column of the results database).
while IFS=$'\t' read -r where text; do
	echo "runner/${where#./}: writes to stderr (only log.c and run/progress.c may; use log.h):" \
		"${text#"${text%%[![:space:]]*}"}"
	bad=1
done < <(find . -name '*.[ch]' ! -path ./log.c ! -path ./run/progress.c | sort | xargs awk '
	FNR == 1 { incomment = 0 }
	{
		line = $0; code = ""
		while (line != "") {
			if (incomment) {
				i = index(line, "*/")
				if (!i) { line = ""; break }
				line = substr(line, i + 2); incomment = 0; code = code " "
				continue
			}
			c = substr(line, 1, 1); d = substr(line, 1, 2)
			if (d == "/*") { incomment = 1; line = substr(line, 3); continue }
			if (d == "//") break
			if (c == "\"" || c == "\047") {
				j = 2
				while (j <= length(line) && substr(line, j, 1) != c)
					j += substr(line, j, 1) == "\\" ? 2 : 1
				line = substr(line, j + 1); code = code "\"\""
				continue
			}
			code = code c; line = substr(line, 2)
		}
		w = "(^|[^A-Za-z0-9_])"; e = "([^A-Za-z0-9_]|$)"
		if (code ~ (w "(stderr|STDERR_FILENO)" e) || code ~ (w "perror[ \t]*[(]") ||
		    code ~ (w "(write|dprintf)[ \t]*[(][ \t]*2[ \t]*,") ||
		    code ~ /^[ \t]*#[ \t]*include[ \t]*<err[.]h>/)
			print FILENAME ":" FNR "\t" $0
	}')
# The store owns the schema: only runner/store/ talks to SQLite (sqlite3_*, <sqlite3.h>) or
# includes its internal headers; everything else reads through its typed readers.
while IFS=: read -r file line text; do
	echo "runner/${file#./}:$line: uses SQLite or the store's internals (only runner/store/" \
		"may; read through a store reader such as store/store_jobs.h):" \
		"${text#"${text%%[![:space:]]*}"}"
	bad=1
done < <(find . -name '*.[ch]' ! -path './store/*' | sort |
	xargs grep -nE 'sqlite3|"store/store_(internal|rows)\.h"' /dev/null || true)

exit $bad
