/**
 * Union and branch-relative paths: absolute, '/'-separated, normalised,
 * '/' for the root. Plain string work, kept in one place so that nothing
 * else joins or splits paths by hand.
 */
export function childRel (dir: string, name: string): string {
  return dir === '/' ? '/' + name : dir + '/' + name
}

export function parentOf (path: string): string {
  const i = path.lastIndexOf('/')
  return i <= 0 ? '/' : path.slice(0, i)
}

export function baseName (path: string): string {
  return path.slice(path.lastIndexOf('/') + 1)
}

/** Is `path` equal to `dir` or below it? */
export function isWithin (path: string, dir: string): boolean {
  return dir === '/' || path === dir || path.startsWith(dir + '/')
}

/** `path` moved from below `from` to below `to`. */
export function rebase (path: string, from: string, to: string): string {
  return path === from ? to : childRel(to, path.slice(from.length + 1))
}
