/**
 * Ring 3, robustness under stress-ng's filesystem stressors: two workers of
 * each, for two seconds, with `--verify` (each checks what it reads back),
 * in a fresh union mount. A stressor passes when stress-ng exits 0; one
 * that finds the filesystem cannot do its job says so and is skipped by
 * stress-ng itself (fiemap: FUSE has no FS_IOC_FIEMAP, so it is not run
 * here). `filename` tries every byte a name may hold, up to the longest
 * name statfs allows: it is what showed names that are not UTF-8 coming
 * out as U+FFFD. `npm test` installs stress-ng from Debian when it is
 * missing.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { tmpdir, withUnion } from './helpers/mount'

const STRESSORS = [
  'dir', 'dentry', 'filename', 'link', 'symlink', 'rename', 'chmod', 'chown', 'utime', 'xattr',
  'fallocate', 'hdd', 'lockf', 'fcntl', 'flock', 'locka', 'lockofd', 'getdent', 'seek', 'sync-file',
  'copy-file', 'dirdeep', 'dirmany', 'readahead', 'io', 'iomix', 'mmap', 'fstat', 'file-ioctl', 'inotify'
]

const haveStressNg = spawnSync('stress-ng', ['--version'], { stdio: 'ignore' }).status === 0

t.test('stress-ng filesystem stressors through the mount, with --verify', async t => {
  t.ok(haveStressNg, 'stress-ng is installed (npm test installs it)')
  if (!haveStressNg) return
  const u = withUnion(t, { branches: [tmpdir(t, 'upper'), `${tmpdir(t, 'lower')}=ro`] })
  for (const s of STRESSORS) {
    const r = spawnSync('stress-ng', [
      `--${s}`, '2', '--timeout', '2', '--verify', '--temp-path', u.mnt, '--hdd-bytes', '16M', '--iomix-bytes', '16M'
    ], { encoding: 'utf8', timeout: 120_000 })
    const complaints = `${r.stdout}${r.stderr}`.split('\n').filter(l => /\b(fail|error)\b/i.test(l))
    t.equal(r.status, 0, `${s}: exit 0${complaints.length > 0 ? ` (${complaints.slice(0, 3).join('; ')})` : ''}`)
  }
})
