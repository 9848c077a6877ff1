/**
 * Copy-up: making a lower branch's entry the writable branch's own, before
 * its first mutation.
 *
 *  1. Parents first: every missing ancestor is copied up (as a bare
 *     directory with the mode, owner, times and xattrs of the directory it
 *     shadows), top-down.
 *  2. The copy is built in the work dir: data (reflink when the filesystem
 *     offers it, else copy_file_range over the data extents only, so holes
 *     stay holes), then owner, mode, user-visible xattrs, the origin inode
 *     number, and times last (writing the rest would change them).
 *     Symlinks keep their target; fifos, sockets and devices are recreated.
 *     Copied data is synced before the rename.
 *  3. One rename moves the copy into place, and the parent directory gets its
 *     times back (a copy-up changes nothing the user can see in it; the work
 *     dir notes them first, so a crash between the two is mended: workdir.ts).
 *     A crash before the rename leaves the old view and a temp file that the
 *     next mount sweeps; after it, the new view. On any failure the temp is
 *     removed and the error is the answer. The copy's entry is built from
 *     the one it replaces (Resolver.copiedUp), not looked up again.
 */
import * as fs from 'node:fs'
import type { ReadonlyBranch, WritableBranch } from '../branch/branch'
import { fsError, isCode } from '../errors'
import * as native from '../native'
import { timeOfNs } from './attrs'
import { encodeOrigin, originXattr } from './inodes'
import { parentOf } from './paths'
import type { Entry, Resolver } from './resolve'
import { isPrivateXattr } from './whiteouts'
import type { Workdir } from './workdir'

export interface CopyUpOptions {
  /** Copy data up to this size only (a truncate or O_TRUNC follows). */
  size?: number
}

export interface CopyUpEvent {
  path: string
  fromLayer: number
  bytes: number
  ms: number
}

export class CopyUp {
  /** Called after each copy-up lands (handles re-point, tracing counts). */
  onCopied: (entry: Entry, event: CopyUpEvent) => void = () => {}
  /** Layers that cannot reflink into the work dir (see reflink). */
  private readonly noReflink = new Set<number>()

  constructor (
    private readonly resolver: Resolver,
    private readonly upper: WritableBranch,
    private readonly work: Workdir,
    private readonly ns: string,
    /** Root: every metadata step must succeed. */
    private readonly privileged = process.getuid?.() === 0
  ) {}

  /** Makes `path` served by the writable branch and returns its new entry. */
  file (path: string, syscall: string, opts: CopyUpOptions = {}): Entry {
    const e = this.resolver.get(path, syscall)
    if (e.top.layer === 0) return e
    if (e.isDir) return this.dir(path, syscall)
    this.dir(parentOf(path), syscall)
    return this.copy(e, opts)
  }

  /** Makes directory `path` (and its parents) exist in the writable branch. */
  dir (path: string, syscall: string): Entry {
    const e = this.resolver.get(path, syscall)
    if (e.top.layer === 0) return e
    if (!e.isDir) throw fsError('ENOTDIR', syscall, path)
    // Only a writable branch removed while mounted leaves a root to copy.
    if (path === '/') throw fsError('ENOENT', syscall, this.upper.root, 'the writable branch is gone')
    this.dir(parentOf(path), syscall)
    return this.copy(e, {})
  }

  private copy (e: Entry, opts: CopyUpOptions): Entry {
    const started = performance.now()
    const src = this.resolver.layers[e.top.layer]
    const st = fs.lstatSync(src.real(e.top.rel), { bigint: true })
    const tmp = this.work.tempName()
    const dst = this.work.dir
    let bytes = 0
    let origin: boolean
    try {
      if (e.stat.isFile()) bytes = this.copyFile(e.top.layer, src, e.top.rel, tmp, st, opts.size)
      else if (e.stat.isDirectory()) dst.mkdir(tmp, 0o700)
      else if (e.stat.isSymbolicLink()) dst.symlink(src.readlink(e.top.rel), tmp)
      else dst.mknod(tmp, Number(st.mode), Number(st.rdev))
      origin = this.copyMeta(src, e, tmp, st)
      this.work.landCopy(tmp, this.upper, e.path)
    } catch (err) {
      this.work.discard(tmp)
      throw err
    }
    const copied = this.upper.lstat(e.path)
    if (copied === undefined) throw fsError('ENOENT', 'lstat', e.path, 'the copy-up was removed while it landed')
    const fresh = this.resolver.copiedUp(e, copied, origin)
    this.onCopied(fresh, { path: e.path, fromLayer: e.top.layer, bytes, ms: performance.now() - started })
    return fresh
  }

