/**
 * Applying a layer tarball (an OCI changeset) to a branch directory.
 *
 * The OCI image-spec's rules, with the branch as the layer's own directory:
 * - an entry replaces what the directory has at its name (a directory over
 *   a directory keeps the old one's content and takes the new metadata);
 * - `.wh.NAME` removes NAME from the directory and leaves a whiteout of
 *   NAME in the branch's dialect (Whiteouts), so NAME stays hidden in the
 *   branches below. An entry of the same tarball is not removed by it
 *   ("files in the same layer as a whiteout can only be hidden by later
 *   layers"): a directory of that name is made opaque instead;
 * - `.wh..wh..opq` in DIR, wherever it comes in the tarball, makes DIR
 *   opaque; what DIR held before this tarball and the tarball did not write
 *   is removed once the tarball has been read (it was "below");
 * - a new entry over a whited-out name clears the whiteout; a directory so
 *   made is opaque, so the hidden content stays hidden (as the union does);
 * - other `.wh..wh.` names (AUFS's private state), and anything below a
 *   `.wh.` name (the union's work dir), are skipped.
 * Owner, mode, times and xattrs (PAX `SCHILY.xattr.*`) are restored;
 * directories get their times last, deepest first, once nothing more is
 * written into them.
 *
 * Containment. Nothing outside DIR is ever touched: names are checked by
 * tar-name.ts (no absolute names, no `..`); every parent of a path is seen
 * by lstat to be a real directory of DIR before anything is made below it
 * (a symlink planted by an earlier entry is refused, not followed); the
 * last component is removed first and made anew with O_EXCL|O_NOFOLLOW,
 * mknod, symlink or link(2), none of which follow it; a hard link's target
 * passes the same checks and must be a non-directory already in DIR. The
 * first refused entry ends the apply with its error.
 *
 * Privileges. Without root, owners are kept only where the kernel allows,
 * device nodes and trusted.* xattrs are skipped, and the overlay dialect
 * is overlayfs' userxattr form (whiteout devices, which Linux 5.8+ lets a
 * user make, and user.overlay.* xattrs; before 5.8 Whiteouts falls back to
 * AUFS whiteouts by itself); each kind of loss is reported once as a warning.
 */
import * as fs from 'node:fs'
import type { Readable } from 'node:stream'
import type * as tar from 'tar-stream'
import { writableBranch, type WritableBranch } from '../branch/branch'
import * as native from '../native'
import type { WhiteoutDialect } from '../union/config'
import { baseName, childRel, fromBytes, isWithin, parentOf } from '../union/paths'
import {
  aufsWhiteoutTarget, dirMarks, isMetaName, isPrivateXattr, isReservedName, isWhiteoutStat, OPAQUE_MARKER, Whiteouts, whiteoutTarget
} from '../union/whiteouts'
import { LayerError } from './layer-error'
import { entryTimes, makedev, paxNumber, paxXattrs, type EntryTimes } from './meta'
import type { PaxRecords } from './pax'
import { entryRel, quoted } from './tar-name'
import { readTar } from './tar-reader'

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, S_IFCHR, S_IFBLK, S_IFIFO } = fs.constants

export interface ApplyOptions {
  /** The whiteout dialect written (both are understood in the tarball's target). */
  whiteout: WhiteoutDialect
  /** Raw (possibly compressed) bytes read so far, for a progress display. */
  onRaw?: (n: number) => void
  /** One line per kind of loss (no root: owners, devices, xattrs). */
  warn?: (message: string) => void
}

export interface ApplyResult {
  /** Entries in the tarball. */
  entries: number
  /** `sha256:HEX` of the uncompressed tarball: the layer's DiffID. */
  diffId: string
  /** Uncompressed size in bytes. */
  size: number
}

