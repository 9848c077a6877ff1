/**
 * The FUSE transport (lib/fuse) through a real mount, without the union
 * core: a child process (test/fixtures/fuse-serve.ts) serves a passthrough
 * UnionFsApi over a scratch directory, and this process does the I/O on the
 * mountpoint and compares with the directory underneath. Every mount is
 * unmounted in teardown, even when a test fails.
 */
import t from 'tap'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import { Encoder, direntSize, splitMs } from '../lib/fuse/codec'
import { NodeTable } from '../lib/fuse/nodes'
import { mountFuse } from '../lib/fuse/mount'
import type { Attr, UnionFsApi } from '../lib/union/types'
import { spawnSync } from 'node:child_process'
import { forkServer, serve, Served, waitExit } from './helpers/fuse-served'
import { isMounted } from './helpers/mount'
import { pattern } from './helpers/tree'
import { toBytes } from '../lib/union/paths'

const MiB = 1024 * 1024

function code (fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    return (err as NodeJS.ErrnoException).code
  }
  return undefined
}

function attr (ino: number, dir = false): Attr {
  return {
    ino, mode: dir ? 0o40755 : 0o100644, nlink: 1, uid: 0, gid: 0, rdev: 0, size: 0, blocks: 0,
    blksize: 4096, atimeMs: 0, mtimeMs: 0, ctimeMs: 0
  }
}

t.test('node table, in process', async (t) => {
  const n = new NodeTable()
  t.equal(n.path(1), '/', 'node 1 is the root')
  const d = n.link('/d', attr(10, true))
  const f = n.link('/d/f', attr(11))
  t.not(d.id, f.id)
  t.equal(n.link('/d/f', attr(11)).id, f.id, 'a second lookup, the same node')
  t.equal(f.nlookup, 2)
  t.equal(n.link('/d/hard', attr(11)).id, f.id, 'a second name with the same st_ino is the same node')
  n.rename('/d', '/e', false)
  t.same(n.node(f.id).paths.sort(), ['/e/f', '/e/hard'], 'a directory rename moves the paths below it')
  t.equal(n.nodeIdOf('/d/f'), undefined)
  n.unlinkPath('/e/hard', false)
  t.same(n.node(f.id).paths, ['/e/f'], 'unlink drops one name')
  const g = n.link('/e/g', attr(12))
  n.rename('/e/f', '/e/g', true)
  t.equal(n.nodeIdOf('/e/g'), f.id, 'exchange: each name now names the other node')
  t.equal(n.nodeIdOf('/e/f'), g.id)
  n.unlinkPath('/e/g', false)
  t.equal(n.node(f.id).paths.length, 0, 'an unlinked node lives on without a path')
  t.not(n.link('/e/new', attr(11)).id, f.id, 'a new file reusing a dead st_ino gets a new node')
  n.forget(f.id, 4)
  t.equal(n.get(f.id), undefined, 'dropped once forgotten as often as looked up')
  const reused = n.link('/e/other', attr(13))
  t.equal(reused.id, f.id, 'the id is reused...')
  t.not(reused.generation, f.generation, '...with a new generation')
  n.forget(1, 100)
  t.equal(n.path(1), '/', 'the root is never forgotten')
})

t.test('mount options are checked before anything is opened', async (t) => {
  const dir = t.testdir()
  const none = {} as unknown as UnionFsApi
  for (const spin of [-1, 1.5, 2_000_000, NaN]) {
    await t.rejects(mountFuse(none, dir, { spin }), { name: 'TypeError', message: /^spin must be whole microseconds/ }, `spin ${spin}`)
  }
  await t.rejects(mountFuse(none, dir, { attrTimeout: -1 }), { name: 'TypeError', message: /^attrTimeout must be/ })
  await t.rejects(mountFuse(none, dir, { readdirplus: 'sometimes' as 'auto' }), { name: 'TypeError', message: /^readdirplus must be one of auto, always, never/ })
  t.notOk(isMounted(dir), 'nothing mounted')
})

t.test('times split into seconds and nanoseconds', async (t) => {
  t.same(splitMs(1_234_567_890_500.25), { sec: 1_234_567_890, nsec: 500_250_000 })
  t.same(splitMs(0), { sec: 0, nsec: 0 })
  t.same(splitMs(-1.5), { sec: -1, nsec: 998_500_000 }, 'before 1970')
  t.same(splitMs(999.9999999999), { sec: 1, nsec: 0 }, 'rounding carries into the seconds')
})

