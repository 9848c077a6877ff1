/**
 * What the union does through an open handle (handles.ts): read, write,
 * sync, truncate, allocate and seek, and change the attributes and xattrs
 * of the file, which may have no name left (unlinked while open).
 *
 * Only a handle on the writable branch may change its file: a handle on a
 * lower file (opened for reading) must not change the branch, and without
 * a name the file cannot be copied up (EROFS).
 */
import * as fs from 'node:fs'
import { fsError } from '../errors'
import * as native from '../native'
import { timeArg, toAttr } from './attrs'
import type { Handle, Handles } from './handles'
import type { Attr, TimeSpec } from './types'
import { isPrivateXattr } from './whiteouts'
import type { XattrNames } from './xattr-names'

export class OpenFiles {
  constructor (
    private readonly handles: Handles,
    private readonly xattrNames: XattrNames,
    /** The union has a writable branch: a handle there needs no re-pointing. */
    private readonly hasUpper: boolean
  ) {}

  fgetattr (fh: number): Attr {
    const h = this.handles.get(fh, 'fstat')
    return toAttr(fs.fstatSync(h.fd, { bigint: true }), h.ino)
  }

  read (fh: number, buf: Buffer, length: number, position: number): number {
    const fd = this.readFd(fh)
    let n = 0
    while (n < length) {
      const r = fs.readSync(fd, buf, n, length - n, position + n)
      if (r === 0) break
      n += r
    }
    return n
  }

  /** The descriptor a read of `fh` goes to now (a copy-up re-points a lower handle). */
  readFd (fh: number): number {
    return this.handles.get(fh, 'read').fd
  }

  write (fh: number, buf: Buffer, length: number, position: number): number {
    const { fd } = this.handles.get(fh, 'write')
    let n = 0
    while (n < length) n += fs.writeSync(fd, buf, n, length - n, position + n)
    return n
  }

  flush (fh: number): void {
    this.handles.get(fh, 'flush')
  }

  fsync (fh: number, datasync: boolean): void {
    const { fd } = this.handles.get(fh, 'fsync')
    if (datasync) fs.fdatasyncSync(fd)
    else fs.fsyncSync(fd)
  }

  /** A handle's descriptor when no copy-up can re-point it: on the writable branch, or in a union without one. */
  backingFd (fh: number): number | undefined {
    let h
    try { h = this.handles.get(fh, 'backing') } catch { return undefined }
    return h.onUpper || !this.hasUpper ? h.fd : undefined
  }

  ftruncate (fh: number, size: number): void {
    fs.ftruncateSync(this.writable(fh, 'ftruncate').fd, size)
  }

  fallocate (fh: number, mode: number, offset: number, length: number): void {
    native.fallocate(this.writable(fh, 'fallocate').fd, mode, offset, length)
  }

  lseek (fh: number, offset: number, whence: number): number {
    return native.lseek(this.handles.get(fh, 'lseek').fd, offset, whence)
  }

  fchmod (fh: number, mode: number): void {
    fs.fchmodSync(this.upperHandle(fh, 'fchmod').fd, mode)
  }

  fchown (fh: number, uid: number, gid: number): void {
    fs.fchownSync(this.upperHandle(fh, 'fchown').fd, uid, gid)
  }

  futimens (fh: number, atime: TimeSpec, mtime: TimeSpec): void {
    native.futimens(this.upperHandle(fh, 'futimens').fd, timeArg(atime), timeArg(mtime))
  }

  fgetxattr (fh: number, name: string): Buffer {
    if (isPrivateXattr(name)) throw fsError('ENODATA', 'fgetxattr')
    return native.fgetxattr(this.handles.get(fh, 'fgetxattr').fd, name)
  }

  flistxattr (fh: number): string[] {
    return native.flistxattr(this.handles.get(fh, 'flistxattr').fd).filter(n => !isPrivateXattr(n))
  }

  fsetxattr (fh: number, name: string, value: Buffer, flags: number): void {
    if (isPrivateXattr(name)) throw fsError('EPERM', 'fsetxattr')
    const fd = this.upperHandle(fh, 'fsetxattr').fd
    this.xattrNames.changed()
    native.fsetxattr(fd, name, value, flags)
  }

  fremovexattr (fh: number, name: string): void {
    if (isPrivateXattr(name)) throw fsError('ENODATA', 'fremovexattr')
    const fd = this.upperHandle(fh, 'fremovexattr').fd
    this.xattrNames.changed()
    native.fremovexattr(fd, name)
  }

  /** A handle opened for writing. */
  private writable (fh: number, syscall: string): Handle {
    const h = this.handles.get(fh, syscall)
    if (!h.writable) throw fsError('EBADF', syscall)
    return h
  }

  /** A handle whose file the union may change: one on the writable branch. */
  private upperHandle (fh: number, syscall: string): Handle {
    const h = this.handles.get(fh, syscall)
    if (!h.onUpper) throw fsError('EROFS', syscall)
    return h
  }
}