/** Applies the tarball read from `source` to the directory `dir`. */
export async function applyLayer (source: AsyncIterable<Buffer>, dir: string, opts: ApplyOptions): Promise<ApplyResult> {
  let root: string
  try {
    root = fs.realpathSync(dir)
    if (!fs.statSync(root).isDirectory()) throw new LayerError(`${dir}: not a directory`)
  } catch (err) {
    if (err instanceof LayerError) throw err
    throw new LayerError(`${dir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`)
  }
  const applier = new Applier(writableBranch(root, 0), opts)
  const reader = readTar(source, opts.onRaw)
  let entries = 0
  try {
    for await (const e of reader.entries) {
      entries++
      await applier.entry(e.header, e.pax, e.data)
    }
    applier.finish()
  } catch (err) {
    reader.destroy()
    if (err instanceof LayerError) throw err
    const e = err as NodeJS.ErrnoException
    if (typeof e.code === 'string' && e.syscall !== undefined) throw new LayerError(`${e.code}: ${e.syscall} ${e.path ?? ''}`.trim(), { cause: err })
    throw new LayerError(`not a valid layer tarball: ${e.message}`, { cause: err })
  }
  return { entries, diffId: reader.digest(), size: reader.size() }
}

class Applier {
  private readonly whiteouts: Whiteouts
  private readonly ns: 'trusted' | 'user'
  private readonly privileged = process.getuid?.() === 0
  /** Paths this tarball wrote: its entries and every parent directory they went into. */
  private readonly written = new Set<string>()
  /** Names this tarball whited out. */
  private readonly whitedOut = new Set<string>()
  /** Directories seen, by lstat, to be real directories of the branch. */
  private readonly dirsOk = new Set<string>(['/'])
  private readonly dirTimes = new Map<string, EntryTimes>()
  private readonly opaque = new Set<string>()
  private readonly warned = new Set<string>()

  constructor (private readonly branch: WritableBranch, private readonly opts: ApplyOptions) {
    this.ns = this.privileged ? 'trusted' : 'user'
    this.whiteouts = new Whiteouts(branch, opts.whiteout, this.ns)
  }

  async entry (h: tar.Header, pax: PaxRecords | undefined, data: Readable): Promise<void> {
    const rel = entryRel(h.name)
    const base = baseName(rel)
    if (parentOf(rel).split('/').some(isReservedName)) {
      // Below a `.wh.` name: nothing a union shows (the work dir, AUFS's own state).
      await drain(data)
      this.warnOnce('reserved', `entries below .wh. names skipped (${fromBytes(h.name)})`)
      return
    }
    if (rel !== '/' && isReservedName(base)) {
      await drain(data)
      this.ensureDir(parentOf(rel), h.name)
      if (base === OPAQUE_MARKER) this.markOpaque(parentOf(rel))
      else {
        const target = aufsWhiteoutTarget(base)
        if (target !== undefined) this.whiteout(parentOf(rel), target)
      }
      return
    }
    if (rel !== '/') this.ensureDir(parentOf(rel), h.name)
    switch (h.type) {
      case 'file':
      case 'contiguous-file':
        await this.file(rel, h, pax, data)
        break
      case 'directory':
        await drain(data)
        this.directory(rel, h, pax)
        break
      case 'symlink':
        await drain(data)
        this.symlink(rel, h, pax)
        break
      case 'link':
        await drain(data)
        this.hardLink(rel, h)
        break
      case 'character-device':
      case 'block-device':
      case 'fifo':
        await drain(data)
        this.node(rel, h, pax)
        break
      default:
        throw new LayerError(`entry ${quoted(h.name)}: unsupported entry type ${String(h.type)}`)
    }
  }

  /** After the last entry: prune opaque directories, then set directory times. */
  finish (): void {
    for (const d of this.opaque) this.prune(d)
    const dirs = [...this.dirTimes].sort(([a], [b]) => depth(b) - depth(a))
    for (const [rel, t] of dirs) {
      const st = this.branch.lstat(rel)
      if (st?.isDirectory() === true) native.utimensat(this.branch.real(rel), t.atime, t.mtime, true)
    }
  }

