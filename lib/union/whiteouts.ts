/**
 * Whiteouts and opaque directories, in both dialects. Nothing else in the
 * project knows what a whiteout looks like.
 *
 *                  AUFS / OCI dialect            overlayfs dialect
 *   hide NAME      empty file `.wh.NAME`         char device 0/0 named NAME
 *   opaque dir     file `.wh..wh..opq` inside    xattr `trusted.overlay.opaque=y`
 *                                                (or `user.overlay.opaque=y`)
 *
 * Every branch is read in both dialects; the mount writes one of them. A
 * directory moved by rename keeps the lower content it came from through a
 * redirect xattr (ours, or overlayfs' `*.overlay.redirect`, both read).
 *
 * Names starting with `.wh.` belong to this module: they never show through
 * the mount and cannot be made through it. The same goes for the private
 * xattrs (`*.overlay.*`, `*.unionfs-ts.*`).
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import type { ReadonlyBranch, WritableBranch } from '../branch/branch'
import type { WhiteoutDialect } from './config'
import { bytesOf, childRel } from './paths'

export const WH_PREFIX = '.wh.'
export const OPAQUE_MARKER = '.wh..wh..opq'

/** Names reserved to whiteouts and the union's own state. */
export function isReservedName (name: string): boolean {
  return name.startsWith(WH_PREFIX)
}

/** The private xattrs: never listed, read or written through the mount. */
export function isPrivateXattr (name: string): boolean {
  return /^(trusted|user)\.(overlay|unionfs-ts)\./.test(name)
}

/** A char device 0/0 is an overlayfs whiteout. */
export function isWhiteoutStat (st: fs.BigIntStats): boolean {
  return st.isCharacterDevice() && st.rdev === 0n
}

/** Is NAME hidden in dir `dirRel` of `branch` by an AUFS-dialect whiteout? */
export function hasAufsWhiteout (branch: ReadonlyBranch, dirRel: string, name: string): boolean {
  if (!aufsNameFits(name)) return false
  const st = branch.lstat(childRel(dirRel, WH_PREFIX + name))
  return st !== undefined && !st.isDirectory()
}

/**
 * `.wh..wh.` names: the opaque marker and private state (the union's work
 * dir, AUFS's own `.wh..wh.plnk` and `.wh..wh.orph`). They hide nothing and
 * are never content: a layer tarball leaves them out, except the marker.
 */
export function isMetaName (name: string): boolean {
  return name.startsWith(WH_PREFIX + WH_PREFIX)
}

/** NAME, when `entryName` is the AUFS/OCI whiteout `.wh.NAME`; else undefined. */
export function aufsWhiteoutTarget (entryName: string): string | undefined {
  if (!entryName.startsWith(WH_PREFIX) || isMetaName(entryName)) return undefined
  const name = entryName.slice(WH_PREFIX.length)
  return name === '' || name === '.' || name === '..' ? undefined : name
}

/** The AUFS/OCI whiteout's own name for NAME: `.wh.NAME`. */
export function aufsWhiteoutName (name: string): string {
  return WH_PREFIX + name
}

/**
 * The name a branch entry hides, read in both dialects: NAME for a
 * non-directory `.wh.NAME` or for a char device 0/0 named NAME; undefined
 * for anything else (the opaque marker and private state included).
 */
export function whiteoutTarget (entryName: string, st: fs.BigIntStats): string | undefined {
  if (isWhiteoutStat(st)) return entryName
  if (st.isDirectory()) return undefined
  return aufsWhiteoutTarget(entryName)
}

/** Does `.wh.NAME` fit in a directory entry (255 bytes)? */
function aufsNameFits (name: string): boolean {
  return WH_PREFIX.length + name.length <= 255 // a byte string: one character a byte
}

export interface DirMarks {
  opaque: boolean
  /** Where, in the branches below, this directory's content lives. */
  redirect?: string
}

const NO_MARKS: DirMarks = { opaque: false }

