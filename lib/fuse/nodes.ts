/**
 * Node ids: the kernel's handles on our inodes, and their lookup counts.
 *
 * Invariants:
 * - Node 1 is the root, path '/', and is never dropped.
 * - One node per file of the writable branch (or of the top branch of a
 *   read-only union): a second path with the same st_ino, below 2^40 (the
 *   top layer's own numbers), is a hard link there and is added to the
 *   existing node, so the kernel sees one inode. A LINK through the mount
 *   adds the new name to the linked node whatever its number (a copied-up
 *   file keeps its lower st_ino). Names hard-linked inside a read-only
 *   branch below the writable one get a node each: a copy-up of one name
 *   breaks the link (the other keeps the lower file's mode and data), and
 *   the kernel could not tell which name a request on a shared inode was
 *   for.
 * - `nlookup` is the number of entry replies the kernel received for the
 *   node (LOOKUP, CREATE, MKDIR, MKNOD, SYMLINK, LINK, READDIRPLUS) minus
 *   what FORGET/BATCH_FORGET gave back; at 0 the node is dropped and its id
 *   goes back to the free list.
 * - A reused id gets a generation never used before, so `nodeid:generation`
 *   is unique for the life of the mount.
 * - `byPath` maps each known union path to its node. RENAME moves the node
 *   and everything below it; UNLINK/RMDIR remove the path only (the node
 *   lives until forgotten: open files). A node left with no path is also
 *   removed from `byIno`, so a new file that reuses the st_ino gets a fresh
 *   node rather than the dead one.
 */
import { fsError } from '../errors'
import type { Attr } from '../union/types'
import { FUSE_ROOT_ID } from './protocol'

const S_IFMT = 0o170000
/** Union st_ino below this are the top layer's own (lib/union/inodes.ts: layer * 2^40 + branch ino). */
const TOP_LAYER_SPAN = 2 ** 40
const S_IFDIR = 0o040000

export interface FuseNode {
  readonly id: number
  readonly generation: number
  ino: number
  isDir: boolean
  /** Union paths of this inode: usually one; hard links add more; empty once unlinked. */
  paths: string[]
  nlookup: number
  /** Open file handles on this node, for calls that need one once the node has no path. */
  openFhs: Set<number> | undefined
}

export function joinPath (parent: string, name: string): string {
  return parent === '/' ? `/${name}` : `${parent}/${name}`
}

export function parentPath (path: string): string {
  const i = path.lastIndexOf('/')
  return i <= 0 ? '/' : path.slice(0, i)
}

export class NodeTable {
  private readonly byId = new Map<number, FuseNode>()
  private readonly byPath = new Map<string, FuseNode>()
  private readonly byIno = new Map<number, FuseNode>()
  private readonly freeIds: number[] = []
  private nextId = FUSE_ROOT_ID + 1
  private lastGeneration = 0
  readonly root: FuseNode

  constructor () {
    this.root = { id: FUSE_ROOT_ID, generation: 0, ino: 0, isDir: true, paths: ['/'], nlookup: 1, openFhs: undefined }
    this.byId.set(FUSE_ROOT_ID, this.root)
    this.byPath.set('/', this.root)
  }

  get size (): number {
    return this.byId.size
  }

  get (id: number): FuseNode | undefined {
    return this.byId.get(id)
  }

  /** The node or ESTALE (the kernel named a node we never gave it, or one already forgotten). */
  node (id: number): FuseNode {
    const n = this.byId.get(id)
    if (n === undefined) throw fsError('ESTALE', 'node', String(id))
    return n
  }

  /** A path of the node, or undefined once it was unlinked. */
  pathOf (id: number): string | undefined {
    return this.byId.get(id)?.paths[0]
  }

  /** A path of the node or ENOENT. */
  path (id: number): string {
    const p = this.node(id).paths[0]
    if (p === undefined) throw fsError('ENOENT', 'node', String(id))
    return p
  }

  /** The path of `name` inside directory node `parentId`. */
  childPath (parentId: number, name: string): string {
    return joinPath(this.path(parentId), name)
  }

  nodeIdOf (path: string): number | undefined {
    return this.byPath.get(path)?.id
  }

  /** Remember what getattr said about an existing node (the root learns its st_ino here). */
  noteAttr (node: FuseNode, attr: Attr): void {
    if (node.ino !== attr.ino) {
      if (this.byIno.get(node.ino) === node) this.byIno.delete(node.ino)
      node.ino = attr.ino
      if (node.paths.length > 0 && !this.byIno.has(attr.ino)) this.byIno.set(attr.ino, node)
    }
    node.isDir = (attr.mode & S_IFMT) === S_IFDIR
  }

  /**
   * An entry reply for `path` is about to be sent: find or make its node,
   * map the path to it and count one lookup. Undo with `forget(id, 1)` if
   * the reply does not reach the kernel.
   */
  link (path: string, attr: Attr, linkedTo?: FuseNode): FuseNode {
    const current = this.byPath.get(path)
    let node = current !== undefined && current.ino === attr.ino
      ? current
      : linkedTo ?? (attr.ino < TOP_LAYER_SPAN ? this.byIno.get(attr.ino) : undefined)
    if (current !== undefined && current !== node) this.dropPath(current, path)
    if (node === undefined) {
      node = this.create(attr)
    }
    if (!node.paths.includes(path)) node.paths.push(path)
    this.byPath.set(path, node)
    node.isDir = (attr.mode & S_IFMT) === S_IFDIR
    node.nlookup++
    return node
  }

