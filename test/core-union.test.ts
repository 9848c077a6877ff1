// Ring 1: the union core in-process, against temp branch directories, no FUSE.
import t from 'tap'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { spawnSync } from 'node:child_process'
import { UnionFs } from '../lib/union/union-fs'
import { Resolver, type Entry } from '../lib/union/resolve'
import { readonlyBranch, type ReadonlyBranch } from '../lib/branch/branch'
import { DentryCache } from '../lib/cache/dentry-cache'
import type { WhiteoutDialect } from '../lib/union/config'
import * as native from '../lib/native'

const caller = { uid: 0, gid: 0, pid: process.pid }
const { O_RDONLY, O_WRONLY, O_RDWR, O_TRUNC } = fs.constants

function scratch (t: Tap.Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uts-core-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

function write (file: string, data: string | Buffer): void {
  fs.mkdirSync(path.dirname(file), { recursive: true })
  fs.writeFileSync(file, data)
}

interface Stack { root: string, up: string, lo1: string, lo2: string }

function stack (t: Tap.Test): Stack {
  const root = scratch(t)
  const s = { root, up: path.join(root, 'up'), lo1: path.join(root, 'lo1'), lo2: path.join(root, 'lo2') }
  for (const d of [s.up, s.lo1, s.lo2]) fs.mkdirSync(d)
  return s
}

async function open (s: Stack, whiteout: WhiteoutDialect = 'aufs', upper = true): Promise<UnionFs> {
  return UnionFs.open({
    lowers: [s.lo1, s.lo2], upper: upper ? s.up : undefined, whiteout,
    cacheEntries: 1000, cacheTtlMs: 0, xattrNamespace: 'trusted'
  })
}

async function names (u: UnionFs, p: string): Promise<string[]> {
  return (await u.readdir(p)).map(e => e.name).sort()
}

async function readAll (u: UnionFs, p: string): Promise<string> {
  const fh = await u.open(p, O_RDONLY)
  const buf = Buffer.alloc(1 << 16)
  const n = await u.read(fh, buf, buf.length, 0)
  await u.release(fh)
  return buf.subarray(0, n).toString()
}

t.test('lookup order: the top-most branch wins, directories merge', async t => {
  const s = stack(t)
  write(`${s.lo2}/d/a`, 'lo2-a')
  write(`${s.lo2}/d/b`, 'lo2-b')
  write(`${s.lo1}/d/a`, 'lo1-a')
  write(`${s.up}/d/c`, 'up-c')
  const u = await open(s)
  t.same(await names(u, '/d'), ['a', 'b', 'c'])
  t.equal(await readAll(u, '/d/a'), 'lo1-a')
  t.equal(await readAll(u, '/d/b'), 'lo2-b')
  t.equal(await readAll(u, '/d/c'), 'up-c')
})

t.test('a directory hides a lower file of the same name and vice versa', async t => {
  const s = stack(t)
  write(`${s.lo2}/x`, 'file')
  write(`${s.lo1}/x/inner`, 'in-dir')
  write(`${s.lo2}/y/inner`, 'lower dir')
  write(`${s.lo1}/y`, 'file above')
  const u = await open(s)
  t.ok((await u.getattr('/x')).mode & fs.constants.S_IFDIR)
  t.same(await names(u, '/x'), ['inner'])
  t.equal(await readAll(u, '/y'), 'file above')
  await t.rejects(u.getattr('/y/inner'), { code: 'ENOTDIR' })
})

for (const dialect of ['aufs', 'overlay'] as const) {
  t.test(`whiteouts and opaque dirs are read (${dialect} branch)`, async t => {
    const s = stack(t)
    write(`${s.lo2}/d/gone`, 'x')
    write(`${s.lo2}/d/kept`, 'x')
    write(`${s.lo2}/o/old`, 'x')
    fs.mkdirSync(`${s.lo1}/d`)
    fs.mkdirSync(`${s.lo1}/o`)
    write(`${s.lo1}/o/new`, 'x')
    if (dialect === 'aufs') {
      write(`${s.lo1}/d/.wh.gone`, '')
      write(`${s.lo1}/o/.wh..wh..opq`, '')
    } else {
      native.mknod(`${s.lo1}/d/gone`, fs.constants.S_IFCHR, 0)
      native.lsetxattr(`${s.lo1}/o`, 'trusted.overlay.opaque', Buffer.from('y'), 0)
    }
    const u = await open(s)
    t.same(await names(u, '/d'), ['kept'])
    await t.rejects(u.getattr('/d/gone'), { code: 'ENOENT' })
    t.same(await names(u, '/o'), ['new'])
    await t.rejects(u.getattr('/o/old'), { code: 'ENOENT' })
  })

  t.test(`unlink and rmdir leave ${dialect} whiteouts; mkdir over one is opaque`, async t => {
    const s = stack(t)
    write(`${s.lo1}/d/f`, 'x')
    write(`${s.lo1}/d/sub/inner`, 'x')
    const u = await open(s, dialect)
    await u.unlink('/d/f')
    await t.rejects(u.rmdir('/d/sub'), { code: 'ENOTEMPTY' })
    await u.unlink('/d/sub/inner')
    await u.rmdir('/d/sub')
    t.same(await names(u, '/d'), [])
    if (dialect === 'aufs') {
      t.ok(fs.existsSync(`${s.up}/d/.wh.f`))
      t.ok(fs.existsSync(`${s.up}/d/.wh.sub`))
    } else {
      const st = fs.lstatSync(`${s.up}/d/f`)
      t.ok(st.isCharacterDevice() && st.rdev === 0)
    }
    await u.mkdir('/d/sub', 0o755, caller)
    t.same(await names(u, '/d/sub'), [], 'old lower content does not come back')
    t.same(await names(u, '/d'), ['sub'])
    t.same(fs.readdirSync(`${s.up}/.wh..wh.unionfs-ts`), [], 'work dir empty')
    t.same(fs.readdirSync(s.lo1 + '/d').sort(), ['f', 'sub'], 'lower untouched')
  })
}

t.test('.wh. names and private xattrs never show and cannot be made', async t => {
  const s = stack(t)
  write(`${s.lo1}/f`, 'x')
  const u = await open(s)
  await t.rejects(u.mkdir('/.wh.x', 0o755, caller), { code: 'EPERM' })
  await t.rejects(u.create('/.wh..wh..opq', O_WRONLY, 0o644, caller), { code: 'EPERM' })
  await t.rejects(u.setxattr('/f', 'trusted.overlay.opaque', Buffer.from('y'), 0), { code: 'EPERM' })
  await u.chmod('/f', 0o600)
  t.same((await u.listxattr('/f')).filter(n => n.includes('unionfs-ts') || n.includes('overlay')), [])
  t.same(await names(u, '/'), ['f'])
})

t.test('xattrs: a name set through one path shows through every path of the file', async t => {
  const s = stack(t)
  write(`${s.lo1}/f`, 'x')
  native.lsetxattr(`${s.lo1}/f`, 'user.a', Buffer.from('1'), 0)
  write(`${s.up}/h1`, 'y')
  fs.linkSync(`${s.up}/h1`, `${s.up}/h2`)
  const u = await open(s)
  t.equal((await u.getxattr('/f', 'user.a')).toString(), '1')
  await t.rejects(u.getxattr('/f', 'user.b'), { code: 'ENODATA' }, 'absent name, answered from the listed names')
  await t.rejects(u.getxattr('/h1', 'user.b'), { code: 'ENODATA' })
  await t.rejects(u.getxattr('/h2', 'user.b'), { code: 'ENODATA' })
  t.same(await u.listxattr('/h2'), [])
  await u.setxattr('/h1', 'user.b', Buffer.from('2'), 0)
  t.equal((await u.getxattr('/h2', 'user.b')).toString(), '2', 'the other name of the hard link sees it')
  t.same(await u.listxattr('/h2'), ['user.b'])
  await u.removexattr('/h2', 'user.b')
  await t.rejects(u.getxattr('/h1', 'user.b'), { code: 'ENODATA' }, 'and its removal')
  await u.setxattr('/f', 'user.b', Buffer.from('3'), 0)
  t.equal((await u.getxattr('/f', 'user.b')).toString(), '3', 'set on a lower file: copied up, then set')
  t.same((await u.listxattr('/f')).sort(), ['user.a', 'user.b'])
  native.lremovexattr(`${s.up}/f`, 'user.a')
  await t.rejects(u.getxattr('/f', 'user.a'), { code: 'ENODATA' }, 'a name removed behind the union is gone')
})

t.test('copy-up carries data with holes, mode, owner, times, xattrs; st_ino is kept', async t => {
  const s = stack(t)
  const big = `${s.lo1}/dir/sparse`
  fs.mkdirSync(`${s.lo1}/dir`, { mode: 0o750 })
  fs.chownSync(`${s.lo1}/dir`, 12, 34)
  const fd = fs.openSync(big, 'w')
  fs.writeSync(fd, 'head', 0)
  fs.writeSync(fd, 'tail', 32 << 20)
  fs.closeSync(fd)
  fs.chownSync(big, 1000, 1000)
  fs.chmodSync(big, 0o640)
  native.lsetxattr(big, 'user.note', Buffer.from('kept'), 0)
  fs.utimesSync(big, 1000000, 2000000)
  const u = await open(s)
  const before = await u.getattr('/dir/sparse')
  await u.chmod('/dir/sparse', 0o600)
  const after = await u.getattr('/dir/sparse')
  t.equal(after.ino, before.ino, 'st_ino same before and after copy-up')
  const st = fs.statSync(`${s.up}/dir/sparse`)
  t.equal(st.size, (32 << 20) + 4)
  t.ok(st.blocks < 1024, `holes kept (${st.blocks} blocks)`)
  t.equal(st.uid, 1000)
  t.equal(st.mode & 0o7777, 0o600)
  t.equal(st.mtimeMs, 2000000 * 1000)
  t.equal(native.lgetxattr(`${s.up}/dir/sparse`, 'user.note').toString(), 'kept')
  const dst = fs.statSync(`${s.up}/dir`)
  t.equal(dst.mode & 0o7777, 0o750, 'parent copied up with its mode')
  t.equal(dst.uid, 12)
  t.equal(dst.gid, 34)
  const data = fs.readFileSync(`${s.up}/dir/sparse`)
  t.equal(data.subarray(0, 4).toString(), 'head')
  t.equal(data.subarray(32 << 20).toString(), 'tail')
  t.equal(fs.statSync(big).mode & 0o7777, 0o640, 'lower untouched')
  const u2 = await open(s)
  t.equal((await u2.getattr('/dir/sparse')).ino, before.ino, 'st_ino same across remount')
})

t.test('a copy-up leaves its parents\' times; a kill before they were put back is mended by the next open', async t => {
  const s = stack(t)
  fs.mkdirSync(`${s.lo1}/d/e`, { recursive: true })
  write(`${s.lo1}/d/e/f`, 'data')
  fs.utimesSync(`${s.lo1}/d/e`, 1_100_000_000, 1_200_000_000)
  fs.utimesSync(`${s.lo1}/d`, 1_300_000_000, 1_400_000_000)
  const u = await open(s)
  fs.utimesSync(s.up, 1_500_000_000, 1_600_000_000) // after the work dir was made in it
  await u.chmod('/d/e/f', 0o600)
  t.equal(fs.statSync(`${s.up}/d/e`).mtimeMs, 1_200_000_000_000, 'the copied-up parent keeps the mtime it shadows')
  t.equal(fs.statSync(`${s.up}/d`).mtimeMs, 1_400_000_000_000, 'so does its parent')
  t.equal(fs.statSync(s.up).mtimeMs, 1_600_000_000_000, 'and the writable branch\'s root')
  const work = `${s.up}/.wh..wh.unionfs-ts`
  t.same(fs.readdirSync(work), [], 'the work dir is empty')
  t.equal(native.lfindxattr(work, 'trusted.unionfs-ts.times'), undefined, 'and holds no note')

  // As a kill between the rename into d/e and the restore leaves things:
  // the work dir's note (atime, mtime in ns, then the parent's path) and
  // the parent's times moved.
  const note = Buffer.alloc(16 + 4)
  note.writeBigInt64LE(1_100_000_000_000_000_000n, 0)
  note.writeBigInt64LE(1_200_000_000_123_456_789n, 8)
  note.write('/d/e', 16, 'latin1')
  native.lsetxattr(work, 'trusted.unionfs-ts.times', note, 0)
  fs.writeFileSync(`${work}/tmp.1.1`, 'a copy that never landed')
  fs.utimesSync(`${s.up}/d/e`, 1_700_000_000, 1_700_000_000)
  await open(s)
  const st = fs.statSync(`${s.up}/d/e`, { bigint: true })
  t.equal(st.mtimeNs, 1_200_000_000_123_456_789n, 'the next open puts the noted mtime back')
  t.equal(st.atimeNs, 1_100_000_000_000_000_000n, 'and the atime')
  t.equal(native.lfindxattr(work, 'trusted.unionfs-ts.times'), undefined, 'and drops the note')
  t.same(fs.readdirSync(work), [], 'and sweeps the work dir')

  // A note naming a path that climbs out of the writable branch is dropped, not followed.
  const outside = path.join(s.root, 'outside')
  fs.mkdirSync(outside)
  fs.utimesSync(outside, 1_700_000_000, 1_700_000_000)
  const climbing = Buffer.alloc(16 + '/../outside'.length)
  climbing.write('/../outside', 16, 'latin1')
  native.lsetxattr(work, 'trusted.unionfs-ts.times', climbing, 0)
  await open(s)
  t.equal(fs.statSync(outside).mtimeMs, 1_700_000_000_000, 'a note that climbs out with .. is not followed')
  t.equal(native.lfindxattr(work, 'trusted.unionfs-ts.times'), undefined, 'and is dropped')
})

t.test('a parent path too long for the note: the copy-up lands without it, the times still put back', async t => {
  const s = stack(t)
  // 25 directories of 200 bytes: past PATH_MAX, and past what ext4 takes as an xattr value.
  const seg = 'x'.repeat(200)
  const cwd = process.cwd()
  process.chdir(s.lo1)
  try {
    for (let i = 0; i < 25; i++) {
      fs.mkdirSync(seg)
      process.chdir(seg)
    }
    fs.writeFileSync('f', 'data')
    fs.utimesSync('.', 1_100_000_000, 1_200_000_000)
  } finally {
    process.chdir(cwd)
  }
  // node:fs cannot remove a tree this deep; rm(1) can.
  t.teardown(() => { spawnSync('rm', ['-rf', `${s.lo1}/${seg}`, `${s.up}/${seg}`]) })
  const dir = `/${seg}`.repeat(25)
  const u = await open(s)
  await u.chmod(`${dir}/f`, 0o600)
  t.equal((await u.getattr(`${dir}/f`)).mode & 0o7777, 0o600, 'copied up')
  t.equal((await u.getattr(dir)).mtimeMs, 1_200_000_000_000, 'its parent keeps its mtime')
  t.equal(native.lfindxattr(`${s.up}/.wh..wh.unionfs-ts`, 'trusted.unionfs-ts.times'), undefined, 'no note left')
})

t.test('symlinks, fifos and devices are recreated on copy-up', async t => {
  const s = stack(t)
  fs.symlinkSync('../target', `${s.lo1}/link`)
  native.mknod(`${s.lo1}/fifo`, fs.constants.S_IFIFO | 0o644, 0)
  native.mknod(`${s.lo1}/dev`, fs.constants.S_IFCHR | 0o600, (1 << 8) | 3)
  const u = await open(s)
  for (const p of ['/link', '/fifo', '/dev']) await u.chown(p, 7, 7)
  t.equal(fs.readlinkSync(`${s.up}/link`), '../target')
  t.ok(fs.lstatSync(`${s.up}/fifo`).isFIFO())
  const dev = fs.lstatSync(`${s.up}/dev`)
  t.ok(dev.isCharacterDevice())
  t.equal(dev.rdev, (1 << 8) | 3)
  t.equal(fs.lstatSync(`${s.up}/link`).uid, 7)
})

t.test('a read-only handle opened before a copy-up sees data written after it', async t => {
  const s = stack(t)
  write(`${s.lo1}/f`, 'old data')
  const u = await open(s)
  const ro = await u.open('/f', O_RDONLY)
  const rw = await u.open('/f', O_RDWR)
  await u.write(rw, Buffer.from('NEW'), 3, 0)
  const buf = Buffer.alloc(8)
  await u.read(ro, buf, 8, 0)
  t.equal(buf.toString(), 'NEW data')
  await u.release(ro)
  await u.release(rw)
  t.equal(fs.readFileSync(`${s.lo1}/f`, 'utf8'), 'old data')
})

t.test('open O_TRUNC copies up without data', async t => {
  const s = stack(t)
  write(`${s.lo1}/f`, 'x'.repeat(100000))
  const u = await open(s)
  const fh = await u.open('/f', O_WRONLY | O_TRUNC)
  await u.release(fh)
  t.equal(fs.statSync(`${s.up}/f`).size, 0)
  await u.truncate('/f', 10)
  t.equal((await u.getattr('/f')).size, 10)
})

t.test('rename of a directory merged from several branches', async t => {
  const s = stack(t)
  write(`${s.lo2}/m/a`, 'a')
  write(`${s.lo1}/m/b`, 'b')
  write(`${s.lo1}/m/sub/c`, 'c')
  write(`${s.up}/m/d`, 'd')
  for (const dialect of ['aufs', 'overlay'] as const) {
    const u = await open(s, dialect)
    const ino = (await u.getattr('/m')).ino
    await u.rename('/m', '/n', 0)
    await t.rejects(u.getattr('/m'), { code: 'ENOENT' })
    t.same(await names(u, '/n'), ['a', 'b', 'd', 'sub'])
    t.equal(await readAll(u, '/n/sub/c'), 'c')
    t.equal((await u.getattr('/n')).ino, ino, 'st_ino kept across rename')
    await u.rename('/n/sub', '/sub2', 0)
    t.equal(await readAll(u, '/sub2/c'), 'c')
    await u.rename('/sub2', '/n/sub', 0)
    await u.rename('/n', '/m', 0)
    t.same(await names(u, '/m'), ['a', 'b', 'd', 'sub'])
    t.same(await names(u, '/'), ['m'])
  }
  t.same(fs.readdirSync(`${s.up}/.wh..wh.unionfs-ts`), [])
})

t.test('rename errors follow rename(2)', async t => {
  const s = stack(t)
  write(`${s.lo1}/dir/f`, 'x')
  write(`${s.lo1}/file`, 'x')
  fs.mkdirSync(`${s.lo1}/empty`)
  const u = await open(s)
  await t.rejects(u.rename('/dir', '/dir/inside', 0), { code: 'EINVAL' })
  await t.rejects(u.rename('/file', '/dir', 0), { code: 'EISDIR' })
  await t.rejects(u.rename('/dir', '/file', 0), { code: 'ENOTDIR' })
  await t.rejects(u.rename('/empty', '/dir', 0), { code: 'ENOTEMPTY' })
  await t.rejects(u.rename('/missing', '/x', 0), { code: 'ENOENT' })
  await t.rejects(u.rename('/file', '/dir/f', 1), { code: 'EEXIST' })
  await u.rename('/dir', '/empty', 0)
  t.same(await names(u, '/empty'), ['f'])
  write(`${s.up}/other`, 'other')
  await u.rename('/file', '/other', 2)
  t.equal(await readAll(u, '/file'), 'other', 'RENAME_EXCHANGE swaps')
  t.equal(await readAll(u, '/other'), 'x')
})

t.test('hard links: one st_ino, right nlink', async t => {
  const s = stack(t)
  write(`${s.lo1}/f`, 'x')
  const u = await open(s)
  const ino = (await u.getattr('/f')).ino
  await u.link('/f', '/g')
  const g = await u.getattr('/g')
  t.equal(g.ino, ino)
  t.equal(g.nlink, 2)
  t.equal((await u.getattr('/f')).nlink, 2)
  await u.unlink('/f')
  t.equal((await u.getattr('/g')).nlink, 1)
})

t.test('st_ino is unique across branches', async t => {
  const s = stack(t)
  write(`${s.lo1}/a`, 'x')
  write(`${s.lo2}/b`, 'x')
  write(`${s.up}/c`, 'x')
  const u = await open(s)
  const inos = new Set([(await u.getattr('/a')).ino, (await u.getattr('/b')).ino, (await u.getattr('/c')).ino])
  t.equal(inos.size, 3)
})

t.test('without a writable branch every mutation is EROFS', async t => {
  const s = stack(t)
  write(`${s.lo1}/f`, 'x')
  const u = await open(s, 'aufs', false)
  await t.rejects(u.unlink('/f'), { code: 'EROFS' })
  await t.rejects(u.mkdir('/d', 0o755, caller), { code: 'EROFS' })
  await t.rejects(u.open('/f', O_WRONLY), { code: 'EROFS' })
  await t.rejects(u.chmod('/f', 0o600), { code: 'EROFS' })
  t.equal(await readAll(u, '/f'), 'x')
})

t.test('the dentry cache stays exact under mutations', async t => {
  const s = stack(t)
  write(`${s.lo1}/d/f`, 'x')
  const u = await open(s)
  await t.rejects(u.getattr('/d/new'), { code: 'ENOENT' })
  await t.rejects(u.getattr('/d/new'), { code: 'ENOENT' })
  t.ok(u.cacheStats().negativeHits >= 1, 'negative entry served')
  const { fh } = await u.create('/d/new', O_WRONLY, 0o644, caller)
  await u.release(fh)
  t.ok((await u.getattr('/d/new')).size === 0)
  await u.unlink('/d/f')
  await t.rejects(u.getattr('/d/f'), { code: 'ENOENT' })
  await u.rename('/d', '/e', 0)
  await t.rejects(u.getattr('/d/new'), { code: 'ENOENT' })
  t.ok(await u.getattr('/e/new'))
})

t.test('the entry a copy-up caches is the one a fresh lookup finds', async t => {
  // Copy-up builds the copied entry from the one it replaces instead of
  // looking it up again: parents merged from two lower branches, one from a
  // single branch, a directory with an opaque branch below it, a file.
  const s = stack(t)
  write(`${s.lo1}/a/b/f`, 'data')
  write(`${s.lo1}/a/b/sub/x`, 'x')
  write(`${s.lo2}/a/b/g`, 'g')
  write(`${s.lo2}/a/b/sub/y`, 'y')
  write(`${s.lo1}/a/solo/h`, 'h')
  write(`${s.lo1}/a/op/i`, 'i')
  write(`${s.lo1}/a/op/.wh..wh..opq`, '')
  write(`${s.lo2}/a/op/j`, 'j')
  const u = await open(s)
  await u.chmod('/a/b/f', 0o600)
  await u.chmod('/a/b/sub', 0o700)
  await u.chmod('/a/solo/h', 0o600)
  await u.chmod('/a/op', 0o700)
  const fresh = await open(s)
  const shape = (e: Entry | undefined): unknown => e === undefined
    ? undefined
    : { isDir: e.isDir, top: e.top, dirs: e.dirs, ino: e.ino, branchIno: e.stat.ino }
  for (const p of ['/a', '/a/b', '/a/b/f', '/a/b/sub', '/a/solo', '/a/solo/h', '/a/op']) {
    const cached = u.resolver.cache.peek(p)
    t.ok(cached !== undefined && cached.top.layer === 0, `${p}: the copy is cached, served by the writable branch`)
    t.strictSame(shape(cached), shape(fresh.resolver.lookup(p)), `${p}: as a fresh lookup finds it`)
  }
  t.strictSame(u.resolver.lookup('/a/op')?.dirs.map(d => d.layer), [0, 1], 'the opaque branch still ends the stack')
  t.strictSame((await u.readdir('/a/b/sub')).map(e => e.name).sort(), ['x', 'y'], 'a copied directory still merges')

  // A mutation keeps its parent's entry: its attributes still come fresh.
  const parent = u.resolver.cache.peek('/a/b')
  await u.mkdir('/a/b/new', 0o755, caller)
  await u.unlink('/a/b/g')
  t.equal(u.resolver.cache.peek('/a/b'), parent, 'the parent\'s entry stays cached')
  const onDisk = fs.lstatSync(`${s.up}/a/b`, { bigint: true })
  const attr = await u.getattr('/a/b')
  t.equal(attr.mtimeNs, onDisk.mtimeNs, 'its mtime is the one the mutations left')
  t.equal(attr.nlink, 1, 'still a merged directory')
  t.strictSame((await u.readdir('/a/b')).map(e => e.name).sort(), ['f', 'new', 'sub'], 'its listing shows both')
})

t.test('the bottom branch\'s opaque and redirect marks are not read: nothing lies below them', async t => {
  // A directory in both branches, one only in the bottom one, each marked
  // opaque in the bottom branch: the marks change nothing, and a lookup
  // reads the marks (the AUFS marker's lstat, the xattr list) of the upper
  // branch's directories alone.
  const root = scratch(t)
  const top = path.join(root, 'top')
  const bottom = path.join(root, 'bottom')
  for (const d of ['both', 'low']) {
    fs.mkdirSync(path.join(bottom, d, 'in'), { recursive: true })
    fs.writeFileSync(path.join(bottom, d, '.wh..wh..opq'), '')
  }
  fs.mkdirSync(path.join(top, 'both'), { recursive: true })
  const read: string[] = []
  const counting = (b: ReadonlyBranch, name: string): ReadonlyBranch => Object.assign(Object.create(b) as ReadonlyBranch, {
    lstat: (rel: string) => { if (rel.endsWith('/.wh..wh..opq')) read.push(`${name} ${rel}`); return b.lstat(rel) },
    listxattr: (rel: string) => { read.push(`${name} xattrs ${rel}`); return b.listxattr(rel) }
  })
  const layers = [counting(readonlyBranch(top, 0), 'top'), counting(readonlyBranch(bottom, 1), 'bottom')]
  const r = new Resolver(layers, new DentryCache<Entry>(100), 'trusted', false)
  r.lookup('/')
  read.length = 0
  t.strictSame(r.lookup('/both')?.dirs.map(d => d.layer), [0, 1], 'both: merged from the two branches')
  t.strictSame(r.lookup('/low')?.dirs.map(d => d.layer), [1], 'low: the bottom branch alone')
  t.ok(r.lookup('/both/in')?.isDir === true && r.lookup('/low/in')?.isDir === true, 'what the bottom directories hold shows')
  t.strictSame(read.sort(), ['top /both/.wh..wh..opq', 'top xattrs /both'], 'only the top branch\'s marks were read')
})

t.test('lower indexes answer exactly what direct probing answers (random deep stacks)', async t => {
  // Random trees over 6 read-only branches and a writable one, with whiteouts
  // and opaque markers in both dialects, and entries beside their own
  // whiteout: every lookup and listing through the indexed resolver must
  // equal the one through per-branch probing (cache off).
  let seed = 20261123
  const rand = (n: number): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n }
  const root = scratch(t)
  const branches = Array.from({ length: 7 }, (_, i) => path.join(root, `b${i}`))
  const names = ['a', 'b', 'c', 'd']
  const paths: string[] = []
  for (const n1 of names) { paths.push(`/${n1}`); for (const n2 of names) { paths.push(`/${n1}/${n2}`); for (const n3 of names) paths.push(`/${n1}/${n2}/${n3}`) } }
  for (const b of branches) {
    fs.mkdirSync(b)
    for (const p of paths) {
      const full = b + p
      if (!fs.existsSync(path.dirname(full)) || !fs.statSync(path.dirname(full)).isDirectory()) continue
      if (fs.existsSync(full)) continue
      switch (rand(9)) {
        case 0: case 1: fs.mkdirSync(full); break
        case 2: fs.writeFileSync(full, b); break
        case 3: fs.writeFileSync(path.join(path.dirname(full), '.wh.' + path.basename(full)), ''); break
        case 4: native.mknod(full, fs.constants.S_IFCHR, 0); break
        case 5: fs.mkdirSync(full); if (rand(2) === 0) fs.writeFileSync(full + '/.wh..wh..opq', ''); else native.lsetxattr(full, 'trusted.overlay.opaque', Buffer.from('y'), 0); break
        case 6: // an entry and its own whiteout in one branch: the entry counts
          if (rand(2) === 0) fs.mkdirSync(full); else fs.writeFileSync(full, b)
          fs.writeFileSync(path.join(path.dirname(full), '.wh.' + path.basename(full)), '')
          break
        default: break
      }
    }
  }
  const open = async (entries: number): Promise<UnionFs> => UnionFs.open({
    lowers: branches.slice(1), upper: branches[0], whiteout: 'aufs', cacheEntries: entries, cacheTtlMs: 0, xattrNamespace: 'trusted'
  })
  const direct = await open(0)
  const indexed = await open(1000)
  const describe = async (u: UnionFs, p: string): Promise<string> => {
    try {
      const a = await u.getattr(p)
      const list = (a.mode & fs.constants.S_IFMT) === fs.constants.S_IFDIR ? (await u.readdir(p)).map(e => `${e.name}:${e.type}`).sort().join(',') : ''
      return `${a.ino} ${a.mode} ${a.size} ${list}`
    } catch (err) {
      return (err as NodeJS.ErrnoException).code ?? 'error'
    }
  }
  let differ = 0
  for (const p of ['/', ...paths]) {
    // Look each path up twice through the indexed union: the second answer
    // comes from the dentry cache and the built indexes.
    const want = await describe(direct, p)
    const got1 = await describe(indexed, p)
    const got2 = await describe(indexed, p)
    if (want !== got1 || want !== got2) { differ++; t.equal(got1, want, p) }
  }
  t.equal(differ, 0, `all ${paths.length + 1} paths agree`)
  t.ok(indexed.resolver.lowerIndex !== undefined && direct.resolver.lowerIndex === undefined)
})
