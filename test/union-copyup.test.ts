/**
 * Ring 3, copy-up through a real mount, checked in the branches on disk.
 *
 * Every trigger the spec names (open O_WRONLY / O_RDWR / O_TRUNC / O_APPEND,
 * truncate, chmod, chown, utimes, setxattr, removexattr, link, rename) is
 * applied to its own lower file; the copy in the writable branch must carry
 * the data, mode, owner, atime/mtime and user xattrs the operation did not
 * change. Also: symlinks keep their target, fifos and char devices are
 * recreated, a sparse 64 MiB file stays sparse, missing parents are created
 * first with the mode, owner and times of the dirs they shadow, reads never
 * copy up, st_ino does not change, a read-only fd opened before the copy-up
 * sees data written after it, the read-only branch is byte-for-byte unchanged
 * and the work dir holds nothing afterwards.
 *
 * Runs on unionfs-ts (both dialects, both syntaxes) and on overlayfs, where
 * the one known overlayfs shortcoming (the stale read-only fd) is a todo.
 */
import t from 'tap'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { createHash } from 'node:crypto'
import { chr, dir, fifo, file, major, minor, makeTree, snapshotTree, sparse, symlink, typeName } from './helpers/tree'
import { ALL, mountStack, whiteoutOnDisk, workLeftovers, type Stack } from './helpers/union-env'
import { tmpdir } from './helpers/mount'
import * as sys from './helpers/sys'

const MiB = 1024 * 1024
const T_M = 1_500_000_000 // lower files' mtime
const T_A = 1_400_000_000 // lower files' atime
const XA = { 'user.one': '1', 'user.two': 'two\u0000bytes' }
const own = { mode: 0o604, uid: 31, gid: 32, mtime: T_M, atime: T_A, xattrs: XA }

const TRIGGERS = ['wronly', 'rdwr', 'trunc', 'append', 'truncate', 'chmod', 'chown', 'utimes',
  'setxattr', 'removexattr', 'link', 'rename']

function lowerSpec (): Parameters<typeof makeTree>[1] {
  const spec: Parameters<typeof makeTree>[1] = {
    a: dir({
      b: dir({
        c: dir({
          'deep.txt': file('deep data', { mode: 0o640, uid: 21, gid: 22, mtime: T_M, xattrs: { 'user.k': 'v' } })
        }, { mode: 0o770, uid: 15, gid: 16, mtime: 1_100_000_003 })
      }, { mode: 0o705, uid: 13, gid: 14, mtime: 1_100_000_002, xattrs: { 'user.dir': 'b' } })
    }, { mode: 0o750, uid: 11, gid: 12, mtime: 1_100_000_001 }),
    sym: symlink('some/target', { uid: 41, gid: 42, mtime: T_M }),
    fifo: fifo({ mode: 0o640, uid: 43, gid: 44, mtime: T_M }),
    chr: chr(1, 3, { mode: 0o620, uid: 45, gid: 46, mtime: T_M }),
    'sparse-chmod': sparse(64 * MiB, [[0, 'head'], [32 * MiB, 'middle'], [64 * MiB - 4, 'tail']], { mode: 0o644, mtime: T_M }),
    'sparse-write': sparse(64 * MiB, [[5 * MiB, 'five'], [40 * MiB, 'forty']], { mode: 0o644, mtime: T_M }),
    'stale.txt': 'old data, longer than what replaces it',
    'stale-trunc.txt': 'old data',
    'ro.txt': file('read only', { xattrs: { 'user.r': 'r' } })
  }
  for (const name of TRIGGERS) spec[`t-${name}`] = file(`content of ${name}\n`.repeat(1000), own)
  return spec
}

interface Meta { type: string, mode: number, uid: number, gid: number, size: bigint, mtimeNs: bigint, atimeNs: bigint, xattrs: string, data: string }

function metaOf (p: string): Meta {
  const st = fs.lstatSync(p, { bigint: true })
  const type = typeName(st.mode)
  let data = ''
  if (type === 'file') data = createHash('sha256').update(fs.readFileSync(p)).digest('hex').slice(0, 16)
  else if (type === 'symlink') data = fs.readlinkSync(p)
  else if (type === 'chr') data = `${major(st.rdev)}:${minor(st.rdev)}`
  let xattrs = ''
  if (type === 'file' || type === 'dir') {
    const all = sys.xattrsOf([p])[p]
    if (typeof all !== 'string') {
      xattrs = Object.keys(all).filter(n => n.startsWith('user.')).sort().map(n => `${n}=${all[n].toString('latin1')}`).join(',')
    }
  }
  return {
    type, mode: Number(st.mode) & 0o7777, uid: Number(st.uid), gid: Number(st.gid),
    size: st.size, mtimeNs: st.mtimeNs, atimeNs: st.atimeNs, xattrs, data
  }
}

