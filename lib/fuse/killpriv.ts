/**
 * Clearing suid and sgid when a file is written, truncated or chowned: ours
 * once INIT agreed on HANDLE_KILLPRIV_V2.
 *
 * Why agree: without it the kernel asks us for `security.capability` (a
 * GETXATTR) before every write(2), passthrough writes included, to learn
 * whether the write must strip privileges. With it the superblock is
 * SB_NOSEC, and an inode found to have nothing to strip is marked so
 * (S_NOSEC) until its attributes are next refreshed: a 256 MiB `dd bs=1M`
 * makes one request where it made 256.
 *
 * What the kernel then leaves to us (it still removes a
 * `security.capability` itself, with a REMOVEXATTR, and the branch's own
 * filesystem clears the bits on the chown we do as root):
 *  - WRITE with FUSE_WRITE_KILL_SUIDGID, SETATTR with FATTR_KILL_SUIDGID
 *    (truncate, chown), OPEN and CREATE with FUSE_OPEN_KILL_SUIDGID
 *    (O_TRUNC): the caller lacks CAP_FSETID.
 *  - A passthrough write never reaches us. Before it, the kernel's
 *    file_remove_privs, finding suid or sgid and a writer without
 *    CAP_FSETID, sends a SETATTR that sets nothing: fuse_setattr drops the
 *    kill bits it leaves to us and sends what remains. That empty SETATTR
 *    is read as the kill (`setsNothing`). chown(f, -1, -1) sends the same
 *    (with the change time under the writeback cache), and a native
 *    filesystem clears the same bits on it.
 * The rule is the VFS one for a writer without CAP_FSETID: suid goes, and
 * sgid goes when group-execute is set or the writer is outside the file's
 * group (root counts as inside, as CAP_FSETID would; the writer's groups
 * come from /proc, read only for such a file). Two cases differ from a
 * native filesystem: a file with both a file capability and suid loses
 * its suid when root writes it (the kernel's capability removal sends the
 * same empty SETATTR), and a file open after its last name went keeps its
 * bits (`killSuidSgid`).
 */
import * as fs from 'node:fs'
import type { Attr } from '../union/types'
import type { RequestHeader } from './codec'
import type { OpContext } from './op-context'
import { Fattr } from './protocol'

const S_IFMT = 0o170000
const S_IFREG = 0o100000
const S_ISUID = 0o4000
const S_ISGID = 0o2000
const S_IXGRP = 0o010

/** The SETATTR bits that set something (FH and LOCKOWNER say how; a change time may come along). */
const SETTING = Fattr.MODE | Fattr.UID | Fattr.GID | Fattr.SIZE | Fattr.ATIME | Fattr.MTIME |
  Fattr.ATIME_NOW | Fattr.MTIME_NOW | Fattr.KILL_SUIDGID

/** A SETATTR that sets nothing but perhaps the change time: a kill left to us (above). */
export function setsNothing (valid: number): boolean {
  return (valid & SETTING) === 0
}

/**
 * The mode bits a write by a caller without CAP_FSETID clears;
 * `inGroup` is asked only about a sgid file without group-execute.
 */
export function killedBits (mode: number, inGroup: () => boolean): number {
  if ((mode & S_IFMT) !== S_IFREG) return 0
  const sgid = (mode & S_IXGRP) !== 0 || !inGroup() ? S_ISGID : 0
  return mode & (S_ISUID | sgid)
}

/** Is the request's caller root or in group `gid` (its own or a supplementary one)? */
function callerInGroup (h: RequestHeader, gid: number): boolean {
  if (h.uid === 0 || h.gid === gid) return true
  let status: string
  try {
    status = fs.readFileSync(`/proc/${h.pid}/status`, 'latin1')
  } catch {
    return false // gone, or not in our pid namespace: clear the bit
  }
  const groups = /^Groups:(.*)$/m.exec(status)?.[1].trim().split(/\s+/) ?? []
  return groups.includes(String(gid))
}

/**
 * Clear what `killedBits` names on the file at `path` (open as `fh`, if
 * given) for the caller of `h`; true if anything changed. An unlinked file
 * (no path) keeps its bits: the union changes modes by path.
 */
export async function killSuidSgid (ctx: OpContext, h: RequestHeader, path: string | undefined, fh?: number): Promise<boolean> {
  if (path === undefined) return false
  return await clearModeBits(ctx, path, fh, (attr) => killedBits(attr.mode, () => callerInGroup(h, attr.gid)))
}

/**
 * Clears the mode bits `bitsOf` names from the file at `path`, or open as
 * `fh` (read through it when given; changed through it only when there is
 * no path); true if any were set.
 */
export async function clearModeBits (ctx: OpContext, path: string | undefined, fh: number | undefined, bitsOf: (attr: Attr) => number): Promise<boolean> {
  if (path === undefined && fh === undefined) throw new TypeError('clearModeBits needs a path or a handle')
  const attr = fh !== undefined ? await ctx.fs.fgetattr(fh) : await ctx.fs.getattr(path as string)
  const bits = bitsOf(attr)
  if (bits === 0) return false
  const mode = attr.mode & 0o7777 & ~bits
  if (path !== undefined) await ctx.fs.chmod(path, mode)
  else await ctx.fs.fchmod(fh as number, mode)
  return true
}
