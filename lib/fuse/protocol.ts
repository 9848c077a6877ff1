/**
 * The kernel's FUSE wire protocol: opcodes, flag bits and struct layouts
 * (byte offsets and sizes), as <linux/fuse.h> defines them for protocol 7.45.
 *
 * Everything on the wire is little-endian on the machines we run on and
 * every struct is padded to 8 bytes. Offsets below are byte offsets inside
 * the struct; the codec (codec.ts) is the only reader of these layouts.
 *
 * We implement 7.45 and answer INIT with min(kernel minor, 45). What the
 * minors past 7.31 (the oldest we accept) changed, and where it shows here:
 *   7.33  fuse_setxattr_in grows to 16 bytes, only when SETXATTR_EXT is
 *         agreed; fuse_open_in/fuse_create_in.open_flags (were padding)
 *   7.36  fuse_init_in/out flags2 (INIT_EXT)
 *   7.37  TMPFILE (open with O_TMPFILE), with CREATE's layouts (ops-file.ts)
 *   7.38  total_extlen in the in header (extensions only for flags we never ask for)
 *   7.39  STATX (fuse_statx_in/out): not answered, see ops.ts
 *   7.40  fuse_init_out.max_stack_depth and the PASSTHROUGH flag;
 *         fuse_open_out.backing_id (was padding) and FOPEN_PASSTHROUGH;
 *         NOTIFY_RESEND and HAS_RESEND (never asked for: the resend bit is
 *         bit 63 of `unique`, past what a JS number holds exactly)
 *   7.41  ALLOW_IDMAP, 7.42 OVER_IO_URING, 7.43 REQUEST_TIMEOUT and
 *         fuse_init_out.request_timeout: none asked for, the fields stay 0
 *   7.44  NOTIFY_INC_EPOCH, 7.45 COPY_FILE_RANGE_64 and NOTIFY_PRUNE: unused
 * Every other struct has had one size since 7.31. fuse_init_out is 64 bytes
 * throughout: the new fields took its reserved tail.
 */

export const FUSE_KERNEL_VERSION = 7
/** The newest minor version whose layouts this transport implements. */
export const FUSE_IMPLEMENTED_MINOR = 45
/** The oldest kernel minor we accept. */
export const FUSE_MIN_MINOR = 31

export const FUSE_ROOT_ID = 1

export const Op = {
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  SETATTR: 4,
  READLINK: 5,
  SYMLINK: 6,
  MKNOD: 8,
  MKDIR: 9,
  UNLINK: 10,
  RMDIR: 11,
  RENAME: 12,
  LINK: 13,
  OPEN: 14,
  READ: 15,
  WRITE: 16,
  STATFS: 17,
  RELEASE: 18,
  FSYNC: 20,
  SETXATTR: 21,
  GETXATTR: 22,
  LISTXATTR: 23,
  REMOVEXATTR: 24,
  FLUSH: 25,
  INIT: 26,
  OPENDIR: 27,
  READDIR: 28,
  RELEASEDIR: 29,
  FSYNCDIR: 30,
  GETLK: 31,
  SETLK: 32,
  SETLKW: 33,
  ACCESS: 34,
  CREATE: 35,
  INTERRUPT: 36,
  BMAP: 37,
  DESTROY: 38,
  IOCTL: 39,
  POLL: 40,
  NOTIFY_REPLY: 41,
  BATCH_FORGET: 42,
  FALLOCATE: 43,
  READDIRPLUS: 44,
  RENAME2: 45,
  LSEEK: 46,
  COPY_FILE_RANGE: 47,
  SETUPMAPPING: 48,
  REMOVEMAPPING: 49,
  SYNCFS: 50,
  TMPFILE: 51,
  STATX: 52,
  COPY_FILE_RANGE_64: 53
} as const

/** Opcode number -> name, for the debug log. */
export const OP_NAMES: readonly string[] = (() => {
  const names: string[] = []
  for (const [name, n] of Object.entries(Op)) names[n] = name
  return names
})()

export const Notify = {
  POLL: 1,
  INVAL_INODE: 2,
  INVAL_ENTRY: 3,
  STORE: 4,
  RETRIEVE: 5,
  DELETE: 6,
  RESEND: 7,
  INC_EPOCH: 8,
  PRUNE: 9
} as const

