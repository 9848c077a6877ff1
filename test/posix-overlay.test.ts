/**
 * Ring 2 against the kernel's overlayfs: the harness check. The POSIX suite
 * must give the plain directory's transcript on overlayfs (redirect_dir=on),
 * both in a fresh upper directory and inside a directory that exists only in
 * the lower layer. If this fails, the suite records something that is not
 * POSIX behaviour, and the unionfs-ts comparison would be unfair.
 */
import t from 'tap'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { runPosixSuite, compareTranscripts, LOWER_SPEC, DEEP_DIR } from './helpers/posix-suite'
import { makeTree, snapshotTree } from './helpers/tree'
import { tmpdir, withOverlay } from './helpers/mount'

let reference: string[] | undefined
function plain (t: tap.Test): string[] {
  reference ??= runPosixSuite(tmpdir(t, 'plain'))
  return reference
}

t.test('overlayfs, suite in a new directory of the upper layer', async t => {
  const want = plain(t)
  const lower = makeTree(tmpdir(t, 'lower'), LOWER_SPEC)
  const before = snapshotTree(lower)
  const { mnt } = withOverlay(t, { lowers: [lower], upper: tmpdir(t, 'upper'), work: tmpdir(t, 'work') })
  const root = path.join(mnt, 'suite')
  fs.mkdirSync(root)
  compareTranscripts(t, runPosixSuite(root), want, 'overlayfs')
  t.strictSame(snapshotTree(lower), before, 'lower layer unchanged')
})

t.test('overlayfs, suite inside a lower-only directory', async t => {
  const want = plain(t)
  const lower = makeTree(tmpdir(t, 'lower'), LOWER_SPEC)
  const before = snapshotTree(lower)
  const { mnt } = withOverlay(t, { lowers: [lower], upper: tmpdir(t, 'upper'), work: tmpdir(t, 'work') })
  compareTranscripts(t, runPosixSuite(path.join(mnt, DEEP_DIR)), want, 'overlayfs (lower-only dir)')
  t.strictSame(snapshotTree(lower), before, 'lower layer unchanged')
})
