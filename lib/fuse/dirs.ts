/**
 * Directory handles: OPENDIR takes a snapshot of the merged listing, and
 * READDIR / READDIRPLUS page through it.
 *
 * The snapshot starts with '.' and '..', so a directory offset is simply an
 * index into it: the entry at index i carries offset i + 1 (where the next
 * READDIR resumes). Pages stay consistent however the directory changes
 * meanwhile. A READDIR at offset 0 after the handle was already read (a
 * rewinddir) takes a fresh snapshot, as POSIX asks of rewinddir.
 */
import type { DirEntry } from '../union/types'

const S_IFDIR = 0o040000

export interface DirHandle {
  entries: DirEntry[]
  /** True once a READDIR has returned entries from this snapshot. */
  consumed: boolean
  /** READDIRPLUS pages of this handle carry attributes; decided at its first (listing-attrs.ts). */
  attrs?: boolean
}

export function snapshot (list: readonly DirEntry[], selfIno: number, parentIno: number): DirEntry[] {
  const entries: DirEntry[] = new Array(list.length + 2)
  entries[0] = { name: '.', ino: selfIno, type: S_IFDIR }
  entries[1] = { name: '..', ino: parentIno, type: S_IFDIR }
  for (let i = 0; i < list.length; i++) entries[i + 2] = list[i]
  return entries
}

export class DirHandles {
  private readonly handles = new Map<number, DirHandle>()
  private next = 1

  open (entries: DirEntry[]): number {
    const fh = this.next++
    this.handles.set(fh, { entries, consumed: false })
    return fh
  }

  get (fh: number): DirHandle | undefined {
    return this.handles.get(fh)
  }

  release (fh: number): void {
    this.handles.delete(fh)
  }

  get size (): number {
    return this.handles.size
  }
}
