/**
 * Ring 3, hostile layers at the kernel's limits: names of exactly 255 bytes
 * (ASCII and multi-byte UTF-8) and paths near PATH_MAX, in a read-only
 * branch, driven through the mount.
 *
 * - 255-byte names: lookup, read, copy-up (append, chmod, truncate,
 *   setxattr), rename to another 255-byte name, link, unlink and rmdir
 *   (whiteouts: `.wh.` + 255 bytes does not fit, so even the AUFS dialect
 *   needs the other form), mkdir over the whiteout; 256 bytes gets
 *   ENAMETOOLONG from every call that makes a name.
 * - Deep paths: a chain of sixteen 250-byte directory names (a 4076-byte
 *   path to the file at the bottom, so the branch's own path to it is
 *   past PATH_MAX), walked one directory descriptor at a time (openat)
 *   by a python3 child: read, append (copies up all sixteen parents),
 *   create, rename, link, unlink, mkdir, setxattr, chmod, and a whiteout
 *   in the middle of the chain.
 * Each scenario's transcript on the union must equal the one on a plain
 * directory holding the same tree (the kernel's overlayfs too, as a
 * reference), the final trees must match, the view must survive a remount,
 * the read-only branch is unchanged and the sentinel next to the branches
 * is neither read nor changed.
 */
import t, { type Test } from 'tap'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { run, tmpdir } from './helpers/mount'
import { makeTree, snapshotTree, type Spec } from './helpers/tree'
import { ALL, mountStack, transcript, workLeftovers, type Variant } from './helpers/union-env'
import * as sys from './helpers/sys'
import { deepWalk, makeSentinel, snapshotSentinel } from './helpers/robust-sentinel'
import { python } from './helpers/robust-proc'

const N = 'a'.repeat(251) + '.txt'
const M = 'b'.repeat(255)
const L = 'c'.repeat(255)
const U = '\u00e9'.repeat(127) + 'x'
const D = 'd'.repeat(255)
const E = 'e'.repeat(255)
const F = 'f'.repeat(255)
const X = 'x'.repeat(256)

function longSpec (): Spec {
  return {
    [N]: 'a 255-byte name',
    [U]: 'a 255-byte name in UTF-8',
    [D]: { 'inside.txt': 'inside a 255-byte directory' },
    [E]: {},
    'short.txt': 'short'
  }
}

function longScenario (root: string): string[] {
  const p = (...parts: string[]): string => path.join(root, ...parts)
  const { out, step } = transcript()
  const short = (n: string): string => n.length > 12 ? `${n.slice(0, 3)}…(${Buffer.byteLength(n)})` : n
  const list = (...parts: string[]): string[] => fs.readdirSync(p(...parts)).map(short).sort()
  step('list /', () => list())
  step('read N', () => fs.readFileSync(p(N), 'utf8'))
  step('read U', () => fs.readFileSync(p(U), 'utf8'))
  step('read D/inside.txt', () => fs.readFileSync(p(D, 'inside.txt'), 'utf8'))
  step('append N', () => fs.appendFileSync(p(N), ' + more'))
  step('read N again', () => fs.readFileSync(p(N), 'utf8'))
  step('chmod U', () => fs.chmodSync(p(U), 0o600))
  step('mode U', () => (fs.statSync(p(U)).mode & 0o777).toString(8))
  step('truncate D/inside.txt', () => fs.truncateSync(p(D, 'inside.txt'), 6))
  step('read D/inside.txt again', () => fs.readFileSync(p(D, 'inside.txt'), 'utf8'))
  step('setxattr U', () => sys.setxattr(p(U), 'user.long', 'v'))
  step('getxattr U', () => sys.getxattr(p(U), 'user.long').toString())
  step('rename N -> M', () => fs.renameSync(p(N), p(M)))
  step('lstat N', () => fs.lstatSync(p(N)).size)
  step('read M', () => fs.readFileSync(p(M), 'utf8'))
  step('link M -> L', () => fs.linkSync(p(M), p(L)))
  step('nlink M', () => fs.statSync(p(M)).nlink)
  step('unlink L', () => fs.unlinkSync(p(L)))
  step('nlink M again', () => fs.statSync(p(M)).nlink)
  step('unlink U', () => fs.unlinkSync(p(U)))
  step('lstat U', () => fs.lstatSync(p(U)).size)
  step('rmdir E', () => fs.rmdirSync(p(E)))
  step('lstat E', () => fs.lstatSync(p(E)).size)
  step('mkdir E again', () => fs.mkdirSync(p(E)))
  step('list E', () => list(E))
  step('create F', () => fs.writeFileSync(p(F), 'new 255'))
  step('read F', () => fs.readFileSync(p(F), 'utf8'))
  step('create D/F', () => fs.writeFileSync(p(D, F), 'new inside'))
  step('list D', () => list(D))
  step('create X (256)', () => fs.writeFileSync(p(X), 'x'))
  step('mkdir X', () => fs.mkdirSync(p(X)))
  step('rename M -> X', () => fs.renameSync(p(M), p(X)))
  step('link M -> X', () => fs.linkSync(p(M), p(X)))
  step('symlink -> X', () => fs.symlinkSync('target', p(X)))
  step('lstat X', () => fs.lstatSync(p(X)).size)
  step('list / at the end', () => list())
  return out
}

