/**
 * INIT and DESTROY: protocol version and feature negotiation.
 *
 * We answer major 7 and minor min(kernel's, 45) and ask for (each only if
 * the kernel offers it):
 *   ASYNC_READ        concurrent READs on one file
 *   BIG_WRITES        WRITEs larger than a page (implied by MAX_PAGES today)
 *   MAX_PAGES         requests up to max_pages = 256 pages, max_write 1 MiB
 *   ATOMIC_O_TRUNC    O_TRUNC comes with OPEN instead of a separate SETATTR;
 *                     only with HANDLE_KILLPRIV_V2 (below): otherwise the
 *                     kernel drops the suid/sgid clearing of an O_TRUNC
 *                     open along with the SETATTR it no longer sends
 *   DO_READDIRPLUS, READDIRPLUS_AUTO   entries and attributes in one request
 *                     (not with readdirplus=never: listing-attrs.ts)
 *   PARALLEL_DIROPS   concurrent LOOKUP/READDIR in one directory
 *   SETXATTR_EXT      the 7.33 setxattr_in (we read its extra flags word)
 *   HANDLE_KILLPRIV_V2  unless `killpriv=off`: we clear suid/sgid on
 *                     write, truncate and chown, so the kernel stops asking
 *                     for security.capability before each write (killpriv.ts)
 *   INIT_EXT          flags2 is read
 *   POSIX_ACL, DONT_MASK  unless `acl=off` or `xattr=off`: the kernel
 *                     enforces ACLs (it reads system.posix_acl_access
 *                     once per inode and keeps it) and, since a parent's
 *                     default ACL overrides the umask, sends the umask
 *                     for us to apply (lib/union/acl.ts). Both or neither:
 *                     with POSIX_ACL alone the kernel would apply the
 *                     umask under a default ACL too. The root inode, made
 *                     before INIT, never keeps its ACL: the kernel asks
 *                     for it at every check by a user who is not its owner
 *   WRITEBACK_CACHE   only with the `writeback` option
 *   PASSTHROUGH       (flags2) with the `passthrough` option, unless the
 *                     writeback cache was agreed (the kernel would drop
 *                     passthrough); max_stack_depth 1: backing files
 *                     must live on an unstacked filesystem (a branch on
 *                     overlayfs falls back to the daemon file by file), and
 *                     the mount itself can still be a lower of overlayfs
 * NO_OPENDIR_SUPPORT is the kernel's to offer, not ours to ask for: where
 * it is offered and listings may be cached, OPENDIR is answered with
 * ENOSYS (ops-dir.ts).
 * We leave off EXPORT_SUPPORT (no lookups of '.' and '..'), HANDLE_KILLPRIV
 * (v1: it would ask the same of us without saying who lacks CAP_FSETID),
 * POSIX_LOCKS/FLOCK_LOCKS (the
 * kernel keeps locks locally).
 */
import { fsError } from '../errors'
import type { Encoder } from './codec'
import { kernelKeeps, noArgs, op, type OpContext } from './op-context'
import {
  FUSE_IMPLEMENTED_MINOR, FUSE_KERNEL_VERSION, FUSE_MIN_MINOR, Init, Init2, InitOut
} from './protocol'

interface InitIn {
  major: number
  minor: number
  maxReadahead: number
  flags: number
  flags2: number
}

interface InitReply {
  /** Answer to a newer major: major and minor only, the kernel retries. */
  versionOnly: boolean
  major: number
  minor: number
  maxReadahead: number
  flags: number
  flags2: number
}

/** Passthrough's max_stack_depth: the backing files' filesystems are not stacked. */
const MAX_STACK_DEPTH = 1

/** max_background: how many background requests (readahead, async I/O) the kernel keeps in flight. */
const MAX_BACKGROUND = 64

const ACL_FLAGS = Init.POSIX_ACL | Init.DONT_MASK

export function wantedInitFlags (writeback: boolean, readdirplus: boolean, killPriv: boolean, acl: boolean): number {
  return (Init.ASYNC_READ | Init.BIG_WRITES | Init.MAX_PAGES |
    (readdirplus ? Init.DO_READDIRPLUS | Init.READDIRPLUS_AUTO : 0) | Init.PARALLEL_DIROPS |
    Init.SETXATTR_EXT | (killPriv ? Init.HANDLE_KILLPRIV_V2 | Init.ATOMIC_O_TRUNC : 0) | Init.INIT_EXT |
    (writeback ? Init.WRITEBACK_CACHE : 0) | (acl ? ACL_FLAGS : 0)) >>> 0
}

