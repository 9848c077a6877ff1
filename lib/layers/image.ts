/**
 * Images in the store: import of a `docker save` archive, and the list.
 *
 * The archive is a tar holding `manifest.json` ([{ Config, RepoTags,
 * Layers }]), each image's config (whose `rootfs.diff_ids` are the sha256 of
 * the uncompressed layers) and the layer tarballs: `<id>/layer.tar` in the
 * classic format, `blobs/sha256/<hex>` since Docker 25 (OCI layout), either
 * possibly a symlink to another member, a layer possibly compressed.
 *
 * Import:
 * 1. The archive's members are copied to a staging dir in the store, each
 *    under a number (member names never become paths), hashing as they go.
 *    manifest.json may come last, so nothing can be decided earlier.
 * 2. Digests are checked wherever the archive names one: a member named by
 *    its digest (`blobs/sha256/<hex>`, `<hex>.json`) must hash to it, and a
 *    layer's uncompressed bytes must hash to the config's diff_id.
 * 3. Each layer's store id is its ChainID (the OCI image-spec's: the first
 *    layer's DiffID, then sha256 of "parent-chain-id diff-id"), hex without
 *    the algorithm. A layer already in the store under that id is shared,
 *    not imported again: the same content on the same parents.
 * 4. A new layer is applied to a staging dir and renamed into place once its
 *    DiffID checked out (store.adopt), so a failed import leaves no layer.
 * 5. The image is recorded as ROOT/images/<image id hex>.json (config, layer
 *    chain, tags), and its tags in ROOT/repositories.json ({"name:tag": id}),
 *    a tag moving to the image imported last.
 */
import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { Readable } from 'node:stream'
import * as tar from 'tar-stream'
import { applyLayer } from './apply'
import { LayerError } from './layer-error'
import type { LayerStore } from './store'

export interface ImageRecord {
  /** `sha256:HEX` of the config. */
  id: string
  repoTags: string[]
  /** Store layer ids (ChainIDs), bottom first. */
  layers: string[]
  diffIds: string[]
  created?: string
  config: unknown
}

export interface ImportResult {
  images: ImageRecord[]
  added: string[]
  shared: string[]
}

export interface ImportHooks {
  /** Raw archive bytes read (first pass) and layer bytes applied (second). */
  onBytes?: (n: number) => void
  /** Total bytes of the layers to apply, once known. */
  onLayerTotal?: (n: number) => void
  warn?: (message: string) => void
}

interface Member {
  file?: string
  link?: string
  size: number
  sha256: string
}

const HEX64 = /^[0-9a-f]{64}$/

function imagesDir (store: LayerStore): string { return path.join(store.root, 'images') }
function reposFile (store: LayerStore): string { return path.join(store.root, 'repositories.json') }

/** Imports the `docker save` archive read from `source`. */
export async function importImage (store: LayerStore, source: AsyncIterable<Buffer>, hooks: ImportHooks = {}): Promise<ImportResult> {
  const staging = fs.mkdtempSync(path.join(store.root, `import-${process.pid}-`))
  try {
    const members = await stage(source, staging, hooks)
    return await importStaged(store, members, hooks)
  } finally {
    fs.rmSync(staging, { recursive: true, force: true })
  }
}

function memberName (name: string): string {
  const parts = name.split('/').filter(p => p !== '' && p !== '.')
  if (name.startsWith('/') || parts.includes('..')) throw new LayerError(`archive member ${JSON.stringify(name)}: refused (outside the archive)`)
  return parts.join('/')
}

async function stage (source: AsyncIterable<Buffer>, dir: string, hooks: ImportHooks): Promise<Map<string, Member>> {
  const members = new Map<string, Member>()
  const extract = tar.extract()
  async function * counted (): AsyncGenerator<Buffer> {
    for await (const chunk of source) {
      hooks.onBytes?.(chunk.length)
      yield chunk
    }
  }
  const input = Readable.from(counted())
  input.on('error', err => extract.destroy(err))
  input.pipe(extract as unknown as NodeJS.WritableStream)
  let n = 0
  try {
    for await (const entry of extract) {
      const h = entry.header
      const name = memberName(h.name)
      if (h.type === 'file' || h.type === 'contiguous-file') {
        const file = path.join(dir, String(++n))
        const hash = createHash('sha256')
        const fd = fs.openSync(file, 'wx', 0o600)
        try {
          for await (const chunk of entry) {
            const b = chunk as Buffer
            hash.update(b)
            let off = 0
            while (off < b.length) off += fs.writeSync(fd, b, off, b.length - off)
          }
        } finally {
          fs.closeSync(fd)
        }
        members.set(name, { file, size: h.size ?? 0, sha256: hash.digest('hex') })
      } else {
        for await (const _ of entry) { /* no data kept */ }
        if (h.type === 'symlink') {
          const target = path.posix.normalize(path.posix.join(path.posix.dirname(name), h.linkname ?? ''))
          members.set(name, { link: memberName(target), size: 0, sha256: '' })
        } else if (h.type === 'link') {
          members.set(name, { link: memberName(h.linkname ?? ''), size: 0, sha256: '' })
        }
      }
    }
  } catch (err) {
    input.destroy()
    extract.destroy()
    if (err instanceof LayerError) throw err
    throw new LayerError(`not a docker save archive: ${(err as Error).message}`, { cause: err })
  }
  return members
}

