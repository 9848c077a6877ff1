/**
 * POSIX ACLs through a real mount (FUSE_POSIX_ACL, lib/union/acl.ts): the
 * kernel enforces a lower file's ACL as the kernel's overlayfs does, new
 * entries get their parent's default ACL and the umask only where there is
 * none (compared with the same steps in a plain directory), an ACL set
 * through the mount lands on the copy-up and takes effect at once, a setter
 * outside the file's group loses set-group-ID, and nothing is inherited
 * from the work dir. `acl=off` (and `noacl`) keeps the mode-bits-only
 * checks. ACLs are read and written with getfacl/setfacl (Debian's acl,
 * scripts/test-deps.sh); other users are uid 65534 (nobody).
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { run, scratch, tmpdir, withOverlay, withUnion } from './helpers/mount'

const NOBODY = 65534

/** Runs `sh -c script` as nobody (or as root with `root`), in /; status and stderr. */
function sh (script: string, as: 'nobody' | 'root' = 'nobody'): { status: number | null, stderr: string } {
  const ids = as === 'nobody' ? { uid: NOBODY, gid: NOBODY } : {}
  const r = spawnSync('sh', ['-c', script], { encoding: 'utf8', cwd: '/', timeout: 30_000, ...ids })
  return { status: r.status, stderr: r.stderr ?? '' }
}

function canRead (file: string): boolean {
  return sh(`cat "${file}" > /dev/null`).status === 0
}

function setfacl (...args: string[]): void {
  const r = run('setfacl', args)
  if (r.status !== 0) throw new Error(`setfacl ${args.join(' ')}: ${r.stderr}`)
}

/** The ACL as getfacl prints it, without the header (names and comments). */
function acl (p: string): string {
  const r = run('getfacl', ['-c', '-p', p])
  if (r.status !== 0) throw new Error(`getfacl ${p}: ${r.stderr}`)
  return r.stdout.trim()
}

function modeOf (p: string): string {
  return (fs.lstatSync(p).mode & 0o7777).toString(8)
}

/** Branches under a scratch dir that nobody may walk. */
function dirs (t: Tap.Test, ...names: string[]): string[] {
  fs.chmodSync(scratch(t), 0o755)
  return names.map(n => tmpdir(t, n))
}

t.test('a lower file\'s ACL is enforced, as by overlayfs; acl=off checks the mode bits alone', async (t) => {
  const [lower, upper, oUpper, oWork] = dirs(t, 'lower', 'upper', 'oupper', 'owork')
  const f = path.join(lower, 'f')
  fs.writeFileSync(f, 'secret')
  fs.chmodSync(f, 0o644)
  setfacl('-m', 'u:nobody:---', f)
  t.notOk(canRead(f), 'nobody cannot read it in the branch itself')

  const ovl = withOverlay(t, { lowers: [lower], upper: oUpper, work: oWork })
  t.notOk(canRead(path.join(ovl.mnt, 'f')), 'nor through overlayfs')
  const { mnt } = withUnion(t, { branches: [upper, `${lower}=ro`] })
  t.notOk(canRead(path.join(mnt, 'f')), 'nor through unionfs-ts')
  t.equal(fs.readFileSync(path.join(mnt, 'f'), 'utf8'), 'secret', 'its owner can')
  t.equal(acl(path.join(mnt, 'f')), acl(f), 'getfacl shows the branch\'s ACL')

  for (const option of ['acl=off', 'noacl']) {
    const off = withUnion(t, { branches: [tmpdir(t, 'upper'), `${lower}=ro`], options: [option] })
    t.ok(canRead(path.join(off.mnt, 'f')), `${option}: other's r-- lets nobody read`)
  }
})

