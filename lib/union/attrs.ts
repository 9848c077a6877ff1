/**
 * Attributes in and out of the union: what stat reports for an entry (the
 * serving branch's lstat with the union's inode number, inodes.ts; times
 * exact to the nanosecond, and in milliseconds for the fuse-native
 * backend), and the times utimens sets.
 */
import type * as fs from 'node:fs'
import type * as native from '../native'
import type { Attr, TimeSpec } from './types'

/** `mergedDir`: a directory merged from several branches. */
export function toAttr (st: fs.BigIntStats, ino: number, mergedDir = false): Attr {
  return {
    ino,
    mode: Number(st.mode),
    // A merged directory's link count says nothing true about its
    // subdirectories; 1 tells find(1) and friends not to rely on it.
    nlink: mergedDir ? 1 : Number(st.nlink),
    uid: Number(st.uid),
    gid: Number(st.gid),
    rdev: Number(st.rdev),
    size: Number(st.size),
    blocks: Number(st.blocks),
    blksize: Number(st.blksize),
    atimeMs: msOf(st.atimeNs),
    mtimeMs: msOf(st.mtimeNs),
    ctimeMs: msOf(st.ctimeNs),
    atimeNs: st.atimeNs,
    mtimeNs: st.mtimeNs,
    ctimeNs: st.ctimeNs
  }
}

/** Fractional milliseconds, exact to the microsecond (a double holds no more). */
function msOf (ns: bigint): number {
  return Number(ns / 1000n) / 1000
}

/** A time in nanoseconds (a BigIntStats field), as the native shim takes it. */
export function timeOfNs (ns: bigint): [number, number] {
  return [Number(ns / 1_000_000_000n), Number(ns % 1_000_000_000n)]
}

/** A time utimens was given, as the native shim takes it. */
export function timeArg (t: TimeSpec): native.TimeArg {
  if (t === undefined) return 'omit'
  if (t === 'now') return 'now'
  if (Array.isArray(t)) return t
  const sec = Math.floor(t / 1000)
  return [sec, Math.round((t - sec * 1000) * 1e6)]
}
