/**
 * The layer store, in the layout of Docker's AUFS storage driver:
 *
 *   ROOT/diff/<id>/     the layer's own content: a branch directory
 *   ROOT/layers/<id>    its parent chain, nearest first, one id a line
 *                       (empty for a base layer); a layer exists when
 *                       this file does
 *   ROOT/mnt/<id>/      its default mountpoint
 *
 * and, beside them, what images and containers need (image.ts,
 * container.ts): ROOT/images/, ROOT/repositories.json, ROOT/containers/.
 *
 * The graphdriver contract maps onto it: Create (a diff dir, a mountpoint,
 * then the layers file, written last and renamed into place), ApplyDiff
 * (apply.ts into diff/<id>), Get/Put (a union of diff/<id> writable over its
 * parents' diff dirs, mounted through the command line's own mount code;
 * this module only describes it), Diff (diff.ts), Changes (changes.ts),
 * DiffSize, Exists, Remove.
 *
 * Mounts are found, not recorded: a store mount's source (fsname) is the
 * real path of its diff dir, so /proc/self/mountinfo says which layers are
 * in use and where, and nothing goes stale when a mount dies.
 *
 * Removal is crash-safe: diff/<id>, layers/<id> and mnt/<id> are first
 * renamed to `<id>-removing` (each rename atomic; the diff dir first, so a
 * layer never looks whole once its removal has begun), then deleted. What a
 * crash leaves, and staging dirs of imports whose process is gone, are swept
 * whenever the store is opened. A layer mounted, or the parent of another,
 * is not removed.
 *
 * Concurrency: commands on different layers may run at once; two commands
 * changing the same layer at the same moment are not guarded against.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import type { Writable } from 'node:stream'
import { readMountInfo } from '../mountinfo'
import { FSTYPE, type MountSpec } from '../options'
import { applyLayer, type ApplyOptions, type ApplyResult } from './apply'
import { layerChanges, type Change } from './changes'
import { diffLayer, type DiffResult } from './diff'
import { LayerError } from './layer-error'

const REMOVING = '-removing'
const IMPORTING = '-importing-'
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/

/** The store root when none is given: $UNIONFS_TS_STORE, else a per-user default. */
export function defaultRoot (): string {
  const env = process.env.UNIONFS_TS_STORE
  if (env !== undefined && env !== '') return env
  if (process.getuid?.() === 0) return '/var/lib/unionfs-ts'
  const data = process.env.XDG_DATA_HOME ?? path.join(process.env.HOME ?? '/tmp', '.local', 'share')
  return path.join(data, 'unionfs-ts')
}

export function checkId (id: string, what = 'layer id'): void {
  if (!ID_RE.test(id) || id.endsWith(REMOVING) || id.includes(IMPORTING)) {
    throw new LayerError(`${what} '${id}': use letters, digits, '.', '_' and '-' (at most 128, not ending in ${REMOVING})`)
  }
}

export interface LayerInfo {
  id: string
  /** Parent chain, nearest first. */
  parents: string[]
}

export class LayerStore {
  private constructor (readonly root: string) {}

  /** Opens (with `create`, makes) the store at `root` and sweeps leftovers. */
  static open (root: string, create = true): LayerStore {
    const abs = path.resolve(root)
    if (!fs.existsSync(path.join(abs, 'layers'))) {
      if (!create) throw new LayerError(`${root}: not a layer store`)
      for (const d of ['', 'diff', 'layers', 'mnt']) fs.mkdirSync(path.join(abs, d), { recursive: true, mode: 0o700 })
      fs.chmodSync(abs, 0o700)
    }
    const store = new LayerStore(fs.realpathSync(abs))
    store.sweep()
    return store
  }

  diffDir (id: string): string { return path.join(this.root, 'diff', id) }
  mntDir (id: string): string { return path.join(this.root, 'mnt', id) }
  private layersFile (id: string): string { return path.join(this.root, 'layers', id) }

  exists (id: string): boolean {
    return ID_RE.test(id) && fs.existsSync(this.layersFile(id)) && fs.existsSync(this.diffDir(id))
  }

  /** The parent chain of `id`, nearest first. */
  parents (id: string): string[] {
    this.need(id)
    return fs.readFileSync(this.layersFile(id), 'utf8').split('\n').filter(s => s !== '')
  }

