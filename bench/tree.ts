/**
 * The benchmark's trees: one merged view, laid out over 1..N read-only
 * layers, built deterministically from a seed and cached on disk.
 *
 * The merged view does not depend on the depth: the same directories, the
 * same files with the same sizes and bytes, whether they sit in one layer or
 * are spread over 128. Only where each file lives changes. So every depth,
 * and the flattened copy the native runs use, show the same tree through
 * the mount, and `find | wc -l` or `tar | wc -c` must agree everywhere.
 *
 * The view (TreeParams):
 *  - `dirs` directories nested up to four levels (d00/s123/s456/...),
 *  - `files` small files of minSize..maxSize bytes, uniformly placed in them,
 *    `everyLayer` of them in `common/` (the directory whose entries come
 *    from every layer),
 *  - `big/big.bin` of bigBytes.
 * A layout for depth D (layer 0 is the top read-only layer, D-1 the bottom):
 *  - each file's current copy goes to a uniformly chosen layer; with
 *    probability `shadowed` an older copy (other bytes, other size) sits in
 *    a layer below it;
 *  - entry j of `common/` goes to layer j mod D (so at depth 128 each layer
 *    holds ten of its 1280 entries), every eighth one with an older copy in
 *    the layer below;
 *  - big.bin goes to the bottom layer;
 *  - a directory exists in every layer that holds something below it; an
 *    empty directory lives in the bottom layer.
 * No whiteouts: the peers read different whiteout formats, and a tree each
 * of them reads alike is what makes the comparison fair.
 *
 * Lists (relative paths in the view, one per line), the inputs of the
 * workloads: files.txt (every small file), missing.txt (names that exist
 * nowhere, in existing directories: the $PATH / import-search case),
 * chmod.txt, touch.txt and unlink.txt (disjoint sets of existing files),
 * create.txt (new names in existing directories).
 *
 * Caching: <root>/view-KEY/ holds the flattened copy (flat/) and the lists;
 * <root>/layers-KEY-dD/ holds layer directories 0..D-1. KEY hashes the
 * parameters and the generator's version; a tree counts as built once its
 * `.complete` marker exists, and anything else under that name is removed
 * and rebuilt. The native runs change flat/ and undo it afterwards
 * (restoreFlat); the `.dirty` marker says an undo is owed.
 */
import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { Prng, hash32 } from './prng'

/** Bump when the generator's output changes, so cached trees are rebuilt. */
const GENERATOR_VERSION = 1
const POOL_BYTES = 1 << 20
const BIG_BLOCK = 1 << 20

export interface TreeParams {
  files: number
  dirs: number
  minSize: number
  maxSize: number
  everyLayer: number
  shadowed: number
  bigBytes: number
  missing: number
  chmod: number
  touch: number
  create: number
  unlink: number
  seed: number
}

export const FULL_TREE: TreeParams = {
  files: 20000,
  dirs: 1000,
  minSize: 1024,
  maxSize: 16384,
  everyLayer: 1280,
  shadowed: 0.1,
  bigBytes: 256 << 20,
  missing: 20000,
  chmod: 1000,
  touch: 1000,
  create: 5000,
  unlink: 5000,
  seed: 1
}

/** FULL_TREE with `files` small files; every other count scales with it. */
export function scaledTree (files: number, bigMiB: number): TreeParams {
  const f = files / FULL_TREE.files
  const r = (n: number): number => Math.max(1, Math.round(n * f))
  return {
    ...FULL_TREE,
    files,
    dirs: r(FULL_TREE.dirs),
    // At least an eighth of the files, so the every-layer directory still
    // has several entries per layer at depth 128 in a small tree.
    everyLayer: Math.min(FULL_TREE.everyLayer, Math.max(r(FULL_TREE.everyLayer), Math.floor(files / 8)), Math.floor(files / 2)),
    missing: r(FULL_TREE.missing),
    chmod: r(FULL_TREE.chmod),
    touch: r(FULL_TREE.touch),
    create: r(FULL_TREE.create),
    unlink: r(FULL_TREE.unlink),
    bigBytes: bigMiB << 20
  }
}

