/**
 * `unionfs-ts inspect PATH`: the lookup walk of one union path, top to
 * bottom, as the core does it, from the branches on disk.
 *
 * The walk is not re-implemented here. The mount's daemon says which
 * branches it serves (the stats channel's `config`); this module opens them
 * read-only (ReadonlyBranch: writing one does not compile) and runs the
 * core's own Resolver over them with a private dentry cache and no lower
 * index, so every branch the lookup consults is asked directly. Each branch
 * is wrapped to record which ones the resolver consulted for the last name.
 * What each branch holds at that name is then described with the whiteout
 * module's own readers (both dialects), and its role read off the
 * resolver's answer:
 *
 *   serves     the branch whose entry the mount shows
 *   merged     a directory merged into the one shown (a lower part of it)
 *   hides      a whiteout the lookup stopped at: nothing below shows
 *   hidden     holds the name, but a branch above hides it (whiteout,
 *              opaque directory, or a non-directory over a directory)
 *   nothing    consulted, holds nothing
 *   unreached  not consulted: the lookup stopped above, or the parent
 *              directory does not continue into this branch
 *
 * A copied-up entry is one the writable branch serves that carries the
 * origin xattr copy-up writes; the origin's inode number says which branch
 * it came from. For a directory, each entry of the merged listing (the
 * core's mergedListing) is resolved to the branch serving it.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { readonlyBranch, type ReadonlyBranch } from '../branch/branch'
import { DentryCache } from '../cache/dentry-cache'
import { readMountInfo } from '../mountinfo'
import { FSTYPE, isInside } from '../options'
import { decodeOrigin, originXattr } from '../union/inodes'
import { childRel, parentOf, baseName, fromBytes, toBytes } from '../union/paths'
import { mergedListing } from '../union/readdir'
import { Resolver, type Entry } from '../union/resolve'
import { dirMarks, hasAufsWhiteout, isWhiteoutStat, whiteoutTarget, OPAQUE_MARKER, WH_PREFIX } from '../union/whiteouts'
import type { MountConfig } from './daemon'

const LAYER_SPAN = 2 ** 40

export type Holds = 'file' | 'dir' | 'symlink' | 'fifo' | 'socket' | 'chardev' | 'blockdev' | 'whiteout' | 'nothing' | 'no parent dir'
export type Role = 'serves' | 'merged' | 'hides' | 'hidden' | 'nothing' | 'unreached'

export interface BranchWalk {
  layer: number
  branch: string
  writable: boolean
  /** Where this branch was (or would be) looked at, branch-relative. */
  rel: string
  holds: Holds
  /** For a whiteout: `.wh.NAME` (aufs) or a 0/0 char device (overlay). */
  whiteoutForm?: 'aufs' | 'overlay'
  /** For a directory: opaque (`.wh..wh..opq` or the overlay xattr). */
  opaque?: boolean
  /** For a directory moved by rename: where its lower content is. */
  redirect?: string
  consulted: boolean
  role: Role
}

export interface ListedEntry {
  name: string
  type: Holds
  /** The branch serving it. */
  layer: number
  branch: string
  /** A directory: every branch merged into it, top first. */
  mergedFrom?: number[]
  copiedUp?: boolean
}

export interface Inspection {
  mountpoint: string
  path: string
  exists: boolean
  type?: Holds
  /** The serving branch. */
  servedBy?: { layer: number, branch: string }
  copiedUp: boolean
  /** The branch a copied-up entry came from. */
  copiedFrom?: { layer: number, branch: string }
  /** Why it does not exist, when it does not. */
  why?: string
  walk: BranchWalk[]
  /** A directory: the merged stack, top first. */
  mergedFrom?: number[]
  entries?: ListedEntry[]
  /** A directory: names whiteouts in its branches hide from the branches below. */
  whiteouts?: Array<{ name: string, layer: number }>
  whiteoutDialect: 'aufs' | 'overlay'
}

