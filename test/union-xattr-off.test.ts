/**
 * `-o xattr=off` through a real mount: the kernel is told once (ENOSYS)
 * and sends no more xattr requests, callers get EOPNOTSUPP, and what the
 * union does with xattrs on its branches is unchanged: copy-up copies a
 * lower file's xattrs, and the overlay dialect's opaque directories work.
 * The POSIX suite differs from a plain directory in its xattr scenario only.
 */
import t from 'tap'
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as native from '../lib/native'
import { CLI, run, tmpdir, withUnion } from './helpers/mount'
import { runPosixSuite, LOWER_SPEC, DEEP_DIR } from './helpers/posix-suite'
import { makeTree } from './helpers/tree'

const FILES = 20
/** EOPNOTSUPP: Linux gives it and ENOTSUP one number, which Node names ENOTSUP. */
const NOT_SUPPORTED = 'ENOTSUP'

function requestsOf (mnt: string): Record<string, number> {
  const r = run(process.execPath, [CLI, 'stats', '--json', mnt])
  if (r.status !== 0) throw new Error(`stats: ${r.stderr}`)
  return (JSON.parse(r.stdout) as { requests: { byKind: Record<string, number> } }).requests.byKind
}

function errCode (fn: () => unknown): string | undefined {
  try {
    fn()
    return undefined
  } catch (err) {
    return (err as NodeJS.ErrnoException).code
  }
}

function lowerTree (t: Tap.Test): { lower: string, upper: string } {
  const lower = tmpdir(t, 'lower')
  const upper = tmpdir(t, 'upper')
  fs.mkdirSync(path.join(lower, 'many'))
  for (let i = 0; i < FILES; i++) fs.writeFileSync(path.join(lower, 'many', `f${i}`), 'x')
  fs.writeFileSync(path.join(lower, 'tagged'), 'data')
  native.lsetxattr(path.join(lower, 'tagged'), 'user.colour', Buffer.from('blue'), 0)
  fs.mkdirSync(path.join(lower, 'dir'))
  fs.writeFileSync(path.join(lower, 'dir', 'old'), 'old')
  return { lower, upper }
}

/** GETXATTRs an `ls -l` of `many/` sends. */
function lsGetxattrs (mnt: string): number {
  const before = requestsOf(mnt).GETXATTR ?? 0
  const ls = run('ls', ['-l', path.join(mnt, 'many')])
  if (ls.status !== 0) throw new Error(`ls: ${ls.stderr}`)
  return (requestsOf(mnt).GETXATTR ?? 0) - before
}

t.test('xattr=off: no xattr requests after the first, EOPNOTSUPP to callers', async (t) => {
  const { lower, upper } = lowerTree(t)
  const { mnt } = withUnion(t, { branches: [upper, `${lower}=ro`], options: ['xattr=off'] })
  t.equal(errCode(() => native.lgetxattr(path.join(mnt, 'tagged'), 'user.colour')), NOT_SUPPORTED, 'getxattr')
  t.equal(errCode(() => native.llistxattr(path.join(mnt, 'tagged'))), NOT_SUPPORTED, 'listxattr')
  t.equal(errCode(() => native.lsetxattr(path.join(mnt, 'tagged'), 'user.x', Buffer.from('1'), 0)), NOT_SUPPORTED, 'setxattr')
  t.equal(errCode(() => native.lremovexattr(path.join(mnt, 'tagged'), 'user.colour')), NOT_SUPPORTED, 'removexattr')
  t.equal(lsGetxattrs(mnt), 0, `ls -l of ${FILES} files sends no GETXATTR once the kernel had ENOSYS`)
  t.ok((requestsOf(mnt).GETXATTR ?? 0) <= 1, 'one GETXATTR in all')

  fs.chmodSync(path.join(mnt, 'tagged'), 0o600)
  t.equal(native.lgetxattr(path.join(upper, 'tagged'), 'user.colour').toString(), 'blue', 'copy-up copied the lower file\'s xattr')
  t.equal(fs.readFileSync(path.join(mnt, 'tagged'), 'utf8'), 'data')
})

t.test('xattr=on (the default): the same ls -l asks for two xattrs a file', async (t) => {
  const { lower, upper } = lowerTree(t)
  const { mnt } = withUnion(t, { branches: [upper, `${lower}=ro`] })
  t.equal(native.lgetxattr(path.join(mnt, 'tagged'), 'user.colour').toString(), 'blue')
  t.ok(lsGetxattrs(mnt) >= 2 * FILES, `ls -l of ${FILES} files: at least ${2 * FILES} GETXATTRs`)
})

t.test('xattr=off with the overlay dialect: opaque directories still hide the lower entries', async (t) => {
  const { lower, upper } = lowerTree(t)
  const { mnt } = withUnion(t, { lowers: [lower], upper, workdir: tmpdir(t, 'work'), options: ['xattr=off'] })
  fs.rmSync(path.join(mnt, 'dir'), { recursive: true })
  fs.mkdirSync(path.join(mnt, 'dir'))
  t.same(fs.readdirSync(path.join(mnt, 'dir')), [], 'a directory made over a removed lower one is empty')
  t.ok(fs.existsSync(path.join(lower, 'dir', 'old')), 'the lower branch is untouched')
})

t.test('xattr=off on the fuse-native backend: libfuse answers ENOSYS, callers get EOPNOTSUPP', async (t) => {
  const { lower, upper } = lowerTree(t)
  const { mnt } = withUnion(t, { branches: [upper, `${lower}=ro`], options: ['backend=fuse-native', 'xattr=off'] })
  t.equal(errCode(() => native.lgetxattr(path.join(mnt, 'tagged'), 'user.colour')), NOT_SUPPORTED, 'getxattr')
  t.equal(errCode(() => native.lsetxattr(path.join(mnt, 'tagged'), 'user.x', Buffer.from('1'), 0)), NOT_SUPPORTED, 'setxattr')
  t.equal(fs.readFileSync(path.join(mnt, 'tagged'), 'utf8'), 'data', 'files read as before')
})

t.test('xattr=off, the POSIX suite: the xattr scenario answers ENOTSUP, every other step as on a plain directory', async (t) => {
  const want = runPosixSuite(tmpdir(t, 'plain'))
  const upper = tmpdir(t, 'upper')
  const lower = makeTree(tmpdir(t, 'lower'), LOWER_SPEC)
  const { mnt } = withUnion(t, { branches: [upper, `${lower}=ro`], options: ['xattr=off'] })
  const got = runPosixSuite(path.join(mnt, DEEP_DIR))
  const isXattr = (line: string): boolean => line.startsWith('xattr: ')
  t.strictSame(got.filter(l => !isXattr(l)), want.filter(l => !isXattr(l)), 'the other scenarios')
  // Each step of the xattr scenario: as on the plain directory (a write, a rename,
  // what the kernel refuses before asking), or ENOTSUP where the call reached the mount.
  const step = (line: string): string => line.slice(0, line.indexOf(' -> '))
  const plainXattr = want.filter(isXattr)
  const gotXattr = got.filter(isXattr)
  t.strictSame(gotXattr.map(step), plainXattr.map(step), 'the same steps')
  const changed = gotXattr.filter((l, i) => l !== plainXattr[i])
  t.ok(changed.length > 10, `${changed.length} steps differ`)
  t.strictSame(changed.filter(l => !l.endsWith('-> ' + NOT_SUPPORTED)), [], 'each of them ENOTSUP')
})
