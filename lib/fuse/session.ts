/**
 * One FUSE connection: takes each request its reader (device.ts) reads,
 * runs it through the op table and writes exactly one reply (none for
 * FORGET, BATCH_FORGET, NOTIFY_REPLY), sends invalidation notices, and
 * ends when the kernel says the filesystem is gone: ENODEV on a read means
 * unmounted (or aborted): stop reading, wait for running handlers, close
 * the device, call fs.destroy() and resolve `closed`.
 *
 * Invalidation: the union reports copy-ups (`watch`); the kernel is told to
 * drop the attributes it cached for each copied entry before the reply of
 * the request that caused it (`onUnionChange`), which is what makes long
 * entry/attr/negative timeouts exact for changes made through the mount.
 *
 * Replying: replies are encoded into one shared buffer and written with
 * writeSync, both synchronously, so replies never interleave. A write that
 * fails with ENOENT was for a request the kernel gave up on (interrupted):
 * the op's `sent` hook undoes what the reply would have handed over.
 */
import * as fs from 'node:fs'
import { errnoCode, errnoOf } from '../errors'
import type { UnionChange, UnionFsApi } from '../union/types'
import { BufferPool } from './buffers'
import { Decoder, Encoder, decodeHeader, readU64, timeout, type RequestHeader } from './codec'
import {
  BlockingReader, PoolReader, notifyInvalEntry, notifyInvalInode, plainRead, readFailure, writeMessage,
  type DeviceRead, type Feed, type Reader, type WriteOutcome
} from './device'
import { DirHandles } from './dirs'
import { ListingAttrs, type ReaddirPlusMode } from './listing-attrs'
import { FuseLog } from './log'
import { NodeTable } from './nodes'
import type { OpContext, OpSpec } from './op-context'
import { makeOpTable, type OpTable } from './ops'
import { Passthrough, type BackingIoctls } from './passthrough'
import { Splicer, type SpliceCalls } from './splice'
import { InHeader, OP_NAMES } from './protocol'
import { BY_OPCODE, FLAG_ABANDON, FLAG_MINOR, FLAG_MOUNTED, type SharedState } from './shared-state'
import type { FuseStats } from './types'

/** 1 MiB writes and reads: 256 pages of 4 KiB. */
export const MAX_PAGES = 256
export const MAX_WRITE = MAX_PAGES * 4096
/** A request is at most a header, a fuse_write_in and max_write bytes: 4096 covers the first two. */
export const BUFFER_SIZE = MAX_WRITE + 4096
const EIO = errnoCode('EIO')
const ENOSYS = errnoCode('ENOSYS')
const EINVAL = errnoCode('EINVAL')

export interface SessionConfig {
  fd: number
  fs: UnionFsApi
  entryTimeout: number
  attrTimeout: number
  negativeTimeout: number
  writeback: boolean
  /** Ask for HANDLE_KILLPRIV_V2 (FuseMountOptions.killpriv, killpriv.ts). */
  killPriv: boolean
  /** Ask for passthrough (it also needs `backing` and the kernel's agreement). */
  passthrough: boolean
  /** The blocking loop polls the device this long before each read (FuseMountOptions.spin). */
  spinUs: number
  /** Default 'auto' (listing-attrs.ts). */
  readdirPlus?: ReaddirPlusMode
  /** Serve the xattr ops (default); false: ENOSYS (FuseMountOptions.xattr). */
  xattr?: boolean
  /** Ask for POSIX_ACL and DONT_MASK, with xattrs on (FuseMountOptions.acl; default true). */
  acl?: boolean
  /** The native shim's polling read; undefined: a plain readSync, without the spin. */
  readDevice?: DeviceRead
  /** The backing-file ioctls; undefined without the native addon. */
  backing: BackingIoctls | undefined
  /** The splice calls for large READ replies; undefined: every read is buffered. */
  splice?: SpliceCalls
  debug: boolean
  /**
   * 'pool' (default): reads on the thread pool. 'sync': one blocking loop,
   * each request run to its reply before the next read; only for a worker
   * thread that serves the whole connection (thread.ts). device.ts has both.
   */
  loop?: 'pool' | 'sync'
  /** Flags and counters shared with the thread that owns the mount (thread.ts, shared-state.ts). */
  shared?: SharedState
  /** Close the device when the session ends (default). False: its owner, another thread, does. */
  ownsFd?: boolean
}

type Phase = 'mounting' | 'live' | 'stopping' | 'ended'

