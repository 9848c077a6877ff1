#!/usr/bin/env bash
# Deep layer stacks and the dentry cache.
#
#   sudo examples/deep-stack.sh            (LAYERS=128 for a deeper stack)
#
# An image of many layers is a long lookup walk: a name only the bottom layer
# has, or a name no layer has (the common case: $PATH, `import` and dlopen
# searches), is looked for in every layer on the way down. unionfs-ts keeps
# what it found in an LRU dentry cache (positive and negative entries), so
# the walk is paid once per name. `inspect` shows the walk; `stats` shows the
# cache at work.
#
# The kernel caches names too (entry_timeout, negative_timeout: 1 s by
# default), and then the daemon never sees the repeated lookups. This
# example turns the kernel's caching off (all timeouts 0) so that every
# lookup reaches the daemon and its own dentry cache shows in the counters.
source "$(dirname "$0")/common.sh"

LAYERS="${LAYERS:-64}"
MNT="$WORK/mnt"

step "1. $LAYERS read-only layers and a writable one on top"
BRANCHES="$WORK/up"
mkdir -p "$WORK/up"
for i in $(seq 1 "$LAYERS"); do
  L="$WORK/layer$i"
  mkdir -p "$L/etc" "$L/usr/lib"
  echo "layer $i" > "$L/etc/layer$i.conf"
  BRANCHES="$BRANCHES:$L"
done
mkdir -p "$WORK/layer$LAYERS/usr/bin"
printf '#!/bin/sh\necho tool from the bottom layer\n' > "$WORK/layer$LAYERS/usr/bin/tool"
chmod +x "$WORK/layer$LAYERS/usr/bin/tool"
say "each layer i has etc/layer<i>.conf; only layer $LAYERS (the bottom) has usr/bin/tool"

step "2. mount with the kernel's name caching off"
mount_union -o entry_timeout=0,attr_timeout=0,negative_timeout=0 "$BRANCHES" "$MNT"
run ls "$MNT/etc" | head -5
say "..."

step "3. the walk for usr/bin/tool: through every layer to the bottom"
say "\$ unionfs inspect $MNT/usr/bin/tool   (shortened)"
walk="$(unionfs inspect "$MNT/usr/bin/tool")"
head -n 3 <<< "$walk"
say "  ... (the layers in between have no usr/bin either: 'no parent dir')"
tail -n 2 <<< "$walk"
run "$MNT/usr/bin/tool"

step "4. the walk for a name no layer has"
say "\$ unionfs inspect $MNT/usr/lib/libmissing.so   (shortened)"
walk="$(unionfs inspect "$MNT/usr/lib/libmissing.so")"
head -n 4 <<< "$walk"
say "  ... (every layer has usr/lib, none has the name: each one is consulted)"
tail -n 2 <<< "$walk"

step "5. look up 200 missing names twice: the first pass walks the layers, the second hits the cache"
before=$(unionfs stats --json "$MNT")
for i in $(seq 200); do [ -e "$MNT/usr/lib/libmissing$i.so" ] || true; done
middle=$(unionfs stats --json "$MNT")
for i in $(seq 200); do [ -e "$MNT/usr/lib/libmissing$i.so" ] || true; done
after=$(unionfs stats --json "$MNT")
show () { # label json-before json-after
  node -e '
    const [a, b] = [JSON.parse(process.argv[1]), JSON.parse(process.argv[2])]
    const d = k => b.dentryCache[k] - a.dentryCache[k]
    const l = (b.requests.byKind.LOOKUP ?? 0) - (a.requests.byKind.LOOKUP ?? 0)
    console.log(`  ${process.argv[3]}: ${l} LOOKUP requests, dentry cache ${d("misses")} misses, ${d("negativeHits")} negative hits, ${d("hits")} hits`)
  ' "$2" "$3" "$1"
}
show "first pass " "$before" "$middle"
show "second pass" "$middle" "$after"

step "6. the mount's counters"
run unionfs stats "$MNT"
say
say "The first lookup of a missing name is a miss (the walk through $LAYERS layers,"
say "answered from one directory index per layer); every later one is a negative"
say "hit. With the kernel's default timeouts most repeats never reach the daemon."
