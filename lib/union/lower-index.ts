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

  /**
   * One readdir per branch directory, top first. Most names occur once, so
   * they share one occurrence array per (position, kind), copied when a
   * second occurrence comes: a fresh daemon's first walk builds an index
   * per directory, and an array and an object per name made a fifth of it.
   */
  private build (stack: readonly StackDir[]): DirIndex {
    const names = new Map<string, readonly Occurrence[]>()
    const listing: Listed[] = []
    const hidden = new Set<string>()
    stack.forEach(({ layer, rel }, pos) => {
      const branch = this.layers[layer]
      const once = onceAt(pos)
      const whiteouts: string[] = []
      for (const d of branch.readdir(rel)) {
        let name = d.name
        const type = typeBits(d)
        let kind: OccurrenceKind
        if (name.startsWith(WH_PREFIX)) {
          if (type === S_IFDIR) continue // a stray `.wh.` directory means nothing
          name = name.slice(WH_PREFIX.length)
          if (name.startsWith(WH_PREFIX)) continue // `.wh..wh..opq` and other markers
          kind = 'whiteout'
        } else if (type === S_IFCHR && isWhiteoutDevice(branch, childRel(rel, name))) {
          kind = 'whiteout'
        } else {
          kind = type === S_IFDIR ? 'dir' : 'other'
        }
        const occ = names.get(name)
        if (occ === undefined) {
          names.set(name, once[kind])
          if (kind === 'whiteout') whiteouts.push(name)
          else if (!hidden.has(name)) listing.push({ name, type })
          continue
        }
        const last = occ[occ.length - 1]
        if (last.pos === pos) {
          // An entry and an AUFS whiteout of one name in one branch: the entry
          // counts (listed unless a branch above listed or hid it).
          if (last.kind !== 'whiteout' || kind === 'whiteout') continue
          names.set(name, [...occ.slice(0, -1), { pos, kind }])
        } else {
          names.set(name, [...occ, { pos, kind }])
        }
        if (kind === 'whiteout') whiteouts.push(name)
        else if (!hidden.has(name) && !occ.some((o) => o.kind !== 'whiteout')) listing.push({ name, type })
      }
      // A whiteout hides its name in the branches below. (Where this branch
      // has the name too, it was listed here or hidden from above already:
      // hiding it below changes nothing.)
      for (const name of whiteouts) hidden.add(name)
    })
    return { names, listing }
  }
}

const { S_IFDIR, S_IFCHR } = fs.constants
const ONCE: Array<Record<OccurrenceKind, readonly Occurrence[]>> = []

/** The shared arrays of a name that occurs once, at stack position `pos`. */
function onceAt (pos: number): Record<OccurrenceKind, readonly Occurrence[]> {
  while (ONCE.length <= pos) {
    const p = ONCE.length
    const one = (kind: OccurrenceKind): readonly Occurrence[] => Object.freeze([Object.freeze({ pos: p, kind })])
    ONCE.push({ dir: one('dir'), other: one('other'), whiteout: one('whiteout') })
  }
  return ONCE[pos]
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
  if (d.isFile()) return c.S_IFREG
  if (d.isDirectory()) return c.S_IFDIR
  if (d.isSymbolicLink()) return c.S_IFLNK
  if (d.isCharacterDevice()) return c.S_IFCHR
  if (d.isBlockDevice()) return c.S_IFBLK
  if (d.isFIFO()) return c.S_IFIFO
  if (d.isSocket()) return c.S_IFSOCK
  return 0
}
