/**
 * The typed face of native-shim, the project's N-API addon for the system
 * calls node:fs lacks: xattrs, mknod, renameat2, sparse-aware and in-kernel
 * copying, nanosecond timestamps, mount, the FUSE passthrough ioctls, and
 * receiving a descriptor over a socket (fusermount3's /dev/fuse).
 *
 * Every function is synchronous and throws errors shaped like node:fs's
 * (`code`, negative `errno`, `syscall`, `path`, `dest` for two-path calls),
 * so `isCode` and `errnoOf` from errors.ts treat them alike. Wrong argument
 * types throw TypeError/RangeError before any system call is made. Errno 95
 * is reported as 'ENOTSUP', as Node names it; the kernel's EOPNOTSUPP is the
 * same number.
 *
 * The addon is loaded when this module is first imported, so a missing
 * build fails at startup, not halfway through a copy-up. It is found from
 * the package root (the nearest directory up with a package.json), which is
 * the same for lib/native.ts run from source and dist/lib/native.js.
 */
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'

/** [seconds, nanoseconds] since the epoch, or utimensat's UTIME_NOW / UTIME_OMIT. */
export type TimeArg = readonly [sec: number, nsec: number] | 'now' | 'omit'

interface Constants {
  readonly XATTR_CREATE: number
  readonly XATTR_REPLACE: number
  readonly RENAME_NOREPLACE: number
  readonly RENAME_EXCHANGE: number
  readonly RENAME_WHITEOUT: number
  readonly O_TMPFILE: number
  readonly SEEK_SET: number
  readonly SEEK_CUR: number
  readonly SEEK_END: number
  readonly SEEK_DATA: number
  readonly SEEK_HOLE: number
  readonly FALLOC_FL_KEEP_SIZE: number
  readonly FALLOC_FL_PUNCH_HOLE: number
  readonly FALLOC_FL_ZERO_RANGE: number
  readonly MNT_FORCE: number
  readonly MNT_DETACH: number
  readonly MNT_EXPIRE: number
  readonly UMOUNT_NOFOLLOW: number
  readonly MS_RDONLY: number
  readonly MS_NOSUID: number
  readonly MS_NODEV: number
  readonly MS_NOEXEC: number
  readonly MS_SYNCHRONOUS: number
  readonly MS_REMOUNT: number
  readonly MS_DIRSYNC: number
  readonly MS_NOATIME: number
  readonly MS_NODIRATIME: number
  readonly MS_BIND: number
  readonly MS_MOVE: number
  readonly MS_REC: number
  readonly MS_SILENT: number
  readonly MS_PRIVATE: number
  readonly MS_SLAVE: number
  readonly MS_SHARED: number
  readonly MS_RELATIME: number
  readonly MS_STRICTATIME: number
  readonly MS_LAZYTIME: number
}

/**
 * The addon as loaded. Each export below states its signature once, next to
 * its documentation; the test calls every one of them.
 */
interface Binding {
  readonly [name: string]: any
  readonly constants: Constants
}

const ADDON = join('native-shim', 'build', 'Release', 'unionfs_shim.node')

function packageRoot (from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir
    if (dirname(dir) === dir) throw new Error(`unionfs-ts: no package.json above ${from}`)
  }
}

function load (): Binding {
  const root = packageRoot(__dirname)
  const file = join(root, ADDON)
  if (!existsSync(file)) {
    throw new Error(`unionfs-ts: the native addon is not built (${file} is missing); ` +
      `run \`npm ci\` or \`npm rebuild\` in ${root}`)
  }
  try {
    return require(file) as Binding
  } catch (err) {
    throw new Error(`unionfs-ts: cannot load the native addon ${file}; ` +
      `run \`npm rebuild\` in ${root}`, { cause: err })
  }
}

const binding = load()

/** A path for the calls below: a string (its UTF-8 bytes) or a Buffer of the bytes themselves. */
export type PathArg = string | Uint8Array

// Extended attributes. `l*` act on a symlink itself, never its target;
// `f*` on an open file, as copy-up works. Absent attributes throw ENODATA.

export const lgetxattr: (path: PathArg, name: string) => Buffer = binding.lgetxattr
/** lgetxattr, but an absent attribute (or a filesystem without xattrs) is undefined, not an error. */
export const lfindxattr: (path: PathArg, name: string) => Buffer | undefined = binding.lfindxattr
/** `flags`: 0, XATTR_CREATE (EEXIST if present) or XATTR_REPLACE (ENODATA if absent). */
export const lsetxattr: (path: PathArg, name: string, value: Uint8Array, flags: number) => void =
  binding.lsetxattr
export const llistxattr: (path: PathArg) => string[] = binding.llistxattr
export const lremovexattr: (path: PathArg, name: string) => void = binding.lremovexattr
export const fgetxattr: (fd: number, name: string) => Buffer = binding.fgetxattr
export const fsetxattr: (fd: number, name: string, value: Uint8Array, flags: number) => void =
  binding.fsetxattr
export const flistxattr: (fd: number) => string[] = binding.flistxattr
export const fremovexattr: (fd: number, name: string) => void = binding.fremovexattr

/** mknod(2): `mode` carries the file type (S_IFIFO, S_IFCHR...), `rdev` is st_rdev's encoding. */
export const mknod: (path: PathArg, mode: number, rdev: number) => void = binding.mknod
/** A new name for the file open as `fd` (linkat through /proc/self/fd), which may have none yet (O_TMPFILE). */
export const linkFd: (fd: number, newPath: PathArg) => void = binding.linkFd
/** renameat2(2), relative paths from the working directory; `flags` from RENAME_*. */
export const renameat2: (oldPath: PathArg, newPath: PathArg, flags: number) => void =
  binding.renameat2