  // ---- entries ----

  private async file (rel: string, h: tar.Header, pax: PaxRecords | undefined, data: Readable): Promise<void> {
    if (rel === '/') throw new LayerError(`entry ${quoted(h.name)}: the layer's root cannot be a file`)
    this.prepare(rel, false)
    const fd = this.branch.open(rel, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600)
    try {
      for await (const chunk of data) {
        const b = chunk as Buffer
        let off = 0
        while (off < b.length) off += fs.writeSync(fd, b, off, b.length - off)
      }
      this.owner(() => fs.fchownSync(fd, uidOf(h, pax), gidOf(h, pax)))
      fs.fchmodSync(fd, h.mode & 0o7777)
      for (const [name, value] of this.xattrs(pax)) this.tryXattr(name, () => native.fsetxattr(fd, name, value, 0))
      const t = entryTimes(h.mtime, pax)
      native.futimens(fd, t.atime, t.mtime)
    } finally {
      fs.closeSync(fd)
    }
    this.written.add(rel)
  }

  private directory (rel: string, h: tar.Header, pax: PaxRecords | undefined): void {
    const { keep, hidden } = rel === '/' ? { keep: true, hidden: false } : this.prepare(rel, true)
    if (!keep) this.branch.mkdir(rel, 0o700)
    this.dirsOk.add(rel)
    this.written.add(rel)
    const real = this.branch.real(rel)
    this.owner(() => fs.lchownSync(real, uidOf(h, pax), gidOf(h, pax)))
    fs.chmodSync(real, h.mode & 0o7777)
    const wanted = this.xattrs(pax)
    if (keep) {
      // The entry's xattrs replace the old ones; the union's private ones (opaque, redirect) stay.
      const names = new Set(wanted.map(([n]) => n))
      for (const n of this.branch.listxattr(rel)) {
        if (!isPrivateXattr(n) && !names.has(n)) this.tryXattr(n, () => this.branch.removexattr(rel, n))
      }
    }
    for (const [name, value] of wanted) this.tryXattr(name, () => this.branch.setxattr(rel, name, value))
    if (hidden) this.markOpaque(rel)
    this.dirTimes.set(rel, entryTimes(h.mtime, pax))
  }

  private symlink (rel: string, h: tar.Header, pax: PaxRecords | undefined): void {
    this.noRoot(rel, h)
    this.prepare(rel, false)
    // The target is content, never followed here: it may point anywhere.
    this.branch.symlink(h.linkname ?? '', rel)
    const real = this.branch.real(rel)
    this.owner(() => fs.lchownSync(real, uidOf(h, pax), gidOf(h, pax)))
    for (const [name, value] of this.xattrs(pax)) this.tryXattr(name, () => this.branch.setxattr(rel, name, value))
    const t = entryTimes(h.mtime, pax)
    native.utimensat(real, t.atime, t.mtime, true)
    this.written.add(rel)
  }

  private hardLink (rel: string, h: tar.Header): void {
    this.noRoot(rel, h)
    const linkname = h.linkname ?? ''
    const target = entryRel(linkname, `hard link ${quoted(h.name)} ->`)
    this.checkParents(target, `hard link ${quoted(h.name)} -> ${quoted(linkname)}`)
    const tst = this.branch.lstat(target)
    if (tst === undefined || isWhiteoutStat(tst)) {
      throw new LayerError(`hard link ${quoted(h.name)} -> ${quoted(linkname)}: the target is not in this directory`)
    }
    if (tst.isDirectory()) throw new LayerError(`hard link ${quoted(h.name)} -> ${quoted(linkname)}: the target is a directory`)
    if (target === rel) return
    const st = this.branch.lstat(rel)
    if (st !== undefined && st.ino === tst.ino && st.dev === tst.dev) { this.written.add(rel); return }
    this.prepare(rel, false)
    this.branch.link(target, rel)
    this.written.add(rel)
  }

