/**
 * The tutorials in examples/ (aufs-walkthrough.sh, copy-up-cost.sh,
 * opaque-dir.sh, deep-stack.sh, library.ts), run as a newcomer would: each
 * must finish, print what happened on disk at the steps that matter, and
 * leave nothing behind (no mount, no scratch directory), also when it is
 * interrupted halfway.
 *
 * They need root and /dev/fuse: a machine where they cannot run fails here,
 * it does not skip.
 */
import t from 'tap'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { spawn, spawnSync } from 'node:child_process'
import { cliBuilt, ROOT } from './helpers/mount'

const EX = path.join(ROOT, 'examples')

t.test('the examples can run here', async t => {
  t.ok(cliBuilt(), 'dist/ is built (npm test builds it)')
  t.equal(process.getuid?.(), 0, 'running as root')
  t.ok(fs.existsSync('/dev/fuse'), '/dev/fuse exists')
})

function scratchDirs (): string[] {
  return fs.readdirSync(os.tmpdir()).filter(n => n.startsWith('unionfs-ts-example.'))
}

function exampleMounts (): string[] {
  return fs.readFileSync('/proc/mounts', 'utf8').split('\n').filter(l => l.includes('/unionfs-ts-example.'))
}

/** Run an example; check it exits 0 and cleans up; return its output. */
function runExample (t: Tap.Test, cmd: string, args: string[], env: Record<string, string> = {}): string {
  const before = new Set(scratchDirs())
  const mountsBefore = new Set(exampleMounts())
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 300_000, killSignal: 'SIGTERM', env: { ...process.env, KEEP: '', NO_COLOR: '1', ...env } })
  t.equal(r.status, 0, `${path.basename(args[0])} exits 0: ${r.stderr}`)
  t.same(exampleMounts().filter(l => !mountsBefore.has(l)), [], 'nothing left mounted')
  t.same(scratchDirs().filter(n => !before.has(n)), [], 'its scratch dir is gone')
  t.notMatch(r.stdout, /\x1b\[/, 'no colour codes when piped')
  return r.stdout
}

t.test('examples/aufs-walkthrough.sh', async t => {
  const out = runExample(t, 'bash', [path.join(EX, 'aufs-walkthrough.sh')])
  t.match(out, /ls \S+\/aufs\nfile1\nfile2\n/, 'both branches\' files in one view')
  t.match(out, /file2 +file +layer 1 \(\S+\/dir2\)/, 'inspect: file2 comes from dir2')
  t.match(out, /trace: \S+ copy-up \/file2 from layer 1 \(\S+\/dir2\) to layer 0 \(\S+\/dir1\): 15 bytes/, 'the copy-up, traced')
  t.match(out, /copied up from layer 1/, 'inspect says it was copied up')
  t.match(out, /\.wh\.file2 +WHITEOUT: hides file2/, 'the whiteout on disk')
  t.match(out, /=> not in the union: whited out in layer 0/)
  t.match(out, /whiteouts: +1 made/, 'stats')
  // After unmounting, dir2 is exactly as it was.
  const last = out.slice(out.lastIndexOf('== 8.'))
  t.match(last, /dir2 \(ro\)[^\n]*\n +file2 +file, 15 bytes\n/, 'dir2 unchanged at the end')
})

t.test('examples/copy-up-cost.sh', async t => {
  const out = runExample(t, 'bash', [path.join(EX, 'copy-up-cost.sh')], { SIZE_MB: '32' })
  t.match(out, /copy-up \/big\.bin from layer 1 \S+ to layer 0 \S+: 33554432 bytes in [0-9.]+ ms/, 'the whole file copied for one byte')
  t.match(out, /copy-up \/sparse\.img [^\n]*: 1048576 bytes/, 'only the sparse file\'s data copied')
  t.match(out, /copy-up \/replaced\.bin [^\n]*: 0 bytes/, 'O_TRUNC copies nothing')
  t.match(out, /wc -l \S+\n1 /, 'the second append copied nothing')
})

t.test('examples/opaque-dir.sh', async t => {
  const out = runExample(t, 'bash', [path.join(EX, 'opaque-dir.sh')])
  t.match(out, /etc\/conf\.d\/\.wh\.\.wh\.\.opq +OPAQUE MARKER/, 'the new directory is opaque on disk')
  t.match(out, /ls \S+\/mnt\/etc\/conf\.d\nonly-new\n/, 'the old files stay hidden')
  t.match(out, /trace: \S+ opaque \/etc\/conf\.d in layer 0/)
  t.match(out, /ls \S+\/mnt2\/srv\/www\nindex\.html\n/, 'a shipped opaque dir hides the layer below')
})

t.test('examples/deep-stack.sh', async t => {
  const out = runExample(t, 'bash', [path.join(EX, 'deep-stack.sh')], { LAYERS: '24' })
  t.match(out, /=> file served by layer 24 /, 'the walk reaches the bottom layer')
  t.match(out, /tool from the bottom layer/)
  t.match(out, /first pass : 600 LOOKUP requests, dentry cache 200 misses, 0 negative hits/, 'first pass: misses')
  t.match(out, /second pass: 600 LOOKUP requests, dentry cache 0 misses, 200 negative hits/, 'second pass: negative hits')
})

t.test('examples/library.ts (compiled to dist/examples/library.js)', async t => {
  const out = runExample(t, process.execPath, [path.join(EX, '..', 'dist', 'examples', 'library.js')])
  t.match(out, /served by layer 1, copied up: false/)
  t.match(out, /served by layer 0, copied up: true \(from layer 1\)/)
  t.match(out, /lower branch untouched: "welcome\\n"/)
  t.match(out, /unmounted/)
})

t.test('an example interrupted halfway still unmounts and cleans up', async t => {
  const before = new Set(scratchDirs())
  const mountsBefore = new Set(exampleMounts())
  const child = spawn('bash', [path.join(EX, 'deep-stack.sh')], { env: { ...process.env, LAYERS: '8', NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.setEncoding('utf8')
  const mounted = new Promise<void>(resolve => {
    child.stdout.on('data', (c: string) => { out += c; if (out.includes('== 3.')) resolve() })
  })
  const exited = new Promise<number | null>(resolve => child.on('exit', code => resolve(code)))
  await Promise.race([mounted, exited])
  t.ok(exampleMounts().some(l => !mountsBefore.has(l)), 'it was mounted when interrupted')
  child.kill('SIGTERM')
  const code = await exited
  t.not(code, 0, 'it reports the interruption')
  t.same(exampleMounts().filter(l => !mountsBefore.has(l)), [], 'nothing left mounted')
  t.same(scratchDirs().filter(n => !before.has(n)), [], 'its scratch dir is gone')
})
