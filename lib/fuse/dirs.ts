/**
 * Directory listings: a snapshot of the merged listing, which READDIR and
 * READDIRPLUS page through. The snapshot starts with '.' and '..', and
 * each entry carries the offset where the next READDIR resumes: its index
 * + 1, plus the listing's number in the high bits (offsetOf). Pages stay
 * consistent however the directory changes meanwhile.
 *
 * A READDIR finds its snapshot one of two ways:
 * - By handle: OPENDIR takes the snapshot and answers its handle number
 *   (fh); the listing's number is 0. A READDIR at offset 0 after the
 *   handle was read from (a rewinddir) takes a fresh snapshot, as POSIX
 *   asks of rewinddir.
 * - By offset, once OPENDIR was answered with ENOSYS (where the kernel
 *   says it can do without, NO_OPENDIR_SUPPORT): the kernel then opens
 *   directories without asking, sends READDIR with fh 0 and no
 *   RELEASEDIR. Each READDIR at offset 0 takes a snapshot under a new
 *   number, so a reader's next READDIR names its own snapshot, also while
 *   others read the same directory. Nothing says when a reader is done
 *   but reading to the end: a snapshot is dropped then, or when newer ones
 *   push it out (more than MAX_LISTINGS, or MAX_KEPT_ENTRIES entries in
 *   all: readers that stop early must not pile up memory). An offset
 *   naming a dropped one resumes at the same index of a fresh snapshot
 *   (entries added or removed before that index meanwhile may then be
 *   missed or seen twice).
 */
import type { DirEntry } from '../union/types'

const S_IFDIR = 0o040000

/** Offsets: listing number * INDEX_SPAN + index + 1, below 2^53 so they stay exact in a double. */
const INDEX_SPAN = 2 ** 32
const LISTING_NUMBERS = 2 ** 21

/** Listings read without a handle that are kept at once (the oldest goes first)... */
export const MAX_LISTINGS = 1024
/** ...and their entries in all (the newest listing is kept whatever its size). */
export const MAX_KEPT_ENTRIES = 2 ** 18

export interface Listing {
  readonly nodeid: number
  entries: DirEntry[]
  /** 0 for a handle's snapshot, else the number its offsets carry. */
  readonly number: number
  /** True once a READDIR has returned entries from it. */
  consumed: boolean
  /** READDIRPLUS pages carry attributes; decided at its first (listing-attrs.ts). */
  attrs?: boolean
}

/** The offset entry `index` of `listing` carries: where the next READDIR resumes. */
export function offsetOf (listing: Listing, index: number): number {
  return listing.number * INDEX_SPAN + index + 1
}

export function snapshot (list: readonly DirEntry[], selfIno: number, parentIno: number): DirEntry[] {
  const entries: DirEntry[] = new Array(list.length + 2)
  entries[0] = { name: '.', ino: selfIno, type: S_IFDIR }
  entries[1] = { name: '..', ino: parentIno, type: S_IFDIR }
  for (let i = 0; i < list.length; i++) entries[i + 2] = list[i]
  return entries
}

/** Where a READDIR resumes: the listing, and the index of the first entry to send. */
export interface Cursor {
  listing: Listing
  index: number
}

export class DirHandles {
  private readonly handles = new Map<number, Listing>()
  private nextFh = 1
  private readonly kept = new Map<number, Listing>()
  private keptEntries = 0
  private nextNumber = 1

  constructor (private readonly maxListings = MAX_LISTINGS, private readonly maxEntries = MAX_KEPT_ENTRIES) {}

  open (nodeid: number, entries: DirEntry[]): number {
    const fh = this.nextFh++
    this.handles.set(fh, { nodeid, entries, number: 0, consumed: false })
    return fh
  }

  release (fh: number): void {
    this.handles.delete(fh)
  }

  /**
   * The cursor of a READDIR on handle `fh` at `offset`, or undefined (no
   * such handle). `fresh` lists the directory again, for a rewind.
   */
  async onHandle (fh: number, offset: number, fresh: () => Promise<DirEntry[]>): Promise<Cursor | undefined> {
    const d = this.handles.get(fh)
    if (d === undefined) return undefined
    if (offset === 0 && d.consumed) {
      d.entries = await fresh()
      d.consumed = false
      d.attrs = undefined
    }
    return { listing: d, index: offset }
  }

  /**
   * The cursor of a READDIR without a handle on directory `nodeid` at
   * `offset`: a new listing from `fresh` at offset 0, or when the offset's
   * listing is no longer kept (or is another directory's).
   */
  async byOffset (nodeid: number, offset: number, fresh: () => Promise<DirEntry[]>): Promise<Cursor> {
    const index = offset % INDEX_SPAN
    if (offset !== 0) {
      const k = this.kept.get(Math.floor(offset / INDEX_SPAN))
      if (k !== undefined && k.nodeid === nodeid) return { listing: k, index }
    }
    return { listing: this.keep(nodeid, await fresh()), index }
  }

  /** A page of the entries [start, end) of `listing` is answered; an empty one ends a kept listing. */
  paged (listing: Listing, start: number, end: number): void {
    if (end > start) listing.consumed = true
    else if (listing.number !== 0) this.drop(listing.number)
  }

  private keep (nodeid: number, entries: DirEntry[]): Listing {
    const number = this.nextNumber
    this.nextNumber = number + 1 < LISTING_NUMBERS ? number + 1 : 1
    this.drop(number) // a number come round again: its old listing goes
    const k: Listing = { nodeid, entries, number, consumed: false }
    this.kept.set(number, k)
    this.keptEntries += entries.length
    while (this.kept.size > this.maxListings || (this.keptEntries > this.maxEntries && this.kept.size > 1)) {
      this.drop(this.kept.keys().next().value as number)
    }
    return k
  }

  private drop (number: number): void {
    const k = this.kept.get(number)
    if (k === undefined) return
    this.kept.delete(number)
    this.keptEntries -= k.entries.length
  }

  /** Open handles and listings being read without one. */
  get size (): number {
    return this.handles.size + this.kept.size
  }
}