t.test('the encoder: fields through its word view, UTF-8 names, nothing past the buffer', async (t) => {
  const e = new Encoder(64)
  e.begin()
  e.u64(-2)
  e.u32(0xffffffff)
  t.same([...e.buf.subarray(16, 28)], [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 'negative u64 in two\'s complement, u32 low bits')
  e.begin()
  e.u64(2 ** 40 + 5)
  t.equal(e.buf.readUInt32LE(16) + e.buf.readUInt32LE(20) * 2 ** 32, 2 ** 40 + 5, 'u64 above 2^32')
  e.begin()
  // Names are byte strings (lib/union/paths.ts): UTF-8 or not, the bytes go out as they are.
  const utf8 = toBytes('naïve-日本')
  e.dirent(7, 3, 8, utf8)
  const len = Buffer.byteLength('naïve-日本')
  t.equal(e.buf.readUInt32LE(16 + 16), len, 'namelen counts the bytes')
  t.equal(e.buf.toString('utf8', 16 + 24, 16 + 24 + len), 'naïve-日本', 'the name\'s UTF-8 bytes')
  t.equal(direntSize(utf8), e.pos - 16, 'direntSize agrees with what was written')
  t.equal((e.pos - 16) % 8, 0, 'padded to 8')
  e.begin()
  e.dirent(7, 3, 8, 'lat\xe9\xff')
  t.same([...e.buf.subarray(16 + 24, 16 + 29)], [0x6c, 0x61, 0x74, 0xe9, 0xff], 'a name that is not UTF-8 goes out byte for byte')
  t.equal(direntSize('lat\xe9\xff'), e.pos - 16, 'direntSize counts its bytes')
  e.begin()
  e.str('abc', false)
  e.u32(0x01020304)
  t.equal(e.buf.readUInt32LE(19), 0x01020304, 'a field at an odd offset')
  e.begin()
  e.pos = 64
  t.throws(() => { e.u32(1) }, RangeError, 'a field past the end is refused')
  e.pos = 40
  t.throws(() => { e.zero(40) }, RangeError, 'zeros past the end are refused')
})

t.test('a mount with passthrough off: every read and write reaches the server', async (t) => {
  const s = await serve(t, { passthrough: false })
  t.ok(isMounted(s.mnt), 'the mount is in /proc/mounts')
  const line = fs.readFileSync('/proc/mounts', 'utf8').split('\n').find((l) => l.split(' ')[1] === s.mnt) ?? ''
  t.match(line, /^unionfs-ts \S+ fuse\.unionfs-ts .*default_permissions.*allow_other/, 'fsname, type and options')

  t.test('lookup and stat', async (t) => {
    fs.writeFileSync(s.r('hello.txt'), 'hello\n')
    fs.chmodSync(s.r('hello.txt'), 0o640)
    const st = fs.statSync(s.m('hello.txt'))
    const real = fs.statSync(s.r('hello.txt'))
    t.equal(st.size, 6)
    t.equal(st.mode, real.mode, 'mode')
    t.equal(st.ino, real.ino, 'st_ino is the one the union reports')
    t.equal(st.mtimeMs, real.mtimeMs, 'mtime to the nanosecond the double keeps')
    t.equal(fs.readFileSync(s.m('hello.txt'), 'utf8'), 'hello\n')
    t.equal(code(() => fs.statSync(s.m('missing'))), 'ENOENT')
    t.equal(code(() => fs.statSync(s.m('missing'))), 'ENOENT', 'a cached negative entry still says ENOENT')
    t.ok(fs.statSync(s.mnt).isDirectory(), 'the root is a directory')
  })

  t.test('readdir, one page and many', async (t) => {
    fs.mkdirSync(s.r('list'))
    fs.mkdirSync(s.r('list/sub'))
    fs.symlinkSync('sub', s.r('list/ln'))
    for (let i = 0; i < 700; i++) fs.writeFileSync(s.r(`list/file-with-a-longish-name-${i}`), '')
    fs.writeFileSync(s.r('list/naïve-日本'), '') // a name that is not ASCII
    const names = fs.readdirSync(s.m('list')).sort()
    t.same(names, fs.readdirSync(s.r('list')).sort(), 'same names as the directory underneath')
    const types = new Map(fs.readdirSync(s.m('list'), { withFileTypes: true }).map((d) => [d.name, d]))
    t.ok(types.get('sub')?.isDirectory(), 'directory type')
    t.ok(types.get('ln')?.isSymbolicLink(), 'symlink type')
    t.ok(types.get('file-with-a-longish-name-3')?.isFile(), 'file type')
    const st = fs.statSync(s.m('list/file-with-a-longish-name-699'))
    t.equal(st.ino, fs.statSync(s.r('list/file-with-a-longish-name-699')).ino, 'entries of a later page stat right')
    const dir = fs.opendirSync(s.m('list'))
    let n = 0
    while (dir.readSync() !== null) n++
    dir.closeSync()
    t.equal(n, 703, 'opendir/readdir sees every entry once')
  })

  t.test('create, write and read back 3 MiB', async (t) => {
    const data = pattern(3 * MiB, 1)
    fs.writeFileSync(s.m('big3'), data)
    t.ok(fs.readFileSync(s.r('big3')).equals(data), 'the bytes reached the directory underneath')
    t.ok(fs.readFileSync(s.m('big3')).equals(data), 'and read back through the mount')
    t.equal(fs.statSync(s.m('big3')).size, 3 * MiB)
    const st = await s.stats()
    t.equal(st.io.maxWrite, MiB, 'the kernel sends 1 MiB WRITEs')
    const fd = fs.openSync(s.m('big3'), 'r+')
    try {
      fs.writeSync(fd, Buffer.from('XYZ'), 0, 3, MiB + 5)
    } finally {
      fs.closeSync(fd)
    }
    data.write('XYZ', MiB + 5, 'latin1')
    t.ok(fs.readFileSync(s.r('big3')).equals(data), 'a write in the middle')
  })

  t.test('a 4 MiB file read with max-size requests', async (t) => {
    const data = pattern(4 * MiB, 2)
    fs.writeFileSync(s.r('big4'), data)
    const before = (await s.stats()).io
    // O_DIRECT: the reads reach the server as they are made, not as readahead.
    // dd page-aligns its buffer, so each 1 MiB read is one request.
    const dd = spawnSync('dd', [`if=${s.m('big4')}`, 'of=/dev/null', 'bs=1M', 'iflag=direct'], { encoding: 'utf8' })
    t.equal(dd.status, 0, `dd: ${dd.stderr}`)
    t.match(dd.stderr, /^4194304 bytes/m, 'dd read 4 MiB')
    const after = (await s.stats()).io
    t.equal(after.maxRead, MiB, 'READ requests of 1 MiB')
    t.equal(after.reads - before.reads, 4, 'four READs for 4 MiB')
    t.ok(fs.readFileSync(s.m('big4')).equals(data), 'a buffered read agrees')
  })

  t.test('mkdir and rmdir', async (t) => {
    fs.mkdirSync(s.m('d1'), 0o750)
    t.ok(fs.statSync(s.r('d1')).isDirectory(), 'made underneath')
    t.equal(fs.statSync(s.m('d1')).mode & 0o7777, 0o750 & ~process.umask(), 'mode with the umask applied')
    fs.writeFileSync(s.m('d1/f'), 'x')
    t.equal(code(() => fs.rmdirSync(s.m('d1'))), 'ENOTEMPTY')
    t.equal(code(() => fs.mkdirSync(s.m('d1'))), 'EEXIST')
    fs.unlinkSync(s.m('d1/f'))
    fs.rmdirSync(s.m('d1'))
    t.notOk(fs.existsSync(s.r('d1')), 'removed underneath')
    t.equal(code(() => fs.statSync(s.m('d1'))), 'ENOENT')
  })

  t.test('rename files and directories', async (t) => {
    fs.writeFileSync(s.m('ra'), 'A')
    fs.renameSync(s.m('ra'), s.m('rb'))
    t.equal(fs.readFileSync(s.m('rb'), 'utf8'), 'A')
    t.equal(code(() => fs.statSync(s.m('ra'))), 'ENOENT')
    fs.writeFileSync(s.m('rc'), 'C')
    fs.renameSync(s.m('rb'), s.m('rc'))
    t.equal(fs.readFileSync(s.m('rc'), 'utf8'), 'A', 'rename over an existing file')
    fs.mkdirSync(s.m('dir-a/deep/er'), { recursive: true })
    fs.writeFileSync(s.m('dir-a/deep/er/f'), 'deep')
    const ino = fs.statSync(s.m('dir-a/deep/er/f')).ino
    fs.renameSync(s.m('dir-a'), s.m('dir-b'))
    t.equal(fs.readFileSync(s.m('dir-b/deep/er/f'), 'utf8'), 'deep', 'a subtree moves with its directory')
    t.equal(fs.statSync(s.m('dir-b/deep/er/f')).ino, ino)
    fs.writeFileSync(s.m('dir-b/deep/er/g'), 'new')
    t.equal(fs.readFileSync(s.r('dir-b/deep/er/g'), 'utf8'), 'new', 'creating under a moved directory lands in the new place')
    t.equal(code(() => fs.statSync(s.m('dir-a'))), 'ENOENT')
  })

  t.test('unlink, also of an open file', async (t) => {
    fs.writeFileSync(s.m('u1'), 'gone')
    fs.unlinkSync(s.m('u1'))
    t.notOk(fs.existsSync(s.r('u1')))
    t.equal(code(() => fs.statSync(s.m('u1'))), 'ENOENT')
    t.equal(code(() => fs.unlinkSync(s.m('u1'))), 'ENOENT')
    fs.writeFileSync(s.m('u2'), 'still here')
    const fd = fs.openSync(s.m('u2'), 'r+')
    try {
      fs.unlinkSync(s.m('u2'))
      t.equal(fs.fstatSync(fd).size, 10, 'fstat of an unlinked open file')
      fs.ftruncateSync(fd, 5)
      t.equal(fs.fstatSync(fd).size, 5, 'ftruncate of an unlinked open file')
      const b = Buffer.alloc(16)
      t.equal(fs.readSync(fd, b, 0, 16, 0), 5)
      t.equal(b.subarray(0, 5).toString(), 'still')
    } finally {
      fs.closeSync(fd)
    }
  })

  t.test('symlink and readlink', async (t) => {
    fs.symlinkSync('../some/where', s.m('sl'))
    t.equal(fs.readlinkSync(s.m('sl')), '../some/where')
    t.equal(fs.readlinkSync(s.r('sl')), '../some/where', 'made underneath')
    t.ok(fs.lstatSync(s.m('sl')).isSymbolicLink())
    fs.writeFileSync(s.m('target'), 'T')
    fs.symlinkSync('target', s.m('sl2'))
    t.equal(fs.readFileSync(s.m('sl2'), 'utf8'), 'T', 'followed by the kernel')
  })

  t.test('hard links share one inode', async (t) => {
    fs.writeFileSync(s.m('h1'), 'one')
    fs.linkSync(s.m('h1'), s.m('h2'))
    const a = fs.statSync(s.m('h1'))
    const b = fs.statSync(s.m('h2'))
    t.equal(a.ino, b.ino, 'same st_ino')
    t.equal(a.nlink, 2, 'nlink 2 on the first name')
    t.equal(b.nlink, 2, 'nlink 2 on the second name')
    t.equal(fs.statSync(s.r('h2')).ino, fs.statSync(s.r('h1')).ino, 'linked underneath')
    fs.writeFileSync(s.m('h2'), 'two')
    t.equal(fs.readFileSync(s.m('h1'), 'utf8'), 'two', 'a write through one name shows through the other')
    fs.unlinkSync(s.m('h1'))
    t.equal(fs.statSync(s.m('h2')).nlink, 1, 'nlink back to 1')
    t.equal(fs.readFileSync(s.m('h2'), 'utf8'), 'two')
  })

  t.test('truncate, chmod, chown, utimes', async (t) => {
    fs.writeFileSync(s.m('m1'), 'abcdefgh')
    fs.truncateSync(s.m('m1'), 3)
    t.equal(fs.readFileSync(s.m('m1'), 'utf8'), 'abc')
    t.equal(fs.statSync(s.r('m1')).size, 3)
    fs.truncateSync(s.m('m1'), 10000)
    t.equal(fs.statSync(s.m('m1')).size, 10000, 'extending truncate')
    fs.writeFileSync(s.m('m2'), 'xxxxxxxx')
    fs.writeFileSync(s.m('m2'), 'y')
    t.equal(fs.readFileSync(s.r('m2'), 'utf8'), 'y', 'O_TRUNC on open')
    fs.chmodSync(s.m('m1'), 0o4711)
    t.equal(fs.statSync(s.m('m1')).mode & 0o7777, 0o4711)
    t.equal(fs.statSync(s.r('m1')).mode & 0o7777, 0o4711, 'underneath too')
    fs.chownSync(s.m('m1'), 1234, 5678)
    const st = fs.statSync(s.m('m1'))
    t.same([st.uid, st.gid], [1234, 5678])
    t.same([fs.statSync(s.r('m1')).uid, fs.statSync(s.r('m1')).gid], [1234, 5678], 'underneath too')
    fs.utimesSync(s.m('m1'), 1_000_000_000.25, 1_234_567_890.5)
    const times = fs.statSync(s.m('m1'))
    t.equal(times.atimeMs, 1_000_000_000_250, 'atime')
    t.equal(times.mtimeMs, 1_234_567_890_500, 'mtime')
    t.equal(fs.statSync(s.r('m1')).mtimeMs, 1_234_567_890_500, 'underneath too')
    const before = Date.now()
    const touch = spawnSync('touch', [s.m('m1')], { encoding: 'utf8' })
    t.equal(touch.status, 0, `touch (utimensat with UTIME_NOW): ${touch.stderr}`)
    t.ok(fs.statSync(s.m('m1')).mtimeMs >= before - 1000, 'times set to now')
    t.ok(fs.statSync(s.r('m1')).atimeMs >= before - 1000, 'underneath too')
    const fd = fs.openSync(s.m('m1'), 'r+')
    try {
      fs.ftruncateSync(fd, 1)
    } finally {
      fs.closeSync(fd)
    }
    t.equal(fs.statSync(s.m('m1')).size, 1, 'ftruncate')
  })

  const python = spawnSync('python3', ['-c', 'import os; os.setxattr'], { encoding: 'utf8' })
  const noPython = python.error !== undefined || python.status !== 0
  t.test('extended attributes', { skip: noPython ? 'python3 is needed for the xattr calls' : false }, async (t) => {
    // node:fs has no xattr calls: python's os module and libc through ctypes.
    const script = [
      'import ctypes, errno, json, os, sys',
      'p = sys.argv[1]; out = {}',
      'libc = ctypes.CDLL(None, use_errno=True)',
      'def err(f):',
      '    try: f(); return None',
      '    except OSError as e: return errno.errorcode[e.errno]',
      "os.setxattr(p, 'user.small', b'v1')",
      "os.setxattr(p, 'user.big', b'x' * 300)",
      "out['createOver'] = err(lambda: os.setxattr(p, 'user.small', b'v2', os.XATTR_CREATE))",
      "out['replaceMissing'] = err(lambda: os.setxattr(p, 'user.none', b'v2', os.XATTR_REPLACE))",
      "out['size'] = libc.getxattr(p.encode(), b'user.big', None, 0)",
      'buf = ctypes.create_string_buffer(10)',
      "r = libc.getxattr(p.encode(), b'user.big', buf, 10)",
      "out['tooSmall'] = errno.errorcode[ctypes.get_errno()] if r < 0 else r",
      "out['small'] = os.getxattr(p, 'user.small').decode()",
      "out['bigOk'] = os.getxattr(p, 'user.big') == b'x' * 300",
      "out['listSize'] = libc.listxattr(p.encode(), None, 0)",
      "out['list'] = sorted(os.listxattr(p))",
      "os.removexattr(p, 'user.small')",
      "out['afterRemove'] = err(lambda: os.getxattr(p, 'user.small'))",
      'print(json.dumps(out))'
    ].join('\n')
    fs.writeFileSync(s.m('xa'), '')
    const r = spawnSync('python3', ['-c', script, s.m('xa')], { encoding: 'utf8' })
    t.equal(r.status, 0, `python3: ${r.stderr}`)
    t.same(JSON.parse(r.stdout), {
      createOver: 'EEXIST',
      replaceMissing: 'ENODATA',
      size: 300,
      tooSmall: 'ERANGE',
      small: 'v1',
      bigOk: true,
      listSize: 'user.big\0user.small\0'.length,
      list: ['user.big', 'user.small'],
      afterRemove: 'ENODATA'
    }, 'set (with XATTR_CREATE/REPLACE), get (size query, ERANGE), list, remove')
  })

  t.test('statfs', async (t) => {
    const a = fs.statfsSync(s.mnt)
    const b = fs.statfsSync(s.root)
    t.equal(a.bsize, b.bsize)
    t.equal(a.blocks, b.blocks)
    t.equal(a.files, b.files)
  })

  t.test('errors pass through with their errno', async (t) => {
    t.equal(code(() => fs.readFileSync(s.m('nope/x'))), 'ENOENT')
    fs.writeFileSync(s.m('plain'), '')
    t.equal(code(() => fs.readdirSync(s.m('plain'))), 'ENOTDIR')
    t.equal(code(() => fs.mkdirSync(s.m('plain/sub'))), 'ENOTDIR')
  })

  t.test('unmount through the session', async (t) => {
    const st = await s.stats()
    t.ok(st.fuse.requests > 100, 'requests were counted')
    t.equal(st.fuse.openFiles, 0, 'every handle was released')
    t.equal(st.fuse.openDirs, 0, 'every directory handle was released')
    s.child.send({ cmd: 'unmount' })
    await s.next(['closed'])
    t.ok(await waitExit(s.child, 10000), 'the server exits')
    t.equal(s.child.exitCode, 0, 'cleanly')
    t.notOk(isMounted(s.mnt), 'no mount left behind')
  })
})

t.test('kernel caches, invalidation notices, umount from outside', async (t) => {
  // Also the mount(8) way of mounting (the other mounts use mount(2) when the addon is built).
  const s = await serve(t, { entryTimeout: 60, attrTimeout: 60, negativeTimeout: 60, useMountCommand: true })

  t.test('inval_entry drops a cached negative lookup', async (t) => {
    t.equal(code(() => fs.statSync(s.m('late'))), 'ENOENT')
    fs.writeFileSync(s.r('late'), 'here')
    t.equal(code(() => fs.statSync(s.m('late'))), 'ENOENT', 'the kernel answers from its negative cache')
    const n = await s.ask({ cmd: 'inval-entry', dir: '/', name: 'late' }, 'notified')
    t.equal(n.ok, true, 'the kernel took the notice')
    t.equal(fs.readFileSync(s.m('late'), 'utf8'), 'here', 'and looks the name up again')
  })

  t.test('inval_inode drops cached attributes', async (t) => {
    fs.writeFileSync(s.r('grow'), 'a')
    t.equal(fs.statSync(s.m('grow')).size, 1)
    fs.appendFileSync(s.r('grow'), 'bcd')
    t.equal(fs.statSync(s.m('grow')).size, 1, 'the kernel answers from its attribute cache')
    const n = await s.ask({ cmd: 'inval-inode', path: '/grow' }, 'notified')
    t.equal(n.ok, true, 'the kernel took the notice')
    t.equal(fs.statSync(s.m('grow')).size, 4, 'and asks again')
  })

  t.test('plain umount from outside ends the session', async (t) => {
    const r = spawnSync('umount', [s.mnt], { encoding: 'utf8' })
    t.equal(r.status, 0, `umount: ${r.stderr}`)
    await s.next(['closed'])
    t.ok(await waitExit(s.child, 10000), 'the server exits')
    t.equal(s.child.exitCode, 0, 'cleanly')
    t.notOk(isMounted(s.mnt))
  })
})

t.test('the writeback cache', async (t) => {
  const s = await serve(t, { writeback: true })
  const data = pattern(3 * MiB + 100, 3)
  fs.writeFileSync(s.m('wb'), data)
  t.ok(fs.readFileSync(s.m('wb')).equals(data), 'read back through the mount')
  const fd = fs.openSync(s.m('wb'), 'a')
  try {
    fs.writeSync(fd, 'tail')
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
  const expected = Buffer.concat([data, Buffer.from('tail')])
  t.ok(fs.readFileSync(s.r('wb')).equals(expected), 'a write-only O_APPEND open appends, on disk after fsync')
  t.equal(fs.statSync(s.m('wb')).size, expected.length)
  s.child.send({ cmd: 'unmount' })
  await s.next(['closed'])
  t.notOk(isMounted(s.mnt))
})

for (const useMountCommand of [false, true]) {
  t.test(`a failed mount rejects with a clear error (${useMountCommand ? 'mount(8)' : 'mount(2) if built'})`, async (t) => {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), 'unionfs-ts-fuse-'))
    t.teardown(() => { fs.rmSync(base, { recursive: true, force: true }) })
    const child = forkServer(base, path.join(base, 'no-such-dir'), { useMountCommand }, 'ignore')
    t.teardown(async () => {
      if (!await waitExit(child, 5000) && child.pid !== undefined) process.kill(child.pid, 'SIGKILL')
    })
    const s = new Served(child, base, path.join(base, 'no-such-dir'))
    const m = await s.next(['ready', 'error'])
    t.equal(m.type, 'error')
    t.match(String(m.message), /mounting .*no-such-dir failed: .+/)
    t.ok(await waitExit(child, 10000), 'the process is not kept alive by the device')
  })
}