type Field = keyof Meta
const ALL_FIELDS: Field[] = ['type', 'mode', 'uid', 'gid', 'size', 'mtimeNs', 'atimeNs', 'xattrs', 'data']

/** The fields of `got` and `want` named in `fields`, side by side. */
function pick (m: Meta, fields: Field[]): Record<string, string> {
  const o: Record<string, string> = {}
  for (const f of fields) o[f] = f === 'mode' ? m.mode.toString(8) : String(m[f])
  return o
}

function carried (t: tap.Test, s: Stack, rel: string, lowerMeta: Meta, changed: Field[], what: string): void {
  const up = s.u(rel)
  if (!t.ok(existsNoFollow(up), `${what}: ${rel} is in the writable branch`)) return
  const keep = ALL_FIELDS.filter(f => !changed.includes(f))
  t.strictSame(pick(metaOf(up), keep), pick(lowerMeta, keep), `${what}: copy carries ${keep.join(', ')}`)
  // The view shows what the writable branch holds.
  const viewKeep = keep.filter(f => f !== 'atimeNs')
  t.strictSame(pick(metaOf(s.m(rel)), viewKeep), pick(metaOf(up), viewKeep), `${what}: the mount shows the copy`)
}

function existsNoFollow (p: string): boolean {
  try { fs.lstatSync(p); return true } catch { return false }
}

