// The fuse-native backend (lib/fuse-native): its encodings in-process, then
// a real union mount served by a child process (test/fixtures/
// fuse-native-serve.ts) while this process does the I/O through it and
// checks the branches on disk.
import t, { type Test } from 'tap'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import * as crypto from 'node:crypto'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { ino32, statArray, statfsArray } from '../lib/fuse-native/ops'
import { libfuseOptions, MAX_WRITE } from '../lib/fuse-native/mount'

const FIXTURE = path.join(__dirname, 'fixtures', 'fuse-native-serve.ts')
const LAYER = 2 ** 40

function installed (): boolean {
  try {
    require.resolve('fuse-native/package.json')
    return true
  } catch {
    return false
  }
}

// The fallback backend is part of the install (an optional dependency that
// `npm ci` puts in place) and these tests mount for real: a machine where
// that cannot happen fails here instead of skipping silently.
t.test('fuse-native is installed and this runs as root with /dev/fuse', async t => {
  t.ok(installed(), 'fuse-native is installed (npm ci)')
  t.equal(process.getuid?.(), 0, 'running as root')
  t.ok(fs.existsSync('/dev/fuse'), '/dev/fuse exists')
})

t.test('st_ino: 32 bits, the union number when it fits, folded stably otherwise', async t => {
  t.equal(ino32(12345), 12345)
  t.equal(ino32(2 ** 32 - 1), 2 ** 32 - 1)
  const folded = ino32(LAYER + 12345)
  t.ok(folded > 0 && folded < 2 ** 32, 'fits in 32 bits, never 0')
  t.equal(ino32(LAYER + 12345), folded, 'the same every time')
  t.not(ino32(2 * LAYER + 12345), folded, 'another layer, another number')
  t.not(folded, 12345, 'not the bare branch number of layer 0')
})

t.test('stat and statfs layouts', async t => {
  const s = statArray({
    ino: 7, mode: 0o100644, nlink: 2, uid: 1000, gid: 100, rdev: 0, size: 2 ** 33 + 5,
    blocks: 16, blksize: 4096, atimeMs: 1_500_000_000_123.9, mtimeMs: 1_600_000_000_000, ctimeMs: -5
  })
  t.equal(s.length, 18)
  t.same([s[0], s[1], s[2], s[6], s[7]], [0o100644, 1000, 100, 2, 7])
  t.equal(s[3] + s[4] * 2 ** 32, 2 ** 33 + 5, 'size in two halves')
  t.equal(s[12] + s[13] * 2 ** 32, 1_500_000_000_123, 'atime in whole ms')
  t.equal(s[14] + s[15] * 2 ** 32, 1_600_000_000_000)
  t.equal(s[16] + s[17] * 2 ** 32, 0, 'times before 1970 clamp to 0')

  const f = statfsArray({ bsize: 4096, frsize: 4096, blocks: 2 ** 33, bfree: 2 ** 32, bavail: 2 ** 31, files: 2 ** 40, ffree: 10, namemax: 255 })
  t.equal(f[1], 4096 * 4, 'fragment size scaled up so the block count fits')
  t.same([f[2], f[3], f[4]], [2 ** 31, 2 ** 30, 2 ** 29])
  t.equal(f[5], 2 ** 32 - 1, 'inode counts clamp')
  t.equal(f[10], 255)
})

t.test('libfuse options carry what fuse-native\'s whitelist drops', async t => {
  const o = libfuseOptions({}, 0)
  for (const want of ['use_ino', 'big_writes', `max_write=${MAX_WRITE}`, 'default_permissions', 'allow_other', 'subtype=unionfs-ts']) {
    t.ok(o.includes(want), want)
  }
  t.notOk(libfuseOptions({}, 1000).includes('allow_other'), 'allow_other is root\'s default only')
  t.ok(libfuseOptions({ entryTimeout: 0, negativeTimeout: 5 }, 0).includes('negative_timeout=5'))
  t.throws(() => libfuseOptions({ fsname: 'a,b' }, 0), TypeError)
  t.throws(() => libfuseOptions({ attrTimeout: -1 }, 0), TypeError)
})

// ---- through a real mount ----

function mountEntry (mnt: string): string[] | undefined {
  let found: string[] | undefined
  for (const line of fs.readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const f = line.split(' ')
    if (f[1] === mnt) found = f
  }
  return found
}

function exited (child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true)
  return new Promise(resolve => {
    const timer = setTimeout(() => { child.off('exit', done); resolve(false) }, ms)
    function done (): void { clearTimeout(timer); resolve(true) }
    child.once('exit', done)
  })
}