export interface FileSpec {
  readonly id: number
  readonly path: string
  readonly size: number
}

export interface View {
  readonly params: TreeParams
  readonly dirs: readonly string[]
  readonly files: readonly FileSpec[]
  /** Indexes into `files` of common/'s entries. */
  readonly common: readonly number[]
}

export const EVERY_LAYER_DIR = 'common'
export const BIG_FILE = 'big/big.bin'
export const LIST_NAMES = ['files', 'missing', 'chmod', 'touch', 'unlink', 'create'] as const
export type ListName = typeof LIST_NAMES[number]

export interface BuiltView {
  readonly dir: string
  readonly flat: string
  readonly lists: Record<ListName, string>
  /** First 4 KiB of big.bin, for a first write that leaves the bytes as they were. */
  readonly bigHead: string
  readonly view: View
}

export interface BuiltLayers {
  readonly dir: string
  /** Top first. */
  readonly layers: readonly string[]
  readonly depth: number
}

export function treeKey (p: TreeParams): string {
  return createHash('sha256').update(JSON.stringify({ v: GENERATOR_VERSION, ...p })).digest('hex').slice(0, 12)
}

// ---------------------------------------------------------------------------
// The view

export function makeView (p: TreeParams): View {
  const rng = new Prng(p.seed, 'view')
  const top = Math.max(1, Math.round(Math.sqrt(p.dirs)))
  const dirs: string[] = []
  const level: number[] = []
  for (let i = 0; i < p.dirs; i++) {
    if (i < top) {
      dirs.push(`d${String(i).padStart(2, '0')}`)
      level.push(1)
      continue
    }
    let parent = rng.below(i)
    while (level[parent] >= 4) parent = rng.below(i)
    dirs.push(`${dirs[parent]}/s${i}`)
    level.push(level[parent] + 1)
  }
  const exts = ['c', 'h', 'py', 'txt', 'so', 'json', 'js', 'conf']
  const files: FileSpec[] = []
  const plain = Math.max(0, p.files - p.everyLayer)
  for (let i = 0; i < plain; i++) {
    const dir = dirs[rng.below(dirs.length)]
    files.push({ id: i, path: `${dir}/f${i}.${exts[rng.below(exts.length)]}`, size: rng.between(p.minSize, p.maxSize) })
  }
  const common: number[] = []
  for (let j = 0; j < p.everyLayer; j++) {
    common.push(files.length)
    files.push({ id: files.length, path: `${EVERY_LAYER_DIR}/e${j}`, size: rng.between(p.minSize, p.maxSize) })
  }
  return { params: p, dirs: [...dirs, EVERY_LAYER_DIR, path.dirname(BIG_FILE)], files, common }
}

interface Lists { [name: string]: string[] }

function makeLists (v: View): Lists {
  const p = v.params
  const rng = new Prng(p.seed, 'lists')
  const files = v.files.map(f => f.path)
  // Mutations pick among the plain files (common/ stays whole for its readdir).
  const inCommon = new Set(v.common)
  const plain = v.files.filter((_, i) => !inCommon.has(i)).map(f => f.path)
  const picked = rng.sample(plain.length, p.chmod + p.touch + p.unlink).map(i => plain[i])
  const chmod = picked.slice(0, p.chmod)
  const touch = picked.slice(p.chmod, p.chmod + p.touch)
  const unlink = picked.slice(p.chmod + p.touch)
  const dirs = v.dirs.filter(d => d !== EVERY_LAYER_DIR && d !== path.dirname(BIG_FILE))
  const missing: string[] = []
  for (let k = 0; k < p.missing; k++) missing.push(`${dirs[rng.below(dirs.length)]}/missing-${k}.so`)
  const create: string[] = []
  for (let k = 0; k < p.create; k++) create.push(`${dirs[rng.below(dirs.length)]}/new-${k}`)
  return { files, missing, chmod, touch, unlink, create }
}

// ---------------------------------------------------------------------------
// Bytes

