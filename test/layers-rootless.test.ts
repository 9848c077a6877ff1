/**
 * The layers side without privileges: the command line run as `nobody`
 * (runuser) on a directory that user owns. No mounts here: mounting as a
 * user is the FUSE transport's part of rootless operation.
 *  - layer apply keeps what a user may keep and says once what it could not
 *    (owners, device nodes, trusted.* xattrs); overlay whiteouts come out
 *    in overlayfs' userxattr form: 0/0 devices (a user may make them on
 *    Linux 5.8+), opaque directories as user.overlay.opaque;
 *  - layer diff, the store (create, apply, changes, diff, rm), image import
 *    and container create all work.
 */
import t from 'tap'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { spawnSync } from 'node:child_process'
import { CLI, cliBuilt } from './helpers/mount'
import { dockerSave, listTar, makeTar } from './fixtures/layers-archive'

const NOBODY = 'nobody'
const hasRunuser = spawnSync('runuser', ['--help']).status === 0
const uid = Number(spawnSync('id', ['-u', NOBODY], { encoding: 'utf8' }).stdout.trim())
// Runs as root and switches to `nobody`: a machine where that cannot happen
// fails here, it does not skip.
t.test('an unprivileged user to switch to', async t => {
  t.ok(cliBuilt(), 'dist/ is built (npm test builds it)')
  t.equal(process.getuid?.(), 0, 'running as root')
  t.ok(hasRunuser, 'runuser(1) exists')
  t.ok(Number.isSafeInteger(uid) && uid > 0, 'a `nobody` user exists')
})

interface Result { status: number | null, stdout: string, stderr: string }

function asNobody (args: string[], stdoutFile?: string): Result {
  const cmd = ['runuser', '-u', NOBODY, '--', process.execPath, CLI, ...args]
  // A clean environment: the test runner's NODE_OPTIONS would have the child
  // write where only root may.
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/' }
  const r = spawnSync(cmd[0], cmd.slice(1), { encoding: stdoutFile === undefined ? 'utf8' : 'buffer', timeout: 120_000, cwd: '/', env })
  if (stdoutFile !== undefined) fs.writeFileSync(stdoutFile, r.stdout as unknown as Buffer)
  return { status: r.status, stdout: stdoutFile === undefined ? String(r.stdout) : '', stderr: String(r.stderr) }
}

t.test('layers as an unprivileged user', async t => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'unionfs-ts-layers-rootless-'))
  t.teardown(() => fs.rmSync(base, { recursive: true, force: true }))
  fs.chmodSync(base, 0o755)
  fs.chownSync(base, uid, uid)
  const layer = path.join(base, 'layer.tar')
  fs.writeFileSync(layer, await makeTar([
    { name: 'etc/motd', data: 'hi', uid: 0, gid: 0, pax: { 'SCHILY.xattr.user.note': 'n', 'SCHILY.xattr.trusted.note': 't' } },
    { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3 },
    { name: 'run/fifo', type: 'fifo' },
    { name: '.wh.gone' },
    { name: 'opq/.wh..wh..opq' },
    { name: 'opq/kept', data: 'k' }
  ]))
  fs.chmodSync(layer, 0o644)

  const dir = path.join(base, 'dir')
  t.equal(spawnSync('runuser', ['-u', NOBODY, '--', 'mkdir', dir]).status, 0)
  const r = asNobody(['layer', 'apply', '--whiteout', 'overlay', layer, dir])
  t.equal(r.status, 0, r.stderr)
  t.match(r.stderr, /owners not kept/)
  t.match(r.stderr, /device nodes skipped/)
  t.match(r.stderr, /trusted\.\* xattrs not kept/)
  t.equal(fs.readFileSync(path.join(dir, 'etc/motd'), 'utf8'), 'hi')
  t.equal(fs.lstatSync(path.join(dir, 'etc/motd')).uid, uid)
  t.notOk(fs.existsSync(path.join(dir, 'dev/null')))
  t.ok(fs.lstatSync(path.join(dir, 'run/fifo')).isFIFO())
  // overlayfs' userxattr form: Linux 5.8+ lets a user make the 0/0 whiteout device.
  const gone = fs.lstatSync(path.join(dir, 'gone'), { throwIfNoEntry: false })
  t.ok(gone !== undefined && gone.isCharacterDevice() && gone.rdev === 0, 'an overlay whiteout device made by a user')
  t.notOk(fs.existsSync(path.join(dir, '.wh.gone')))
  const native = require('../dist/lib/native.js') as { lgetxattr: (p: string, n: string) => Buffer }
  t.equal(native.lgetxattr(path.join(dir, 'opq'), 'user.overlay.opaque').toString(), 'y')

  const out = path.join(base, 'diff.tar')
  const d = asNobody(['layer', 'diff', dir], out)
  t.equal(d.status, 0, d.stderr)
  t.same((await listTar(fs.readFileSync(out))).map(e => e.name),
    ['.wh.gone', 'dev/', 'etc/', 'etc/motd', 'opq/', 'opq/.wh..wh..opq', 'opq/kept', 'run/', 'run/fifo'])

  const root = path.join(base, 'store')
  for (const args of [['create', 'l1'], ['apply', 'l1', layer], ['create', 'l2', '--parent', 'l1'], ['ls']]) {
    const s = asNobody(['store', '-s', root, ...args])
    t.equal(s.status, 0, `store ${args.join(' ')}: ${s.stderr}`)
  }
  fs.writeFileSync(path.join(root, 'diff/l2/new'), 'n')
  const ch = asNobody(['store', '-s', root, 'changes', 'l2'])
  t.equal(ch.stdout, 'A /new\n')
  t.equal(asNobody(['store', '-s', root, 'rm', 'l2']).status, 0)

  const saved = path.join(base, 'saved.tar')
  fs.writeFileSync(saved, await dockerSave([{ tags: ['rootless:1'], layers: [await makeTar([{ name: 'bin/sh', data: 'sh' }])] }]))
  fs.chmodSync(saved, 0o644)
  const im = asNobody(['image', '-s', root, 'import', saved])
  t.equal(im.status, 0, im.stderr)
  const c = asNobody(['container', '-s', root, 'create', 'rootless:1', 'box'])
  t.equal(c.status, 0, c.stderr)
  t.ok(fs.lstatSync(path.join(root, 'diff/box-init/dev/console')).isFile())
  t.equal(fs.readlinkSync(path.join(root, 'diff/box-init/etc/mtab')), '/proc/mounts')
})