const base = tmpdir(t, 'limits')
const sentinel = makeSentinel(path.join(base, 'sentinel'))
const sentinelBefore = snapshotSentinel(sentinel)

t.test('names at the 255-byte limit', async t => {
  const plain = makeTree(path.join(base, 'plain-long'), longSpec())
  const expected = longScenario(plain)
  const lower = makeTree(path.join(base, 'lower-long'), longSpec())
  const lowerBefore = snapshotTree(lower, { times: true, ino: true })
  for (const v of ALL) {
    t.test(v.name, async t => {
      const s = mountStack(t, v, [lower])
      t.strictSame(longScenario(s.mnt), expected, 'the transcript of a plain directory')
      const view = snapshotTree(s.mnt, { xattrs: 'user' })
      t.strictSame(view, snapshotTree(plain, { xattrs: 'user' }), 'and the same tree')
      if (v.impl === 'unionfs-ts') {
        t.strictSame(workLeftovers(s.work), [], 'the work dir holds nothing')
        s.remount()
        t.strictSame(snapshotTree(s.mnt, { xattrs: 'user' }), view, 'the same view after a remount')
      }
      t.strictSame(snapshotTree(lower, { times: true, ino: true }), lowerBefore, 'read-only branch unchanged')
    })
  }
})

/**
 * The deep scenario, run by python3 through directory descriptors: each
 * step names the depth it works at (0 is the root) and the call.
 */
const DEEP_OPS = String.raw`
import errno, json, os, sys
req = json.loads(sys.stdin.read())
root, chain = req['root'], req['chain']
out = []
def at(depth):
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for name in chain[:depth]:
        nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = nfd
    return fd
def step(label, depth, fn):
    try:
        fd = at(depth)
    except OSError as e:
        out.append(label + ': walk ' + errno.errorcode.get(e.errno, str(e.errno)))
        return
    try:
        v = fn(fd)
        out.append(label + ': ok' + ('' if v is None else ' ' + json.dumps(v)))
    except OSError as e:
        out.append(label + ': ' + errno.errorcode.get(e.errno, str(e.errno)))
    finally:
        os.close(fd)
def read(fd, name):
    f = os.open(name, os.O_RDONLY, dir_fd=fd)
    try: return os.read(f, 1 << 16).decode()
    finally: os.close(f)
def write(fd, name, data, flags):
    f = os.open(name, os.O_WRONLY | flags, 0o644, dir_fd=fd)
    try: os.write(f, data.encode())
    finally: os.close(f)
B = len(chain)
H = B // 2
leaf, mid = req['leaf'], req['mid']
step('read mid', H, lambda fd: read(fd, mid))
step('read leaf', B, lambda fd: read(fd, leaf))
step('list bottom', B, lambda fd: sorted(os.listdir(fd)))
step('append leaf', B, lambda fd: write(fd, leaf, ' + appended', os.O_APPEND))
step('read leaf again', B, lambda fd: read(fd, leaf))
step('create new', B, lambda fd: write(fd, 'new-' + 'z' * 200, 'created at the bottom', os.O_CREAT | os.O_EXCL))
step('read new', B, lambda fd: read(fd, 'new-' + 'z' * 200))
step('rename leaf', B, lambda fd: os.rename(leaf, 'renamed', src_dir_fd=fd, dst_dir_fd=fd))
step('link renamed', B, lambda fd: os.link('renamed', 'hard', src_dir_fd=fd, dst_dir_fd=fd))
step('nlink renamed', B, lambda fd: os.stat('renamed', dir_fd=fd).st_nlink)
step('unlink hard', B, lambda fd: os.unlink('hard', dir_fd=fd))
step('mkdir sub', B, lambda fd: os.mkdir('sub', dir_fd=fd))
step('setxattr renamed', B, lambda fd: os.setxattr(os.open('renamed', os.O_RDONLY, dir_fd=fd), 'user.deep', b'v'))
step('chmod renamed', B, lambda fd: os.chmod('renamed', 0o600, dir_fd=fd))
step('mode renamed', B, lambda fd: oct(os.stat('renamed', dir_fd=fd).st_mode & 0o777))
step('unlink mid (whiteout)', H, lambda fd: os.unlink(mid, dir_fd=fd))
step('list middle', H, lambda fd: sorted(n[:8] for n in os.listdir(fd)))
step('list bottom at the end', B, lambda fd: sorted(n[:8] for n in os.listdir(fd)))
print(json.dumps(out))
`

