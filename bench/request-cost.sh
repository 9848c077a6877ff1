#!/bin/bash
# The cost of one FUSE request, round trip: 20,000 readlink calls of one
# symlink through a fresh mount (the kernel does not cache symlinks here,
# so each is a READLINK request), in microseconds, for unionfs-ts served
# three ways and for the userspace peers the bench installed.
#
#   sudo bash bench/request-cost.sh [ROUNDS] [DIR]
#
# unionfs-ts is this checkout's (bin/unionfs-ts.js, after `npm ci`);
# fuse-overlayfs comes from PATH and unionfs-fuse from the bench's tools
# directory (`npm run bench` puts both there); a missing one is skipped.
# Every mount is unmounted on the way out, also on Ctrl-C.
set -eu
ROUNDS=${1:-3}
DIR=${2:-/var/tmp/unionfs-ts-bench/request-cost}
REPO=$(cd "$(dirname "$0")/.." && pwd)
UNIONFS_TS="node $REPO/bin/unionfs-ts.js"
TOOLS=/var/tmp/unionfs-ts-bench/tools/unionfs-fuse
M=$DIR/m

cleanup () { mountpoint -q "$M" && umount "$M" || true; }
trap cleanup EXIT

mkdir -p "$DIR/lower" "$M"
ln -sfn target "$DIR/lower/link"
fresh () { rm -rf "$DIR/upper" "$DIR/work"; mkdir -p "$DIR/upper" "$DIR/work"; }

per_request () {
  python3 - "$M/link" <<'PY'
import os, sys, time
p = sys.argv[1]
os.readlink(p)
t = time.perf_counter()
for _ in range(20000):
    os.readlink(p)
print('%.0f' % ((time.perf_counter() - t) / 20000 * 1e6))
PY
}

# name, then the command that mounts $M (it returns once the mount is live)
run () {
  local name=$1; shift
  fresh
  if ! "$@" >/dev/null 2>&1; then printf '%-44s %s\n' "$name" 'did not mount'; return; fi
  printf '%-44s %s us\n' "$name" "$(per_request)"
  umount "$M"
  while mountpoint -q "$M"; do sleep 0.1; done
}

for r in $(seq "$ROUNDS"); do
  echo "round $r"
  run 'unionfs-ts, thread-pool reads' env UNIONFS_TS_SERVE=pool $UNIONFS_TS mount "$DIR/upper:$DIR/lower" "$M"
  run 'unionfs-ts, serving thread, spin=0' $UNIONFS_TS mount -o spin=0 "$DIR/upper:$DIR/lower" "$M"
  run 'unionfs-ts, serving thread, default spin' $UNIONFS_TS mount "$DIR/upper:$DIR/lower" "$M"
  if command -v fuse-overlayfs >/dev/null; then
    run 'fuse-overlayfs' fuse-overlayfs -o "lowerdir=$DIR/lower,upperdir=$DIR/upper,workdir=$DIR/work" "$M"
  fi
  if [ -x "$TOOLS/usr/bin/unionfs" ]; then
    run 'unionfs-fuse' env LD_LIBRARY_PATH="$TOOLS/usr/lib/x86_64-linux-gnu" "$TOOLS/usr/bin/unionfs" -o cow "$DIR/upper=RW:$DIR/lower=RO" "$M"
  fi
done
