/**
 * Directory ops: OPENDIR, READDIR, READDIRPLUS, RELEASEDIR, FSYNCDIR.
 *
 * READDIR pages through a snapshot of the merged listing (dirs.ts), which
 * OPENDIR takes, or, where OPENDIR is not asked, the READDIR at offset 0.
 * A page holds as many whole records as fit in the size the kernel asked
 * for.
 *
 * READDIRPLUS also answers, for every entry but '.' and '..', what LOOKUP
 * would: each entry sent with a node id counts one lookup (the kernel links
 * every entry of the reply, or forgets what it cannot link). An entry whose
 * getattr fails (it vanished since the snapshot) is sent with node id 0,
 * which the kernel takes as "no attributes" and does not count; so is
 * every entry but the subdirectories of a listing that listing-attrs.ts
 * says goes without attributes (a walker descending into a subdirectory
 * would look it up: its attributes save that round trip).
 */
import { constants } from 'node:fs'
import { fsError } from '../errors'
import type { DirEntry } from '../union/types'
import { direntPlusSize, direntSize, direntType, timeout, type Decoder } from './codec'
import { offsetOf, snapshot, type Cursor, type Listing } from './dirs'
import { joinPath, parentPath } from './nodes'
import { attrOfNode } from './ops-node'
import { entryFor, kernelKeeps, noArgs, op, type EntryResult, type OpContext } from './op-context'
import { Fopen } from './protocol'

const NO_TIME = timeout(0)
const { S_IFMT, S_IFDIR } = constants

async function inoOf (ctx: OpContext, path: string): Promise<number | undefined> {
  const id = ctx.nodes.nodeIdOf(path)
  const known = id !== undefined ? ctx.nodes.get(id)?.ino : undefined
  if (known !== undefined && known !== 0) return known
  try {
    return (await ctx.fs.getattr(path)).ino
  } catch {
    return undefined
  }
}

/** '.', '..' and the merged listing of the directory node `nodeid`. */
async function takeSnapshot (ctx: OpContext, nodeid: number): Promise<DirEntry[]> {
  const node = ctx.nodes.node(nodeid)
  const path = ctx.nodes.path(nodeid)
  const list = await ctx.fs.readdir(path)
  const self = node.ino !== 0 ? node.ino : (await attrOfNode(ctx, node)).ino
  // glibc skips records with d_ino 0: '..' falls back to '.'s number.
  const parent = path === '/' ? self : (await inoOf(ctx, parentPath(path))) ?? self
  return snapshot(list, self, parent)
}

/**
 * Listings may stay in the kernel's page cache whenever it may cache names
 * at all: it serves the next opendir/readdir of the directory from there,
 * and drops it itself when the directory changes through the mount (every
 * create, unlink, rename in it bumps the directory's i_version) or its
 * mtime changes. A union changes a merged listing only through such
 * requests (whiteouts and opaque directories are made by the unlink,
 * rmdir, rename or mkdir of that very name), so the cache stays exact.
 *
 * Then OPENDIR is answered with ENOSYS where the kernel can do without it
 * (ctx.conn.noOpendir): it opens directories itself from then on, with the
 * listing cached (CACHE_DIR and KEEP_CACHE are what it assumes), and a
 * walk saves the OPENDIR and RELEASEDIR round trips of every directory.
 * Otherwise OPENDIR's reply asks for the same caching. With entry timeouts
 * of 0 (cache=off) OPENDIR is answered and asks for none: every readdir
 * comes here.
 */
export const opendirOp = op<undefined, number>({
  decode: noArgs,
  run: async (ctx, h) => {
    if (ctx.conn.noOpendir) throw fsError('ENOSYS', 'opendir')
    return ctx.dirs.open(h.nodeid, await takeSnapshot(ctx, h.nodeid))
  },
  encode: (e, fh, ctx) => {
    e.u64(fh)
    e.u32(kernelKeeps(ctx) ? Fopen.CACHE_DIR | Fopen.KEEP_CACHE : 0)
    e.u32(0)
  },
  sent: (ctx, fh, ok) => { if (!ok) ctx.dirs.release(fh) }
})

interface ReaddirIn { fh: number, offset: number, size: number }

function decodeReaddir (d: Decoder): ReaddirIn {
  const fh = d.u64()
  const offset = d.u64()
  return { fh, offset, size: d.u32() }
}

interface Page {
  listing: Listing
  entries: DirEntry[]
  start: number
  end: number
}