/** Opaque marker and redirect of a directory, read in both dialects. */
export function dirMarks (branch: ReadonlyBranch, rel: string, ns: string): DirMarks {
  let opaque = branch.lstat(childRel(rel, OPAQUE_MARKER)) !== undefined
  let redirect: string | undefined
  const names = branch.listxattr(rel)
  if (names.length === 0) return opaque ? { opaque } : NO_MARKS
  for (const name of names) {
    if (name === 'trusted.overlay.opaque' || name === 'user.overlay.opaque') {
      const v = branch.getxattr(rel, name)
      if (v !== undefined && v.toString() === 'y') opaque = true
    } else if (name === `${ns}.unionfs-ts.redirect` || name === 'trusted.overlay.redirect' || name === 'user.overlay.redirect') {
      // A path, as bytes: read as a byte string (paths.ts).
      const v = branch.getxattr(rel, name)?.toString('latin1')
      if (v !== undefined && redirect === undefined) redirect = redirectTarget(rel, v)
    }
  }
  return { opaque, redirect }
}

/**
 * The path a redirect names, or undefined for a value that is not one. A
 * layer is not trusted: as overlayfs does, only an absolute path of plain
 * names, or a single name (a rename within one directory), is followed;
 * anything with an empty, `.` or `..` part could lead out of the branches.
 */
function redirectTarget (rel: string, value: string): string | undefined {
  const plain = (part: string): boolean => part !== '' && part !== '.' && part !== '..'
  if (value.startsWith('/')) {
    const parts = value.slice(1).split('/')
    return parts.every(plain) ? value : undefined
  }
  if (!plain(value) || value.includes('/')) return undefined
  return childRel(rel.slice(0, rel.lastIndexOf('/')) || '/', value)
}

/** What a whiteout or opaque mark was made as: `.wh.` files or overlayfs' device node / xattr. */
export type MarkForm = 'aufs' | 'overlay'

/** Told of each whiteout and opaque mark made (union path, time taken): tracing and stats. */
export type MarkObserver = (kind: 'whiteout' | 'opaque', path: string, form: MarkForm, ms: number) => void

/**
 * Can a process without root make an overlay whiteout (a char device 0/0)?
 * Linux 5.8 and later let anyone make that one device node (mknod and
 * RENAME_WHITEOUT; overlayfs' `userxattr` mode relies on it), so a user's
 * overlay dialect is overlayfs' userxattr form: device whiteouts, `user.`
 * xattrs. Before 5.8 a user writes AUFS whiteouts.
 */
export function userWhiteoutDevices (release = os.release()): boolean {
  const [major, minor] = release.split('.').map(n => parseInt(n, 10))
  return major > 5 || (major === 5 && minor >= 8)
}

export class Whiteouts {
  /** Observer of the marks made (lib/observe/ sets it through UnionFs); none by default. */
  onMade: MarkObserver = () => {}

  constructor (
    private readonly upper: WritableBranch,
    readonly dialect: WhiteoutDialect,
    private readonly ns: 'trusted' | 'user'
  ) {}

  /**
   * Makes a whiteout for NAME in `dirRel`, where the upper branch has
   * nothing of that name. An overlay-dialect whiteout is a device node,
   * which a user may make only on Linux 5.8 and later
   * (userWhiteoutDevices); otherwise the AUFS dialect is written.
   */
  whiteout (dirRel: string, name: string): void {
    const started = performance.now()
    // `.wh.` + a name near the 255-byte limit does not fit: such a name gets
    // the device-node form whatever the dialect, where that is possible.
    const aufs = this.writesAufs(name)
    if (!aufs) {
      this.upper.mknod(childRel(dirRel, name), fs.constants.S_IFCHR | 0o000, 0)
    } else {
      this.writeAufs(dirRel, name)
    }
    this.onMade('whiteout', childRel(dirRel, name), aufs ? 'aufs' : 'overlay', performance.now() - started)
  }

