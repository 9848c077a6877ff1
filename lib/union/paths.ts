/**
 * Union and branch-relative paths: absolute, '/'-separated, normalised,
 * '/' for the root. Plain string work, kept in one place so that nothing
 * else joins or splits paths by hand.
 *
 * A path or name inside the union is a byte string: one character per byte
 * of the name as the kernel and the branches' filesystems know it (Node's
 * 'latin1'). A Linux name is any bytes but '/' and NUL, not necessarily
 * UTF-8 (a Latin-1 name from an old archive, say), and a byte string keeps
 * every one of them as it is, where a UTF-8 decoding would turn invalid
 * bytes into U+FFFD and a name into another. The conversions happen at the
 * edges: the FUSE codec reads and writes the bytes as they are, a branch
 * hands node:fs the bytes (`fsPath`, branch.ts), so do layer tarballs
 * (lib/layers/tar-name.ts), and a name that comes from or goes to a person
 * (a message, `inspect`, a trace) goes through `toBytes` / `fromBytes`.
 * An ASCII name is the same string either way.
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

/** The byte string of a JavaScript string: its UTF-8 bytes, one character each. */
export function toBytes (s: string): string {
  return isAscii(s) ? s : Buffer.from(s, 'utf8').toString('latin1')
}

/** The JavaScript string a byte string spells in UTF-8 (invalid bytes become U+FFFD). */
export function fromBytes (b: string): string {
  return isAscii(b) ? b : Buffer.from(b, 'latin1').toString('utf8')
}

/** The bytes of a byte string, for node:fs. */
export function bytesOf (b: string): Buffer {
  return Buffer.from(b, 'latin1')
}

/**
 * Byte string `b` as node:fs and the native shim take a path: itself when
 * ASCII (they encode a string as UTF-8, which is the same bytes), else its
 * Buffer. Most paths are ASCII, and a Buffer per system call is an
 * allocation the hot path need not make.
 */
export function fsPath (b: string): string | Buffer {
  return isAscii(b) ? b : bytesOf(b)
}

const NOT_ASCII = /[^\x00-\x7f]/

function isAscii (s: string): boolean {
  return !NOT_ASCII.test(s)
}
