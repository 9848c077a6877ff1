/**
 * Mounting and unmounting as an ordinary user, through Debian fuse3's
 * setuid fusermount3, with the protocol libfuse uses:
 *
 *  1. a Unix socket pair; one end becomes fusermount3's fd 3, named by the
 *     environment variable _FUSE_COMMFD=3;
 *  2. `fusermount3 -o OPTIONS -- MNT` opens /dev/fuse, checks the options
 *     and the mountpoint against the user (it must be a directory the user
 *     may write; allow_other only with user_allow_other in /etc/fuse.conf),
 *     mounts with nosuid,nodev, sends the /dev/fuse descriptor over the
 *     socket (SCM_RIGHTS) and exits;
 *  3. the descriptor is taken off our end (native recvFd: Node cannot
 *     receive descriptors).
 * mount(2) does not wait for INIT, and fusermount3 does not touch the
 * mountpoint after mounting, so serving starts once it has exited.
 *
 * Unmounting is `fusermount3 -u`, and `-uz` (lazy) when the mount is busy;
 * like umount(8) for root, in a child process, never from the serving
 * thread. `fusermount` (the same program on Debian's fuse3, or fuse 2's)
 * stands in when fusermount3 is missing.
 */
import * as fs from 'node:fs'
import { failure, runCommand, type CommandResult } from './mount-cmd'

interface FdNative {
  socketpair: () => [number, number]
  recvFd: (sockFd: number) => number
}

const PROGRAMS = ['fusermount3', 'fusermount']

function missing (err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === 'ENOENT'
}

/** Runs fusermount3 (or fusermount), the result of the first one found. */
async function fusermount (args: readonly string[], passFd?: number): Promise<CommandResult> {
  for (const prog of PROGRAMS) {
    try {
      return await run(prog, args, passFd)
    } catch (err) {
      if (!missing(err)) throw err
    }
  }
  throw new Error('fusermount3 not found: a user mounts FUSE through the setuid fusermount3 of Debian\'s fuse3 package')
}

/** fusermount3 finds the socket to send the descriptor on in _FUSE_COMMFD: our fd 3 for it. */
function run (cmd: string, args: readonly string[], passFd?: number): Promise<CommandResult> {
  return runCommand(cmd, args, passFd, passFd === undefined ? undefined : { _FUSE_COMMFD: '3' })
}

/**
 * Mounts `mountpoint` with fusermount3 and returns the /dev/fuse descriptor
 * of the new mount. `options`: what fusermount3 lets a user give (fsname=,
 * subtype=, default_permissions, ro, allow_other where fuse.conf allows).
 */
export async function fusermountFd (native: FdNative, mountpoint: string, options: string): Promise<number> {
  const [ours, theirs] = native.socketpair()
  try {
    let r: CommandResult
    try {
      r = await fusermount(['-o', options, '--', mountpoint], theirs)
    } finally {
      fs.closeSync(theirs)
    }
    let fd: number | undefined
    try {
      fd = native.recvFd(ours)
    } catch (err) {
      if (r.code === 0) throw new Error(`mounting ${mountpoint} failed: fusermount3 sent no /dev/fuse descriptor (${(err as Error).message})`)
    }
    if (r.code !== 0) {
      // A descriptor that came anyway belongs to no mount we keep.
      if (fd !== undefined) fs.closeSync(fd)
      throw failure(`mounting ${mountpoint} failed`, r)
    }
    return fd!
  } finally {
    fs.closeSync(ours)
  }
}

/**
 * Unmounts a user's FUSE mount; when busy, detaches it lazily (the session
 * ends once the last user lets go). "not mounted" is success.
 */
export async function fuserUnmount (mountpoint: string): Promise<void> {
  const gone = (r: CommandResult): boolean =>
    r.code === 0 || /not found in|not mounted|invalid argument/i.test(r.stderr)
  const r = await fusermount(['-u', '--', mountpoint])
  if (gone(r)) return
  if (/busy/i.test(r.stderr)) {
    const lazy = await fusermount(['-u', '-z', '--', mountpoint])
    if (gone(lazy)) return
    throw failure(`unmounting ${mountpoint} failed`, lazy)
  }
  throw failure(`unmounting ${mountpoint} failed`, r)
}