  private node (rel: string, h: tar.Header, pax: PaxRecords | undefined): void {
    this.noRoot(rel, h)
    const type = h.type === 'fifo' ? S_IFIFO : h.type === 'block-device' ? S_IFBLK : S_IFCHR
    if (type !== S_IFIFO && !this.privileged) {
      this.warnOnce('devices', 'device nodes skipped (making them needs root)')
      return
    }
    this.prepare(rel, false)
    const rdev = type === S_IFIFO ? 0 : makedev(h.devmajor ?? 0, h.devminor ?? 0)
    this.branch.mknod(rel, type | (h.mode & 0o777), rdev)
    const real = this.branch.real(rel)
    this.owner(() => fs.lchownSync(real, uidOf(h, pax), gidOf(h, pax)))
    fs.chmodSync(real, h.mode & 0o7777)
    for (const [name, value] of this.xattrs(pax)) this.tryXattr(name, () => this.branch.setxattr(rel, name, value))
    const t = entryTimes(h.mtime, pax)
    native.utimensat(real, t.atime, t.mtime, true)
    this.written.add(rel)
  }

  // ---- whiteouts and opaque directories ----

  private whiteout (dirRel: string, name: string): void {
    const p = childRel(dirRel, name)
    if (this.written.has(p)) {
      // Same layer: the entry stays; only what is below it must not show.
      if (this.branch.lstat(p)?.isDirectory() === true) this.markOpaque(p)
      return
    }
    const st = this.branch.lstat(p)
    if (st !== undefined && !isWhiteoutStat(st)) this.remove(p, st)
    if (!this.whiteouts.hasWhiteout(dirRel, name)) this.whiteouts.whiteout(dirRel, name)
    this.whitedOut.add(p)
  }

  private markOpaque (rel: string): void {
    if (!dirMarks(this.branch, rel, this.ns).opaque) this.whiteouts.makeOpaque(rel)
    this.opaque.add(rel)
  }

  /** Removes what an opaque directory held that this tarball did not write. */
  private prune (dir: string): void {
    if (this.branch.lstat(dir)?.isDirectory() !== true) return
    for (const d of this.branch.readdir(dir)) {
      const p = childRel(dir, d.name)
      if (isMetaName(d.name)) continue
      const st = this.branch.lstat(p)
      if (st === undefined) continue
      if (this.written.has(p)) {
        if (st.isDirectory()) this.prune(p)
        continue
      }
      const hides = whiteoutTarget(d.name, st)
      if (hides !== undefined && this.whitedOut.has(childRel(dir, hides))) continue
      this.remove(p, st)
    }
  }

  // ---- the containment checks ----

  /**
   * Makes sure `rel` is a real directory of the branch, making the missing
   * ones; refuses to go through anything else.
   */
  private ensureDir (rel: string, entryName: string): void {
    if (this.dirsOk.has(rel) && this.written.has(rel)) return
    let q = '/'
    for (const part of rel.split('/').filter(Boolean)) {
      q = childRel(q, part)
      // A parent of an entry is part of this tarball: an opaque ancestor keeps it.
      this.written.add(q)
      if (this.dirsOk.has(q)) continue
      const st = this.branch.lstat(q)
      if (st === undefined || isWhiteoutStat(st)) {
        const { hidden } = this.prepare(q, true)
        this.branch.mkdir(q, 0o755)
        fs.chmodSync(this.branch.real(q), 0o755)
        if (hidden) this.markOpaque(q)
      } else if (st.isSymbolicLink()) {
        throw new LayerError(`entry ${quoted(entryName)}: refused, its parent ${fromBytes(q.slice(1))} is a symbolic link (it could lead outside the directory)`)
      } else if (!st.isDirectory()) {
        throw new LayerError(`entry ${quoted(entryName)}: its parent ${fromBytes(q.slice(1))} is not a directory`)
      }
      this.dirsOk.add(q)
    }
  }

