/**
 * rename(2) and renameat2's NOREPLACE and EXCHANGE, for files and for
 * directories merged from several branches: never EXDEV.
 *
 * The source is copied up (a directory as a bare directory: its content
 * stays where it is), then renamed inside the writable branch. A directory
 * with lower content gets a redirect xattr naming its lower path, so after
 * the move the branches below are searched there (the resolver's rule 2); a
 * directory without lower content that lands on a name lower branches
 * have is made opaque instead, so their old content does not show through.
 * If a lower branch still has the source name, a whiteout takes its place:
 * an AUFS `.wh.NAME` is written before the rename (the upper entry still
 * wins over it until it moves), the overlay dialect uses RENAME_WHITEOUT,
 * which leaves the whiteout in the same step.
 *
 * Error order follows rename(2): ENOENT source, EINVAL for a directory moved
 * below itself, EEXIST with NOREPLACE, ENOTDIR / EISDIR for mismatched
 * kinds, ENOTEMPTY for a non-empty (merged) target directory.
 */
import { fsError } from '../errors'
import * as native from '../native'
import { checkNewName, forget, newEntryParent, type Core } from './core'
import { baseName, isWithin, parentOf } from './paths'
import { mergedListing } from './readdir'
import type { Entry } from './resolve'
import { RENAME_EXCHANGE, RENAME_NOREPLACE } from './types'
import { isWhiteoutStat } from './whiteouts'
import { discardUpper, replaceWithWhiteout } from './remove'

export function rename (core: Core, from: string, to: string, flags: number): void {
  const { resolver } = core
  if ((flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) !== 0 ||
      (flags & RENAME_NOREPLACE && flags & RENAME_EXCHANGE)) throw fsError('EINVAL', 'rename', from)
  const src = resolver.get(from, 'rename')
  if (from === '/' || to === '/') throw fsError('EBUSY', 'rename', from)
  checkNewName(to, 'rename')
  const dstParent = resolver.get(parentOf(to), 'rename')
  if (!dstParent.isDir) throw fsError('ENOTDIR', 'rename', to)
  if (src.isDir && to !== from && isWithin(to, from)) throw fsError('EINVAL', 'rename', from)
  const dst = resolver.lookup(to)
  if (flags & RENAME_EXCHANGE) {
    if (dst === undefined) throw fsError('ENOENT', 'rename', to)
    if (dst.isDir && isWithin(from, to)) throw fsError('EINVAL', 'rename', to)
    if (from !== to) exchange(core, src, dst)
    return
  }
  if (dst !== undefined) {
    if (flags & RENAME_NOREPLACE) throw fsError('EEXIST', 'rename', to)
    if (from === to || dst.ino === src.ino && !src.isDir) return // the same file: rename(2) does nothing
    if (src.isDir && !dst.isDir) throw fsError('ENOTDIR', 'rename', to)
    if (!src.isDir && dst.isDir) throw fsError('EISDIR', 'rename', to)
    if (dst.isDir && mergedListing(resolver, dst).length > 0) throw fsError('ENOTEMPTY', 'rename', to)
  }
  move(core, src, to, dst)
}

function move (core: Core, src: Entry, to: string, dst: Entry | undefined): void {
  const { resolver, upper, whiteouts } = core
  const from = src.path
  const srcDir = parentOf(from)
  const srcBelow = resolver.existsBelowTop(resolver.get(srcDir, 'rename'), baseName(from))
  prepareSource(core, src, to)
  newEntryParent(core, to, 'rename')
  const toDir = parentOf(to)
  const toName = baseName(to)

  const aufsWhiteout = srcBelow && whiteouts.writesAufs(baseName(from))
  if (aufsWhiteout) {
    core.copyUp.dir(srcDir, 'rename')
    whiteouts.whiteoutBeside(srcDir, baseName(from))
  }
  const atDst = upper.lstat(to)
  if (atDst !== undefined && src.isDir && (atDst.isDirectory() || isWhiteoutStat(atDst))) {
    // A directory cannot replace a non-empty upper directory (whiteouts
    // inside) or a device node: swap, then deal with what is left at `from`.
    upper.rename(from, to, native.RENAME_EXCHANGE)
    const whiteoutLeft = !atDst.isDirectory()
    if (srcBelow && !aufsWhiteout) {
      if (!whiteoutLeft) replaceWithWhiteout(core, from, true)
    } else if (whiteoutLeft) {
      upper.unlink(from)
    } else {
      discardUpper(core, from)
    }
  } else {
    const started = performance.now()
    const leaveWhiteout = srcBelow && !aufsWhiteout
    upper.rename(from, to, leaveWhiteout ? native.RENAME_WHITEOUT : 0)
    // RENAME_WHITEOUT left the overlay-form whiteout at `from` in the same step.
    if (leaveWhiteout) whiteouts.onMade('whiteout', from, 'overlay', performance.now() - started)
  }
  whiteouts.clearWhiteout(toDir, toName)
  forget(core, from, src.isDir)
  forget(core, to, src.isDir || dst?.isDir === true)
}

/**
 * Copies the source up and marks a directory for its new place: a redirect
 * to its lower content, or opaque where the target name has lower content.
 */
function prepareSource (core: Core, src: Entry, to: string): void {
  if (!src.isDir) {
    core.copyUp.file(src.path, 'rename')
    return
  }
  core.copyUp.dir(src.path, 'rename')
  const lower = src.dirs.find(d => d.layer > 0)
  if (lower !== undefined) {
    core.whiteouts.setRedirect(src.path, lower.rel)
  } else if (landsOnLowerName(core, to)) {
    core.whiteouts.makeOpaque(src.path)
  }
}

/** Does a lower branch have `to`, even if the upper branch whites it out? */
function landsOnLowerName (core: Core, to: string): boolean {
  const { resolver, whiteouts } = core
  const parent = resolver.get(parentOf(to), 'rename')
  return whiteouts.hasWhiteout(parentOf(to), baseName(to)) || resolver.existsBelowTop(parent, baseName(to))
}

function exchange (core: Core, a: Entry, b: Entry): void {
  prepareSource(core, a, b.path)
  prepareSource(core, b, a.path)
  newEntryParent(core, a.path, 'rename')
  newEntryParent(core, b.path, 'rename')
  core.upper.rename(a.path, b.path, native.RENAME_EXCHANGE)
  forget(core, a.path, true)
  forget(core, b.path, true)
}
