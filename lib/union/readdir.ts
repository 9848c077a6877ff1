/**
 * The merged listing of a directory.
 *
 * The directory's stack (from the resolver) is read top to bottom. Each
 * branch contributes its names that no branch above already gave and no
 * whiteout above hid; then its own whiteouts (`.wh.NAME` files, 0/0 char
 * devices) hide NAME in the branches below it. Names starting with `.wh.`
 * (whiteouts, the opaque marker, the work dir) are never listed. The stack
 * already stops at an opaque directory or a non-directory, so the merge
 * never looks past them. The read-only rest of a stack is merged once,
 * by its index (lower-index.ts), and reused.
 *
 * Inode numbers: a listed name's st_ino is known only after its lookup
 * (copied-up files carry their origin's number), so an entry the dentry
 * cache does not hold is listed with the "unknown" inode number, as
 * libfuse does; READDIRPLUS and stat give the real one.
 */
import type { DirEntry } from './types'
import type { Entry, Resolver } from './resolve'
import { typeBits } from './lower-index'
import { childRel } from './paths'
import { WH_PREFIX, isWhiteoutStat } from './whiteouts'

export const UNKNOWN_INO = 0xffffffff

export function mergedListing (resolver: Resolver, dir: Entry): DirEntry[] {
  const out: DirEntry[] = []
  const seen = new Set<string>()
  const hidden = new Set<string>()
  const add = (name: string, type: number): void => {
    if (seen.has(name) || hidden.has(name)) return
    seen.add(name)
    out.push({ name, ino: UNKNOWN_INO, type })
  }
  const stack = dir.dirs
  for (let i = 0; i < stack.length; i++) {
    const { layer, rel } = stack[i]
    if (layer > 0 && resolver.lowerIndex !== undefined) {
      // The read-only rest of the stack, merged once and kept (and the
      // lookups that follow a listing find their index built).
      const listing = resolver.lowerIndex.get(stack.slice(i)).listing
      if (out.length === 0 && hidden.size === 0) {
        // Nothing above it (no upper directory): its names are unique already.
        for (const e of listing) out.push({ name: e.name, ino: UNKNOWN_INO, type: e.type })
      } else {
        for (const e of listing) add(e.name, e.type)
      }
      break
    }
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
      add(name, typeBits(d))
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