export class FuseConnection {
  readonly closed: Promise<void>
  private resolveClosed!: () => void
  private phase: Phase = 'mounting'
  private mounted = false
  private readonly reader: Reader
  private inflight = 0
  private requests = 0
  /** Requests by opcode, for `unionfs-ts stats`. */
  private readonly byOpcode: number[] = []
  private readonly fd: number
  private readonly shared: SharedState | undefined
  private readonly ownsFd: boolean
  private readonly table: OpTable
  private readonly dec = new Decoder()
  private readonly enc = new Encoder(BUFFER_SIZE)
  readonly ctx: OpContext
  readonly log: FuseLog

  constructor (cfg: SessionConfig) {
    this.fd = cfg.fd
    this.shared = cfg.shared
    this.ownsFd = cfg.ownsFd ?? true
    this.table = makeOpTable(cfg.xattr ?? true)
    this.log = new FuseLog(cfg.debug)
    this.closed = new Promise((resolve) => { this.resolveClosed = resolve })
    this.ctx = {
      fs: cfg.fs,
      nodes: new NodeTable(),
      dirs: new DirHandles(),
      pool: new BufferPool(BUFFER_SIZE, 8),
      log: this.log,
      entryValid: timeout(cfg.entryTimeout),
      attrValid: timeout(cfg.attrTimeout),
      negativeValid: cfg.negativeTimeout > 0 ? timeout(cfg.negativeTimeout) : undefined,
      wantWriteback: cfg.writeback,
      wantKillPriv: cfg.killPriv,
      wantAcl: (cfg.acl ?? true) && (cfg.xattr ?? true),
      maxWrite: MAX_WRITE,
      maxPages: MAX_PAGES,
      fhNodes: new Map(),
      passthrough: new Passthrough(cfg.fd, cfg.fs, cfg.backing, cfg.passthrough, this.log),
      splicer: cfg.splice === undefined ? undefined : new Splicer(cfg.fd, cfg.splice, MAX_WRITE, this.log),
      listingAttrs: new ListingAttrs(cfg.readdirPlus ?? 'auto'),
      staleNodes: new Set(),
      conn: { minor: 0, flags: 0, writeback: false, setxattrExt: false, killPriv: false, acl: false, passthrough: false, noOpendir: false }
    }
    const feed: Feed = {
      pool: this.ctx.pool,
      wants: () => this.phase !== 'stopping' && this.phase !== 'ended',
      request: (buf, n) => this.dispatch(buf, n),
      failed: (err) => this.readFailed(err),
      settled: () => { this.maybeEnd() }
    }
    this.reader = cfg.loop === 'sync'
      ? new BlockingReader(cfg.fd, feed, {
        beforeRead: () => { this.checkFlags() },
        served: () => { if (this.shared !== undefined) this.publish(this.shared.counters) },
        crashed: (err) => {
          this.log.error('the serving loop failed', err)
          this.stop()
        }
      }, cfg.readDevice ?? plainRead, cfg.spinUs)
      : new PoolReader(cfg.fd, feed)
  }

  /** Start reading: before mount(8) runs, since the kernel sends INIT during the mount. */
  start (): void {
    this.ctx.fs.watch?.((c) => { this.onUnionChange(c) })
    this.reader.start()
  }

  /** The owner's flags (thread.ts), seen while mounting: mount(8) done, or given up. */
  private checkFlags (): void {
    const flags = this.shared?.flags
    if (flags === undefined || this.phase !== 'mounting') return
    if (Atomics.load(flags, FLAG_ABANDON) !== 0) this.phase = 'stopping'
    else if (Atomics.load(flags, FLAG_MOUNTED) !== 0) this.setMounted()
  }

  /** Copy the stats into the shared counters (statsFromCounters reads them). */
  private publish (c: Float64Array): void {
    const pt = this.ctx.passthrough.stats()
    c[0] = this.requests
    c[1] = this.ctx.nodes.size
    c[2] = this.ctx.dirs.size
    c[3] = this.ctx.fhNodes.size
    c[4] = this.ctx.conn.passthrough ? 1 : 0
    c[5] = pt.passthrough
    c[6] = pt.cached
    c[7] = pt.registered
    c[8] = pt.backings
    c[9] = this.ctx.splicer?.sent ?? 0
    const by = this.byOpcode
    for (let op = 0; op < by.length && op < 64; op++) c[BY_OPCODE + op] = by[op] ?? 0
    if (this.shared !== undefined) Atomics.store(this.shared.flags, FLAG_MINOR, this.ctx.conn.minor)
  }

  /** mount(8) succeeded. */
  setMounted (): void {
    this.mounted = true
    if (this.phase === 'mounting') this.phase = 'live'
  }

  /** mount(8) failed: stop retrying the reads and close the device. */
  abandon (): void {
    this.stop()
  }

  /** INIT's reply is written in the same turn as its minor is set, before any timer can look. */
  agreed (): boolean {
    return this.ctx.conn.minor > 0
  }

