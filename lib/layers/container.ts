/**
 * Containers, as Docker's AUFS driver made them: two layers on an image.
 *
 *   <name>        writable; everything the container writes lands here
 *   <name>-init   read-only; the placeholders a runtime mounts over
 *   image layers  read-only
 *
 * The init layer holds what the seeds list: dev/console, dev/pts, dev/shm,
 * etc/hostname, etc/hosts, etc/resolv.conf, etc/mtab -> /proc/mounts, and
 * proc/ and sys/. As Docker did, each is made only where the image has
 * nothing of that name, files empty and mode 0755 (a runtime bind-mounts
 * the real ones over them); a parent the image already has is made with the
 * image's mode, owner and times, as a copy-up would, so the init layer
 * changes nothing the image shows but these names. No device node is ever
 * made (dev/console is an empty file), so a user builds the same init layer
 * as root; only a parent's owner, which a user cannot give away, stays the
 * user's.
 *
 * A container is recorded in ROOT/containers/<name>.json (its image).
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { writableBranch } from '../branch/branch'
import * as native from '../native'
import type { Attr } from '../union/types'
import { parentOf } from '../union/paths'
import { findImage } from './image'
import { LayerError } from './layer-error'
import { checkId, type LayerStore } from './store'

type InitItem = readonly [rel: string, kind: 'dir' | 'file' | 'symlink', target?: string]

const INIT: readonly InitItem[] = [
  ['/dev/pts', 'dir'],
  ['/dev/shm', 'dir'],
  ['/proc', 'dir'],
  ['/sys', 'dir'],
  ['/etc/resolv.conf', 'file'],
  ['/etc/hosts', 'file'],
  ['/etc/hostname', 'file'],
  ['/dev/console', 'file'],
  ['/etc/mtab', 'symlink', '/proc/mounts']
]

export interface ContainerRecord {
  name: string
  image: string
  created: string
}

function containersDir (store: LayerStore): string { return path.join(store.root, 'containers') }

export function initId (name: string): string { return `${name}-init` }

export async function createContainer (store: LayerStore, imageRef: string, name: string): Promise<ContainerRecord> {
  checkId(name, 'container name')
  const image = findImage(store, imageRef)
  const top = image.layers[image.layers.length - 1]
  if (top === undefined) throw new LayerError(`image ${imageRef} has no layers`)
  for (const id of [name, initId(name)]) if (store.exists(id)) throw new LayerError(`layer ${id} already exists`)
  const record: ContainerRecord = { name, image: image.id, created: new Date().toISOString() }

  store.create(initId(name), top)
  try {
    await fillInit(store, initId(name), [top, ...store.parents(top)])
    store.create(name, initId(name))
  } catch (err) {
    if (store.exists(initId(name))) store.remove(initId(name))
    throw err
  }
  fs.mkdirSync(containersDir(store), { recursive: true, mode: 0o700 })
  const file = path.join(containersDir(store), `${name}.json`)
  fs.writeFileSync(`${file}.tmp.${process.pid}`, JSON.stringify(record, null, 2) + '\n')
  fs.renameSync(`${file}.tmp.${process.pid}`, file)
  return record
}

async function fillInit (store: LayerStore, id: string, imageLayers: string[]): Promise<void> {
  const { UnionFs } = await import('../union/union-fs')
  const image = await UnionFs.open({
    lowers: imageLayers.map(l => fs.realpathSync(store.diffDir(l))),
    whiteout: 'aufs',
    cacheEntries: 1024,
    cacheTtlMs: 0,
    xattrNamespace: process.getuid?.() === 0 ? 'trusted' : 'user'
  })
  const branch = writableBranch(fs.realpathSync(store.diffDir(id)), 0)
  const stat = async (p: string): Promise<Attr | undefined> => {
    try { return await image.getattr(p) } catch { return undefined }
  }
  const dirTimes = new Map<string, Attr>()
  const ensureParent = async (rel: string): Promise<void> => {
    const parent = parentOf(rel)
    if (parent === '/' || branch.lstat(parent) !== undefined) return
    await ensureParent(parent)
    const shadowed = await stat(parent)
    if (shadowed !== undefined && (shadowed.mode & fs.constants.S_IFMT) !== fs.constants.S_IFDIR) {
      throw new LayerError(`image has ${parent} as a non-directory; cannot make ${rel} in the init layer`)
    }
    branch.mkdir(parent, 0o755)
    if (shadowed !== undefined) {
      try {
        branch.lchown(parent, shadowed.uid, shadowed.gid)
      } catch (err) {
        // A user cannot give a directory away: it stays the user's.
        if (process.getuid?.() === 0 || (err as NodeJS.ErrnoException).code !== 'EPERM') throw err
      }
      branch.chmod(parent, shadowed.mode & 0o7777)
      dirTimes.set(parent, shadowed)
    } else {
      branch.chmod(parent, 0o755)
    }
  }
  try {
    for (const [rel, kind, target] of INIT) {
      if (await stat(rel) !== undefined) continue
      await ensureParent(rel)
      if (kind === 'dir') {
        branch.mkdir(rel, 0o755)
        branch.chmod(rel, 0o755)
      } else if (kind === 'file') {
        fs.closeSync(branch.open(rel, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o755))
        branch.chmod(rel, 0o755)
      } else {
        branch.symlink(target ?? '', rel)
      }
    }
    // Parents last, deepest first: making their children changed their times.
    for (const [rel, a] of [...dirTimes].sort(([x], [y]) => y.length - x.length)) {
      native.utimensat(branch.real(rel), nsTime(a.atimeNs, a.atimeMs), nsTime(a.mtimeNs, a.mtimeMs), true)
    }
  } finally {
    await image.destroy()
  }
}

function nsTime (ns: bigint | undefined, ms: number): [number, number] {
  if (ns !== undefined) return [Number(ns / 1_000_000_000n), Number(ns % 1_000_000_000n)]
  const sec = Math.floor(ms / 1000)
  return [sec, Math.round((ms - sec * 1000) * 1e6)]
}

export function listContainers (store: LayerStore): ContainerRecord[] {
  let names: string[]
  try { names = fs.readdirSync(containersDir(store)) } catch { return [] }
  return names.filter(n => n.endsWith('.json')).sort()
    .map(n => JSON.parse(fs.readFileSync(path.join(containersDir(store), n), 'utf8')) as ContainerRecord)
}

export function needContainer (store: LayerStore, name: string): void {
  if (!fs.existsSync(path.join(containersDir(store), `${name}.json`)) || !store.exists(name)) {
    throw new LayerError(`no such container: ${name}`)
  }
}

/** Removes the container's two layers (its own first) and its record. */
export function removeContainer (store: LayerStore, name: string): void {
  needContainer(store, name)
  store.remove(name)
  if (store.exists(initId(name))) store.remove(initId(name))
  fs.rmSync(path.join(containersDir(store), `${name}.json`), { force: true })
}
