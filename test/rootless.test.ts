/**
 * Rootless: `mount`, the layer store, a container and examples/container.sh,
 * run by an ordinary user through fusermount3 (Debian's fuse3, setuid
 * root), checked on disk.
 *
 * The test runs as root and sets the machine up the way a machine that lets
 * users mount FUSE is: a user it creates (useradd), /dev/fuse readable and
 * writable by others (Debian's udev default is 0666; it is put back as it
 * was). Every command of the user is run with that uid and gid (no
 * supplementary groups) and a clean environment, XDG_RUNTIME_DIR pointing
 * into the scratch dir so the daemons' pid files land there.
 *
 * Teardown, even after a failure: every mount under the scratch dir is
 * unmounted, any daemon still running (found by its pid file) is killed,
 * the scratch dir removed, the user deleted, /dev/fuse's mode restored.
 *
 * It never skips: a machine where this cannot run (no root, no
 * fusermount3, no useradd) fails here.
 */
import t from 'tap'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { spawnSync } from 'node:child_process'
import { CLI, cliBuilt, mountPoints, ROOT } from './helpers/mount'
import { dockerSave, listTar, makeTar } from './fixtures/layers-archive'

const USER = `ufsrl${process.pid}`.slice(0, 31)

interface Result { status: number | null, stdout: string, stderr: string }

function which (cmd: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' })
  return r.status === 0 ? r.stdout.trim() : undefined
}

function mountInfoLine (mnt: string): string | undefined {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find(l => l.split(' ')[4] === mnt)
}

/** Every xattr name of `p` itself (as root: trusted.* included). */
function xattrNames (p: string): string[] {
  const native = require('../dist/lib/native.js') as { llistxattr: (p: string) => string[] }
  return native.llistxattr(p)
}

