#!/bin/bash
# Runs amir73il/unionmount-testsuite against unionfs-ts (or the kernel's
# overlayfs, to check the setup), one test at a time in each mode, and prints
# a pass/fail table. The suite is not part of the project: point this script
# at a checkout of it.
#
#   scripts/unionmount-testsuite.sh [--kernel] SUITE_DIR [MODE...]
#
#   MODE       ov (./run --ov --fuse=unionfs-ts), ov3 (--ov=3), samefs
#              (--ov --samefs), verify (--ov --verify), ov3-verify,
#              ov3-samefs. Default: ov ov3 samefs verify.
#   --kernel   the kernel's overlayfs instead of unionfs-ts (no --fuse=).
#
#   UMTS_TESTS    the tests to run (space-separated; default: every test the
#                 suite's `run` lists for a union that renames directories)
#   UMTS_TIMEOUT  seconds one test may take (default 600: --ov=3 remounts
#                 after nearly every operation, each mount a new daemon)
#   UMTS_SCRATCH  the scratch dir (default: a new one under /tmp, removed at
#                 the end); UMTS_KEEP=1 keeps it, with every test's log
#
# Needs root, /dev/fuse, python3 and the mount(8) helper in place
# (/sbin/mount.fuse.unionfs-ts, which `npm ci` as root installs; see
# scripts/install-helpers.js). The suite's mounts go under the scratch dir
# (UNIONMOUNT_BASEDIR, UNIONMOUNT_MNTPOINT and, except with --samefs,
# UNIONMOUNT_LOWERDIR), never at its defaults /lower, /upper and /mnt.
# `./run` stops at the first failing subtest, so each test runs on its own,
# after `./run -c` has unmounted what the previous one left. Nothing stays
# mounted when this script exits, even when interrupted. Exit status: 0 when
# every test passed in every mode, 1 otherwise, 2 on bad usage.
set -u
. "$(dirname "$0")/suite-head.sh"

suite_head run '[ov|ov3|samefs|verify|ov3-verify|ov3-samefs ...]' "$@"
shift $taken
if [ -z "$kernel" ] && [ ! -x /sbin/mount.fuse.unionfs-ts ]; then
  echo "$0: /sbin/mount.fuse.unionfs-ts is missing: run 'node scripts/install-helpers.js' as root" >&2
  exit 2
fi
modes=${*:-ov ov3 samefs verify}

# The suite's arguments for a mode. --fuse= must follow the --ov selector and
# come before --samefs (the order the suite's own argument parser reads).
args_of() {
  local ov=--ov rest=
  case $1 in
    ov) ;;
    ov3) ov=--ov=3 ;;
    samefs) rest=--samefs ;;
    verify) rest=--verify ;;
    ov3-verify) ov=--ov=3; rest=--verify ;;
    ov3-samefs) ov=--ov=3; rest=--samefs ;;
    *) echo "$0: unknown mode '$1'" >&2; exit 2 ;;
  esac
  if [ -n "$kernel" ]; then echo "$ov $rest"; else echo "$ov --fuse=unionfs-ts $rest"; fi
}
for m in $modes; do args_of "$m" >/dev/null || exit 2; done

# The suite's own test list: every quoted name from `tests = [` up to the
# test selection, except rename-exdev (run only for unions that answer EXDEV
# to directory renames; unionfs-ts never does).
tests=${UMTS_TESTS:-$(sed -n '/^tests = \[/,/^if len(args) > 0:/p' "$suite/run" |
  grep -o '"[a-z0-9-]*"' | tr -d '"' | grep -vx rename-exdev)}
[ -n "$tests" ] || { echo "$0: no tests found in $suite/run" >&2; exit 2; }
total=$(echo $tests | wc -w)
timeout=${UMTS_TIMEOUT:-600}

if [ -n "${UMTS_SCRATCH:-}" ]; then
  scratch=$UMTS_SCRATCH; mkdir -p "$scratch"
else
  scratch=$(mktemp -d /tmp/unionmount-testsuite.XXXXXX)
