/**
 * The op table: libfuse 2's path-based callbacks, as fuse-native delivers
 * them, translated to UnionFsApi calls, and one generic wrapper that gives
 * every request exactly one reply.
 *
 * Each entry receives the arguments fuse-native's native side passes to its
 * `_op_<name>` and returns `[result, ...reply values]` in the layout that
 * side reads back (a Uint32Array for a stat, the detached buffer for a read,
 * ...). `fail` gives the values an error reply must still carry: for read,
 * write and the xattr ops the native side detaches the request buffer even
 * on failure and cannot complete the reply without it. The wrapper turns a
 * thrown error into -errno with errnoOf; an error without a known code is a
 * bug, answered with EIO and logged once, never passed off as ENOENT.
 *
 * What fuse-native 2.2.6 cannot carry, and what is done instead:
 * - No caller identity reaches JS (no fuse_get_context): new entries are
 *   owned by the serving process's uid and gid, and made without their
 *   set-user-ID and set-group-ID bits: whoever made it, a new file would
 *   otherwise be a set-ID file of the daemon's user, root's.
 * - `create` gets no open flags: the file is created and opened O_RDWR (the
 *   kernel has already handled O_EXCL against what it knows).
 * - `utimens` gets the access time twice (its glue converts tv[0] for both
 *   slots), in whole milliseconds: the one time is applied to both atime and
 *   mtime. libfuse 2.9.9 calls utimens only when both times are being set
 *   and turns "now" into the time itself; `touch -a` or `touch -m` alone is
 *   answered with success and changes nothing. Should a UTIME_NOW or
 *   UTIME_OMIT code reach the glue, it arrives as 1073 ms (0 s plus the
 *   nanosecond code, divided down) and is taken as "now".
 * - st_ino is 32 bits: union inode numbers past 2^32 (every lower layer's:
 *   the layer sits at bit 40) are folded into 32 bits, stably (the same
 *   across copy-up and remounts) but not collision-free.
 * - Times are whole milliseconds; statfs counts are 32 bits (block counts
 *   are scaled by a larger fragment size to fit).
 * - No opendir/releasedir/fsyncdir: libfuse's defaults (success) cost no
 *   round trip to the JS thread; readdir lists the directory in one reply.
 */
import { constants } from 'node:fs'
import { errnoCode, errnoOf, fsError } from '../errors'
import type { FuseLog } from '../fuse/log'
import { fromBytes, toBytes } from '../union/paths'
import type { Attr, Caller, StatFs, TimeSpec, UnionFsApi } from '../union/types'
import type { Signal } from './binding'

const { O_RDWR, O_CREAT, S_IFDIR, S_IFMT } = constants
/** The permission bits and the sticky bit, without set-user-ID and set-group-ID (see the header). */
const NOT_SET_ID = 0o1777
const EIO = errnoCode('EIO')
const U32 = 2 ** 32
const U32_MAX = U32 - 1
/** What UTIME_NOW and UTIME_OMIT become in fuse-native's millisecond conversion (see the header). */
const UTIME_SPECIAL_MS = Math.floor(((1 << 30) - 2) / 1e6)

export interface OpDef {
  run: (...args: any[]) => Promise<unknown[]>
  fail?: (...args: any[]) => unknown[]
}

/** A union inode number as the 32 bits fuse-native's stat carries (see the header). */
export function ino32 (ino: number): number {
  if (ino <= U32_MAX) return ino
  const lo = ino % U32
  const hi = Math.floor(ino / U32)
  return ((lo ^ Math.imul(hi, 0x9e3779b1)) >>> 0) || 1
}

function ms (t: number): number {
  return t > 0 ? Math.floor(t) : 0
}

function put64 (a: Uint32Array, i: number, n: number): void {
  a[i] = n % U32
  a[i + 1] = Math.floor(n / U32)
}

/** fuse-native's stat layout: mode uid gid size(2) dev nlink ino rdev blksize blocks(2) atime(2) mtime(2) ctime(2). */
export function statArray (a: Attr): Uint32Array {
  const s = new Uint32Array(18)
  s[0] = a.mode
  s[1] = a.uid
  s[2] = a.gid
  put64(s, 3, a.size)
  s[6] = a.nlink
  s[7] = ino32(a.ino)
  s[8] = a.rdev
  s[9] = a.blksize
  put64(s, 10, a.blocks)
  put64(s, 12, ms(a.atimeMs))
  put64(s, 14, ms(a.mtimeMs))
  put64(s, 16, ms(a.ctimeMs))
  return s
}

