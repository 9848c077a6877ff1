/**
 * Branches: the directories a union is made of.
 *
 * Read-only is a type. The core holds `lowers: readonly ReadonlyBranch[]`
 * and at most one `WritableBranch`, so code that writes a lower branch does
 * not compile. A branch speaks in branch-relative paths ('/' is its root,
 * '/a/b' a path below it) and never follows a symlink in a path it is given:
 * the resolver only hands out paths whose every parent it has seen to be a
 * real directory in that branch (lstat), so a hostile layer's `etc -> /`
 * cannot lead a lookup outside the branch.
 *
 * Branch-relative paths, and the names and symlink targets a branch
 * returns, are byte strings (paths.ts): every call hands node:fs the bytes
 * themselves, so a name that is not UTF-8 is found, listed and made as it
 * is on disk. The root is a host path like any other JavaScript string.
 *
 * Calls are synchronous on purpose: a FUSE request is served on the one JS
 * thread, and a synchronous call skips the thread-pool round trip that an
 * asynchronous one costs on every lookup and stat (see bench/ for the
 * numbers). Every error is node:fs's own, shaped `code`/`errno`/`syscall`/`path`.
 */
import * as fs from 'node:fs'
import { fsError } from '../errors'
import * as native from '../native'
import { fsPath, toBytes } from '../union/paths'

export interface ReadonlyBranch {
  /** Absolute real path of the branch directory (a JavaScript string, not bytes). */
  readonly root: string
  /** Position in the union: 0 is the top. */
  readonly index: number
  readonly writable: boolean
  /**
   * The host path of a branch-relative path, for the system call at hand
   * (as node:fs takes it: paths.ts `fsPath`): past PATH_MAX it goes
   * through /proc/self/fd and is valid only until the current synchronous
   * call returns.
   */
  real (rel: string): string | Buffer
  /**
   * lstat, or undefined when the name is not there (ENOENT/ENOTDIR). BigInt
   * stats carry exact nanosecond times, for a few hundred nanoseconds more.
   */
  lstat (rel: string): fs.BigIntStats | undefined
  readdir (rel: string): fs.Dirent[]
  readlink (rel: string): string
  /** Opens for reading only. */
  openRead (rel: string): number
  getxattr (rel: string, name: string): Buffer | undefined
  listxattr (rel: string): string[]
  statfs (): fs.StatsFs
}

export interface WritableBranch extends ReadonlyBranch {
  readonly writable: true
  open (rel: string, flags: number, mode?: number): number
  mkdir (rel: string, mode: number): void
  mknod (rel: string, mode: number, rdev: number): void
  symlink (target: string, rel: string): void
  link (existingRel: string, rel: string): void
  unlink (rel: string): void
  rmdir (rel: string): void
  /** Removes a tree inside the branch (the work dir's leftovers). */
  removeTree (rel: string): void
  rename (from: string, to: string, flags?: number): void
  chmod (rel: string, mode: number): void
  lchown (rel: string, uid: number, gid: number): void
  utimens (rel: string, atime: native.TimeArg, mtime: native.TimeArg): void
  truncate (rel: string, size: number): void
  setxattr (rel: string, name: string, value: Buffer, flags?: number): void
  removexattr (rel: string, name: string): void
}

/** Linux's PATH_MAX: the longest path a system call takes, its NUL included. */
const PATH_MAX = 4096
const O_PATH = 0o10000000
const heads: number[] = []

function closeHeads (): void {
  for (const fd of heads.splice(0)) fs.closeSync(fd)
}

/**
 * The path the kernel takes for the absolute path `p` (a byte string,
 * handed over as `fsPath` does), however long. A path past PATH_MAX is cut
 * at a '/', its head opened (O_PATH, a directory, not a symlink) and
 * `/proc/self/fd/N/tail` names the whole, as often as it takes. Every
 * branch call is synchronous, so the name is used before the heads are
 * closed, in the next microtask (a serving thread that loops on blocking
 * reads never reaches a later turn of its event loop).
 */