/** INIT flags (fuse_init_in/out.flags; bits 32..63 travel in flags2). */
export const Init = {
  ASYNC_READ: 1 << 0,
  POSIX_LOCKS: 1 << 1,
  FILE_OPS: 1 << 2,
  ATOMIC_O_TRUNC: 1 << 3,
  EXPORT_SUPPORT: 1 << 4,
  BIG_WRITES: 1 << 5,
  DONT_MASK: 1 << 6,
  SPLICE_WRITE: 1 << 7,
  SPLICE_MOVE: 1 << 8,
  SPLICE_READ: 1 << 9,
  FLOCK_LOCKS: 1 << 10,
  HAS_IOCTL_DIR: 1 << 11,
  AUTO_INVAL_DATA: 1 << 12,
  DO_READDIRPLUS: 1 << 13,
  READDIRPLUS_AUTO: 1 << 14,
  ASYNC_DIO: 1 << 15,
  WRITEBACK_CACHE: 1 << 16,
  NO_OPEN_SUPPORT: 1 << 17,
  PARALLEL_DIROPS: 1 << 18,
  HANDLE_KILLPRIV: 1 << 19,
  POSIX_ACL: 1 << 20,
  ABORT_ERROR: 1 << 21,
  MAX_PAGES: 1 << 22,
  CACHE_SYMLINKS: 1 << 23,
  NO_OPENDIR_SUPPORT: 1 << 24,
  EXPLICIT_INVAL_DATA: 1 << 25,
  MAP_ALIGNMENT: 1 << 26,
  SUBMOUNTS: 1 << 27,
  HANDLE_KILLPRIV_V2: 1 << 28,
  SETXATTR_EXT: 1 << 29,
  INIT_EXT: 1 << 30,
  // 1 << 31 is reserved. The flags are u32 on the wire: combine with `>>> 0`.
  INIT_RESERVED: 2 ** 31
} as const

/** INIT flags 32..63, as they travel in flags2 (bit n of flags2 is flag 32 + n). */
export const Init2 = {
  SECURITY_CTX: 1 << 0,
  HAS_INODE_DAX: 1 << 1,
  CREATE_SUPP_GROUP: 1 << 2,
  HAS_EXPIRE_ONLY: 1 << 3,
  DIRECT_IO_ALLOW_MMAP: 1 << 4,
  PASSTHROUGH: 1 << 5,
  NO_EXPORT_SUPPORT: 1 << 6,
  HAS_RESEND: 1 << 7,
  ALLOW_IDMAP: 1 << 8,
  OVER_IO_URING: 1 << 9,
  REQUEST_TIMEOUT: 1 << 10
} as const

/**
 * The kernel's FILESYSTEM_MAX_STACK_DEPTH: fuse_init_out.max_stack_depth
 * must be 1 or 2 for passthrough to be accepted.
 */
export const FILESYSTEM_MAX_STACK_DEPTH = 2

/** fuse_setattr_in.valid */
export const Fattr = {
  MODE: 1 << 0,
  UID: 1 << 1,
  GID: 1 << 2,
  SIZE: 1 << 3,
  ATIME: 1 << 4,
  MTIME: 1 << 5,
  FH: 1 << 6,
  ATIME_NOW: 1 << 7,
  MTIME_NOW: 1 << 8,
  LOCKOWNER: 1 << 9,
  CTIME: 1 << 10,
  KILL_SUIDGID: 1 << 11
} as const

/** fuse_open_out.open_flags */
export const Fopen = {
  DIRECT_IO: 1 << 0,
  KEEP_CACHE: 1 << 1,
  NONSEEKABLE: 1 << 2,
  CACHE_DIR: 1 << 3,
  STREAM: 1 << 4,
  NOFLUSH: 1 << 5,
  PARALLEL_DIRECT_WRITES: 1 << 6,
  PASSTHROUGH: 1 << 7
} as const

export const FUSE_GETATTR_FH = 1 << 0
export const FUSE_FSYNC_FDATASYNC = 1 << 0
export const FUSE_RELEASE_FLUSH = 1 << 0
/** fuse_write_in.write_flags: the writer lacks CAP_FSETID (HANDLE_KILLPRIV_V2). */
export const FUSE_WRITE_KILL_SUIDGID = 1 << 2
/** fuse_open_in/fuse_create_in.open_flags: an O_TRUNC opener lacks CAP_FSETID (HANDLE_KILLPRIV_V2). */
export const FUSE_OPEN_KILL_SUIDGID = 1 << 0
/** fuse_setxattr_in.setxattr_flags: an ACL setter outside the file's group lacks CAP_FSETID (POSIX_ACL). */
export const FUSE_SETXATTR_ACL_KILL_SGID = 1 << 0

