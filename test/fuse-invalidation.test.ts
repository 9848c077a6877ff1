/**
 * Ring 3, kernel caches through a real mount with long timeouts (60 s for
 * entries, attributes and missing names): whatever the union changes beyond
 * what a request named must reach the kernel as an invalidation notice, or
 * the kernel keeps showing the old state for a minute.
 *
 * - A copy-up makes the missing ancestor directories in the writable
 *   branch: a lower-only directory becomes merged, and a merged directory
 *   reports st_nlink 1. The chmod of a file names only the file.
 * - A copy-up of one name of a file hard-linked inside a lower branch
 *   breaks the link: the other name keeps the lower file (its mode, its
 *   data), though the kernel held both names as one inode.
 *
 * Each runs with the serving thread (the default) and with the thread-pool
 * loop (UNIONFS_TS_SERVE=pool, inherited by the daemon).
 */
import t from 'tap'
import * as fs from 'node:fs'
import { hardlink, makeTree } from './helpers/tree'
import { tmpdir, withUnion } from './helpers/mount'

const LONG = ['entry_timeout=60', 'attr_timeout=60', 'negative_timeout=60']

/** The value `get` settles on within `ms` (the entry notice is written from the thread pool, just after the reply). */
async function settled<T> (get: () => T, want: T, ms = 2000): Promise<T> {
  const end = Date.now() + ms
  let v = get()
  while (v !== want && Date.now() < end) {
    await new Promise(resolve => setTimeout(resolve, 20))
    v = get()
  }
  return v
}

for (const serve of ['thread', 'pool']) {
  t.test(`${serve}: copy-up invalidates what the kernel cached`, async t => {
    const saved = process.env.UNIONFS_TS_SERVE
    process.env.UNIONFS_TS_SERVE = serve
    t.teardown(() => {
      if (saved === undefined) delete process.env.UNIONFS_TS_SERVE
      else process.env.UNIONFS_TS_SERVE = saved
    })
    const lower = makeTree(tmpdir(t, 'lower'), {
      a: { s1: {}, s2: {}, f: 'f' },
      h1: 'lower data',
      h2: hardlink('h1')
    })
    fs.chmodSync(`${lower}/h1`, 0o644)
    const upper = tmpdir(t, 'upper')
    const { mnt } = withUnion(t, { branches: [upper, lower], options: LONG })

    // Ancestor copy-up: /a goes from lower-only (real st_nlink 4) to merged (1).
    t.equal(fs.statSync(`${mnt}/a`).nlink, 4, 'a lower-only directory reports its real st_nlink')
    fs.chmodSync(`${mnt}/a/f`, 0o600)
    t.ok(fs.existsSync(`${upper}/a/f`), 'the file and its directory were copied up')
    t.equal(fs.statSync(`${mnt}/a`).nlink, 1, 'the directory, merged now, reports st_nlink 1 at once')

    // Hard link inside the lower branch: one kernel inode for h1 and h2 until the copy-up.
    t.equal(fs.statSync(`${mnt}/h2`).mode & 0o777, 0o644, 'h2 before')
    t.equal(fs.statSync(`${mnt}/h1`).ino, fs.statSync(`${mnt}/h2`).ino, 'h1 and h2: one st_ino')
    fs.chmodSync(`${mnt}/h1`, 0o600)
    fs.writeFileSync(`${mnt}/h1`, 'upper data')
    t.equal(fs.statSync(`${mnt}/h1`).mode & 0o777, 0o600, 'h1 has the new mode')
    t.equal(await settled(() => fs.statSync(`${mnt}/h2`).mode & 0o777, 0o644), 0o644, 'h2 keeps the lower mode')
    t.equal(fs.readFileSync(`${mnt}/h2`, 'utf8'), 'lower data', 'h2 keeps the lower data')
    t.equal(fs.readFileSync(`${mnt}/h1`, 'utf8'), 'upper data', 'h1 has the new data')
    t.equal(fs.statSync(`${lower}/h1`).mode & 0o777, 0o644, 'the lower branch is untouched')
  })
}