function kernelPath (p: string): string | Buffer {
  let head = ''
  let rest = p
  while (head.length + rest.length >= PATH_MAX) {
    // The head and the part cut off, with its NUL, fit in PATH_MAX.
    const cut = rest.lastIndexOf('/', PATH_MAX - 2 - head.length)
    if (cut <= 0) throw fsError('ENAMETOOLONG', 'open', p)
    if (heads.length === 0) queueMicrotask(closeHeads)
    const fd = fs.openSync(fsPath(head + rest.slice(0, cut)), O_PATH | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW)
    heads.push(fd)
    head = `/proc/self/fd/${fd}`
    rest = rest.slice(cut)
  }
  return fsPath(head + rest)
}

class DirBranch implements ReadonlyBranch {
  readonly writable: boolean = false
  /** The root's bytes, as a byte string and as node:fs takes them. */
  private readonly rootBytes: string
  private readonly rootPath: string | Buffer
  constructor (readonly root: string, readonly index: number) {
    this.rootBytes = toBytes(root)
    this.rootPath = fsPath(this.rootBytes)
  }

  real (rel: string): string | Buffer {
    return rel === '/' ? this.rootPath : kernelPath(this.rootBytes + rel)
  }

  lstat (rel: string): fs.BigIntStats | undefined {
    try {
      return fs.lstatSync(this.real(rel), { bigint: true, throwIfNoEntry: false })
    } catch (err) {
      // A parent that is not a directory in this branch means the name is
      // not here; anything else (EACCES, ELOOP, EIO) is the answer.
      if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined
      throw err
    }
  }

  readdir (rel: string): fs.Dirent[] {
    return fs.readdirSync(this.real(rel), { withFileTypes: true, encoding: 'latin1' })
  }

  readlink (rel: string): string {
    return fs.readlinkSync(this.real(rel), { encoding: 'latin1' })
  }

  openRead (rel: string): number {
    return fs.openSync(this.real(rel), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW)
  }

  getxattr (rel: string, name: string): Buffer | undefined {
    return native.lfindxattr(this.real(rel), name)
  }

  listxattr (rel: string): string[] {
    try {
      return native.llistxattr(this.real(rel))
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOTSUP' || code === 'EOPNOTSUPP') return []
      throw err
    }
  }

  statfs (): fs.StatsFs {
    return fs.statfsSync(this.root)
  }
}

class WritableDirBranch extends DirBranch implements WritableBranch {
  override readonly writable = true as const

  open (rel: string, flags: number, mode?: number): number {
    return fs.openSync(this.real(rel), flags | fs.constants.O_NOFOLLOW, mode)
  }

  mkdir (rel: string, mode: number): void { fs.mkdirSync(this.real(rel), mode) }
  mknod (rel: string, mode: number, rdev: number): void { native.mknod(this.real(rel), mode, rdev) }
  symlink (target: string, rel: string): void { fs.symlinkSync(fsPath(target), this.real(rel)) }
  link (existingRel: string, rel: string): void { fs.linkSync(this.real(existingRel), this.real(rel)) }
  unlink (rel: string): void { fs.unlinkSync(this.real(rel)) }
  rmdir (rel: string): void { fs.rmdirSync(this.real(rel)) }
  removeTree (rel: string): void { fs.rmSync(this.real(rel), { recursive: true, force: true }) }

  rename (from: string, to: string, flags = 0): void {
    if (flags === 0) fs.renameSync(this.real(from), this.real(to))
    else native.renameat2(this.real(from), this.real(to), flags)
  }

  chmod (rel: string, mode: number): void { fs.chmodSync(this.real(rel), mode) }
  lchown (rel: string, uid: number, gid: number): void { fs.lchownSync(this.real(rel), uid, gid) }
  utimens (rel: string, atime: native.TimeArg, mtime: native.TimeArg): void {
    native.utimensat(this.real(rel), atime, mtime, true)
  }

  truncate (rel: string, size: number): void {
    const fd = this.open(rel, fs.constants.O_WRONLY)
    try { fs.ftruncateSync(fd, size) } finally { fs.closeSync(fd) }
  }

  setxattr (rel: string, name: string, value: Buffer, flags = 0): void {
    native.lsetxattr(this.real(rel), name, value, flags)
  }

  removexattr (rel: string, name: string): void { native.lremovexattr(this.real(rel), name) }
}

export function readonlyBranch (root: string, index: number): ReadonlyBranch {
  return new DirBranch(root, index)
}

export function writableBranch (root: string, index: number): WritableBranch {
  return new WritableDirBranch(root, index)
}
