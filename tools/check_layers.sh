#!/usr/bin/env bash
# The include rules between runner/'s folders (docs/architecture.md draws them). Every
# '#include "DIR/file.h"' in runner/ must name a folder its own folder may use; the core
# (files at the top of runner/) uses only the core. Exits 1 listing each violation.
set -euo pipefail
cd "$(dirname "$0")/../runner"

allowed() { # FOLDER -> the folders it may include besides its own and the core
	case "$1" in
	core) echo "" ;;
	jobfile | store) echo "" ;;
	backend) echo "jobfile" ;;
	view) echo "store" ;;
	local | k8s) echo "jobfile backend" ;;
	run) echo "jobfile store backend view" ;;
	cmd) echo "jobfile store backend view run local k8s" ;;
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
		[ "$to" = core ] || [ "$to" = "$from" ] && continue
		case " $ok " in *" $to "*) continue ;; esac
		echo "runner/${file#./}:$line: '$from' may not include \"$inc\""
		bad=1
	done < <(grep -n '^#include "' "$file" | sed -E 's/^([0-9]+):#include "([^"]+)".*/\1:\2/')
done < <(find . -name '*.[ch]' | sort)
exit $bad
