/**
 * One FUSE connection: reads requests from the /dev/fuse descriptor, runs
 * each through the op table and writes exactly one reply (none for FORGET,
 * BATCH_FORGET, NOTIFY_REPLY), sends invalidation notices, and ends when
 * the kernel says the filesystem is gone.
 *
 * Reading: READS asynchronous `fs.read` calls are kept outstanding on the
 * thread pool, so the JS thread stays free for handlers, timers and signals
 * while the device blocks. Each read fills its own pooled buffer of
 * max_write + 4096 bytes (a whole WRITE fits). Before the mount exists the
 * device answers EPERM: the reads retry on a short timer until mount(8) is
 * done. EINTR/EAGAIN retry; ENODEV means unmounted (or aborted): stop
 * reading, wait for running handlers, close the device, call fs.destroy()
 * and resolve `closed`.
 *
 * Why the thread pool, measured: a client process lstat()ing 20,000 files
 * of a fresh read-only mount over one branch (one LOOKUP each), on this
 * 2-core VM while other work loaded it (medians of 5 interleaved runs, so
 * compare ratios): 2 pool reads 111 us a request; 1 or 4 pool reads no
 * better (161, 158 us); a worker thread blocking in readSync and posting
 * each request to the JS thread 106 us (the same two wake-ups, another
 * path); a blocking readSync loop on the JS thread 87 us, and 50-75 us
 * against 100-160 us for 2 pool reads over a plain-directory UnionFsApi:
 * most of a request's cost is waking the pool thread and then the JS
 * thread, each often on the other CPU. Pinning the daemon to one CPU
 * (taskset) made every variant slower. The JS-thread loop is not used:
 * while it blocks in read(2), no signal handler (SIGTERM's clean unmount),
 * timer or IPC message runs, and libuv restarts the read after a signal.
 * Serving the whole connection, union included, from a worker thread with
 * that loop keeps the main thread free for them: that is the 'sync' loop
 * below, which thread.ts runs in a worker and uses by default (a READLINK
 * round trip: about 20-30 us against 60-80 us for the pool reads, the same
 * as unionfs-fuse's 23 us; README "FUSE backends"). The pool reads stay for
 * a union served on the caller's thread (UNIONFS_TS_SERVE=pool, tests that
 * serve in-process, a union without `threadSpec`).
 *
 * The sync loop reads through the native shim's `readDevice`, which polls
 * the device for `spinUs` before it sleeps in read(2) (FuseMountOptions.
 * spin): with the serving thread awake when the next request comes, a
 * getxattr round trip of `ls -lR` went from about 70 to 33 us.
 *
 * Invalidation: the union reports copy-ups (`watch`); the kernel is told to
 * drop the attributes it cached for each copied entry before the reply of
 * the request that caused it (`onUnionChange`), which is what makes long
 * entry/attr/negative timeouts exact for changes made through the mount.
 *
 * When this process dies (SIGKILL, a crash), the kernel closes its
 * /dev/fuse descriptor, the connection's only one (it is close-on-exec;
 * mount(8) holds a copy only while mounting), and aborts the connection:
 * a request waiting for its reply ends with ECONNABORTED, every later one
 * with ENOTCONN at once, so no process hangs on a dead daemon. Files the
 * kernel passes through keep reading and writing their branch file until
 * closed. The mount stays in the mount table (every access ENOTCONN) until
 * it is unmounted: umount(8) works, `umount -l` when something still holds
 * it. A stopped (SIGSTOP) daemon is another matter: its users wait, as for
 * any slow daemon, until it runs again or dies.
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
import { Decoder, Encoder, decodeHeader, readU64, timeout, writeU64, type RequestHeader } from './codec'
import { DirHandles } from './dirs'
import { ListingAttrs, type ReaddirPlusMode } from './listing-attrs'
import { FuseLog } from './log'
import { NodeTable } from './nodes'
import type { OpContext, OpSpec } from './op-context'
import { makeOpTable, type OpTable } from './ops'
import { Passthrough, type BackingIoctls } from './passthrough'
import {
  InHeader, Notify, NotifyInvalEntryOut, NotifyInvalInodeOut, OP_NAMES, OutHeader
} from './protocol'
import { FLAG_ABANDON, FLAG_MINOR, FLAG_MOUNTED, type SharedState } from './shared-state'
import type { FuseStats } from './types'

/** 1 MiB writes and reads: 256 pages of 4 KiB. */
export const MAX_PAGES = 256
export const MAX_WRITE = MAX_PAGES * 4096
/** A request is at most a header, a fuse_write_in and max_write bytes: 4096 covers the first two. */
export const BUFFER_SIZE = MAX_WRITE + 4096
/** Reads kept outstanding on the device. */
const READS = 2

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
  /** The 'sync' loop polls the device this long before each blocking read (FuseMountOptions.spin). */
  spinUs: number
  /** Default 'auto' (listing-attrs.ts). */
  readdirPlus?: ReaddirPlusMode
  /** The native shim's polling read; undefined: a plain readSync, without the spin. */
  readDevice?: DeviceRead
  /** The backing-file ioctls; undefined without the native addon. */
  backing: BackingIoctls | undefined
  debug: boolean
  /**
   * 'pool' (default): READS asynchronous reads on the thread pool. 'sync':
   * one blocking readSync loop, each request run to its reply before the
   * next read; only for a worker thread that serves the whole connection
   * (thread.ts), since nothing else runs on a thread blocked in read(2).
   */
  loop?: 'pool' | 'sync'
  /** Flags and counters shared with the thread that owns the mount (thread.ts, shared-state.ts). */
  shared?: SharedState
  /** Close the device when the session ends (default). False: its owner, another thread, does. */
  ownsFd?: boolean
}

