/**
 * The mount(8) helpers and their install (scripts/install-helpers.js, npm's
 * postinstall script).
 *
 * - The install script, against scratch directories (UNIONFS_TS_SBIN_DIR,
 *   UNIONFS_TS_BIN_DIR): it makes both links, a second run changes nothing,
 *   it never touches a file or a link it did not make (only a dangling link
 *   to a removed checkout's bin is replaced), --remove takes away only links
 *   to this checkout; without root it does nothing and says so in one line;
 *   under npm's install lifecycle nothing it meets fails the install.
 * - `npm run postinstall` runs it: what `npm ci` does after building.
 * - For real, as root: `mount -t fuse.unionfs-ts SRC MNT -o lowerdir=...`
 *   through mount(8) and /sbin/mount.fuse.unionfs-ts, an fstab line (a
 *   private fstab file, `mount -T`), and the command libfuse's mount.fuse
 *   runs (`unionfs-ts SRC MNT -o ...` through /bin/sh with the standard PATH
 *   only); plain umount(8) ends each mount and its daemon. The helpers lead
 *   to this checkout for the test (helpers/install.ts puts back whatever was
 *   there before).
 *
 * Every mount is undone in teardown even when a test fails.
 */
import t, { type Test } from 'tap'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { spawnSync } from 'node:child_process'
import { forceUnmount, isMounted, mountType, ROOT, run, tmpdir } from './helpers/mount'
import { CLI, HELPER, INSTALL_SCRIPT, installScript as script, useHelpers } from './helpers/install'
import { waitFor } from './helpers/robust-proc'

/** Mounting needs root and /dev/fuse; `npm test` builds dist/ first. */
function canMount (t: Tap): void {
  t.equal(process.getuid?.(), 0, 'running as root')
  t.ok(fs.existsSync('/dev/fuse'), '/dev/fuse exists')
  t.ok(fs.existsSync(path.join(ROOT, 'dist', 'lib', 'cli.js')), 'dist/ is built')
  for (const line of useHelpers(t)) t.comment(line)
}
/** The PATH libfuse's mount.fuse gives the command it runs. */
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

function linkOf (p: string): string | undefined {
  try { return fs.readlinkSync(p) } catch { return undefined }
}

t.test('install script: links, idempotent, removes only its own', async t => {
  const sbin = tmpdir(t, 'sbin')
  const bin = path.join(tmpdir(t, 'usr-local'), 'bin') // made by the script
  const env = { UNIONFS_TS_SBIN_DIR: sbin, UNIONFS_TS_BIN_DIR: bin }
  const helperLink = path.join(sbin, 'mount.fuse.unionfs-ts')
  const cmdLink = path.join(bin, 'unionfs-ts')

  const first = script(env)
  t.equal(first.status, 0, first.stdout + first.stderr)
  t.equal(linkOf(helperLink), HELPER, 'the mount(8) helper links to this checkout')
  t.equal(linkOf(cmdLink), CLI, 'the command links to this checkout')
  t.equal(first.lines.length, 2, 'one line per link')
  t.match(first.stdout, /linked .*mount\.fuse\.unionfs-ts/)

  const again = script(env)
  t.equal(again.status, 0)
  t.equal(again.lines.filter(l => /already links/.test(l)).length, 2, 'a second run changes nothing')
  t.equal(linkOf(helperLink), HELPER)

  const removed = script(env, '--remove')
  t.equal(removed.status, 0, removed.stdout)
  t.notOk(fs.existsSync(helperLink) || linkOf(helperLink) !== undefined, 'helper link removed')
  t.notOk(linkOf(cmdLink) !== undefined, 'command link removed')
  const none = script(env, '--remove')
  t.equal(none.status, 0)
  t.match(none.stdout, /nothing to remove/)
})