fi
# The impermissible test switches to another uid, which must reach the mountpoint.
chmod 755 "$scratch"
lower=$scratch/lower base=$scratch/base mnt=$scratch/mnt
mkdir -p "$lower" "$base" "$mnt" "$scratch/logs"

# What the suite mounted, not the lower layer's own tmpfs.
clean_up() {
  (cd "$suite" && UNIONMOUNT_LOWERDIR=$lower UNIONMOUNT_BASEDIR=$base UNIONMOUNT_MNTPOINT=$mnt \
    timeout 120 ./run -c >/dev/null 2>&1)
  local m
  for m in $(mounts_under); do
    [ "$m" = "$lower" ] || umount "$m" 2>/dev/null || umount -l "$m"
  done
}
running=
finish() {
  stop_running
  clean_up
  while grep -q " $lower " /proc/mounts; do umount "$lower" || umount -l "$lower"; done
  leave_scratch "${UMTS_KEEP:-}" "logs kept in $scratch/logs" "${UMTS_SCRATCH:-}"
}
trap finish EXIT
trap 'exit 130' INT TERM
# A lower layer given in UNIONMOUNT_LOWERDIR must be a mount of its own: the
# suite checks that a file not yet copied up shows the lower st_dev.
mount -t tmpfs umts_lower "$lower" || exit 1

what=${kernel:+kernel overlayfs}
what=${what:-unionfs-ts}
# Which checkout serves the mounts: the one the helper leads to.
[ -n "$kernel" ] || echo "mount(8) helper: /sbin/mount.fuse.unionfs-ts -> $(readlink -f /sbin/mount.fuse.unionfs-ts)"
summary=
all_passed=1
for m in $modes; do
  # shellcheck disable=SC2046
  set -- $(args_of "$m")
  cmd="./run $*"
  echo "== $what: $cmd TEST ($total tests, one at a time)"
  passed=0 failed=
  for t in $tests; do
    clean_up
    # A mount of the previous test may have been undone, but its files stay:
    # the suite's set-up expects a fresh base dir.
    [ "$(mounts_under)" = "$lower" ] && rm -rf "${base:?}"/* "${mnt:?}"/*
    log=$scratch/logs/$m-$t.log
    start=$(date +%s)
    # In the background, so that an interrupt is handled at once (finish
    # stops the test by its pid).
    if [ "$m" = samefs ] || [ "$m" = ov3-samefs ]; then
      (cd "$suite" && exec env -u UNIONMOUNT_LOWERDIR UNIONMOUNT_BASEDIR="$base" UNIONMOUNT_MNTPOINT="$mnt" \
        timeout -k 10 "$timeout" ./run "$@" "$t") >"$log" 2>&1 &
    else
      (cd "$suite" && UNIONMOUNT_LOWERDIR="$lower" UNIONMOUNT_BASEDIR="$base" UNIONMOUNT_MNTPOINT="$mnt" \
        exec timeout -k 10 "$timeout" ./run "$@" "$t") >"$log" 2>&1 &
    fi
    running=$!
    wait $running
    rc=$?
    running=
    secs=$(( $(date +%s) - start ))
    if [ $rc = 0 ]; then
      passed=$((passed + 1)); printf '  %-24s pass  %4ss\n' "$t" "$secs"
    else
      failed="$failed $t"
      why="exit $rc"; [ $rc = 124 ] || [ $rc = 137 ] && why="timed out after ${timeout}s"
      printf '  %-24s FAIL  %4ss  (%s) %s\n' "$t" "$secs" "$why" "$(grep -v '^ ' "$log" | tail -n 1)"
    fi
  done
  [ -n "$failed" ] && all_passed=
  summary="$summary$(printf '%-11s %3d/%-3d  %s' "$m" "$passed" "$total" "$cmd")${failed:+  failed:$failed}
"
done

echo
echo "unionmount-testsuite against $what ($suite)"
printf '%-11s %-8s %s\n' mode passed command
printf '%s' "$summary"
[ -n "$all_passed" ]
