/**
 * READ replies spliced from the file into the device (lib/fuse/splice.ts,
 * native-shim/src/splice.cc).
 *
 * 1. The Splicer in process, with a pipe standing in for /dev/fuse: each
 *    message read back is one whole reply (header, then the file's bytes),
 *    at unaligned offsets, short at end of file, empty past it; what it
 *    refuses; a file it cannot splice (left to a buffered read); and a
 *    failure on either side leaves its pipes empty, so the next reply is
 *    exact.
 * 2. The union through its CLI (`node bin/unionfs-ts.js mount`): a lower
 *    file read whole and with O_DIRECT at unaligned offsets and sizes
 *    (the kernel passes those on as they are) comes out byte for byte,
 *    the daemon's counters show the replies were spliced, the lower file
 *    keeps every page it had in the page cache (none moved into the
 *    mount's), and a reader opened before a copy-up reads the copy
 *    through the splice as well.
 *
 * Every mount is unmounted in teardown, even when a test fails.
 */
import t from 'tap'
import * as fs from 'node:fs'
import * as path from 'node:path'

import type { FuseLog } from '../lib/fuse/log'
import { SPLICE_MIN, Splicer, type SpliceCalls } from '../lib/fuse/splice'
import * as native from '../lib/native'
import { CLI, run, tmpdir, withUnion } from './helpers/mount'
import { pattern } from './helpers/tree'

const KiB = 1024
const MiB = 1024 * KiB

const quiet = { info: () => {}, error: () => {}, request: () => {}, reply: () => {}, debug: false } as unknown as FuseLog

/** Everything waiting in non-blocking pipe `fd`. */
function readAll (fd: number): Buffer {
  const parts: Buffer[] = []
  const b = Buffer.alloc(256 * KiB)
  for (;;) {
    let n: number
    try {
      n = fs.readSync(fd, b, 0, b.length, null)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') break
      throw err
    }
    if (n === 0) break
    parts.push(Buffer.from(b.subarray(0, n)))
  }
  return Buffer.concat(parts)
}

/** Fills non-blocking pipe `fd` until it takes no more. */
function fillUp (fd: number): void {
  const junk = Buffer.alloc(64 * KiB, 0x5a)
  for (;;) {
    try {
      fs.writeSync(fd, junk)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return
      throw err
    }
  }
}

