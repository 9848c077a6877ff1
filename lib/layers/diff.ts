/**
 * A writable branch as an OCI layer tarball (the "diff").
 *
 * - Whiteouts, in either dialect on disk, become `.wh.NAME` entries; an
 *   opaque directory (either dialect) becomes its directory entry followed
 *   at once by `DIR/.wh..wh..opq`, ahead of its other children.
 * - The union's private state is left out: `.wh..wh.` names (the work dir,
 *   AUFS's own) and private xattrs (`*.overlay.*`, `*.unionfs-ts.*`).
 * - A directory renamed through the union carries a redirect: its content
 *   partly lives in the branches below, where a tarball cannot point. It is
 *   written whole instead, read through the union core over this branch and
 *   the given lower branches, and marked opaque. Without the lower branches
 *   that is impossible, and the diff says so rather than write a layer that
 *   would lose files.
 * - Deterministic bytes: entries depth first with siblings in byte order of
 *   their tar names, times as recorded on disk (whole seconds), numeric
 *   owners, xattrs in name order; tar-writer.ts fixes every header field.
 *   The same branch gives the same tarball.
 * - Hard links inside the branch are kept: the first name in that order is
 *   the file, the others link to it.
 */
import * as fs from 'node:fs'
import type { Writable } from 'node:stream'
import { readonlyBranch, type ReadonlyBranch } from '../branch/branch'
import type { UnionFs } from '../union/union-fs'
import type { Attr } from '../union/types'
import { childRel } from '../union/paths'
import { aufsWhiteoutName, dirMarks, isMetaName, isPrivateXattr, isReservedName, OPAQUE_MARKER, whiteoutTarget } from '../union/whiteouts'
import { LayerError } from './layer-error'
import { tarName } from './tar-name'
import { metaOf, TarWriter, typeOfMode, type Meta } from './tar-writer'

export interface DiffOptions {
  /** The branches below, top first: needed only to write renamed directories whole. */
  lowers?: readonly string[]
  /** Bytes of file data written so far, for a progress display. */
  onBytes?: (n: number) => void
  /** End `out` when done (default). false for stdout, which is never ended. */
  end?: boolean
}

export interface DiffResult {
  entries: number
  bytes: number
}

/** Writes the branch at `dir` as a layer tarball to `out`. */
export async function diffLayer (dir: string, out: Writable, opts: DiffOptions = {}): Promise<DiffResult> {
  let root: string
  try {
    root = fs.realpathSync(dir)
  } catch (err) {
    throw new LayerError(`${dir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`)
  }
  if (!fs.statSync(root).isDirectory()) throw new LayerError(`${dir}: not a directory`)
  const tw = new TarWriter(out, opts.end ?? true, opts.onBytes)
  const d = new Diff(readonlyBranch(root, 0), tw, opts.lowers)
  try {
    await d.walkBranch('/')
  } catch (err) {
    tw.abort(err as Error)
    throw err
  } finally {
    await d.close()
  }
  await tw.finish()
  return { entries: tw.entries, bytes: tw.bytes }
}

function metaOfAttr (a: Attr): Meta {
  return {
    mode: a.mode & 0o7777,
    uid: a.uid,
    gid: a.gid,
    mtimeSec: Math.floor(a.mtimeMs / 1000),
    size: a.size,
    rdev: BigInt(a.rdev)
  }
}

function byBytes (a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b))
}

interface Item {
  name: string
  tarName: string
  st: fs.BigIntStats
  whiteout: boolean
}

class Diff {
  private union: UnionFs | undefined
  private readonly ns: 'trusted' | 'user' = process.getuid?.() === 0 ? 'trusted' : 'user'

  constructor (private readonly branch: ReadonlyBranch, private readonly tw: TarWriter, private readonly lowers?: readonly string[]) {}

  async close (): Promise<void> {
    if (this.union !== undefined) await this.union.destroy()
  }

