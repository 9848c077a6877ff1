# What the scripts that run an outside test suite through mounts share
# (unionmount-testsuite.sh, pjdfstest.sh): the head of their command line,
# `[--kernel] SUITE_DIR ...`, and the list of what is mounted under their
# scratch dir. Sourced, not run.

# Reads `[--kernel] SUITE_DIR` from the arguments: sets `kernel` (1 with
# --kernel, else empty), `suite` (the checkout's absolute path, which must
# hold `$1`, a file every checkout of that suite has) and `taken` (how many
# arguments that was, for the caller to shift). Exits 2 on bad usage or
# without root. `$2` is the usage line's tail.
suite_head() {
  local marker=$1 usage=$2
  shift 2
  kernel= taken=0
  if [ "${1:-}" = --kernel ]; then kernel=1; shift; taken=1; fi
  [ $# -ge 1 ] || { echo "usage: $0 [--kernel] SUITE_DIR $usage" >&2; exit 2; }
  suite=$(cd "$1" 2>/dev/null && pwd) || { echo "$0: no such dir: $1" >&2; exit 2; }
  taken=$((taken + 1))
  [ -e "$suite/$marker" ] || { echo "$0: $suite/$marker not found: not a checkout of the suite" >&2; exit 2; }
  [ "$(id -u)" = 0 ] || { echo "$0: needs root" >&2; exit 2; }
}

# Everything mounted under $scratch, deepest first.
mounts_under() {
  awk -v d="$scratch/" '{ gsub(/\\040/, " ", $2); if (index($2, d) == 1) print $2 }' /proc/mounts | sort -r
}

# For the EXIT trap: stops the suite's job ($running, a pid, if set).
stop_running() {
  if [ -n "${running:-}" ]; then
    kill -TERM "$running" 2>/dev/null
    wait "$running" 2>/dev/null
  fi
}

# For the EXIT trap, once everything was unmounted: says what still is, or
# else keeps $scratch when `$1` is 1 (saying `$2`), or removes it unless
# the caller gave it (`$3` not empty).
leave_scratch() {
  if [ -n "$(mounts_under)" ]; then
    echo "$0: still mounted under $scratch:" >&2; mounts_under >&2
  elif [ "$1" = 1 ]; then
    echo "$2"
  elif [ -z "$3" ]; then
    rm -rf "$scratch"
  fi
}
