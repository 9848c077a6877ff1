/**
 * open(O_TMPFILE) and linkat(2) through a real mount (FUSE_TMPFILE, then
 * LINK of a node with no name), beside the kernel's overlayfs running the
 * same script: an unnamed file in a lower directory (copied up first), its
 * data, its st_ino once named, O_EXCL keeping it unnamed, a name over a
 * whiteout; then the writable branch on disk: the named files there, the
 * never-named ones gone, the work dir empty. The syscalls come from a
 * Python script (ctypes linkat with AT_SYMLINK_FOLLOW: os.link does not
 * follow /proc/self/fd links).
 */
import t from 'tap'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { run, tmpdir, withOverlay, withUnion } from './helpers/mount'

const SCRIPT = String.raw`
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, AT_SYMLINK_FOLLOW = -100, 0x400
m = sys.argv[1]
out = []
def say(*a): out.append(' '.join(str(x) for x in a))
def flink(fd, dst):
    if libc.linkat(AT_FDCWD, f'/proc/self/fd/{fd}'.encode(), AT_FDCWD, dst.encode(), AT_SYMLINK_FOLLOW) != 0:
        return os.strerror(ctypes.get_errno())
    return 'ok'
os.umask(0o022)
fd = os.open(f'{m}/d', os.O_TMPFILE | os.O_RDWR, 0o666)
os.write(fd, b'hello')
st = os.fstat(fd)
say('unnamed: nlink', st.st_nlink, 'mode', oct(st.st_mode), 'listing', sorted(os.listdir(f'{m}/d')))
say('link:', flink(fd, f'{m}/d/named'))
named = os.stat(f'{m}/d/named')
say('named: same st_ino', named.st_ino == st.st_ino, 'nlink', named.st_nlink, 'fstat nlink', os.fstat(fd).st_nlink)
say('second name:', flink(fd, f'{m}/d/again'), os.stat(f'{m}/d/again').st_nlink)
os.write(fd, b' world')
os.close(fd)
say('data:', open(f'{m}/d/named').read(), open(f'{m}/d/again').read())
fd = os.open(f'{m}/d', os.O_TMPFILE | os.O_RDWR | os.O_EXCL, 0o600)
say('O_EXCL link:', flink(fd, f'{m}/d/excl'))
os.close(fd)
fd = os.open(f'{m}/d', os.O_TMPFILE | os.O_WRONLY, 0o600)
os.write(fd, b'never named')
os.close(fd)
os.unlink(f'{m}/d/old')
fd = os.open(f'{m}/d', os.O_TMPFILE | os.O_RDWR, 0o600)
os.write(fd, b'over the whiteout')
say('over a whiteout:', flink(fd, f'{m}/d/old'))
os.close(fd)
say('old:', open(f'{m}/d/old').read(), 'listing', sorted(os.listdir(f'{m}/d')))
fd = os.open(f'{m}/d', os.O_TMPFILE | os.O_RDWR, 0o600)
say('onto an existing name:', flink(fd, f'{m}/d/named'))
os.close(fd)
print(json.dumps(out))
`

function transcript (mnt: string): string[] {
  const r = run('python3', ['-c', SCRIPT, mnt])
  if (r.status !== 0) throw new Error(`python3: ${r.stderr}`)
  return JSON.parse(r.stdout) as string[]
}

function lowerTree (t: Tap.Test): string {
  const lower = tmpdir(t, 'lower')
  fs.mkdirSync(path.join(lower, 'd'))
  fs.writeFileSync(path.join(lower, 'd', 'old'), 'old')
  return lower
}

t.test('O_TMPFILE and linkat: what overlayfs does, and the writable branch after', async (t) => {
  const oLower = lowerTree(t)
  const ovl = withOverlay(t, { lowers: [oLower], upper: tmpdir(t, 'oupper'), work: tmpdir(t, 'owork') })
  const want = transcript(ovl.mnt)

  const lower = lowerTree(t)
  const upper = tmpdir(t, 'upper')
  const u = withUnion(t, { branches: [upper, `${lower}=ro`] })
  const got = transcript(u.mnt)
  t.same(got, want, 'the same transcript as overlayfs')
  t.match(got[0], /^unnamed: nlink 0 mode 0o100644 listing \['old'\]$/, 'an unnamed file, the umask applied, not listed')
  t.equal(got[1], 'link: ok')
  t.equal(got[4], 'data: hello world hello world', 'data written before and after the names')
  t.equal(got[5], 'O_EXCL link: No such file or directory', 'O_EXCL keeps it unnamed')
  t.equal(got[6], 'over a whiteout: ok')
  t.equal(got[8], 'onto an existing name: File exists')

  t.same(fs.readdirSync(path.join(upper, 'd')).filter(n => !n.startsWith('.wh.')).sort(), ['again', 'named', 'old'],
    'the writable branch holds the named files and nothing else')
  t.equal(fs.statSync(path.join(upper, 'd', 'named')).nlink, 2, 'two names, one file')
  t.equal(fs.readFileSync(path.join(lower, 'd', 'old'), 'utf8'), 'old', 'the lower file is untouched')
  t.same(fs.readdirSync(path.join(upper, '.wh..wh.unionfs-ts')), [], 'nothing left in the work dir')

  const ino = fs.statSync(path.join(u.mnt, 'd', 'named')).ino
  u.remount()
  t.equal(fs.statSync(path.join(u.mnt, 'd', 'named')).ino, ino, 'the named file keeps its st_ino across a remount')
  t.equal(fs.readFileSync(path.join(u.mnt, 'd', 'old'), 'utf8'), 'over the whiteout')
})

t.test('O_TMPFILE on a read-only union: EROFS', async (t) => {
  const lower = lowerTree(t)
  const u = withUnion(t, { branches: [`${lower}=ro`] })
  const r = run('python3', ['-c', 'import os, sys\ntry:\n  os.open(sys.argv[1], os.O_TMPFILE | os.O_RDWR, 0o600)\nexcept OSError as e:\n  print(e.strerror)', path.join(u.mnt, 'd')])
  t.equal(r.stdout.trim(), 'Read-only file system')
})
