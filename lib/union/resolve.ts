/**
 * Lookup order. This header is the spec the code below follows.
 *
 * Branches are ordered top (layer 0; the writable branch when there is one)
 * to bottom. A union path is resolved one name at a time, from the root:
 *
 *  1. The root is the stack of every branch's root directory, top to bottom,
 *     cut after the first root that is opaque.
 *  2. A child NAME of a directory is looked for in each branch of the
 *     directory's stack, in order:
 *       - the branch has NAME as a whiteout (char device 0/0), or has no
 *         NAME but an AUFS whiteout `.wh.NAME`: NAME is hidden here and
 *         below; stop;
 *       - the branch has no NAME: go on to the next branch (only "not
 *         found" falls through; EACCES, ELOOP, EIO... are the answer);
 *       - NAME is a non-directory: if nothing was found above, it is the
 *         answer; below a directory it is hidden; stop either way;
 *       - NAME is a directory: it joins the child's stack (if the first
 *         thing found was a non-directory, it is hidden and we stopped);
 *         if it is opaque, stop; if it carries a redirect, the branches
 *         below it are searched at the redirect's path instead, and we stop
 *         walking this directory's stack.
 *  3. Names starting with `.wh.` exist nowhere.
 *
 * The result, an Entry, says which branch serves the path (`top`), and for a
 * directory the stack of branch directories merged into it (`dirs`), each
 * with its own branch-relative path (they differ below a redirect). Every
 * path handed to a branch is one whose parents were seen to be real
 * directories in that branch, so symlinks in a branch are never followed.
 *
 * Results, positive and negative, go through the dentry cache. The
 * read-only part of a deep stack is searched through its index
 * (lower-index.ts), which answers rule 2 from one readdir per directory.
 */
import type * as fs from 'node:fs'
import type { ReadonlyBranch } from '../branch/branch'
import { DentryCache } from '../cache/dentry-cache'
import { fsError } from '../errors'
import { decodeOrigin, originXattr, unionIno } from './inodes'
import type { LowerIndex, OccurrenceKind } from './lower-index'
import { childRel, parentOf, baseName } from './paths'
import { dirMarks, hasAufsWhiteout, isReservedName, isWhiteoutStat } from './whiteouts'

/**
 * A lower stack this deep is indexed on its first lookup; a shallower one
 * only once a listing has read it anyway. One readdir per branch directory
 * beats two lstat calls per branch and name as soon as a directory is
 * looked up more than a few times, which is the deep-stack case.
 */
const INDEX_MIN_DEPTH = 2

interface Probe {
  readonly layer: number
  readonly rel: string
  readonly kind: OccurrenceKind
  readonly stat?: fs.BigIntStats
}

export interface Layered {
  readonly layer: number
  readonly rel: string
}

export interface Entry {
  readonly path: string
  readonly isDir: boolean
  /** The serving branch entry. */
  readonly top: Layered
  /** Directory: the merged stack, top first. Non-directory: [top]. */
  readonly dirs: readonly Layered[]
  /** lstat of the serving entry when it was resolved. */
  readonly stat: fs.BigIntStats
  readonly ino: number
}

export class Resolver {
  constructor (
    readonly layers: readonly ReadonlyBranch[],
    readonly cache: DentryCache<Entry>,
    /** Namespace of the private xattrs ('trusted' or 'user'). */
    private readonly ns: string,
    /** Does layer 0 record origins (is it the writable branch)? */
    private readonly topIsWritable: boolean,
    /** Indexes of read-only directory stacks; none when caching is off. */
    readonly lowerIndex?: LowerIndex
  ) {}

  /** The entry at `path`, or undefined when it exists nowhere. */
  lookup (path: string): Entry | undefined {
    return this.lookupFrom(path, 0)
  }

  /** Like lookup, but throws ENOENT (or ENOTDIR for a non-directory parent). */
  get (path: string, syscall: string): Entry {
    const e = this.lookup(path)
    if (e === undefined) throw fsError(this.parentIsNotDir(path) ? 'ENOTDIR' : 'ENOENT', syscall, path)
    return e
  }

  /**
   * Resolves `path` in branches `from` and below only: the lower content of a
   * redirected directory, or "what would show if the top branch had nothing".
   */
  lookupFrom (path: string, from: number): Entry | undefined {
    const key = from === 0 ? path : `${from}:${path}`
    const cached = this.cache.get(key)
    if (cached !== undefined) return cached ?? undefined
    let entry: Entry | undefined
    if (path === '/') {
      entry = this.root(from)
    } else {
      const parent = this.lookupFrom(parentOf(path), from)
      entry = parent?.isDir === true ? this.child(parent, baseName(path)) : undefined
    }
    this.cache.set(key, entry ?? null)
    return entry
  }