function checkCopyUp (t: tap.Test, v: (typeof ALL)[number]): void {
  const lower = makeTree(tmpdir(t, 'lower'), lowerSpec())
  const snapOpts = { times: true, ino: true, blocks: true } as const
  const lowerBefore = snapshotTree(lower, snapOpts)
  const metas = new Map<string, Meta>()
  for (const rel of [...TRIGGERS.map(n => `t-${n}`), 'a', 'a/b', 'a/b/c', 'a/b/c/deep.txt', 'sym', 'fifo', 'chr',
    'sparse-chmod', 'sparse-write', 'ro.txt']) {
    metas.set(rel, metaOf(path.join(lower, rel)))
  }
  const s = mountStack(t, v, [lower])
  const up = s.upper as string
  const inoBefore = new Map<string, bigint>()
  for (const rel of metas.keys()) inoBefore.set(rel, fs.lstatSync(s.m(rel), { bigint: true }).ino)
  const lowerMeta = (rel: string): Meta => metas.get(rel) as Meta

  // Reads never copy up.
  fs.readFileSync(s.m('ro.txt'))
  fs.closeSync(fs.openSync(s.m('ro.txt'), fs.constants.O_RDONLY))
  sys.getxattr(s.m('ro.txt'), 'user.r')
  sys.listxattr(s.m('ro.txt'))
  fs.readlinkSync(s.m('sym'))
  fs.readdirSync(s.m('a/b/c'))
  fs.accessSync(s.m('ro.txt'), fs.constants.R_OK | fs.constants.W_OK)
  fs.statSync(s.m('a/b/c/deep.txt'))
  t.notOk(fs.existsSync(path.join(up, 'ro.txt')), 'reading, stat, listing, getxattr, readlink copy nothing up')
  t.notOk(fs.existsSync(path.join(up, 'a')), 'no parent dir copied up by lookups')

  const C = fs.constants
  t.test('open O_WRONLY', async t => {
    const fd = fs.openSync(s.m('t-wronly'), C.O_WRONLY)
    try {
      t.ok(fs.existsSync(s.u('t-wronly')), 'copied up at open, before any write')
      carried(t, s, 't-wronly', lowerMeta('t-wronly'), ['atimeNs'], 'O_WRONLY')
    } finally { fs.closeSync(fd) }
  })
  t.test('open O_RDWR and write', async t => {
    const fd = fs.openSync(s.m('t-rdwr'), C.O_RDWR)
    t.ok(fs.existsSync(s.u('t-rdwr')), 'copied up at open')
    fs.writeSync(fd, Buffer.from('X'), 0, 1, 0)
    fs.closeSync(fd)
    t.equal(fs.readFileSync(s.u('t-rdwr'), 'utf8'), 'X' + 'content of rdwr\n'.repeat(1000).slice(1), 'data: copy plus the write')
    carried(t, s, 't-rdwr', lowerMeta('t-rdwr'), ['data', 'mtimeNs', 'atimeNs'], 'O_RDWR')
  })
  t.test('open O_TRUNC', async t => {
    fs.closeSync(fs.openSync(s.m('t-trunc'), C.O_WRONLY | C.O_TRUNC))
    t.equal(fs.statSync(s.u('t-trunc')).size, 0, 'copy truncated')
    carried(t, s, 't-trunc', lowerMeta('t-trunc'), ['data', 'size', 'mtimeNs', 'atimeNs'], 'O_TRUNC')
  })
  t.test('open O_APPEND and write', async t => {
    fs.appendFileSync(s.m('t-append'), 'more')
    t.equal(fs.readFileSync(s.u('t-append'), 'utf8'), 'content of append\n'.repeat(1000) + 'more', 'data: copy plus the appended bytes')
    carried(t, s, 't-append', lowerMeta('t-append'), ['data', 'size', 'mtimeNs', 'atimeNs'], 'O_APPEND')
  })
  t.test('truncate', async t => {
    fs.truncateSync(s.m('t-truncate'), 3)
    t.equal(fs.readFileSync(s.u('t-truncate'), 'utf8'), 'con', 'copy truncated to 3 bytes')
    carried(t, s, 't-truncate', lowerMeta('t-truncate'), ['data', 'size', 'mtimeNs', 'atimeNs'], 'truncate')
  })
  t.test('chmod', async t => {
    fs.chmodSync(s.m('t-chmod'), 0o611)
    t.equal(fs.statSync(s.u('t-chmod')).mode & 0o7777, 0o611, 'mode set on the copy')
    carried(t, s, 't-chmod', lowerMeta('t-chmod'), ['mode'], 'chmod')
  })
  t.test('chown', async t => {
    fs.chownSync(s.m('t-chown'), 51, 52)
    const st = fs.statSync(s.u('t-chown'))
    t.strictSame([st.uid, st.gid], [51, 52], 'owner set on the copy')
    carried(t, s, 't-chown', lowerMeta('t-chown'), ['uid', 'gid'], 'chown')
  })
  t.test('utimes', async t => {
    fs.utimesSync(s.m('t-utimes'), 1_234_000_000, 1_234_500_000)
    const st = fs.statSync(s.u('t-utimes'), { bigint: true })
    t.strictSame([st.atimeMs, st.mtimeMs], [1_234_000_000_000n, 1_234_500_000_000n], 'times set on the copy')
    carried(t, s, 't-utimes', lowerMeta('t-utimes'), ['atimeNs', 'mtimeNs'], 'utimes')
  })
  t.test('setxattr', async t => {
    sys.setxattr(s.m('t-setxattr'), 'user.three', '3')
    carried(t, s, 't-setxattr', lowerMeta('t-setxattr'), ['xattrs'], 'setxattr')
    t.strictSame(sys.listxattr(s.u('t-setxattr')).filter(n => n.startsWith('user.')), ['user.one', 'user.three', 'user.two'],
      'copy has the lower xattrs and the new one')
    t.equal(sys.getxattr(s.u('t-setxattr'), 'user.two').toString('latin1'), 'two\u0000bytes', 'binary xattr value carried')
  })
  t.test('removexattr', async t => {
    sys.removexattr(s.m('t-removexattr'), 'user.one')
    carried(t, s, 't-removexattr', lowerMeta('t-removexattr'), ['xattrs'], 'removexattr')
    t.strictSame(sys.listxattr(s.u('t-removexattr')).filter(n => n.startsWith('user.')), ['user.two'], 'copy lacks the removed xattr')
    t.strictSame(sys.listxattr(s.m('t-removexattr')).filter(n => n.startsWith('user.')), ['user.two'], 'the mount agrees')
  })
  t.test('link', async t => {
    fs.linkSync(s.m('t-link'), s.m('t-link2'))
    carried(t, s, 't-link', lowerMeta('t-link'), [], 'link')
    const a = fs.lstatSync(s.u('t-link'), { bigint: true })
    const b = fs.lstatSync(s.u('t-link2'), { bigint: true })
    t.equal(a.ino, b.ino, 'both names are one inode in the writable branch')
    t.equal(a.nlink, 2n, 'nlink 2 on disk')
    const ma = fs.lstatSync(s.m('t-link'), { bigint: true })
    const mb = fs.lstatSync(s.m('t-link2'), { bigint: true })
    t.equal(ma.ino, mb.ino, 'one st_ino through the mount')
    t.equal(ma.nlink, 2n, 'nlink 2 through the mount')
  })
  t.test('rename', async t => {
    fs.renameSync(s.m('t-rename'), s.m('t-renamed'))
    const st = metaOf(s.u('t-renamed'))
    const want = lowerMeta('t-rename')
    const keep: Field[] = ['type', 'mode', 'uid', 'gid', 'size', 'mtimeNs', 'xattrs', 'data']
    t.strictSame(pick(st, keep), pick(want, keep), 'renamed copy carries data and metadata')
    t.notOk(fs.existsSync(s.m('t-rename')), 'old name gone from the view')
    t.ok(whiteoutOnDisk(up, 't-rename', v.dialect), `old name whited out (${v.dialect} dialect)`)
  })
  t.test('symlink: lchown and lutimes', async t => {
    fs.lchownSync(s.m('sym'), 61, 62)
    carried(t, s, 'sym', lowerMeta('sym'), ['uid', 'gid', 'atimeNs'], 'lchown symlink')
    t.equal(fs.readlinkSync(s.u('sym')), 'some/target', 'target kept')
    fs.lutimesSync(s.m('sym'), 1_000_000_000, 1_000_000_001)
    t.equal(fs.lstatSync(s.u('sym'), { bigint: true }).mtimeMs, 1_000_000_001_000n, 'lutimes reaches the copied symlink')
  })
  t.test('fifo: chmod', async t => {
    fs.chmodSync(s.m('fifo'), 0o600)
    t.ok(fs.lstatSync(s.u('fifo')).isFIFO(), 'fifo recreated')
    carried(t, s, 'fifo', lowerMeta('fifo'), ['mode', 'atimeNs'], 'chmod fifo')
  })
  t.test('char device: chown', async t => {
    fs.chownSync(s.m('chr'), 71, 72)
    t.ok(fs.lstatSync(s.u('chr')).isCharacterDevice(), 'char device recreated')
    carried(t, s, 'chr', lowerMeta('chr'), ['uid', 'gid', 'atimeNs'], 'chown char device')
  })
  t.test('sparse 64 MiB file stays sparse', async t => {
    fs.chmodSync(s.m('sparse-chmod'), 0o600)
    carried(t, s, 'sparse-chmod', lowerMeta('sparse-chmod'), ['mode', 'atimeNs'], 'chmod sparse')
    // overlayfs skips holes at its 1 MiB copy chunk granularity: sparse, but
    // not block for block. The spec asks for holes to stay holes.
    const exact = { todo: v.impl === 'overlayfs' ? 'overlayfs copies whole 1 MiB chunks around data' : false }
    const lo = fs.statSync(path.join(lower, 'sparse-chmod'))
    const cp = fs.statSync(s.u('sparse-chmod'))
    t.ok(cp.blocks * 512 < 8 * MiB, `chmod copy-up is sparse: ${cp.blocks} blocks for 64 MiB`)
    t.ok(cp.blocks <= lo.blocks + 16, `chmod copy-up: st_blocks ${cp.blocks} matches the lower's ${lo.blocks}`, exact)
    const fd = fs.openSync(s.m('sparse-write'), C.O_RDWR)
    fs.writeSync(fd, Buffer.from('W'), 0, 1, MiB)
    fs.closeSync(fd)
    const lw = fs.statSync(path.join(lower, 'sparse-write'))
    const cw = fs.statSync(s.u('sparse-write'))
    t.equal(cw.size, 64 * MiB, 'size kept through write copy-up')
    t.ok(cw.blocks * 512 < 8 * MiB, `write copy-up is sparse: ${cw.blocks} blocks for 64 MiB`)
    t.ok(cw.blocks <= lw.blocks + 32, `write copy-up: st_blocks ${cw.blocks} matches the lower's ${lw.blocks} plus the written block`, exact)
    const b = Buffer.alloc(5)
    const rfd = fs.openSync(s.m('sparse-write'), C.O_RDONLY)
    fs.readSync(rfd, b, 0, 5, 40 * MiB)
    t.equal(b.toString(), 'forty', 'data past the hole copied')
    fs.readSync(rfd, b, 0, 1, MiB)
    fs.closeSync(rfd)
    t.equal(b.toString('latin1', 0, 1), 'W', 'the write landed')
  })
  t.test('parents first, with the mode, owner and times they shadow', async t => {
    fs.chmodSync(s.m('a/b/c/deep.txt'), 0o600)
    carried(t, s, 'a/b/c/deep.txt', lowerMeta('a/b/c/deep.txt'), ['mode', 'atimeNs'], 'chmod deep file')
    for (const d of ['a', 'a/b', 'a/b/c']) {
      const want = lowerMeta(d)
      const got = metaOf(s.u(d))
      t.strictSame(pick(got, ['type', 'mode', 'uid', 'gid', 'mtimeNs']), pick(want, ['type', 'mode', 'uid', 'gid', 'mtimeNs']),
        `parent ${d}: type, mode, owner, mtime of the dir it shadows`)
      t.strictSame(pick(metaOf(s.m(d)), ['mode', 'uid', 'gid', 'mtimeNs']), pick(want, ['mode', 'uid', 'gid', 'mtimeNs']),
        `parent ${d} through the mount: unchanged`)
    }
    t.equal(metaOf(s.u('a/b')).xattrs, lowerMeta('a/b').xattrs, 'parent a/b: user xattrs carried')
    t.strictSame(fs.readdirSync(s.u('a/b/c')), ['deep.txt'], 'only the needed path copied, no siblings')
  })
  t.test('st_ino unchanged by copy-up', async t => {
    for (const [rel, ino] of inoBefore) {
      if (rel === 't-rename') continue
      t.equal(fs.lstatSync(s.m(rel), { bigint: true }).ino, ino, `${rel}: same st_ino`)
    }
    t.equal(fs.lstatSync(s.m('t-renamed'), { bigint: true }).ino, inoBefore.get('t-rename'), 'renamed file keeps its st_ino')
  })
  const staleTodo = v.impl === 'overlayfs' ? 'overlayfs: a read-only fd keeps reading the lower file after copy-up' : false
  t.test('a read-only fd opened before copy-up sees later writes', { todo: staleTodo }, async t => {
    const rfd = fs.openSync(s.m('stale.txt'), C.O_RDONLY)
    const b = Buffer.alloc(64)
    t.equal(b.toString('utf8', 0, fs.readSync(rfd, b, 0, 3, 0)), 'old', 'reads the lower data first')
    const wfd = fs.openSync(s.m('stale.txt'), C.O_RDWR)
    fs.writeSync(wfd, Buffer.from('NEW'), 0, 3, 0)
    fs.closeSync(wfd)
    t.equal(b.toString('utf8', 0, fs.readSync(rfd, b, 0, 64, 0)), 'NEW data, longer than what replaces it',
      'the old read-only fd reads the new data')
    fs.closeSync(rfd)
    const rfd2 = fs.openSync(s.m('stale-trunc.txt'), C.O_RDONLY)
    fs.truncateSync(s.m('stale-trunc.txt'), 3)
    t.equal(fs.fstatSync(rfd2).size, 3, 'fstat on the old fd sees the truncation')
    t.equal(fs.readSync(rfd2, b, 0, 64, 0), 3, 'reads stop at the new size')
    fs.closeSync(rfd2)
  })
  t.test('afterwards', async t => {
    t.strictSame(snapshotTree(lower, snapOpts), lowerBefore, 'read-only branch byte-for-byte unchanged (data, metadata, mtime, inodes)')
    t.strictSame(workLeftovers(s.work), [], 'work dir holds nothing')
    s.remount()
    t.equal(fs.readFileSync(s.m('t-rdwr'), 'utf8').slice(0, 8), 'Xontent ', 'copies survive a remount')
    t.equal(fs.statSync(s.m('t-chmod')).mode & 0o7777, 0o611, 'metadata survives a remount')
    t.notOk(fs.existsSync(s.m('t-rename')), 'rename survives a remount')
    t.equal(fs.statSync(s.m('a/b/c'), { bigint: true }).mtimeNs, lowerMeta('a/b/c').mtimeNs,
      'copied-up parent still shows the mtime of the dir it shadows after a remount')
    t.strictSame(workLeftovers(s.work), [], 'work dir still holds nothing after remount')
  })
}

for (const v of ALL) {
  t.test(`${v.name}: copy-up`, async t => { checkCopyUp(t, v) })
}
