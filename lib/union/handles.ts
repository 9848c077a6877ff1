/**
 * Open file handles: handle number -> the branch file descriptor behind it.
 *
 * A handle opened for reading on a lower branch must not go on reading the
 * old data once another handle wrote the copy-up (the kernel's overlayfs
 * gets this wrong): handles are indexed by union inode number, and after a
 * copy-up every read-only handle of that inode is re-pointed at the copy.
 */
import * as fs from 'node:fs'
import { fsError } from '../errors'

export interface Handle {
  fd: number
  readonly ino: number
  readonly writable: boolean
  /** Served by the writable branch (true after a re-point). */
  onUpper: boolean
}

export class Handles {
  private next = 1
  private readonly byFh = new Map<number, Handle>()
  private readonly byIno = new Map<number, Set<Handle>>()

  add (fd: number, ino: number, writable: boolean, onUpper: boolean): number {
    const h: Handle = { fd, ino, writable, onUpper }
    const fh = this.next++
    this.byFh.set(fh, h)
    let set = this.byIno.get(ino)
    if (set === undefined) this.byIno.set(ino, set = new Set())
    set.add(h)
    return fh
  }

  get (fh: number, syscall: string): Handle {
    const h = this.byFh.get(fh)
    if (h === undefined) throw fsError('EBADF', syscall)
    return h
  }

  release (fh: number): void {
    const h = this.byFh.get(fh)
    if (h === undefined) return
    this.byFh.delete(fh)
    const set = this.byIno.get(h.ino)
    set?.delete(h)
    if (set?.size === 0) this.byIno.delete(h.ino)
    fs.closeSync(h.fd)
  }

  /** Points the lower-branch handles of `ino` at its new upper copy. */
  repoint (ino: number, openUpper: () => number): void {
    for (const h of this.byIno.get(ino) ?? []) {
      if (h.onUpper) continue
      const fd = openUpper()
      fs.closeSync(h.fd)
      h.fd = fd
      h.onUpper = true
    }
  }

  closeAll (): void {
    for (const fh of [...this.byFh.keys()]) this.release(fh)
  }
}
