/**
 * Ops on open files: OPEN, CREATE, READ, WRITE, FLUSH, FSYNC, RELEASE,
 * FALLOCATE, LSEEK.
 *
 * File handles are the union's own numbers, passed through. Each open
 * handle is remembered with its node (fstat and ftruncate of an unlinked
 * file). An OPEN or CREATE whose reply the kernel refuses (the open was
 * interrupted) is released at once, or the handle would leak.
 *
 * Each open reply says how the kernel does the file's I/O (passthrough.ts):
 * from the branch file itself (FOPEN_PASSTHROUGH and a backing id; no READ
 * or WRITE reaches us for it), or through us and its page cache.
 *
 * A daemon-served open keeps the pages the kernel cached of the file at
 * earlier opens (FOPEN_KEEP_CACHE): a file read again is served from
 * memory, as on a local filesystem. The pages stay exact because the only
 * writes the kernel does not see itself are a passthrough handle's, on the
 * branch file directly, and a passthrough open (never KEEP_CACHE) makes
 * the kernel drop the inode's pages, while no daemon-served handle of the
 * inode can be open beside it (passthrough.ts). Daemon-served writes,
 * truncation (SETATTR, O_TRUNC) and hole punching go through the kernel,
 * which updates or drops its pages itself; a copy-up leaves the bytes as
 * they were. With cache=off (branches changed behind the mount) nothing
 * is kept: each open drops the pages.
 *
 * Every open reply also carries FOPEN_NOFLUSH: close(2) sends no FLUSH.
 * There is nothing to flush (a WRITE is on the branch file before its
 * reply; POSIX locks are the kernel's own, not negotiated), and a FLUSH is
 * a synchronous round trip in every close, including the close of each
 * inherited descriptor at every execve(2) of a process that holds one: a
 * slow or stopped daemon would hold up unrelated process starts. The
 * kernel still sends FLUSH with the writeback cache (to write dirty pages
 * back), and flushOp answers it.
 *
 * READ data is read straight into a pooled buffer behind the reply header
 * and sent from there (a large read is spliced from the file instead, past
 * the daemon's memory: splice.ts); WRITE data is handed to the union as a
 * view into the request buffer. Neither is copied.
 *
 * O_DIRECT is the kernel's business (it bypasses its page cache for that
 * open file and sends the reads and writes as they come); it is not passed
 * on, because the buffers the union reads into and writes from (behind a
 * reply or request header) are not aligned as O_DIRECT needs.
 *
 * With the writeback cache the kernel may read pages of a file opened
 * write-only and computes O_APPEND offsets itself: such opens become
 * O_RDWR without O_APPEND.
 */
import { constants } from 'node:fs'
import { fsError } from '../errors'
import type { Attr } from '../union/types'
import type { Decoder, Encoder, RequestHeader } from './codec'
import { killSuidSgid } from './killpriv'
import type { FuseNode } from './nodes'
import { creatorOf, encodeEntry, entryFor, kernelKeeps, op, type EntryResult, type OpContext } from './op-context'
import { CACHED_IO, type OpenIo } from './passthrough'
import type { Spliced } from './splice'
import { Fopen, FUSE_FSYNC_FDATASYNC, FUSE_OPEN_KILL_SUIDGID, FUSE_WRITE_KILL_SUIDGID, OutHeader } from './protocol'

const { O_WRONLY, O_RDWR, O_APPEND, O_DIRECT } = constants
/** O_ACCMODE, which node:fs does not export: the access mode is the low two bits. */
const ACCMODE = O_WRONLY | O_RDWR

function openFlags (ctx: OpContext, flags: number): number {
  flags &= ~O_DIRECT
  if (!ctx.conn.writeback) return flags
  if ((flags & ACCMODE) === O_WRONLY) flags = (flags & ~ACCMODE) | O_RDWR
  return flags & ~O_APPEND
}

const KEEP_CACHE_IO: OpenIo = { openFlags: Fopen.KEEP_CACHE, backingId: 0 }

/** Remember the handle and decide its I/O mode (the last step before the reply). */
function track (ctx: OpContext, node: FuseNode, fh: number): OpenIo {
  ctx.fhNodes.set(fh, node)
  ctx.nodes.trackOpen(node, fh)
  const io = ctx.passthrough.opened(node, fh)
  return io === CACHED_IO && kernelKeeps(ctx) ? KEEP_CACHE_IO : io
}