export const initOp = op<InitIn, InitReply>({
  decode: (d) => {
    const major = d.u32()
    const minor = d.u32()
    const maxReadahead = d.u32()
    const flags = d.u32()
    // flags2 arrived with 7.36; older kernels send the 16-byte struct.
    const flags2 = d.remaining >= 4 ? d.u32() : 0
    return { major, minor, maxReadahead, flags, flags2 }
  },
  run: (ctx: OpContext, _h, a) => {
    if (a.major > FUSE_KERNEL_VERSION) {
      // The kernel retries INIT with our major when we answer with it alone.
      return { versionOnly: true, major: FUSE_KERNEL_VERSION, minor: FUSE_IMPLEMENTED_MINOR, maxReadahead: 0, flags: 0, flags2: 0 }
    }
    if (a.major < FUSE_KERNEL_VERSION || a.minor < FUSE_MIN_MINOR) {
      ctx.log.error(`kernel speaks FUSE ${a.major}.${a.minor}, at least ${FUSE_KERNEL_VERSION}.${FUSE_MIN_MINOR} is needed`)
      throw fsError('EPROTO', 'init')
    }
    const minor = Math.min(a.minor, FUSE_IMPLEMENTED_MINOR)
    let flags = (wantedInitFlags(ctx.wantWriteback, ctx.listingAttrs.readdirplus, ctx.wantKillPriv, ctx.wantAcl) & a.flags) >>> 0
    if ((flags & ACL_FLAGS) !== ACL_FLAGS) flags = (flags & ~ACL_FLAGS) >>> 0
    const writeback = (flags & Init.WRITEBACK_CACHE) !== 0
    // flags2 means something only when both sides set INIT_EXT.
    const offered2 = (flags & Init.INIT_EXT) !== 0 ? a.flags2 : 0
    const passthrough = ctx.passthrough.wanted && !writeback && minor >= 40 && (offered2 & Init2.PASSTHROUGH) !== 0
    const flags2 = passthrough ? Init2.PASSTHROUGH : 0
    ctx.conn = {
      minor,
      flags,
      writeback,
      setxattrExt: (flags & Init.SETXATTR_EXT) !== 0,
      killPriv: (flags & Init.HANDLE_KILLPRIV_V2) !== 0,
      acl: (flags & Init.POSIX_ACL) !== 0,
      passthrough,
      noOpendir: (a.flags & Init.NO_OPENDIR_SUPPORT) !== 0 && kernelKeeps(ctx)
    }
    ctx.passthrough.start(passthrough)
    ctx.log.info(`INIT kernel ${a.major}.${a.minor} flags=0x${a.flags.toString(16)} flags2=0x${a.flags2.toString(16)}; ` +
      `answered 7.${minor} flags=0x${flags.toString(16)} flags2=0x${flags2.toString(16)}`)
    return { versionOnly: false, major: FUSE_KERNEL_VERSION, minor, maxReadahead: a.maxReadahead, flags, flags2 }
  },
  encode: (e: Encoder, r, ctx) => {
    const start = e.pos
    e.zero(InitOut.SIZE)
    const b = e.buf
    b.writeUInt32LE(r.major, start + InitOut.major)
    b.writeUInt32LE(r.minor, start + InitOut.minor)
    if (r.versionOnly) {
      e.pos = start + 8
      return
    }
    b.writeUInt32LE(r.maxReadahead, start + InitOut.maxReadahead)
    b.writeUInt32LE(r.flags, start + InitOut.flags)
    b.writeUInt16LE(MAX_BACKGROUND, start + InitOut.maxBackground)
    b.writeUInt16LE(MAX_BACKGROUND * 3 / 4, start + InitOut.congestionThreshold)
    b.writeUInt32LE(ctx.maxWrite, start + InitOut.maxWrite)
    b.writeUInt32LE(1, start + InitOut.timeGran)
    b.writeUInt16LE(ctx.maxPages, start + InitOut.maxPages)
    b.writeUInt32LE(r.flags2, start + InitOut.flags2)
    if ((r.flags2 & Init2.PASSTHROUGH) !== 0) b.writeUInt32LE(MAX_STACK_DEPTH, start + InitOut.maxStackDepth)
    // request_timeout and the reserved tail stay 0.
  }
})

/** Sent for block-device mounts at unmount; ours end when the device says ENODEV. */
export const destroyOp = op({ decode: noArgs, run: () => undefined })