const MAKE_DEEP = String.raw`
import json, os, sys
req = json.loads(sys.stdin.read())
fd = os.open(req['root'], os.O_RDONLY | os.O_DIRECTORY)
for i, name in enumerate(req['chain']):
    if i == len(req['chain']) // 2:
        f = os.open(req['mid'], os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd); os.write(f, b'in the middle of the chain'); os.close(f)
    os.mkdir(name, 0o755, dir_fd=fd)
    nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
    os.close(fd)
    fd = nfd
f = os.open(req['leaf'], os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd); os.write(f, b'at the bottom of the chain'); os.close(f)
print(json.dumps('ok'))
`

const CHAIN = Array.from({ length: 16 }, (_, i) => `d${String(i).padStart(2, '0')}` + 'x'.repeat(247))
const LEAF = 'leaf-' + 'y'.repeat(54)
const MID = 'mid-' + 'w'.repeat(60)

async function makeDeep (t: Test, root: string): Promise<string> {
  fs.mkdirSync(root, { recursive: true })
  // node:fs cannot remove what it cannot name: rm(1) walks by descriptor. Runs before the scratch teardown.
  t.teardown(() => { run('rm', ['-rf', root]) })
  await python(MAKE_DEEP, { root, chain: CHAIN, leaf: LEAF, mid: MID })
  return root
}

t.test('paths near PATH_MAX', async t => {
  const unionPathLen = CHAIN.reduce((n, c) => n + 1 + Buffer.byteLength(c), 0) + 1 + LEAF.length
  t.comment(`the file at the bottom is ${unionPathLen} bytes below the root`)
  const plain = await makeDeep(t, path.join(base, 'plain-deep'))
  const expected = await python<string[]>(DEEP_OPS, { root: plain, chain: CHAIN, leaf: LEAF, mid: MID })
  t.ok(expected.every(l => !/: (E[A-Z]+|walk)/.test(l)), `on a plain directory every step works: ${expected.join(' | ')}`)
  const lower = await makeDeep(t, path.join(base, 'lower-deep'))
  const lowerBefore = deepWalk(lower, true)
  for (const v of ALL as Variant[]) {
    t.test(v.name, async t => {
      const s = mountStack(t, v, [lower])
      if (s.upper !== undefined) t.teardown(() => { run('rm', ['-rf', s.upper as string]) })
      const got = await python<string[]>(DEEP_OPS, { root: s.mnt, chain: CHAIN, leaf: LEAF, mid: MID })
      // The branch paths behind these names pass PATH_MAX (branch root +
      // union path): the union must still reach them.
      t.strictSame(got, expected, 'the transcript of a plain directory')
      const view = deepWalk(s.mnt)
      t.strictSame(view, deepWalk(plain), 'and the same tree')
      if (v.impl === 'unionfs-ts') {
        t.strictSame(workLeftovers(s.work), [], 'the work dir holds nothing')
        s.remount()
        t.strictSame(deepWalk(s.mnt), view, 'the same view after a remount')
      }
      t.strictSame(deepWalk(lower, true), lowerBefore, 'read-only branch unchanged')
    })
  }
})

t.test('the sentinel next to the branches', async t => {
  t.strictSame(snapshotSentinel(sentinel), sentinelBefore, 'was neither read nor changed')
})
