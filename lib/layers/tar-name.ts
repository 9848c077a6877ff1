/**
 * Names inside a layer tarball, checked before anything touches the disk.
 *
 * A tar entry name becomes a branch-relative path ('/a/b', '/' for the
 * layer's root) only if it stays inside the layer: absolute names and any
 * `..` component are refused, not rewritten (a layer that tries either is
 * hostile or broken, and a silent fix would hide it). `.` components and
 * repeated slashes are dropped, as tar itself does. What the name's parents
 * are on disk (a symlink planted by an earlier entry) is apply.ts's check.
 * Tar names are bytes, as in the archive and on disk, so they are byte
 * strings here too, like branch-relative paths (lib/union/paths.ts): a name
 * that is not UTF-8 goes in and out unchanged. Messages show them decoded.
 */
import { fromBytes } from '../union/paths'
import { LayerError } from './layer-error'

/** A tar name (a byte string) for a message: decoded, quoted. */
export function quoted (name: string): string {
  return JSON.stringify(fromBytes(name))
}

/** The branch-relative path of tar name `name` (a byte string). */
export function entryRel (name: string, what = 'entry'): string {
  const shown = (): string => `${what} ${quoted(name)}`
  if (name.includes('\0')) throw new LayerError(`${shown()}: NUL in the name`)
  if (name.startsWith('/')) throw new LayerError(`${shown()}: absolute name refused (it would land outside the directory)`)
  const parts: string[] = []
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue
    if (part === '..') throw new LayerError(`${shown()}: '..' refused (it would land outside the directory)`)
    if (part.length > 255) throw new LayerError(`${shown()}: a name longer than 255 bytes`)
    parts.push(part)
  }
  return '/' + parts.join('/')
}

/** The tar name (a byte string) of a branch-relative path: no leading slash, a trailing one for directories. */
export function tarName (rel: string, isDir: boolean): string {
  const n = rel.slice(1)
  return isDir ? n + '/' : n
}