/** The kernel refuses read buffers smaller than this. */
export const FUSE_MIN_READ_BUFFER = 8192

/**
 * Struct layouts. Each is `{ SIZE, field: offset, ... }`; u64 fields are
 * read and written as two u32 halves by the codec.
 */
export const InHeader = {
  SIZE: 40,
  len: 0, // u32
  opcode: 4, // u32
  unique: 8, // u64
  nodeid: 16, // u64
  uid: 24, // u32
  gid: 28, // u32
  pid: 32, // u32
  totalExtlen: 36 // u16, in 8-byte units (7.36+)
} as const

export const OutHeader = {
  SIZE: 16,
  len: 0, // u32
  error: 4, // i32, negative errno or notify code
  unique: 8 // u64, 0 for notifications
} as const

/** fuse_attr: 88 bytes. */
export const AttrLayout = {
  SIZE: 88,
  ino: 0,
  size: 8,
  blocks: 16,
  atime: 24,
  mtime: 32,
  ctime: 40,
  atimensec: 48,
  mtimensec: 52,
  ctimensec: 56,
  mode: 60,
  nlink: 64,
  uid: 68,
  gid: 72,
  rdev: 76,
  blksize: 80,
  flags: 84
} as const

/** fuse_entry_out: 40 bytes then a fuse_attr. */
export const EntryOut = {
  SIZE: 40 + AttrLayout.SIZE,
  nodeid: 0,
  generation: 8,
  entryValid: 16,
  attrValid: 24,
  entryValidNsec: 32,
  attrValidNsec: 36,
  attr: 40
} as const

/** fuse_attr_out: 16 bytes then a fuse_attr. */
export const AttrOut = {
  SIZE: 16 + AttrLayout.SIZE,
  attrValid: 0,
  attrValidNsec: 8,
  attr: 16
} as const

/** fuse_open_out: backing_id (7.40) took the padding word; it is an i32. */
export const OpenOut = { SIZE: 16, fh: 0, openFlags: 8, backingId: 12 } as const
export const WriteOut = { SIZE: 8, size: 0 } as const
export const GetxattrOut = { SIZE: 8, size: 0 } as const
export const LseekOut = { SIZE: 8, offset: 0 } as const

/** fuse_statfs_out = fuse_kstatfs: 80 bytes. */
export const StatfsOut = {
  SIZE: 80,
  blocks: 0,
  bfree: 8,
  bavail: 16,
  files: 24,
  ffree: 32,
  bsize: 40,
  namelen: 44,
  frsize: 48
} as const

/** fuse_init_out: 64 bytes; before 7.23 only the first 24 were read. */
export const InitOut = {
  SIZE: 64,
  major: 0,
  minor: 4,
  maxReadahead: 8,
  flags: 12,
  maxBackground: 16, // u16
  congestionThreshold: 18, // u16
  maxWrite: 20,
  timeGran: 24,
  maxPages: 28, // u16
  mapAlignment: 30, // u16
  flags2: 32,
  maxStackDepth: 36, // 7.40
  requestTimeout: 40 // u16, 7.43; the rest is reserved
} as const

/** fuse_dirent: 24 bytes, then the name, padded to 8. */
export const Dirent = { SIZE: 24, ino: 0, off: 8, namelen: 16, type: 20 } as const
/** fuse_direntplus: a fuse_entry_out, then a fuse_dirent. */
export const DirentPlus = { SIZE: EntryOut.SIZE + Dirent.SIZE, entry: 0, dirent: EntryOut.SIZE } as const

export const NotifyInvalInodeOut = { SIZE: 24, ino: 0, off: 8, len: 16 } as const
export const NotifyInvalEntryOut = { SIZE: 16, parent: 0, namelen: 8, flags: 12 } as const

/** Request body sizes (the parts before any trailing names or data). */
export const InSize = {
  init: 64, // 16 before 7.36
  initCompat: 16,
  forget: 8,
  batchForget: 8,
  forgetOne: 16,
  getattr: 16,
  setattr: 88,
  mknod: 16,
  mkdir: 8,
  rename: 8,
  rename2: 16,
  link: 8,
  open: 8,
  create: 16,
  release: 24,
  flush: 24,
  read: 40,
  write: 40,
  fsync: 16,
  setxattr: 8,
  setxattrExt: 16,
  getxattr: 8,
  access: 8,
  interrupt: 8,
  fallocate: 32,
  lseek: 24
} as const

/** Round a record length up to the next multiple of 8. */
export function align8 (n: number): number {
  return (n + 7) & ~7
}