/** Where the READDIR resumes (dirs.ts), and the slice of its listing that fits in `size` bytes. */
async function page (ctx: OpContext, nodeid: number, a: ReaddirIn, sizeOf: (name: string) => number): Promise<Page> {
  const fresh = async (): Promise<DirEntry[]> => await takeSnapshot(ctx, nodeid)
  let at: Cursor | undefined
  if (a.fh !== 0) at = await ctx.dirs.onHandle(a.fh, a.offset, fresh)
  else at = await ctx.dirs.byOffset(nodeid, a.offset, fresh)
  if (at === undefined) throw fsError('EBADF', 'readdir')
  const { listing, index } = at
  const limit = Math.min(a.size, ctx.maxWrite)
  let used = 0
  let end = index
  while (end < listing.entries.length) {
    const n = sizeOf(listing.entries[end].name)
    if (used + n > limit) break
    used += n
    end++
  }
  const start = Math.min(index, end)
  ctx.dirs.paged(listing, start, end)
  return { listing, entries: listing.entries, start, end }
}

export const readdirOp = op<ReaddirIn, Page>({
  decode: decodeReaddir,
  run: async (ctx, h, a) => await page(ctx, h.nodeid, a, direntSize),
  encode: (e, p) => {
    for (let i = p.start; i < p.end; i++) {
      const ent = p.entries[i]
      e.dirent(ent.ino, offsetOf(p.listing, i), direntType(ent.type), ent.name)
    }
  }
})

interface PlusPage extends Page {
  /** Per entry of the page: its lookup, or undefined ('.', '..', failed getattr). */
  found: Array<EntryResult | undefined>
}

function isDir (ent: DirEntry): boolean {
  return (ent.type & S_IFMT) === S_IFDIR
}

/** How many names of a whole listing are not directories ('.' and '..' are). */
function fileCount (entries: DirEntry[]): number {
  let n = 0
  for (const ent of entries) if (!isDir(ent)) n++
  return n
}

function nonDirNames (p: Page): string[] {
  const names: string[] = []
  for (let i = Math.max(p.start, 2); i < p.end; i++) {
    const ent = p.entries[i]
    if (!isDir(ent)) names.push(ent.name)
  }
  return names
}

export const readdirplusOp = op<ReaddirIn, PlusPage>({
  decode: decodeReaddir,
  run: async (ctx, h, a) => {
    const p = await page(ctx, h.nodeid, a, direntPlusSize)
    const all = p.listing.attrs ??= ctx.listingAttrs.choose(h.nodeid, fileCount(p.entries))
    if (!all) ctx.listingAttrs.listed(h.nodeid, nonDirNames(p))
    const found: Array<EntryResult | undefined> = new Array(p.end - p.start).fill(undefined)
    const dir = ctx.nodes.pathOf(h.nodeid)
    if (dir === undefined) return { ...p, found }
    // The page's entries that get attributes, by index.
    const wanted: number[] = []
    for (let i = Math.max(p.start, 2); i < p.end; i++) if (all || isDir(p.entries[i])) wanted.push(i)
    const paths = wanted.map((i) => joinPath(dir, p.entries[i].name))
    const attrs = await Promise.all(paths.map(async (path) => {
      try {
        return await ctx.fs.getattr(path)
      } catch {
        return undefined
      }
    }))
    // Count the lookups only now, after the last await, right before the reply.
    wanted.forEach((i, k) => {
      const attr = attrs[k]
      if (attr !== undefined) found[i - p.start] = entryFor(ctx, paths[k], attr)
    })
    return { ...p, found }
  },
  encode: (e, p, ctx) => {
    for (let i = p.start; i < p.end; i++) {
      const ent = p.entries[i]
      const f = p.found[i - p.start]
      if (f !== undefined) {
        e.entryOut(f.node.id, f.node.generation, f.attr, ctx.entryValid, ctx.attrValid)
        e.dirent(f.attr.ino, offsetOf(p.listing, i), direntType(f.attr.mode), ent.name)
      } else {
        e.entryOut(0, 0, undefined, NO_TIME, NO_TIME)
        e.dirent(ent.ino, offsetOf(p.listing, i), direntType(ent.type), ent.name)
      }
    }
  },
  sent: (ctx, p, ok) => {
    if (ok) return
    for (const f of p.found) if (f !== undefined) ctx.nodes.forget(f.node.id, 1)
  }
})

export const releasedirOp = op<number, void>({
  decode: (d) => d.u64(),
  run: (ctx, _h, fh) => { ctx.dirs.release(fh) }
})

/** Every mutation through the union is durable before its reply: nothing left to sync. */
export const fsyncdirOp = op({ decode: noArgs, run: () => undefined })
