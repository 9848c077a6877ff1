/**
 * Mount options: the library's object form (MountSpec) and what the two
 * command-line syntaxes parse to (lib/option-syntax.ts), validated into one
 * frozen `Options`.
 *
 * Decisions where overlayfs and AUFS differ or say nothing:
 * - upperdir= needs workdir=, as with overlayfs: a default work dir inside
 *   the upper would show up as a stray directory if the kernel's overlayfs
 *   ever mounts that upper. The branch-list syntax defaults it to
 *   <rw branch>/.wh..wh.unionfs-ts (hidden: names starting .wh. never show).
 * - Only the leftmost branch can be writable; any branch listed twice, and a
 *   writable branch nested in another branch (or the reverse), are errors.
 * - cache=off also turns the kernel's timeouts to 0 unless they are given:
 *   it is for branches that change behind the mount's back.
 * - allow_other is on by default as root (mount.fuse users expect other
 *   uids to get in); `ro` turns the writable branch into the top read-only one.
 *
 * Invariants:
 * - Validation only reads the disk (stat, realpath, /proc/self/mountinfo).
 *   Bad input fails with an OptionsError whose message is one line, before
 *   anything is created, not even the work dir.
 * - Every path in the result is absolute and real (symlinks resolved), so
 *   the containment checks compare like with like.
 * - The mountpoint is never inside a branch or the work dir, nor the other
 *   way round: the serving process must never touch its own mountpoint.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import type { UnionConfig, WhiteoutDialect } from './union/config'
import { isReaddirPlusMode, type ReaddirPlusMode } from './fuse/listing-attrs'
import { DEFAULT_READAHEAD_KB, defaultSpinUs, MAX_SPIN_US, type FuseMountOptions } from './fuse/types'
import { userWhiteoutDevices } from './union/whiteouts'
import { readMountInfo } from './mountinfo'

export type { FuseMountOptions }
/** The kernel-facing settings handed to the FUSE transport, every one spelled out. */
export type FuseSettings = Readonly<Required<Omit<FuseMountOptions, 'useMountCommand'>>>

export type Backend = 'protocol' | 'fuse-native'

export interface Options {
  readonly union: UnionConfig
  /** Absolute real path of the mountpoint. */
  readonly mountpoint: string
  readonly fuse: FuseSettings
  readonly backend: Backend
  /** Where the daemon's stdout and stderr go (absolute); undefined: /dev/null. */
  readonly log?: string
  /** Serve in this process (-f) instead of detaching a daemon. */
  readonly foreground: boolean
  /** `-o trace[=FILE]`: one line per copy-up, whiteout, opaque mark and rename (lib/observe/trace.ts). */
  readonly trace?: TraceSettings
}

export interface TraceSettings {
  /** Absolute path of the file appended to; undefined: the daemon's stderr. */
  readonly file?: string
  readonly format: 'text' | 'json'
}

export interface BranchSpec {
  path: string
  mode?: 'rw' | 'ro'
}

/** Everything that is not a branch; all optional, defaults as on the command line. */
export interface MountSettings {
  whiteout?: WhiteoutDialect
  /** false is `cache=off`: no dentry cache, kernel timeouts default to 0. */
  cache?: boolean
  cacheEntries?: number
  cacheTtlMs?: number
  entryTimeout?: number
  attrTimeout?: number
  negativeTimeout?: number
  writeback?: boolean
  passthrough?: boolean
  killpriv?: boolean
  spin?: number
  readahead?: number
  readdirplus?: ReaddirPlusMode
  xattr?: boolean
  acl?: boolean
  debug?: boolean
  allowOther?: boolean
  fsname?: string
  backend?: string
  log?: string
  /** `ro`: every branch read-only; the writable one becomes the top read-only branch. */
  readOnly?: boolean
  /** `trace[=FILE]`: true traces to the daemon's stderr, a string to that file. */
  trace?: boolean | string
  /** `trace_format=text|json` (default text). */
  traceFormat?: 'text' | 'json'
  foreground?: boolean
}

/**
 * The library's form of a mount: either `branches` (top first; the top one
 * is writable unless its mode is 'ro') or `lowers` (top first) with an
 * optional `upper` and its `workdir`, as overlayfs takes them.
 */
export interface MountSpec extends MountSettings {
  mountpoint: string
  branches?: ReadonlyArray<string | BranchSpec>
  lowers?: readonly string[]
  upper?: string
  workdir?: string
}

