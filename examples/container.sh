#!/usr/bin/env bash
# A container, the way Docker's AUFS storage driver made one, with unionfs-ts.
#
#   sudo examples/container.sh          (KEEP=1 keeps the work dir afterwards)
#   examples/container.sh               as an ordinary user (rootless, below)
#
# 1. Builds two small image layers from Debian's busybox-static (installed
#    if missing): a base with busybox and a few files, and an "app" layer
#    that adds a script, changes a file and deletes one (a `.wh.` whiteout).
# 2. Saves them as a `docker save` archive (manifest.json, config, layers).
# 3. Imports the archive into a layer store (diff/ layers/ mnt/).
# 4. Creates a container: box-init (hostname, hosts, resolv.conf, mtab,
#    dev/console...) and box on top, and mounts it.
# 5. Runs a command inside with chroot (in new namespaces with unshare, where
#    there is one) that writes, changes and deletes files.
# 6. Shows the writes in the container layer, the image layers unchanged,
#    `docker diff`-style changes, and exports them as a layer tarball.
#
# Needs a built tree (npm ci, or tsc), and root or, rootless, an ordinary
# user where the machine lets users mount FUSE (Debian's fuse3, whose
# fusermount3 is setuid; /dev/fuse readable and writable) and make user
# namespaces: the chroot then runs as the namespace's root (unshare
# --user --map-root-user). A user's image layers keep no owners and no
# device nodes (the layers here have none), and busybox-static must already
# be installed. Everything happens in a temporary directory, unmounted and
# removed at the end.
set -euo pipefail

HERE="$(cd "$(dirname "$0")/.." && pwd)"
UNIONFS=(node "$HERE/bin/unionfs-ts.js")

say () { printf '\n\033[1m== %s\033[0m\n' "$*"; }

ROOTLESS=
if [ "$(id -u)" -ne 0 ]; then
  ROOTLESS=1
  if ! command -v fusermount3 >/dev/null || [ ! -r /dev/fuse ] || [ ! -w /dev/fuse ]; then
    echo "$0: as a user this needs fusermount3 (Debian's fuse3) and a readable, writable /dev/fuse; or run it as root" >&2
    exit 1
  fi
  if ! unshare --user --map-root-user true 2>/dev/null; then
    echo "$0: as a user this needs user namespaces (unshare --user) for the chroot; or run it as root" >&2
    exit 1
  fi
fi
if [ ! -e "$HERE/dist/lib/cli.js" ]; then
  echo "$0: build first (npm ci, or npx tsc -p tsconfig.json in $HERE)" >&2
  exit 1
fi

# busybox-static: one binary that needs no libraries inside the chroot.
if ! dpkg -s busybox-static >/dev/null 2>&1; then
  if [ -n "$ROOTLESS" ]; then
    echo "$0: busybox-static is missing (as root: apt-get install busybox-static)" >&2
    exit 1
  fi
  say "installing busybox-static"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
fi
BUSYBOX=/bin/busybox

WORK="$(mktemp -d /tmp/unionfs-ts-container.XXXXXX)"
STORE="$WORK/store"
MNT="$WORK/rootfs"
mkdir -p "$MNT"

