/**
 * What the mutation modules share: the branches, the resolver (with the
 * dentry cache), whiteouts, copy-up and the work dir of one union that has a
 * writable branch. Also the small rules every mutation applies the same way:
 * reserved names, who owns a new entry, what to drop from the cache.
 */
import * as fs from 'node:fs'
import type { ReadonlyBranch, WritableBranch } from '../branch/branch'
import { fsError } from '../errors'
import type { CopyUp } from './copy-up'
import { baseName, parentOf } from './paths'
import type { Entry, Resolver } from './resolve'
import type { Caller } from './types'
import { isReservedName, type Whiteouts } from './whiteouts'
import type { Workdir } from './workdir'

/** The set-group-ID mode bit (node:fs does not name it). */
const S_ISGID = 0o2000
/** Set-user-ID and set-group-ID: what chown(2) clears. */
const SET_ID = 0o6000

export interface Core {
  readonly layers: readonly ReadonlyBranch[]
  readonly upper: WritableBranch
  readonly resolver: Resolver
  readonly whiteouts: Whiteouts
  readonly copyUp: CopyUp
  readonly work: Workdir
  /** Can this process give entries away (chown)? */
  readonly privileged: boolean
}

/** Names starting with `.wh.` cannot be made through the mount. */
export function checkNewName (path: string, syscall: string): void {
  if (isReservedName(baseName(path))) throw fsError('EPERM', syscall, path, 'name reserved for whiteouts')
}

/** The directory a new entry goes into: resolved, a directory, in the writable branch. */
export function newEntryParent (core: Core, path: string, syscall: string): Entry {
  return writableDir(core, parentOf(path), syscall, path)
}

/** Directory `dir`, resolved, a directory, copied up to the writable branch; ENOTDIR names `errPath`. */
export function writableDir (core: Core, dir: string, syscall: string, errPath = dir): Entry {
  const e = core.resolver.get(dir, syscall)
  if (!e.isDir) throw fsError('ENOTDIR', syscall, errPath)
  return core.copyUp.dir(e.path, syscall)
}

/**
 * Gives a new entry to its caller. The union runs as root and creates
 * everything itself, so the caller's uid/gid are applied afterwards; a
 * set-group-ID parent passes its group on, as the kernel does for its own
 * filesystems. chown(2) clears a non-directory's set-ID bits, so those of
 * `mode` (what the entry was made with) are put back: the kernel has
 * already dropped any the caller may not have (a set-group-ID bit in a
 * set-group-ID directory outside the caller's groups) before asking.
 */
export function giveTo (core: Core, branch: WritableBranch, rel: string, parentPath: string, caller: Caller, mode = 0): void {
  if (!core.privileged) return
  branch.lchown(rel, caller.uid, newEntryGid(core, parentPath, caller))
  if ((mode & SET_ID) === 0) return
  const st = branch.lstat(rel)
  const back = st === undefined || st.isDirectory() ? undefined : setIdPutBack(st, mode)
  if (back !== undefined) branch.chmod(rel, back)
}

/** giveTo for a file that has no name yet (O_TMPFILE): open as `fd`, made with `mode`. */
export function giveFdTo (core: Core, fd: number, parentPath: string, caller: Caller, mode: number): void {
  if (!core.privileged) return
  fs.fchownSync(fd, caller.uid, newEntryGid(core, parentPath, caller))
  if ((mode & SET_ID) === 0) return
  const back = setIdPutBack(fs.fstatSync(fd, { bigint: true }), mode)
  if (back !== undefined) fs.fchmodSync(fd, back)
}

/** The mode that gives back the set-ID bits of `mode` a chown took from `st`, or undefined if none were. */
function setIdPutBack (st: fs.BigIntStats, mode: number): number | undefined {
  const now = Number(st.mode) & 0o7777
  return (now & SET_ID) === (mode & SET_ID) ? undefined : now | (mode & SET_ID)
}

/** The group of a new entry in `parentPath`: the parent's if it is set-group-ID, else the caller's. */
export function newEntryGid (core: Core, parentPath: string, caller: Caller): number {
  const parentStat = core.upper.lstat(parentPath)
  return parentStat !== undefined && (Number(parentStat.mode) & S_ISGID) !== 0 ? Number(parentStat.gid) : caller.gid
}

/**
 * After a change to `path`: drop it (or its whole subtree). Its parent's
 * entry stays right (dentry-cache.ts): looking it up again cost five system
 * calls per create, unlink or rename in a directory merged with a lower one.
 */
export function forget (core: Core, path: string, tree = false): void {
  const cache = core.resolver.cache
  if (tree) cache.deleteTree(path)
  else cache.delete(path)
}
