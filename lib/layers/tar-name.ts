/**
 * Names inside a layer tarball, checked before anything touches the disk.
 *
 * A tar entry name becomes a branch-relative path ('/a/b', '/' for the
 * layer's root) only if it stays inside the layer: absolute names and any
 * `..` component are refused, not rewritten (a layer that tries either is
 * hostile or broken, and a silent fix would hide it). `.` components and
 * repeated slashes are dropped, as tar itself does. What the name's parents
 * are on disk (a symlink planted by an earlier entry) is apply.ts's check.
 * Tar names are JavaScript strings (tar-stream decodes them as UTF-8);
 * branch-relative paths are byte strings (lib/union/paths.ts).
 */
import { fromBytes, toBytes } from '../union/paths'
import { LayerError } from './layer-error'

export function entryRel (name: string, what = 'entry'): string {
  if (name.includes('\0')) throw new LayerError(`${what} ${JSON.stringify(name)}: NUL in the name`)
  if (name.startsWith('/')) throw new LayerError(`${what} ${JSON.stringify(name)}: absolute name refused (it would land outside the directory)`)
  const parts: string[] = []
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue
    if (part === '..') throw new LayerError(`${what} ${JSON.stringify(name)}: '..' refused (it would land outside the directory)`)
    if (Buffer.byteLength(part) > 255) throw new LayerError(`${what} ${JSON.stringify(name)}: a name longer than 255 bytes`)
    parts.push(part)
  }
  return toBytes('/' + parts.join('/'))
}

/** The tar name of a branch-relative path: no leading slash, a trailing one for directories. */
export function tarName (rel: string, isDir: boolean): string {
  const n = fromBytes(rel.slice(1))
  return isDir ? n + '/' : n
}