/** The unionfs-ts mount `given` is in, and its union path. Throws a one-line Error. */
export function locate (given: string): { mountpoint: string, unionPath: string } {
  const abs = path.resolve(given)
  let real = abs
  if (abs !== '/') {
    // The parent's real path only: PATH itself may be a symlink (or hidden).
    try { real = path.join(fs.realpathSync(path.dirname(abs)), path.basename(abs)) } catch {}
  }
  let best: string | undefined
  for (const m of readMountInfo()) {
    if (m.fstype === FSTYPE && isInside(real, m.mountpoint) && (best === undefined || m.mountpoint.length >= best.length)) best = m.mountpoint
  }
  if (best === undefined) throw new Error(`${given} is not inside a unionfs-ts mount`)
  const rel = path.relative(best, real)
  return { mountpoint: best, unionPath: rel === '' ? '/' : '/' + rel }
}

function kindOf (st: fs.BigIntStats): Holds {
  if (isWhiteoutStat(st)) return 'whiteout'
  if (st.isDirectory()) return 'dir'
  if (st.isFile()) return 'file'
  if (st.isSymbolicLink()) return 'symlink'
  if (st.isFIFO()) return 'fifo'
  if (st.isSocket()) return 'socket'
  if (st.isCharacterDevice()) return 'chardev'
  return 'blockdev'
}

/**
 * Walk `unionPath` over the branches `config` names. Reads only. The path
 * and the names in the result are JavaScript strings; the walk itself is in
 * the union's byte strings (lib/union/paths.ts).
 */
export function inspectPath (config: MountConfig, unionPath: string): Inspection {
  const r = inspectBytes(config, toBytes(unionPath))
  return {
    ...r,
    path: unionPath,
    ...(r.why === undefined ? {} : { why: fromBytes(r.why) }),
    walk: r.walk.map(w => ({ ...w, rel: fromBytes(w.rel), ...(w.redirect === undefined ? {} : { redirect: fromBytes(w.redirect) }) })),
    ...(r.entries === undefined ? {} : { entries: r.entries.map(e => ({ ...e, name: fromBytes(e.name) })) }),
    ...(r.whiteouts === undefined ? {} : { whiteouts: r.whiteouts.map(w => ({ ...w, name: fromBytes(w.name) })) })
  }
}

