/**
 * native-shim against the real kernel: every function on temp files under
 * os.tmpdir() (ext4 here, run as root so trusted.* xattrs and device nodes
 * are allowed), and the error shape compared field by field with node:fs's.
 * mount, umount2 and the FUSE passthrough ioctls are only checked for
 * argument validation; the mount tests exercise them for real.
 */
import t, { type Test } from 'tap'
import * as fs from 'node:fs'
import * as os from 'node:os'
import { join } from 'node:path'
import * as native from '../lib/native'

const ERRNO = os.constants.errno as Record<string, number>
const MiB = 1024 * 1024

function tempDir (t: Test): string {
  const dir = fs.mkdtempSync(join(os.tmpdir(), 'unionfs-native-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

function caught (fn: () => unknown): NodeJS.ErrnoException {
  try {
    fn()
  } catch (err) {
    return err as NodeJS.ErrnoException
  }
  throw new Error('expected an error, got none')
}

/** The exact shape node:fs gives a failed system call. */
function sysError (t: Test, fn: () => unknown, code: string, syscall: string,
  path?: string, dest?: string): NodeJS.ErrnoException {
  const err = caught(fn)
  t.type(err, Error)
  t.equal(err.code, code, 'code')
  t.equal(err.errno, -ERRNO[code]!, 'errno is negative, as in node:fs')
  t.equal(err.syscall, syscall, 'syscall')
  t.equal(err.path, path, 'path')
  t.equal((err as { dest?: string }).dest, dest, 'dest')
  t.match(err.message, new RegExp(`^${code}: [a-z]`))
  const tail = path === undefined ? '' : dest === undefined ? ` '${path}'` : ` '${path}' -> '${dest}'`
  t.ok(err.message.endsWith(`, ${syscall}${tail}`), `message ends with the call: ${err.message}`)
  return err
}

function argError (t: Test, fn: () => unknown, name: string, code: string): void {
  const err = caught(fn)
  t.type(err, code === 'ERR_OUT_OF_RANGE' ? RangeError : TypeError)
  t.equal(err.code, code, `${code} for ${err.message}`)
  t.ok(err.message.includes(name), `the message names ${name}`)
}

t.test('constants are Linux\'s', async t => {
  t.same(
    [native.RENAME_NOREPLACE, native.RENAME_EXCHANGE, native.RENAME_WHITEOUT], [1, 2, 4])
  t.same([native.SEEK_DATA, native.SEEK_HOLE], [3, 4])
  t.same([native.XATTR_CREATE, native.XATTR_REPLACE], [1, 2])
  t.same([native.MNT_FORCE, native.MNT_DETACH], [1, 2])
  t.same([native.MS_RDONLY, native.MS_NOSUID, native.MS_NODEV], [1, 2, 4])
  t.same([native.FALLOC_FL_KEEP_SIZE, native.FALLOC_FL_PUNCH_HOLE], [1, 2])
})

t.test('errors look like node:fs errors', async t => {
  const missing = join(tempDir(t), 'missing')
  const ours = sysError(t, () => native.lgetxattr(missing, 'user.x'), 'ENOENT', 'lgetxattr', missing)
  const theirs = caught(() => fs.lstatSync(missing))
  t.equal(ours.message, theirs.message.replace('lstat', 'lgetxattr'), 'same words as node:fs')
  t.same(Object.keys(ours), Object.keys(theirs), 'same properties in the same order')
})

t.test('xattrs by path', async t => {
  const dir = tempDir(t)
  const file = join(dir, 'file')
  fs.writeFileSync(file, 'x')

  for (const name of ['user.test', 'trusted.overlay.opaque']) {
    t.test(name, async t => {
      sysError(t, () => native.lgetxattr(file, name), 'ENODATA', 'lgetxattr', file)
      sysError(t, () => native.lsetxattr(file, name, Buffer.from('y'), native.XATTR_REPLACE),
        'ENODATA', 'lsetxattr', file)
      native.lsetxattr(file, name, Buffer.from('y'), native.XATTR_CREATE)
      t.same(native.lgetxattr(file, name), Buffer.from('y'))
      sysError(t, () => native.lsetxattr(file, name, Buffer.from('z'), native.XATTR_CREATE),
        'EEXIST', 'lsetxattr', file)
      native.lsetxattr(file, name, Buffer.from('z'), native.XATTR_REPLACE)
      t.same(native.lgetxattr(file, name), Buffer.from('z'))
      t.ok(native.llistxattr(file).includes(name), 'listed')
      native.lremovexattr(file, name)
      t.notOk(native.llistxattr(file).includes(name), 'no longer listed')
      sysError(t, () => native.lremovexattr(file, name), 'ENODATA', 'lremovexattr', file)
    })
  }

  t.test('empty and large values, long lists', async t => {
    const empty = join(dir, 'empty')
    fs.writeFileSync(empty, '')
    native.lsetxattr(empty, 'user.empty', Buffer.alloc(0), 0)
    t.equal(native.lgetxattr(empty, 'user.empty').length, 0)

    // Larger than the first buffer the addon tries, so the sizing path runs.
    const big = Buffer.alloc(3000, 'v')
    native.lsetxattr(empty, 'user.big', new Uint8Array(big), 0)
    t.same(native.lgetxattr(empty, 'user.big'), big)

    // A list longer than that first buffer too; ext4 keeps all of a file's
    // xattrs in one block, hence a file of its own.
    const many = join(dir, 'many')
    fs.writeFileSync(many, '')
    const names = Array.from({ length: 40 }, (_, i) => `user.a-rather-long-attribute-name-${i}`)
    for (const name of names) native.lsetxattr(many, name, Buffer.from('1'), 0)
    t.same(native.llistxattr(many).sort(), names.slice().sort())
  })

  t.test('a symlink\'s own xattrs, not its target\'s', async t => {
    const link = join(dir, 'link')
    fs.symlinkSync(file, link)
    native.lsetxattr(link, 'trusted.mark', Buffer.from('link'), 0)
    t.same(native.lgetxattr(link, 'trusted.mark'), Buffer.from('link'))
    sysError(t, () => native.lgetxattr(file, 'trusted.mark'), 'ENODATA', 'lgetxattr', file)
    t.same(native.llistxattr(link), ['trusted.mark'])
  })

  t.test('lfindxattr: an absent attribute is undefined, other errors throw', async t => {
    native.lsetxattr(file, 'user.found', Buffer.from('here'), 0)
    t.same(native.lfindxattr(file, 'user.found'), Buffer.from('here'))
    t.equal(native.lfindxattr(file, 'user.absent'), undefined)
    t.equal(native.lfindxattr(file, 'security.selinux'), undefined)
    const big = Buffer.alloc(3000, 'b')
    native.lsetxattr(file, 'user.found', big, 0)
    t.same(native.lfindxattr(file, 'user.found'), big, 'past the first buffer')
    native.lremovexattr(file, 'user.found')
    const missing = join(dir, 'missing')
    sysError(t, () => native.lfindxattr(missing, 'user.x'), 'ENOENT', 'lgetxattr', missing)
  })

  t.test('a file without xattrs lists none', async t => {
    const plain = join(dir, 'plain')
    fs.writeFileSync(plain, '')
    t.same(native.llistxattr(plain), [])
  })
})

t.test('xattrs by fd', async t => {
  const file = join(tempDir(t), 'file')
  const fd = fs.openSync(file, 'w+')
  t.teardown(() => fs.closeSync(fd))
  native.fsetxattr(fd, 'user.fd', Buffer.from('by fd'), 0)
  native.fsetxattr(fd, 'trusted.fd', Buffer.from('trusted'), native.XATTR_CREATE)
  t.same(native.fgetxattr(fd, 'user.fd'), Buffer.from('by fd'))
  t.same(native.lgetxattr(file, 'trusted.fd'), Buffer.from('trusted'))
  t.same(native.flistxattr(fd).sort(), ['trusted.fd', 'user.fd'])
  sysError(t, () => native.fgetxattr(fd, 'user.none'), 'ENODATA', 'fgetxattr')
  sysError(t, () => native.fsetxattr(fd, 'user.fd', Buffer.from(''), native.XATTR_CREATE),
    'EEXIST', 'fsetxattr')
  native.fremovexattr(fd, 'user.fd')
  t.same(native.flistxattr(fd), ['trusted.fd'])
  sysError(t, () => native.fremovexattr(fd, 'user.fd'), 'ENODATA', 'fremovexattr')
  const closed = fs.openSync(file, 'r')
  fs.closeSync(closed)
  sysError(t, () => native.flistxattr(closed), 'EBADF', 'flistxattr')
})

t.test('mknod', async t => {
  const dir = tempDir(t)
  const fifo = join(dir, 'fifo')
  native.mknod(fifo, fs.constants.S_IFIFO | 0o644, 0)
  t.ok(fs.lstatSync(fifo).isFIFO(), 'a fifo')

  const whiteout = join(dir, 'whiteout')
  native.mknod(whiteout, fs.constants.S_IFCHR, 0)
  const st = fs.lstatSync(whiteout)
  t.ok(st.isCharacterDevice(), 'a character device')
  t.equal(st.rdev, 0, 'numbered 0/0')

  sysError(t, () => native.mknod(fifo, fs.constants.S_IFIFO | 0o644, 0), 'EEXIST', 'mknod', fifo)
})

t.test('renameat2', async t => {
  const dir = tempDir(t)
  const a = join(dir, 'a')
  const b = join(dir, 'b')
  const c = join(dir, 'c')
  fs.writeFileSync(a, 'A')
  fs.writeFileSync(b, 'B')

  sysError(t, () => native.renameat2(a, b, native.RENAME_NOREPLACE), 'EEXIST', 'renameat2', a, b)
  t.equal(fs.readFileSync(b, 'utf8'), 'B', 'the target is untouched')

  native.renameat2(a, b, native.RENAME_EXCHANGE)
  t.equal(fs.readFileSync(a, 'utf8'), 'B', 'swapped')
  t.equal(fs.readFileSync(b, 'utf8'), 'A', 'swapped')

  sysError(t, () => native.renameat2(a, c, native.RENAME_EXCHANGE), 'ENOENT', 'renameat2', a, c)

  native.renameat2(a, c, native.RENAME_NOREPLACE)
  t.equal(fs.readFileSync(c, 'utf8'), 'B', 'moved')
  t.notOk(fs.existsSync(a), 'gone from the old name')

  native.renameat2(c, a, native.RENAME_WHITEOUT)
  const st = fs.lstatSync(c)
  t.ok(st.isCharacterDevice() && st.rdev === 0, 'a whiteout is left at the old name')
  t.equal(fs.readFileSync(a, 'utf8'), 'B', 'moved')
})

t.test('a path given as a Buffer reaches the system call byte for byte', async t => {
  const dir = tempDir(t)
  const bytes = (name: string): Buffer => Buffer.concat([Buffer.from(dir + '/'), Buffer.from(name, 'latin1')])
  fs.writeFileSync(bytes('lat\xe9'), 'x')
  native.renameat2(bytes('lat\xe9'), bytes('r\xff'), native.RENAME_NOREPLACE)
  native.mknod(bytes('p\x80'), fs.constants.S_IFIFO | 0o600, 0)
  native.lsetxattr(bytes('r\xff'), 'user.k', Buffer.from('v'), 0)
  t.same(fs.readdirSync(dir, { encoding: 'buffer' }).map(n => n.toString('latin1')).sort(), ['p\x80', 'r\xff'], 'names that are not UTF-8, as given')
  t.equal(native.lfindxattr(bytes('r\xff'), 'user.k')?.toString(), 'v', 'and found again by them')
  argError(t, () => native.lfindxattr(Buffer.from(`${dir}\0/x`), 'user.x'), 'path', 'ERR_INVALID_ARG_VALUE')
})

t.test('lseek finds data and holes', async t => {
  const file = join(tempDir(t), 'sparse')
  const fd = fs.openSync(file, 'w+')
  t.teardown(() => fs.closeSync(fd))
  fs.ftruncateSync(fd, 4 * MiB)
  fs.writeSync(fd, Buffer.alloc(4096, 1), 0, 4096, MiB)
  fs.fsyncSync(fd)

  t.equal(native.lseek(fd, 0, native.SEEK_DATA), MiB, 'data starts at 1 MiB')
  t.equal(native.lseek(fd, MiB, native.SEEK_HOLE), MiB + 4096, 'a hole follows it')
  t.equal(native.lseek(fd, 0, native.SEEK_HOLE), 0, 'the file starts with a hole')
  t.equal(native.lseek(fd, 123, native.SEEK_SET), 123)
  t.equal(native.lseek(fd, 0, native.SEEK_END), 4 * MiB)
  sysError(t, () => native.lseek(fd, 2 * MiB, native.SEEK_DATA), 'ENXIO', 'lseek')
})

t.test('copyFileRange copies at explicit offsets', async t => {
  const dir = tempDir(t)
  const src = fs.openSync(join(dir, 'src'), 'w+')
  const dst = fs.openSync(join(dir, 'dst'), 'w+')
  t.teardown(() => { fs.closeSync(src); fs.closeSync(dst) })
  fs.writeSync(src, 'hello world')

  t.equal(native.copyFileRange(src, 6, dst, 2, 5), 5)
  t.same(fs.readFileSync(join(dir, 'dst')), Buffer.from('\0\0world'))
  t.equal(native.copyFileRange(src, 11, dst, 0, 10), 0, 'nothing past the end')
  t.equal(native.lseek(src, 0, native.SEEK_CUR), 11, 'the descriptor position is not moved')
  sysError(t, () => native.copyFileRange(src, 0, 999999, 0, 1), 'EBADF', 'copy_file_range')
})

t.test('ficlone clones or fails like a system call', async t => {
  const dir = tempDir(t)
  fs.writeFileSync(join(dir, 'src'), 'cloned')
  const src = fs.openSync(join(dir, 'src'), 'r')
  const dst = fs.openSync(join(dir, 'dst'), 'w')
  t.teardown(() => { fs.closeSync(src); fs.closeSync(dst) })
  let err: NodeJS.ErrnoException | undefined
  try {
    native.ficlone(dst, src)
  } catch (e) {
    err = e as NodeJS.ErrnoException
  }
  if (err === undefined) {
    t.equal(fs.readFileSync(join(dir, 'dst'), 'utf8'), 'cloned', 'cloned')
  } else {
    t.comment(`ficlone here: ${err.message}`)
    sysError(t, () => { throw err }, err.code!, 'ioctl')
    t.ok(['ENOTSUP', 'EXDEV', 'EINVAL', 'ENOTTY'].includes(err.code!), String(err.code))
  }
})

t.test('fallocate', async t => {
  const file = join(tempDir(t), 'file')
  const fd = fs.openSync(file, 'w+')
  t.teardown(() => fs.closeSync(fd))
  native.fallocate(fd, 0, 0, MiB)
  t.equal(fs.fstatSync(fd).size, MiB, 'grows the file')
  native.fallocate(fd, native.FALLOC_FL_KEEP_SIZE, MiB, MiB)
  t.equal(fs.fstatSync(fd).size, MiB, 'KEEP_SIZE keeps the size')
  fs.writeSync(fd, Buffer.alloc(MiB, 1), 0, MiB, 0)
  fs.fsyncSync(fd)
  native.fallocate(fd, native.FALLOC_FL_PUNCH_HOLE | native.FALLOC_FL_KEEP_SIZE, 0, 64 * 1024)
  t.equal(native.lseek(fd, 0, native.SEEK_DATA), 64 * 1024, 'the punched range is a hole')
  sysError(t, () => native.fallocate(fd, 0, 0, 0), 'EINVAL', 'fallocate')
})

t.test('utimensat and futimens, to the nanosecond', async t => {
  const dir = tempDir(t)
  const file = join(dir, 'file')
  const link = join(dir, 'link')
  fs.writeFileSync(file, '')
  fs.symlinkSync(file, link)

  native.utimensat(file, [1600000000, 123456789], [1500000000, 987654321], false)
  let st = fs.lstatSync(file, { bigint: true })
  t.equal(st.atimeNs, 1600000000123456789n)
  t.equal(st.mtimeNs, 1500000000987654321n)

  native.utimensat(file, 'omit', [1400000000, 1], false)
  st = fs.lstatSync(file, { bigint: true })
  t.equal(st.atimeNs, 1600000000123456789n, 'omit leaves atime')
  t.equal(st.mtimeNs, 1400000000000000001n)

  const before = BigInt(Date.now() - 5000) * 1000000n
  native.utimensat(file, 'now', 'omit', false)
  st = fs.lstatSync(file, { bigint: true })
  t.ok(st.atimeNs >= before, 'now is now')
  t.equal(st.mtimeNs, 1400000000000000001n, 'omit leaves mtime')

  native.utimensat(link, [1000, 5], [2000, 6], true)
  t.equal(fs.lstatSync(link, { bigint: true }).mtimeNs, 2000000000006n, 'the link itself')
  t.equal(fs.lstatSync(file, { bigint: true }).mtimeNs, 1400000000000000001n, 'not its target')

  native.utimensat(link, [3000, 7], [4000, 8], false)
  t.equal(fs.lstatSync(file, { bigint: true }).mtimeNs, 4000000000008n, 'followed to the target')

  const fd = fs.openSync(file, 'r')
  t.teardown(() => fs.closeSync(fd))
  native.futimens(fd, [5000, 999999999], [6000, 0])
  st = fs.fstatSync(fd, { bigint: true })
  t.equal(st.atimeNs, 5000999999999n)
  t.equal(st.mtimeNs, 6000000000000n)

  const missing = join(dir, 'missing')
  sysError(t, () => native.utimensat(missing, 'now', 'now', false), 'ENOENT', 'utimensat', missing)
})

t.test('readDevice reads at once when data waits, and polls its spin before reading', async t => {
  const fifo = join(tempDir(t), 'fifo')
  native.mknod(fifo, fs.constants.S_IFIFO | 0o600, 0)
  // O_RDWR: the open does not wait for a writer; O_NONBLOCK: an empty read says EAGAIN instead of sleeping.
  const fd = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK)
  t.teardown(() => fs.closeSync(fd))
  const buf = Buffer.alloc(16)
  fs.writeSync(fd, 'request')
  t.equal(native.readDevice(fd, buf, 5000), 7, 'ready: no spin spent')
  t.equal(buf.subarray(0, 7).toString(), 'request')

  const start = process.hrtime.bigint()
  sysError(t, () => native.readDevice(fd, buf, 20_000), 'EAGAIN', 'read')
  const spentUs = Number(process.hrtime.bigint() - start) / 1000
  t.ok(spentUs >= 20_000, `nothing to read: polled the whole spin first (${spentUs.toFixed(0)} µs)`)
  sysError(t, () => native.readDevice(fd, buf, 0), 'EAGAIN', 'read')
})

t.test('bad arguments throw before any system call', async t => {
  const dir = tempDir(t)
  const any = native as unknown as Record<string, (...args: unknown[]) => unknown>

  argError(t, () => any.lgetxattr!(1, 'user.x'), 'path', 'ERR_INVALID_ARG_TYPE')
  argError(t, () => any.lgetxattr!(), 'path', 'ERR_INVALID_ARG_TYPE')
  argError(t, () => native.lgetxattr(`${dir}\0/x`, 'user.x'), 'path', 'ERR_INVALID_ARG_VALUE')
  argError(t, () => any.lsetxattr!(dir, 'user.x', 'string', 0), 'value', 'ERR_INVALID_ARG_TYPE')
  argError(t, () => native.lseek(-1, 0, 0), 'fd', 'ERR_OUT_OF_RANGE')
  argError(t, () => native.lseek(0.5, 0, 0), 'fd', 'ERR_OUT_OF_RANGE')
  argError(t, () => native.lseek(0, 2 ** 60, 0), 'offset', 'ERR_OUT_OF_RANGE')
  argError(t, () => native.copyFileRange(0, NaN, 1, 0, 1), 'offIn', 'ERR_OUT_OF_RANGE')
  argError(t, () => any.utimensat!(dir, 'later', 'now', false), 'atime', 'ERR_INVALID_ARG_VALUE')
  argError(t, () => native.utimensat(dir, [0, 1e9], 'now', false), 'atime[1]', 'ERR_OUT_OF_RANGE')
  argError(t, () => any.utimensat!(dir, [0], 'now', false), 'atime', 'ERR_INVALID_ARG_TYPE')
  argError(t, () => any.utimensat!(dir, 'now', 'now', 1), 'nofollow', 'ERR_INVALID_ARG_TYPE')

  argError(t, () => any.mount!(null, dir, 'tmpfs', 0, ''), 'source', 'ERR_INVALID_ARG_TYPE')
  argError(t, () => any.mount!('none', dir, 'tmpfs', '0', ''), 'flags', 'ERR_INVALID_ARG_TYPE')
  argError(t, () => any.mount!('none', dir, 'tmpfs', 0), 'data', 'ERR_INVALID_ARG_TYPE')
  argError(t, () => native.mount('none', `${dir}\0`, 'tmpfs', 0, ''), 'target', 'ERR_INVALID_ARG_VALUE')
  argError(t, () => any.umount2!(dir), 'flags', 'ERR_INVALID_ARG_TYPE')
  argError(t, () => native.umount2(dir, -1), 'flags', 'ERR_OUT_OF_RANGE')
  argError(t, () => any.fuseBackingOpen!('3', 4), 'devFd', 'ERR_INVALID_ARG_TYPE')
  argError(t, () => native.fuseBackingOpen(3, -4), 'backingFd', 'ERR_OUT_OF_RANGE')
  argError(t, () => native.fuseBackingClose(3, 2 ** 32), 'backingId', 'ERR_OUT_OF_RANGE')
  argError(t, () => native.readDevice(0, Buffer.alloc(1), -1), 'spinUs', 'ERR_OUT_OF_RANGE')
  argError(t, () => any.readDevice!(0, 'buffer', 0), 'buffer', 'ERR_INVALID_ARG_TYPE')
})