t.test('install script: never overwrites what it did not make', async t => {
  const sbin = tmpdir(t, 'sbin')
  const bin = tmpdir(t, 'bin')
  const env = { UNIONFS_TS_SBIN_DIR: sbin, UNIONFS_TS_BIN_DIR: bin }
  const helperLink = path.join(sbin, 'mount.fuse.unionfs-ts')
  const cmdLink = path.join(bin, 'unionfs-ts')
  fs.writeFileSync(helperLink, '#!/bin/sh\necho someone else\n', { mode: 0o755 })
  fs.symlinkSync('/usr/bin/true', cmdLink)

  const r = script(env)
  t.equal(r.status, 0, 'a foreign file does not fail the install')
  t.equal(fs.readFileSync(helperLink, 'utf8'), '#!/bin/sh\necho someone else\n', 'a foreign file is untouched')
  t.equal(linkOf(cmdLink), '/usr/bin/true', 'a foreign link is untouched')
  t.equal(r.lines.filter(l => /left .* alone/.test(l)).length, 2, 'and each is reported')

  const rm = script(env, '--remove')
  t.equal(rm.status, 0)
  t.ok(fs.existsSync(helperLink), '--remove leaves a foreign file')
  t.equal(linkOf(cmdLink), '/usr/bin/true', '--remove leaves a foreign link')

  // A dangling link to a unionfs-ts bin is what a removed checkout leaves.
  fs.unlinkSync(cmdLink)
  fs.symlinkSync('/nonexistent/old-checkout/bin/unionfs-ts.js', cmdLink)
  const stale = script(env)
  t.equal(stale.status, 0)
  t.equal(linkOf(cmdLink), CLI, 'a dangling link of a removed checkout is replaced')
  t.match(stale.stdout, /replaced the dangling/)
})

t.test('install script: without root, one line and nothing done', async t => {
  t.equal(process.getuid?.(), 0, 'running as root (to run the script as another user)')
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' }
  for (const lifecycle of [undefined, 'postinstall']) {
    const r = spawnSync(process.execPath, [INSTALL_SCRIPT], {
      encoding: 'utf8', uid: 65534, gid: 65534, timeout: 30_000, cwd: '/',
      env: lifecycle === undefined ? env : { ...env, npm_lifecycle_event: lifecycle }
    })
    t.equal(r.status, 0, `exit 0 (${lifecycle ?? 'by hand'}) ${r.stderr}`)
    const lines = (r.stdout ?? '').split('\n').filter(Boolean)
    t.equal(lines.length, 1, 'one line')
    t.match(lines[0], /not root: mount helpers not installed/)
  }
})

t.test('install script: never fails npm install, fails by hand', async t => {
  // A file where a directory should be: the links cannot be made.
  const blocker = path.join(tmpdir(t, 'blocked'), 'file')
  fs.writeFileSync(blocker, '')
  const env = { UNIONFS_TS_SBIN_DIR: path.join(blocker, 'sbin'), UNIONFS_TS_BIN_DIR: path.join(blocker, 'bin') }
  const byHand = script(env)
  t.equal(byHand.status, 1, 'by hand, a link it cannot make is a failure')
  t.equal(byHand.lines.filter(l => /could not link/.test(l)).length, 2, 'both links are tried and reported')
  for (const lifecycle of ['postinstall', 'install']) {
    const r = script({ ...env, npm_lifecycle_event: lifecycle })
    t.equal(r.status, 0, `under npm's ${lifecycle}: exit 0`)
    t.match(r.stdout, /warning: the mount helpers are not \(all\) in place/, 'with a warning')
  }
})

