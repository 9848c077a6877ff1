#!/usr/bin/env bash
# What a copy-up costs: the thing AUFS is criticised for (seeds/000_*: "if
# the file is large, the whole file is copied even when only a small part
# changes"). unionfs-ts copies the same way (whole files, file-level
# copy-on-write), but as cheaply as the filesystem allows: a reflink where
# the filesystem has one (btrfs, xfs), else copy_file_range over the data
# extents only, so holes stay holes.
#
#   sudo examples/copy-up-cost.sh          (SIZE_MB=1024 for a bigger file)
#
# Shows: appending one byte to a large lower file copies all of it (trace
# line: bytes and milliseconds); the second append copies nothing; a sparse
# file copies only its data; opening with O_TRUNC copies nothing at all.
source "$(dirname "$0")/common.sh"

SIZE_MB="${SIZE_MB:-256}"
UP="$WORK/up" LOW="$WORK/lower" MNT="$WORK/mnt" TRACE="$WORK/trace.log"
now_ms () { echo $(( $(date +%s%N) / 1000000 )); }
last_trace () { tail -n 1 "$TRACE" | sed 's/^/  trace: /'; }

step "1. a read-only branch with a ${SIZE_MB} MiB file, a sparse 1 GiB file with 1 MiB of data, and another big file"
mkdir -p "$UP" "$LOW"
run dd if=/dev/zero of="$LOW/big.bin" bs=1M count="$SIZE_MB" status=none
run truncate -s 1G "$LOW/sparse.img"
run dd if=/dev/zero of="$LOW/sparse.img" bs=1M count=1 seek=512 conv=notrunc status=none
run cp "$LOW/big.bin" "$LOW/replaced.bin"
run du -h --apparent-size "$LOW/sparse.img"
run du -h "$LOW/sparse.img"
show_branch "lower (ro)" "$LOW"
show_branch "up (rw)" "$UP"

step "2. mount, tracing every copy-up"
mount_union -o "trace=$TRACE" "$UP:$LOW" "$MNT"

step "3. append ONE byte to big.bin: the whole file is copied up first"
t0=$(now_ms); runsh "printf x >> $MNT/big.bin"; t1=$(now_ms)
say "the append took $(( t1 - t0 )) ms, seen from the shell"
last_trace
show_branch "up (rw)" "$UP"

step "4. append again: the copy is already in the writable branch, nothing is copied"
t0=$(now_ms); runsh "printf y >> $MNT/big.bin"; t1=$(now_ms)
say "the append took $(( t1 - t0 )) ms"
run wc -l "$TRACE"

step "5. touch the sparse file (a metadata change copies up too): holes stay holes"
run touch "$MNT/sparse.img"
last_trace
run du -h --apparent-size "$UP/sparse.img"
run du -h "$UP/sparse.img"
say "1 GiB long, but only the 1 MiB of data was copied and takes space."

step "6. overwrite replaced.bin with O_TRUNC (shell '>'): nothing to copy"
runsh "echo fresh > $MNT/replaced.bin"
last_trace

step "7. the mount's counters"
run unionfs stats "$MNT"
say
say "Copy-up cost grows with the file, not with the change: a ${SIZE_MB} MiB copy"
say "for one byte. overlayfs' metacopy and block-level drivers (devicemapper,"
say "btrfs, zfs) avoid it; a file-level union pays it once per file."