function untrack (ctx: OpContext, fh: number): void {
  ctx.passthrough.released(fh)
  ctx.nodes.untrackOpen(ctx.fhNodes.get(fh), fh)
  ctx.fhNodes.delete(fh)
}

interface Opened { fh: number, io: OpenIo }

/** fuse_open_out. */
function encodeOpen (e: Encoder, r: Opened): void {
  e.u64(r.fh)
  e.u32(r.io.openFlags | Fopen.NOFLUSH)
  e.u32(r.io.backingId)
}

/** The kernel did not take the handle: give it back. */
function releaseUnsent (ctx: OpContext, fh: number): void {
  untrack(ctx, fh)
  ctx.fs.release(fh).catch((err: unknown) => { ctx.log.error(`release of unsent handle ${fh}`, err) })
}

/**
 * An O_TRUNC open by a caller without CAP_FSETID clears suid/sgid
 * (killpriv.ts): the attributes after, if it cleared any. On failure the
 * new handle is given back; the kernel never hears of it.
 */
async function killOnOpen (ctx: OpContext, h: RequestHeader, path: string | undefined, fh: number): Promise<Attr | undefined> {
  try {
    return await killSuidSgid(ctx, h, path, fh) ? await ctx.fs.fgetattr(fh) : undefined
  } catch (err) {
    await ctx.fs.release(fh)
    throw err
  }
}

interface OpenIn { flags: number, openFlags: number }

export const openOp = op<OpenIn, Opened>({
  decode: (d) => ({ flags: d.u32(), openFlags: d.u32() }),
  run: async (ctx, h, a) => {
    const node = ctx.nodes.node(h.nodeid)
    const fh = await ctx.fs.open(ctx.nodes.path(h.nodeid), openFlags(ctx, a.flags))
    // No attributes travel in an OPEN reply: the kernel drops the ones it has.
    if ((a.openFlags & FUSE_OPEN_KILL_SUIDGID) !== 0 && await killOnOpen(ctx, h, node.paths[0], fh) !== undefined) {
      ctx.staleNodes.add(node.id)
    }
    return { fh, io: track(ctx, node, fh) }
  },
  encode: encodeOpen,
  sent: (ctx, r, ok) => { if (!ok) releaseUnsent(ctx, r.fh) }
})

interface CreateIn { flags: number, mode: number, umask: number, openFlags: number, name: string }

function decodeCreate (d: Decoder): CreateIn {
  const flags = d.u32()
  const mode = d.u32()
  const umask = d.u32()
  const openFlags = d.u32()
  return { flags, mode, umask, openFlags, name: d.cstr() }
}

function encodeCreated (e: Encoder, r: EntryResult & Opened, ctx: OpContext): void {
  encodeEntry(e, r, ctx)
  encodeOpen(e, r)
}

function createdSent (ctx: OpContext, r: EntryResult & Opened, ok: boolean): void {
  if (ok) return
  ctx.nodes.forget(r.node.id, 1)
  releaseUnsent(ctx, r.fh)
}

export const createOp = op<CreateIn, EntryResult & Opened>({
  decode: decodeCreate,
  run: async (ctx, h, a) => {
    const path = ctx.nodes.childPath(h.nodeid, a.name)
    const { fh, attr } = await ctx.fs.create(path, openFlags(ctx, a.flags), a.mode & 0o7777, creatorOf(ctx, h, a.umask))
    // Something to clear only if the create found the file there already.
    const killed = (a.openFlags & FUSE_OPEN_KILL_SUIDGID) !== 0 ? await killOnOpen(ctx, h, path, fh) : undefined
    const entry = entryFor(ctx, path, killed ?? attr)
    return { ...entry, fh, io: track(ctx, entry.node, fh) }
  },
  encode: encodeCreated,
  sent: createdSent
})

/**
 * TMPFILE, open(2) with O_TMPFILE: an unnamed file in the directory's copy
 * on the writable branch, answered as CREATE is, on a node with no path;
 * LINK names it (ops-namespace.ts). The name the kernel sends is a
 * placeholder. A union without tmpfile gets ENOSYS, after which the
 * kernel answers EOPNOTSUPP itself.
 */