class Content {
  readonly pool: Buffer
  constructor (seed: number) {
    this.pool = new Prng(seed, 'pool').fill(Buffer.allocUnsafe(POOL_BYTES))
  }

  /** The bytes of version `version` (0: current, 1: the older copy) of a file. */
  file (f: FileSpec, size: number, version: number): Buffer {
    const buf = Buffer.allocUnsafe(size)
    const off = hash32(`${f.id}/${version}`) % (this.pool.length - size)
    this.pool.copy(buf, 0, off, off + size)
    buf.write(`${f.path} v${version}\n`, 0, 'latin1')
    return buf
  }

  /** Write big.bin: bigBytes of the pool, rotated differently per MiB. */
  writeBig (file: string, bytes: number): void {
    const fd = fs.openSync(file, 'w', 0o644)
    try {
      const block = Buffer.allocUnsafe(BIG_BLOCK)
      for (let b = 0, done = 0; done < bytes; b++) {
        const rot = (b * 4099) % this.pool.length
        this.pool.copy(block, 0, rot)
        this.pool.copy(block, this.pool.length - rot, 0, rot)
        block.write(`big.bin block ${b}\n`, 0, 'latin1')
        const n = Math.min(BIG_BLOCK, bytes - done)
        fs.writeSync(fd, block, 0, n)
        done += n
      }
      fs.fsyncSync(fd)
    } finally {
      fs.closeSync(fd)
    }
  }
}

// ---------------------------------------------------------------------------
// Building and caching

function fresh (dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true })
  fs.mkdirSync(dir, { recursive: true })
}

function isComplete (dir: string): boolean {
  return fs.existsSync(path.join(dir, '.complete'))
}

function markComplete (dir: string, meta: object): void {
  fs.writeFileSync(path.join(dir, '.complete'), JSON.stringify(meta, null, 2) + '\n')
}

function listPaths (dir: string): Record<ListName, string> {
  const out = {} as Record<ListName, string>
  for (const n of LIST_NAMES) out[n] = path.join(dir, 'lists', `${n}.txt`)
  return out
}

/** The flattened view and the workload lists, built once per parameter set. */
export function buildView (root: string, p: TreeParams, log: (s: string) => void): BuiltView {
  const v = makeView(p)
  const dir = path.join(root, `view-${treeKey(p)}`)
  const flat = path.join(dir, 'flat')
  const lists = listPaths(dir)
  const bigHead = path.join(dir, 'big-head.bin')
  const built: BuiltView = { dir, flat, lists, bigHead, view: v }
  if (isComplete(dir)) {
    restoreFlat(built)
    return built
  }
  log(`building the flattened view in ${dir}`)
  fresh(dir)
  const content = new Content(p.seed)
  for (const d of v.dirs) fs.mkdirSync(path.join(flat, d), { recursive: true, mode: 0o755 })
  for (const f of v.files) fs.writeFileSync(path.join(flat, f.path), content.file(f, f.size, 0), { mode: 0o644 })
  content.writeBig(path.join(flat, BIG_FILE), p.bigBytes)
  const head = Buffer.alloc(4096)
  const fd = fs.openSync(path.join(flat, BIG_FILE), 'r')
  try { fs.readSync(fd, head, 0, head.length, 0) } finally { fs.closeSync(fd) }
  fs.writeFileSync(bigHead, head)
  fs.mkdirSync(path.join(dir, 'lists'))
  const l = makeLists(v)
  for (const n of LIST_NAMES) fs.writeFileSync(lists[n], l[n].join('\n') + '\n')
  markComplete(dir, { params: p, files: v.files.length, dirs: v.dirs.length })
  return built
}