/** read(2) of the device after polling it for up to `spinUs` (native.ts `readDevice`). */
export type DeviceRead = (fd: number, buf: Buffer, spinUs: number) => number

const readSync: DeviceRead = (fd, buf) => fs.readSync(fd, buf, 0, buf.length, null)

type Phase = 'mounting' | 'live' | 'stopping' | 'ended'

export class FuseConnection {
  readonly closed: Promise<void>
  private resolveClosed!: () => void
  private phase: Phase = 'mounting'
  private mounted = false
  private reads = 0
  private inflight = 0
  private requests = 0
  /** Requests by opcode, for `unionfs-ts stats`. */
  private readonly byOpcode: number[] = []
  private readonly fd: number
  private readonly loop: 'pool' | 'sync'
  private readonly shared: SharedState | undefined
  private readonly ownsFd: boolean
  private readonly readDevice: DeviceRead
  private readonly spinUs: number
  private readonly table: OpTable = makeOpTable()
  private readonly dec = new Decoder()
  private readonly enc = new Encoder(BUFFER_SIZE)
  readonly ctx: OpContext
  readonly log: FuseLog

  constructor (cfg: SessionConfig) {
    this.fd = cfg.fd
    this.loop = cfg.loop ?? 'pool'
    this.shared = cfg.shared
    this.ownsFd = cfg.ownsFd ?? true
    this.readDevice = cfg.readDevice ?? readSync
    this.spinUs = cfg.spinUs
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
      maxWrite: MAX_WRITE,
      maxPages: MAX_PAGES,
      fhNodes: new Map(),
      passthrough: new Passthrough(cfg.fd, cfg.fs, cfg.backing, cfg.passthrough, this.log),
      listingAttrs: new ListingAttrs(cfg.readdirPlus ?? 'auto'),
      staleNodes: new Set(),
      conn: { minor: 0, flags: 0, writeback: false, setxattrExt: false, killPriv: false, passthrough: false }
    }
  }

  /** Start reading: before mount(8) runs, since the kernel sends INIT during the mount. */
  start (): void {
    this.ctx.fs.watch?.((c) => { this.onUnionChange(c) })
    if (this.loop === 'sync') {
      this.reads++
      this.syncLoop().catch((err: unknown) => {
        this.log.error('the serving loop failed', err)
        this.stop()
      }).finally(() => {
        this.reads--
        this.maybeEnd()
      })
      return
    }
    for (let i = 0; i < READS; i++) this.read(0)
  }

  /**
   * The 'sync' loop: read a request with a blocking read, run it to its
   * reply, read the next. A handler that only touches the union's
   * synchronous calls settles in microtasks, so a request costs one read(2)
   * and one write(2) on this thread, with no thread-pool or event-loop
   * hand-off; an op awaiting real I/O yields to the event loop as usual.
   * Before the mount exists the device answers EPERM: retry on a timer,
   * which also lets the owner's flags (mounted, abandon) be seen.
   */
  private async syncLoop (): Promise<void> {
    const flags = this.shared?.flags
    for (;;) {
      if (flags !== undefined && this.phase === 'mounting') {
        if (Atomics.load(flags, FLAG_ABANDON) !== 0) { this.phase = 'stopping'; return }
        if (Atomics.load(flags, FLAG_MOUNTED) !== 0) this.setMounted()
      }
      if (this.phase === 'stopping' || this.phase === 'ended') return
      const buf = this.ctx.pool.take()
      let n: number
      try {
        n = this.readDevice(this.fd, buf, this.spinUs)
      } catch (err) {
        this.ctx.pool.give(buf)
        const delay = this.afterReadError(err as NodeJS.ErrnoException)
        if (delay === undefined) return
        if (delay > 0) await new Promise(resolve => setTimeout(resolve, delay))
        continue
      }
      const running = this.dispatch(buf, n)
      if (running !== undefined) await running
      if (this.shared !== undefined) this.publish(this.shared.counters)
    }
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
    const by = this.byOpcode
    for (let op = 0; op < by.length && op < 64; op++) c[9 + op] = by[op] ?? 0
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
      backingsOpen: pt.backings
    }
  }

  private read (delayMs: number): void {
    this.reads++
    if (delayMs > 0) {
      setTimeout(() => { this.reads--; this.read(0) }, delayMs)
      return
    }
    if (this.phase === 'stopping' || this.phase === 'ended') {
      this.reads--
      this.maybeEnd()
      return
    }
    const buf = this.ctx.pool.take()
    fs.read(this.fd, buf, 0, buf.length, null, (err, n) => {
      this.reads--
      this.onRead(err, n, buf)
    })
  }

  private onRead (err: NodeJS.ErrnoException | null, n: number, buf: Buffer): void {
    if (err !== null) {
      this.ctx.pool.give(buf)
      if (this.phase === 'stopping') { this.maybeEnd(); return }
      const delay = this.afterReadError(err)
      if (delay !== undefined) this.read(delay)
      return
    }
    this.read(0)
    void this.dispatch(buf, n)
  }

  /**
   * What a failed read of the device means: read again after this many
   * milliseconds, or undefined when the session has ended.
   */
  private afterReadError (err: NodeJS.ErrnoException): number | undefined {
    switch (err.code) {
      case 'EINTR':
      case 'EAGAIN':
        return 0
      case 'EPERM':
        // The device is not attached to a mount yet (it never says EPERM
        // once it is): retry until INIT arrives or mount(8) gives up.
        if (this.requests === 0) return 2
        break
      case 'ENODEV':
        this.log.info('device says ENODEV: unmounted')
        this.stop()
        return undefined
    }
    this.log.error('reading /dev/fuse failed, ending the session', err)
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
    const e = this.enc
    e.begin()
    if (errno === 0 && spec?.encode !== undefined) spec.encode(e, r, this.ctx)
    const { msg, len } = e.finish(unique, -errno)
    this.log.reply(unique, errno, len)
    const outcome = this.write(msg, len)
    if (outcome === 'refused' && errno === 0) {
      // The kernel rejected the reply's shape (a bug): without an answer the
      // request would hang, so it gets EIO instead.
      e.begin()
      const fallback = e.finish(unique, -EIO)
      this.log.reply(unique, EIO, fallback.len)
      this.write(fallback.msg, fallback.len)
    }
    return outcome === 'ok'
  }

  /**
   * 'gone': ENOENT (the request was interrupted, or a notice named something
   * the kernel does not cache) or ENODEV (the connection is gone).
   * 'refused': any other error, logged.
   */
  private write (msg: Buffer, len: number): 'ok' | 'gone' | 'refused' {
    if (this.phase === 'ended') return 'gone'
    for (;;) {
      try {
        fs.writeSync(this.fd, msg, 0, len)
        return 'ok'
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        if (code === 'EINTR' || code === 'EAGAIN') continue
        if (code === 'ENOENT' || code === 'ENODEV') return 'gone'
        this.log.error('writing to /dev/fuse failed', err)
        return 'refused'
      }
    }
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

  /** `owned`: sent for a connection another thread serves (thread.ts), which checked INIT itself. */
  notifyInvalEntry (parentNodeId: number, name: string, owned = false): boolean {
    if (this.phase !== 'live' || (!owned && this.ctx.conn.minor === 0)) return false
    const namelen = Buffer.byteLength(name)
    const len = OutHeader.SIZE + NotifyInvalEntryOut.SIZE + namelen + 1
    const b = Buffer.alloc(len)
    b.writeUInt32LE(len, OutHeader.len)
    b.writeInt32LE(Notify.INVAL_ENTRY, OutHeader.error)
    const o = OutHeader.SIZE
    writeU64(b, o + NotifyInvalEntryOut.parent, parentNodeId)
    b.writeUInt32LE(namelen, o + NotifyInvalEntryOut.namelen)
    b.write(name, o + NotifyInvalEntryOut.SIZE, 'utf8')
    this.log.info(`notify inval_entry parent=${parentNodeId} ${JSON.stringify(name)}`)
    return this.write(b, len) === 'ok'
  }

  notifyInvalInode (nodeId: number, off: number, len: number, owned = false): boolean {
    if (this.phase !== 'live' || (!owned && this.ctx.conn.minor === 0)) return false
    const size = OutHeader.SIZE + NotifyInvalInodeOut.SIZE
    const b = Buffer.alloc(size)
    b.writeUInt32LE(size, OutHeader.len)
    b.writeInt32LE(Notify.INVAL_INODE, OutHeader.error)
    const o = OutHeader.SIZE
    writeU64(b, o + NotifyInvalInodeOut.ino, nodeId)
    writeU64(b, o + NotifyInvalInodeOut.off, off)
    writeU64(b, o + NotifyInvalInodeOut.len, len)
    this.log.info(`notify inval_inode node=${nodeId} off=${off} len=${len}`)
    return this.write(b, size) === 'ok'
  }

  private stop (): void {
    if (this.phase === 'ended') return
    this.phase = 'stopping'
    this.maybeEnd()
  }

  private maybeEnd (): void {
    if (this.phase !== 'stopping' || this.reads > 0 || this.inflight > 0) return
    this.phase = 'ended'
    if (this.ownsFd) {
      try {
        fs.closeSync(this.fd)
      } catch (err) {
        this.log.error('closing /dev/fuse', err)
      }
    }
    const done = (): void => { this.resolveClosed() }
    if (!this.mounted) { done(); return }
    this.ctx.fs.destroy().catch((err: unknown) => { this.log.error('destroy failed', err) }).finally(done)
  }
}
