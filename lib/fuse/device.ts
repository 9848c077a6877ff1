/**
 * The /dev/fuse descriptor of one connection: reading requests from it and
 * writing messages (replies, notices) to it. What happens to a request
 * once read is the session's (session.ts).
 *
 * What the device says:
 * - read(2): one whole request per call, into a buffer of max_write + 4096
 *   bytes (a whole WRITE fits). EPERM before the mount exists (retried on
 *   a short timer until INIT arrives or mount(8) gives up); EINTR and
 *   EAGAIN: read again; ENODEV: unmounted or aborted, the connection is
 *   over.
 * - write(2): one whole message per call. ENOENT: the request was
 *   interrupted (the kernel gave up on it), or a notice named something
 *   the kernel does not cache; ENODEV: the connection is gone.
 * - When this process dies (SIGKILL, a crash), the kernel closes the
 *   descriptor, the connection's only one (it is close-on-exec; mount(8)
 *   holds a copy only while mounting), and aborts the connection: a
 *   request waiting for its reply ends with ECONNABORTED, every later one
 *   with ENOTCONN at once, so no process hangs on a dead daemon. Files the
 *   kernel passes through keep reading and writing their branch file until
 *   closed. The mount stays in the mount table (every access ENOTCONN)
 *   until it is unmounted: umount(8) works, `umount -l` when something
 *   still holds it. A stopped (SIGSTOP) daemon is another matter: its
 *   users wait, as for any slow daemon, until it runs again or dies.
 *
 * Two readers:
 * - PoolReader: READS asynchronous `fs.read` calls kept outstanding on the
 *   thread pool, so the JS thread stays free for handlers, timers and
 *   signals while the device blocks. For a union served on the caller's
 *   thread (UNIONFS_TS_SERVE=pool, tests that serve in-process, a union
 *   without `threadSpec`).
 * - BlockingReader: one loop that reads, runs the request to its reply and
 *   reads again, blocking in read(2) in between; only for a worker thread
 *   that serves the whole connection (thread.ts, the default), since
 *   nothing else runs on a thread blocked in read(2). It reads through the
 *   native shim's `readDevice`, which polls the device for `spinUs` before
 *   it sleeps (FuseMountOptions.spin): with the serving thread awake when
 *   the next request comes, a getxattr round trip of `ls -lR` went from
 *   about 70 to 33 us.
 *
 * Why, measured: a client process lstat()ing 20,000 files of a fresh
 * read-only mount over one branch (one LOOKUP each), on this 2-core VM
 * while other work loaded it (medians of 5 interleaved runs, so compare
 * ratios): 2 pool reads 111 us a request; 1 or 4 pool reads no better
 * (161, 158 us); a worker thread blocking in readSync and posting each
 * request to the JS thread 106 us (the same two wake-ups, another path); a
 * blocking readSync loop on the JS thread 87 us, and 50-75 us against
 * 100-160 us for 2 pool reads over a plain-directory UnionFsApi: most of a
 * request's cost is waking the pool thread and then the JS thread, each
 * often on the other CPU. Pinning the daemon to one CPU (taskset) made
 * every variant slower. The blocking loop is not run on the main thread:
 * while it blocks in read(2), no signal handler (SIGTERM's clean unmount),
 * timer or IPC message runs, and libuv restarts the read after a signal.
 * Serving the whole connection, union included, from a worker thread with
 * that loop keeps the main thread free for them (a READLINK round trip:
 * about 20-30 us against 60-80 us for the pool reads, the same as
 * unionfs-fuse's 23 us; README "FUSE backends").
 */
import * as fs from 'node:fs'
import type { BufferPool } from './buffers'
import { invalEntryNotice, invalInodeNotice } from './codec'
import type { FuseLog } from './log'

/** Thread-pool reads the PoolReader keeps outstanding. */
const READS = 2

/** read(2) of the device after polling it for up to `spinUs` (native.ts `readDevice`). */
export type DeviceRead = (fd: number, buf: Buffer, spinUs: number) => number

export const plainRead: DeviceRead = (fd, buf) => fs.readSync(fd, buf, 0, buf.length, null)

/** What a reader hands its requests to: the session. */
export interface Feed {
  readonly pool: BufferPool
  /** False once the connection stops: read no more. */
  wants: () => boolean
  /** Run the request read into `buf` (the feed's from now on); its promise while it runs. */
  request: (buf: Buffer, n: number) => Promise<void> | undefined
  /** A read failed: read again after this many milliseconds, or undefined to stop. */
  failed: (err: NodeJS.ErrnoException) => number | undefined
  /** A read returned or a loop ended while the connection was stopping. */
  settled: () => void
}

export interface Reader {
  start: () => void
  /** Reads outstanding (or the loop running): the connection ends at 0. */
  readonly active: number
}

