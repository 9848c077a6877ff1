/**
 * The union core's public surface: what a transport (the FUSE adapter, or a
 * test calling it in-process) may ask of a union.
 *
 * Paths are union paths: absolute, '/'-separated, normalised ('/' is the
 * root, no trailing slash, no '.' or '..' parts). Every method throws an
 * FsError-shaped error (`code`, `errno`, `syscall`, `path`) on failure.
 * Nothing here knows about FUSE: node ids, lookup counts and reply encoding
 * belong to the transport.
 */

/**
 * Times are milliseconds since the epoch, fractional, as node:fs reports
 * them; the optional `*Ns` fields carry the exact nanoseconds when known.
 */
export interface Attr {
  ino: number
  mode: number
  nlink: number
  uid: number
  gid: number
  rdev: number
  size: number
  blocks: number
  blksize: number
  atimeMs: number
  mtimeMs: number
  ctimeMs: number
  atimeNs?: bigint
  mtimeNs?: bigint
  ctimeNs?: bigint
}

export interface DirEntry {
  name: string
  ino: number
  /** The S_IFMT bits of the entry's mode. */
  type: number
}

/** Who asks: new files are owned by this uid/gid. */
export interface Caller {
  uid: number
  gid: number
  pid: number
  /**
   * The caller's umask, when the union applies it (acl.ts: not under a
   * default ACL); absent when the mode comes already masked.
   */
  umask?: number
}

export interface StatFs {
  bsize: number
  frsize: number
  blocks: number
  bfree: number
  bavail: number
  files: number
  ffree: number
  namemax: number
}

/**
 * A time to set: milliseconds since the epoch, [seconds, nanoseconds] for
 * an exact time, or 'now'. Undefined leaves it alone.
 */
export type TimeSpec = number | [number, number] | 'now' | undefined

export const RENAME_NOREPLACE = 1
export const RENAME_EXCHANGE = 2

export interface UnionFsApi {
  getattr (path: string): Promise<Attr>
  /** Attributes through an open handle (fgetattr). */
  fgetattr (fh: number): Promise<Attr>
  readlink (path: string): Promise<string>
  /** The merged listing, without '.' and '..'. */
  readdir (path: string): Promise<DirEntry[]>

  mkdir (path: string, mode: number, caller: Caller): Promise<Attr>
  mknod (path: string, mode: number, rdev: number, caller: Caller): Promise<Attr>
  symlink (target: string, path: string, caller: Caller): Promise<Attr>
  link (existing: string, path: string): Promise<Attr>
  unlink (path: string): Promise<void>
  rmdir (path: string): Promise<void>
  rename (from: string, to: string, flags: number): Promise<void>

  chmod (path: string, mode: number): Promise<void>
  /** uid or gid -1 leaves it unchanged. */
  chown (path: string, uid: number, gid: number): Promise<void>
  truncate (path: string, size: number): Promise<void>
  ftruncate (fh: number, size: number): Promise<void>
  utimens (path: string, atime: TimeSpec, mtime: TimeSpec): Promise<void>
  /**
   * chmod, chown, utimens and the xattr calls of an open file, through its
   * handle: for a file that has no name left (unlinked while open), as
   * fchmod(2) and friends reach it natively. The transport uses the paths
   * otherwise.
   */
  fchmod (fh: number, mode: number): Promise<void>
  fchown (fh: number, uid: number, gid: number): Promise<void>
  futimens (fh: number, atime: TimeSpec, mtime: TimeSpec): Promise<void>
  fgetxattr (fh: number, name: string): Promise<Buffer>
  flistxattr (fh: number): Promise<string[]>
  fsetxattr (fh: number, name: string, value: Buffer, flags: number): Promise<void>
  fremovexattr (fh: number, name: string): Promise<void>

  /** O_* flags as open(2) takes them. Returns a handle number. */
  open (path: string, flags: number): Promise<number>
  create (path: string, flags: number, mode: number, caller: Caller): Promise<{ fh: number, attr: Attr }>
  /**
   * open(2) with O_TMPFILE in directory `dir`: an unnamed file, open with
   * `flags`, that is gone with its last handle unless `linkHandle` names
   * it. Optional: a transport answers ENOSYS without it.
   */
  tmpfile?: (dir: string, flags: number, mode: number, caller: Caller) => Promise<{ fh: number, attr: Attr }>
  /** linkat(2) of the file open as `fh` (an O_TMPFILE one) to `path`. */
  linkHandle?: (fh: number, path: string) => Promise<Attr>
  read (fh: number, buf: Buffer, length: number, position: number): Promise<number>
  write (fh: number, buf: Buffer, length: number, position: number): Promise<number>
  flush (fh: number): Promise<void>
  fsync (fh: number, datasync: boolean): Promise<void>
  release (fh: number): Promise<void>
  fallocate (fh: number, mode: number, offset: number, length: number): Promise<void>
  /** SEEK_DATA / SEEK_HOLE (and SEEK_SET/CUR/END) on an open handle. */
  lseek (fh: number, offset: number, whence: number): Promise<number>

  getxattr (path: string, name: string): Promise<Buffer>
  listxattr (path: string): Promise<string[]>
  /** flags: XATTR_CREATE (1) / XATTR_REPLACE (2) */
  setxattr (path: string, name: string, value: Buffer, flags: number): Promise<void>
  removexattr (path: string, name: string): Promise<void>

  statfs (path: string): Promise<StatFs>
  /** Flush everything; called before unmount returns. */
  destroy (): Promise<void>

  /**
   * Optional. The branch file descriptor behind open handle `fh`, when that
   * descriptor serves the handle for its whole life: the handle is on the
   * writable branch, or the union has none (no copy-up can re-point it).
   * Undefined otherwise, and for an unknown handle. The FUSE transport lets
   * the kernel read and write such handles' files itself (passthrough);
   * the descriptor stays the union's (the kernel takes its own reference).
   */
  backingFd? (fh: number): number | undefined

  /**
   * Optional. The branch file descriptor a read of open handle `fh` goes to
   * now (a copy-up may re-point the handle later); throws EBADF for an
   * unknown handle, as `read` does. The FUSE transport splices large reads
   * from it into the device instead of reading them into a buffer; the
   * descriptor stays the union's.
   */
  readFd? (fh: number): number

  /**
   * Optional. How to open this same union in another thread: `module`
   * exports `openUnion(arg)`, resolving to a UnionFsApi over the same
   * branches; `arg` is structured-cloneable. The FUSE transport then serves
   * the mount from a worker thread that owns that union (lib/fuse/thread.ts);
   * undefined keeps it on this thread.
   */
  threadSpec? (): UnionThreadSpec | undefined

  /**
   * Optional. `listener` learns of changes the union makes beyond what the
   * call named: each entry copied up (a file and every ancestor directory
   * the copy-up made). The FUSE transport turns them into invalidation
   * notices for what the kernel may have cached (attributes, hard links).
   */
  watch? (listener: (change: UnionChange) => void): void

  /**
   * Optional. getattr for a name looked up in a directory, answering
   * undefined where getattr would throw ENOENT: a missing name is the
   * common case of $PATH and import searches, and an error object with a
   * stack costs more than the lookup itself.
   */
  lookupAttr? (path: string): Promise<Attr | undefined>
}

export interface UnionChange {
  kind: 'copy-up'
  path: string
}

export interface UnionThreadSpec {
  module: string
  arg: unknown
}