  stats (): FuseStats {
    const pt = this.ctx.passthrough.stats()
    return {
      requests: this.requests,
      requestsByKind: Object.fromEntries(this.byOpcode.flatMap((n, op) => n === undefined ? [] : [[OP_NAMES[op] ?? `op${op}`, n]])),
      nodes: this.ctx.nodes.size,
      openDirs: this.ctx.dirs.size,
      openFiles: this.ctx.fhNodes.size,
      passthrough: this.ctx.conn.passthrough,
      passthroughOpens: pt.passthrough,
      cachedOpens: pt.cached,
      backingsRegistered: pt.registered,
      backingsOpen: pt.backings,
      splicedReads: this.ctx.splicer?.sent ?? 0
    }
  }

  /** A read of the device failed: read again after this many milliseconds, or undefined (stopped). */
  private readFailed (err: NodeJS.ErrnoException): number | undefined {
    const what = readFailure(err, this.requests > 0)
    if (typeof what === 'number') return what
    if (what === 'unmounted') this.log.info('device says ENODEV: unmounted')
    else this.log.error('reading /dev/fuse failed, ending the session', err)
    this.stop()
    return undefined
  }

  /** The generic wrapper: decode, run the op, send its one reply. Returns the running op, if any. */
  private dispatch (buf: Buffer, n: number): Promise<void> | undefined {
    this.requests++
    let h: RequestHeader
    let bodyEnd: number
    try {
      ({ header: h, bodyEnd } = decodeHeader(buf, n))
    } catch (err) {
      this.log.error('malformed request header', err)
      // Answer it if it can be named at all: an unanswered request hangs its caller.
      if (n >= InHeader.SIZE) this.reply(readU64(buf, InHeader.unique), EIO)
      this.ctx.pool.give(buf)
      return
    }
    this.byOpcode[h.opcode] = (this.byOpcode[h.opcode] ?? 0) + 1
    const spec = this.table[h.opcode]
    if (spec === undefined) {
      this.ctx.pool.give(buf)
      this.log.request(h.unique, OP_NAMES[h.opcode] ?? `op${h.opcode}`, h.nodeid, undefined)
      this.reply(h.unique, ENOSYS)
      return
    }
    let args: unknown
    try {
      this.dec.reset(buf, InHeader.SIZE, bodyEnd)
      args = spec.decode(this.dec, this.ctx)
    } catch (err) {
      this.ctx.pool.give(buf)
      this.log.error(`malformed ${OP_NAMES[h.opcode]} request`, err)
      if (spec.noReply !== true) this.reply(h.unique, EINVAL)
      return
    }
    if (spec.keepsBuffer !== true) this.ctx.pool.give(buf)
    this.log.request(h.unique, OP_NAMES[h.opcode], h.nodeid, args)
    this.inflight++
    return this.run(spec, h, args, spec.keepsBuffer === true ? buf : undefined)
  }

  private async run (spec: OpSpec<unknown, unknown>, h: RequestHeader, args: unknown, held: Buffer | undefined): Promise<void> {
    try {
      let r: unknown
      try {
        r = await spec.run(this.ctx, h, args)
      } catch (err) {
        const errno = this.errnoFor(err, h)
        if (this.ctx.staleNodes.size > 0) this.sendNotices()
        if (spec.noReply !== true) this.reply(h.unique, errno)
        return
      }
      if (this.ctx.staleNodes.size > 0) this.sendNotices()
      if (spec.noReply === true) return
      let ok: boolean
      try {
        ok = this.reply(h.unique, 0, spec, r)
      } catch (err) {
        // Encoding failed: a bug. The kernel still gets its one reply.
        this.log.error(`encoding the ${OP_NAMES[h.opcode]} reply failed`, err)
        this.reply(h.unique, EIO)
        ok = false
      }
      if (spec.sent !== undefined) {
        try {
          spec.sent(this.ctx, r, ok)
        } catch (err) {
          this.log.error(`after the ${OP_NAMES[h.opcode]} reply`, err)
        }
      }
    } finally {
      if (held !== undefined) this.ctx.pool.give(held)
      this.inflight--
      if (this.phase === 'stopping') this.maybeEnd()
    }
  }

  /** The errno to answer; an error without one is a bug: EIO, logged. */
  private errnoFor (err: unknown, h: RequestHeader): number {
    const errno = errnoOf(err)
    if (errno !== undefined) return errno
    this.log.error(`${OP_NAMES[h.opcode]} (unique ${h.unique}, node ${h.nodeid}) failed without an errno, answering EIO`, err)
    return EIO
  }