function inspectBytes (config: MountConfig, unionPath: string): Inspection {
  const ns = config.xattrNamespace
  const consulted = new Set<number>()
  let recording = false
  // Each branch, opened read-only, and wrapped to note the resolver's lstat calls.
  const layers: ReadonlyBranch[] = config.branches.map(b => {
    const branch = readonlyBranch(b.path, b.layer)
    return new Proxy(branch, {
      get (target, prop) {
        if (prop === 'lstat') {
          return (rel: string) => {
            if (recording) consulted.add(target.index)
            return target.lstat(rel)
          }
        }
        const v = Reflect.get(target, prop, target) as unknown
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v
      }
    })
  })
  const topWritable = config.branches[0]?.writable === true
  const resolver = new Resolver(layers, new DentryCache<Entry>(4096), ns, topWritable)
  const where = (layer: number): { layer: number, branch: string } => ({ layer, branch: layers[layer].root })

  const p = unionPath
  let parent: Entry | undefined
  if (p !== '/') parent = resolver.lookup(parentOf(p))
  recording = true
  const entry = resolver.lookup(p)
  recording = false

  const walk: BranchWalk[] = layers.map((branch, layer) => {
    const base = { layer, branch: branch.root, writable: config.branches[layer].writable }
    // Where this branch would hold the name: in its part of the parent's
    // stack (the parent resolved from this branch down, so a redirect is honoured).
    let rel: string | undefined
    if (p === '/') rel = '/'
    else {
      const fromHere = parent?.dirs.find(d => d.layer === layer) ??
        resolver.lookupFrom(parentOf(p), layer)?.dirs.find(d => d.layer === layer)
      if (fromHere !== undefined) rel = childRel(fromHere.rel, baseName(p))
    }
    const seen = consulted.has(layer)
    if (rel === undefined) return { ...base, rel: p, holds: 'no parent dir' as Holds, consulted: seen, role: 'unreached' as Role }
    const st = branch.lstat(rel)
    let holds: Holds = st === undefined ? 'nothing' : kindOf(st)
    let whiteoutForm: 'aufs' | 'overlay' | undefined
    if (holds === 'whiteout') whiteoutForm = 'overlay'
    else if (holds === 'nothing' && p !== '/' && hasAufsWhiteout(branch, parentOf(rel), baseName(p))) {
      holds = 'whiteout'
      whiteoutForm = 'aufs'
    }
    const marks = holds === 'dir' ? dirMarks(branch, rel, ns) : undefined
    let role: Role
    if (entry !== undefined && entry.top.layer === layer) role = 'serves'
    else if (entry?.isDir === true && entry.dirs.some(d => d.layer === layer)) role = 'merged'
    else if (holds === 'whiteout' && seen && entry === undefined) role = 'hides'
    else if (holds !== 'nothing') role = 'hidden'
    else role = seen ? 'nothing' : 'unreached'
    return {
      ...base, rel, holds,
      ...(whiteoutForm === undefined ? {} : { whiteoutForm }),
      ...(marks === undefined ? {} : { opaque: marks.opaque }),
      ...(marks?.redirect === undefined ? {} : { redirect: marks.redirect }),
      consulted: seen,
      role
    }
  })

  const out: Inspection = {
    mountpoint: config.mountpoint,
    path: p,
    exists: entry !== undefined,
    copiedUp: false,
    walk,
    whiteoutDialect: config.whiteout
  }
  if (entry === undefined) {
    const hider = walk.find(w => w.role === 'hides')
    if (parent === undefined && p !== '/') out.why = `${parentOf(p)} does not exist in the union`
    else if (parent !== undefined && !parent.isDir) out.why = `${parentOf(p)} is not a directory`
    else if (hider !== undefined) out.why = `whited out in layer ${hider.layer} (${hider.whiteoutForm === 'aufs' ? WH_PREFIX + baseName(p) : 'char device 0/0'})`
    else out.why = 'no branch has it'
    return out
  }
  out.type = walk[entry.top.layer].holds
  out.servedBy = where(entry.top.layer)
  const origin = copiedUpFrom(layers, entry, ns, topWritable)
  if (origin !== undefined) {
    out.copiedUp = true
    if (origin < layers.length) out.copiedFrom = where(origin)
  }
  if (entry.isDir) {
    out.mergedFrom = entry.dirs.map(d => d.layer)
    out.entries = mergedListing(resolver, entry).map(d => {
      const child = resolver.lookup(childRel(p, d.name))
      if (child === undefined) return { name: d.name, type: 'nothing' as Holds, layer: -1, branch: '' }
      const st = layers[child.top.layer].lstat(child.top.rel)
      return {
        name: d.name,
        type: st === undefined ? 'nothing' as Holds : kindOf(st),
        ...where(child.top.layer),
        ...(child.isDir ? { mergedFrom: child.dirs.map(x => x.layer) } : {}),
        ...(copiedUpFrom(layers, child, ns, topWritable) !== undefined ? { copiedUp: true } : {})
      }
    })
    out.whiteouts = []
    for (const d of entry.dirs) {
      for (const de of layers[d.layer].readdir(d.rel)) {
        const st = layers[d.layer].lstat(childRel(d.rel, de.name))
        const target = st === undefined || de.name === OPAQUE_MARKER ? undefined : whiteoutTarget(de.name, st)
        if (target !== undefined) out.whiteouts.push({ name: target, layer: d.layer })
      }
    }
  }
  return out
}

/** The layer a copied-up entry came from (from its origin inode number), or undefined. */
function copiedUpFrom (layers: readonly ReadonlyBranch[], e: Entry, ns: string, topWritable: boolean): number | undefined {
  if (!topWritable || e.top.layer !== 0) return undefined
  const origin = decodeOrigin(layers[0].getxattr(e.top.rel, originXattr(ns)))
  return origin === undefined ? undefined : Math.floor(origin / LAYER_SPAN)
}