  /**
   * Makes a whiteout at `tmpRel` (in the work dir), to be renamed over an
   * upper entry so that the entry turns into a whiteout in one step. Returns
   * false in the AUFS dialect, where the whiteout is a sibling file instead:
   * the caller then writes it with `whiteout()` and removes the entry.
   */
  whiteoutForReplace (tmpRel: string, name: string, work: WritableBranch, forPath = tmpRel): boolean {
    if (this.writesAufs(name)) return false
    const started = performance.now()
    work.mknod(tmpRel, fs.constants.S_IFCHR | 0o000, 0)
    this.onMade('whiteout', forPath, 'overlay', performance.now() - started)
    return true
  }

  /**
   * Is a whiteout of NAME written as `.wh.NAME` next to the entry (AUFS
   * dialect), rather than as a device node in its place? A name too long
   * for the prefix gets the device node where that is possible.
   */
  writesAufs (name: string): boolean {
    if (!this.canMknod()) return true
    return this.dialect !== 'overlay' && aufsNameFits(name)
  }

  /** Makes the AUFS whiteout `.wh.NAME` in `dirRel`, whatever is at NAME. */
  whiteoutBeside (dirRel: string, name: string): void {
    const started = performance.now()
    this.writeAufs(dirRel, name)
    this.onMade('whiteout', childRel(dirRel, name), 'aufs', performance.now() - started)
  }

  /** Removes any whiteout of NAME in `dirRel` of the upper branch. */
  clearWhiteout (dirRel: string, name: string): void {
    const wh = childRel(dirRel, WH_PREFIX + name)
    if (aufsNameFits(name) && this.upper.lstat(wh) !== undefined) this.upper.unlink(wh)
    const at = childRel(dirRel, name)
    const st = this.upper.lstat(at)
    if (st !== undefined && isWhiteoutStat(st)) this.upper.unlink(at)
  }

  /** Is there a whiteout of NAME in `dirRel` of the upper branch? */
  hasWhiteout (dirRel: string, name: string): boolean {
    const st = this.upper.lstat(childRel(dirRel, name))
    if (st !== undefined) return isWhiteoutStat(st)
    return hasAufsWhiteout(this.upper, dirRel, name)
  }

  /** Marks an upper directory opaque: nothing below it shows through. */
  makeOpaque (rel: string, branch: WritableBranch = this.upper, forPath = rel): void {
    const started = performance.now()
    if (this.dialect === 'overlay') {
      branch.setxattr(rel, `${this.ns}.overlay.opaque`, Buffer.from('y'))
    } else {
      const fd = branch.open(childRel(rel, OPAQUE_MARKER), fs.constants.O_WRONLY | fs.constants.O_CREAT, 0o444)
      fs.closeSync(fd)
    }
    this.onMade('opaque', forPath, this.dialect, performance.now() - started)
  }

  /**
   * Records where a moved directory's lower content lives. The overlay
   * dialect writes overlayfs' own redirect (an absolute path), so the kernel
   * mounted with redirect_dir=on reads an upper branch written here.
   */
  setRedirect (rel: string, target: string): void {
    const name = this.dialect === 'overlay' ? `${this.ns}.overlay.redirect` : `${this.ns}.unionfs-ts.redirect`
    this.upper.setxattr(rel, name, bytesOf(target))
  }

  /** Drops the whiteouts and markers an upper directory holds (before rmdir). */
  emptyMarkers (rel: string): void {
    for (const d of this.upper.readdir(rel)) {
      const p = childRel(rel, d.name)
      if (d.name.startsWith(WH_PREFIX) && !d.isDirectory()) this.upper.unlink(p)
      else if (d.isCharacterDevice()) {
        const st = this.upper.lstat(p)
        if (st !== undefined && isWhiteoutStat(st)) this.upper.unlink(p)
      }
    }
  }

  private writeAufs (dirRel: string, name: string): void {
    const fd = this.upper.open(childRel(dirRel, WH_PREFIX + name), fs.constants.O_WRONLY | fs.constants.O_CREAT, 0o444)
    fs.closeSync(fd)
  }

  private canMknod (): boolean {
    return this.ns === 'trusted' || userWhiteoutDevices()
  }
}
