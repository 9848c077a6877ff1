/**
 * The op table: opcode -> handler. Each handler translates one kernel
 * request into UnionFsApi calls (ops-*.ts); the session's generic wrapper
 * runs it and sends the one reply. Opcodes missing here get ENOSYS, which
 * the kernel remembers for most of them (locks, ioctl, poll, copy_file_range...
 * fall back to the kernel's own generic code).
 *
 * Answered with ENOSYS on purpose:
 *   INTERRUPT  a union call cannot be cancelled halfway (the core runs each
 *              one to completion), so the interrupted request is answered
 *              when it is done either way. ENOSYS to the interrupt (its
 *              unique carries the interrupt bit) makes the kernel stop
 *              sending them: one request less per signal to a waiting
 *              process. Either way the process waits for our answer, as it
 *              does for any request already read from the device.
 *   STATX      the union has no birth time, the one thing STATX adds to
 *              GETATTR; after ENOSYS the kernel asks with GETATTR and serves
 *              statx() from its attribute cache.
 *
 * No-reply requests: FORGET, BATCH_FORGET, NOTIFY_REPLY (we never ask for
 * retrieves).
 */
import { noArgs, op, type OpSpec } from './op-context'
import { Op } from './protocol'
import { destroyOp, initOp } from './ops-init'
import {
  accessOp, batchForgetOp, forgetOp, getattrOp, lookupOp, readlinkOp, setattrOp, statfsOp
} from './ops-node'
import {
  linkOp, mkdirOp, mknodOp, rename2Op, renameOp, rmdirOp, symlinkOp, unlinkOp
} from './ops-namespace'
import {
  createOp, fallocateOp, flushOp, fsyncOp, lseekOp, openOp, readOp, releaseOp, tmpfileOp, writeOp
} from './ops-file'
import { fsyncdirOp, opendirOp, readdirOp, readdirplusOp, releasedirOp } from './ops-dir'
import { getxattrOp, listxattrOp, removexattrOp, setxattrOp } from './ops-xattr'

const ignored = op({ noReply: true, decode: noArgs, run: () => undefined })

export type OpTable = ReadonlyArray<OpSpec<unknown, unknown> | undefined>

/**
 * `xattrs` false leaves the four xattr ops out: the kernel gets ENOSYS for
 * the first request of each and sends no more of that kind (FuseMountOptions.xattr).
 */
export function makeOpTable (xattrs = true): OpTable {
  const t: Array<OpSpec<unknown, unknown> | undefined> = []
  t[Op.INIT] = initOp
  t[Op.DESTROY] = destroyOp
  t[Op.LOOKUP] = lookupOp
  t[Op.FORGET] = forgetOp
  t[Op.BATCH_FORGET] = batchForgetOp
  t[Op.GETATTR] = getattrOp
  t[Op.SETATTR] = setattrOp
  t[Op.READLINK] = readlinkOp
  t[Op.SYMLINK] = symlinkOp
  t[Op.MKNOD] = mknodOp
  t[Op.MKDIR] = mkdirOp
  t[Op.UNLINK] = unlinkOp
  t[Op.RMDIR] = rmdirOp
  t[Op.RENAME] = renameOp
  t[Op.RENAME2] = rename2Op
  t[Op.LINK] = linkOp
  t[Op.OPEN] = openOp
  t[Op.CREATE] = createOp
  t[Op.TMPFILE] = tmpfileOp
  t[Op.READ] = readOp
  t[Op.WRITE] = writeOp
  t[Op.STATFS] = statfsOp
  t[Op.RELEASE] = releaseOp
  t[Op.FSYNC] = fsyncOp
  t[Op.FLUSH] = flushOp
  t[Op.FALLOCATE] = fallocateOp
  t[Op.LSEEK] = lseekOp
  if (xattrs) {
    t[Op.SETXATTR] = setxattrOp
    t[Op.GETXATTR] = getxattrOp
    t[Op.LISTXATTR] = listxattrOp
    t[Op.REMOVEXATTR] = removexattrOp
  }
  t[Op.OPENDIR] = opendirOp
  t[Op.READDIR] = readdirOp
  t[Op.READDIRPLUS] = readdirplusOp
  t[Op.RELEASEDIR] = releasedirOp
  t[Op.FSYNCDIR] = fsyncdirOp
  t[Op.ACCESS] = accessOp
  t[Op.NOTIFY_REPLY] = ignored
  return t
}