  /** Every parent of `rel` is a real directory of the branch (nothing is made). */
  private checkParents (rel: string, what: string): void {
    let q = '/'
    const parts = rel.split('/').filter(Boolean)
    for (const part of parts.slice(0, -1)) {
      q = childRel(q, part)
      if (this.dirsOk.has(q)) continue
      const st = this.branch.lstat(q)
      if (st === undefined) throw new LayerError(`${what}: the target is not in this directory`)
      if (st.isSymbolicLink()) throw new LayerError(`${what}: refused, the target's parent ${fromBytes(q.slice(1))} is a symbolic link (it could lead outside the directory)`)
      if (!st.isDirectory()) throw new LayerError(`${what}: the target's parent ${fromBytes(q.slice(1))} is not a directory`)
      this.dirsOk.add(q)
    }
  }

  /**
   * Clears the way for a new entry at `rel`: a whiteout of the name goes
   * (`hidden` says there was one), and so does an old entry, unless both are
   * directories (`keep`).
   */
  private prepare (rel: string, isDir: boolean): { keep: boolean, hidden: boolean } {
    const dirRel = parentOf(rel)
    const name = baseName(rel)
    const hidden = this.whiteouts.hasWhiteout(dirRel, name)
    if (hidden) this.whiteouts.clearWhiteout(dirRel, name)
    const st = this.branch.lstat(rel)
    if (st === undefined) return { keep: false, hidden }
    if (st.isDirectory() && isDir) return { keep: true, hidden }
    this.remove(rel, st)
    return { keep: false, hidden }
  }

  private remove (rel: string, st: fs.BigIntStats): void {
    if (st.isDirectory()) {
      this.branch.removeTree(rel)
      for (const d of [...this.dirsOk]) if (isWithin(d, rel)) this.dirsOk.delete(d)
    } else {
      this.branch.unlink(rel)
    }
  }

  private noRoot (rel: string, h: tar.Header): void {
    if (rel === '/') throw new LayerError(`entry ${quoted(h.name)}: the layer's root must be a directory`)
  }

  // ---- metadata ----

  private owner (chown: () => void): void {
    try {
      chown()
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (this.privileged || (code !== 'EPERM' && code !== 'EINVAL')) throw err
      this.warnOnce('owner', 'owners not kept where they are not yours (making them needs root)')
    }
  }

  private xattrs (pax: PaxRecords | undefined): Array<[string, Buffer]> {
    // A tarball never sets the union's own state: whiteouts travel as `.wh.` entries.
    return paxXattrs(pax).filter(([n]) => !isPrivateXattr(n))
  }

  private tryXattr (name: string, op: () => void): void {
    try {
      op()
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      // Refused by this filesystem, this user or the kernel's check of the
      // value (a malformed security.capability): the rest of the layer goes on.
      if (!['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EACCES', 'ENODATA', 'EINVAL', 'ERANGE', 'E2BIG'].includes(code ?? '')) throw err
      this.warnOnce(`xattr:${name.split('.')[0]}`, `${name.split('.')[0]}.* xattrs not kept here (${code})`)
    }
  }

  private warnOnce (key: string, message: string): void {
    if (this.warned.has(key)) return
    this.warned.add(key)
    this.opts.warn?.(message)
  }
}

function uidOf (h: tar.Header, pax: PaxRecords | undefined): number {
  return paxNumber(pax, 'uid') ?? h.uid ?? 0
}

function gidOf (h: tar.Header, pax: PaxRecords | undefined): number {
  return paxNumber(pax, 'gid') ?? h.gid ?? 0
}

function depth (rel: string): number {
  return rel === '/' ? 0 : rel.split('/').length - 1
}

async function drain (data: Readable): Promise<void> {
  for await (const _ of data) { /* an entry's data must be read before the next entry comes */ }
}
