/**
 * The POSIX suite's scenarios: each gets its own empty directory and writes
 * its steps through the recorder (see ./posix-suite for what a transcript
 * line may record and why). A scenario only ever uses paths relative to its
 * directory, so it runs the same on a plain directory and through a mount.
 */
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as sys from './sys'
import { major, minor } from './tree'
import type { Rec } from './posix-suite'

const C = fs.constants
/** The unprivileged writer of the kill-privs scenario. */
const NOBODY = 65534
const sleepCell = new Int32Array(new SharedArrayBuffer(4))
function sleep (ms: number): void { Atomics.wait(sleepCell, 0, 0, ms) }

type Scenario = (r: Rec) => void

/** Step `step` (`fn`), then whether it moved `rel`'s ctime (lstat), 30 ms on so that a coarse clock ticks. */
function ctimeMoved (r: Rec, rel: string, step: string, fn: () => unknown, check = `ctime moved by ${step}`): void {
  const before = r.quiet(rel)?.ctimeNs
  sleep(30)
  r.try(step, fn)
  r.check(check, before !== undefined && (r.quiet(rel)?.ctimeNs ?? 0n) > before)
}

const O = (...flags: number[]): number => flags.reduce((a, b) => a | b, 0)

export const scenarios: Record<string, Scenario> = {
  open (r) {
    r.openClose('open missing O_RDONLY', 'f', C.O_RDONLY)
    const fd = r.open('open O_CREAT|O_WRONLY 0666', 'f', O(C.O_CREAT, C.O_WRONLY), 0o666)
    if (fd !== undefined) {
      r.do('write hello', () => fs.writeSync(fd, 'hello'))
      r.try('read from O_WRONLY fd', () => fs.readSync(fd, Buffer.alloc(10), 0, 10, 0))
      r.try('close', () => fs.closeSync(fd))
    }
    r.stat('f')
    r.openClose('open O_CREAT|O_EXCL existing', 'f', O(C.O_CREAT, C.O_EXCL, C.O_WRONLY), 0o644)
    r.openClose('open O_CREAT existing (no EXCL)', 'f', O(C.O_CREAT, C.O_WRONLY), 0o600)
    r.stat('f', 'stat f keeps mode and data')
    r.backdate('f')
    r.openClose('open O_TRUNC|O_WRONLY', 'f', O(C.O_TRUNC, C.O_WRONLY))
    r.stat('f', 'stat f after O_TRUNC')
    r.moved('f', 'mtimeMs', 'mtime moved by O_TRUNC')
    r.write('f', 'again')
    r.read('f')
    r.openClose('open O_CREAT|O_EXCL|O_RDWR 0600', 'g', O(C.O_CREAT, C.O_EXCL, C.O_RDWR), 0o600)
    r.stat('g')
    r.openClose('open O_CREAT 0777 under umask 022', 'h', O(C.O_CREAT, C.O_WRONLY), 0o777)
    r.stat('h')
    fs.mkdirSync(r.p('d'))
    r.openClose('open dir O_WRONLY', 'd', C.O_WRONLY)
    r.openClose('open dir O_RDWR', 'd', C.O_RDWR)
    r.openClose('open dir O_RDONLY', 'd', C.O_RDONLY)
    r.try('read on dir fd', () => {
      const dfd = fs.openSync(r.p('d'), C.O_RDONLY)
      try { fs.readSync(dfd, Buffer.alloc(10), 0, 10, 0) } finally { fs.closeSync(dfd) }
    })
    r.openClose('open file O_DIRECTORY', 'f', O(C.O_RDONLY, C.O_DIRECTORY))
    r.openClose('open file/x', 'f/x', C.O_RDONLY)
    r.openClose('create file/x', 'f/x', O(C.O_CREAT, C.O_WRONLY), 0o644)
    r.openClose('create nodir/x', 'nodir/x', O(C.O_CREAT, C.O_WRONLY), 0o644)
    fs.symlinkSync('f', r.p('lnk'))
    r.openClose('open symlink O_NOFOLLOW', 'lnk', O(C.O_RDONLY, C.O_NOFOLLOW))
    r.openClose('open O_CREAT|O_EXCL on symlink', 'lnk', O(C.O_CREAT, C.O_EXCL, C.O_WRONLY), 0o644)
    fs.symlinkSync('newtarget', r.p('dangling'))
    r.openClose('open O_CREAT through dangling symlink', 'dangling', O(C.O_CREAT, C.O_WRONLY), 0o644)
    r.lstat('newtarget')
    r.ls()
  },

  append (r) {
    r.write('f', 'abc')
    const fd = fs.openSync(r.p('f'), O(C.O_WRONLY, C.O_APPEND))
    r.do('write def (append)', () => fs.writeSync(fd, 'def'))
    r.do('pwrite X at 0 with O_APPEND', () => fs.writeSync(fd, Buffer.from('X'), 0, 1, 0))
    const fd2 = fs.openSync(r.p('f'), O(C.O_WRONLY, C.O_APPEND))
    r.do('second fd appends', () => fs.writeSync(fd2, '12'))
    r.do('first fd appends after second', () => fs.writeSync(fd, '34'))
    fs.closeSync(fd); fs.closeSync(fd2)
    r.read('f')
    r.stat('f')
    r.do('appendFile creates', () => fs.appendFileSync(r.p('g'), 'one'))
    r.do('appendFile appends', () => fs.appendFileSync(r.p('g'), 'two'))
    r.read('g')
  },

  readwrite (r) {
    const fd = fs.openSync(r.p('f'), O(C.O_CREAT, C.O_RDWR), 0o644)
    r.do('write at 0', () => fs.writeSync(fd, Buffer.from('hello world'), 0, 11, 0))
    const b = Buffer.alloc(100)
    r.do('pread 5 at 6', () => b.subarray(0, fs.readSync(fd, b, 0, 5, 6)))
    r.do('pwrite WORLD at 6', () => fs.writeSync(fd, Buffer.from('WORLD'), 0, 5, 6))
    r.do('pread all', () => b.subarray(0, fs.readSync(fd, b, 0, 100, 0)))
    r.do('pwrite z at 20 (past EOF)', () => fs.writeSync(fd, Buffer.from('z'), 0, 1, 20))
    r.fstat(fd, 'fstat after pwrite past EOF')
    r.do('pread all again', () => b.subarray(0, fs.readSync(fd, b, 0, 100, 0)))
    r.do('pread at EOF', () => fs.readSync(fd, b, 0, 10, 21))
    r.do('pread past EOF', () => fs.readSync(fd, b, 0, 10, 1000))
    r.do('pread 100 from 15', () => b.subarray(0, fs.readSync(fd, b, 0, 100, 15)))
    r.do('sequential write moves the offset', () => { fs.writeSync(fd, 'AB', 0); return fs.writeSync(fd, 'CD') })
    r.do('sequential read', () => { const x = Buffer.alloc(4); return x.subarray(0, fs.readSync(fd, x, 0, 4, 0)) })
    fs.closeSync(fd)
    const rfd = fs.openSync(r.p('f'), C.O_RDONLY)
    r.try('write on O_RDONLY fd', () => fs.writeSync(rfd, 'x'))
    fs.closeSync(rfd)
    // Sizes and offsets that cross page and request boundaries.
    const big = Buffer.alloc(3 * 1024 * 1024 + 12345)
    for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 13)) & 0xff
    r.write('big', big, 'write 3 MiB + 12345')
    r.do('read back equal', () => fs.readFileSync(r.p('big')).equals(big))
    const bfd = fs.openSync(r.p('big'), C.O_RDWR)
    const patch = Buffer.alloc(200_000, 0x5a)
    r.do('pwrite 200000 at 131000', () => fs.writeSync(bfd, patch, 0, patch.length, 131_000))
    patch.copy(big, 131_000)
    const mid = Buffer.alloc(70_000)
    r.do('pread 70000 at 300001', () => fs.readSync(bfd, mid, 0, mid.length, 300_001))
    r.check('pread data matches', mid.equals(big.subarray(300_001, 370_001)))
    fs.closeSync(bfd)
    r.do('whole file matches', () => fs.readFileSync(r.p('big')).equals(big))
    r.stat('big')
    r.backdate('f')
    r.write('f', 'new')
    r.moved('f', 'mtimeMs', 'mtime moved by write')
    r.moved('f', 'ctimeMs', 'ctime moved by write')
    r.write('empty', '')
    r.stat('empty')
    r.read('empty')
  },

  sparse (r) {
    const MiB = 1024 * 1024
    const fd = fs.openSync(r.p('s'), O(C.O_CREAT, C.O_RDWR), 0o644)
    r.try('ftruncate to 10 MiB', () => fs.ftruncateSync(fd, 10 * MiB))
    r.do('pwrite data at 5 MiB', () => fs.writeSync(fd, Buffer.from('data'), 0, 4, 5 * MiB))
    fs.fsyncSync(fd)
    const z = Buffer.alloc(4096, 1)
    r.do('read hole at 4096', () => { fs.readSync(fd, z, 0, 4096, 4096); return z.every(x => x === 0) })
    r.do('read data', () => { const x = Buffer.alloc(8); return x.subarray(0, fs.readSync(fd, x, 0, 8, 5 * MiB - 2)) })
    r.do('read across EOF', () => fs.readSync(fd, Buffer.alloc(100), 0, 100, 10 * MiB - 10))
    fs.closeSync(fd)
    const st = r.stat('s')
    r.check('sparse: st_blocks well under size', st !== undefined && st.blocks * 512n < 1n * BigInt(MiB))
    r.try('~SEEK_DATA from 0', () => { r.line('~SEEK_DATA from 0 value', String(sys.seek(r.p('s'), 'data', 0))) })
    r.try('~SEEK_HOLE from 5 MiB', () => { r.line('~SEEK_HOLE from 5 MiB value', String(sys.seek(r.p('s'), 'hole', 5 * MiB))) })
    r.try('~SEEK_DATA past last data', () => sys.seek(r.p('s'), 'data', 6 * MiB))
    r.try('truncate grow makes a hole', () => fs.truncateSync(r.p('s'), 20 * MiB))
    const st2 = r.stat('s')
    r.check('blocks unchanged by growing truncate', st !== undefined && st2 !== undefined && st2.blocks === st.blocks)
  },

  truncate (r) {
    r.write('f', 'hello world')
    r.try('truncate 5', () => fs.truncateSync(r.p('f'), 5))
    r.read('f')
    r.try('truncate grow to 10', () => fs.truncateSync(r.p('f'), 10))
    r.read('f')
    r.stat('f')
    const fd = fs.openSync(r.p('f'), C.O_RDWR)
    r.try('ftruncate 3', () => fs.ftruncateSync(fd, 3))
    r.fstat(fd, 'fstat after ftruncate')
    r.do('write after ftruncate at 5', () => fs.writeSync(fd, Buffer.from('Z'), 0, 1, 5))
    fs.closeSync(fd)
    r.read('f')
    r.try('truncate missing', () => fs.truncateSync(r.p('nope'), 0))
    fs.mkdirSync(r.p('d'))
    r.try('truncate dir', () => fs.truncateSync(r.p('d'), 0))
    r.try('ftruncate O_RDONLY fd', () => {
      const rfd = fs.openSync(r.p('f'), C.O_RDONLY)
      try { fs.ftruncateSync(rfd, 0) } finally { fs.closeSync(rfd) }
    })
    r.backdate('f')
    r.try('truncate 1', () => fs.truncateSync(r.p('f'), 1))
    r.moved('f', 'mtimeMs', 'mtime moved by truncate')
    r.try('truncate to same size', () => fs.truncateSync(r.p('f'), 1))
    r.read('f')
    r.try('truncate 0', () => fs.truncateSync(r.p('f'), 0))
    r.stat('f')
  },

  'unlink-open' (r) {
    r.write('f', 'still here')
    const rfd = fs.openSync(r.p('f'), C.O_RDONLY)
    const wfd = fs.openSync(r.p('f'), C.O_RDWR)
    r.try('unlink f', () => fs.unlinkSync(r.p('f')))
    r.lstat('f')
    r.ls()
    const b = Buffer.alloc(64)
    r.do('read through open fd', () => b.subarray(0, fs.readSync(rfd, b, 0, 64, 0)))
    r.fstat(rfd, 'fstat open fd of unlinked file')
    r.do('write through other fd', () => fs.writeSync(wfd, Buffer.from('STILL'), 0, 5, 0))
    r.do('first fd sees the write', () => b.subarray(0, fs.readSync(rfd, b, 0, 64, 0)))
    r.try('ftruncate unlinked', () => fs.ftruncateSync(wfd, 5))
    r.fstat(wfd, 'fstat after ftruncate')
    fs.closeSync(rfd); fs.closeSync(wfd)
    r.write('f', 'new file')
    r.read('f')
    r.try('unlink missing', () => fs.unlinkSync(r.p('nope')))
    r.try('unlink twice', () => { fs.unlinkSync(r.p('f')); fs.unlinkSync(r.p('f')) })
    r.ls()
  },

  'mkdir-rmdir' (r) {
    r.try('mkdir d', () => fs.mkdirSync(r.p('d')))
    r.stat('d')
    r.stat('.', 'stat scenario dir after one mkdir')
    r.try('mkdir d again', () => fs.mkdirSync(r.p('d')))
    r.try('mkdir 0700', () => fs.mkdirSync(r.p('p'), 0o700))
    r.stat('p')
    r.try('mkdir 0777 under umask 022', () => fs.mkdirSync(r.p('q'), 0o777))
    r.stat('q')
    r.write('f', 'x')
    r.try('mkdir over file', () => fs.mkdirSync(r.p('f')))
    r.try('mkdir f/x', () => fs.mkdirSync(r.p('f/x')))
    r.try('mkdir no/x', () => fs.mkdirSync(r.p('no/x')))
    r.try('mkdir d/e', () => fs.mkdirSync(r.p('d/e')))
    r.stat('d', 'stat d with one subdir')
    r.try('rmdir d (has subdir)', () => fs.rmdirSync(r.p('d')))
    r.try('rmdir d/e', () => fs.rmdirSync(r.p('d/e')))
    r.stat('d', 'stat d after rmdir d/e')
    r.try('rmdir d', () => fs.rmdirSync(r.p('d')))
    r.try('rmdir d again', () => fs.rmdirSync(r.p('d')))
    r.try('rmdir file', () => fs.rmdirSync(r.p('f')))
    r.try('unlink dir', () => fs.unlinkSync(r.p('p')))
    r.try('mkdir d2 + file', () => { fs.mkdirSync(r.p('d2')); fs.writeFileSync(r.p('d2/x'), '') })
    r.try('rmdir d2 (has file)', () => fs.rmdirSync(r.p('d2')))
    r.try('rmdir d2/.', () => fs.rmdirSync(r.p('d2') + '/.'))
    r.try('unlink d2/x', () => fs.unlinkSync(r.p('d2/x')))
    r.try('rmdir d2', () => fs.rmdirSync(r.p('d2')))
    r.try('mkdir -p a/b/c/d', () => fs.mkdirSync(r.p('a/b/c/d'), { recursive: true }))
    r.stat('a/b/c/d')
    r.try('rm -r a', () => fs.rmSync(r.p('a'), { recursive: true }))
    r.backdate('.')
    r.try('mkdir n', () => fs.mkdirSync(r.p('n')))
    r.moved('.', 'mtimeMs', 'parent mtime moved by mkdir')
    r.backdate('.')
    r.try('rmdir n', () => fs.rmdirSync(r.p('n')))
    r.moved('.', 'mtimeMs', 'parent mtime moved by rmdir')
    r.stat('.', 'stat scenario dir at the end')
    r.ls()
  },

  'rename-files' (r) {
    r.write('a', 'A'); r.write('b', 'B')
    const ia = r.quiet('a')?.ino
    r.try('rename a b', () => fs.renameSync(r.p('a'), r.p('b')))
    r.read('b')
    r.lstat('a')
    r.check('rename keeps st_ino', ia !== undefined && r.quiet('b')?.ino === ia)
    r.try('rename b b', () => fs.renameSync(r.p('b'), r.p('b')))
    r.read('b')
    r.try('rename missing', () => fs.renameSync(r.p('nope'), r.p('x')))
    fs.mkdirSync(r.p('d'))
    r.try('rename b d/b', () => fs.renameSync(r.p('b'), r.p('d/b')))
    r.read('d/b')
    r.try('rename d/b to missing dir', () => fs.renameSync(r.p('d/b'), r.p('nodir/b')))
    r.try('rename d/b over dir', () => { fs.mkdirSync(r.p('e')); fs.renameSync(r.p('d/b'), r.p('e')) })
    r.try('rename dir over file', () => fs.renameSync(r.p('e'), r.p('d/b')))
    r.write('c', 'C')
    r.try('rename c over d/b', () => fs.renameSync(r.p('c'), r.p('d/b')))
    r.read('d/b')
    r.write('h1', 'H')
    fs.linkSync(r.p('h1'), r.p('h2'))
    r.try('rename hard link over its twin', () => fs.renameSync(r.p('h1'), r.p('h2')))
    r.lstat('h1'); r.lstat('h2')
    r.backdate('.')
    r.backdate('d')
    r.try('rename d/b to ./b', () => fs.renameSync(r.p('d/b'), r.p('b')))
    r.moved('.', 'mtimeMs', 'target parent mtime moved')
    r.moved('d', 'mtimeMs', 'source parent mtime moved')
    r.write('long', 'L')
    r.try('rename to trailing-slash name', () => fs.renameSync(r.p('long'), r.p('long2') + '/'))
    r.ls(); r.ls('d')
  },

  'rename-dirs' (r) {
    fs.mkdirSync(r.p('src/sub'), { recursive: true })
    fs.writeFileSync(r.p('src/sub/f'), 'deep')
    fs.writeFileSync(r.p('src/g'), 'g')
    const ino = r.quiet('src')?.ino
    r.try('rename dir to new name', () => fs.renameSync(r.p('src'), r.p('dst')))
    r.check('dir rename keeps st_ino', ino !== undefined && r.quiet('dst')?.ino === ino)
    r.read('dst/sub/f')
    r.ls('dst')
    r.lstat('src')
    r.try('rename dir over empty dir', () => { fs.mkdirSync(r.p('empty')); fs.renameSync(r.p('dst'), r.p('empty')) })
    r.ls('empty')
    r.lstat('dst')
    r.try('rename dir over non-empty dir', () => {
      fs.mkdirSync(r.p('full')); fs.writeFileSync(r.p('full/x'), '')
      fs.renameSync(r.p('empty'), r.p('full'))
    })
    r.ls('full'); r.ls('empty')
    r.try('rename dir into its own subdir', () => fs.renameSync(r.p('empty'), r.p('empty/sub/x')))
    r.try('rename dir onto its own subdir', () => fs.renameSync(r.p('empty'), r.p('empty/sub')))
    r.try('rename dir to itself', () => fs.renameSync(r.p('empty'), r.p('empty')))
    r.try('rename subdir up over its parent', () => fs.renameSync(r.p('empty/sub'), r.p('empty')))
    r.try('rename dir into other dir', () => fs.renameSync(r.p('empty'), r.p('full/moved')))
    r.ls('full/moved')
    r.stat('full', 'stat full (nlink counts moved dir)')
    r.stat('.', 'stat scenario dir after moves')
    r.try('rename . away', () => fs.renameSync(r.p('full') + '/.', r.p('dot')))
    r.ls()
  },

  symlink (r) {
    r.try('symlink to missing', () => fs.symlinkSync('target', r.p('l1')))
    r.do('readlink l1', () => fs.readlinkSync(r.p('l1')))
    r.lstat('l1')
    r.stat('l1', 'stat l1 (dangling)')
    r.write('target', 'T')
    r.stat('l1', 'stat l1 (now resolves)')
    r.read('l1', 'read through l1')
    r.try('symlink over existing', () => fs.symlinkSync('x', r.p('l1')))
    r.try('symlink over existing file', () => fs.symlinkSync('x', r.p('target')))
    r.try('readlink on file', () => fs.readlinkSync(r.p('target')))
    r.try('readlink missing', () => fs.readlinkSync(r.p('nope')))
    fs.mkdirSync(r.p('d')); fs.writeFileSync(r.p('d/in'), 'in')
    r.try('symlink to dir', () => fs.symlinkSync('d', r.p('ld')))
    r.ls('ld', 'ls through symlink')
    r.try('symlink with ../ target', () => fs.symlinkSync('../target', r.p('d/up')))
    r.read('d/up', 'read through d/up')
    const long = 'x/'.repeat(500) + 'end'
    r.try('symlink with 1003-byte target', () => fs.symlinkSync(long, r.p('llong')))
    r.do('readlink long', () => fs.readlinkSync(r.p('llong')) === long)
    r.lstat('llong')
    r.try('write through symlink', () => fs.writeFileSync(r.p('l1'), 'via link'))
    r.read('target')
    r.try('unlink symlink', () => fs.unlinkSync(r.p('l1')))
    r.read('target', 'target survives its symlink')
    r.try('symlink loop', () => { fs.symlinkSync('loop2', r.p('loop1')); fs.symlinkSync('loop1', r.p('loop2')) })
    r.stat('loop1', 'stat symlink loop')
    r.try('rmdir symlink to dir', () => fs.rmdirSync(r.p('ld')))
    r.try('rename symlink', () => fs.renameSync(r.p('ld'), r.p('ld2')))
    r.do('readlink renamed', () => fs.readlinkSync(r.p('ld2')))
    r.ls()
  },

  hardlink (r) {
    r.write('f', 'x')
    r.try('link f g', () => fs.linkSync(r.p('f'), r.p('g')))
    r.stat('f'); r.stat('g')
    r.check('link shares st_ino', r.quiet('f')?.ino === r.quiet('g')?.ino && r.quiet('f') !== undefined)
    r.try('write via g', () => fs.writeFileSync(r.p('g'), 'via g'))
    r.read('f', 'f sees the write')
    r.try('link over existing', () => fs.linkSync(r.p('f'), r.p('g')))
    fs.mkdirSync(r.p('d'))
    r.try('link a dir', () => fs.linkSync(r.p('d'), r.p('d2')))
    r.try('link missing', () => fs.linkSync(r.p('nope'), r.p('n2')))
    r.try('link into missing dir', () => fs.linkSync(r.p('f'), r.p('nodir/f')))
    r.try('link f d/h', () => fs.linkSync(r.p('f'), r.p('d/h')))
    r.stat('f', 'stat f with 3 links')
    r.try('unlink f', () => fs.unlinkSync(r.p('f')))
    r.stat('g', 'stat g after unlink f')
    r.check('d/h still shares st_ino with g', r.quiet('g')?.ino === r.quiet('d/h')?.ino && r.quiet('g') !== undefined)
    r.try('rename g over d/h (same inode)', () => fs.renameSync(r.p('g'), r.p('d/h')))
    r.stat('g', 'stat g after rename onto its twin'); r.stat('d/h')
    r.try('symlink then link the symlink', () => { fs.symlinkSync('g', r.p('s')); fs.linkSync(r.p('s'), r.p('s2')) })
    r.lstat('s2')
    r.do('readlink s2', () => fs.readlinkSync(r.p('s2')))
    r.ls(); r.ls('d')
  },

  attrs (r) {
    r.write('f', 'x')
    r.try('chmod 0600', () => fs.chmodSync(r.p('f'), 0o600))
    r.stat('f')
    r.try('chmod 04755', () => fs.chmodSync(r.p('f'), 0o4755))
    r.stat('f', 'stat f setuid')
    r.try('chown 1234:5678', () => fs.chownSync(r.p('f'), 1234, 5678))
    r.stat('f', 'stat f after chown (setuid dropped)')
    r.try('chown -1:42', () => fs.chownSync(r.p('f'), -1, 42))
    r.stat('f', 'stat f after group-only chown')
    r.try('chmod 02755', () => fs.chmodSync(r.p('f'), 0o2755))
    r.try('chown 0:0', () => fs.chownSync(r.p('f'), 0, 0))
    r.stat('f', 'stat f after chown of setgid file')
    fs.mkdirSync(r.p('d'))
    r.try('chmod dir 0700', () => fs.chmodSync(r.p('d'), 0o700))
    r.try('chmod dir 01777', () => fs.chmodSync(r.p('d'), 0o1777))
    r.stat('d')
    r.try('chown dir 7:8', () => fs.chownSync(r.p('d'), 7, 8))
    r.stat('d', 'stat d after chown')
    fs.symlinkSync('f', r.p('l'))
    r.try('lchown symlink 99:98', () => fs.lchownSync(r.p('l'), 99, 98))
    r.lstat('l'); r.stat('f', 'stat f unaffected by lchown')
    r.try('chmod missing', () => fs.chmodSync(r.p('nope'), 0o644))
    r.try('chown missing', () => fs.chownSync(r.p('nope'), 1, 1))
    r.try('utimes f', () => fs.utimesSync(r.p('f'), 1_000_000_001, 1_500_000_002))
    const st = r.quiet('f')
    r.check('atime set', st?.atimeMs === 1_000_000_001_000n)
    r.check('mtime set', st?.mtimeMs === 1_500_000_002_000n)
    r.try('utimes with microseconds', () => fs.utimesSync(r.p('f'), 1_200_000_000.25, 1_300_000_000.123456))
    const st2 = r.quiet('f')
    r.do('mtime ns', () => st2?.mtimeNs.toString())
    r.do('atime ns', () => st2?.atimeNs.toString())
    r.try('utimes dir', () => fs.utimesSync(r.p('d'), 1_000_000_003, 1_000_000_004))
    r.do('dir mtime', () => r.quiet('d')?.mtimeMs.toString())
    r.try('lutimes symlink', () => fs.lutimesSync(r.p('l'), 1_000_000_005, 1_000_000_006))
    r.do('symlink mtime', () => r.quiet('l')?.mtimeMs.toString())
    r.do('target mtime unchanged by lutimes', () => r.quiet('f')?.mtimeMs.toString())
    r.try('futimes', () => {
      const fd = fs.openSync(r.p('f'), C.O_RDONLY)
      try { fs.futimesSync(fd, 1_100_000_000, 1_100_000_001) } finally { fs.closeSync(fd) }
    })
    r.do('mtime after futimes', () => r.quiet('f')?.mtimeMs.toString())
    r.try('utimes missing', () => fs.utimesSync(r.p('nope'), 1, 1))
    ctimeMoved(r, 'f', 'chmod 0644', () => fs.chmodSync(r.p('f'), 0o644), 'ctime moved by chmod')
    r.do('mtime unchanged by chmod', () => r.quiet('f')?.mtimeMs.toString())
    // chown(2) changing no id still moves the change time (Linux; POSIX allows either).
    ctimeMoved(r, 'f', 'chown f -1:-1', () => fs.chownSync(r.p('f'), -1, -1))
    ctimeMoved(r, 'd', 'chown d -1:-1', () => fs.chownSync(r.p('d'), -1, -1))
    ctimeMoved(r, 'l', 'lchown l -1:-1', () => fs.lchownSync(r.p('l'), -1, -1))
    const fd = fs.openSync(r.p('f'), C.O_RDONLY)
    r.try('fchmod 0640', () => fs.fchmodSync(fd, 0o640))
    r.try('fchown 3:4', () => fs.fchownSync(fd, 3, 4))
    r.fstat(fd, 'fstat after fchmod/fchown')
    fs.closeSync(fd)
  },

  /**
   * What a write, truncate or O_TRUNC open clears: suid always and sgid
   * with group-execute or from a writer outside the group, when the writer
   * lacks CAP_FSETID (the user "nobody" here); root's writes keep both.
   * A chown clears them whoever asks, even one that changes no owner.
   * Through FUSE passthrough the write itself never reaches the daemon.
   */
  'kill-privs' (r) {
    // The file is opened here, by root, and the child (`uid`) works on it
    // through its stdout, or reopens it as /dev/stdout: no path to it needs
    // to be searchable by nobody.
    const as = (uid: number, name: string, script: string): void => {
      const fd = fs.openSync(r.p(name), 'a')
      try {
        r.do(`uid ${uid}: ${script} on ${name}`, () => spawnSync('/bin/sh', ['-c', script], { cwd: '/', uid, gid: uid, stdio: ['ignore', fd, 'ignore'] }).status)
      } finally { fs.closeSync(fd) }
    }
    const file = (name: string, mode: number, gid: number): void => {
      r.write(name, 'x')
      fs.chownSync(r.p(name), 0, gid)
      fs.chmodSync(r.p(name), mode)
    }
    const mode = (name: string): void => { r.do(`mode of ${name}`, () => (fs.statSync(r.p(name)).mode & 0o7777).toString(8)) }
    const cases: Array<[name: string, mode: number, gid: number, uid: number, script: string]> = [
      ['suid', 0o4777, 0, NOBODY, 'echo y'],
      ['sgid-gx', 0o2777, 0, NOBODY, 'echo y'],
      ['sgid', 0o2767, 0, NOBODY, 'echo y'],
      ['both', 0o6777, 0, NOBODY, 'echo y'],
      ['sgid-in-group', 0o2767, NOBODY, NOBODY, 'echo y >> /dev/stdout'],
      ['root-writes', 0o6777, 0, 0, 'echo y'],
      ['truncated', 0o4777, 0, NOBODY, 'truncate -s 1 /dev/stdout'],
      ['opened', 0o4777, 0, NOBODY, ': > /dev/stdout'],
      ['root-opened', 0o4777, 0, 0, ': > /dev/stdout'],
      ['chowned', 0o6777, 0, 0, 'python3 -c "import os; os.fchown(1, -1, -1)"']
    ]
    for (const [name, m, gid, uid, script] of cases) {
      file(name, m, gid)
      as(uid, name, script)
      mode(name)
    }
    // A file found to have nothing to clear is cleared again once made suid.
    file('again', 0o777, 0)
    as(NOBODY, 'again', 'echo y')
    r.try('chmod again 04777', () => fs.chmodSync(r.p('again'), 0o4777))
    as(NOBODY, 'again', 'echo z >> /dev/stdout')
    mode('again')
    r.do('content of again', () => fs.readFileSync(r.p('again'), 'utf8'))
  },

  /**
   * A new entry keeps the set-ID bits it was made with, whoever makes it
   * (a union that creates as root and gives the entry to its caller with
   * chown(2) must put back what the chown cleared). In a set-group-ID
   * directory the kernel drops the sgid bit of a file made by a user
   * outside the directory's group, and the file takes the directory's
   * group. The user works in a directory opened here, its descriptor 3:
   * no path to it needs to be searchable by nobody.
   */
  'new-set-id' (r) {
    const mode = (rel: string): void => { r.do(`mode of ${rel}`, () => (fs.lstatSync(r.p(rel)).mode & 0o7777).toString(8)) }
    r.openClose('create 06755 as root', 'root-file', O(C.O_CREAT, C.O_WRONLY), 0o6755)
    mode('root-file')
    r.try('mkfifo 04644 as root', () => sys.mknod(r.p('root-fifo'), C.S_IFIFO | 0o4644))
    mode('root-fifo')
    const byNobody = (dir: string, name: string, m: number): void => {
      const fd = fs.openSync(r.p(dir), O(C.O_RDONLY, C.O_DIRECTORY))
      const script = `import os; os.close(os.open('${name}', os.O_CREAT | os.O_WRONLY, 0o${m.toString(8)}, dir_fd=3))`
      try {
        r.do(`uid ${NOBODY}: create ${dir}/${name} ${m.toString(8)}`, () => spawnSync('python3', ['-c', script], { cwd: '/', uid: NOBODY, gid: NOBODY, stdio: ['ignore', 'ignore', 'ignore', fd] }).status)
      } finally { fs.closeSync(fd) }
      mode(`${dir}/${name}`)
      r.stat(`${dir}/${name}`)
    }
    fs.mkdirSync(r.p('open'))
    fs.chmodSync(r.p('open'), 0o777)
    byNobody('open', 'user-file', 0o6755)
    fs.mkdirSync(r.p('sgid-dir'))
    fs.chmodSync(r.p('sgid-dir'), 0o2777)
    byNobody('sgid-dir', 'outsider-file', 0o2755)
  },

  fsync (r) {
    const fd = fs.openSync(r.p('f'), O(C.O_CREAT, C.O_RDWR), 0o644)
    r.do('write', () => fs.writeSync(fd, 'durable'))
    r.try('fsync', () => fs.fsyncSync(fd))
    r.try('fdatasync', () => fs.fdatasyncSync(fd))
    fs.closeSync(fd)
    const rfd = fs.openSync(r.p('f'), C.O_RDONLY)
    r.try('fsync read-only fd', () => fs.fsyncSync(rfd))
    fs.closeSync(rfd)
    const dfd = fs.openSync(r.p('.'), C.O_RDONLY | C.O_DIRECTORY)
    r.try('fsync dir fd', () => fs.fsyncSync(dfd))
    fs.closeSync(dfd)
    r.read('f')
  },

  readdir (r) {
    r.ls('.', 'ls empty')
    r.write('f', '')
    r.try('mkdir d', () => fs.mkdirSync(r.p('d')))
    r.try('symlink s', () => fs.symlinkSync('f', r.p('s')))
    r.try('mkfifo p', () => sys.mknod(r.p('p'), C.S_IFIFO | 0o644))
    r.lstat('p')
    r.try('mknod char 1:3', () => sys.mknod(r.p('c'), C.S_IFCHR | 0o600, 1, 3))
    r.lstat('c')
    r.do('rdev of c', () => { const st = r.quiet('c'); return st === undefined ? '' : `${major(st.rdev)}:${minor(st.rdev)}` })
    r.ls('.', 'ls mixed')
    r.try('rename f g', () => fs.renameSync(r.p('f'), r.p('g')))
    r.ls('.', 'ls after rename')
    r.try('unlink s', () => fs.unlinkSync(r.p('s')))
    r.ls('.', 'ls after unlink')
    r.try('rmdir d', () => fs.rmdirSync(r.p('d')))
    r.ls('.', 'ls after rmdir')
    r.try('readdir a file', () => fs.readdirSync(r.p('g')))
    r.try('readdir missing', () => fs.readdirSync(r.p('nope')))
    r.try('opendir and read one at a time', () => {
      const dir = fs.opendirSync(r.p('.'))
      const names: string[] = []
      for (let e = dir.readSync(); e !== null; e = dir.readSync()) names.push(e.name)
      dir.closeSync()
      r.line('opendir names', names.sort().join(' '))
    })
    r.try('create while a listing is open', () => {
      const dir = fs.opendirSync(r.p('.'))
      dir.readSync()
      fs.writeFileSync(r.p('late'), '')
      while (dir.readSync() !== null) { /* drain */ }
      dir.closeSync()
    })
    r.ls('.', 'ls at the end')
  },

  xattr (r) {
    r.write('f', 'x')
    r.do('listxattr none', () => sys.listxattr(r.p('f')).filter(n => n.startsWith('user.')))
    r.try('setxattr user.a', () => sys.setxattr(r.p('f'), 'user.a', 'v1'))
    r.do('getxattr user.a', () => sys.getxattr(r.p('f'), 'user.a'))
    r.do('listxattr', () => sys.listxattr(r.p('f')).filter(n => n.startsWith('user.')))
    r.try('setxattr CREATE existing', () => sys.setxattr(r.p('f'), 'user.a', 'v2', sys.XATTR_CREATE))
    r.try('setxattr REPLACE missing', () => sys.setxattr(r.p('f'), 'user.b', 'v2', sys.XATTR_REPLACE))
    r.try('setxattr REPLACE existing', () => sys.setxattr(r.p('f'), 'user.a', 'v3', sys.XATTR_REPLACE))
    r.do('getxattr after replace', () => sys.getxattr(r.p('f'), 'user.a'))
    r.try('setxattr empty value', () => sys.setxattr(r.p('f'), 'user.empty', ''))
    r.do('getxattr empty value', () => sys.getxattr(r.p('f'), 'user.empty'))
    const bin = Buffer.from([0, 1, 2, 0, 255, 10, 0])
    r.try('setxattr binary', () => sys.setxattr(r.p('f'), 'user.bin', bin))
    r.do('getxattr binary', () => sys.getxattr(r.p('f'), 'user.bin').equals(bin))
    const big = Buffer.alloc(4000, 'q')
    r.try('setxattr 4000 bytes', () => sys.setxattr(r.p('f'), 'user.big', big))
    r.do('getxattr 4000 bytes', () => sys.getxattr(r.p('f'), 'user.big').equals(big))
    r.do('listxattr all', () => sys.listxattr(r.p('f')).filter(n => n.startsWith('user.')))
    r.try('removexattr user.a', () => sys.removexattr(r.p('f'), 'user.a'))
    r.try('getxattr removed', () => sys.getxattr(r.p('f'), 'user.a'))
    r.try('removexattr again', () => sys.removexattr(r.p('f'), 'user.a'))
    r.try('getxattr missing file', () => sys.getxattr(r.p('nope'), 'user.a'))
    fs.mkdirSync(r.p('d'))
    r.try('setxattr on dir', () => sys.setxattr(r.p('d'), 'user.d', 'dir'))
    r.do('getxattr on dir', () => sys.getxattr(r.p('d'), 'user.d'))
    fs.symlinkSync('f', r.p('l'))
    r.try('lsetxattr user.* on symlink', () => sys.setxattr(r.p('l'), 'user.l', 'x', 0, false))
    r.do('getxattr through symlink', () => sys.getxattr(r.p('l'), 'user.bin', true).length)
    r.do('llistxattr symlink', () => sys.listxattr(r.p('l'), false).filter(n => n.startsWith('user.')))
    r.try('rename keeps xattrs', () => fs.renameSync(r.p('f'), r.p('g')))
    r.do('listxattr after rename', () => sys.listxattr(r.p('g')).filter(n => n.startsWith('user.')))
    r.try('link shares xattrs', () => fs.linkSync(r.p('g'), r.p('h')))
    r.try('setxattr via link', () => sys.setxattr(r.p('h'), 'user.viah', '1'))
    r.do('seen through the other name', () => sys.getxattr(r.p('g'), 'user.viah'))
    r.try('setxattr unknown namespace', () => sys.setxattr(r.p('g'), 'bogus.x', '1'))
  },

  statfs (r) {
    r.try('statfs', () => fs.statfsSync(r.p('.')))
    const st = fs.statfsSync(r.p('.'))
    r.check('bsize > 0', st.bsize > 0)
    r.check('blocks > 0', st.blocks > 0)
    r.check('bfree <= blocks', st.bfree <= st.blocks)
    r.check('bavail <= bfree', st.bavail <= st.bfree)
    r.check('files > 0', st.files > 0)
    r.try('statfs missing', () => fs.statfsSync(r.p('nope')))
    r.write('f', 'x')
    r.try('statfs of a file', () => fs.statfsSync(r.p('f')))
  },

  'long-names' (r) {
    const n255 = 'n'.repeat(255)
    const n256 = 'n'.repeat(256)
    const u255 = 'é'.repeat(127) + 'x' // 255 bytes in UTF-8
    r.write(n255, '255', 'create 255-byte name')
    r.stat(n255, 'stat 255-byte name')
    r.read(n255, 'read 255-byte name')
    r.write(n256, '256', 'create 256-byte name')
    r.lstat(n256, 'stat 256-byte name')
    r.try('mkdir 256-byte name', () => fs.mkdirSync(r.p(n256)))
    r.try('mkdir 255-byte name dir', () => fs.mkdirSync(r.p('d' + n255.slice(1))))
    r.try('rename to 256-byte name', () => fs.renameSync(r.p(n255), r.p(n256)))
    r.try('symlink 256-byte name', () => fs.symlinkSync('x', r.p(n256)))
    r.write(u255, 'utf8', 'create 255-byte UTF-8 name')
    r.do('ls has the long names', () => fs.readdirSync(r.p('.')).map(n => Buffer.byteLength(n)).sort((a, b) => a - b))
    r.try('unlink 255-byte name', () => fs.unlinkSync(r.p(n255)))
    r.try('rename 255 UTF-8 to short', () => fs.renameSync(r.p(u255), r.p('short')))
    r.ls()
  },

  /**
   * Names that are not UTF-8 (a Latin-1 'é', stray bytes, 255 bytes of
   * 0x80): a Linux name is any bytes but '/' and NUL, and each must be
   * made, found, listed, renamed and removed as those bytes.
   */
  'byte-names' (r) {
    const b = (name: string): Buffer => Buffer.concat([Buffer.from(r.p('') + '/'), Buffer.from(name, 'latin1')])
    const list = (rel = ''): string => fs.readdirSync(b(rel), { encoding: 'buffer' }).map(n => n.toString('hex')).sort().join(' ')
    const long = '\x80'.repeat(255)
    r.try('create lat\\xe9', () => fs.writeFileSync(b('lat\xe9'), 'latin-1'))
    r.do('read lat\\xe9', () => fs.readFileSync(b('lat\xe9'), 'latin1'))
    r.do('stat lat\\xe9 (UTF-8 spelling) is another name', () => fs.statSync(r.p('lat\u00e9')).size)
    r.try('create 255 bytes of \\x80', () => fs.writeFileSync(b(long), 'long'))
    r.do('read 255 bytes of \\x80', () => fs.readFileSync(b(long), 'latin1'))
    r.try('create 256 bytes of \\x80', () => fs.writeFileSync(b(long + '\x80'), 'x'))
    r.try('mkdir d\\xff', () => fs.mkdirSync(b('d\xff')))
    r.try('create d\\xff/f\\xfe', () => fs.writeFileSync(b('d\xff/f\xfe'), 'inner'))
    r.try('symlink to t\\xe9', () => fs.symlinkSync(Buffer.from('t\xe9', 'latin1'), b('l\xe9')))
    r.do('readlink l\\xe9', () => fs.readlinkSync(b('l\xe9'), { encoding: 'buffer' }).toString('hex'))
    r.do('ls (hex)', () => list())
    r.do('ls d\\xff (hex)', () => list('d\xff'))
    r.try('rename lat\\xe9 to r\\x81', () => fs.renameSync(b('lat\xe9'), b('r\x81')))
    r.do('read r\\x81', () => fs.readFileSync(b('r\x81'), 'latin1'))
    r.try('unlink 255 bytes of \\x80', () => fs.unlinkSync(b(long)))
    r.try('rename d\\xff to e\\xfa', () => fs.renameSync(b('d\xff'), b('e\xfa')))
    r.do('ls after renames (hex)', () => list())
    r.do('read e\\xfa/f\\xfe', () => fs.readFileSync(b('e\xfa/f\xfe'), 'latin1'))
  },

  'many-files' (r) {
    fs.mkdirSync(r.p('m'))
    const names: string[] = []
    for (let i = 0; i < 2000; i++) names.push(`file-${String(i).padStart(4, '0')}-${'x'.repeat(i % 40)}`)
    r.try('create 2000 files', () => { for (const n of names) fs.writeFileSync(r.p(`m/${n}`), n) })
    r.do('readdir has all 2000', () => {
      const got = fs.readdirSync(r.p('m')).sort()
      return got.length === names.length && got.every((n, i) => n === names[i])
    })
    r.do('readdir has no duplicates', () => new Set(fs.readdirSync(r.p('m'))).size)
    r.read(`m/${names[1234]}`, 'read one of them')
    r.try('unlink every other', () => { for (let i = 0; i < names.length; i += 2) fs.unlinkSync(r.p(`m/${names[i]}`)) })
    r.do('readdir has 1000', () => fs.readdirSync(r.p('m')).length)
    r.try('unlink the rest', () => { for (let i = 1; i < names.length; i += 2) fs.unlinkSync(r.p(`m/${names[i]}`)) })
    r.ls('m')
    r.try('rmdir m', () => fs.rmdirSync(r.p('m')))
  }
}
