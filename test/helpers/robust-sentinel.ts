/**
 * A sentinel tree outside the branches, for the hostile-layer tests: files
 * and directories whose bytes, modes, owners, xattrs and all three times are
 * recorded before a test and compared after it. Hostile symlinks and
 * redirects in the branches point at it; nothing done through the mount may
 * read it (its atimes would move: every atime is set three days back, older
 * than its ctime, so relatime updates it on the next read or listing) or
 * change it (mtime, ctime, content).
 *
 * The snapshot itself must not read-touch the tree: a python3 child walks it
 * with O_NOATIME descriptors (the test runs as root, which owns the files)
 * and never calls readlink (that updates a symlink's atime); the sentinel
 * holds no symlinks.
 *
 * Deep trees: `deepWalk` describes a tree through directory descriptors
 * (openat), so paths longer than PATH_MAX are fine.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { execFileSync } from 'node:child_process'
import * as sys from './sys'

const SNAPSHOT = String.raw`
import hashlib, json, os, stat, sys
root = sys.argv[1]
out = {}
def walk(dfd, rel):
    names = sorted(os.listdir(dfd))
    for name in names:
        r = name if rel == '' else rel + '/' + name
        st = os.lstat(name, dir_fd=dfd)
        desc = {'mode': st.st_mode, 'uid': st.st_uid, 'gid': st.st_gid, 'size': st.st_size,
                'nlink': st.st_nlink, 'ino': st.st_ino, 'mtime': st.st_mtime_ns, 'ctime': st.st_ctime_ns,
                'atime': st.st_atime_ns}
        if stat.S_ISREG(st.st_mode):
            fd = os.open(name, os.O_RDONLY | os.O_NOATIME | os.O_NOFOLLOW, dir_fd=dfd)
            h = hashlib.sha256()
            while True:
                b = os.read(fd, 1 << 20)
                if not b: break
                h.update(b)
            desc['sha'] = h.hexdigest()[:16]
            desc['xattrs'] = {n: os.getxattr(fd, n).hex() for n in sorted(os.listxattr(fd))}
            os.close(fd)
        elif stat.S_ISDIR(st.st_mode):
            fd = os.open(name, os.O_RDONLY | os.O_NOATIME | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dfd)
            desc['xattrs'] = {n: os.getxattr(fd, n).hex() for n in sorted(os.listxattr(fd))}
            walk(fd, r)
            os.close(fd)
        out[r] = desc
top = os.open(root, os.O_RDONLY | os.O_NOATIME | os.O_DIRECTORY)
st = os.fstat(top)
out['.'] = {'mode': st.st_mode, 'uid': st.st_uid, 'gid': st.st_gid, 'mtime': st.st_mtime_ns,
            'ctime': st.st_ctime_ns, 'atime': st.st_atime_ns,
            'xattrs': {n: os.getxattr(top, n).hex() for n in sorted(os.listxattr(top))}}
walk(top, '')
print(json.dumps(out, sort_keys=True))
`

export type SentinelSnapshot = Record<string, Record<string, unknown>>

/** Make the sentinel tree in `dir` (created), with old atimes. Returns dir. */
export function makeSentinel (dir: string): string {
  fs.mkdirSync(path.join(dir, 'inner', 'deeper'), { recursive: true })
  const files: Array<[string, string | Buffer, number]> = [
    ['secret.txt', 'the sentinel\'s secret: nothing may read this through the mount\n', 0o600],
    ['passwd', 'root:x:0:0:sentinel:/root:/bin/sh\n', 0o644],
    ['data.bin', Buffer.alloc(300_000, 0xa5), 0o640],
    ['inner/inner.txt', 'inner file\n', 0o444],
    ['inner/deeper/deep.txt', 'deeper file\n', 0o755]
  ]
  for (const [rel, data, mode] of files) {
    fs.writeFileSync(path.join(dir, rel), data)
    fs.chmodSync(path.join(dir, rel), mode)
  }
  sys.setxattr(path.join(dir, 'secret.txt'), 'user.sentinel', 'do not touch')
  sys.setxattr(path.join(dir, 'inner'), 'user.sentinel', 'dir')
  fs.chownSync(path.join(dir, 'data.bin'), 4321, 8765)
  const old = Date.now() / 1000 - 3 * 86400
  const walk = (p: string): void => {
    const st = fs.lstatSync(p)
    if (st.isDirectory()) for (const n of fs.readdirSync(p)) walk(path.join(p, n))
    fs.utimesSync(p, old, old - 3600)
  }
  walk(dir)
  return dir
}

/** Everything about the sentinel tree, read without touching its atimes. */
export function snapshotSentinel (dir: string): SentinelSnapshot {
  const out = execFileSync('python3', ['-c', SNAPSHOT, dir], { encoding: 'utf8', maxBuffer: 64 << 20 })
  return JSON.parse(out) as SentinelSnapshot
}

const DEEP = String.raw`
import errno, hashlib, json, os, stat, sys
req = json.loads(sys.stdin.read())
out = {}
def describe(dfd, name, r):
    st = os.lstat(name, dir_fd=dfd)
    d = '%o uid=%d gid=%d' % (st.st_mode, st.st_uid, st.st_gid)
    if stat.S_ISREG(st.st_mode):
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dfd)
        h = hashlib.sha256()
        while True:
            b = os.read(fd, 1 << 20)
            if not b: break
            h.update(b)
        os.close(fd)
        d += ' size=%d sha=%s' % (st.st_size, h.hexdigest()[:16])
        if req['mtime']: d += ' mtime=%d' % st.st_mtime_ns
    elif stat.S_ISLNK(st.st_mode):
        d += ' -> ' + os.readlink(name, dir_fd=dfd)
    elif stat.S_ISDIR(st.st_mode):
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dfd)
        try: walk(fd, r)
        finally: os.close(fd)
    elif stat.S_ISCHR(st.st_mode):
        d += ' rdev=%d:%d' % (os.major(st.st_rdev), os.minor(st.st_rdev))
    return d
def walk(dfd, rel):
    for name in sorted(os.listdir(dfd)):
        r = name if rel == '' else rel + '/' + name
        try:
            out[r] = describe(dfd, name, r)
        except OSError as e:
            # A name the listing shows but that cannot be looked at: a finding, recorded.
            out[r] = 'listed, but ' + errno.errorcode.get(e.errno, str(e.errno))
top = os.open(req['root'], os.O_RDONLY | os.O_DIRECTORY)
walk(top, '')
print(json.dumps(out, sort_keys=True))
`

/**
 * path -> description of every entry under `root`, walked through directory
 * descriptors (for trees deeper than PATH_MAX). Paths are relative and may
 * themselves be longer than PATH_MAX.
 */
export function deepWalk (root: string, mtime = false): Record<string, string> {
  const out = execFileSync('python3', ['-c', DEEP], { input: JSON.stringify({ root, mtime }), encoding: 'utf8', maxBuffer: 64 << 20 })
  return JSON.parse(out) as Record<string, string>
}