  list (): LayerInfo[] {
    return fs.readdirSync(path.join(this.root, 'layers'))
      .filter(id => this.exists(id))
      .sort()
      .map(id => ({ id, parents: this.parents(id) }))
  }

  /** Layers whose nearest parent is `id`. */
  children (id: string): string[] {
    return this.list().filter(l => l.parents[0] === id).map(l => l.id)
  }

  create (id: string, parent?: string): void {
    checkId(id)
    if (this.exists(id)) throw new LayerError(`layer ${id} already exists`)
    const chain = parent === undefined ? [] : [parent, ...this.parents(parent)]
    this.makeDirs(id)
    this.writeChain(id, chain)
  }

  /**
   * Makes layer `id` from an already filled directory (an import's staging
   * dir, renamed into place): the same steps as create, the content first.
   */
  adopt (id: string, staged: string, parent?: string): void {
    checkId(id)
    if (this.exists(id)) throw new LayerError(`layer ${id} already exists`)
    const chain = parent === undefined ? [] : [parent, ...this.parents(parent)]
    fs.rmSync(this.diffDir(id), { recursive: true, force: true })
    fs.renameSync(staged, this.diffDir(id))
    this.makeDirs(id)
    this.writeChain(id, chain)
  }

  /** A fresh staging directory for content that will become a layer (swept if this process dies). */
  staging (id: string): string {
    const dir = path.join(this.root, 'diff', `${id}${IMPORTING}${process.pid}`)
    fs.rmSync(dir, { recursive: true, force: true })
    fs.mkdirSync(dir, { mode: 0o755 })
    fs.chmodSync(dir, 0o755)
    return dir
  }

  /** Mountpoints where layer `id` is mounted (as the top of a store mount). */
  mounts (id: string): string[] {
    let source: string
    try { source = fs.realpathSync(this.diffDir(id)) } catch { return [] }
    return readMountInfo().filter(m => m.fstype === FSTYPE && m.source === source).map(m => m.mountpoint)
  }

  /**
   * How to mount layer `id`: its diff dir writable (or, with `readOnly`,
   * read-only) over its parents', AUFS dialect, on `mnt` (default
   * ROOT/mnt/<id>). The caller mounts it the way `unionfs-ts mount` does.
   */
  mountSpec (id: string, mnt?: string, readOnly = false): MountSpec {
    const parents = this.parents(id)
    const at = this.mounts(id)
    if (at.length > 0) throw new LayerError(`layer ${id} is already mounted at ${at[0]}`)
    if (!readOnly) {
      const kids = this.children(id)
      if (kids.length > 0) throw new LayerError(`layer ${id} is the parent of ${kids.join(', ')}: writing it would change them (mount it with --ro)`)
    }
    const mountpoint = mnt ?? this.mntDir(id)
    if (mnt === undefined) fs.mkdirSync(mountpoint, { recursive: true, mode: 0o755 })
    const top = fs.realpathSync(this.diffDir(id))
    return {
      branches: [{ path: top, mode: readOnly ? 'ro' : 'rw' }, ...parents.map(p => ({ path: this.diffDir(p), mode: 'ro' as const }))],
      mountpoint,
      whiteout: 'aufs',
      fsname: top
    }
  }

  /** Applies a layer tarball to the layer's own directory (AUFS dialect unless told). */
  async apply (id: string, source: AsyncIterable<Buffer>, opts: Partial<ApplyOptions> = {}): Promise<ApplyResult> {
    this.need(id)
    this.notInUse(id, 'apply a layer to it')
    return await applyLayer(source, this.diffDir(id), { ...opts, whiteout: opts.whiteout ?? 'aufs' })
  }

  async diff (id: string, out: Writable, onBytes?: (n: number) => void, end = true): Promise<DiffResult> {
    const lowers = this.parents(id).map(p => this.diffDir(p))
    return await diffLayer(this.diffDir(id), out, { lowers, onBytes, end })
  }

  async changes (id: string): Promise<Change[]> {
    const lowers = this.parents(id).map(p => this.diffDir(p))
    return await layerChanges(this.diffDir(id), lowers)
  }

