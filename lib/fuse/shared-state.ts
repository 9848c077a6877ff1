/**
 * What a serving worker thread (thread.ts) and the thread that owns the
 * mount share, in SharedArrayBuffers: flags the owner sets (mounted,
 * abandon) and the worker sets (INIT's minor, ready), and the counters
 * behind FuseSession.stats(), which the worker publishes after each
 * request (session.ts, `publish`).
 */
import { OP_NAMES } from './protocol'
import type { FuseStats } from './types'

/**
 * State a serving worker shares with the main thread, in SharedArrayBuffers:
 * `flags` [MOUNTED, ABANDON, MINOR] and `counters` (see `publish`).
 */
export interface SharedState {
  flags: Int32Array
  counters: Float64Array
}
export const FLAG_MOUNTED = 0
export const FLAG_ABANDON = 1
export const FLAG_MINOR = 2
/** Set by the serving worker once its union is open (1) or it failed (-1); the owner waits for it. */
export const FLAG_READY = 3
export const FLAG_WORDS = 4
/** requests, nodes, openDirs, openFiles, passthrough, passthroughOpens, cachedOpens, backingsRegistered, backingsOpen, splicedReads, then 64 per-opcode counts from BY_OPCODE. */
export const BY_OPCODE = 10
export const COUNTER_WORDS = BY_OPCODE + 64

/** FuseStats from the shared counters. */
export function statsFromCounters (c: Float64Array): FuseStats {
  const byKind: Record<string, number> = {}
  for (let op = 0; op < 64; op++) {
    const n = c[BY_OPCODE + op]
    if (n > 0) byKind[OP_NAMES[op] ?? `op${op}`] = n
  }
  return {
    requests: c[0],
    requestsByKind: byKind,
    nodes: c[1],
    openDirs: c[2],
    openFiles: c[3],
    passthrough: c[4] === 1,
    passthroughOpens: c[5],
    cachedOpens: c[6],
    backingsRegistered: c[7],
    backingsOpen: c[8],
    splicedReads: c[9]
  }
}
