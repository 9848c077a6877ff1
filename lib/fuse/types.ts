/**
 * The transport's public types: mount options and what a mounted session
 * offers its owner.
 */
import { availableParallelism } from 'node:os'
import type { ReaddirPlusMode } from './listing-attrs'

/**
 * The serving thread's default spin (FuseMountOptions.spin): with a CPU to
 * spare, polling the device for a moment costs less than being woken; on
 * one CPU it would only delay the process that sends the next request.
 */
export function defaultSpinUs (): number {
  return availableParallelism() > 1 ? 100 : 0
}

/** The longest spin taken (a second): longer only burns a CPU. */
export const MAX_SPIN_US = 1_000_000

/**
 * FuseMountOptions.readahead's default: nearly the largest READ one request
 * carries (max_pages, 1 MiB), and the largest whose reply, header
 * included, a pipe of 1 MiB holds, so that it can be spliced (splice.ts):
 * 255 pages of data and one for the header. 1 MiB is as large as a pipe
 * grows without CAP_SYS_RESOURCE (/proc/sys/fs/pipe-max-size).
 */
export const DEFAULT_READAHEAD_KB = 1020

export interface FuseMountOptions {
  /** The mount's source as /proc/mounts shows it. Default 'unionfs-ts'. */
  fsname?: string
  /** Seconds the kernel may cache a name (default 1). */
  entryTimeout?: number
  /** Seconds the kernel may cache attributes (default 1). */
  attrTimeout?: number
  /** Seconds the kernel may cache a missing name (default 1; 0 answers ENOENT uncached). */
  negativeTimeout?: number
  /**
   * Ask for the kernel's writeback cache (buffered writes gathered in the
   * page cache). The kernel does not combine it with passthrough: with
   * writeback on, passthrough is off.
   */
  writeback?: boolean
  /**
   * FUSE passthrough (default true): the kernel reads and writes an opened
   * file itself, from the branch file the union names for its handle
   * (UnionFsApi.backingFd: on the writable branch, or any in a union
   * without one), instead of sending each read and write to the daemon.
   * Needs Linux 6.9+, root and the native addon; where any is missing, or
   * the union names no backing file, files are served through the daemon.
   * See passthrough.ts.
   */
  passthrough?: boolean
  /**
   * HANDLE_KILLPRIV_V2 (default true): the daemon clears suid/sgid on
   * write, truncate and chown, and the kernel stops asking it for
   * `security.capability` before every write. Two corner cases then
   * differ from a native filesystem (killpriv.ts); false leaves the
   * clearing to the kernel, at one GETXATTR per write(2).
   */
  killpriv?: boolean
  /**
   * Microseconds the serving thread polls the device for the next request
   * before it sleeps in read(2) (default: defaultSpinUs()). A process
   * walking a tree sends its next request a few tens of microseconds after
   * each reply; catching it awake saves a wake-up on another CPU, which
   * on a VM costs more than answering a cached lookup. 0: always sleep.
   */
  spin?: number
  /**
   * KiB the kernel reads ahead of a sequential reader of a file the daemon
   * serves (default DEFAULT_READAHEAD_KB): the mount's read_ahead_kb,
   * which is otherwise 128, so that a cold sequential read asks for about
   * 1 MiB a request instead of 128 KiB. Set as root only (mount.ts); 0 leaves
   * the kernel's. Passthrough files read ahead on their branch's device.
   */
  readahead?: number
  /**
   * Whether READDIRPLUS replies carry the entries' attributes: 'auto'
   * (default) judges by whether the caller stats what it lists, 'always'
   * sends them, 'never' asks the kernel for plain READDIR. See
   * listing-attrs.ts.
   */
  readdirplus?: ReaddirPlusMode
  /**
   * Extended attributes through the mount (default true). false answers
   * the first xattr request of each kind ENOSYS, after which the kernel
   * sends none and answers EOPNOTSUPP itself: `ls -l` no longer costs two
   * requests per file (it asks for security.selinux and
   * system.posix_acl_access of each, and the kernel caches neither
   * answer), but file capabilities and ACLs are not seen through the
   * mount. The union keeps using its own xattrs on the branches, and
   * copy-up still copies the lower file's.
   */
  xattr?: boolean
  /**
   * POSIX ACLs enforced by the kernel (default true; FUSE_POSIX_ACL, with
   * xattrs on): it reads a file's system.posix_acl_access once, keeps it
   * with the inode, and checks permissions against it, as on the
   * branches' own filesystem. New entries get their parent's default ACL,
   * and the umask applies only where there is none (lib/union/acl.ts).
   * false: ACLs are still stored and shown, but the kernel checks the mode
   * bits alone (as before Linux 4.9, and as fuse-overlayfs' `noacl`).
   */
  acl?: boolean
  /** One line per request and reply on stderr (also UNIONFS_TS_DEBUG=1). */
  debug?: boolean
  /** Let other users in (mount option allow_other). Default: true when mounting as root. */
  allowOther?: boolean
  /** Mount read-only (no writable branch): the kernel answers EROFS to every write. */
  readOnly?: boolean
  /**
   * Mount with mount(8) in a child process even when the native addon could
   * call mount(2) directly (the fallback when the addon is not built).
   */
  useMountCommand?: boolean
}

export interface FuseStats {
  /** Requests read from the device so far. */
  requests: number
  /** The same, by kind (LOOKUP, GETATTR, ...); absent from the fuse-native transport. */
  requestsByKind?: Record<string, number>
  /** Node ids the kernel holds (the root included). */
  nodes: number
  /** Directory handles open, and listings being read without one (lib/fuse/dirs.ts). */
  openDirs: number
  openFiles: number
  /** INIT agreed on passthrough (the passthrough fields are absent from the fuse-native transport). */
  passthrough?: boolean
  /** Opens answered with passthrough / served through the daemon (while passthrough was on). */
  passthroughOpens?: number
  cachedOpens?: number
  /** Backing files registered with the kernel so far / held now. */
  backingsRegistered?: number
  backingsOpen?: number
  /** READ replies spliced from the branch file instead of copied through a buffer (lib/fuse/splice.ts). */
  splicedReads?: number
}

export interface FuseSession {
  readonly mountpoint: string
  /** Resolves once the session has ended (unmounted, from here or outside, or aborted) and fs.destroy() ran. */
  readonly closed: Promise<void>
  /** `umount` (lazily when busy), then wait for `closed`. */
  unmount: () => Promise<void>
  /**
   * Drop the kernel's cached entry `name` in directory `parentNodeId`.
   * False when the kernel did not have it or the session is not live.
   * Never call it from an op handler of that directory before its reply:
   * the kernel would wait on the lock that request holds.
   */
  notifyInvalEntry: (parentNodeId: number, name: string) => boolean
  /** Drop cached attributes and the data in [off, off+len) (len <= 0: to the end) of a node. */
  notifyInvalInode: (nodeId: number, off: number, len: number) => boolean
  /**
   * The node id the kernel knows `path` by, if any (for the notify calls).
   * Undefined while a worker thread serves the mount (thread.ts): the node
   * table lives there.
   */
  nodeIdOf: (path: string) => number | undefined
  stats: () => FuseStats
}