t.test('the Splicer, against a pipe for a device', async (t) => {
  const dir = tmpdir(t, 'splice')
  const size = 3 * MiB + 777
  const data = pattern(size, 7)
  const file = path.join(dir, 'f')
  fs.writeFileSync(file, data)
  const fd = fs.openSync(file, 'r')
  const dirFd = fs.openSync(dir, 'r')
  const [devR, devW, devCap] = native.makePipe(MiB)
  t.teardown(() => {
    for (const x of [fd, dirFd]) fs.closeSync(x)
    native.closePipe(devR, devW)
  })
  t.equal(devCap, MiB, 'a pipe of 1 MiB')

  const s = new Splicer(devW, native, MiB, quiet)
  t.teardown(() => { s.close() })
  let unique = 100

  /** One reply through the splicer, read back from the device pipe. */
  const reply = (offset: number, want: number): { len: number, error: number, unique: number, body: Buffer } => {
    t.ok(s.takes(offset, want), `takes ${want} bytes at ${offset}`)
    const filled = s.fill(fd, offset, want)
    const u = ++unique
    t.same(s.send(u), { outcome: 'ok', len: 16 + (filled?.spliced ?? -1) }, 'sent')
    const msg = readAll(devR)
    return { len: msg.readUInt32LE(0), error: msg.readInt32LE(4), unique: Number(msg.readBigUInt64LE(8)), body: msg.subarray(16) }
  }

  for (const [offset, want] of [[0, SPLICE_MIN], [12345, 200_000], [MiB, 512 * KiB], [4095, 700_001]]) {
    const m = reply(offset, want)
    t.equal(m.len, 16 + want, `${want} at ${offset}: the header's length`)
    t.equal(m.error, 0)
    t.equal(m.unique, unique, 'the request it answers')
    t.ok(m.body.equals(data.subarray(offset, offset + want)), 'the file\'s bytes, whole')
  }
  const tail = reply(size - 1000, 128 * KiB)
  t.equal(tail.len, 16 + 1000, 'short at end of file')
  t.ok(tail.body.equals(data.subarray(size - 1000)))
  const past = reply(size + 5, SPLICE_MIN)
  t.equal(past.len, 16, 'nothing past it')
  t.equal(s.sent, 6, 'replies counted')

  t.notOk(s.takes(0, SPLICE_MIN - 1), 'a small read stays buffered')
  t.notOk(s.takes(0, MiB), 'so does one its pipes cannot hold with the header')
  s.fill(fd, 0, SPLICE_MIN)
  t.notOk(s.takes(0, SPLICE_MIN), 'and one while a reply waits to be sent')
  s.send(++unique)
  readAll(devR)

  t.equal(s.fill(dirFd, 0, SPLICE_MIN), undefined, 'a file that cannot be spliced (EINVAL): undefined, for a buffered read')
  t.ok(s.takes(0, SPLICE_MIN), 'and the pipes are free')
  const writeOnly = fs.openSync(path.join(dir, 'wo'), 'w')
  t.teardown(() => { fs.closeSync(writeOnly) })
  t.throws(() => s.fill(writeOnly, 0, SPLICE_MIN), { code: 'EBADF', syscall: 'splice' }, 'any other error of the file: thrown')
  const afterIn = reply(8192, SPLICE_MIN)
  t.equal(afterIn.len, 16 + SPLICE_MIN)
  t.ok(afterIn.body.equals(data.subarray(8192, 8192 + SPLICE_MIN)), 'the next reply is exact')

  fillUp(devW)
  s.fill(fd, 0, 100_000)
  t.same(s.send(++unique), { outcome: 'refused', len: 16 + 100_000 }, 'a device that takes nothing: refused')
  readAll(devR)
  const afterOut = reply(50_000, 100_000)
  t.equal(afterOut.len, 16 + 100_000)
  t.equal(afterOut.unique, unique)
  t.ok(afterOut.body.equals(data.subarray(50_000, 150_000)), 'and the next reply is exact again')

  const small: SpliceCalls = { ...native, makePipe: () => native.makePipe(64 * KiB) }
  const cramped = new Splicer(devW, small, MiB, quiet)
  t.notOk(cramped.takes(0, SPLICE_MIN), 'pipes that cannot grow: the read is buffered')
  cramped.close()

  // Descriptors open in this process: each splicer's pipes, and nothing after.
  const open = (): number => fs.readdirSync('/proc/self/fd').length
  const before = open()
  const third = new Splicer(devW, native, MiB, quiet)
  t.equal(open(), before + 4, 'a splicer holds two pipes')
  third.close()
  t.equal(open(), before, 'and closes both with itself')
  let made = 0
  const failing: SpliceCalls = {
    ...native,
    makePipe: (bytes) => {
      if (++made === 2) throw Object.assign(new Error('EMFILE'), { code: 'EMFILE' })
      return native.makePipe(bytes)
    }
  }
  const none = new Splicer(devW, failing, MiB, quiet)
  t.notOk(none.takes(0, SPLICE_MIN), 'no second pipe: reads stay buffered')
  t.equal(open(), before, 'and the first pipe is closed again')
  none.close()
})

/** Pages of `file` in the page cache (util-linux fincore). */
function residentPages (file: string): number {
  const r = run('fincore', ['--noheadings', '--raw', '--output', 'PAGES', file])
  if (r.status !== 0) throw new Error(`fincore: ${r.stderr}`)
  return Number(r.stdout.trim())
}

