/**
 * Build directory trees from a compact spec, and describe trees in a form
 * tests can compare.
 *
 * A spec is an object of name -> node, where a node is
 *   - a string or Buffer: a regular file with that content, mode 0644;
 *   - a plain object: a directory holding those entries, mode 0755;
 *   - an entry made by one of the builders below (file, dir, symlink, hardlink,
 *     whiteout, fifo, chr, sparse) when mode, owner, times, xattrs or a
 *     special type are wanted.
 * Whiteouts and opaque markers are written in either dialect:
 *   aufs:    empty file `.wh.NAME`; opaque dir = file `.wh..wh..opq` inside it
 *   overlay: char device 0/0 NAME; opaque dir = xattr trusted.overlay.opaque=y
 *            ('overlay-user': user.overlay.opaque=y)
 *
 * snapshotTree() walks a tree without following symlinks and returns
 * path -> one line describing the entry (type, mode, owner, nlink, size,
 * content hash, symlink target, rdev, xattrs, and on request blocks, mtime,
 * atime and st_ino). Hard links show as `links=<first path with that inode>`, so link
 * structure compares across filesystems whose inode numbers differ.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { createHash } from 'node:crypto'
import { mknod, setxattr, xattrsOf } from './sys'

const KIND = '$'

/**
 * `size` bytes of file content that differ at every 4-byte word and with
 * `seed`, so a misplaced or stale block shows in a comparison.
 */
export function pattern (size: number, seed: number): Buffer {
  const b = Buffer.alloc(size)
  let x = seed >>> 0
  for (let i = 0; i + 4 <= size; i += 4) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0
    b.writeUInt32LE(x, i)
  }
  return b
}

export type Dialect = 'aufs' | 'overlay'
export type OpaqueDialect = Dialect | 'overlay-user'

interface Meta {
  mode?: number
  uid?: number
  gid?: number
  /** seconds since the epoch (atime and mtime both unless atime is given) */
  mtime?: number
  atime?: number
  xattrs?: Record<string, string | Buffer>
}

export type Entry =
  | ({ [KIND]: 'file', content: string | Buffer } & Meta)
  | ({ [KIND]: 'dir', entries: Spec, opaque?: OpaqueDialect } & Meta)
  | ({ [KIND]: 'symlink', target: string } & Pick<Meta, 'uid' | 'gid' | 'mtime' | 'atime'>)
  | { [KIND]: 'hardlink', to: string }
  | { [KIND]: 'whiteout', dialect: Dialect }
  | ({ [KIND]: 'fifo' } & Meta)
  | ({ [KIND]: 'chr', major: number, minor: number } & Meta)
  | ({ [KIND]: 'sparse', size: number, data: Array<[number, string | Buffer]> } & Meta)

export type Node = string | Buffer | Entry | Spec
export interface Spec { [name: string]: Node }

export const file = (content: string | Buffer, meta: Meta = {}): Entry => ({ [KIND]: 'file', content, ...meta })
export const dir = (entries: Spec = {}, meta: Meta & { opaque?: OpaqueDialect } = {}): Entry =>
  ({ [KIND]: 'dir', entries, ...meta })
export const symlink = (target: string, meta: Pick<Meta, 'uid' | 'gid' | 'mtime' | 'atime'> = {}): Entry =>
  ({ [KIND]: 'symlink', target, ...meta })
/** A hard link to `to`, a path relative to the root makeTree was given (created earlier in the spec). */
export const hardlink = (to: string): Entry => ({ [KIND]: 'hardlink', to })
export const whiteout = (dialect: Dialect = 'aufs'): Entry => ({ [KIND]: 'whiteout', dialect })
export const fifo = (meta: Meta = {}): Entry => ({ [KIND]: 'fifo', ...meta })
export const chr = (major: number, minor: number, meta: Meta = {}): Entry => ({ [KIND]: 'chr', major, minor, ...meta })
/** A file of `size` bytes that is all hole except the given [offset, content] pieces. */
export const sparse = (size: number, data: Array<[number, string | Buffer]> = [], meta: Meta = {}): Entry =>
  ({ [KIND]: 'sparse', size, data, ...meta })

function isEntry (n: Node): n is Entry {
  return typeof n === 'object' && !Buffer.isBuffer(n) && typeof (n as Record<string, unknown>)[KIND] === 'string'
}

function applyMeta (p: string, m: Meta, isLink = false): void {
  if (m.uid !== undefined || m.gid !== undefined) {
    fs.lchownSync(p, m.uid ?? -1, m.gid ?? -1)
  }
  if (!isLink && m.mode !== undefined) fs.chmodSync(p, m.mode)
  if (m.xattrs !== undefined) {
    for (const [k, v] of Object.entries(m.xattrs)) setxattr(p, k, v, 0, !isLink)
  }
  if (m.mtime !== undefined || m.atime !== undefined) {
    const mt = m.mtime ?? m.atime as number
    fs.lutimesSync(p, m.atime ?? mt, mt)
  }
}