export const tmpfileOp = op<CreateIn, EntryResult & Opened>({
  decode: decodeCreate,
  run: async (ctx, h, a) => {
    if (ctx.fs.tmpfile === undefined) throw fsError('ENOSYS', 'open')
    const dir = ctx.nodes.path(h.nodeid)
    const { fh, attr } = await ctx.fs.tmpfile(dir, openFlags(ctx, a.flags), a.mode & 0o7777, creatorOf(ctx, h, a.umask))
    const node = ctx.nodes.unnamed(attr)
    return { node, attr, fh, io: track(ctx, node, fh) }
  },
  encode: encodeCreated,
  sent: createdSent
})

interface ReadIn { fh: number, offset: number, size: number }

type ReadOut = { buf: Buffer, n: number } | Spliced

export const readOp = op<ReadIn, ReadOut>({
  decode: (d) => {
    const fh = d.u64()
    const offset = d.u64()
    return { fh, offset, size: d.u32() }
  },
  run: async (ctx, _h, a) => {
    const s = ctx.splicer
    if (s !== undefined && ctx.fs.readFd !== undefined && s.takes(a.offset, a.size)) {
      const spliced = s.fill(ctx.fs.readFd(a.fh), a.offset, a.size)
      if (spliced !== undefined) return spliced
    }
    const buf = ctx.pool.take()
    try {
      const size = Math.min(a.size, buf.length - OutHeader.SIZE)
      const n = await ctx.fs.read(a.fh, buf.subarray(OutHeader.SIZE, OutHeader.SIZE + size), size, a.offset)
      return { buf, n }
    } catch (err) {
      ctx.pool.give(buf)
      throw err
    }
  },
  spliced: (r) => 'spliced' in r,
  encode: (e, r) => { if ('buf' in r) e.framed(r.buf, r.n) },
  sent: (ctx, r) => { if ('buf' in r) ctx.pool.give(r.buf) }
})

interface WriteIn { fh: number, offset: number, writeFlags: number, data: Buffer }

export const writeOp = op<WriteIn, number>({
  keepsBuffer: true,
  decode: (d) => {
    const fh = d.u64()
    const offset = d.u64()
    const size = d.u32()
    const writeFlags = d.u32()
    d.skip(8 + 4 + 4) // lock_owner, flags, padding
    return { fh, offset, writeFlags, data: d.bytes(size) }
  },
  run: async (ctx, h, a) => {
    if ((a.writeFlags & FUSE_WRITE_KILL_SUIDGID) !== 0) {
      // A writer without CAP_FSETID (killpriv.ts); a WRITE reply carries no attributes.
      const node = ctx.nodes.node(h.nodeid)
      if (await killSuidSgid(ctx, h, node.paths[0], a.fh)) ctx.staleNodes.add(node.id)
    }
    return await ctx.fs.write(a.fh, a.data, a.data.length, a.offset)
  },
  encode: (e, n) => {
    e.u32(n)
    e.u32(0)
  }
})

export const flushOp = op<number, void>({
  decode: (d) => d.u64(),
  run: async (ctx, _h, fh) => { await ctx.fs.flush(fh) }
})

export const fsyncOp = op<{ fh: number, datasync: boolean }, void>({
  decode: (d) => {
    const fh = d.u64()
    return { fh, datasync: (d.u32() & FUSE_FSYNC_FDATASYNC) !== 0 }
  },
  run: async (ctx, _h, a) => { await ctx.fs.fsync(a.fh, a.datasync) }
})

export const releaseOp = op<number, void>({
  decode: (d) => d.u64(),
  run: async (ctx, _h, fh) => {
    untrack(ctx, fh)
    await ctx.fs.release(fh)
  }
})

interface FallocateIn { fh: number, offset: number, length: number, mode: number }

export const fallocateOp = op<FallocateIn, void>({
  decode: (d) => {
    const fh = d.u64()
    const offset = d.u64()
    const length = d.u64()
    return { fh, offset, length, mode: d.u32() }
  },
  run: async (ctx, _h, a) => { await ctx.fs.fallocate(a.fh, a.mode, a.offset, a.length) }
})

export const lseekOp = op<{ fh: number, offset: number, whence: number }, number>({
  decode: (d) => {
    const fh = d.u64()
    const offset = d.i64()
    return { fh, offset, whence: d.u32() }
  },
  run: async (ctx, _h, a) => await ctx.fs.lseek(a.fh, a.offset, a.whence),
  encode: (e, off) => { e.u64(off) }
})