function direntArray (ino: number, type: number): Uint32Array {
  const s = new Uint32Array(18)
  s[0] = type
  s[7] = ino32(ino)
  return s
}

/** fuse-native's statvfs layout: bsize frsize blocks bfree bavail files ffree favail fsid flag namemax. */
export function statfsArray (st: StatFs): Uint32Array {
  let frsize = st.frsize > 0 ? st.frsize : st.bsize
  let { blocks, bfree, bavail } = st
  while (blocks > U32_MAX) {
    frsize *= 2
    blocks = Math.floor(blocks / 2)
    bfree = Math.floor(bfree / 2)
    bavail = Math.floor(bavail / 2)
  }
  const clamp = (n: number): number => Math.min(n, U32_MAX)
  return Uint32Array.from([
    st.bsize, frsize, blocks, bfree, bavail,
    clamp(st.files), clamp(st.ffree), clamp(st.ffree), 0, 0, st.namemax
  ])
}

function timeOf (ms: number): TimeSpec {
  return ms === UTIME_SPECIAL_MS ? 'now' : ms
}

/** libfuse passes uid/gid -1 ("leave it") as an unsigned 32-bit number. */
function id (n: number): number {
  return n === U32_MAX ? -1 : n
}

function parentOf (p: string): string {
  const i = p.lastIndexOf('/')
  return i <= 0 ? '/' : p.slice(0, i)
}

/** The names of `list` as listxattr(2) returns them: each followed by a NUL. */
function xattrList (list: string[]): Buffer {
  return Buffer.from(list.map(n => n + '\0').join(''))
}

/** `open` counts the handles the kernel holds (for the session's stats). */
export function makeOps (fs: UnionFsApi, caller: Caller, open: { n: number } = { n: 0 }): Record<string, OpDef> {
  const ok = async (p: Promise<unknown>): Promise<unknown[]> => { await p; return [0] }
  const dataFail = (_p: string, _fh: number, buf: Buffer): unknown[] => [0, buf.buffer]

  return {
    getattr: { run: async (p: string) => [0, statArray(await fs.getattr(p))] },
    fgetattr: {
      run: async (p: string, fh: number) => [0, statArray(fh !== 0 ? await fs.fgetattr(fh) : await fs.getattr(p))]
    },
    // Only sent without default_permissions (which this backend always sets).
    access: { run: async (p: string) => await ok(fs.getattr(p)) },
    statfs: { run: async (p: string) => [0, statfsArray(await fs.statfs(p))] },

    readdir: {
      run: async (p: string) => {
        const list = await fs.readdir(p)
        const self = (await fs.getattr(p)).ino
        const parent = p === '/' ? self : (await fs.getattr(parentOf(p))).ino
        const names = ['.', '..']
        const stats = [direntArray(self, S_IFDIR), direntArray(parent, S_IFDIR)]
        for (const e of list) {
          names.push(fromBytes(e.name))
          stats.push(direntArray(e.ino, e.type))
        }
        return [0, names, stats]
      },
      fail: () => [[], []]
    },
    readlink: { run: async (p: string) => [0, fromBytes(await fs.readlink(p))], fail: () => [''] },

    open: {
      run: async (p: string, flags: number) => {
        const fh = await fs.open(p, flags)
        open.n++
        return [0, fh]
      },
      fail: () => [0]
    },
    create: {
      run: async (p: string, mode: number) => {
        const { fh } = await fs.create(p, O_RDWR | O_CREAT, mode & NOT_SET_ID, caller)
        open.n++
        return [0, fh]
      },
      fail: () => [0]
    },
    read: {
      run: async (_p: string, fh: number, buf: Buffer, len: number, lo: number, hi: number) => {
        const n = await fs.read(fh, buf, len, lo + hi * U32)
        return [n, n, buf.buffer]
      },
      fail: dataFail
    },
    write: {
      run: async (_p: string, fh: number, buf: Buffer, len: number, lo: number, hi: number) => {
        const n = await fs.write(fh, buf, len, lo + hi * U32)
        return [n, n, buf.buffer]
      },
      fail: dataFail
    },
    flush: { run: async (_p: string, fh: number) => await ok(fs.flush(fh)) },
    fsync: { run: async (_p: string, datasync: number, fh: number) => await ok(fs.fsync(fh, datasync !== 0)) },
    release: {
      run: async (_p: string, fh: number) => {
        open.n--
        return await ok(fs.release(fh))
      }
    },

    truncate: { run: async (p: string, lo: number, hi: number) => await ok(fs.truncate(p, lo + hi * U32)) },
    ftruncate: {
      run: async (p: string, fh: number, lo: number, hi: number) =>
        await ok(fh !== 0 ? fs.ftruncate(fh, lo + hi * U32) : fs.truncate(p, lo + hi * U32))
    },
    utimens: {
      run: async (p: string, aLo: number, aHi: number) => {
        const t = timeOf(aLo + aHi * U32)
        return await ok(fs.utimens(p, t, t))
      }
    },
    chown: { run: async (p: string, uid: number, gid: number) => await ok(fs.chown(p, id(uid), id(gid))) },
    chmod: { run: async (p: string, mode: number) => await ok(fs.chmod(p, mode & 0o7777)) },

    mknod: { run: async (p: string, mode: number, dev: number) => await ok(fs.mknod(p, mode & (S_IFMT | NOT_SET_ID), dev, caller)) },
    mkdir: { run: async (p: string, mode: number) => await ok(fs.mkdir(p, mode & 0o7777, caller)) },
    symlink: { run: async (target: string, p: string) => await ok(fs.symlink(target, p, caller)) },
    link: { run: async (existing: string, p: string) => await ok(fs.link(existing, p)) },
    unlink: { run: async (p: string) => await ok(fs.unlink(p)) },
    rmdir: { run: async (p: string) => await ok(fs.rmdir(p)) },
    rename: { run: async (from: string, to: string) => await ok(fs.rename(from, to, 0)) },

    setxattr: {
      run: async (p: string, name: string, value: Buffer, _pos: number, flags: number) => {
        // The value lives in libfuse's request buffer: the union gets a copy.
        await fs.setxattr(p, name, Buffer.from(value), flags)
        return [0, value.buffer]
      },
      fail: (_p: string, _n: string, value: Buffer) => [value.buffer]
    },
    getxattr: {
      run: async (p: string, name: string, out: Buffer) => {
        const v = await fs.getxattr(p, name)
        if (out.length > 0) {
          if (v.length > out.length) throw fsError('ERANGE', 'getxattr', p)
          v.copy(out)
        }
        return [v.length, out.buffer]
      },
      fail: (_p: string, _n: string, out: Buffer) => [out.buffer]
    },
    listxattr: {
      run: async (p: string, out: Buffer) => {
        const list = xattrList(await fs.listxattr(p))
        if (out.length > 0) {
          if (list.length > out.length) throw fsError('ERANGE', 'listxattr', p)
          list.copy(out)
        }
        return [list.length, out.buffer]
      },
      fail: (_p: string, out: Buffer) => [out.buffer]
    },
    removexattr: { run: async (p: string, name: string) => await ok(fs.removexattr(p, name)) }
  }
}

