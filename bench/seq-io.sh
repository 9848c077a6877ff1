#!/bin/bash
# Sequential I/O through unionfs-ts against the same I/O on the filesystem
# beneath it, interleaved round by round so that both see the same disk:
#  - write: `dd` of 256 MiB to a new file, 1 MiB blocks, conv=fsync: in a
#    plain directory, and through a mount (into its writable branch, which
#    sits beside that directory);
#  - read, cold: `dd` of a 256 MiB file with 1 MiB blocks after dropping
#    the page cache: the file itself, and the same file as the lower branch
#    of a fresh mount (a lower file of a union with a writable branch is
#    served by the daemon, not passed through: lib/fuse/passthrough.ts);
#  - read, cached: the same two reads with the file's pages in the page
#    cache (read once just before): the plain read copies them once, the
#    union's first read brings them through the daemon (spliced READ
#    replies, lib/fuse/splice.ts) into the mount's own page cache.
# Prints seconds for each round, then the medians and their ratio.
#
#   sudo bash bench/seq-io.sh [ROUNDS] [DIR]
#
# unionfs-ts is this checkout's (bin/unionfs-ts.js, after `npm ci`). The
# mounts are unmounted on the way out, also on Ctrl-C.
set -eu
ROUNDS=${1:-7}
DIR=${2:-/var/tmp/unionfs-ts-bench/seq-io}
REPO=$(cd "$(dirname "$0")/.." && pwd)
M=$DIR/m

cleanup () { mountpoint -q "$M" && umount "$M" || true; }
trap cleanup EXIT

rm -rf "$DIR/plain" "$DIR/upper"
mkdir -p "$DIR/lower" "$DIR/plain" "$M"
[ -s "$DIR/lower/big.bin" ] || head -c $((256 << 20)) /dev/urandom > "$DIR/lower/big.bin"

mount_fresh () {
  cleanup
  rm -rf "$DIR/upper"
  mkdir -p "$DIR/upper"
  node "$REPO/bin/unionfs-ts.js" mount "$DIR/upper=rw:$DIR/lower" "$M"
}
drop () { sync; echo 3 > /proc/sys/vm/drop_caches; }
timed () { /usr/bin/time -f %e "$@" 2>&1 >/dev/null | tail -1; }
write () { drop; timed dd if=/dev/zero of="$1" bs=1M count=256 conv=fsync; rm -f "$1"; sync; }
read_cold () { drop; timed dd if="$1" of=/dev/null bs=1M; }
read_cached () { cat "$DIR/lower/big.bin" > /dev/null; timed dd if="$1" of=/dev/null bs=1M; }

wn=(); wu=(); rn=(); ru=(); cn=(); cu=()
row () { printf '%-6s %12s %12s %12s %12s %12s %12s\n' "$@"; }
row round 'write plain' 'write union' 'cold plain' 'cold union' 'cached plain' 'cached union'
for i in $(seq 1 "$ROUNDS"); do
  mount_fresh
  a=$(write "$DIR/plain/w.bin"); b=$(write "$M/w.bin")
  mount_fresh
  c=$(read_cold "$DIR/lower/big.bin"); d=$(read_cold "$M/big.bin")
  mount_fresh
  e=$(read_cached "$DIR/lower/big.bin"); f=$(read_cached "$M/big.bin")
  wn+=("$a"); wu+=("$b"); rn+=("$c"); ru+=("$d"); cn+=("$e"); cu+=("$f")
  row "$i" "$a" "$b" "$c" "$d" "$e" "$f"
done
median () { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
mw=$(median "${wn[@]}"); mu=$(median "${wu[@]}"); mr=$(median "${rn[@]}"); mv=$(median "${ru[@]}")
mc=$(median "${cn[@]}"); md=$(median "${cu[@]}")
row median "$mw" "$mu" "$mr" "$mv" "$mc" "$md"
awk -v a="$mw" -v b="$mu" -v c="$mr" -v d="$mv" -v e="$mc" -v f="$md" \
  'BEGIN { printf "union / plain: write %.2fx, read cold %.2fx, read cached %.2fx\n", b / a, d / c, f / e }'
