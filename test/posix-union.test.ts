/**
 * Ring 2 against unionfs-ts: the POSIX suite through a real mount must give
 * the plain directory's transcript. Three placements:
 *  - a new directory on a union of one empty writable branch over a
 *    read-only branch holding unrelated content (branch-list syntax);
 *  - a directory that exists only in the read-only branch, three levels
 *    down, so the first mutation of every scenario copies up its parents;
 *  - the same with the overlay option syntax (lowerdir/upperdir/workdir)
 *    and overlay-dialect whiteouts.
 * Afterwards the read-only branch is unchanged and the work dir is empty.
 * Then the scenario on clearing suid/sgid once more with `killpriv=off`,
 * where the kernel clears them instead of the daemon; the whole suite with
 * the writeback cache; and the attribute changes of a file unlinked while
 * open, which go through its descriptor.
 */
import t from 'tap'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { runPosixSuite, compareTranscripts, LOWER_SPEC, DEEP_DIR } from './helpers/posix-suite'
import { makeTree, snapshotTree } from './helpers/tree'
import { workLeftovers } from './helpers/union-env'
import { tmpdir, withUnion } from './helpers/mount'
import * as native from '../lib/native'

const WORK = '.wh..wh.unionfs-ts'

let reference: string[] | undefined
function plain (t: tap.Test): string[] {
  reference ??= runPosixSuite(tmpdir(t, 'plain'))
  return reference
}

t.test('unionfs-ts, suite in a new directory (empty rw branch over unrelated ro branch)', async t => {
  const want = plain(t)
  const lower = makeTree(tmpdir(t, 'lower'), LOWER_SPEC)
  const before = snapshotTree(lower)
  const upper = tmpdir(t, 'upper')
  const { mnt } = withUnion(t, { branches: [upper, `${lower}=ro`] })
  const root = path.join(mnt, 'suite')
  fs.mkdirSync(root)
  compareTranscripts(t, runPosixSuite(root), want, 'unionfs-ts')
  t.strictSame(snapshotTree(lower), before, 'read-only branch unchanged')
  t.strictSame(workLeftovers(path.join(upper, WORK)), [], 'work dir holds nothing')
})

t.test('unionfs-ts, suite inside a directory that exists only in the ro branch', async t => {
  const want = plain(t)
  const lower = makeTree(tmpdir(t, 'lower'), LOWER_SPEC)
  const before = snapshotTree(lower)
  const upper = tmpdir(t, 'upper')
  const { mnt } = withUnion(t, { branches: [upper, `${lower}=ro`] })
  compareTranscripts(t, runPosixSuite(path.join(mnt, DEEP_DIR)), want, 'unionfs-ts (lower-only dir)')
  t.strictSame(snapshotTree(lower), before, 'read-only branch unchanged')
  t.strictSame(workLeftovers(path.join(upper, WORK)), [], 'work dir holds nothing')
})

t.test('unionfs-ts with lowerdir=/upperdir=/workdir=, suite inside a lower-only directory', async t => {
  const want = plain(t)
  const lower = makeTree(tmpdir(t, 'lower'), LOWER_SPEC)
  const before = snapshotTree(lower)
  const upper = tmpdir(t, 'upper')
  const work = tmpdir(t, 'work')
  const { mnt } = withUnion(t, { lowers: [lower], upper, workdir: work })
  compareTranscripts(t, runPosixSuite(path.join(mnt, DEEP_DIR)), want, 'unionfs-ts (overlay syntax)')
  t.strictSame(snapshotTree(lower), before, 'read-only branch unchanged')
  t.strictSame(workLeftovers(work), [], 'work dir holds nothing')
  t.notOk(fs.readdirSync(upper).some(n => n.startsWith('.wh.')), 'no AUFS-dialect names in an overlay-syntax upper')
})

t.test('unionfs-ts with killpriv=off: the kernel clears suid and sgid itself', async t => {
  // Its rule keeps a sgid without group-execute that a writer outside the
  // group would clear on a native filesystem (lib/fuse/killpriv.ts); every
  // other step of the scenario must match, the O_TRUNC open's included.
  const sgid = 'kill-privs: mode of sgid -> ok '
  const want = runPosixSuite(tmpdir(t, 'plain-kill'), ['kill-privs'])
  const upper = tmpdir(t, 'upper')
  const lower = makeTree(tmpdir(t, 'lower'), LOWER_SPEC)
  const { mnt } = withUnion(t, { branches: [upper, `${lower}=ro`], options: ['killpriv=off'] })
  const root = path.join(mnt, 'suite')
  fs.mkdirSync(root)
  const got = runPosixSuite(root, ['kill-privs'])
  t.ok(want.includes(sgid + '"767"') && got.includes(sgid + '"2767"'), 'the one declared difference shows')
  t.strictSame(got.filter(l => !l.startsWith(sgid)), want.filter(l => !l.startsWith(sgid)), 'the rest matches')
})

t.test('unionfs-ts with writeback: the suite inside a lower-only directory', async t => {
  // With the writeback cache the kernel keeps mtime and ctime itself and
  // sends them along with other changes (an ftruncate's SETATTR carries
  // the times, even for a file unlinked while open).
  const want = plain(t)
  const lower = makeTree(tmpdir(t, 'lower'), LOWER_SPEC)
  const before = snapshotTree(lower)
  const upper = tmpdir(t, 'upper')
  const { mnt } = withUnion(t, { branches: [upper, `${lower}=ro`], options: ['writeback'] })
  compareTranscripts(t, runPosixSuite(path.join(mnt, DEEP_DIR)), want, 'unionfs-ts (writeback)')
  t.strictSame(snapshotTree(lower), before, 'read-only branch unchanged')
  t.strictSame(workLeftovers(path.join(upper, WORK)), [], 'work dir holds nothing')
})

t.test('a file unlinked while open: fchmod, fchown, ftruncate, futimens and xattrs through its descriptor', async t => {
  const upper = tmpdir(t, 'upper')
  const lower = makeTree(tmpdir(t, 'lower'), LOWER_SPEC)
  const { mnt } = withUnion(t, { branches: [upper, `${lower}=ro`] })
  const outcome = (dir: string): string[] => {
    const f = path.join(dir, 'gone')
    fs.writeFileSync(f, 'some bytes')
    const fd = fs.openSync(f, 'r+')
    try {
      fs.unlinkSync(f)
      fs.fchmodSync(fd, 0o640)
      fs.fchownSync(fd, 1234, 5678)
      fs.ftruncateSync(fd, 4)
      fs.futimesSync(fd, 1_000_000_000, 1_100_000_000)
      native.fsetxattr(fd, 'user.a', Buffer.from('1'), 0)
      native.fsetxattr(fd, 'user.b', Buffer.from('2'), 0)
      native.fremovexattr(fd, 'user.b')
      const xattrs = native.flistxattr(fd).map(n => `${n}=${native.fgetxattr(fd, n).toString()}`).join(',')
      const st = fs.fstatSync(fd)
      return [(st.mode & 0o7777).toString(8), `${st.uid}:${st.gid}`, String(st.mtimeMs), String(st.size), String(st.nlink), xattrs]
    } finally {
      fs.closeSync(fd)
    }
  }
  t.strictSame(outcome(path.join(mnt, DEEP_DIR)), outcome(tmpdir(t, 'plain-gone')), 'as on a plain directory')
  t.strictSame(outcome(path.join(mnt, DEEP_DIR)), ['640', '1234:5678', '1100000000000', '4', '0', 'user.a=1'])
})
