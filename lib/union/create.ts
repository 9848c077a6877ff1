/**
 * Making new names: create, mkdir, mknod, symlink, link.
 *
 * Where the writable branch holds no whiteout for the name, the entry is
 * made in place. Over a whiteout it is built in the work dir (owner, and
 * for a directory the opaque mark that keeps the old lower content from
 * coming back) and moved over the whiteout in one rename (an exchange for a
 * directory, which cannot replace a device node); an AUFS `.wh.NAME` is
 * removed last, so a crash shows either no entry or the complete new one.
 */
import * as fs from 'node:fs'
import type { WritableBranch } from '../branch/branch'
import { fsError } from '../errors'
import * as native from '../native'
import { checkNewName, forget, giveTo, newEntryParent, type Core } from './core'
import { baseName, parentOf } from './paths'
import type { Caller } from './types'
import { isWhiteoutStat } from './whiteouts'

/** Builds the new entry at `rel` of `branch` (the upper, or the work dir). */
export type Build = (branch: WritableBranch, rel: string) => void

export function makeEntry (core: Core, path: string, caller: Caller | undefined, syscall: string, isDir: boolean, build: Build): void {
  if (core.resolver.lookup(path) !== undefined) throw fsError('EEXIST', syscall, path)
  checkNewName(path, syscall)
  newEntryParent(core, path, syscall)
  const dir = parentOf(path)
  const name = baseName(path)
  const { upper, work, whiteouts } = core
  if (!whiteouts.hasWhiteout(dir, name)) {
    build(upper, path)
    if (caller !== undefined) giveTo(core, upper, path, dir, caller)
  } else {
    const tmp = work.tempName()
    try {
      build(work.dir, tmp)
      if (caller !== undefined) giveTo(core, work.dir, tmp, dir, caller)
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
    makeEntry(core, path, caller, 'open', false, (branch, rel) => {
      fd = branch.open(rel, (flags & ~c.O_TRUNC) | c.O_CREAT | c.O_EXCL, mode)
    })
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