/** utimensat(2) with nanosecond times; `nofollow` sets a symlink's own times. */
export const utimensat: (path: PathArg, atime: TimeArg, mtime: TimeArg, nofollow: boolean) => void =
  binding.utimensat
export const futimens: (fd: number, atime: TimeArg, mtime: TimeArg) => void = binding.futimens

/** The new offset; with SEEK_DATA/SEEK_HOLE, ENXIO means no data at or past `offset`. */
export const lseek: (fd: number, offset: number, whence: number) => number = binding.lseek
/**
 * One copy_file_range(2) at explicit offsets, leaving both descriptors'
 * positions alone: bytes copied, possibly fewer than `len`, 0 at the end of
 * the input.
 */
export const copyFileRange:
(fdIn: number, offIn: number, fdOut: number, offOut: number, len: number) => number =
  binding.copyFileRange
/**
 * Makes `destFd` share `srcFd`'s extents (ioctl FICLONE; `srcFd` open for
 * reading). Filesystems without reflinks throw ENOTSUP, other devices EXDEV.
 */
export const ficlone: (destFd: number, srcFd: number) => void = binding.ficlone
/** fallocate(2); `mode` from FALLOC_FL_*. */
export const fallocate: (fd: number, mode: number, offset: number, len: number) => void =
  binding.fallocate

/** mount(2); `flags` from MS_*. */
export const mount: (source: string, target: string, fstype: string, flags: number, data: string) => void =
  binding.mount
/** umount2(2); `flags` from MNT_* and UMOUNT_NOFOLLOW. */
export const umount2: (target: string, flags: number) => void = binding.umount2
/**
 * Registers `backingFd` with the FUSE connection `devFd` for passthrough
 * (FUSE_DEV_IOC_BACKING_OPEN, Linux 6.9+); returns the backing id to put in
 * the open reply.
 */
export const fuseBackingOpen: (devFd: number, backingFd: number) => number = binding.fuseBackingOpen
/** FUSE_DEV_IOC_BACKING_CLOSE: forgets a backing id once no open reply will name it. */
export const fuseBackingClose: (devFd: number, backingId: number) => void = binding.fuseBackingClose

/** socketpair(AF_UNIX, SOCK_STREAM), both ends close-on-exec: [fd, fd]. */
export const socketpair: () => [number, number] = binding.socketpair
/**
 * The descriptor carried (SCM_RIGHTS) by the next message on `sockFd`,
 * close-on-exec; does not wait: EAGAIN when nothing is queued, ENOMSG when
 * the peer closed or sent no descriptor. How fusermount3 hands a user the
 * /dev/fuse descriptor of the mount it made.
 */
export const recvFd: (sockFd: number) => number = binding.recvFd

/** Values from the system headers the addon was built against. */
export const {
  XATTR_CREATE,
  XATTR_REPLACE,
  RENAME_NOREPLACE,
  RENAME_EXCHANGE,
  RENAME_WHITEOUT,
  O_TMPFILE,
  SEEK_SET,
  SEEK_CUR,
  SEEK_END,
  SEEK_DATA,
  SEEK_HOLE,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  FALLOC_FL_ZERO_RANGE,
  MNT_FORCE,
  MNT_DETACH,
  MNT_EXPIRE,
  UMOUNT_NOFOLLOW,
  MS_RDONLY,
  MS_NOSUID,
  MS_NODEV,
  MS_NOEXEC,
  MS_SYNCHRONOUS,
  MS_REMOUNT,
  MS_DIRSYNC,
  MS_NOATIME,
  MS_NODIRATIME,
  MS_BIND,
  MS_MOVE,
  MS_REC,
  MS_SILENT,
  MS_PRIVATE,
  MS_SLAVE,
  MS_SHARED,
  MS_RELATIME,
  MS_STRICTATIME,
  MS_LAZYTIME
} = binding.constants

/**
 * read(2) of the FUSE device into `buf`, after polling it for up to
 * `spinUs` microseconds (0: read at once). Bytes read; errors as readSync's.
 */
export const readDevice: (fd: number, buf: Uint8Array, spinUs: number) => number = binding.readDevice

/**
 * A close-on-exec, non-blocking pipe grown to at least `bytes` where the
 * system allows: [read end, write end, capacity in bytes].
 */
export const makePipe: (bytes: number) => [number, number, number] = binding.makePipe

/** Closes both ends of a pipe `makePipe` made. */
export const closePipe: (readFd: number, writeFd: number) => void = binding.closePipe

/**
 * splice(2) up to `size` bytes of `fileFd` at `offset` into the pipe
 * (`dataR`, `dataW`); fewer only at end of file. Bytes moved; on a failure
 * the pipe is left empty and the file's error thrown.
 */
export const spliceIn: (fileFd: number, offset: number, size: number, dataR: number, dataW: number) => number = binding.spliceIn

/**
 * Writes to FUSE device `devFd` the success reply to request `unique`
 * whose data are the `bytes` waiting in pipe `dataR`, as one message built
 * in pipe (`msgR`, `msgW`). On a failure both pipes are left empty and the
 * device's error thrown.
 */
export const spliceOut: (devFd: number, unique: number, bytes: number, dataR: number, msgR: number, msgW: number) => void = binding.spliceOut
