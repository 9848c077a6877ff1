/**
 * The few system calls node:fs lacks, for the tests: extended attributes,
 * mknod, lseek with SEEK_DATA / SEEK_HOLE.
 *
 * Each call runs a short python3 program (python3 is on every machine of this
 * kind; the project's native addon is not a test dependency on purpose, so
 * the tests can judge it). Failures come back as Node-shaped errors with a
 * `code` ('ENOENT', 'ENODATA', ...) so a test records them like any fs error.
 *
 * Calls are synchronous: the filesystem under test is always served by
 * another process, so blocking the test process is safe.
 */
import { execFileSync } from 'node:child_process'

const PROGRAM = String.raw`
import base64, errno, json, os, sys

def xattrs(path, follow):
    out = {}
    for name in sorted(os.listxattr(path, follow_symlinks=follow)):
        try:
            out[name] = base64.b64encode(os.getxattr(path, name, follow_symlinks=follow)).decode()
        except OSError as e:
            out[name] = '!' + errno.errorcode.get(e.errno, str(e.errno))
    return out

def run(op, a):
    if op == 'getxattr':
        return base64.b64encode(os.getxattr(a[0], a[1], follow_symlinks=a[2])).decode()
    if op == 'setxattr':
        os.setxattr(a[0], a[1], base64.b64decode(a[2]), a[3], follow_symlinks=a[4])
        return None
    if op == 'listxattr':
        return sorted(os.listxattr(a[0], follow_symlinks=a[1]))
    if op == 'removexattr':
        os.removexattr(a[0], a[1], follow_symlinks=a[2])
        return None
    if op == 'xattrs':
        res = {}
        for p in a[0]:
            try:
                res[p] = xattrs(p, False)
            except OSError as e:
                res[p] = '!' + errno.errorcode.get(e.errno, str(e.errno))
        return res
    if op == 'mknod':
        os.mknod(a[0], a[1], os.makedev(a[2], a[3]))
        return None
    if op == 'seek':
        fd = os.open(a[0], os.O_RDONLY)
        try:
            return os.lseek(fd, a[2], os.SEEK_DATA if a[1] == 'data' else os.SEEK_HOLE)
        finally:
            os.close(fd)
    raise ValueError('unknown op ' + op)

req = json.loads(sys.stdin.read())
try:
    print(json.dumps({'ok': run(req['op'], req['args'])}))
except OSError as e:
    print(json.dumps({'err': errno.errorcode.get(e.errno, 'E?'), 'msg': str(e)}))
`

export interface SysError extends Error { code: string, syscall: string, path?: string }

function call (op: string, args: unknown[]): unknown {
  const out = execFileSync('python3', ['-c', PROGRAM], {
    input: JSON.stringify({ op, args }),
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    timeout: 120_000
  })
  const res = JSON.parse(out) as { ok?: unknown, err?: string, msg?: string }
  if (res.err !== undefined) {
    const e = new Error(`${res.err}: ${op} ${String(args[0])}: ${res.msg ?? ''}`) as SysError
    e.code = res.err
    e.syscall = op
    if (typeof args[0] === 'string') e.path = args[0]
    throw e
  }
  return res.ok
}

export const XATTR_CREATE = 1
export const XATTR_REPLACE = 2

export function getxattr (path: string, name: string, follow = true): Buffer {
  return Buffer.from(call('getxattr', [path, name, follow]) as string, 'base64')
}

export function setxattr (path: string, name: string, value: string | Buffer, flags = 0, follow = true): void {
  call('setxattr', [path, name, Buffer.from(value).toString('base64'), flags, follow])
}

export function listxattr (path: string, follow = true): string[] {
  return call('listxattr', [path, follow]) as string[]
}

export function removexattr (path: string, name: string, follow = true): void {
  call('removexattr', [path, name, follow])
}

/**
 * Every xattr (name -> value) of many paths at once, without following
 * symlinks. A path whose xattrs cannot be read maps to '!CODE'.
 */
export function xattrsOf (paths: string[]): Record<string, Record<string, Buffer> | string> {
  if (paths.length === 0) return {}
  const raw = call('xattrs', [paths]) as Record<string, Record<string, string> | string>
  const out: Record<string, Record<string, Buffer> | string> = {}
  for (const [p, v] of Object.entries(raw)) {
    if (typeof v === 'string') { out[p] = v; continue }
    const m: Record<string, Buffer> = {}
    for (const [n, b] of Object.entries(v)) m[n] = b.startsWith('!') ? Buffer.from(b) : Buffer.from(b, 'base64')
    out[p] = m
  }
  return out
}

/** mknod(2): mode carries the file type bits (S_IFCHR, S_IFIFO, ...). */
export function mknod (path: string, mode: number, major = 0, minor = 0): void {
  call('mknod', [path, mode, major, minor])
}

/** lseek(2) with SEEK_DATA or SEEK_HOLE on a fresh read-only descriptor. */
export function seek (path: string, whence: 'data' | 'hole', offset: number): number {
  return call('seek', [path, whence, offset]) as number
}