  /** Encode and write one reply. True when the kernel took it. */
  private reply (unique: number, errno: number, spec?: OpSpec<unknown, unknown>, r?: unknown): boolean {
    if (errno === 0 && spec?.spliced?.(r) === true) return this.replySpliced(unique)
    const e = this.enc
    e.begin()
    if (errno === 0 && spec?.encode !== undefined) spec.encode(e, r, this.ctx)
    const { msg, len } = e.finish(unique, -errno)
    this.log.reply(unique, errno, len)
    return this.answered(unique, errno, this.write(msg, len))
  }

  /** The reply whose data the splicer holds (splice.ts). */
  private replySpliced (unique: number): boolean {
    // Ended: the splicer was closed with the session, its data dropped.
    if (this.phase === 'ended') return false
    const { outcome, len } = (this.ctx.splicer as Splicer).send(unique)
    this.log.reply(unique, 0, len)
    return this.answered(unique, 0, outcome)
  }

  /** After writing a reply: true when the kernel took it; a refused success reply gets EIO instead. */
  private answered (unique: number, errno: number, outcome: WriteOutcome): boolean {
    if (outcome === 'refused' && errno === 0) {
      // The kernel rejected the reply's shape (a bug): without an answer the
      // request would hang, so it gets EIO instead.
      this.enc.begin()
      const fallback = this.enc.finish(unique, -EIO)
      this.log.reply(unique, EIO, fallback.len)
      this.write(fallback.msg, fallback.len)
    }
    return outcome === 'ok'
  }

  private write (msg: Buffer, len: number): WriteOutcome {
    return this.phase === 'ended' ? 'gone' : writeMessage(this.fd, msg, len, this.log)
  }

  /**
   * The union changed more than the request named (a copy-up, possibly of
   * ancestors too): what the kernel cached may be stale. Noted now, sent
   * by `sendNotices` once the request that caused it has its reply (a
   * notice about an inode a pending request holds would deadlock).
   *
   * Sent before that reply, so the caller never sees the old state after
   * its call returned: an attributes-only notice waits for nothing of
   * ours (see `sendNotices`), even about the request's own inode.
   *
   * What goes stale is the copied entry's attributes: its ctime, and a
   * directory that became merged reports st_nlink 1. The reply of the op
   * that copied may carry none (OPEN's doesn't), and the ancestors it
   * copied are not named in it at all. Names and data stay right: a copy
   * has the same st_ino and bytes, and no other name shares its kernel
   * inode (a lower hard link gets a node per name, nodes.ts). Nothing else
   * the union does behind a request changes what another name resolves
   * to: whiteouts, opaque directories and redirects only ever hide or move
   * the names the request itself removed, made or renamed, which the
   * kernel updates on its own from the reply.
   */
  private onUnionChange (c: UnionChange): void {
    const id = this.ctx.nodes.nodeIdOf(c.path)
    if (id !== undefined) this.ctx.staleNodes.add(id)
  }

  /**
   * Attributes-only INVAL_INODE (offset -1: no page-cache walk, so no page
   * locks) bumps the inode's attribute version under a spinlock and drops
   * its cached attributes: it never waits for a request, so the serving
   * thread may write it before the reply of a request on that very inode
   * (whose reply attributes the kernel then ignores as older). INVAL_ENTRY
   * would take the parent directory's lock, which a pending request may
   * hold: a single serving thread must not wait for that, so none is sent.
   */
  private sendNotices (): void {
    for (const id of this.ctx.staleNodes) this.notifyInvalInode(id, -1, 0)
    this.ctx.staleNodes.clear()
  }

  notifyInvalEntry (parentNodeId: number, name: string): boolean {
    if (this.phase !== 'live' || this.ctx.conn.minor === 0) return false
    return notifyInvalEntry(this.fd, this.log, parentNodeId, name)
  }

  notifyInvalInode (nodeId: number, off: number, len: number): boolean {
    if (this.phase !== 'live' || this.ctx.conn.minor === 0) return false
    return notifyInvalInode(this.fd, this.log, nodeId, off, len)
  }

  private stop (): void {
    if (this.phase === 'ended') return
    this.phase = 'stopping'
    this.maybeEnd()
  }

  private maybeEnd (): void {
    if (this.phase !== 'stopping' || this.reader.active > 0 || this.inflight > 0) return
    this.phase = 'ended'
    if (this.ownsFd) {
      try {
        fs.closeSync(this.fd)
      } catch (err) {
        this.log.error('closing /dev/fuse', err)
      }
    }
    this.ctx.splicer?.close()
    const done = (): void => { this.resolveClosed() }
    if (!this.mounted) { done(); return }
    this.ctx.fs.destroy().catch((err: unknown) => { this.log.error('destroy failed', err) }).finally(done)
  }
}
