/**
 * What a layer changed against the layers below it, as `docker diff` shows
 * it: `A path` added, `C path` changed, `D path` deleted, sorted by path.
 *
 * The layer's own directory is walked; the layers below are read through
 * the union core (read-only, both whiteout dialects), which answers "was
 * this path there before, and how". An entry absent below is A, and so is
 * everything under an added directory; a whiteout is D for its name, and an
 * opaque directory's hidden children that the layer did not put back are D
 * too. A directory present below is C only if its own metadata differs
 * (mode, owner, mtime) or it became opaque (a directory copied up just to
 * hold a changed child keeps the times of the one it shadows), or, as in
 * `docker diff`, a name was added to it or deleted from it. Everything else
 * present below is C.
 */
import * as fs from 'node:fs'
import { readonlyBranch, type ReadonlyBranch } from '../branch/branch'
import type { Attr } from '../union/types'
import type { UnionFs } from '../union/union-fs'
import { childRel } from '../union/paths'
import { dirMarks, isMetaName, whiteoutTarget } from '../union/whiteouts'
import { LayerError } from './layer-error'

export interface Change {
  kind: 'A' | 'C' | 'D'
  /** A byte string (lib/union/paths.ts), as the name is on disk. */
  path: string
}

export async function layerChanges (dir: string, lowers: readonly string[]): Promise<Change[]> {
  let root: string
  try {
    root = fs.realpathSync(dir)
  } catch (err) {
    throw new LayerError(`${dir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`)
  }
  const ns = process.getuid?.() === 0 ? 'trusted' : 'user'
  let below: UnionFs | undefined
  if (lowers.length > 0) {
    const { UnionFs } = await import('../union/union-fs')
    below = await UnionFs.open({
      lowers: lowers.map(l => fs.realpathSync(l)),
      whiteout: 'aufs',
      cacheEntries: 4096,
      cacheTtlMs: 0,
      xattrNamespace: ns
    })
  }
  const out: Change[] = []
  const branch = readonlyBranch(root, 0)
  try {
    await walk(branch, below, '/', false, out, ns)
  } finally {
    await below?.destroy()
  }
  // As `docker diff` does: the directory an entry was added to or deleted
  // from is changed, even where its times were kept.
  const listed = new Set(out.map(c => c.path))
  for (const c of [...out]) {
    if (c.kind === 'C') continue
    const parent = c.path.slice(0, c.path.lastIndexOf('/'))
    if (parent !== '' && !listed.has(parent)) {
      listed.add(parent)
      out.push({ kind: 'C', path: parent })
    }
  }
  // Byte strings sort as their bytes do.
  return out.sort((a, b) => a.path < b.path ? -1 : a.path > b.path ? 1 : 0)
}

async function lowerAttr (below: UnionFs | undefined, p: string): Promise<Attr | undefined> {
  if (below === undefined) return undefined
  try {
    return await below.getattr(p)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined
    throw err
  }
}

async function walk (
  branch: ReadonlyBranch, below: UnionFs | undefined, rel: string, fresh: boolean, out: Change[], ns: 'trusted' | 'user'
): Promise<void> {
  for (const d of branch.readdir(rel)) {
    if (isMetaName(d.name)) continue
    const p = childRel(rel, d.name)
    const st = branch.lstat(p)
    if (st === undefined) continue
    const hides = whiteoutTarget(d.name, st)
    if (hides !== undefined) {
      if (!fresh) out.push({ kind: 'D', path: childRel(rel, hides) })
      continue
    }
    const was = fresh ? undefined : await lowerAttr(below, p)
    if (was === undefined) {
      out.push({ kind: 'A', path: p })
      if (st.isDirectory()) await walk(branch, below, p, true, out, ns)
      continue
    }
    const wasDir = (was.mode & fs.constants.S_IFMT) === fs.constants.S_IFDIR
    if (st.isDirectory() && wasDir) {
      const marks = dirMarks(branch, p, ns)
      const same = Number(st.mode) === was.mode && Number(st.uid) === was.uid && Number(st.gid) === was.gid &&
        (was.mtimeNs === undefined ? Math.floor(Number(st.mtimeNs / 1000n) / 1000) === Math.floor(was.mtimeMs) : st.mtimeNs === was.mtimeNs)
      if (!same || marks.opaque || marks.redirect !== undefined) out.push({ kind: 'C', path: p })
      await walk(branch, below, p, marks.opaque || marks.redirect !== undefined, out, ns)
      if (marks.opaque && below !== undefined) await hiddenBelow(branch, below, p, out)
    } else {
      out.push({ kind: 'C', path: p })
      if (st.isDirectory()) await walk(branch, below, p, true, out, ns)
    }
  }
}

/** The children an opaque directory hides, less those the layer put back. */
async function hiddenBelow (branch: ReadonlyBranch, below: UnionFs, rel: string, out: Change[]): Promise<void> {
  let names: string[]
  try {
    names = (await below.readdir(rel)).map(e => e.name)
  } catch {
    return
  }
  for (const name of names) {
    const st = branch.lstat(childRel(rel, name))
    if (st === undefined || whiteoutTarget(name, st) !== undefined) out.push({ kind: 'D', path: childRel(rel, name) })
  }
}
