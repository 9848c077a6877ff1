/**
 * Serving a connection from a worker thread: the whole read-decode-call-
 * reply loop, union included, runs on a thread that does nothing else, so
 * a request costs one wake-up of that thread and no hand-off to the thread
 * pool or the event loop (device.ts, BlockingReader). The main thread keeps
 * signals, timers, IPC and the mount/unmount children.
 *
 * Why, measured on this 2-core VM under load: a READLINK round trip (a
 * request each, nothing cached) cost 81-85 us with the thread-pool reads,
 * which wake a pool thread and then the JS thread, each often on the other
 * CPU, and 29-41 us from the worker's blocking loop, one wake-up (unionfs-
 * fuse: 23-78 us). README "FUSE backends" has the numbers and the bench.
 *
 * The union served is a twin opened in the worker from the union's
 * `threadSpec()` (same branches, same config); the caller's instance stays
 * idle. A union without `threadSpec`, a source run (.ts, no compiled
 * worker), or UNIONFS_TS_SERVE=pool keep the thread-pool loop on this thread.
 *
 * Life and death:
 * - mount(2)/mount(8) run here; `setMounted`/`abandon` reach the worker
 *   through shared flags, which it reads while the device still answers
 *   EPERM (before INIT), so no message needs a free event loop there.
 * - start() waits (Atomics.wait) until the worker has loaded and opened
 *   its union, so the mount is reported ready only once it is served.
 * - Unmounting ends the worker's read with ENODEV; it runs the union's
 *   destroy() and says 'closed'; the device (opened here) is closed here
 *   and `closed` resolves.
 * - The worker failing (an exception out of the loop): the device is
 *   closed here, which aborts the connection (no process hangs on it), and
 *   `closed` rejects.
 * - The process dying (SIGKILL, crash) closes the device: aborted, as
 *   before. process.exit() while the worker blocks in read(2) waits for
 *   that read: the worker serves the mount's users until it is unmounted.
 * - stats() reads counters the worker publishes after each request.
 *   The invalidation notices the union's changes call for are sent by the
 *   worker itself (session.ts, onUnionChange); the handle's notify calls
 *   work from here too, nodeIdOf does not (the node table lives in the
 *   worker) and answers undefined.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { Worker } from 'node:worker_threads'
import type { UnionThreadSpec } from '../union/types'
import { FuseLog } from './log'
import { NodeTable } from './nodes'
import { notifyInvalEntry, notifyInvalInode } from './device'
import { FuseConnection, type SessionConfig } from './session'
import {
  COUNTER_WORDS, FLAG_MINOR, FLAG_MOUNTED, FLAG_ABANDON, FLAG_READY, FLAG_WORDS,
  statsFromCounters, type SharedState
} from './shared-state'
import type { FuseStats } from './types'

/** What the worker gets (structured-cloned). */
export interface ThreadData {
  session: Omit<SessionConfig, 'fs' | 'backing' | 'splice' | 'loop' | 'shared'>
  union: UnionThreadSpec
  /** Load the native addon's backing ioctls in the worker. */
  backing: boolean
  /** And its splice calls. */
  splice: boolean
  shared: SharedState
}

/** What mount.ts uses of a connection, whichever thread serves it. */
export interface Connection {
  readonly closed: Promise<void>
  readonly log: FuseLog
  readonly ctx: { nodes: NodeTable }
  start: () => void
  setMounted: () => void
  abandon: () => void
  stats: () => FuseStats
  /** INIT was answered, and the kernel has taken the answer. */
  agreed: () => boolean
  notifyInvalEntry: (parentNodeId: number, name: string) => boolean
  notifyInvalInode: (nodeId: number, off: number, len: number) => boolean
}

/** The serving thread's young generation (see start()). */
const YOUNG_GENERATION_MB = 4

/** How long start() waits for the serving thread to load and open its union. */
const START_WAIT_MS = 30_000

function workerFile (): string | undefined {
  if (path.extname(__filename) !== '.js') return undefined
  const f = path.join(__dirname, 'thread-worker.js')
  return fs.existsSync(f) ? f : undefined
}

