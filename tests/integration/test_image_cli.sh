#!/usr/bin/env bash
# `arl-batch image load|list|rm|prune` (issue 15) on the busybox test image
# (tests/images/build_busybox.py):
#   A. load from standard input (as `docker save NAME | arl-batch image load`) and from files
#      keeps the archive's tags and prints them; list shows name, id, size and layers.
#   B. Not an image, a missing file, a corrupted layer: exit 3 with a message naming it, the
#      store unchanged.
#   C. rm removes a tag (twice: an error); prune --dry-run counts and deletes nothing; prune
#      deletes what no tagged image uses, down to an empty store.
#   D. Usage errors: no subcommand, rm without a name, extra operands (exit 2).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_tools python3 tar
[ -x /bin/busybox ] || { echo "SKIP: busybox-static is not installed"; exit 77; }
make_tmp
cd "$TMP"
python3 "$SOURCE_DIR/tests/images/build_busybox.py" img >/dev/null
. img/image.env
export ARL_BATCH_IMAGES=$TMP/store

# A
set +e
"$ARL_BATCH" image load <img/docker.tar >out 2>err
RC=$?
set -e
check_eq "load from stdin: exit 0" "$RC" 0
check_eq "load prints the archive's tags" "$(cat out)" "Loaded image: $TAG"
runner image load img/oci.tar
check_eq "load an oci-archive: exit 0" "$RC" 0
check_eq "its tag too" "$(cat out)" "Loaded image: $TAG"
runner image load img/oci
check_eq "load an OCI layout directory: exit 0" "$RC" 0
runner image list
check_eq "list: exit 0" "$RC" 0
check_match "list: name, short id, size, layers" "$(sed -n 2p out)" \
	"^arl-test/busybox:1 +${IMAGE_ID:7:12} +2\.[0-9] MiB +2 +[0-9]{4}-"
runner image list -q
check_eq "list -q: names" "$(cat out)" "$TAG"
check_eq "load unpacks nothing (first use does)" "$(find store/layers -mindepth 2 | wc -l)" 0

# B
before=$(find store | sort | sha256sum)
echo 'not a tar' >junk.tar
runner image load junk.tar
check_eq "not a tar: exit 3" "$RC" 3
check_match "not a tar: says which file" "$(cat err)" "junk\.tar.*not a tar"
runner image load nothere.tar
check_eq "missing file: exit 3" "$RC" 3
check_match "missing file: says so" "$(cat err)" "cannot open 'nothere\.tar'"
mkdir bad && (cd bad && tar xf ../img/docker.tar)
printf 'X' | dd of="bad/${LAYER2_DIFF#sha256:}/layer.tar" bs=1 seek=1500 conv=notrunc 2>/dev/null
(cd bad && tar cf ../bad.tar ./*)
runner image load bad.tar
check_eq "corrupted layer: exit 3" "$RC" 3
check_match "corrupted layer: refused, naming the layer" "$(cat err)" \
	"image load: layer '${LAYER2_DIFF#sha256:}/layer\.tar' of bad\.tar: .*not the diff_id $LAYER2_DIFF .*\(corrupted or altered\): refused"
check_eq "corrupted layer: the store unchanged" "$(find store | sort | sha256sum)" "$before"

runner image inspect arl-test/busybox
check_eq "inspect a missing image: exit 3" "$RC" 3
check_match "inspect a missing image: says how to load it" "$(cat err)" \
	"'arl-test/busybox' is not in the image store .*docker save NAME \| arl-batch image load"
runner image inspect arl-test/busybox:1
check_eq "inspect: exit 0" "$RC" 0
check_match "inspect: id, layers bottom first, config" "$(tr -d '\n\t ' <out)" \
	"\"id\":\"$IMAGE_ID\",\"layers\":\\[\"[^\"]*/${LAYER1_DIFF#sha256:}\",\"[^\"]*/${LAYER2_DIFF#sha256:}\"\\],\"env\":.*IMAGE_VAR=from-image.*\"workingDir\":\"/home/app\",\"user\":\"app\""
check "inspect: the layers unpacked" test -x "$(find store/layers -path "*${LAYER1_DIFF#sha256:}/bin/busybox")"

# C
runner image rm arl-test/busybox:1
check_eq "rm: exit 0" "$RC" 0
runner image rm arl-test/busybox:1
check_eq "rm again: exit 3" "$RC" 3
check_match "rm again: no such image" "$(cat err)" "no image 'arl-test/busybox:1'"
runner image prune --dry-run
check_match "prune --dry-run: counts" "$(cat out)" "^would delete 2 layers, [45] blobs and 1 untagged image"
check_ge "prune --dry-run: deletes nothing" "$(find store/blobs -type f | wc -l)" 4
runner image prune
check_eq "prune: exit 0" "$RC" 0
check_eq "prune: no blob left" "$(find store/blobs -type f | wc -l)" 0
check_eq "prune: no layer left" "$(find store/layers -mindepth 2 | wc -l)" 0
runner image list -q
check_eq "list after prune: empty" "$(cat out)" ""

# D
runner image
check_eq "no subcommand: exit 2" "$RC" 2
runner image rm
check_eq "rm without a name: exit 2" "$RC" 2
runner image list extra
check_eq "list with an operand: exit 2" "$RC" 2
runner image frob
check_match "unknown subcommand" "$(cat err)" "unknown subcommand 'frob'"

summary