cleanup () {
  set +e
  if grep -q " $MNT " /proc/mounts; then
    "${UNIONFS[@]}" container -s "$STORE" umount box || fusermount3 -u -z "$MNT" || umount -l "$MNT"
  fi
  if [ "${KEEP:-}" = 1 ]; then
    echo "kept $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

# ---------------------------------------------------------------------------
say "1. two image layers from busybox-static"
L1="$WORK/layer1" L2="$WORK/layer2"
mkdir -p "$L1"/{bin,etc,root,tmp,proc,sys,dev,var} "$L2"/{etc,usr/bin}
chmod 1777 "$L1/tmp"
cp "$BUSYBOX" "$L1/bin/busybox"
for applet in sh ls cat echo hostname id mkdir rm uname ps date wc grep sed; do
  ln -s busybox "$L1/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$L1/etc/passwd"
printf 'root:x:0:\n' > "$L1/etc/group"
printf 'Welcome to the base layer.\n' > "$L1/etc/motd"
printf 'Debian-ish busybox image\n' > "$L1/etc/issue"
# The app layer: a new script, a changed file, and etc/issue deleted.
printf '#!/bin/sh\necho "hello from $(hostname), pid $$"\n' > "$L2/usr/bin/hello"
chmod 755 "$L2/usr/bin/hello"
printf 'Welcome to the app layer.\n' > "$L2/etc/motd"
: > "$L2/etc/.wh.issue"
tar --numeric-owner --owner=0 --group=0 -C "$L1" -cf "$WORK/layer1.tar" .
tar --numeric-owner --owner=0 --group=0 -C "$L2" -cf "$WORK/layer2.tar" .
ls -l "$WORK"/layer*.tar

# ---------------------------------------------------------------------------
say "2. saved in the docker save format"
SAVE="$WORK/save"
mkdir -p "$SAVE"
layers_json="" diff_ids=""
for l in layer1 layer2; do
  hex="$(sha256sum "$WORK/$l.tar" | cut -d' ' -f1)"
  mkdir -p "$SAVE/$hex"
  cp "$WORK/$l.tar" "$SAVE/$hex/layer.tar"
  layers_json="${layers_json:+$layers_json,}\"$hex/layer.tar\""
  diff_ids="${diff_ids:+$diff_ids,}\"sha256:$hex\""
done
printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":[%s]}}' \
  "$diff_ids" > "$SAVE/config.tmp"
cfg="$(sha256sum "$SAVE/config.tmp" | cut -d' ' -f1)"
mv "$SAVE/config.tmp" "$SAVE/$cfg.json"
printf '[{"Config":"%s.json","RepoTags":["demo/busybox:latest"],"Layers":[%s]}]' "$cfg" "$layers_json" > "$SAVE/manifest.json"
tar --numeric-owner -C "$SAVE" -cf "$WORK/image.tar" .
tar -tf "$WORK/image.tar" | sed 's/^/  /'

# ---------------------------------------------------------------------------
say "3. imported into the layer store $STORE"
"${UNIONFS[@]}" image -s "$STORE" import "$WORK/image.tar"
"${UNIONFS[@]}" image -s "$STORE" ls
IMAGE_LAYERS="$(ls "$STORE/diff")"
fingerprint () {
  # Every path, its type, mode, owner, size, mtime and content, for each image layer.
  for id in $IMAGE_LAYERS; do
    (cd "$STORE/diff/$id" && find . -printf '%p %y %m %U:%G %s %T@\n' | sort &&
      find . -type f -print0 | sort -z | xargs -0r sha256sum)
  done | sha256sum | cut -d' ' -f1
}
BEFORE="$(fingerprint)"

# ---------------------------------------------------------------------------
say "4. a container: box-init and box on top of the image"
"${UNIONFS[@]}" container -s "$STORE" create demo/busybox box
for id in box box-init; do
  echo "layers/$id (parent chain, nearest first):"
  sed 's/^/  /' "$STORE/layers/$id"
done
echo "diff/box-init:"
(cd "$STORE/diff/box-init" && find . -mindepth 1 | sort | sed 's/^/  /')
"${UNIONFS[@]}" container -s "$STORE" mount box "$MNT"
grep " $MNT " /proc/mounts

# ---------------------------------------------------------------------------
say "5. a command inside the container"
# The image has no /dev/null (a runtime would bind-mount /dev): nothing here
# redirects to it, or the shell would make it a file in the container layer.
SCRIPT='
  [ "$1" = ns ] && hostname box
  /usr/bin/hello
  cat /etc/motd
  ls /etc
  echo "written inside the container" > /hello.txt
  echo "changed inside the container" >> /etc/motd
  rm /etc/passwd
  mkdir -p /var/log && date > /var/log/boot.log
  [ -r /proc/1/status ] && echo "processes in this pid namespace: $(ls /proc | grep -c "^[0-9]")"
  true
'
if [ -n "$ROOTLESS" ]; then
  # The user's own uid is root inside; the mount, made by fusermount3 for
  # this uid, lets it in (no allow_other needed).
  echo "(rootless: chroot as root of a new user namespace, with mount, uts, ipc and pid namespaces)"
  if unshare --user --map-root-user --mount --uts --ipc --pid --fork --mount-proc="$MNT/proc" true 2>/dev/null; then
    unshare --user --map-root-user --mount --uts --ipc --pid --fork --mount-proc="$MNT/proc" chroot "$MNT" /bin/sh -c "$SCRIPT" sh ns
  else
    echo "(no /proc of its own: the kernel refused mounting one here)"
    unshare --user --map-root-user --mount --uts --ipc chroot "$MNT" /bin/sh -c "$SCRIPT" sh plain
  fi
elif command -v unshare >/dev/null && unshare --mount --uts --ipc --pid --fork true 2>/dev/null; then
  echo "(chroot in new mount, uts, ipc and pid namespaces, with its own /proc)"
  unshare --mount --uts --ipc --pid --fork --mount-proc="$MNT/proc" chroot "$MNT" /bin/sh -c "$SCRIPT" sh ns
else
  echo "(plain chroot: unshare is not available here)"
  chroot "$MNT" /bin/sh -c "$SCRIPT" sh plain
fi
"${UNIONFS[@]}" container -s "$STORE" umount box

# ---------------------------------------------------------------------------
say "6. where the writes went"
echo "diff/box (the container layer):"
(cd "$STORE/diff/box" && find . -mindepth 1 -not -path './.wh..wh.unionfs-ts*' | sort | sed 's/^/  /')
AFTER="$(fingerprint)"
if [ "$BEFORE" = "$AFTER" ]; then
  echo "image layers: unchanged ($AFTER)"
else
  echo "image layers CHANGED: $BEFORE -> $AFTER" >&2
  exit 1
fi
echo "changes (as docker diff shows them):"
"${UNIONFS[@]}" container -s "$STORE" changes box | sed 's/^/  /'
"${UNIONFS[@]}" container -s "$STORE" diff box > "$WORK/box-layer.tar"
echo "exported as a layer tarball, $(wc -c < "$WORK/box-layer.tar") bytes:"
tar -tvf "$WORK/box-layer.tar" | sed 's/^/  /'