/** Create `spec` inside `root` (made if missing). Returns root. */
export function makeTree (root: string, spec: Spec): string {
  fs.mkdirSync(root, { recursive: true })
  build(root, root, spec)
  return root
}

function build (top: string, at: string, spec: Spec): void {
  for (const [name, node] of Object.entries(spec)) {
    const p = path.join(at, name)
    if (typeof node === 'string' || Buffer.isBuffer(node)) {
      fs.writeFileSync(p, node, { mode: 0o644 })
      fs.chmodSync(p, 0o644)
      continue
    }
    if (!isEntry(node)) {
      fs.mkdirSync(p, { mode: 0o755 })
      fs.chmodSync(p, 0o755)
      build(top, p, node)
      continue
    }
    switch (node[KIND]) {
      case 'file':
        fs.writeFileSync(p, node.content)
        fs.chmodSync(p, 0o644)
        applyMeta(p, node)
        break
      case 'dir':
        fs.mkdirSync(p)
        fs.chmodSync(p, 0o755)
        build(top, p, node.entries)
        if (node.opaque === 'aufs') fs.writeFileSync(path.join(p, '.wh..wh..opq'), '')
        else if (node.opaque === 'overlay') setxattr(p, 'trusted.overlay.opaque', 'y')
        else if (node.opaque === 'overlay-user') setxattr(p, 'user.overlay.opaque', 'y')
        applyMeta(p, node)
        break
      case 'symlink':
        fs.symlinkSync(node.target, p)
        applyMeta(p, node, true)
        break
      case 'hardlink':
        fs.linkSync(path.join(top, node.to), p)
        break
      case 'whiteout':
        if (node.dialect === 'aufs') fs.writeFileSync(path.join(at, '.wh.' + name), '')
        else mknod(p, fs.constants.S_IFCHR | 0o000, 0, 0)
        break
      case 'fifo':
        mknod(p, fs.constants.S_IFIFO | 0o644)
        applyMeta(p, node)
        break
      case 'chr':
        mknod(p, fs.constants.S_IFCHR | 0o644, node.major, node.minor)
        applyMeta(p, node)
        break
      case 'sparse': {
        const fd = fs.openSync(p, 'w', 0o644)
        try {
          for (const [off, content] of node.data) fs.writeSync(fd, Buffer.from(content), 0, Buffer.byteLength(content), off)
          fs.ftruncateSync(fd, node.size)
        } finally { fs.closeSync(fd) }
        fs.chmodSync(p, 0o644)
        applyMeta(p, node)
        break
      }
    }
  }
}

export interface SnapshotOptions {
  /** include mtime (seconds, as integers) */
  times?: boolean
  /** include atime too (reading through a union may update a branch's atimes) */
  atime?: boolean
  /** include st_blocks */
  blocks?: boolean
  /** include the raw st_ino */
  ino?: boolean
  /** include st_nlink of directories (filesystems disagree about merged dirs) */
  dirNlink?: boolean
  /** which xattrs to list: all names (default), only user.*, or none */
  xattrs?: 'all' | 'user' | 'none'
  /** leave out the xattrs this returns true for */
  ignoreXattr?: (name: string) => boolean
  /** relative paths to leave out (with everything below them) */
  exclude?: (rel: string) => boolean
}

const TYPE_NAMES: Array<[number, string]> = [
  [fs.constants.S_IFREG, 'file'],
  [fs.constants.S_IFDIR, 'dir'],
  [fs.constants.S_IFLNK, 'symlink'],
  [fs.constants.S_IFCHR, 'chr'],
  [fs.constants.S_IFBLK, 'blk'],
  [fs.constants.S_IFIFO, 'fifo'],
  [fs.constants.S_IFSOCK, 'sock']
]

export function typeName (mode: number | bigint): string {
  const fmt = Number(mode) & fs.constants.S_IFMT
  return TYPE_NAMES.find(([m]) => m === fmt)?.[1] ?? `type${fmt.toString(8)}`
}

/** Linux's dev_t split (glibc's gnu_dev_major / gnu_dev_minor). */
export function major (dev: number | bigint): number {
  const d = BigInt(dev)
  return Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn))
}

export function minor (dev: number | bigint): number {
  const d = BigInt(dev)
  return Number((d & 0xffn) | ((d >> 12n) & ~0xffn))
}