/** The mount's daemon counters (`unionfs-ts stats --json`). */
function stats (mnt: string): { total: number, read: number, spliced: number } {
  const r = run(process.execPath, [CLI, 'stats', '--json', mnt])
  if (r.status !== 0) throw new Error(`stats: ${r.stderr}`)
  const s = JSON.parse(r.stdout) as { requests: { total: number, byKind: Record<string, number>, splicedReads?: number } }
  return { total: s.requests.total, read: s.requests.byKind.read ?? s.requests.byKind.READ ?? 0, spliced: s.requests.splicedReads ?? -1 }
}

t.test('the union: lower files read through spliced replies', async (t) => {
  const top = tmpdir(t, 'top')
  const low = tmpdir(t, 'low')
  const size = 5 * MiB + 4321
  const data = pattern(size, 11)
  fs.writeFileSync(path.join(low, 'big'), data)
  fs.writeFileSync(path.join(low, 'other'), data)
  const { mnt } = withUnion(t, { branches: [top, low] })
  const m = (p: string): string => path.join(mnt, p)

  const lowerBig = path.join(low, 'big')
  // Pages read from disk, as a layer's are, which a page-stealing splice
  // could take (the dirty or just-written ones of a new file it does not).
  run('python3', ['-c', 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)', lowerBig])
  fs.readFileSync(lowerBig)
  t.equal(residentPages(lowerBig), Math.ceil(size / 4096), 'the lower file, in the page cache')
  t.ok(fs.readFileSync(m('big')).equals(data), 'a lower file read whole')
  t.equal(residentPages(lowerBig), Math.ceil(size / 4096),
    'and still all of it: no page was moved out of its cache into the mount\'s')
  const whole = stats(mnt)
  t.ok(whole.spliced > 0, `its READ replies were spliced (${whole.spliced} of ${whole.read})`)

  const direct = fs.openSync(m('other'), fs.constants.O_RDONLY | fs.constants.O_DIRECT)
  t.teardown(() => { fs.closeSync(direct) })
  const readAt = (fd: number, n: number, pos: number): Buffer => {
    const b = Buffer.alloc(n)
    return b.subarray(0, fs.readSync(fd, b, 0, n, pos))
  }
  for (const [pos, n] of [[12345, 200_000], [3, SPLICE_MIN + 1], [2 * MiB + 17, 999_999], [size - 5000, 300_000], [size + 1, 100_000]]) {
    const want = data.subarray(pos, pos + n)
    t.ok(readAt(direct, n, pos).equals(want), `O_DIRECT: ${n} bytes at ${pos}, ${want.length} back`)
  }
  const afterDirect = stats(mnt)
  const reads = afterDirect.read - whole.read
  t.ok(reads >= 4, `${reads} READs (the kernel answers a read past the end itself)`)
  t.equal(afterDirect.spliced - whole.spliced, reads, 'each of them a spliced reply')

  // A reader opened before the copy-up reads the copy (design.md).
  const writer = fs.openSync(m('other'), 'r+')
  t.teardown(() => { fs.closeSync(writer) })
  const fresh = Buffer.alloc(70_000, 0x41)
  fs.writeSync(writer, fresh, 0, fresh.length, 100_000)
  const expect = Buffer.from(data)
  fresh.copy(expect, 100_000)
  t.ok(readAt(direct, 200_000, 50_000).equals(expect.subarray(50_000, 250_000)), 'the early reader sees the write, spliced from the copy')
  const afterCopy = stats(mnt)
  t.equal(afterCopy.spliced - afterDirect.spliced, afterCopy.read - afterDirect.read, 'spliced')
  t.ok(afterCopy.read > afterDirect.read, 'by the daemon')
  t.ok(fs.readFileSync(path.join(top, 'other')).equals(expect), 'the copy on the writable branch')
  t.ok(fs.readFileSync(path.join(low, 'other')).equals(data), 'the lower file untouched')
})
