#!/bin/bash
# Runs pjd/pjdfstest (the POSIX filesystem test suite: some 8,800 checks of
# chmod, chown, link, mkdir, open, rename, rmdir, symlink, truncate, unlink,
# utimensat... results and errors) in a plain directory, then through
# unionfs-ts mounts (or the kernel's overlayfs), and compares every check
# with the plain directory's result. A check that passes there and fails
# through the union is a bug; so is one that passes only through the union:
# pjdfstest marks where Linux itself departs from POSIX as TODO checks,
# which fail on a plain directory. The suite is not part of the project:
# point this script at a checkout of it.
#
#   scripts/pjdfstest.sh [--kernel] SUITE_DIR [OPTIONS...]
#
#   OPTIONS   one mount per argument, made with `-o OPTIONS` (`default`:
#             none). Default: default.
#   --kernel  the kernel's overlayfs instead of unionfs-ts (OPTIONS unused)
#
#   PJD_TESTS    test files or directories under SUITE_DIR/tests
#                (default: all of them)
#   PJD_SCRATCH  the scratch dir (default: a new one under /var/tmp,
#                removed at the end); PJD_KEEP=1 keeps it, with each run's
#                output
#
# Builds the suite in SUITE_DIR when it is not built yet (autoreconf,
# configure, make; autoconf and automake come from Debian when missing).
# Needs root: the suite switches users. The plain directory is on the same
# filesystem as the branches. A few test files run only on some
# filesystems (pjdfstest asks `df` for the type): their checks show as run
# in one place only, and are counted apart. Nothing stays mounted when this
# script exits, even when interrupted. Exit status: 0 when no run differs
# from the plain directory, 1 otherwise, 2 on bad usage.
set -u
. "$(dirname "$0")/suite-head.sh"

suite_head pjdfstest.c '[OPTIONS|default ...]' "$@"
shift $taken
runs=${*:-default}
[ -n "$kernel" ] && runs=overlayfs
repo=$(cd "$(dirname "$0")/.." && pwd)

if [ ! -x "$suite/pjdfstest" ]; then
  if ! command -v autoreconf >/dev/null || ! command -v automake >/dev/null; then
    echo "installing autoconf and automake (apt-get) to build pjdfstest"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq autoconf automake >/dev/null ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq autoconf automake >/dev/null; } ||
      { echo "$0: could not install autoconf and automake" >&2; exit 2; }
  fi
  echo "building pjdfstest in $suite"
  (cd "$suite" && autoreconf -ifs && ./configure && make) >/dev/null 2>&1 ||
    { echo "$0: building pjdfstest failed (cd $suite && autoreconf -ifs && ./configure && make)" >&2; exit 2; }
fi

files=
for t in ${PJD_TESTS:-.}; do
  files="$files $(cd "$suite/tests" && find "$t" -name '*.t' | sort)"
done
[ -n "${files// /}" ] || { echo "$0: no test files" >&2; exit 2; }

if [ -n "${PJD_SCRATCH:-}" ]; then
  scratch=$PJD_SCRATCH; mkdir -p "$scratch"
else
  scratch=$(mktemp -d /var/tmp/pjdfstest.XXXXXX)
fi
chmod 755 "$scratch"

running=
finish() {
  stop_running
  local m
  for m in $(mounts_under); do umount "$m" 2>/dev/null || umount -l "$m"; done
  leave_scratch "${PJD_KEEP:-}" "output kept in $scratch" "${PJD_SCRATCH:-}"
}
trap finish EXIT
trap 'exit 130' INT TERM

# Run every test file in directory $1 (the filesystem under test), one at
# a time, in the background so that an interrupt stops it at once. One line
# per check into $2: "FILE NUMBER ok|fail|todo-ok|todo-fail".
run_suite() {
  local dir=$1 out=$2 f tap=$scratch/tap
  : > "$out"
  for f in $files; do
    (cd "$dir" && exec timeout -k 10 600 sh "$suite/tests/$f") > "$tap" 2>/dev/null </dev/null &
    running=$!
    wait $running
    running=
    awk -v f="$f" '/^(not )?ok [0-9]+/ {
      n = ($1 == "not") ? $3 : $2; r = ($1 == "not") ? "fail" : "ok"
      if ($0 ~ /# *TODO/) r = "todo-" r
      print f, n, r
    }' "$tap" >> "$out"
  done
}

# One line of the table for results $1 against the plain directory's.
compare() {
  local name=$1 res=$2 ref=$scratch/plain.res
  awk -v name="$name" -v diffs="$scratch/$name.diff" '
    FNR == NR { want[$1 " " $2] = $3; next }
    {
      k = $1 " " $2; checks++
      if ($3 == "fail") failed++
      if ($3 == "todo-ok") todo++
      if (!(k in want)) { here++; next }
      if (want[k] != $3) { differ++; print k, "plain:", want[k], name ":", $3 > diffs }
      seen[k] = 1
    }
    END {
      for (k in want) if (!(k in seen)) there++
      printf "%-34s %6d %6d %9d %10d %8d\n", name, checks, failed, todo, differ, here + there
    }' "$ref" "$res"
}

lower=$scratch/lower upper=$scratch/upper work=$scratch/work mnt=$scratch/mnt
echo "pjdfstest ($suite, $(cd "$suite" && git rev-parse --short HEAD 2>/dev/null || echo 'not a git checkout')), $(echo $files | wc -w) test files"
mkdir -p "$scratch/plain"
echo "== plain directory"
run_suite "$scratch/plain" "$scratch/plain.res"
table=$(compare plain "$scratch/plain.res")
all_same=1
for r in $runs; do
  rm -rf "$lower" "$upper" "$work"
  mkdir -p "$lower" "$upper" "$work" "$mnt"
  if [ -n "$kernel" ]; then
    name=overlayfs
    mount -t overlay overlay -o "lowerdir=$lower,upperdir=$upper,workdir=$work" "$mnt" || exit 1
  else
    name="unionfs-ts $r"
    [ "$r" = default ] && opts=() || opts=(-o "$r")
    node "$repo/bin/unionfs-ts.js" mount "${opts[@]}" "$upper:$lower" "$mnt" || exit 1
  fi
  echo "== $name"
  res=$scratch/run.res
  run_suite "$mnt" "$res"
  umount "$mnt" || umount -l "$mnt"
  name=${name// /-}
  line=$(compare "$name" "$res")
  table="$table
$line"
  [ "$(echo "$line" | awk '{ print $5 }')" = 0 ] || all_same=
  [ -s "$scratch/$name.diff" ] && { echo "differences from the plain directory:"; sed 's/^/  /' "$scratch/$name.diff"; }
done

echo
printf '%-34s %6s %6s %9s %10s %8s\n' where checks failed todo-ok 'not plain' 'fs-only'
echo "$table"
[ -n "$all_same" ]