/** Bad input. The message is one line, meant for the user as is. */
export class OptionsError extends Error {
  constructor (message: string) {
    // One line even when a path holds a newline or other control character.
    super(message.replace(/[\x00-\x1f\x7f]/g, c => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`))
    this.name = 'OptionsError'
  }
}

export const DEFAULT_CACHE_ENTRIES = 65536
export const DEFAULT_KERNEL_TIMEOUT = 60
export const DEFAULT_FSNAME = 'unionfs-ts'
/** The work dir inside the writable branch when none is given. */
export const WORKDIR_NAME = '.wh..wh.unionfs-ts'
/** The filesystem type a unionfs-ts mount shows in /proc/self/mountinfo. */
export const FSTYPE = 'fuse.unionfs-ts'

// ---------------------------------------------------------------------------
// MountSpec -> Options (the disk checks)

const WHY: Record<string, string> = {
  ENOENT: 'no such directory',
  ENOTDIR: 'not a directory',
  EACCES: 'permission denied',
  ELOOP: 'too many levels of symbolic links',
  ENAMETOOLONG: 'name too long',
  ENOTCONN: 'not connected (a FUSE mount whose daemon is gone? unmount it first)',
  EIO: 'input/output error'
}

function describe (err: unknown): string {
  const code = (err as { code?: string }).code
  return (code !== undefined && WHY[code]) || (code ?? String(err))
}

/** The real path of an existing directory, or an OptionsError naming `what`. */
function realDir (what: string, given: string): string {
  if (given === '') throw new OptionsError(`${what}: empty path`)
  let real: string
  try {
    real = fs.realpathSync(path.resolve(given))
  } catch (err) {
    throw new OptionsError(`${what} ${given}: ${describe(err)}`)
  }
  let st: fs.Stats
  try {
    st = fs.statSync(real)
  } catch (err) {
    throw new OptionsError(`${what} ${given}: ${describe(err)}`)
  }
  if (!st.isDirectory()) throw new OptionsError(`${what} ${given}: not a directory`)
  return real
}

/** `child` is `parent` or below it (both absolute and normalised). */
export function isInside (child: string, parent: string): boolean {
  if (parent === '/') return true
  return child === parent || child.startsWith(parent + '/')
}

function checkNotMounted (given: string, real: string): void {
  const parent = path.dirname(real)
  let parentDev: number
  try {
    parentDev = fs.statSync(parent).dev
  } catch (err) {
    throw new OptionsError(`mountpoint ${given}: its parent: ${describe(err)}`)
  }
  const isMount = real === parent ||
    fs.statSync(real).dev !== parentDev ||
    readMountInfo().some(m => m.mountpoint === real)
  if (isMount) throw new OptionsError(`mountpoint ${given} is already a mount point`)
}

function nonNegative (name: string, v: number | undefined, integer: boolean): number | undefined {
  if (v === undefined) return undefined
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (integer && !Number.isSafeInteger(v))) {
    throw new OptionsError(`${name}: expected a ${integer ? 'whole ' : ''}number >= 0, got ${String(v)}`)
  }
  return v
}

function spinUs (v: number | undefined): number | undefined {
  const us = nonNegative('spin', v, true)
  if (us !== undefined && us > MAX_SPIN_US) throw new OptionsError(`spin: at most ${MAX_SPIN_US} microseconds, got ${us}`)
  return us
}

export function readdirPlusMode (v: string | undefined): ReaddirPlusMode {
  if (!isReaddirPlusMode(v)) throw new OptionsError(`readdirplus=${String(v)}: expected auto, always or never`)
  return v
}

/** Validate the library's (or the parsed command line's) form of a mount. */
export function resolveOptions (spec: MountSpec): Options {
  // Everything that can be checked without the disk comes first.
  const backend = spec.backend ?? 'protocol'
  if (backend !== 'protocol' && backend !== 'fuse-native') {
    throw new OptionsError(`unknown backend '${backend}' (expected protocol or fuse-native)`)
  }
  if (spec.mountpoint === undefined || spec.mountpoint === '') throw new OptionsError('missing MOUNTPOINT')
  if (spec.fsname !== undefined && spec.fsname === '') throw new OptionsError('fsname= needs a value')
  if (spec.whiteout !== undefined && spec.whiteout !== 'aufs' && spec.whiteout !== 'overlay') {
    throw new OptionsError(`whiteout '${String(spec.whiteout)}': expected aufs or overlay`)
  }

  let lowers: string[]
  let upper: string | undefined
  const workdir = spec.workdir
  const overlaySyntax = spec.branches === undefined
  if (!overlaySyntax) {
    if (spec.lowers !== undefined || spec.upper !== undefined) {
      throw new OptionsError('give either a branch list or lowerdir=/upperdir=, not both')
    }
    const branches = (spec.branches ?? []).map(b => typeof b === 'string' ? { path: b } : b)
    if (branches.length === 0) throw new OptionsError('no branches given')
    const rw = branches.filter((b, i) => b.mode === 'rw' || (i === 0 && b.mode === undefined))
    if (rw.length > 1) {
      throw new OptionsError(`two writable branches: ${rw[0].path} and ${rw[1].path} (at most one branch is rw)`)
    }
    if (rw.length === 1 && rw[0] !== branches[0]) {
      throw new OptionsError(`branch ${rw[0].path}: only the leftmost (top) branch can be rw`)
    }
    upper = rw.length === 1 ? branches[0].path : undefined
    lowers = branches.slice(upper === undefined ? 0 : 1).map(b => b.path)
  } else {
    lowers = [...(spec.lowers ?? [])]
    upper = spec.upper
    if (lowers.length === 0) throw new OptionsError(upper === undefined ? 'no branches given' : 'upperdir= needs lowerdir=')
    if (upper !== undefined && workdir === undefined && spec.readOnly !== true) {
      // As with overlayfs: a default work dir inside the upper dir would show
      // up as a stray directory if the kernel's overlayfs ever mounts it.
      throw new OptionsError('upperdir= needs workdir= (a directory on the same filesystem, as with overlayfs)')
    }
  }
  if (workdir !== undefined && upper === undefined) {
    throw new OptionsError('workdir= needs a writable branch')
  }
  const cacheOff = spec.cache === false
  const cacheEntries = cacheOff ? 0 : nonNegative('cache_entries', spec.cacheEntries, true) ?? DEFAULT_CACHE_ENTRIES
  const cacheTtlMs = nonNegative('cache_ttl', spec.cacheTtlMs, true) ?? 0
  // cache=off is for branches changed behind the mount's back: the kernel must not cache either.
  const kernelDefault = cacheOff ? 0 : DEFAULT_KERNEL_TIMEOUT
  const fuse: FuseSettings = Object.freeze({
    fsname: spec.fsname ?? DEFAULT_FSNAME,
    entryTimeout: nonNegative('entry_timeout', spec.entryTimeout, false) ?? kernelDefault,
    attrTimeout: nonNegative('attr_timeout', spec.attrTimeout, false) ?? kernelDefault,
    negativeTimeout: nonNegative('negative_timeout', spec.negativeTimeout, false) ?? kernelDefault,
    writeback: spec.writeback ?? false,
    passthrough: spec.passthrough ?? true,
    killpriv: spec.killpriv ?? true,
    spin: spinUs(spec.spin) ?? defaultSpinUs(),
    readahead: nonNegative('readahead', spec.readahead, true) ?? DEFAULT_READAHEAD_KB,
    readdirplus: spec.readdirplus === undefined ? 'auto' : readdirPlusMode(spec.readdirplus),
    xattr: spec.xattr ?? true,
    acl: spec.acl ?? true,
    debug: spec.debug ?? false,
    allowOther: spec.allowOther ?? isRoot(),
    readOnly: upper === undefined || spec.readOnly === true
  })

  // Now the disk, read only.
  const realUpper = upper === undefined ? undefined : realDir('branch', upper)
  const realLowers = lowers.map(l => realDir('branch', l))
  const all = realUpper === undefined ? realLowers : [realUpper, ...realLowers]
  const givenAll = upper === undefined ? lowers : [upper, ...lowers]
  for (let i = 0; i < all.length; i++) {
    const j = all.indexOf(all[i])
    if (j !== i) throw new OptionsError(`branch ${givenAll[i]} is listed twice`)
  }
  if (realUpper !== undefined) {
    for (let i = 0; i < realLowers.length; i++) {
      if (isInside(realLowers[i], realUpper) || isInside(realUpper, realLowers[i])) {
        throw new OptionsError(`branches ${upper ?? ''} and ${lowers[i]} overlap (the writable branch must not contain or be inside another)`)
      }
    }
  }

  const mountpoint = realDir('mountpoint', spec.mountpoint)
  for (let i = 0; i < all.length; i++) {
    if (all[i] === mountpoint) throw new OptionsError(`branch ${givenAll[i]} is the mountpoint`)
    if (isInside(mountpoint, all[i])) {
      throw new OptionsError(`mountpoint ${spec.mountpoint} is inside branch ${givenAll[i]}`)
    }
    if (isInside(all[i], mountpoint)) {
      throw new OptionsError(`branch ${givenAll[i]} is inside the mountpoint ${spec.mountpoint}`)
    }
  }
  checkNotMounted(spec.mountpoint, mountpoint)

  const readOnly = spec.readOnly ?? false
  let realWork: string | undefined
  if (realUpper !== undefined && !readOnly) {
    realWork = workdir === undefined
      ? path.join(realUpper, WORKDIR_NAME)
      // A given work dir is used as overlayfs uses one: the work happens in
      // W/work, and the kernel's overlayfs can later be given the same W.
      : path.join(checkWorkdir(workdir, realUpper, upper ?? '', realLowers, lowers, mountpoint, spec.mountpoint), 'work')
  }

  let log: string | undefined
  if (spec.log !== undefined) {
    if (spec.log === '') throw new OptionsError('log= needs a file name')
    log = path.resolve(spec.log)
    if (isInside(log, mountpoint)) throw new OptionsError(`log file ${spec.log} is inside the mountpoint`)
  }

  let trace: TraceSettings | undefined
  if (spec.traceFormat !== undefined && spec.traceFormat !== 'text' && spec.traceFormat !== 'json') {
    throw new OptionsError(`trace_format '${String(spec.traceFormat)}': expected text or json`)
  }
  if (spec.trace !== undefined && spec.trace !== false) {
    if (spec.trace === '') throw new OptionsError('trace= needs a file name')
    const file = typeof spec.trace === 'string' ? path.resolve(spec.trace) : undefined
    if (file !== undefined && isInside(file, mountpoint)) throw new OptionsError(`trace file ${String(spec.trace)} is inside the mountpoint`)
    trace = Object.freeze({ ...(file === undefined ? {} : { file }), format: spec.traceFormat ?? 'text' })
  } else if (spec.traceFormat !== undefined) {
    throw new OptionsError('trace_format= needs trace')
  }

  // Without root the default is the AUFS dialect in both syntaxes: it needs
  // neither device nodes nor trusted.* xattrs. whiteout=overlay gives
  // overlayfs' userxattr form where the kernel lets a user make whiteouts.
  const whiteout = spec.whiteout ?? (overlaySyntax && isRoot() ? 'overlay' : 'aufs')
  if (whiteout === 'overlay' && !isRoot() && !userWhiteoutDevices()) {
    throw new OptionsError(`whiteout=overlay needs root on Linux ${os.release()} (a user may make whiteout devices from Linux 5.8); use whiteout=aufs`)
  }
  const union: UnionConfig = Object.freeze({
    lowers: Object.freeze(readOnly && realUpper !== undefined ? [realUpper, ...realLowers] : realLowers),
    ...(realUpper === undefined || realWork === undefined ? {} : { upper: realUpper, workdir: realWork }),
    whiteout,
    cacheEntries,
    cacheTtlMs,
    xattrNamespace: isRoot() ? 'trusted' : 'user'
  })
  return Object.freeze({
    union,
    mountpoint,
    fuse,
    backend,
    ...(log === undefined ? {} : { log }),
    ...(trace === undefined ? {} : { trace }),
    foreground: spec.foreground ?? false
  })
}

/**
 * The work dir: an existing directory, or a name whose parent exists (the
 * core creates it); on the writable branch's filesystem so copy-up can
 * rename from it; never overlapping a read-only branch or the mountpoint,
 * and inside the writable branch only under a hidden `.wh.` name.
 */
function checkWorkdir (given: string, upper: string, givenUpper: string, lowers: string[],
  givenLowers: string[], mountpoint: string, givenMnt: string): string {
  const abs = path.resolve(given)
  let real: string
  let st: fs.Stats
  try {
    real = fs.realpathSync(abs)
    st = fs.statSync(real)
    if (!st.isDirectory()) throw new OptionsError(`workdir ${given}: not a directory`)
  } catch (err) {
    if (err instanceof OptionsError) throw err
    if ((err as { code?: string }).code !== 'ENOENT') throw new OptionsError(`workdir ${given}: ${describe(err)}`)
    const parent = realDir('workdir parent', path.dirname(abs))
    real = path.join(parent, path.basename(abs))
    st = fs.statSync(parent)
  }
  if (real === upper || isInside(upper, real)) {
    throw new OptionsError(`workdir ${given} must not be the writable branch ${givenUpper} or contain it`)
  }
  if (isInside(real, upper)) {
    const first = path.relative(upper, real).split('/')[0]
    if (!first.startsWith('.wh.')) {
      throw new OptionsError(`workdir ${given} is inside the writable branch and would show in the mount (use a name starting with .wh.)`)
    }
  }
  for (let i = 0; i < lowers.length; i++) {
    if (isInside(real, lowers[i]) || isInside(lowers[i], real)) {
      throw new OptionsError(`workdir ${given} overlaps branch ${givenLowers[i]}`)
    }
  }
  if (isInside(real, mountpoint) || isInside(mountpoint, real)) {
    throw new OptionsError(`workdir ${given} overlaps the mountpoint ${givenMnt}`)
  }
  if (st.dev !== fs.statSync(upper).dev) {
    throw new OptionsError(`workdir ${given} is not on the same filesystem as the writable branch ${givenUpper}`)
  }
  return real
}

function isRoot (): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0
}

