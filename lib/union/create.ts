/**
 * Making new names: create, mkdir, mknod, symlink, link; and the unnamed
 * file of open(O_TMPFILE), and the name linkat(2) gives it later.
 *
 * Where the writable branch holds no whiteout for the name, the entry is
 * made in place. Over a whiteout it is built in the work dir (owner, and
 * for a directory the opaque mark that keeps the old lower content from
 * coming back) and moved over the whiteout in one rename (an exchange for a
 * directory, which cannot replace a device node); an AUFS `.wh.NAME` is
 * removed last, so a crash shows either no entry or the complete new one.
 * An entry with a mode gets the umask or its parent's default ACL (acl.ts):
 * in place from the branch's filesystem, in the work dir by hand.
 */
import * as fs from 'node:fs'
import type { WritableBranch } from '../branch/branch'
import { fsError } from '../errors'
import * as native from '../native'
import { ACL_DEFAULT, inheritAcl, newEntryMode } from './acl'
import { checkNewName, forget, giveFdTo, giveTo, newEntryParent, writableDir, type Core } from './core'
import { baseName, parentOf } from './paths'
import type { Caller } from './types'
import { isWhiteoutStat } from './whiteouts'

/**
 * Builds the new entry at `rel` of `branch` (the upper, or the work dir),
 * with `mode` (makeEntry's, the umask applied where it applies).
 */
export type Build = (branch: WritableBranch, rel: string, mode: number) => void

/** `mode`: the permissions asked for (with the file type for mknod); none for links and symlinks. */
export function makeEntry (core: Core, path: string, caller: Caller | undefined, syscall: string, isDir: boolean, build: Build, mode?: number): void {
  if (core.resolver.lookup(path) !== undefined) throw fsError('EEXIST', syscall, path)
  checkNewName(path, syscall)
  newEntryParent(core, path, syscall)
  const dir = parentOf(path)
  const name = baseName(path)
  const { upper, work, whiteouts } = core
  const dflt = mode === undefined ? undefined : upper.getxattr(dir, ACL_DEFAULT)
  const made = mode === undefined ? 0 : newEntryMode(mode, caller?.umask ?? 0, dflt)
  if (!whiteouts.hasWhiteout(dir, name)) {
    build(upper, path, made)
    if (caller !== undefined) giveTo(core, upper, path, dir, caller, made)
  } else {
    const tmp = work.tempName()
    try {
      build(work.dir, tmp, made)
      if (dflt !== undefined) inheritAcl(work.dir, tmp, made, isDir, dflt)
      if (caller !== undefined) giveTo(core, work.dir, tmp, dir, caller, made)
      if (isDir) whiteouts.makeOpaque(tmp, work.dir, path)
      const at = upper.lstat(path)
      if (at !== undefined && isWhiteoutStat(at) && isDir) {
        work.moveIn(tmp, upper, path, native.RENAME_EXCHANGE)
        work.discard(tmp)
      } else {
        work.moveIn(tmp, upper, path)
      }
    } catch (err) {
      work.discard(tmp)
      throw err
    }
    whiteouts.clearWhiteout(dir, name)
  }
  forget(core, path)
}

/** create(2): the new file's descriptor, open with the caller's flags. */
export function createFile (core: Core, path: string, flags: number, mode: number, caller: Caller): number {
  let fd = -1
  const c = fs.constants
  try {
    makeEntry(core, path, caller, 'open', false, (branch, rel, made) => {
      fd = branch.open(rel, (flags & ~c.O_TRUNC) | c.O_CREAT | c.O_EXCL, made)
    }, mode)
  } catch (err) {
    // A step after the open failed: the caller gets the error, not the descriptor.
    if (fd >= 0) fs.closeSync(fd)
    throw err
  }
  return fd
}

export function link (core: Core, existing: string, path: string): void {
  const src = core.resolver.get(existing, 'link')
  if (src.isDir) throw fsError('EPERM', 'link', existing)
  if (core.resolver.lookup(path) !== undefined) throw fsError('EEXIST', 'link', path)
  checkNewName(path, 'link')
  core.copyUp.file(existing, 'link')
  makeEntry(core, path, undefined, 'link', false, (branch, rel) => {
    fs.linkSync(core.upper.real(existing), branch.real(rel))
  })
  forget(core, existing)
}

/**
 * open(O_TMPFILE) in `dir`: an unnamed file on the writable branch's copy
 * of it (copied up first, as for any new entry), with the umask or the
 * directory's default ACL applied by the branch's filesystem. Opened
 * without O_EXCL whatever the caller asked: the kernel keeps an O_EXCL
 * one from being linked itself, and linkOpen needs the branch to allow it.
 */
export function tmpFile (core: Core, dir: string, flags: number, mode: number, caller: Caller): number {
  writableDir(core, dir, 'open')
  const { upper } = core
  const made = newEntryMode(mode, caller.umask ?? 0, upper.getxattr(dir, ACL_DEFAULT))
  const c = fs.constants
  const fd = upper.open(dir, (flags & ~(c.O_CREAT | c.O_EXCL | c.O_TRUNC | c.O_DIRECTORY)) | native.O_TMPFILE, made)
  try {
    giveFdTo(core, fd, dir, caller, made)
  } catch (err) {
    fs.closeSync(fd)
    throw err
  }
  return fd
}

/** linkat(2) of `fd`, a file of the writable branch with no name (O_TMPFILE), to `path`. */
export function linkOpen (core: Core, fd: number, path: string): void {
  makeEntry(core, path, undefined, 'link', false, (branch, rel) => { native.linkFd(fd, branch.real(rel)) })
}
