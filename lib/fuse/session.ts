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
 * that loop would keep the main thread free for them.
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
import type { UnionFsApi } from '../union/types'
import { BufferPool } from './buffers'
import { Decoder, Encoder, decodeHeader, readU64, timeout, writeU64, type RequestHeader } from './codec'
import { DirHandles } from './dirs'
import { FuseLog } from './log'
import { NodeTable } from './nodes'
import type { OpContext, OpSpec } from './op-context'
import { makeOpTable, type OpTable } from './ops'
import { Passthrough, type BackingIoctls } from './passthrough'
import {
  InHeader, Notify, NotifyInvalEntryOut, NotifyInvalInodeOut, OP_NAMES, OutHeader
} from './protocol'
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
  /** Ask for passthrough (it also needs `backing` and the kernel's agreement). */
  passthrough: boolean
  /** The backing-file ioctls; undefined without the native addon. */
  backing: BackingIoctls | undefined
  debug: boolean
}

type Phase = 'mounting' | 'live' | 'stopping' | 'ended'

export class FuseConnection {
  readonly closed: Promise<void>
  private resolveClosed!: () => void
  private phase: Phase = 'mounting'
  private mounted = false
  private reads = 0
  private inflight = 0
  private requests = 0
  private readonly fd: number
  private readonly table: OpTable = makeOpTable()
  private readonly dec = new Decoder()
  private readonly enc = new Encoder(BUFFER_SIZE)
  readonly ctx: OpContext
  readonly log: FuseLog

  constructor (cfg: SessionConfig) {
    this.fd = cfg.fd
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
      maxWrite: MAX_WRITE,
      maxPages: MAX_PAGES,
      fhNodes: new Map(),
      passthrough: new Passthrough(cfg.fd, cfg.fs, cfg.backing, cfg.passthrough, this.log),
      conn: { minor: 0, flags: 0, writeback: false, setxattrExt: false, passthrough: false }
    }
  }

  /** Start reading: before mount(8) runs, since the kernel sends INIT during the mount. */
  start (): void {
    for (let i = 0; i < READS; i++) this.read(0)
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

  stats (): FuseStats {
    const pt = this.ctx.passthrough.stats()
    return {
      requests: this.requests,
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
      switch (err.code) {
        case 'EINTR':
        case 'EAGAIN':
          this.read(0)
          return
        case 'EPERM':
          // The device is not attached to a mount yet (it never says EPERM
          // once it is): retry until INIT arrives or mount(8) gives up.
          if (this.requests === 0) { this.read(2); return }
          break
        case 'ENODEV':
          this.log.info('device says ENODEV: unmounted')
          this.stop()
          return
      }
      this.log.error('reading /dev/fuse failed, ending the session', err)
      this.stop()
      return
    }
    this.read(0)
    this.dispatch(buf, n)
  }

  /** The generic wrapper: decode, run the op, send its one reply. */
  private dispatch (buf: Buffer, n: number): void {
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
    void this.run(spec, h, args, spec.keepsBuffer === true ? buf : undefined)
  }

  private async run (spec: OpSpec<unknown, unknown>, h: RequestHeader, args: unknown, held: Buffer | undefined): Promise<void> {
    try {
      let r: unknown
      try {
        r = await spec.run(this.ctx, h, args)
      } catch (err) {
        const errno = this.errnoFor(err, h)
        if (spec.noReply !== true) this.reply(h.unique, errno)
        return
      }
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

  notifyInvalEntry (parentNodeId: number, name: string): boolean {
    if (this.phase !== 'live' || this.ctx.conn.minor === 0) return false
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

  notifyInvalInode (nodeId: number, off: number, len: number): boolean {
    if (this.phase !== 'live' || this.ctx.conn.minor === 0) return false
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
    try {
      fs.closeSync(this.fd)
    } catch (err) {
      this.log.error('closing /dev/fuse', err)
    }
    const done = (): void => { this.resolveClosed() }
    if (!this.mounted) { done(); return }
    this.ctx.fs.destroy().catch((err: unknown) => { this.log.error('destroy failed', err) }).finally(done)
  }
}