t.test('rootless mount, store and container through fusermount3', async t => {
  // ---- what this needs: fail, never skip ----
  t.ok(cliBuilt(), 'dist/ is built (npm test builds it)')
  t.equal(process.getuid?.(), 0, 'running as root (to create the user)')
  const fusermount3 = which('fusermount3')
  t.ok(fusermount3, 'fusermount3 is installed (Debian fuse3; scripts/test-deps.sh installs it)')
  if (fusermount3 === undefined || process.getuid?.() !== 0 || !cliBuilt()) return
  const fm = fs.statSync(fusermount3)
  t.ok(fm.uid === 0 && (fm.mode & 0o4000) !== 0, 'fusermount3 is setuid root')
  t.ok(which('useradd') !== undefined && which('userdel') !== undefined, 'useradd and userdel exist')

  // ---- the machine, changed and put back ----
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'unionfs-ts-rootless-'))
  fs.chmodSync(base, 0o755)
  const fuseMode = fs.statSync('/dev/fuse').mode & 0o7777
  let userMade = false
  let uid = -1
  let gid = -1
  const runDir = path.join(base, 'run')

  t.teardown(() => {
    const problems: string[] = []
    for (const m of mountPoints().filter(p => p.startsWith(base + '/')).reverse()) {
      const r = spawnSync(fusermount3, ['-u', '-z', m], { encoding: 'utf8' })
      if (r.status !== 0) spawnSync('umount', ['-l', m])
      problems.push(`left mounted: ${m}`)
    }
    // Daemons the user's commands started, by their pid files.
    try {
      for (const f of fs.readdirSync(path.join(runDir, 'unionfs-ts'))) {
        const pid = Number(fs.readFileSync(path.join(runDir, 'unionfs-ts', f), 'utf8').split('\n')[0])
        let cmdline = ''
        try { cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8') } catch {}
        if (Number.isSafeInteger(pid) && pid > 1 && cmdline.includes('unionfs-ts')) {
          process.kill(pid, 'SIGKILL')
          problems.push(`daemon ${pid} still running`)
        }
      }
    } catch {}
    fs.rmSync(base, { recursive: true, force: true })
    if (userMade) {
      const r = spawnSync('userdel', [USER], { encoding: 'utf8' })
      if (r.status !== 0) problems.push(`userdel ${USER}: ${r.stderr.trim()}`)
    }
    if ((fs.statSync('/dev/fuse').mode & 0o7777) !== fuseMode) fs.chmodSync('/dev/fuse', fuseMode)
    // Reported, not thrown: the subtests already failed for these.
    for (const p of problems) t.comment(`teardown: ${p}`)
  })

  const add = spawnSync('useradd', ['--system', '--user-group', '--no-create-home', '--home-dir', '/nonexistent',
    '--shell', '/usr/sbin/nologin', USER], { encoding: 'utf8' })
  t.equal(add.status, 0, `useradd ${USER}: ${add.stderr}`)
  if (add.status !== 0) return
  userMade = true
  uid = Number(spawnSync('id', ['-u', USER], { encoding: 'utf8' }).stdout.trim())
  gid = Number(spawnSync('id', ['-g', USER], { encoding: 'utf8' }).stdout.trim())
  t.ok(uid > 0 && gid > 0, `user ${USER} is ${uid}:${gid}`)
  if ((fuseMode & 0o006) !== 0o006) fs.chmodSync('/dev/fuse', fuseMode | 0o006)

  const own = (p: string): void => { fs.chownSync(p, uid, gid) }
  const mkdirOwned = (p: string): string => { fs.mkdirSync(p, { recursive: true }); own(p); return p }
  mkdirOwned(runDir)
  fs.chmodSync(runDir, 0o700)
  const env = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HOME: base, XDG_RUNTIME_DIR: runDir, LANG: 'C' }

  /** A command as the user; output through files (a daemon may inherit them). */
  const asUser = (cmd: string, args: string[], opts: { stdin?: Buffer | string, stdoutFile?: string } = {}): Result => {
    const io = fs.mkdtempSync(path.join(base, 'io-'))
    const outPath = opts.stdoutFile ?? path.join(io, 'out')
    const out = fs.openSync(outPath, 'w')
    const err = fs.openSync(path.join(io, 'err'), 'w')
    try {
      const r = spawnSync(cmd, args, {
        uid, gid, env, cwd: '/', timeout: 120_000, killSignal: 'SIGKILL',
        stdio: [opts.stdin === undefined ? 'ignore' : 'pipe', out, err],
        ...(opts.stdin === undefined ? {} : { input: opts.stdin })
      })
      return {
        status: r.status,
        stdout: opts.stdoutFile === undefined ? fs.readFileSync(outPath, 'utf8') : '',
        stderr: fs.readFileSync(path.join(io, 'err'), 'utf8') + (r.error !== undefined ? String(r.error) : '')
      }
    } finally {
      fs.closeSync(out)
      fs.closeSync(err)
      fs.rmSync(io, { recursive: true, force: true })
    }
  }
  // tap's process tracking adds itself to every child's NODE_OPTIONS; the
  // user's commands (and the daemons they start) run without it.
  const cli = (args: string[], opts: { stdin?: Buffer | string, stdoutFile?: string } = {}): Result =>
    asUser('env', ['-u', 'NODE_OPTIONS', process.execPath, CLI, ...args], opts)
  const sh = (script: string): Result => asUser('sh', ['-ec', script])

  await t.test('the native descriptor receiver', async t => {
    const native = require('../dist/lib/native.js') as { socketpair: () => [number, number], recvFd: (fd: number) => number }
    const [a, b] = native.socketpair()
    t.throws(() => native.recvFd(a), { code: 'EAGAIN' }, 'nothing queued: EAGAIN, no wait')
    fs.writeSync(b, 'x')
    t.throws(() => native.recvFd(a), { code: 'ENOMSG' }, 'a message without a descriptor')
    fs.closeSync(b)
    t.throws(() => native.recvFd(a), { code: 'ENOMSG' }, 'the peer closed')
    fs.closeSync(a)
    t.throws(() => native.recvFd(-1), { code: 'ERR_OUT_OF_RANGE' })
  })

  await t.test('which kernels let a user make whiteout devices', async t => {
    const { userWhiteoutDevices } = require('../dist/lib/union/whiteouts.js') as { userWhiteoutDevices: (r?: string) => boolean }
    t.notOk(userWhiteoutDevices('5.7.19'))
    t.ok(userWhiteoutDevices('5.8.0'))
    t.ok(userWhiteoutDevices('6.18.44-fc-v669'))
    t.notOk(userWhiteoutDevices('4.19.0-20-amd64'))
  })

  await t.test('mount, copy-up, whiteouts, rename, umount as the user', async t => {
    const lower = path.join(base, 'lower')
    fs.mkdirSync(path.join(lower, 'dir/sub'), { recursive: true })
    fs.writeFileSync(path.join(lower, 'file'), 'lower data\n')
    fs.writeFileSync(path.join(lower, 'gone'), 'to be deleted\n')
    fs.writeFileSync(path.join(lower, 'dir/a'), 'a\n')
    fs.writeFileSync(path.join(lower, 'dir/sub/b'), 'b\n')
    fs.mkdirSync(path.join(lower, 'old'))
    fs.writeFileSync(path.join(lower, 'old/x'), 'x\n')
    fs.symlinkSync('file', path.join(lower, 'link'))
    spawnSync('chown', ['-R', '-h', `${uid}:${gid}`, lower])
    // Root's, writable by all: a user's copy-up cannot give it back to root.
    fs.writeFileSync(path.join(lower, 'rootfile'), 'root\n')
    fs.chmodSync(path.join(lower, 'rootfile'), 0o666)
    fs.chmodSync(lower, 0o755)
    const lowerBefore = spawnSync('sh', ['-c', `cd ${lower} && find . -printf '%p %y %m %U %s\\n' | sort && find . -type f | sort | xargs cat`], { encoding: 'utf8' }).stdout
    const upper = mkdirOwned(path.join(base, 'upper'))
    const mnt = mkdirOwned(path.join(base, 'mnt'))
    const log = path.join(runDir, 'mount.log')

    const m = cli(['mount', '-o', `log=${log},debug`, `${upper}:${lower}`, mnt])
    t.equal(m.status, 0, `unionfs-ts mount as ${USER}: ${m.stderr}`)
    const info = mountInfoLine(mnt)
    t.ok(info, 'mounted')
    t.match(info ?? '', / - fuse\.unionfs-ts unionfs-ts /, 'type fuse.unionfs-ts')
    t.match(info ?? '', new RegExp(`user_id=${uid},group_id=${gid}`), 'owned by the user (fusermount3 mounted it)')
    t.match(info ?? '', /nosuid,nodev/, 'nosuid,nodev, as fusermount3 makes a user mount')
    t.notMatch(info ?? '', /allow_other/, 'no allow_other without user_allow_other')
    t.equal(fs.readdirSync(path.join(runDir, 'unionfs-ts')).filter(f => f.endsWith('.pid')).length, 1,
      'the pid file is in $XDG_RUNTIME_DIR/unionfs-ts')

    const r = sh(`cd ${mnt}
      cat file
      echo more >> file
      echo user >> rootfile
      rm gone
      mv dir moved
      rm -r old
      mkdir old
      echo new > old/new
      mv link link2
      echo created > created
      ln created hard
      ls -a
      cat moved/a moved/sub/b rootfile`)
    t.equal(r.status, 0, r.stderr)
    t.equal(r.stdout, 'lower data\n' + '.\n..\ncreated\nfile\nhard\nlink2\nmoved\nold\nrootfile\n' + 'a\nb\nroot\nuser\n')
    const mk = sh(`mknod ${mnt}/dev c 1 3`)
    t.not(mk.status, 0, 'no device node through a user mount')
    t.match(fs.readFileSync(log, 'utf8'), /with fusermount3 .*passthrough off/, 'fusermount3 mounted it, passthrough off')

    const um = cli(['umount', mnt])
    t.equal(um.status, 0, `unionfs-ts umount as the user: ${um.stderr}`)
    t.notOk(mountInfoLine(mnt), 'unmounted')
    t.same(fs.readdirSync(path.join(runDir, 'unionfs-ts')).filter(f => f.endsWith('.pid')), [], 'pid file removed')

    // On disk: the copies are the user's, whiteouts and the opaque marker
    // are AUFS files, no device node, no trusted.* xattr, the lower untouched.
    t.equal(fs.readFileSync(path.join(upper, 'file'), 'utf8'), 'lower data\nmore\n')
    const rootCopy = fs.statSync(path.join(upper, 'rootfile'))
    t.equal(rootCopy.uid, uid, 'a copy-up of root\'s file is the user\'s')
    t.equal(rootCopy.mode & 0o777, 0o666, 'with its mode')
    t.equal(fs.readFileSync(path.join(upper, 'rootfile'), 'utf8'), 'root\nuser\n')
    for (const wh of ['.wh.gone', '.wh.dir', '.wh.link', 'old/.wh..wh..opq']) {
      t.ok(fs.lstatSync(path.join(upper, wh), { throwIfNoEntry: false })?.isFile(), `${wh} is an AUFS whiteout file`)
    }
    t.equal(fs.readlinkSync(path.join(upper, 'link2')), 'file')
    t.equal(fs.statSync(path.join(upper, 'hard')).nlink, 2)
    const found = spawnSync('find', [upper, '(', '-type', 'c', '-o', '-type', 'b', ')', '-print'], { encoding: 'utf8' })
    t.equal(found.stdout, '', 'no device nodes in the writable branch')
    const all = spawnSync('find', [upper], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean)
    t.same(all.flatMap(p => xattrNames(p)).filter(n => n.startsWith('trusted.')), [], 'no trusted.* xattrs')
    t.ok(xattrNames(path.join(upper, 'moved')).includes('user.unionfs-ts.redirect'), 'the moved directory\'s redirect is a user.* xattr')
    t.same(fs.readdirSync(path.join(upper, '.wh..wh.unionfs-ts')), [], 'nothing left in the work dir')
    const ownersUp = spawnSync('find', [upper, '!', '-uid', String(uid), '-print'], { encoding: 'utf8' }).stdout
    t.equal(ownersUp, '', 'everything in the writable branch is the user\'s')
    const lowerAfter = spawnSync('sh', ['-c', `cd ${lower} && find . -printf '%p %y %m %U %s\\n' | sort && find . -type f | sort | xargs cat`], { encoding: 'utf8' }).stdout
    t.equal(lowerAfter, lowerBefore, 'the read-only branch is untouched')

    // Remount: what was written is what shows.
    const again = cli(['mount', `${upper}:${lower}`, mnt])
    t.equal(again.status, 0, again.stderr)
    const v = sh(`cd ${mnt} && ls && cat file old/new && test ! -e gone && test ! -e old/x`)
    t.equal(v.status, 0, v.stderr)
    t.equal(v.stdout, 'created\nfile\nhard\nlink2\nmoved\nold\nrootfile\nlower data\nmore\nnew\n')
    // SIGTERM from the user: the daemon unmounts itself with fusermount3 -u.
    const pidFile = fs.readdirSync(path.join(runDir, 'unionfs-ts')).find(f => f.endsWith('.pid')) ?? ''
    const pid = Number(fs.readFileSync(path.join(runDir, 'unionfs-ts', pidFile), 'utf8').split('\n')[0])
    t.equal(sh(`kill -TERM ${pid}`).status, 0, `SIGTERM to the daemon (pid ${pid})`)
    const deadline = Date.now() + 10_000
    while (mountInfoLine(mnt) !== undefined && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 50))
    t.notOk(mountInfoLine(mnt), 'SIGTERM unmounted it')
  })

  await t.test('whiteout=overlay as the user: overlayfs\' userxattr form', async t => {
    const lower = path.join(base, 'olower')
    fs.mkdirSync(path.join(lower, 'd'), { recursive: true })
    fs.writeFileSync(path.join(lower, 'x'), 'x')
    fs.writeFileSync(path.join(lower, 'd/y'), 'y')
    fs.writeFileSync(path.join(lower, 'r'), 'r')
    spawnSync('chown', ['-R', `${uid}:${gid}`, lower])
    const upper = mkdirOwned(path.join(base, 'oupper'))
    const work = mkdirOwned(path.join(base, 'owork'))
    const mnt = mkdirOwned(path.join(base, 'omnt'))
    const m = cli(['mount', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work},whiteout=overlay`, mnt])
    t.equal(m.status, 0, m.stderr)
    const r = sh(`cd ${mnt} && rm x && rm -r d && mkdir d && ls -a d && mv r r2 && ls`)
    t.equal(r.status, 0, r.stderr)
    t.equal(r.stdout, '.\n..\n' + 'd\nr2\n')
    t.equal(cli(['umount', mnt]).status, 0)
    const x = fs.lstatSync(path.join(upper, 'x'))
    t.ok(x.isCharacterDevice() && x.rdev === 0, 'x is a 0/0 whiteout device, made by the user')
    t.ok(xattrNames(path.join(upper, 'd')).includes('user.overlay.opaque'), 'd is opaque by user.overlay.opaque')
    t.notOk(fs.existsSync(path.join(upper, '.wh.x')))
    const rw = fs.lstatSync(path.join(upper, 'r'))
    t.ok(rw.isCharacterDevice() && rw.rdev === 0, 'a rename left its whiteout by RENAME_WHITEOUT, as the user')

    // The default for the overlay syntax without root: AUFS.
    const m2 = cli(['mount', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, mnt])
    t.equal(m2.status, 0, m2.stderr)
    t.equal(sh(`touch ${mnt}/x && rm ${mnt}/x`).status, 0)
    t.equal(cli(['umount', mnt]).status, 0)
    t.ok(fs.lstatSync(path.join(upper, '.wh.x')).isFile(), 'whiteout=aufs is the user\'s default')
  })

  await t.test('what a user cannot have fails in one line', async t => {
    const lower = mkdirOwned(path.join(base, 'elower'))
    const mnt = mkdirOwned(path.join(base, 'emnt'))
    const conf = fs.existsSync('/etc/fuse.conf') ? fs.readFileSync('/etc/fuse.conf', 'utf8') : ''
    if (!/^\s*user_allow_other\b/m.test(conf)) {
      const r = cli(['mount', '-o', 'allow_other', `${lower}=ro`, mnt])
      t.equal(r.status, 1)
      t.match(r.stderr.trim(), /user_allow_other/, 'fusermount3\'s refusal is passed on')
      t.equal(r.stderr.trim().split('\n').length, 1, 'one line')
      t.notOk(mountInfoLine(mnt))
    }
    const rootMnt = path.join(base, 'rootmnt')
    fs.mkdirSync(rootMnt)
    fs.chmodSync(rootMnt, 0o755)
    const r = cli(['mount', `${lower}=ro`, rootMnt])
    t.equal(r.status, 1, 'a mountpoint the user may not write')
    t.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr.trim()}`)
    t.notOk(mountInfoLine(rootMnt))
  })

  await t.test('the layer store and a container as the user', async t => {
    const root = mkdirOwned(path.join(base, 'store'))
    const layer = await makeTar([
      { name: 'etc/', type: 'directory' },
      { name: 'etc/motd', data: 'hello\n', uid: 0, gid: 0 },
      { name: 'etc/gone', data: 'g\n' },
      { name: 'dev/', type: 'directory' },
      { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3 }
    ])
    for (const args of [['create', 'l1'], ['create', 'l2', '--parent', 'l1']]) {
      const s = cli(['store', '-s', root, ...args])
      t.equal(s.status, 0, `store ${args.join(' ')}: ${s.stderr}`)
    }
    const ap = cli(['store', '-s', root, 'apply', 'l1'], { stdin: layer })
    t.equal(ap.status, 0, ap.stderr)
    t.match(ap.stderr, /device nodes skipped/, 'device nodes skipped, with a note')
    t.notOk(fs.existsSync(path.join(root, 'diff/l1/dev/null')))
    t.equal(fs.statSync(path.join(root, 'diff/l1/etc/motd')).uid, uid, 'owners not chown\'ed without root')

    const mnt = mkdirOwned(path.join(base, 'smnt'))
    const sm = cli(['store', '-s', root, 'mount', 'l2', mnt])
    t.equal(sm.status, 0, sm.stderr)
    t.match(mountInfoLine(mnt) ?? '', new RegExp(`fuse\\.unionfs-ts .*user_id=${uid}`))
    const w = sh(`cd ${mnt} && cat etc/motd && echo more >> etc/motd && rm etc/gone && echo n > etc/new`)
    t.equal(w.status, 0, w.stderr)
    t.equal(w.stdout, 'hello\n')
    const su = cli(['store', '-s', root, 'umount', 'l2'])
    t.equal(su.status, 0, su.stderr)
    t.notOk(mountInfoLine(mnt))
    const out = path.join(base, 'l2.tar')
    fs.writeFileSync(out, '')
    own(out)
    const d = cli(['store', '-s', root, 'diff', 'l2'], { stdoutFile: out })
    t.equal(d.status, 0, d.stderr)
    t.same((await listTar(fs.readFileSync(out))).map(e => e.name), ['etc/', 'etc/.wh.gone', 'etc/motd', 'etc/new'])

    // A container: image import, create (init layer), mount, write, umount.
    const saved = path.join(base, 'saved.tar')
    fs.writeFileSync(saved, await dockerSave([{ tags: ['rootless:1'], layers: [await makeTar([
      { name: 'bin/', type: 'directory' },
      { name: 'bin/sh', data: 'sh', mode: 0o755 },
      { name: 'etc/', type: 'directory' },
      { name: 'etc/os-release', data: 'rootless\n' }
    ])] }]))
    fs.chmodSync(saved, 0o644)
    const im = cli(['image', '-s', root, 'import', saved])
    t.equal(im.status, 0, im.stderr)
    const c = cli(['container', '-s', root, 'create', 'rootless:1', 'box'])
    t.equal(c.status, 0, c.stderr)
    const init = path.join(root, 'diff/box-init')
    t.ok(fs.statSync(path.join(init, 'dev/console')).isFile(), 'dev/console is a placeholder file, not a device')
    t.equal(spawnSync('find', [init, '(', '-type', 'c', '-o', '-type', 'b', ')', '-print'], { encoding: 'utf8' }).stdout, '',
      'no device nodes in the init layer')
    const cmnt = mkdirOwned(path.join(base, 'cmnt'))
    const cm = cli(['container', '-s', root, 'mount', 'box', cmnt])
    t.equal(cm.status, 0, cm.stderr)
    const cw = sh(`cd ${cmnt} && cat etc/os-release && ls dev && echo inside > hello.txt && rm bin/sh`)
    t.equal(cw.status, 0, cw.stderr)
    t.equal(cw.stdout, 'rootless\nconsole\npts\nshm\n')
    const cu = cli(['container', '-s', root, 'umount', 'box'])
    t.equal(cu.status, 0, cu.stderr)
    t.notOk(mountInfoLine(cmnt))
    t.equal(fs.readFileSync(path.join(root, 'diff/box/hello.txt'), 'utf8'), 'inside\n')
    t.ok(fs.lstatSync(path.join(root, 'diff/box/bin/.wh.sh')).isFile(), 'the container layer has an AUFS whiteout')
    const ch = cli(['container', '-s', root, 'changes', 'box'])
    t.equal(ch.status, 0, ch.stderr)
    t.match(ch.stdout, /A \/hello\.txt/)
    t.match(ch.stdout, /D \/bin\/sh/)
  })

  await t.test('examples/container.sh as the user', async t => {
    const before = new Set(fs.readdirSync(os.tmpdir()).filter(n => n.startsWith('unionfs-ts-container.')))
    const r = asUser('bash', [path.join(ROOT, 'examples', 'container.sh')])
    t.equal(r.status, 0, r.stderr)
    t.match(r.stdout, /rootless: chroot as root of a new user namespace/)
    t.match(r.stdout, /hello from box/, 'the command ran inside the container')
    t.match(r.stdout, /diff\/box \(the container layer\):\n(?:.*\n)*\s+\.\/hello\.txt/, 'its write is in the container layer')
    t.match(r.stdout, /image layers: unchanged/)
    t.match(r.stdout, /D \/etc\/passwd/)
    t.match(r.stdout, /exported as a layer tarball/)
    const left = fs.readdirSync(os.tmpdir()).filter(n => n.startsWith('unionfs-ts-container.') && !before.has(n))
    t.same(left, [], 'the work dir is gone')
    t.same(mountPoints().filter(m => m.includes('/unionfs-ts-container.')), [], 'nothing left mounted')
    for (const n of left) fs.rmSync(path.join(os.tmpdir(), n), { recursive: true, force: true })
  })
})