export class PoolReader implements Reader {
  active = 0

  constructor (private readonly fd: number, private readonly feed: Feed) {}

  start (): void {
    for (let i = 0; i < READS; i++) this.read(0)
  }

  private read (delayMs: number): void {
    this.active++
    if (delayMs > 0) {
      setTimeout(() => { this.active--; this.read(0) }, delayMs)
      return
    }
    if (!this.feed.wants()) {
      this.active--
      this.feed.settled()
      return
    }
    const buf = this.feed.pool.take()
    fs.read(this.fd, buf, 0, buf.length, null, (err, n) => {
      this.active--
      if (err !== null) {
        this.feed.pool.give(buf)
        if (!this.feed.wants()) { this.feed.settled(); return }
        const delay = this.feed.failed(err)
        if (delay !== undefined) this.read(delay)
        return
      }
      this.read(0)
      void this.feed.request(buf, n)
    })
  }
}

/** The blocking loop's own hooks, around each read. */
export interface LoopHooks {
  /** Before each read: the owner's flags (thread.ts) can stop the loop through `wants`. */
  beforeRead: () => void
  /** After each request's reply. */
  served: () => void
  /** An exception out of the loop (a bug): the connection must stop. */
  crashed: (err: unknown) => void
}

export class BlockingReader implements Reader {
  active = 0

  constructor (
    private readonly fd: number,
    private readonly feed: Feed,
    private readonly hooks: LoopHooks,
    private readonly readDevice: DeviceRead,
    private readonly spinUs: number
  ) {}

  start (): void {
    this.active++
    this.loop().catch(this.hooks.crashed).finally(() => {
      this.active--
      this.feed.settled()
    })
  }

  /**
   * Read, run to the reply, read again. An op awaiting nothing but
   * synchronous calls settles in microtasks, so a request costs one read(2)
   * and one write(2) on this thread, with no thread-pool or event-loop
   * hand-off; an op awaiting real I/O yields to the event loop as usual.
   */
  private async loop (): Promise<void> {
    const { feed, hooks } = this
    for (;;) {
      hooks.beforeRead()
      if (!feed.wants()) return
      const buf = feed.pool.take()
      let n: number
      try {
        n = this.readDevice(this.fd, buf, this.spinUs)
      } catch (err) {
        feed.pool.give(buf)
        const delay = feed.failed(err as NodeJS.ErrnoException)
        if (delay === undefined) return
        if (delay > 0) await new Promise(resolve => setTimeout(resolve, delay))
        continue
      }
      const running = feed.request(buf, n)
      if (running !== undefined) await running
      hooks.served()
    }
  }
}

/**
 * What a failed read means: read again after this many milliseconds, or
 * 'unmounted' / 'failed' (the connection is over). `served`: whether any
 * request was read yet (EPERM only means "not mounted yet" before that).
 */
export function readFailure (err: NodeJS.ErrnoException, served: boolean): number | 'unmounted' | 'failed' {
  switch (err.code) {
    case 'EINTR':
    case 'EAGAIN':
      return 0
    case 'EPERM':
      // The device is not attached to a mount yet (it never says EPERM
      // once it is): retry until INIT arrives or mount(8) gives up.
      return served ? 'failed' : 2
    case 'ENODEV':
      return 'unmounted'
  }
  return 'failed'
}

/** 'gone': ENOENT or ENODEV (above). 'refused': any other error, logged. */
export type WriteOutcome = 'ok' | 'gone' | 'refused'

/** Write one whole message. */
export function writeMessage (fd: number, msg: Buffer, len: number, log: FuseLog): WriteOutcome {
  for (;;) {
    try {
      fs.writeSync(fd, msg, 0, len)
      return 'ok'
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'EINTR' || code === 'EAGAIN') continue
      if (code === 'ENOENT' || code === 'ENODEV') return 'gone'
      log.error('writing to /dev/fuse failed', err)
      return 'refused'
    }
  }
}

/** NOTIFY_INVAL_ENTRY (codec.ts); true when the kernel took it. */
export function notifyInvalEntry (fd: number, log: FuseLog, parent: number, name: string): boolean {
  log.info(`notify inval_entry parent=${parent} ${JSON.stringify(name)}`)
  const b = invalEntryNotice(parent, name)
  return writeMessage(fd, b, b.length, log) === 'ok'
}

/** NOTIFY_INVAL_INODE (codec.ts); true when the kernel took it. */
export function notifyInvalInode (fd: number, log: FuseLog, node: number, off: number, len: number): boolean {
  log.info(`notify inval_inode node=${node} off=${off} len=${len}`)
  const b = invalInodeNotice(node, off, len)
  return writeMessage(fd, b, b.length, log) === 'ok'
}