/** Layer directories 0..depth-1 (top first) laying out the view. */
export function buildLayers (root: string, p: TreeParams, depth: number, log: (s: string) => void): BuiltLayers {
  const dir = path.join(root, `layers-${treeKey(p)}-d${depth}`)
  const layers = Array.from({ length: depth }, (_, i) => path.join(dir, String(i)))
  const built: BuiltLayers = { dir, layers, depth }
  if (isComplete(dir)) return built
  log(`building ${depth} layer(s) in ${dir}`)
  fresh(dir)
  const v = makeView(p)
  const content = new Content(p.seed)
  const rng = new Prng(p.seed, `layers/d${depth}`)
  const bottom = depth - 1
  // Which directories each layer needs: every ancestor of what it holds.
  const need: Array<Set<string>> = layers.map(() => new Set<string>())
  const place = (layer: number, rel: string): void => {
    for (let d = path.dirname(rel); d !== '.'; d = path.dirname(d)) {
      if (need[layer].has(d)) break
      need[layer].add(d)
    }
  }
  interface Put { layer: number, f: FileSpec, size: number, version: number }
  const puts: Put[] = []
  const commonAt = new Map(v.common.map((fi, j) => [fi, j]))
  for (const f of v.files) {
    const j = commonAt.get(f.id)
    let layer: number
    let older: number | undefined
    if (j !== undefined) {
      layer = j % depth
      if (j % 8 === 0 && layer < bottom) older = layer + 1
    } else {
      layer = rng.below(depth)
      if (layer < bottom && rng.float() < p.shadowed) older = layer + 1 + rng.below(bottom - layer)
    }
    puts.push({ layer, f, size: f.size, version: 0 })
    place(layer, f.path)
    if (older !== undefined) {
      puts.push({ layer: older, f, size: p.minSize + (hash32(f.path) % (p.maxSize - p.minSize + 1)), version: 1 })
      place(older, f.path)
    }
  }
  place(bottom, BIG_FILE)
  // A directory nobody put anything in still exists: in the bottom layer.
  const anywhere = new Set<string>()
  for (const s of need) for (const d of s) anywhere.add(d)
  for (const d of v.dirs) if (!anywhere.has(d)) place(bottom, `${d}/x`)
  for (let i = 0; i < depth; i++) {
    fs.mkdirSync(layers[i], { mode: 0o755 })
    for (const d of [...need[i]].sort()) fs.mkdirSync(path.join(layers[i], d), { mode: 0o755 })
  }
  for (const u of puts) fs.writeFileSync(path.join(layers[u.layer], u.f.path), content.file(u.f, u.size, u.version), { mode: 0o644 })
  content.writeBig(path.join(layers[bottom], BIG_FILE), p.bigBytes)
  markComplete(dir, { params: p, depth, entries: puts.length })
  return built
}

// ---------------------------------------------------------------------------
// Native runs change the flattened copy; put it back

export function readList (file: string): string[] {
  return fs.readFileSync(file, 'utf8').split('\n').filter(s => s !== '')
}

/** Mark flat/ as about to be changed by a native run. */
export function markDirty (b: BuiltView): void {
  fs.writeFileSync(path.join(b.dir, '.dirty'), '')
}

/**
 * Undo what the native mutation workloads did to flat/ (idempotent):
 * modes back to 0644, created files and the written file removed, unlinked
 * files written again with their bytes. big.bin's first write put back the
 * bytes that were there.
 */
export function restoreFlat (b: BuiltView, extra: readonly string[] = []): void {
  const marker = path.join(b.dir, '.dirty')
  if (!fs.existsSync(marker)) return
  const rm = (rel: string): void => { fs.rmSync(path.join(b.flat, rel), { force: true }) }
  for (const rel of readList(b.lists.chmod)) fs.chmodSync(path.join(b.flat, rel), 0o644)
  for (const rel of readList(b.lists.create)) rm(rel)
  for (const rel of extra) rm(rel)
  const byPath = new Map(b.view.files.map(f => [f.path, f]))
  const content = new Content(b.view.params.seed)
  for (const rel of readList(b.lists.unlink)) {
    const f = byPath.get(rel)
    if (f !== undefined) fs.writeFileSync(path.join(b.flat, rel), content.file(f, f.size, 0), { mode: 0o644 })
  }
  for (const name of fs.readdirSync(b.flat)) {
    if (name.startsWith('seqwrite')) rm(name)
  }
  fs.rmSync(marker)
}
