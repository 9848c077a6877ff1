#!/usr/bin/env bash
# The AUFS walk-through (see /work/shared/seeds/000_*, "Docker Daemon Storage
# Driver"), redone with unionfs-ts:
#
#   $ mkdir /tmp/dir{1,2} /tmp/aufs
#   $ touch /tmp/dir1/file1 /tmp/dir2/file2
#   $ mount -t aufs -o br=/tmp/dir1:/tmp/dir2 none /tmp/aufs
#   $ ls /tmp/aufs
#   file1  file2
#
# and then further than the original: read, write (copy-up), delete
# (whiteout), and what each branch holds on disk after every step.
#
#   sudo examples/aufs-walkthrough.sh      (KEEP=1 keeps the scratch dir)
#
# dir1 is the top branch and writable (as in AUFS's br=dir1:dir2), dir2 is
# read-only. Everything happens in a temporary directory, unmounted and
# removed at the end, even on error.
source "$(dirname "$0")/common.sh"

DIR1="$WORK/dir1" DIR2="$WORK/dir2" MNT="$WORK/aufs" TRACE="$WORK/trace.log"
both () { show_branch "dir1 (top, rw)" "$DIR1"; show_branch "dir2 (ro)" "$DIR2"; }
trace_since () { # the trace lines written since the last call
  local n; n=$(wc -l < "$TRACE")
  if [ "$n" -gt "${TRACE_SEEN:-0}" ]; then tail -n +"$(( ${TRACE_SEEN:-0} + 1 ))" "$TRACE" | sed 's/^/  trace: /'; fi
  TRACE_SEEN=$n
}

step "1. two branches: dir1 has file1, dir2 has file2"
run mkdir -p "$DIR1" "$DIR2" "$MNT"
run touch "$DIR1/file1"
echo "I live in dir2" > "$DIR2/file2"
say "(file2 holds a line of text, so there is something to copy)"
both

step "2. mount them: dir1 on top (writable), dir2 below (read-only)"
mount_union -o "trace=$TRACE" "$DIR1:$DIR2" "$MNT"
run ls "$MNT"
say "Both files show in one directory. Which branch does each come from?"
run unionfs inspect "$MNT"

step "3. read file2: served from dir2, nothing is copied"
run cat "$MNT/file2"
both
trace_since
say "(no trace line: reading never copies)"

step "4. write to file2: copy-up"
say "dir2 is read-only, so the first write copies file2 up into dir1, then"
say "changes the copy. dir2's file2 is untouched."
runsh "echo 'appended through the mount' >> $MNT/file2"
run cat "$MNT/file2"
both
trace_since
run unionfs inspect "$MNT/file2"

step "5. a new file lands in the writable branch only"
runsh "echo new > $MNT/file3"
both

step "6. delete file2: the copy goes, a whiteout hides dir2's file2"
say "dir2 still has file2 and cannot be changed, so dir1 gets a whiteout"
say "(.wh.file2, the AUFS form) that hides it from the mount."
run rm "$MNT/file2"
run ls "$MNT"
both
trace_since
run unionfs inspect "$MNT/file2"

step "7. the mount's counters"
run unionfs stats "$MNT"

step "8. unmount: the branches keep everything"
umount_union "$MNT"
both
say
say "dir2 is exactly as it was: every change lives in dir1 (the container"
say "layer, in Docker's words): the copied-up-then-deleted file2 as a whiteout,"
say "and the new file3. Mount the same branches again and the view is back."
