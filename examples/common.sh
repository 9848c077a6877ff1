# Shared by the examples (sourced, not run): checks, a scratch directory,
# cleanup on every exit (unmount even on error), and a way to show what
# each branch holds on disk.
#
#   mount_union OPTIONS BRANCHES MNT   mounts, remembered for cleanup
#   show_branch LABEL DIR              lists a branch, whiteouts included
#   step TEXT / say TEXT               narration
#   run CMD... / runsh 'SHELL LINE'    show the command, then run it
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UNIONFS=(node "$HERE/bin/unionfs-ts.js")

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then B=$'\033[1m' D=$'\033[2m' R=$'\033[0m'; else B='' D='' R=''; fi

step () { printf '\n%s== %s%s\n' "$B" "$*" "$R"; }
say () { printf '%s\n' "$*"; }
# Print a command as typed, then run it.
run () { printf '%s$ %s%s\n' "$D" "$*" "$R"; "$@"; }
# Print a shell command line as typed, then run it with sh.
runsh () { printf '%s$ %s%s\n' "$D" "$1" "$R"; sh -c "$1"; }
unionfs () { "${UNIONFS[@]}" "$@"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "$0: run as root (it mounts FUSE)" >&2
  exit 1
fi
if [ ! -e "$HERE/dist/lib/cli.js" ]; then
  echo "$0: build first (npm ci, or npx tsc -p tsconfig.json in $HERE)" >&2
  exit 1
fi

WORK="$(mktemp -d /tmp/unionfs-ts-example.XXXXXX)"
MOUNTS=()

cleanup () {
  local status=$?
  set +e
  local m
  for m in "${MOUNTS[@]}"; do
    if grep -q " $m fuse" /proc/mounts; then
      "${UNIONFS[@]}" umount "$m" 2>/dev/null || umount "$m" || umount -l "$m"
    fi
  done
  if [ "${KEEP:-}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mount_union () { # [-o OPTIONS] BRANCHES MNT
  local mnt="${*: -1}"
  mkdir -p "$mnt"
  MOUNTS+=("$mnt")
  run unionfs mount "$@"
}

umount_union () {
  run unionfs umount "$1"
}

# What a branch directory holds, one line per entry: whiteouts and opaque
# markers shown for what they are; the work dir (private state) left out.
show_branch () {
  local label="$1" dir="$2"
  printf '  %s%s%s  (%s)\n' "$B" "$label" "$R" "$dir"
  local lines
  lines="$(cd "$dir" && find . -mindepth 1 -name '.wh..wh.unionfs-ts' -prune -o -printf '%P\t%y\t%s\n' | sort)"
  if [ -z "$lines" ]; then printf '    (empty)\n'; return; fi
  local name type size what base
  while IFS=$'\t' read -r name type size; do
    case "$type" in
      d) what='directory' ;;
      l) what="symlink -> $(readlink "$dir/$name")" ;;
      c) what='char device (0/0 = overlayfs-style whiteout)' ;;
      *) what="file, $size bytes" ;;
    esac
    case "${name##*/}" in
      .wh..wh..opq) what='OPAQUE MARKER: nothing below this directory shows through' ;;
      .wh.*) base="${name##*/}"; what="WHITEOUT: hides ${base#.wh.} in the branches below" ;;
    esac
    printf '    %-28s %s\n' "$name" "$what"
  done <<< "$lines"
}