t.test('new entries: the parent\'s default ACL instead of the umask, as in a plain directory', async (t) => {
  const [lower, upper, plain] = dirs(t, 'lower', 'upper', 'plain')
  const spec = 'u:nobody:rwx,g::r-x,o::---'
  for (const root of [lower, plain]) {
    fs.mkdirSync(path.join(root, 'd'))
    setfacl('-d', '-m', spec, path.join(root, 'd'))
    fs.writeFileSync(path.join(root, 'd', 'gone'), 'old')
    fs.mkdirSync(path.join(root, 'd', 'gonedir'))
  }
  const { mnt } = withUnion(t, { branches: [upper, `${lower}=ro`] })
  // gone and gonedir are whited out first: those names are made in the work dir.
  fs.rmSync(path.join(mnt, 'd', 'gone'))
  fs.rmSync(path.join(mnt, 'd', 'gonedir'), { recursive: true })
  fs.rmSync(path.join(plain, 'd', 'gone'))
  fs.rmSync(path.join(plain, 'd', 'gonedir'), { recursive: true })
  const make = (root: string): string =>
    `umask 077 && cd "${root}/d" && touch new gone && mkdir newdir gonedir && mkfifo fifo && mkdir newdir/sub`
  for (const root of [mnt, plain]) {
    const r = sh(make(root), 'root')
    t.equal(r.status, 0, `made in ${root === mnt ? 'the mount' : 'the plain dir'} ${r.stderr}`)
  }
  for (const name of ['new', 'gone', 'newdir', 'gonedir', 'fifo', 'newdir/sub']) {
    const there = path.join(mnt, 'd', name)
    const want = path.join(plain, 'd', name)
    t.equal(modeOf(there), modeOf(want), `${name}: mode ${modeOf(want)} (the umask 077 did not apply)`)
    t.equal(acl(there), acl(want), `${name}: the ACL inherited`)
    t.equal(acl(path.join(upper, 'd', name)), acl(want), `${name}: the same on the writable branch`)
  }
  t.ok(sh(`echo x > "${path.join(mnt, 'd', 'new')}"`).status === 0, 'the inherited entry lets nobody write')

  const r = sh(`umask 027 && touch "${mnt}/top" && mkdir "${mnt}/topdir"`, 'root')
  t.equal(r.status, 0, r.stderr)
  t.equal(modeOf(path.join(mnt, 'top')), '640', 'no default ACL: the umask applies to a file')
  t.equal(modeOf(path.join(mnt, 'topdir')), '750', 'and to a directory')
})

t.test('setfacl and chmod through the mount: on the copy-up, in effect at once', async (t) => {
  const [lower, upper] = dirs(t, 'lower', 'upper')
  const f = path.join(lower, 'f')
  fs.writeFileSync(f, 'data')
  fs.chmodSync(f, 0o640)
  const before = acl(f)
  const { mnt } = withUnion(t, { branches: [upper, `${lower}=ro`] })
  const m = path.join(mnt, 'f')
  t.notOk(canRead(m), 'nobody cannot read a 0640 root file')
  setfacl('-m', 'u:nobody:r--', m)
  t.ok(canRead(m), 'after setfacl through the mount, nobody can (the kernel dropped its cached ACL)')
  t.match(acl(path.join(upper, 'f')), /user:nobody:r--/, 'the ACL is on the copy-up')
  t.equal(acl(f), before, 'the lower file is untouched')
  fs.chmodSync(m, 0o600)
  t.match(acl(m), /mask::---/, 'chmod 600 set the mask to ---')
  t.notOk(canRead(m), 'and nobody can no longer read')
  setfacl('-x', 'u:nobody', m)
  t.notMatch(acl(m), /nobody/, 'setfacl -x removed the entry')
})

t.test('an ACL set by a user outside the file\'s group clears set-group-ID, as natively', async (t) => {
  const [lower, upper, plain] = dirs(t, 'lower', 'upper', 'plain')
  for (const root of [lower, plain]) {
    const f = path.join(root, 's')
    fs.writeFileSync(f, '')
    fs.chownSync(f, NOBODY, 0)
    fs.chmodSync(f, 0o2775)
  }
  const { mnt } = withUnion(t, { branches: [upper, `${lower}=ro`] })
  for (const root of [mnt, plain]) {
    const r = sh(`setfacl -m u:daemon:r "${root}/s"`)
    t.equal(r.status, 0, `nobody, the owner, sets an ACL ${r.stderr}`)
  }
  t.equal(modeOf(path.join(plain, 's')), '775', 'natively set-group-ID goes')
  t.equal(modeOf(path.join(mnt, 's')), '775', 'through the mount too')
  t.equal(modeOf(path.join(lower, 's')), '2775', 'the lower file keeps it')
})

t.test('nothing is inherited from the work dir', async (t) => {
  const [lower, upper] = dirs(t, 'lower', 'upper')
  setfacl('-d', '-m', 'u:nobody:rwx', upper)
  fs.writeFileSync(path.join(lower, 'f'), 'data')
  fs.chmodSync(path.join(lower, 'f'), 0o644)
  fs.mkdirSync(path.join(lower, 'd'))
  fs.writeFileSync(path.join(lower, 'd', 'g'), 'data')
  const { mnt } = withUnion(t, { branches: [upper, `${lower}=ro`] })
  const work = path.join(upper, '.wh..wh.unionfs-ts')
  t.notMatch(acl(work), /default:/, 'the work dir has no default ACL')
  fs.chmodSync(path.join(mnt, 'f'), 0o640)
  fs.chmodSync(path.join(mnt, 'd', 'g'), 0o640)
  for (const rel of ['f', 'd', 'd/g']) {
    t.notMatch(acl(path.join(upper, rel)), /nobody/, `the copy-up of ${rel} has only the lower entry's ACL`)
  }
})