/** A connection served from a worker thread when the union allows it, else on this thread. */
export function openConnection (cfg: SessionConfig): Connection {
  const how = process.env.UNIONFS_TS_SERVE
  const spec = how === 'pool' ? undefined : cfg.fs.threadSpec?.()
  const file = workerFile()
  if (spec === undefined || file === undefined) return new FuseConnection(cfg)
  return new ThreadConnection(cfg, spec, file)
}

class ThreadConnection implements Connection {
  readonly closed: Promise<void>
  readonly log: FuseLog
  readonly ctx = { nodes: new NodeTable() }
  private resolveClosed!: () => void
  private rejectClosed!: (err: Error) => void
  private readonly shared: SharedState
  private worker: Worker | undefined
  private ended = false

  constructor (private readonly cfg: SessionConfig, private readonly spec: UnionThreadSpec, private readonly file: string) {
    this.log = new FuseLog(cfg.debug)
    this.closed = new Promise((resolve, reject) => { this.resolveClosed = resolve; this.rejectClosed = reject })
    this.shared = {
      flags: new Int32Array(new SharedArrayBuffer(FLAG_WORDS * 4)),
      counters: new Float64Array(new SharedArrayBuffer(COUNTER_WORDS * 8))
    }
  }

  start (): void {
    const { fs: _fs, backing, splice, loop: _loop, shared: _shared, ...session } = this.cfg
    const data: ThreadData = { session, union: this.spec, backing: backing !== undefined, splice: splice !== undefined, shared: this.shared }
    // A small young generation: a request's garbage dies young either way,
    // and with V8's default the daemon peaked at 130 MiB instead of 103
    // after ls -lR and tar of 4k files, no faster.
    const w = new Worker(this.file, { workerData: data, stdout: false, stderr: false, resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB } })
    this.worker = w
    // Serving starts before the mount returns, with the twin union open:
    // nothing it does at startup (its work dir check, its descriptors)
    // happens after the mount is reported ready.
    Atomics.wait(this.shared.flags, FLAG_READY, 0, START_WAIT_MS)
    if (Atomics.load(this.shared.flags, FLAG_READY) !== 1) {
      void w.terminate()
      this.ended = true
      throw new Error('the serving thread did not start (see the log)')
    }
    w.on('message', (m: unknown) => {
      if (typeof m === 'object' && m !== null && (m as { closed?: boolean }).closed === true) this.finish(undefined)
    })
    w.on('error', (err) => {
      this.log.error('the serving thread failed', err)
      this.finish(err)
    })
    w.on('exit', (code) => {
      this.finish(code === 0 ? undefined : new Error(`the serving thread exited with ${code}`))
    })
  }

  setMounted (): void {
    Atomics.store(this.shared.flags, FLAG_MOUNTED, 1)
  }

  abandon (): void {
    Atomics.store(this.shared.flags, FLAG_ABANDON, 1)
  }

  stats (): FuseStats {
    return statsFromCounters(this.shared.counters)
  }

  /** The worker publishes INIT's minor after writing the reply, whose processing the write(2) did. */
  agreed (): boolean {
    return Atomics.load(this.shared.flags, FLAG_MINOR) > 0
  }

  /** Sent from this thread, on the same device, once INIT was answered and the mount made. */
  private notifies (): boolean {
    const flags = this.shared.flags
    return !this.ended && Atomics.load(flags, FLAG_MOUNTED) !== 0 && Atomics.load(flags, FLAG_MINOR) > 0
  }

  notifyInvalEntry (parentNodeId: number, name: string): boolean {
    return this.notifies() && notifyInvalEntry(this.cfg.fd, this.log, parentNodeId, name)
  }

  notifyInvalInode (nodeId: number, off: number, len: number): boolean {
    return this.notifies() && notifyInvalInode(this.cfg.fd, this.log, nodeId, off, len)
  }

  private finish (err: Error | undefined): void {
    if (this.ended) return
    this.ended = true
    // The device is ours: the worker never closes it. On a failure, closing
    // the only descriptor aborts the connection, so no caller waits forever.
    try { fs.closeSync(this.cfg.fd) } catch (e) { if (err === undefined) this.log.error('closing /dev/fuse', e) }
    if (err !== undefined) {
      this.rejectClosed(err)
      return
    }
    this.cfg.fs.destroy().catch((e: unknown) => { this.log.error('destroy failed', e) }).finally(() => { this.resolveClosed() })
  }
}
