/**
 * The merged listing of a directory.
 *
 * The directory's stack (from the resolver) is read top to bottom. Each
 * branch contributes its names that no branch above already gave and no
 * whiteout above hid; then its own whiteouts (`.wh.NAME` files, 0/0 char
 * devices) hide NAME in the branches below it. Names starting with `.wh.`
 * (whiteouts, the opaque marker, the work dir) are never listed. The stack
 * already stops at an opaque directory or a non-directory, so the merge
 * never looks past them.
 *
 * Inode numbers: a listed name's st_ino is known only after its lookup
 * (copied-up files carry their origin's number), so an entry the dentry
 * cache does not hold is listed with the "unknown" inode number, as
 * libfuse does; READDIRPLUS and stat give the real one.
 */
import * as fs from 'node:fs'
import type { DirEntry } from './types'
import type { Entry, Resolver } from './resolve'
import { childRel } from './paths'
import { WH_PREFIX, isWhiteoutStat } from './whiteouts'

export const UNKNOWN_INO = 0xffffffff

function typeBits (d: fs.Dirent): number {
  const c = fs.constants
  if (d.isDirectory()) return c.S_IFDIR
  if (d.isFile()) return c.S_IFREG
  if (d.isSymbolicLink()) return c.S_IFLNK
  if (d.isCharacterDevice()) return c.S_IFCHR
  if (d.isBlockDevice()) return c.S_IFBLK
  if (d.isFIFO()) return c.S_IFIFO
  if (d.isSocket()) return c.S_IFSOCK
  return 0
}

export function mergedListing (resolver: Resolver, dir: Entry): DirEntry[] {
  const out: DirEntry[] = []
  const seen = new Set<string>()
  const hidden = new Set<string>()
  for (const { layer, rel } of dir.dirs) {
    const branch = resolver.layers[layer]
    const whiteouts: string[] = []
    for (const d of branch.readdir(rel)) {
      const name = d.name
      if (name.startsWith(WH_PREFIX)) {
        if (!d.isDirectory()) whiteouts.push(name.slice(WH_PREFIX.length))
        continue
      }
      if (d.isCharacterDevice()) {
        const st = branch.lstat(childRel(rel, name))
        if (st !== undefined && isWhiteoutStat(st)) { whiteouts.push(name); continue }
      }
      if (seen.has(name) || hidden.has(name)) continue
      seen.add(name)
      out.push({ name, ino: UNKNOWN_INO, type: typeBits(d) })
    }
    for (const name of whiteouts) hidden.add(name)
  }
  const cache = resolver.cache
  for (const e of out) {
    const hit = cache.peek(childRel(dir.path, e.name))
    if (hit) e.ino = hit.ino
  }
  return out
}