  /** Entries below `rel`, a directory of the branch (its own entry already written). */
  async walkBranch (rel: string): Promise<void> {
    const marks = dirMarks(this.branch, rel, this.ns)
    if (marks.opaque) await this.marker(rel)
    const items: Item[] = []
    for (const d of this.branch.readdir(rel)) {
      if (isMetaName(d.name)) continue
      const p = childRel(rel, d.name)
      const st = this.branch.lstat(p)
      if (st === undefined) continue
      const hides = whiteoutTarget(d.name, st)
      if (hides !== undefined) {
        items.push({ name: d.name, tarName: tarName(childRel(rel, aufsWhiteoutName(hides)), false), st, whiteout: true })
      } else if (!isReservedName(d.name)) {
        // (A `.wh.` directory is nothing a union shows: left out.)
        items.push({ name: d.name, tarName: tarName(p, st.isDirectory()), st, whiteout: false })
      }
    }
    items.sort((a, b) => byBytes(a.tarName, b.tarName))
    for (const it of items) {
      const p = childRel(rel, it.name)
      if (it.whiteout) {
        await this.tw.entry({ name: it.tarName, type: 'file', meta: { ...metaOf(it.st), size: 0 } })
        continue
      }
      const type = typeOfMode(Number(it.st.mode))
      if (type === undefined) continue // sockets: not in a layer
      const entry = { name: it.tarName, type, meta: metaOf(it.st), xattrs: this.branchXattrs(p) }
      const linkKey = it.st.nlink > 1n ? `${it.st.dev}:${it.st.ino}` : undefined
      if (type === 'directory') {
        await this.tw.entry(entry)
        if (dirMarks(this.branch, p, this.ns).redirect !== undefined) await this.whole(p)
        else await this.walkBranch(p)
      } else if (type === 'file') {
        const fd = this.branch.openRead(p)
        try {
          await this.tw.file(entry, (buf, len, pos) => fs.readSync(fd, buf, 0, len, pos), linkKey)
        } finally {
          fs.closeSync(fd)
        }
      } else {
        await this.tw.entry({ ...entry, linkname: type === 'symlink' ? this.branch.readlink(p) : undefined }, linkKey)
      }
    }
  }

  /** A renamed directory, written whole from the union's view and marked opaque. */
  private async whole (rel: string): Promise<void> {
    const union = await this.openUnion(rel)
    await this.marker(rel)
    await this.walkUnion(union, rel)
  }

  private async walkUnion (union: UnionFs, rel: string): Promise<void> {
    const items: Array<{ name: string, attr: Attr, tarName: string }> = []
    for (const { name } of await union.readdir(rel)) {
      const p = childRel(rel, name)
      const attr = await union.getattr(p)
      items.push({ name, attr, tarName: tarName(p, typeOfMode(attr.mode) === 'directory') })
    }
    items.sort((a, b) => byBytes(a.tarName, b.tarName))
    for (const it of items) {
      const p = childRel(rel, it.name)
      const type = typeOfMode(it.attr.mode)
      if (type === undefined) continue
      const xattrs: Array<[string, Buffer]> = []
      for (const n of (await union.listxattr(p)).sort(byBytes)) {
        if (isPrivateXattr(n)) continue
        try { xattrs.push([n, await union.getxattr(p, n)]) } catch { /* gone meanwhile */ }
      }
      const entry = { name: it.tarName, type, meta: metaOfAttr(it.attr), xattrs }
      const linkKey = it.attr.nlink > 1 ? `union:${it.attr.ino}` : undefined
      if (type === 'directory') {
        await this.tw.entry(entry)
        await this.walkUnion(union, p)
      } else if (type === 'file') {
        const fh = await union.open(p, fs.constants.O_RDONLY)
        try {
          await this.tw.file(entry, async (buf, len, pos) => await union.read(fh, buf, len, pos), linkKey)
        } finally {
          await union.release(fh)
        }
      } else {
        await this.tw.entry({ ...entry, linkname: type === 'symlink' ? await union.readlink(p) : undefined }, linkKey)
      }
    }
  }

  private async openUnion (rel: string): Promise<UnionFs> {
    if (this.union !== undefined) return this.union
    if (this.lowers === undefined || this.lowers.length === 0) {
      throw new LayerError(`${rel.slice(1)}: a renamed directory whose content is partly in the layers below; give them (--lower L1:L2...) so it can be written whole`)
    }
    const { UnionFs } = await import('../union/union-fs')
    this.union = await UnionFs.open({
      lowers: [this.branch.root, ...this.lowers.map(l => fs.realpathSync(l))],
      whiteout: 'aufs',
      cacheEntries: 4096,
      cacheTtlMs: 0,
      xattrNamespace: this.ns
    })
    return this.union
  }

  /** The opaque marker of `dirRel`: the marker file's metadata, or (overlay dialect) the directory's. */
  private async marker (dirRel: string): Promise<void> {
    const rel = childRel(dirRel, OPAQUE_MARKER)
    const st = this.branch.lstat(rel)
    const dst = this.branch.lstat(dirRel)
    const meta: Meta = st !== undefined && !st.isDirectory()
      ? { ...metaOf(st), size: 0 }
      : { mode: 0o444, uid: Number(dst?.uid ?? 0n), gid: Number(dst?.gid ?? 0n), mtimeSec: dst === undefined ? 0 : metaOf(dst).mtimeSec, size: 0 }
    await this.tw.entry({ name: tarName(rel, false), type: 'file', meta })
  }

  private branchXattrs (rel: string): Array<[string, Buffer]> {
    const out: Array<[string, Buffer]> = []
    for (const n of this.branch.listxattr(rel).sort(byBytes)) {
      if (isPrivateXattr(n)) continue
      const v = this.branch.getxattr(rel, n)
      if (v !== undefined) out.push([n, v])
    }
    return out
  }
}