function resolve (members: Map<string, Member>, name: string): Member & { file: string } {
  let m = members.get(memberName(name))
  for (let hops = 0; m?.link !== undefined && hops < 16; hops++) m = members.get(m.link)
  if (m?.file === undefined) throw new LayerError(`the archive has no ${name}`)
  return m as Member & { file: string }
}

/** The digest a member's name promises, if it names one. */
function namedDigest (name: string): string | undefined {
  const m = /(?:^|\/)(?:sha256[/:])?([0-9a-f]{64})(?:\.json)?$/.exec(name)
  return m?.[1]
}

function sha256Hex (s: string): string {
  return createHash('sha256').update(s).digest('hex')
}

/** The OCI ChainIDs of a list of DiffIDs (all `sha256:HEX`). */
export function chainIds (diffIds: readonly string[]): string[] {
  const out: string[] = []
  for (const d of diffIds) out.push(out.length === 0 ? d : `sha256:${sha256Hex(`${out[out.length - 1]} ${d}`)}`)
  return out
}

interface ManifestEntry {
  Config: string
  RepoTags?: string[] | null
  Layers: string[]
}

async function importStaged (store: LayerStore, members: Map<string, Member>, hooks: ImportHooks): Promise<ImportResult> {
  const manifestMember = members.get('manifest.json')
  if (manifestMember?.file === undefined) throw new LayerError('not a docker save archive: no manifest.json')
  let manifest: ManifestEntry[]
  try {
    manifest = JSON.parse(fs.readFileSync(manifestMember.file, 'utf8')) as ManifestEntry[]
    if (!Array.isArray(manifest)) throw new Error('not a list')
  } catch (err) {
    throw new LayerError(`manifest.json: ${(err as Error).message}`)
  }

  // Check everything before the first layer is applied.
  interface Plan { entry: ManifestEntry, id: string, config: unknown, diffIds: string[], chain: string[] }
  const plans: Plan[] = []
  for (const entry of manifest) {
    if (typeof entry?.Config !== 'string' || !Array.isArray(entry.Layers)) throw new LayerError('manifest.json: an entry without Config or Layers')
    const cfg = resolve(members, entry.Config)
    const want = namedDigest(entry.Config)
    if (want !== undefined && want !== cfg.sha256) throw new LayerError(`${entry.Config}: sha256 is ${cfg.sha256}, not the ${want} its name says`)
    const raw = fs.readFileSync(cfg.file)
    let config: { rootfs?: { diff_ids?: unknown }, created?: string }
    try {
      config = JSON.parse(raw.toString('utf8'))
    } catch (err) {
      throw new LayerError(`${entry.Config}: ${(err as Error).message}`)
    }
    const diffIds = config.rootfs?.diff_ids
    if (!Array.isArray(diffIds) || diffIds.some(d => typeof d !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(d))) {
      throw new LayerError(`${entry.Config}: no valid rootfs.diff_ids`)
    }
    if (diffIds.length !== entry.Layers.length) {
      throw new LayerError(`${entry.Config}: ${diffIds.length} diff_ids for ${entry.Layers.length} layers`)
    }
    for (const l of entry.Layers) {
      const m = resolve(members, l)
      const named = namedDigest(l)
      // `<v1 id>/layer.tar` names no content digest; `blobs/sha256/<hex>` does.
      if (named !== undefined && !l.endsWith('/layer.tar') && named !== m.sha256) {
        throw new LayerError(`${l}: sha256 is ${m.sha256}, not the ${named} its name says`)
      }
    }
    plans.push({ entry, id: `sha256:${cfg.sha256}`, config, diffIds: diffIds as string[], chain: chainIds(diffIds as string[]) })
  }

  const todo = new Map<string, { member: string, parent?: string, diffId: string }>()
  for (const p of plans) {
    p.chain.forEach((c, i) => {
      const id = c.slice('sha256:'.length)
      if (!store.exists(id) && !todo.has(id)) {
        todo.set(id, { member: p.entry.Layers[i], parent: i === 0 ? undefined : p.chain[i - 1].slice(7), diffId: p.diffIds[i] })
      }
    })
  }
  hooks.onLayerTotal?.([...todo.values()].reduce((n, t) => n + resolve(members, t.member).size, 0))

  const added: string[] = []
  const shared: string[] = []
  for (const p of plans) {
    for (const c of p.chain) {
      const id = c.slice(7)
      const job = todo.get(id)
      if (job === undefined) { if (!shared.includes(id) && !added.includes(id)) shared.push(id); continue }
      todo.delete(id)
      const dir = store.staging(id)
      try {
        const m = resolve(members, job.member)
        const res = await applyLayer(fs.createReadStream(m.file), dir, { whiteout: 'aufs', onRaw: hooks.onBytes, warn: hooks.warn })
        if (res.diffId !== job.diffId) throw new LayerError(`${job.member}: its content hashes to ${res.diffId}, not the diff_id ${job.diffId} the config names`)
        store.adopt(id, dir, job.parent)
      } catch (err) {
        fs.rmSync(dir, { recursive: true, force: true })
        throw err
      }
      added.push(id)
    }
  }

  const images: ImageRecord[] = []
  fs.mkdirSync(imagesDir(store), { recursive: true, mode: 0o700 })
  const repos = readRepositories(store)
  for (const p of plans) {
    const tags = (p.entry.RepoTags ?? []).filter(t => typeof t === 'string')
    const hex = p.id.slice(7)
    const file = path.join(imagesDir(store), `${hex}.json`)
    const old = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) as ImageRecord : undefined
    const record: ImageRecord = {
      id: p.id,
      repoTags: [...new Set([...(old?.repoTags ?? []), ...tags])],
      layers: p.chain.map(c => c.slice(7)),
      diffIds: p.diffIds,
      created: (p.config as { created?: string }).created,
      config: p.config
    }
    for (const t of tags) {
      const prev = repos[t]
      if (prev !== undefined && prev !== p.id) untag(store, prev, t)
      repos[t] = p.id
    }
    writeJson(file, record)
    images.push(record)
  }
  writeJson(reposFile(store), repos)
  return { images, added, shared }
}

