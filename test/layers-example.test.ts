/**
 * examples/container.sh, run as a newcomer would: it must finish, show the
 * container's writes in its own layer with the image layers unchanged, export
 * them, and leave nothing behind (no mount, no work dir).
 *
 * It needs root and /dev/fuse; busybox-static is installed by the script
 * itself when missing, as a newcomer's run would.
 */
import t from 'tap'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { spawnSync } from 'node:child_process'
import { cliBuilt, ROOT } from './helpers/mount'

const SCRIPT = path.join(ROOT, 'examples', 'container.sh')

// The example mounts for real and installs busybox-static itself when it is
// missing (apt-get): a machine where it cannot run fails here, it does not skip.
t.test('the example can run here', async t => {
  t.ok(cliBuilt(), 'dist/ is built (npm test builds it)')
  t.equal(process.getuid?.(), 0, 'running as root')
  t.ok(fs.existsSync('/dev/fuse'), '/dev/fuse exists')
})

function workDirs (): string[] {
  return fs.readdirSync(os.tmpdir()).filter(n => n.startsWith('unionfs-ts-container.'))
}

t.test('examples/container.sh', async t => {
  const before = new Set(workDirs())
  const mountsBefore = fs.readFileSync('/proc/mounts', 'utf8')
  const r = spawnSync('bash', [SCRIPT], { encoding: 'utf8', timeout: 240_000, killSignal: 'SIGTERM', env: { ...process.env, KEEP: '' } })
  t.equal(r.status, 0, r.stderr)
  t.match(r.stdout, /hello from box/, 'the command ran inside the container')
  t.match(r.stdout, /diff\/box \(the container layer\):\n(?:.*\n)*\s+\.\/hello\.txt/, 'its write is in the container layer')
  t.match(r.stdout, /image layers: unchanged/)
  t.match(r.stdout, /D \/etc\/passwd/)
  t.match(r.stdout, /exported as a layer tarball/)
  t.same(workDirs().filter(n => !before.has(n)), [], 'the work dir is gone')
  const left = fs.readFileSync('/proc/mounts', 'utf8').split('\n').filter(l => l.includes('unionfs-ts-container.') && !mountsBefore.includes(l))
  t.same(left, [], 'nothing left mounted')
})