t.test('npm ci runs the install script (the postinstall script)', async t => {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string>, files: string[] }
  t.equal(pkg.scripts.postinstall, 'node scripts/install-helpers.js')
  t.ok(pkg.files.includes('scripts/install-helpers.js'), 'the script is in the package')
  const sbin = tmpdir(t, 'npm-sbin')
  const bin = tmpdir(t, 'npm-bin')
  const r = spawnSync('npm', ['run', '--silent', 'postinstall'], {
    cwd: ROOT, encoding: 'utf8', timeout: 60_000, env: { ...process.env, UNIONFS_TS_SBIN_DIR: sbin, UNIONFS_TS_BIN_DIR: bin }
  })
  t.equal(r.status, 0, r.stderr)
  t.equal(linkOf(path.join(sbin, 'mount.fuse.unionfs-ts')), HELPER, 'npm run postinstall links the mount(8) helper')
  t.equal(linkOf(path.join(bin, 'unionfs-ts')), CLI, 'and the command')
})

/** The daemons serving `mnt`: processes running our bin with `mnt` among their arguments. */
function servers (mnt: string): number[] {
  const pids: number[] = []
  for (const name of fs.readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(name) || Number(name) === process.pid) continue
    try {
      const argv = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0')
      if (argv.some(a => a.endsWith('unionfs-ts.js')) && argv.includes(mnt)) pids.push(Number(name))
    } catch {}
  }
  return pids
}

interface Layers { l1: string, l2: string, u: string, w: string, mnt: string, opts: string }

function layers (tt: Parameters<typeof tmpdir>[0]): Layers {
  const l1 = tmpdir(tt, 'l1')
  const l2 = tmpdir(tt, 'l2')
  const u = tmpdir(tt, 'u')
  const w = tmpdir(tt, 'w')
  const mnt = tmpdir(tt, 'mnt')
  fs.writeFileSync(path.join(l1, 'top'), 'l1\n')
  fs.writeFileSync(path.join(l1, 'shadowed'), 'l1 wins\n')
  fs.writeFileSync(path.join(l2, 'shadowed'), 'l2 loses\n')
  fs.writeFileSync(path.join(l2, 'bottom'), 'l2\n')
  fs.writeFileSync(path.join(l2, 'doomed'), 'to be removed\n')
  return { l1, l2, u, w, mnt, opts: `lowerdir=${l1}:${l2},upperdir=${u},workdir=${w}` }
}

/** Checks the merged view through the mount (from child processes) and the upper dir on disk. */
function checkView (tt: Tap, L: Layers): void {
  const read = run('sh', ['-c', `cat '${L.mnt}/top' '${L.mnt}/shadowed' '${L.mnt}/bottom' && ls '${L.mnt}'`], 15_000)
  tt.equal(read.status, 0, read.stderr)
  tt.equal(read.stdout, 'l1\nl1 wins\nl2\nbottom\ndoomed\nshadowed\ntop\n', 'the merged view: top lower wins, both lowers listed')
  const write = run('sh', ['-c', `echo new > '${L.mnt}/created' && rm '${L.mnt}/doomed' && ls '${L.mnt}'`], 15_000)
  tt.equal(write.status, 0, write.stderr)
  tt.equal(write.stdout, 'bottom\ncreated\nshadowed\ntop\n')
  tt.equal(fs.readFileSync(path.join(L.u, 'created'), 'utf8'), 'new\n', 'the new file is in the upper dir')
  const wh = fs.lstatSync(path.join(L.u, 'doomed'))
  tt.ok(wh.isCharacterDevice() && wh.rdev === 0, 'an overlayfs-format whiteout hides the removed lower file')
  tt.equal(fs.readFileSync(path.join(L.l2, 'doomed'), 'utf8'), 'to be removed\n', 'the lower branch is untouched')
}

/** umount(8), then the daemon must go. */
async function plainUmount (tt: Tap, mnt: string): Promise<void> {
  const pids = servers(mnt)
  tt.equal(pids.length, 1, 'one daemon serves the mount')
  const u = run('umount', [mnt], 30_000)
  tt.equal(u.status, 0, `umount: ${u.stderr}`)
  tt.notOk(isMounted(mnt), 'unmounted')
  tt.ok(await waitFor(() => servers(mnt).length === 0, 10_000), 'the daemon exits after umount(8)')
}

