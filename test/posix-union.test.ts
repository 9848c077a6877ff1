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
 */
import t from 'tap'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { runPosixSuite, compareTranscripts, LOWER_SPEC, DEEP_DIR } from './helpers/posix-suite'
import { makeTree, snapshotTree } from './helpers/tree'
import { workLeftovers } from './helpers/union-env'
import { tmpdir, withUnion } from './helpers/mount'

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