  /** Bytes of file data in the layer's own directory (hard links once, private state left out). */
  size (id: string): number {
    this.need(id)
    let total = 0
    const seen = new Set<string>()
    const walk = (dir: string): void => {
      for (const d of fs.readdirSync(dir, { withFileTypes: true })) {
        if (d.name.startsWith('.wh..wh.')) continue
        const p = path.join(dir, d.name)
        if (d.isDirectory()) { walk(p); continue }
        if (!d.isFile()) continue
        const st = fs.lstatSync(p)
        const key = `${st.dev}:${st.ino}`
        if (seen.has(key)) continue
        seen.add(key)
        total += st.size
      }
    }
    walk(this.diffDir(id))
    return total
  }

  /** Removes layer `id` (crash-safe, see the header). */
  remove (id: string): void {
    this.need(id)
    const kids = this.children(id)
    if (kids.length > 0) throw new LayerError(`layer ${id} is in use: it is the parent of ${kids.join(', ')}`)
    this.notInUse(id, 'remove it')
    const mnt = this.mntDir(id)
    if (readMountInfo().some(m => m.mountpoint === mnt)) throw new LayerError(`layer ${id} is in use: something is mounted on ${mnt}`)
    for (const kind of ['diff', 'layers', 'mnt']) {
      const p = path.join(this.root, kind, id)
      if (fs.existsSync(p)) fs.renameSync(p, p + REMOVING)
    }
    for (const kind of ['diff', 'layers', 'mnt']) {
      fs.rmSync(path.join(this.root, kind, id + REMOVING), { recursive: true, force: true })
    }
  }

  /** Finishes interrupted removals and drops the staging dirs of dead imports. */
  sweep (): void {
    for (const name of fs.readdirSync(this.root)) {
      const m = /^import-([0-9]+)-/.exec(name)
      if (m !== null && !pidAlive(Number(m[1]))) fs.rmSync(path.join(this.root, name), { recursive: true, force: true })
    }
    for (const kind of ['diff', 'layers', 'mnt']) {
      const dir = path.join(this.root, kind)
      let names: string[]
      try { names = fs.readdirSync(dir) } catch { continue }
      for (const name of names) {
        const importing = name.indexOf(IMPORTING)
        const tmp = /\.tmp\.([0-9]+)$/.exec(name)
        const dead = name.endsWith(REMOVING) ||
          (importing > 0 && !pidAlive(Number(name.slice(importing + IMPORTING.length)))) ||
          (tmp !== null && !pidAlive(Number(tmp[1])))
        if (!dead) continue
        const p = path.join(dir, name)
        if (readMountInfo().some(m => m.mountpoint === p)) continue
        fs.rmSync(p, { recursive: true, force: true })
        if (name.endsWith(REMOVING) && kind === 'diff') {
          // The diff dir went first: whatever of the layer is left goes too.
          const id = name.slice(0, -REMOVING.length)
          if (!fs.existsSync(this.diffDir(id))) {
            fs.rmSync(this.layersFile(id), { force: true })
            fs.rmSync(this.mntDir(id), { recursive: true, force: true })
          }
        }
      }
    }
  }

  private need (id: string): void {
    if (!this.exists(id)) throw new LayerError(`no such layer: ${id}`)
  }

  private notInUse (id: string, doing: string): void {
    const at = this.mounts(id)
    if (at.length > 0) throw new LayerError(`layer ${id} is in use: mounted at ${at[0]} (unmount it to ${doing})`)
  }

  private makeDirs (id: string): void {
    fs.mkdirSync(this.diffDir(id), { recursive: true, mode: 0o755 })
    fs.chmodSync(this.diffDir(id), 0o755)
    fs.mkdirSync(this.mntDir(id), { recursive: true, mode: 0o755 })
  }

  private writeChain (id: string, chain: string[]): void {
    const file = this.layersFile(id)
    const tmp = `${file}.tmp.${process.pid}`
    const fd = fs.openSync(tmp, 'w', 0o644)
    try {
      fs.writeSync(fd, chain.map(c => c + '\n').join(''))
      fs.fsyncSync(fd)
    } finally {
      fs.closeSync(fd)
    }
    fs.renameSync(tmp, file)
  }
}

function pidAlive (pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
