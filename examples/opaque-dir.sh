#!/usr/bin/env bash
# Opaque directories: how a union keeps a deleted directory's old content
# from coming back, and how an image layer replaces a directory wholesale.
#
#   sudo examples/opaque-dir.sh
#
# Part A: through the mount. Delete a directory a read-only branch has, then
# make a new one of the same name: the new directory is opaque
# (`.wh..wh..opq` inside it in the AUFS dialect), so the old files stay hidden.
# Part B: a read-only layer that ships an opaque directory (the OCI
# `.wh..wh..opq` entry, as `docker build` writes for `RUN rm -rf d && mkdir d`)
# hides that directory of every layer below it, and stops the merge there.
source "$(dirname "$0")/common.sh"

UP="$WORK/up" MID="$WORK/mid" BASE="$WORK/base" MNT="$WORK/mnt" TRACE="$WORK/trace.log"
all () { show_branch "up (rw)" "$UP"; show_branch "mid (ro)" "$MID"; show_branch "base (ro)" "$BASE"; }

step "A1. the base layer has etc/conf.d with three files; mid adds one more"
mkdir -p "$UP" "$MID/etc/conf.d" "$BASE/etc/conf.d"
for f in a b c; do echo "old $f" > "$BASE/etc/conf.d/$f"; done
echo "mid d" > "$MID/etc/conf.d/d"
all
mount_union -o "trace=$TRACE" "$UP:$MID:$BASE" "$MNT"
run ls "$MNT/etc/conf.d"
run unionfs inspect "$MNT/etc/conf.d"

step "A2. rm -rf etc/conf.d: each file gets a whiteout, then the directory does"
run rm -rf "$MNT/etc/conf.d"
run ls "$MNT/etc"
all
sed 's/^/  trace: /' "$TRACE"

step "A3. mkdir etc/conf.d again: the new directory is OPAQUE"
run mkdir "$MNT/etc/conf.d"
runsh "echo new > $MNT/etc/conf.d/only-new"
run ls "$MNT/etc/conf.d"
say "a, b, c and d do not come back, although mid and base still have them:"
all

grep ' opaque ' "$TRACE" | sed 's/^/  trace: /'
run unionfs inspect "$MNT/etc/conf.d"
umount_union "$MNT"

step "B1. a layer that ships an opaque directory"
L2="$WORK/layer2" L1="$WORK/layer1" MNT2="$WORK/mnt2"
mkdir -p "$L1/srv/www" "$L2/srv/www"
echo "old site" > "$L1/srv/www/index.html"
echo "old asset" > "$L1/srv/www/logo.png"
echo "new site" > "$L2/srv/www/index.html"
run touch "$L2/srv/www/.wh..wh..opq"
show_branch "layer2 (ro, top)" "$L2"
show_branch "layer1 (ro)" "$L1"

step "B2. a read-only union of the two: srv/www comes from layer2 alone"
mount_union "$L2=ro:$L1" "$MNT2"
run ls "$MNT2/srv/www"
say "logo.png is hidden: layer2's srv/www is opaque, so layer1's is never merged."
run unionfs inspect "$MNT2/srv/www"
run unionfs inspect "$MNT2/srv/www/logo.png"
umount_union "$MNT2"