type Tap = Test

t.test('mount -t fuse.unionfs-ts through mount(8); plain umount(8)', async t => {
  canMount(t)
  const L = layers(t)
  t.teardown(() => { forceUnmount(L.mnt, true) })
  const m = run('mount', ['-t', 'fuse.unionfs-ts', 'unionfs-ts', L.mnt, '-o', L.opts], 60_000)
  t.equal(m.status, 0, `mount -t fuse.unionfs-ts: ${m.stderr}`)
  t.equal(mountType(L.mnt), 'fuse.unionfs-ts', 'mounted, of type fuse.unionfs-ts')
  checkView(t, L)
  await plainUmount(t, L.mnt)
})

t.test('an fstab line of type fuse.unionfs-ts', async t => {
  canMount(t)
  const L = layers(t)
  t.teardown(() => { forceUnmount(L.mnt, true) })
  const fstab = path.join(tmpdir(t, 'etc'), 'fstab')
  fs.writeFileSync(fstab, `unionfs-ts ${L.mnt} fuse.unionfs-ts ${L.opts},noauto 0 0\n`)
  const m = run('mount', ['-T', fstab, L.mnt], 60_000)
  t.equal(m.status, 0, `mount -T fstab MNT: ${m.stderr}`)
  t.equal(mountType(L.mnt), 'fuse.unionfs-ts')
  checkView(t, L)
  await plainUmount(t, L.mnt)
})

t.test('the command mount.fuse runs, with only the system PATH', async t => {
  canMount(t)
  const L = layers(t)
  t.teardown(() => { forceUnmount(L.mnt, true) })
  // What libfuse's mount.fuse does for `mount -t fuse.unionfs-ts`: the
  // subtype as a command, through /bin/sh, PATH reset, mount(8)'s options.
  const cmd = `unionfs-ts unionfs-ts '${L.mnt}' -o 'rw,${L.opts},dev,suid'`
  const r = spawnSync('/bin/sh', ['-c', cmd], {
    env: { PATH: SYSTEM_PATH }, encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'ignore', 'pipe']
  })
  t.equal(r.status, 0, `${cmd}: ${r.stderr}`)
  t.equal(mountType(L.mnt), 'fuse.unionfs-ts')
  checkView(t, L)
  await plainUmount(t, L.mnt)
})

t.test('the branch list as the source; mount -f mounts nothing', async t => {
  canMount(t)
  const L = layers(t)
  t.teardown(() => { forceUnmount(L.mnt, true) })
  const fake = run('mount', ['-f', '-t', 'fuse.unionfs-ts', 'unionfs-ts', L.mnt, '-o', L.opts], 60_000)
  t.equal(fake.status, 0, `mount -f: ${fake.stderr}`)
  t.notOk(isMounted(L.mnt), 'mount -f (fake) mounts nothing')
  t.same(servers(L.mnt), [], 'and starts no daemon')

  const m = run('mount', ['-t', 'fuse.unionfs-ts', `${L.u}=rw:${L.l1}:${L.l2}`, L.mnt], 60_000)
  t.equal(m.status, 0, `mount -t fuse.unionfs-ts U=rw:L1:L2 MNT: ${m.stderr}`)
  t.equal(mountType(L.mnt), 'fuse.unionfs-ts')
  const r = run('sh', ['-c', `cat '${L.mnt}/shadowed' && rm '${L.mnt}/doomed' && ls '${L.mnt}'`], 15_000)
  t.equal(r.status, 0, r.stderr)
  t.equal(r.stdout, 'l1 wins\nbottom\nshadowed\ntop\n', 'the branch list, top first')
  t.ok(fs.existsSync(path.join(L.u, '.wh.doomed')), 'the branch-list syntax writes AUFS whiteouts')
  await plainUmount(t, L.mnt)
})