function hashFile (p: string): string {
  const h = createHash('sha256')
  const fd = fs.openSync(p, 'r')
  try {
    const buf = Buffer.alloc(1 << 20)
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null)
      if (n === 0) break
      h.update(buf.subarray(0, n))
    }
  } finally { fs.closeSync(fd) }
  return h.digest('hex').slice(0, 16)
}

/**
 * path (relative, '.' for the root itself) -> description. The root's own
 * line is included; entries are in sorted order. A name the listing shows but
 * lstat cannot find is recorded as such rather than thrown.
 */
export function snapshotTree (root: string, opts: SnapshotOptions = {}): Record<string, string> {
  const lines: Array<[string, fs.BigIntStats, string]> = []
  const errors: Record<string, string> = {}
  const walk = (rel: string): void => {
    const abs = rel === '.' ? root : path.join(root, rel)
    let st: fs.BigIntStats
    try {
      st = fs.lstatSync(abs, { bigint: true })
    } catch (e) {
      // A name the listing shows but lookup refuses: record it, it is a finding.
      if (rel === '.') throw e
      errors[rel] = `listed but lstat fails: ${String((e as { code?: unknown }).code ?? e)}`
      return
    }
    lines.push([rel, st, abs])
    if (st.isDirectory()) {
      for (const name of fs.readdirSync(abs).sort()) {
        const child = rel === '.' ? name : `${rel}/${name}`
        if (opts.exclude?.(child) === true) continue
        walk(child)
      }
    }
  }
  walk('.')
  const xmode = opts.xattrs ?? 'all'
  const xattrs = xmode === 'none' ? {} : xattrsOf(lines.map(l => l[2]))
  const firstOfIno = new Map<string, string>()
  const out: Record<string, string> = {}
  for (const [rel, st, abs] of lines) {
    const type = typeName(st.mode)
    const parts = [type, (Number(st.mode) & 0o7777).toString(8).padStart(4, '0'), `uid=${st.uid}`, `gid=${st.gid}`]
    if (type !== 'dir' || opts.dirNlink === true) parts.push(`nlink=${st.nlink}`)
    if (type === 'file') {
      parts.push(`size=${st.size}`, `sha=${hashFile(abs)}`)
      const key = `${st.dev}:${st.ino}`
      const first = firstOfIno.get(key)
      if (first !== undefined) parts.push(`links=${first}`)
      else if (st.nlink > 1n) firstOfIno.set(key, rel)
    }
    if (type === 'symlink') parts.push(`-> ${fs.readlinkSync(abs)}`)
    if (type === 'chr' || type === 'blk') parts.push(`rdev=${major(st.rdev)}:${minor(st.rdev)}`)
    if (opts.blocks === true) parts.push(`blocks=${st.blocks}`)
    if (opts.atime === true) parts.push(`atime=${st.atimeMs / 1000n}`)
    if (opts.times === true) parts.push(`mtime=${st.mtimeMs / 1000n}`)
    if (opts.ino === true) parts.push(`ino=${st.ino}`)
    const xa = xattrs[abs]
    if (typeof xa === 'string') parts.push(`xattrs=${xa}`)
    else if (xa !== undefined) {
      const names = Object.keys(xa)
        .filter(n => (xmode === 'all' || n.startsWith('user.')) && opts.ignoreXattr?.(n) !== true).sort()
      if (names.length > 0) parts.push('xattrs={' + names.map(n => `${n}=${JSON.stringify(xa[n].toString('latin1'))}`).join(',') + '}')
    }
    out[rel] = parts.join(' ')
  }
  for (const [rel, msg] of Object.entries(errors)) out[rel] = msg
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0))
}

/** Names (recursively, relative) of everything under dir, sorted; [] if dir is missing. */
export function listTree (dir: string): string[] {
  if (!fs.existsSync(dir)) return []
  return Object.keys(snapshotTree(dir, { xattrs: 'none' })).filter(p => p !== '.')
}

/**
 * True for an xattr a union keeps for itself in a writable branch (overlayfs'
 * origin/impure/uuid/redirect..., unionfs-ts' own), but not for the opaque
 * markers, which are part of what a branch means.
 */
export function privateXattr (name: string): boolean {
  if (name === 'trusted.overlay.opaque' || name === 'user.overlay.opaque') return false
  return name.startsWith('trusted.overlay.') || name.startsWith('user.overlay.') ||
    name.startsWith('trusted.unionfs-ts.') || name.startsWith('user.unionfs-ts.')
}

/** Snapshot of a writable branch: without the union's private xattrs and private dirs. */
export function snapshotUpper (upper: string, opts: SnapshotOptions = {}): Record<string, string> {
  return snapshotTree(upper, {
    ignoreXattr: privateXattr,
    exclude: rel => /^\.wh\.\.wh\.(?!\.opq$)/.test(path.basename(rel)),
    ...opts
  })
}