function show (v: unknown): string {
  if (Buffer.isBuffer(v)) return `<${v.length} bytes>`
  if (typeof v === 'string') return JSON.stringify(v)
  return String(v)
}

/** Ops whose first two arguments are paths (for symlink, its target and its path); every other op's first is. */
const TWO_PATHS = new Set(['rename', 'link', 'symlink'])

/**
 * The one wrapper: runs `def` for one request and calls `signal` exactly
 * once, with its reply or its errno. fuse-native hands paths over decoded
 * as UTF-8; the union takes them as byte strings (lib/union/paths.ts), and
 * the ops give listed names and link targets back as UTF-8.
 */
export function serveOp (name: string, def: OpDef, log: FuseLog, counter: { requests: number }): (signal: Signal, ...args: unknown[]) => void {
  const paths = TWO_PATHS.has(name) ? 2 : 1
  return (signal, ...args) => {
    for (let i = 0; i < paths; i++) if (typeof args[i] === 'string') args[i] = toBytes(args[i] as string)
    const seq = ++counter.requests
    if (log.debug) log.info(`<- ${seq} ${name} ${args.map(show).join(' ')}`)
    def.run(...args).then((reply) => {
      if (log.debug) log.info(`-> ${seq} ${name} ok ${String(reply[0])}`)
      signal(reply[0] as number, ...reply.slice(1))
    }, (err: unknown) => {
      let errno = errnoOf(err)
      if (errno === undefined) {
        log.error(`${name} ${args.filter(a => typeof a === 'string').join(' ')} failed without an errno, answering EIO`, err)
        errno = EIO
      }
      if (log.debug) log.info(`-> ${seq} ${name} error -${errno}`)
      signal(-errno, ...(def.fail?.(...args) ?? []))
    })
  }
}