  /** Resolves NAME in `parent`'s stack (uncached: the caller caches). */
  child (parent: Entry, name: string, stack: readonly Layered[] = parent.dirs): Entry | undefined {
    // `.` and `..` never reach a branch: `root + '/a/..'` would leave it.
    if (isReservedName(name) || name === '.' || name === '..') return undefined
    const path = childRel(parent.path, name)
    const found: Layered[] = []
    let first: fs.BigIntStats | undefined
    for (const probe of this.probes(stack, name)) {
      if (probe.kind === 'whiteout') break
      const { layer, rel } = probe
      if (probe.kind === 'other') {
        if (first !== undefined) break
        const st = probe.stat ?? this.layers[layer].lstat(rel)
        if (st === undefined) continue // gone behind the mount's back
        return this.entry(path, false, [{ layer, rel }], st)
      }
      if (first === undefined) {
        first = probe.stat ?? this.layers[layer].lstat(rel)
        if (first === undefined) continue
      }
      found.push({ layer, rel })
      // Opacity and redirects say what to do with the branches below: the
      // bottom branch's marks change nothing, and reading them would cost
      // two system calls per directory of a one-layer union.
      if (layer === this.layers.length - 1) break
      const marks = dirMarks(this.layers[layer], rel, this.ns)
      if (marks.opaque) break
      if (marks.redirect !== undefined) {
        const below = this.lookupFrom(marks.redirect, layer + 1)
        if (below?.isDir === true) found.push(...below.dirs)
        break
      }
    }
    if (first === undefined) return undefined
    return this.entry(path, true, found, first)
  }

  /**
   * Where NAME occurs in a directory stack, top first: each branch directory
   * probed with lstat (and `.wh.NAME` when absent), or, for the read-only
   * rest of a stack that is deep or already listed, from its index.
   */
  private * probes (stack: readonly Layered[], name: string): Generator<Probe> {
    for (let i = 0; i < stack.length; i++) {
      const { layer, rel } = stack[i]
      if (layer > 0 && this.indexed(stack, i)) {
        const lower = stack.slice(i)
        for (const occ of this.lowerIndex!.get(lower).names.get(name) ?? []) {
          const d = lower[occ.pos]
          yield { layer: d.layer, rel: childRel(d.rel, name), kind: occ.kind }
        }
        return
      }
      const branch = this.layers[layer]
      const crel = childRel(rel, name)
      const st = branch.lstat(crel)
      if (st === undefined) {
        if (hasAufsWhiteout(branch, rel, name)) yield { layer, rel: crel, kind: 'whiteout' }
        continue
      }
      const kind = isWhiteoutStat(st) ? 'whiteout' : st.isDirectory() ? 'dir' : 'other'
      yield { layer, rel: crel, kind, stat: st }
    }
  }

  /** Is the read-only rest of `stack` from `i` on worth (or already) indexed? */
  private indexed (stack: readonly Layered[], i: number): boolean {
    if (this.lowerIndex === undefined) return false
    return stack.length - i >= INDEX_MIN_DEPTH || this.lowerIndex.peek(stack.slice(i)) !== undefined
  }

  /**
   * `e` once copy-up has moved its copy into the top branch (`stat`: the
   * copy's lstat), cached in its place. It is what a lookup would find
   * again, without its five system calls: layer 0 serves it under its union
   * path, a directory keeps its stack below (a copy is neither opaque nor
   * redirected), and the inode number is `e`'s where the copy records it as
   * its origin (`origin`), else the copy's own.
   */
  copiedUp (e: Entry, stat: fs.BigIntStats, origin: boolean): Entry {
    const top = { layer: 0, rel: e.path }
    const ino = origin ? e.ino : unionIno(0, Number(stat.ino))
    const entry: Entry = { path: e.path, isDir: e.isDir, top, dirs: e.isDir ? [top, ...e.dirs] : [top], stat, ino }
    this.cache.set(e.path, entry)
    return entry
  }

  /** Does some branch below the top serve NAME in `parent`? */
  existsBelowTop (parent: Entry, name: string): boolean {
    const stack = parent.dirs.filter(d => d.layer > 0)
    return stack.length > 0 && this.child(parent, name, stack) !== undefined
  }

  /**
   * The root: every branch root from `from` down, cut after an opaque one. A
   * branch whose root vanished while mounted drops out of the stack, so the
   * others keep serving.
   */
  private root (from: number): Entry {
    const dirs: Layered[] = []
    let st: fs.BigIntStats | undefined
    for (let layer = from; layer < this.layers.length; layer++) {
      const branch = this.layers[layer]
      const here = branch.lstat('/')
      if (here === undefined || !here.isDirectory()) continue
      st ??= here
      dirs.push({ layer, rel: '/' })
      if (dirMarks(branch, '/', this.ns).opaque) break
    }
    if (st === undefined) throw fsError('ENOENT', 'lstat', this.layers[from].root, 'every branch root is gone')
    return this.entry('/', true, dirs, st)
  }

  private entry (path: string, isDir: boolean, dirs: Layered[], stat: fs.BigIntStats): Entry {
    const top = dirs[0]
    let ino = unionIno(top.layer, Number(stat.ino))
    if (top.layer === 0 && this.topIsWritable) {
      ino = decodeOrigin(this.layers[0].getxattr(top.rel, originXattr(this.ns))) ?? ino
    }
    return { path, isDir, top, dirs, stat, ino }
  }

  private parentIsNotDir (path: string): boolean {
    if (path === '/') return false
    const parent = this.lookup(parentOf(path))
    return parent !== undefined && !parent.isDir
  }
}
