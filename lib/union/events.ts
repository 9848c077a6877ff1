/**
 * What the core reports about the copy-on-write work it does, for tracing
 * and stats (lib/observe/): one event per copy-up, whiteout, opaque mark and
 * rename, with the union path, the branches involved (layer numbers, 0 the
 * top), the bytes copied and the time taken. The core only emits; it keeps
 * no history and nothing here changes what an operation does.
 */
import type { MarkForm } from './whiteouts'

export type UnionEvent =
  /** An entry copied from a lower branch to the writable one (layer 0). */
  | { kind: 'copy-up', path: string, fromLayer: number, toLayer: 0, bytes: number, ms: number }
  /** A whiteout made in the writable branch (`.wh.NAME` or a 0/0 device). */
  | { kind: 'whiteout', path: string, layer: 0, form: MarkForm, ms: number }
  /** A directory of the writable branch marked opaque. */
  | { kind: 'opaque', path: string, layer: 0, form: MarkForm, ms: number }
  /** A rename through the mount; `bytes` counts what its copy-ups copied. */
  | { kind: 'rename', path: string, to: string, fromLayer: number, toLayer: 0, bytes: number, ms: number }

export type UnionObserver = (e: UnionEvent) => void

/** Running totals of the events, for `unionfs-ts stats`. */
export interface UnionCounters {
  copyUps: number
  bytesCopied: number
  whiteouts: number
  opaques: number
  renames: number
}

/**
 * The counters live in a SharedArrayBuffer: a union served from a worker
 * thread (lib/fuse/thread.ts) counts in its twin, and the instance the
 * daemon holds reads the same memory. One writer (the serving thread), so
 * plain increments suffice; a reader may see a value one event old.
 * Layout: the five UnionCounters, then the dentry cache's hits, misses,
 * negative hits and size (DentryCache takes that part).
 */
export const COUNTER_WORDS = 5
export const STATS_WORDS = COUNTER_WORDS + 4

export class SharedCounters implements UnionCounters {
  constructor (private readonly a: Float64Array) {}
  get copyUps (): number { return this.a[0] }
  set copyUps (v: number) { this.a[0] = v }
  get bytesCopied (): number { return this.a[1] }
  set bytesCopied (v: number) { this.a[1] = v }
  get whiteouts (): number { return this.a[2] }
  set whiteouts (v: number) { this.a[2] = v }
  get opaques (): number { return this.a[3] }
  set opaques (v: number) { this.a[3] = v }
  get renames (): number { return this.a[4] }
  set renames (v: number) { this.a[4] = v }
  toJSON (): UnionCounters {
    return { copyUps: this.copyUps, bytesCopied: this.bytesCopied, whiteouts: this.whiteouts, opaques: this.opaques, renames: this.renames }
  }
}