  /**
   * Owner, then mode (chown clears set-ID bits), xattrs, origin, and times
   * last. Without root, what the kernel refuses a user is left out rather
   * than failing the copy-up: an owner other than the daemon's user (the
   * copy stays the user's), xattrs outside user.* (security.capability...),
   * and the origin on a symlink or special file (user.* xattrs are for
   * regular files and directories only), whose st_ino then changes.
   * Returns whether the origin was recorded.
   */
  private copyMeta (src: ReadonlyBranch, e: Entry, tmp: string, st: fs.BigIntStats): boolean {
    const dst = this.work.dir
    this.unlessRefused(() => { dst.lchown(tmp, Number(st.uid), Number(st.gid)) })
    if (!e.stat.isSymbolicLink()) dst.chmod(tmp, Number(st.mode) & 0o7777)
    for (const name of src.listxattr(e.top.rel)) {
      if (isPrivateXattr(name)) continue
      const v = src.getxattr(e.top.rel, name)
      if (v !== undefined) this.unlessRefused(() => { dst.setxattr(tmp, name, v) })
    }
    const origin = this.unlessRefused(() => { dst.setxattr(tmp, originXattr(this.ns), encodeOrigin(e.ino)) })
    dst.utimens(tmp, timeOfNs(st.atimeNs), timeOfNs(st.mtimeNs))
    return origin
  }

  /** Runs `step`; without root, EPERM (the kernel's no to a user) skips it. Returns whether it ran. */
  private unlessRefused (step: () => void): boolean {
    try {
      step()
      return true
    } catch (err) {
      if (this.privileged || !isCode(err, 'EPERM')) throw err
      return false
    }
  }

  /**
   * Offers a whole file to reflink (FICLONE), which shares the blocks
   * instead of copying them. A layer whose filesystem cannot clone into the
   * work dir's (EOPNOTSUPP, EXDEV...) is not asked again: on ext4 the
   * refusal cost every copy-up a system call and an exception.
   */
  private reflink (layer: number, inFd: number, outFd: number): boolean {
    if (this.noReflink.has(layer)) return false
    try {
      native.ficlone(outFd, inFd)
      return true
    } catch (err) {
      if (isCode(err, 'EOPNOTSUPP', 'ENOTSUP', 'EXDEV', 'ENOTTY', 'ENOSYS')) this.noReflink.add(layer)
      else if (!isCode(err, 'EINVAL', 'EBADF', 'EPERM')) throw err
      return false
    }
  }

  /** The data, up to `size` when a truncate follows; returns the bytes copied. */
  private copyFile (layer: number, src: ReadonlyBranch, rel: string, tmp: string, st: fs.BigIntStats, size?: number): number {
    const srcSize = Number(st.size)
    const want = size === undefined ? srcSize : Math.min(size, srcSize)
    const inFd = src.openRead(rel)
    let outFd = -1
    try {
      outFd = this.work.dir.open(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600)
      const bytes = want === 0
        ? 0
        : want === srcSize && this.reflink(layer, inFd, outFd) ? want : copyData(inFd, outFd, want)
      fs.ftruncateSync(outFd, size ?? srcSize)
      // On disk before the rename makes it the file, as overlayfs does: a
      // power loss after a copy-up must not show an empty file.
      if (bytes > 0) fs.fdatasyncSync(outFd)
      return bytes
    } finally {
      fs.closeSync(inFd)
      if (outFd >= 0) fs.closeSync(outFd)
    }
  }
}

/**
 * Copies the first `len` bytes of `inFd` to `outFd` at the same offsets:
 * only the data extents (SEEK_DATA/SEEK_HOLE), with copy_file_range, so
 * holes stay holes; read/write is the last resort for filesystems that
 * offer neither.
 */
export function copyData (inFd: number, outFd: number, len: number): number {
  let copied = 0
  let off = 0
  while (off < len) {
    let data: number
    try {
      data = native.lseek(inFd, off, native.SEEK_DATA)
    } catch (err) {
      if (isCode(err, 'ENXIO')) break // only a hole is left
      if (isCode(err, 'EINVAL', 'EOPNOTSUPP')) data = off
      else throw err
    }
    if (data >= len) break
    let hole: number
    try {
      hole = native.lseek(inFd, data, native.SEEK_HOLE)
    } catch {
      hole = len
    }
    const end = Math.min(hole, len)
    copied += copyRange(inFd, outFd, data, end)
    off = end
  }
  return copied
}

function copyRange (inFd: number, outFd: number, from: number, to: number): number {
  let pos = from
  try {
    while (pos < to) {
      const n = native.copyFileRange(inFd, pos, outFd, pos, Math.min(to - pos, 1 << 30))
      if (n === 0) break
      pos += n
    }
    return pos - from
  } catch (err) {
    if (!isCode(err, 'EXDEV', 'EINVAL', 'ENOSYS', 'EOPNOTSUPP')) throw err
  }
  const buf = Buffer.allocUnsafe(1 << 20)
  while (pos < to) {
    const n = fs.readSync(inFd, buf, 0, Math.min(buf.length, to - pos), pos)
    if (n === 0) break
    let w = 0
    while (w < n) w += fs.writeSync(outFd, buf, w, n - w, pos + w)
    pos += n
  }
  return pos - from
}
