/**
 * Removing names: unlink and rmdir.
 *
 * The writable branch's copy goes; if a lower branch still has the name, a
 * whiteout takes its place. Each step keeps the view whole if it stops
 * there:
 *  - overlay dialect: a whiteout device is made in the work dir and
 *    exchanged with the upper entry in one rename, then the old entry is
 *    torn down in the work dir;
 *  - AUFS dialect: `.wh.NAME` is written first (the upper entry still wins
 *    over it), then the upper entry is moved out and torn down.
 * A name only a lower branch has just gets a whiteout (parents copied up).
 * rmdir answers ENOTEMPTY when the merged listing is not empty; the upper
 * directory may still hold whiteouts, so it is moved out whole, not rmdir'ed.
 */
import { fsError } from '../errors'
import * as native from '../native'
import { forget, type Core } from './core'
import { baseName, parentOf } from './paths'
import { mergedListing } from './readdir'

export function unlink (core: Core, path: string): void {
  const e = core.resolver.get(path, 'unlink')
  if (e.isDir) throw fsError('EISDIR', 'unlink', path)
  removeName(core, path, false)
}

export function rmdir (core: Core, path: string): void {
  if (path === '/') throw fsError('EBUSY', 'rmdir', path)
  const e = core.resolver.get(path, 'rmdir')
  if (!e.isDir) throw fsError('ENOTDIR', 'rmdir', path)
  if (mergedListing(core.resolver, e).length > 0) throw fsError('ENOTEMPTY', 'rmdir', path)
  removeName(core, path, true)
}

function removeName (core: Core, path: string, isDir: boolean): void {
  const { resolver, upper, work, whiteouts } = core
  const e = resolver.get(path, isDir ? 'rmdir' : 'unlink')
  const dir = parentOf(path)
  const name = baseName(path)
  const parent = resolver.get(dir, 'unlink')
  const below = resolver.existsBelowTop(parent, name)
  if (e.top.layer !== 0) {
    core.copyUp.dir(dir, 'unlink')
    whiteouts.whiteout(dir, name)
  } else if (!below) {
    if (isDir) discardUpper(core, path)
    else upper.unlink(path)
  } else {
    replaceWithWhiteout(core, path, isDir)
  }
  forget(core, path, isDir)
}

/** Turns the upper entry at `path` into a whiteout, atomically as the dialect allows. */
export function replaceWithWhiteout (core: Core, path: string, isDir: boolean): void {
  const { upper, work, whiteouts } = core
  const tmp = work.tempName()
  if (whiteouts.whiteoutForReplace(tmp, baseName(path), work.dir, path)) {
    try {
      work.moveIn(tmp, upper, path, native.RENAME_EXCHANGE)
    } finally {
      work.discard(tmp)
    }
    return
  }
  whiteouts.whiteoutBeside(parentOf(path), baseName(path))
  if (isDir) discardUpper(core, path)
  else upper.unlink(path)
}

/** Moves an upper entry (a directory with its markers) out and tears it down. */
export function discardUpper (core: Core, path: string): void {
  const tmp = core.work.tempName()
  core.work.moveOut(core.upper, path, tmp)
  core.work.discard(tmp)
}