interface Served {
  base: string
  lower: string
  upper: string
  mnt: string
  child: ChildProcess
  /** Lines the child printed on stdout so far. */
  out: string[]
  err: () => string
}

/**
 * A union of a fresh lower (filled by `fill`) and empty upper, served by a
 * child at a fresh mountpoint. Teardown, even after a failure: umount, then
 * umount -l, then the child killed by its pid, then the directories removed.
 */
async function serve (t: Test, fill: (lower: string) => void): Promise<Served> {
  const base = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'unionfs-ts-fuse-native-')))
  const lower = path.join(base, 'lower')
  const upper = path.join(base, 'upper')
  const mnt = path.join(base, 'mnt')
  for (const d of [lower, upper, mnt]) fs.mkdirSync(d)
  fill(lower)

  const child = spawn(process.execPath, [...process.execArgv, FIXTURE, lower, upper, mnt], {
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const out: string[] = []
  let err = ''
  child.stderr?.setEncoding('utf8')
  child.stderr?.on('data', (s: string) => { err += s })
  t.teardown(async () => {
    if (mountEntry(mnt) !== undefined) spawnSync('umount', [mnt], { stdio: 'ignore', timeout: 30_000 })
    if (mountEntry(mnt) !== undefined) spawnSync('umount', ['-l', mnt], { stdio: 'ignore', timeout: 30_000 })
    if (!await exited(child, 5000) && child.pid !== undefined) {
      process.kill(child.pid, 'SIGTERM')
      if (!await exited(child, 5000)) process.kill(child.pid, 'SIGKILL')
      await exited(child, 5000)
    }
    if (mountEntry(mnt) === undefined) fs.rmSync(base, { recursive: true, force: true })
  })

  await new Promise<void>((resolve, reject) => {
    let buf = ''
    child.stdout?.setEncoding('utf8')
    child.stdout?.on('data', (s: string) => {
      buf += s
      let i
      while ((i = buf.indexOf('\n')) >= 0) {
        out.push(buf.slice(0, i))
        if (buf.slice(0, i) === 'ready') resolve()
        buf = buf.slice(i + 1)
      }
    })
    child.once('exit', (code, signal) => { reject(new Error(`the server exited (${code ?? signal}) before the mount was ready: ${err}`)) })
    setTimeout(() => { reject(new Error(`no mount after 60 s: ${err}`)) }, 60_000).unref()
  })
  return { base, lower, upper, mnt, child, out, err: () => err }
}

function write (file: string, data: string | Buffer): void {
  fs.mkdirSync(path.dirname(file), { recursive: true })
  fs.writeFileSync(file, data)
}

t.test('a union through the fuse-native backend', async t => {
  const s = await serve(t, lower => {
    write(`${lower}/lower.txt`, 'from the lower branch\n')
    write(`${lower}/gone.txt`, 'to be unlinked')
    write(`${lower}/moved.txt`, 'to be renamed')
    write(`${lower}/dir/inner.txt`, 'inner')
  })
  const m = (rel: string): string => path.join(s.mnt, rel)
  const lowerSnapshot = fs.readFileSync(`${s.lower}/lower.txt`, 'utf8')

  t.test('mounted as fuse.unionfs-ts with the options that matter', async t => {
    const e = mountEntry(s.mnt)
    t.ok(e, 'in /proc/mounts')
    t.equal(e?.[2], 'fuse.unionfs-ts')
    t.match(e?.[3], /default_permissions/)
    t.match(e?.[3], /allow_other/)
  })

  t.test('stat, ls, read', async t => {
    t.ok(fs.statSync(s.mnt).isDirectory())
    t.same(fs.readdirSync(s.mnt).sort(), ['dir', 'gone.txt', 'lower.txt', 'moved.txt'])
    t.equal(fs.readFileSync(m('lower.txt'), 'utf8'), 'from the lower branch\n')
    t.same(fs.readdirSync(m('dir')), ['inner.txt'])
    t.throws(() => fs.statSync(m('missing')), { code: 'ENOENT' })
  })

  t.test('st_ino is the union\'s (use_ino got through)', async t => {
    const lowerIno = fs.statSync(`${s.lower}/lower.txt`).ino
    t.equal(fs.statSync(m('lower.txt')).ino, ino32(LAYER + lowerIno), 'lower entry: layer 1 folded')
    const names = fs.readdirSync(s.mnt, { withFileTypes: true })
    t.ok(names.find(d => d.name === 'dir')?.isDirectory(), 'readdir carries the type')
  })

  t.test('create, write, read back; the file lands in the upper branch', async t => {
    fs.writeFileSync(m('new.txt'), 'hello')
    t.equal(fs.readFileSync(m('new.txt'), 'utf8'), 'hello')
    t.equal(fs.readFileSync(`${s.upper}/new.txt`, 'utf8'), 'hello')
    t.equal(fs.statSync(m('new.txt')).ino, fs.statSync(`${s.upper}/new.txt`).ino, 'upper entry: the branch number')
    t.notOk(fs.existsSync(`${s.lower}/new.txt`))
  })

  t.test('writing a lower file copies it up; st_ino stays', async t => {
    const before = fs.statSync(m('lower.txt')).ino
    fs.appendFileSync(m('lower.txt'), 'appended\n')
    t.equal(fs.readFileSync(m('lower.txt'), 'utf8'), 'from the lower branch\nappended\n')
    t.equal(fs.readFileSync(`${s.upper}/lower.txt`, 'utf8'), 'from the lower branch\nappended\n')
    t.equal(fs.readFileSync(`${s.lower}/lower.txt`, 'utf8'), lowerSnapshot, 'the lower branch is untouched')
    t.equal(fs.statSync(m('lower.txt')).ino, before)
  })

  t.test('mkdir, rmdir', async t => {
    fs.mkdirSync(m('d2'))
    t.ok(fs.statSync(`${s.upper}/d2`).isDirectory())
    t.throws(() => fs.mkdirSync(m('d2')), { code: 'EEXIST' })
    fs.rmdirSync(m('d2'))
    t.throws(() => fs.statSync(m('d2')), { code: 'ENOENT' })
    t.throws(() => fs.rmdirSync(m('dir')), { code: 'ENOTEMPTY' })
  })

  t.test('unlink of a lower file leaves a whiteout', async t => {
    fs.unlinkSync(m('gone.txt'))
    t.throws(() => fs.statSync(m('gone.txt')), { code: 'ENOENT' })
    t.notOk(fs.readdirSync(s.mnt).includes('gone.txt'))
    t.ok(fs.existsSync(`${s.upper}/.wh.gone.txt`), 'aufs whiteout in the upper branch')
    t.ok(fs.existsSync(`${s.lower}/gone.txt`), 'lower untouched')
  })

  t.test('rename', async t => {
    fs.renameSync(m('moved.txt'), m('renamed.txt'))
    t.equal(fs.readFileSync(m('renamed.txt'), 'utf8'), 'to be renamed')
    t.throws(() => fs.statSync(m('moved.txt')), { code: 'ENOENT' })
    t.equal(fs.readFileSync(`${s.upper}/renamed.txt`, 'utf8'), 'to be renamed')
    t.ok(fs.existsSync(`${s.lower}/moved.txt`), 'lower untouched')
  })

  t.test('symlink', async t => {
    fs.symlinkSync('new.txt', m('link'))
    t.equal(fs.readlinkSync(m('link')), 'new.txt')
    t.ok(fs.lstatSync(m('link')).isSymbolicLink())
    t.equal(fs.readFileSync(m('link'), 'utf8'), 'hello')
    t.equal(fs.readlinkSync(`${s.upper}/link`), 'new.txt')
  })

  t.test('hard link: one st_ino, two links', async t => {
    fs.linkSync(m('new.txt'), m('hard.txt'))
    const a = fs.statSync(m('new.txt'))
    const b = fs.statSync(m('hard.txt'))
    t.equal(b.ino, a.ino)
    t.equal(b.nlink, 2)
    t.equal(fs.statSync(`${s.upper}/hard.txt`).ino, fs.statSync(`${s.upper}/new.txt`).ino)
  })

  t.test('truncate, chmod, utimes', async t => {
    fs.writeFileSync(m('meta.txt'), 'abcdefgh')
    fs.truncateSync(m('meta.txt'), 3)
    t.equal(fs.readFileSync(m('meta.txt'), 'utf8'), 'abc')
    t.equal(fs.statSync(`${s.upper}/meta.txt`).size, 3)
    fs.chmodSync(m('meta.txt'), 0o640)
    t.equal(fs.statSync(m('meta.txt')).mode & 0o7777, 0o640)
    t.equal(fs.statSync(`${s.upper}/meta.txt`).mode & 0o7777, 0o640)
    // fuse-native delivers one time for both (see lib/fuse-native/ops.ts): set them equal.
    const when = new Date('2001-02-03T04:05:06.789Z')
    fs.utimesSync(m('meta.txt'), when, when)
    t.equal(fs.statSync(m('meta.txt')).mtimeMs, when.getTime())
    t.equal(fs.statSync(`${s.upper}/meta.txt`).atimeMs, when.getTime())
  })

  t.test('extended attributes', async t => {
    const native = await import('../lib/native')
    const big = crypto.randomBytes(3000)
    native.lsetxattr(m('new.txt'), 'user.small', Buffer.from('v'), 0)
    native.lsetxattr(m('new.txt'), 'user.big', big, 0)
    t.equal(native.lgetxattr(m('new.txt'), 'user.small').toString(), 'v')
    t.same(native.lgetxattr(m('new.txt'), 'user.big'), big, 'a value larger than a first guess')
    t.same(native.llistxattr(m('new.txt')).filter(n => n.startsWith('user.')).sort(), ['user.big', 'user.small'])
    t.throws(() => native.lgetxattr(m('new.txt'), 'user.none'), { code: 'ENODATA' })
    native.lremovexattr(m('new.txt'), 'user.small')
    t.throws(() => native.lgetxattr(m('new.txt'), 'user.small'), { code: 'ENODATA' })
    t.same(native.lgetxattr(`${s.upper}/new.txt`, 'user.big'), big, 'stored on the upper file')
  })

  t.test('4 MiB written and read back', async t => {
    const data = crypto.randomBytes(4 << 20)
    fs.writeFileSync(m('big.bin'), data)
    t.ok(fs.readFileSync(m('big.bin')).equals(data), 'through the mount')
    t.ok(fs.readFileSync(`${s.upper}/big.bin`).equals(data), 'on the upper branch')
    t.equal(fs.statSync(m('big.bin')).size, data.length)
  })

  t.test('fsync, statfs', async t => {
    const fd = fs.openSync(m('synced.txt'), 'w')
    fs.writeSync(fd, 'durable')
    fs.fsyncSync(fd)
    fs.fdatasyncSync(fd)
    fs.closeSync(fd)
    t.equal(fs.readFileSync(`${s.upper}/synced.txt`, 'utf8'), 'durable')
    const st = fs.statfsSync(s.mnt)
    t.ok(st.bsize > 0 && st.blocks > 0, 'sizes reported')
  })

  t.test('an unlinked file stays readable while open', async t => {
    fs.writeFileSync(m('open.txt'), 'still here')
    const fd = fs.openSync(m('open.txt'), 'r')
    fs.unlinkSync(m('open.txt'))
    t.notOk(fs.readdirSync(s.mnt).includes('open.txt'))
    const buf = Buffer.alloc(32)
    t.equal(buf.subarray(0, fs.readSync(fd, buf, 0, 32, 0)).toString(), 'still here')
    fs.closeSync(fd)
  })

  t.test('SIGTERM unmounts through the session, and the server exits 0', async t => {
    s.child.kill('SIGTERM')
    t.ok(await exited(s.child, 15_000), 'the server exited')
    t.equal(s.child.exitCode, 0, s.err())
    t.ok(s.out.includes('closed'), 'the session reported closed')
    t.equal(mountEntry(s.mnt), undefined, 'no longer mounted')
    t.equal(fs.readFileSync(`${s.upper}/new.txt`, 'utf8'), 'hello', 'nothing lost')
  })
})

t.test('an unmount from outside ends the session', async t => {
  const s = await serve(t, lower => { write(`${lower}/a`, 'a') })
  t.equal(fs.readFileSync(path.join(s.mnt, 'a'), 'utf8'), 'a')
  const r = spawnSync('umount', [s.mnt], { encoding: 'utf8', timeout: 30_000 })
  t.equal(r.status, 0, r.stderr)
  t.ok(await exited(s.child, 15_000), 'the server noticed and exited')
  t.equal(s.child.exitCode, 0, s.err())
  t.ok(s.out.includes('closed'))
})

t.test('a busy mount is detached lazily and served until the last file closes', async t => {
  const s = await serve(t, lower => { write(`${lower}/a`, 'lazy') })
  const fd = fs.openSync(path.join(s.mnt, 'a'), 'r')
  s.child.kill('SIGTERM')
  for (let i = 0; i < 100 && mountEntry(s.mnt) !== undefined; i++) await new Promise(resolve => setTimeout(resolve, 50))
  t.equal(mountEntry(s.mnt), undefined, 'detached from the tree')
  t.notOk(await exited(s.child, 500), 'still serving the open file')
  const buf = Buffer.alloc(16)
  t.equal(buf.subarray(0, fs.readSync(fd, buf, 0, 16, 0)).toString(), 'lazy')
  fs.closeSync(fd)
  t.ok(await exited(s.child, 15_000), 'gone once the file closed')
  t.equal(s.child.exitCode, 0, s.err())
})
