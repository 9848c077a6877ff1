/**
 * Directory indexes of the read-only branches: each lower directory stack is
 * read once (one readdir per branch directory) and kept as a map from name
 * to where the name occurs, so a lookup below a deep stack costs a map probe
 * instead of two lstat calls per branch. A name that exists nowhere (the
 * `$PATH` and `import` search case) then costs nothing per layer.
 *
 * Only read-only branches are indexed: they never change through the mount,
 * so an index stays exact for the life of the mount and no mutation has to
 * drop it. The writable branch is always probed directly. (Branches changed
 * behind the mount's back are outside the contract; `cache=off` turns the
 * indexes off along with the dentry cache.)
 *
 * An index is keyed by its stack (which branch directories, in order), not
 * by union path: the same lower directory reached through a redirect shares
 * it. Its size is counted in names and bounded by an LRU.
 *
 * What an index records per name is what the resolver's rule 2 needs, in
 * stack order: the stack position of each branch that has the name, whether
 * it is a directory, another kind of entry, or a whiteout (an AUFS
 * `.wh.NAME`, or a 0/0 device). An entry and an AUFS whiteout of the same
 * name in one branch: the entry counts, as a direct lstat would find it first.
 */
import * as fs from 'node:fs'
import { LRUCache } from 'lru-cache'
import type { ReadonlyBranch } from '../branch/branch'
import { childRel } from './paths'
import { WH_PREFIX, isWhiteoutStat } from './whiteouts'

export type OccurrenceKind = 'dir' | 'other' | 'whiteout'

export interface Occurrence {
  /** Position in the indexed stack. */
  readonly pos: number
  readonly kind: OccurrenceKind
}

/** A name visible in the merged listing of the indexed stack. */
export interface Listed {
  readonly name: string
  /** S_IFMT bits. */
  readonly type: number
}

export interface DirIndex {
  /** name -> occurrences in stack order; names hidden by nothing and absent are missing. */
  readonly names: ReadonlyMap<string, readonly Occurrence[]>
  /** The merged listing of this stack alone, whiteouts applied. */
  readonly listing: readonly Listed[]
}

export interface StackDir {
  readonly layer: number
  readonly rel: string
}

export class LowerIndex {
  private readonly lru: LRUCache<string, DirIndex>

  constructor (private readonly layers: readonly ReadonlyBranch[], maxNames: number) {
    this.lru = new LRUCache<string, DirIndex>({
      maxSize: Math.max(1, maxNames),
      sizeCalculation: (v) => Math.max(1, v.names.size)
    })
  }

  /** The index of a stack of read-only branch directories, built on first use. */
  get (stack: readonly StackDir[]): DirIndex {
    const key = stackKey(stack)
    let index = this.lru.get(key)
    if (index === undefined) {
      index = this.build(stack)
      this.lru.set(key, index)
    }
    return index
  }

  /** The index if it was built already (a listing built it), else undefined. */
  peek (stack: readonly StackDir[]): DirIndex | undefined {
    return this.lru.get(stackKey(stack))
  }

  private build (stack: readonly StackDir[]): DirIndex {
    const names = new Map<string, Occurrence[]>()
    const listing: Listed[] = []
    const listed = new Set<string>()
    const hidden = new Set<string>()
    stack.forEach(({ layer, rel }, pos) => {
      const branch = this.layers[layer]
      const whiteouts: string[] = []
      const here = new Set<string>()
      for (const d of branch.readdir(rel)) {
        let name = d.name
        let kind: OccurrenceKind
        if (name.startsWith(WH_PREFIX)) {
          if (d.isDirectory()) continue // a stray `.wh.` directory means nothing
          name = name.slice(WH_PREFIX.length)
          if (name.startsWith(WH_PREFIX)) continue // `.wh..wh..opq` and other markers
          kind = 'whiteout'
        } else if (d.isCharacterDevice() && isWhiteoutDevice(branch, childRel(rel, name))) {
          kind = 'whiteout'
        } else {
          kind = d.isDirectory() ? 'dir' : 'other'
          here.add(name)
          if (!hidden.has(name) && !listed.has(name)) {
            listed.add(name)
            listing.push({ name, type: typeBits(d) })
          }
        }
        let occ = names.get(name)
        if (occ === undefined) names.set(name, occ = [])
        const last = occ[occ.length - 1]
        if (last?.pos === pos) {
          if (last.kind === 'whiteout' && kind !== 'whiteout') occ[occ.length - 1] = { pos, kind }
        } else {
          occ.push({ pos, kind })
        }
        if (kind === 'whiteout') whiteouts.push(name)
      }
      for (const name of whiteouts) if (!here.has(name)) hidden.add(name)
    })
    return { names, listing }
  }
}

function stackKey (stack: readonly StackDir[]): string {
  let key = ''
  for (const { layer, rel } of stack) key += `${layer}\0${rel}\0`
  return key
}

function isWhiteoutDevice (branch: ReadonlyBranch, rel: string): boolean {
  const st = branch.lstat(rel)
  return st !== undefined && isWhiteoutStat(st)
}

export function typeBits (d: fs.Dirent): number {
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