  /** A node for a file with no name (O_TMPFILE), counting one lookup; LINK names it later (`link`, linkedTo). */
  unnamed (attr: Attr): FuseNode {
    const node = this.create(attr)
    node.nlookup++
    return node
  }

  private create (attr: Attr): FuseNode {
    let id: number
    let generation = 0
    const reused = this.freeIds.pop()
    if (reused !== undefined) {
      id = reused
      generation = ++this.lastGeneration
    } else {
      id = this.nextId++
    }
    const node: FuseNode = {
      id, generation, ino: attr.ino, isDir: false, paths: [], nlookup: 0, openFhs: undefined
    }
    this.byId.set(id, node)
    this.byIno.set(attr.ino, node)
    return node
  }

  forget (id: number, n: number): void {
    const node = this.byId.get(id)
    if (node === undefined || node === this.root) return
    node.nlookup -= n
    if (node.nlookup > 0) return
    for (const p of node.paths) {
      if (this.byPath.get(p) === node) this.byPath.delete(p)
    }
    node.paths = []
    if (this.byIno.get(node.ino) === node) this.byIno.delete(node.ino)
    this.byId.delete(id)
    this.freeIds.push(id)
  }

  /** UNLINK (`dir` false) or RMDIR (`dir` true) succeeded: `path` names nothing any more. */
  unlinkPath (path: string, dir: boolean): void {
    const node = this.byPath.get(path)
    if (node !== undefined) this.dropPath(node, path)
    // A removed directory was empty, but nodes for names below it may
    // survive from before (stale dentries): they no longer have that path.
    // (A scan of every path: directories are removed far less often than files.)
    if (dir) this.dropBelow(path)
  }

  private dropPath (node: FuseNode, path: string): void {
    if (this.byPath.get(path) === node) this.byPath.delete(path)
    const i = node.paths.indexOf(path)
    if (i >= 0) node.paths.splice(i, 1)
    if (node.paths.length === 0 && node !== this.root && this.byIno.get(node.ino) === node) {
      this.byIno.delete(node.ino)
    }
  }

  private dropBelow (path: string): void {
    if (path === '/') return
    const prefix = path + '/'
    for (const [p, n] of this.byPath) {
      if (p.startsWith(prefix)) this.dropPath(n, p)
    }
  }

  /** Every [path, node] at `path` or below it (a scan of every path when it may be a directory). */
  private subtree (path: string): Array<[string, FuseNode]> {
    const out: Array<[string, FuseNode]> = []
    const top = this.byPath.get(path)
    if (top !== undefined) out.push([path, top])
    if (top === undefined || top.isDir) {
      const prefix = path + '/'
      for (const [p, n] of this.byPath) {
        if (p.startsWith(prefix)) out.push([p, n])
      }
    }
    return out
  }

  private move (entries: Array<[string, FuseNode]>, from: string, to: string): void {
    for (const [p, n] of entries) {
      const np = to + p.slice(from.length)
      if (this.byPath.get(p) === n) this.byPath.delete(p)
      const i = n.paths.indexOf(p)
      if (i >= 0) n.paths[i] = np
      else n.paths.push(np)
    }
    for (const [p, n] of entries) this.byPath.set(to + p.slice(from.length), n)
  }

  /**
   * RENAME / RENAME2 succeeded. `exchange`: the two names swapped
   * (RENAME_EXCHANGE); otherwise whatever was at `to` is gone and `from`'s
   * subtree now lives at `to`.
   */
  rename (from: string, to: string, exchange: boolean): void {
    if (from === to) return
    const top = this.byPath.get(from)
    const fromIsDir = top === undefined || top.isDir
    const moving = this.subtree(from)
    if (exchange) {
      const other = this.subtree(to)
      // The second move leaves alone the paths the first one just claimed:
      // it only deletes a path still mapped to the node it is moving.
      this.move(moving, from, to)
      this.move(other, to, from)
      return
    }
    const replaced = this.byPath.get(to)
    if (replaced !== undefined) this.dropPath(replaced, to)
    // Only a directory can have had names below `to` (a file replaces only a non-directory).
    if (fromIsDir || replaced?.isDir === true) this.dropBelow(to)
    this.move(moving, from, to)
  }

  trackOpen (node: FuseNode, fh: number): void {
    if (node.openFhs === undefined) node.openFhs = new Set()
    node.openFhs.add(fh)
  }

  untrackOpen (node: FuseNode | undefined, fh: number): void {
    node?.openFhs?.delete(fh)
  }

  /**
   * A handle to reach a node with no name left (unlinked while open): any
   * handle open on it; ENOENT when there is none.
   */
  openFh (node: FuseNode, syscall: string): number {
    if (node.openFhs !== undefined) for (const fh of node.openFhs) return fh
    throw fsError('ENOENT', syscall)
  }
}