function untag (store: LayerStore, id: string, tag: string): void {
  const file = path.join(imagesDir(store), `${id.slice(7)}.json`)
  try {
    const rec = JSON.parse(fs.readFileSync(file, 'utf8')) as ImageRecord
    rec.repoTags = rec.repoTags.filter(t => t !== tag)
    writeJson(file, rec)
  } catch { /* the old image is gone */ }
}

function writeJson (file: string, value: unknown): void {
  const tmp = `${file}.tmp.${process.pid}`
  fs.writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n', { mode: 0o644 })
  fs.renameSync(tmp, file)
}

export function readRepositories (store: LayerStore): Record<string, string> {
  try {
    return JSON.parse(fs.readFileSync(reposFile(store), 'utf8')) as Record<string, string>
  } catch {
    return {}
  }
}

export function listImages (store: LayerStore): ImageRecord[] {
  let names: string[]
  try { names = fs.readdirSync(imagesDir(store)) } catch { return [] }
  return names.filter(n => /^[0-9a-f]{64}\.json$/.test(n)).sort()
    .map(n => JSON.parse(fs.readFileSync(path.join(imagesDir(store), n), 'utf8')) as ImageRecord)
}

/** An image by `name[:tag]` (tag default `latest`) or by (a unique prefix of) its id. */
export function findImage (store: LayerStore, ref: string): ImageRecord {
  const repos = readRepositories(store)
  const slash = ref.lastIndexOf('/')
  const tagged = ref.lastIndexOf(':') > slash ? ref : `${ref}:latest`
  let id = repos[tagged] ?? repos[ref]
  if (id === undefined) {
    const hex = ref.replace(/^sha256:/, '')
    if (/^[0-9a-f]{4,64}$/.test(hex)) {
      const hits = listImages(store).filter(i => i.id.slice(7).startsWith(hex))
      if (hits.length > 1) throw new LayerError(`image id prefix ${ref} is ambiguous`)
      id = hits[0]?.id
    }
  }
  if (id === undefined) throw new LayerError(`no such image: ${ref}`)
  const file = path.join(imagesDir(store), `${id.slice(7)}.json`)
  if (!fs.existsSync(file)) throw new LayerError(`image ${ref} (${id}) has no record in the store`)
  const rec = JSON.parse(fs.readFileSync(file, 'utf8')) as ImageRecord
  if (!HEX64.test(rec.id.slice(7))) throw new LayerError(`image ${ref}: a broken record`)
  return rec
}
