/**
 * The one error shape and the one errno mapping.
 *
 * Every failure inside unionfs-ts is an FsError shaped like Node's own
 * system errors: `code` ('ENOENT'), `errno` (negative, as Node reports it),
 * `syscall` and `path`. Errors thrown by node:fs already have that shape and
 * pass through unchanged. The FUSE transport turns any error into the
 * kernel's negative errno with `toErrno`; an error without a known code is a
 * bug, becomes EIO, and is logged once by the caller, never passed off as a
 * missing file.
 */
import { constants } from 'node:os'

const ERRNO = constants.errno as Record<string, number>

export class FsError extends Error {
  readonly code: string
  readonly errno: number
  readonly syscall: string
  readonly path?: string

  constructor (code: string, syscall: string, path?: string, message?: string) {
    // An FsError is an answer (ENOENT, ENODATA, EXDEV...), most of them on
    // the request path; capturing a stack costs more than the lookup it
    // reports, so it has none. Bugs are other errors and keep theirs.
    const limit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    super(`${code}: ${message ?? code.toLowerCase()}, ${syscall}${path !== undefined ? ` '${path}'` : ''}`)
    Error.stackTraceLimit = limit
    const n = ERRNO[code]
    if (n === undefined) throw new TypeError(`unknown errno code ${code}`)
    this.name = 'FsError'
    this.code = code
    this.errno = -n
    this.syscall = syscall
    this.path = path
  }
}

/** Shorthand used throughout the core: `throw fsError('EROFS', 'unlink', p)`. */
export function fsError (code: string, syscall: string, path?: string, message?: string): FsError {
  return new FsError(code, syscall, path, message)
}

/** True when `err` is a system error carrying `code` (ours or node:fs's). */
export function isCode (err: unknown, ...codes: string[]): boolean {
  return typeof err === 'object' && err !== null &&
    codes.includes((err as { code?: unknown }).code as string)
}

/**
 * The positive errno for an error, or undefined when the error carries no
 * code we know (a bug: the caller answers EIO and logs it).
 */
export function errnoOf (err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined
  const { code, errno } = err as { code?: unknown, errno?: unknown }
  const known = typeof code === 'string' ? ERRNO[code] : undefined
  if (known !== undefined) return known
  // The native shim names errnos Node's table lacks (EUCLEAN, ...): its
  // negative `errno` is still the kernel's number.
  if (typeof code === 'string' && typeof errno === 'number' && errno < 0) return -errno
  return undefined
}

export function errnoCode (name: string): number {
  const n = ERRNO[name]
  if (n === undefined) throw new TypeError(`unknown errno code ${name}`)
  return n
}
