#!/bin/sh
# What the test suite needs from Debian beyond a fresh machine: strace (the
# crash tests stop the daemon between two of its system calls), fio (data
# verification through the mount), busybox-static (examples/container.sh),
# fuse3 (test/rootless.test.ts), acl (setfacl/getfacl, test/fuse-acl.test.ts)
# and stress-ng (test/robust-stress-ng.test.ts).
# Installed only when missing, and only as root; run by `npm test`.
set -eu
missing=
command -v strace >/dev/null 2>&1 || missing="$missing strace"
command -v fio >/dev/null 2>&1 || missing="$missing fio"
command -v setfacl >/dev/null 2>&1 || missing="$missing acl"
command -v stress-ng >/dev/null 2>&1 || missing="$missing stress-ng"
dpkg -s busybox-static >/dev/null 2>&1 || missing="$missing busybox-static"
# fuse3: the setuid fusermount3 the rootless tests mount through as a user
# (it replaces Debian's `fuse`, which it also provides).
command -v fusermount3 >/dev/null 2>&1 || missing="$missing fuse3"
[ -n "$missing" ] || exit 0
if [ "$(id -u)" != 0 ]; then
  echo "test-deps: missing:$missing (install them as root: apt-get install$missing)" >&2
  exit 1
fi
echo "test-deps: installing$missing from Debian"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
