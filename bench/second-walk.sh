#!/bin/bash
# A fresh daemon's first walk against the same walk by a daemon that has
# already served one: the lower branch holds two copies of the bench's
# depth-1 tree, a/ and b/; each fresh mount walks a/, then, after the page
# cache is dropped, b/, which neither the kernel nor the daemon has seen.
# The first walk pays for the daemon's start (for unionfs-ts: V8 running
# the request path in its interpreter until it has compiled it); the
# second is the walk alone. Both are cold for the disk.
#
#   sudo bash bench/second-walk.sh [ROUNDS] [DIR]
#
# Workloads as in the bench: find, ls -lR, lstat of every file, lstat of
# missing names (bench/worker.js). Systems: unionfs-ts, unionfs-ts with
# -o xattr=off, and unionfs-fuse from the bench's tools directory (skipped
# when missing). Needs the bench's depth-1 tree and its build
# (`npm run bench -- --quick` makes both). Prints every round, then the
# medians. Every mount is unmounted on the way out, also on Ctrl-C.
set -eu
ROUNDS=${1:-5}
DIR=${2:-/var/tmp/unionfs-ts-bench/second-walk}
REPO=$(cd "$(dirname "$0")/.." && pwd)
TREES=/var/tmp/unionfs-ts-bench/trees
TOOLS=/var/tmp/unionfs-ts-bench/tools/unionfs-fuse
M=$DIR/m

tree=$(ls -d "$TREES"/layers-*-d1/0 2>/dev/null | head -1 || true)
lists=$(ls -d "$TREES"/view-*/lists 2>/dev/null | head -1 || true)
if [ -z "$tree" ] || [ -z "$lists" ] || [ ! -f "$REPO/dist/bench/worker.js" ]; then
  echo "no depth-1 bench tree or no build: run 'npm run bench -- --quick' first" >&2
  exit 2
fi

cleanup () { mountpoint -q "$M" && umount "$M" || true; }
trap cleanup EXIT

mkdir -p "$DIR/lower" "$M"
for copy in a b; do [ -d "$DIR/lower/$copy" ] || cp -a "$tree" "$DIR/lower/$copy"; done
for list in files missing; do
  for copy in a b; do sed "s|^|$copy/|" "$lists/$list.txt" > "$DIR/$list-$copy.txt"; done
done

drop () { sync; echo 3 > /proc/sys/vm/drop_caches; }
seconds () { local s e; s=$(date +%s.%N); "$@" > /dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc | sed 's/^\./0./'; }
worker () { node "$REPO/dist/bench/worker.js" lstat "$M" "$DIR/$1-$2.txt" | python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds"])'; }
walk () { # workload copy
  case $1 in
    find) seconds find "$M/$2" ;;
    ls-lR) seconds ls -lR "$M/$2" ;;
    lstat) worker files "$2" ;;
    missing) worker missing "$2" ;;
  esac
}

mount_ts () { node "$REPO/bin/unionfs-ts.js" mount "$@" "$DIR/upper:$DIR/lower" "$M"; }
mount_uf () { LD_LIBRARY_PATH="$TOOLS/usr/lib/x86_64-linux-gnu" "$TOOLS/usr/bin/unionfs" -o cow "$DIR/upper=RW:$DIR/lower=RO" "$M"; }
SYSTEMS=(unionfs-ts unionfs-ts-noxattr)
[ -x "$TOOLS/usr/bin/unionfs" ] && SYSTEMS+=(unionfs-fuse)
WORKLOADS=(find ls-lR lstat missing)

declare -A first second
printf '%-6s %-20s %-8s %8s %8s\n' round system workload first second
for r in $(seq "$ROUNDS"); do
  for w in "${WORKLOADS[@]}"; do
    for sys in "${SYSTEMS[@]}"; do
      rm -rf "$DIR/upper"; mkdir -p "$DIR/upper"
      case $sys in
        unionfs-ts) mount_ts ;;
        unionfs-ts-noxattr) mount_ts -o xattr=off ;;
        unionfs-fuse) mount_uf ;;
      esac
      drop; a=$(walk "$w" a)
      drop; b=$(walk "$w" b)
      umount "$M"
      while mountpoint -q "$M"; do sleep 0.1; done
      first["$sys $w"]="${first["$sys $w"]:-} $a"
      second["$sys $w"]="${second["$sys $w"]:-} $b"
      printf '%-6s %-20s %-8s %8.3f %8.3f\n' "$r" "$sys" "$w" "$a" "$b"
    done
  done
done

median () { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
echo
echo "seconds, median of $ROUNDS: first walk of a fresh mount / second walk (an unseen copy, page cache dropped)"
printf '%-20s' workload; for sys in "${SYSTEMS[@]}"; do printf ' %22s' "$sys"; done; echo
for w in "${WORKLOADS[@]}"; do
  printf '%-20s' "$w"
  for sys in "${SYSTEMS[@]}"; do
    # shellcheck disable=SC2086
    printf ' %22s' "$(printf '%.3f / %.3f' "$(median ${first["$sys $w"]})" "$(median ${second["$sys $w"]})")"
  done
  echo
done
