/**
 * One way to mount a branch stack on either implementation, so a ring 3
 * scenario written once runs on unionfs-ts (in both whiteout dialects and
 * both option syntaxes) and, where the behaviour should match, on the kernel's
 * overlayfs. Also the on-disk probes the scenarios use: whiteouts and opaque
 * markers in either dialect, the private work dir's leftovers.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { getxattr } from './sys'
import { major, minor, type Dialect } from './tree'
import { tmpdir, withOverlay, withUnion, type Mounted } from './mount'

export type Impl = 'unionfs-ts' | 'overlayfs'

export interface Variant {
  impl: Impl
  /** the whiteout dialect this mount writes */
  dialect: Dialect
  /** unionfs-ts only: the command-line syntax used */
  syntax: 'branches' | 'overlay'
  name: string
}

export const UNION_AUFS: Variant = { impl: 'unionfs-ts', dialect: 'aufs', syntax: 'branches', name: 'unionfs-ts whiteout=aufs' }
export const UNION_OVERLAY: Variant = { impl: 'unionfs-ts', dialect: 'overlay', syntax: 'branches', name: 'unionfs-ts whiteout=overlay' }
export const UNION_OVL_SYNTAX: Variant = { impl: 'unionfs-ts', dialect: 'overlay', syntax: 'overlay', name: 'unionfs-ts lowerdir=/upperdir=' }
export const OVERLAYFS: Variant = { impl: 'overlayfs', dialect: 'overlay', syntax: 'overlay', name: 'kernel overlayfs' }

/** Every unionfs-ts variant, then the kernel's overlayfs for comparison. */
export const ALL: Variant[] = [UNION_AUFS, UNION_OVERLAY, UNION_OVL_SYNTAX, OVERLAYFS]
export const UNION_ONLY: Variant[] = [UNION_AUFS, UNION_OVERLAY, UNION_OVL_SYNTAX]

export interface Stack extends Mounted {
  variant: Variant
  lowers: string[]
  upper?: string
  /** the private work dir, which must hold no leftovers after any operation */
  work?: string
  /** path inside the mount */
  m: (rel: string) => string
  /** path inside the upper branch */
  u: (rel: string) => string
}

/**
 * Mount `lowers` (top first, made by the caller) with a fresh empty upper
 * (unless upper: false) on the variant. Extra options apply to unionfs-ts only.
 */
export function mountStack (t: tap.Test, v: Variant, lowers: string[],
  opts: { upper?: boolean | string, options?: string[] } = {}): Stack {
  const upper = opts.upper === false ? undefined : typeof opts.upper === 'string' ? opts.upper : tmpdir(t, 'upper')
  let work: string | undefined
  let mounted: Mounted
  if (v.impl === 'overlayfs') {
    if (upper !== undefined) work = tmpdir(t, 'work')
    mounted = withOverlay(t, { lowers, upper, work })
  } else if (v.syntax === 'overlay') {
    if (upper !== undefined) work = tmpdir(t, 'work')
    mounted = withUnion(t, { lowers, upper, workdir: work, options: [`whiteout=${v.dialect}`, ...(opts.options ?? [])] })
  } else {
    const branches = upper !== undefined ? [upper, ...lowers.map(l => `${l}=ro`)] : lowers.map(l => `${l}=ro`)
    if (upper !== undefined) work = path.join(upper, '.wh..wh.unionfs-ts')
    mounted = withUnion(t, { branches, options: [`whiteout=${v.dialect}`, ...(opts.options ?? [])] })
  }
  return {
    ...mounted,
    variant: v,
    lowers,
    upper,
    work,
    m: rel => path.join(mounted.mnt, rel),
    u: rel => {
      if (upper === undefined) throw new Error('no upper branch')
      return path.join(upper, rel)
    }
  }
}

/** True when `dir/name` is hidden by a whiteout of `dialect` on disk. */
export function whiteoutOnDisk (dir: string, name: string, dialect: Dialect): boolean {
  if (dialect === 'aufs') {
    try {
      const st = fs.lstatSync(path.join(dir, `.wh.${name}`))
      return st.isFile() && st.size === 0
    } catch { return false }
  }
  try {
    const st = fs.lstatSync(path.join(dir, name))
    return st.isCharacterDevice() && major(st.rdev) === 0 && minor(st.rdev) === 0
  } catch { return false }
}

/** Any whiteout for name in dir, in either dialect (for "no whiteout left" checks). */
export function anyWhiteoutOnDisk (dir: string, name: string): boolean {
  return whiteoutOnDisk(dir, name, 'aufs') || whiteoutOnDisk(dir, name, 'overlay')
}

/** True when `dir` carries an opaque marker of `dialect` on disk. */
export function opaqueOnDisk (dir: string, dialect: Dialect): boolean {
  if (dialect === 'aufs') return fs.existsSync(path.join(dir, '.wh..wh..opq'))
  for (const name of ['trusted.overlay.opaque', 'user.overlay.opaque']) {
    try { if (getxattr(dir, name).toString() === 'y') return true } catch { /* not set */ }
  }
  return false
}

/**
 * What is left in a work dir: every entry that is not a directory (temp
 * files, half-built copies), as relative paths. Empty directories are the
 * work dir's own scaffolding (overlayfs keeps `work/` and `index/`).
 */
export function workLeftovers (work: string | undefined): string[] {
  if (work === undefined || !fs.existsSync(work)) return []
  const out: string[] = []
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(path.join(work, rel))) {
      const r = rel === '' ? name : `${rel}/${name}`
      const st = fs.lstatSync(path.join(work, r))
      if (st.isDirectory()) walk(r)
      else out.push(r)
    }
  }
  walk('')
  return out.sort()
}

/** Names in a directory as seen through the mount, sorted. */
export function ls (dir: string): string[] {
  return fs.readdirSync(dir).sort()
}

/** The error code of fn, or 'ok'. */
export function codeOf (fn: () => unknown): string {
  try { fn(); return 'ok' } catch (e) { return String((e as { code?: unknown }).code ?? (e as Error).message) }
}

/**
 * A transcript of steps: `step(name, fn)` records `name: ok`, `name: ok VALUE`
 * (a string as it is, anything else as JSON) or `name: CODE` when fn throws.
 */
export function transcript (): { out: string[], step: (name: string, fn: () => unknown) => void } {
  const out: string[] = []
  const step = (name: string, fn: () => unknown): void => {
    let v: unknown
    const r = codeOf(() => { v = fn() })
    out.push(`${name}: ${r === 'ok' && v !== undefined ? `ok ${typeof v === 'string' ? v : JSON.stringify(v)}` : r}`)
  }
  return { out, step }
}
