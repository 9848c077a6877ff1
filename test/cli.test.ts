/**
 * The command line, run for real: `node bin/unionfs-ts.js ...` against the
 * compiled dist/ (`npm test` builds it first).
 *
 * - Bad input: exit status 1, exactly one line on stderr, nothing on stdout,
 *   nothing changed on disk (the temp tree is compared before and after).
 * - Real mounts (once the core and the transport are built): daemon mode
 *   returns only when the mount is ready, -f stays in the foreground,
 *   `umount`, plain umount(8), SIGINT and SIGTERM end the mount and the
 *   daemon exits 0, both syntaxes and the mount.fuse form mount, and the
 *   library's mount() does the same from code.
 *
 * Every mount is undone in teardown even when a test fails: umount, then
 * umount -l, then SIGKILL to whatever process still serves it. Probes of a
 * mount run in child processes with a timeout, so a hung daemon fails the
 * test instead of hanging it.
 */
import t from 'tap'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { cpuSeconds } from '../bench/proc'
import { daemonNodeArgs } from '../lib/server'

const ROOT = path.resolve(__dirname, '..')
const CLI = path.join(ROOT, 'bin', 'unionfs-ts.js')
const HELPER = path.join(ROOT, 'bin', 'mount.fuse.unionfs-ts')
const DIST = path.join(ROOT, 'dist', 'lib')
const built = fs.existsSync(path.join(DIST, 'cli.js')) && fs.existsSync(path.join(DIST, 'options.js'))
const canServe = built && fs.existsSync(path.join(DIST, 'fuse', 'index.js')) &&
  fs.existsSync(path.join(DIST, 'union', 'union-fs.js'))
const isRoot = process.getuid?.() === 0
const mountSkip = !built
  ? 'dist/ is not built (run tsc -p tsconfig.json)'
  : !canServe
      ? 'the core or the FUSE transport is not built yet'
      : !isRoot || !fs.existsSync('/dev/fuse') ? 'needs root and /dev/fuse' : false

interface Result { status: number | null, signal: string | null, stdout: string, stderr: string }

function run (cmd: string, args: string[], timeoutMs = 60_000): Result {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL', stdio: ['ignore', 'pipe', 'pipe'] })
  return { status: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error !== undefined ? String(r.error) : '') }
}

function cli (...args: string[]): Result {
  return run(process.execPath, [CLI, ...args])
}

interface Tree { root: string, [name: string]: string }

function tree (tt: { teardown: (fn: () => void) => void }): Tree {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'unionfs-ts-cli-')))
  const out: Tree = { root }
  for (const d of ['a', 'b', 'u', 'w', 'm']) {
    out[d] = path.join(root, d)
    fs.mkdirSync(out[d])
  }
  fs.writeFileSync(path.join(out.a, 'only-in-a'), 'from a\n')
  fs.writeFileSync(path.join(out.b, 'only-in-b'), 'from b\n')
  fs.writeFileSync(path.join(out.b, 'shadowed'), 'from b\n')
  fs.writeFileSync(path.join(out.a, 'shadowed'), 'from a\n')
  out.f = path.join(root, 'f')
  fs.writeFileSync(out.f, 'a file')
  // tap runs teardowns last-registered first, so the mounts' guards (added
  // later) have run by now; still, never remove a tree with a mount inside.
  tt.teardown(() => {
    if (!mountPoints().some(m => m.startsWith(root + '/'))) fs.rmSync(root, { recursive: true, force: true })
  })
  return out
}

function snapshot (root: string): string[] {
  const out: string[] = []
  const walk = (p: string): void => {
    const st = fs.lstatSync(p)
    out.push(`${path.relative(root, p)} ${st.mode} ${st.size} ${st.mtimeMs}`)
    if (st.isDirectory()) for (const n of fs.readdirSync(p).sort()) walk(path.join(p, n))
  }
  walk(root)
  return out
}

function mountInfo (): Array<{ mnt: string, type: string }> {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).map(line => {
    const f = line.split(' ')
    return {
      mnt: f[4].replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))),
      type: f[f.indexOf('-') + 1]
    }
  })
}
function mountPoints (): string[] { return mountInfo().map(m => m.mnt) }
function mountTypeOf (mnt: string): string | undefined { return mountInfo().filter(m => m.mnt === mnt).pop()?.type }

/** Running (a zombie waiting for its reaper has exited: it counts as gone). */
function alive (pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z'
  } catch {
    return false
  }
}

/** Processes running our bin with `mnt` among their arguments: the daemons serving it. */
function servers (mnt: string): number[] {
  const pids: number[] = []
  for (const name of fs.readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(name) || Number(name) === process.pid) continue
    try {
      const argv = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0')
      if (argv.includes(CLI) && argv.includes(mnt)) pids.push(Number(name))
    } catch {}
  }
  return pids
}

async function waitFor (cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (cond()) return true
    await new Promise(resolve => setTimeout(resolve, 25))
  }
  return cond()
}

/** Undo a mount by every means: umount, umount -l, then SIGKILL its server. */
function guard (tt: { teardown: (fn: () => void | Promise<void>) => void }, mnt: string, extra: () => number[] = () => []): void {
  tt.teardown(async () => {
    const pids = [...servers(mnt), ...extra()]
    if (mountPoints().includes(mnt)) run('umount', [mnt], 20_000)
    if (mountPoints().includes(mnt)) run('umount', ['-l', mnt], 20_000)
    await waitFor(() => pids.every(p => !alive(p)), 5000)
    for (const p of pids) if (alive(p)) { try { process.kill(p, 'SIGKILL') } catch {} }
  })
}

/** Read through the mount from another process (bounded in time). */
function probe (script: string): Result {
  return run('sh', ['-c', script], 15_000)
}

function badInput (tt: Tap, tr: Tree, args: string[], re: RegExp, cmd = CLI): void {
  const before = snapshot(tr.root)
  const r = cmd === CLI ? cli(...args) : run(cmd, args)
  const lines = r.stderr.split('\n').filter(l => l !== '')
  tt.equal(r.status, 1, `${path.basename(cmd)} ${args.join(' ')}: exit status 1`)
  tt.equal(lines.length, 1, 'exactly one line on stderr')
  tt.match(lines[0] ?? '', re, 'that says what is wrong')
  tt.equal(r.stdout, '', 'nothing on stdout')
  tt.same(snapshot(tr.root), before, 'nothing changed on disk')
}

type Tap = typeof t

if (!built) {
  t.fail('dist/ is not built: run `npx tsc -p tsconfig.json` (npm test does) before this test')
}

t.test('the daemon\'s V8 pool: the CPUs left after two, from 1 to 4; a size given to Node stands', async t => {
  t.same(daemonNodeArgs(1), ['--v8-pool-size=1'])
  t.same(daemonNodeArgs(2), ['--v8-pool-size=1'])
  t.same(daemonNodeArgs(4), ['--v8-pool-size=2'])
  t.same(daemonNodeArgs(64), ['--v8-pool-size=4'])
  const saved = process.env.NODE_OPTIONS
  process.env.NODE_OPTIONS = '--v8-pool-size=3'
  t.teardown(() => { if (saved === undefined) delete process.env.NODE_OPTIONS; else process.env.NODE_OPTIONS = saved })
  t.same(daemonNodeArgs(2), [])
})

t.test('help and version', { skip: !built && 'not built' }, async t => {
  for (const h of ['help', '--help', '-h']) {
    const r = cli(h)
    t.equal(r.status, 0, `${h}: exit 0`)
    t.match(r.stdout, /unionfs-ts mount \[-o OPTIONS\] \[-f\] BRANCH\[:BRANCH\.\.\.\] MOUNTPOINT/)
    t.match(r.stdout, /unionfs-ts umount MOUNTPOINT/)
  }
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }
  const v = cli('--version')
  t.equal(v.status, 0)
  t.equal(v.stdout, `unionfs-ts ${pkg.version}\n`)
})

t.test('bad input: one line, exit 1, nothing touched', { skip: !built && 'not built' }, async t => {
  const tr = tree(t)
  const missing = path.join(tr.root, 'missing')
  const br = `${tr.a}:${tr.b}`
  badInput(t, tr, [], /^unionfs-ts: missing command/)
  badInput(t, tr, ['frobnicate'], /^unionfs-ts: unknown command 'frobnicate'/)
  badInput(t, tr, ['--frob'], /^unionfs-ts: unknown option '--frob'/)
  for (const f of [[], ['-f']]) {
    badInput(t, tr, ['mount', ...f, `${missing}:${tr.b}`, tr.m], /^unionfs-ts: branch .*\/missing: no such directory$/)
    badInput(t, tr, ['mount', ...f, `${tr.a}:${tr.f}`, tr.m], /^unionfs-ts: branch .*\/f: not a directory$/)
    badInput(t, tr, ['mount', ...f, `${tr.a}=rw:${tr.b}=rw`, tr.m], /^unionfs-ts: two writable branches/)
    badInput(t, tr, ['mount', ...f, br, missing], /^unionfs-ts: mountpoint .*\/missing: no such directory$/)
    badInput(t, tr, ['mount', ...f, br, tr.f], /^unionfs-ts: mountpoint .*\/f: not a directory$/)
    badInput(t, tr, ['mount', ...f, br, '/proc'], /^unionfs-ts: mountpoint \/proc is already a mount point$/)
  }
  fs.mkdirSync(path.join(tr.a, 'sub'))
  fs.mkdirSync(path.join(tr.m, 'sub'))
  const before = snapshot(tr.root)
  badInput(t, tr, ['mount', br, path.join(tr.a, 'sub')], /^unionfs-ts: mountpoint .*\/a\/sub is inside branch .*\/a$/)
  badInput(t, tr, ['mount', `${tr.a}:${tr.m}/sub`, tr.m], /^unionfs-ts: branch .*\/m\/sub is inside the mountpoint/)
  badInput(t, tr, ['mount', br, tr.b], /^unionfs-ts: branch .*\/b is the mountpoint$/)
  badInput(t, tr, ['mount', `${tr.a}:${tr.a}`, tr.m], /^unionfs-ts: branch .*\/a is listed twice$/)
  badInput(t, tr, ['mount', '-o', 'frobnicate', br, tr.m], /^unionfs-ts: unknown option 'frobnicate'$/)
  badInput(t, tr, ['mount', '-o', 'backend=libfuse3', br, tr.m], /^unionfs-ts: unknown backend 'libfuse3'/)
  badInput(t, tr, ['mount', tr.m], /^unionfs-ts: no branches given/)
  badInput(t, tr, ['mount', '-o', `lowerdir=${tr.a},upperdir=${tr.u}`, tr.m], /^unionfs-ts: upperdir= needs workdir=/)
  badInput(t, tr, ['mount', '-o', `lowerdir=${missing},upperdir=${tr.u},workdir=${tr.w}`, tr.m], /^unionfs-ts: branch .*missing: no such directory$/)
  // mount.fuse's form, as it runs us: SOURCE MOUNTPOINT -o OPTIONS.
  badInput(t, tr, ['unionfs-ts', tr.m, '-o', `rw,lowerdir=${missing},dev,suid`], /^unionfs-ts: branch .*missing: no such directory$/)
  badInput(t, tr, ['unionfs-ts', tr.m, '-o', `rw,lowerdir=${tr.a},bogus`], /^unionfs-ts: unknown option 'bogus'$/)
  t.same(snapshot(tr.root), before)

  const shm = fs.existsSync('/dev/shm') ? fs.statSync('/dev/shm') : undefined
  if (shm !== undefined && shm.dev !== fs.statSync(tr.u).dev) {
    const other = path.join('/dev/shm', `unionfs-ts-cli-${process.pid}-work`)
    badInput(t, tr, ['mount', '-o', `lowerdir=${tr.a},upperdir=${tr.u},workdir=${other}`, tr.m],
      /^unionfs-ts: workdir .* is not on the same filesystem as the writable branch/)
    t.notOk(fs.existsSync(other), 'the foreign work dir was not created')
  }

  badInput(t, tr, ['umount'], /^unionfs-ts: umount: missing MOUNTPOINT$/)
  badInput(t, tr, ['umount', tr.m], /^unionfs-ts: .*\/m is not mounted$/)
  badInput(t, tr, ['umount', '/proc'], /^unionfs-ts: \/proc is not a unionfs-ts mount \(it is proc\)$/)
})

t.test('the mount.fuse.unionfs-ts helper', { skip: !built && 'not built' }, async t => {
  const tr = tree(t)
  const missing = path.join(tr.root, 'missing')
  // Installed as a symlink elsewhere (as in /sbin): it still finds the bin.
  const link = path.join(tr.root, 'mount.fuse.unionfs-ts')
  fs.symlinkSync(HELPER, link)
  badInput(t, tr, ['unionfs-ts', tr.m, '-o', `rw,lowerdir=${missing}`], /^unionfs-ts: branch .*missing: no such directory$/, link)
  badInput(t, tr, [`${tr.a}:${missing}`, tr.m, '-o', 'rw', '-t', 'fuse.unionfs-ts'], /^unionfs-ts: branch .*missing/, link)
  badInput(t, tr, ['only-one'], /^mount.fuse.unionfs-ts: usage/, link)
  const fake = run(link, ['unionfs-ts', tr.m, '-f', '-o', `lowerdir=${tr.a}`])
  t.equal(fake.status, 0, '-f (mount(8)\'s fake mount) succeeds')
  t.notOk(mountPoints().includes(tr.m), 'and mounts nothing')
})

// ---------------------------------------------------------------------------
// Real mounts

t.test('daemon mode, branch-list syntax: ready on return, then unionfs-ts umount', { skip: mountSkip }, async t => {
  const tr = tree(t)
  guard(t, tr.m)
  const r = cli('mount', `${tr.a}:${tr.b}`, tr.m)
  t.equal(r.status, 0, `mount exits 0 ${r.stderr}`)
  t.equal(r.stderr, '', 'and says nothing')
  // Right after the command returned: the merged view is there.
  const ls = probe(`ls -1 '${tr.m}' && cat '${tr.m}/shadowed' '${tr.m}/only-in-b'`)
  t.equal(ls.status, 0, ls.stderr)
  t.equal(ls.stdout, 'only-in-a\nonly-in-b\nshadowed\nfrom a\nfrom b\n', 'merged listing, top branch wins')
  t.equal(mountTypeOf(tr.m), 'fuse.unionfs-ts')
  const pids = servers(tr.m)
  t.equal(pids.length, 1, 'one daemon serves it')
  t.not(pids[0], undefined)
  const ppid = fs.readFileSync(`/proc/${pids[0]}/stat`, 'utf8').split(') ')[1]?.split(' ')[1]
  t.not(Number(ppid), process.pid, 'the daemon is detached from us')
  const argv = fs.readFileSync(`/proc/${pids[0]}/cmdline`, 'utf8').split('\0')
  t.equal(argv[1], `--v8-pool-size=${Math.min(4, Math.max(1, os.availableParallelism() - 2))}`, 'V8 gets the CPUs the serving thread and its caller leave')

  const u = cli('umount', tr.m)
  t.equal(u.status, 0, `umount exits 0 ${u.stderr}`)
  t.equal(u.stderr, '')
  t.notOk(mountPoints().includes(tr.m), 'unmounted')
  t.notOk(alive(pids[0]), 'the daemon is gone when umount returns')
  t.notOk(fs.existsSync(path.join(tr.b, '.wh..wh.unionfs-ts')), 'the read-only branch was not written')

  const again = cli('umount', tr.m)
  t.equal(again.status, 1, 'umount of a mountpoint no longer mounted fails')
  t.match(again.stderr, /is not mounted/)
})

t.test('spin: the serving thread polls after each request, then sleeps', { skip: mountSkip }, async t => {
  for (const spin of ['0', '100000']) {
    const tr = tree(t)
    guard(t, tr.m)
    const r = cli('mount', '-o', `spin=${spin}`, `${tr.a}:${tr.b}`, tr.m)
    t.equal(r.status, 0, `spin=${spin}: mount exits 0 ${r.stderr}`)
    const [pid] = servers(tr.m)
    t.match(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8'), `spin=${spin}`, 'the daemon got the option')
    const ls = probe(`ls -1 '${tr.m}' && cat '${tr.m}/shadowed'`)
    t.equal(ls.stdout, 'only-in-a\nonly-in-b\nshadowed\nfrom a\n', 'served')
    // A spin of 0.1 s after the last request, then read(2) sleeps: an idle
    // second costs the daemon well under a second of CPU.
    await new Promise(resolve => setTimeout(resolve, 200))
    const before = cpuSeconds(pid) ?? NaN
    await new Promise(resolve => setTimeout(resolve, 1000))
    const idle = (cpuSeconds(pid) ?? NaN) - before
    t.ok(idle < 0.3, `spin=${spin}: idle for 1 s, the daemon used ${idle.toFixed(2)} s of CPU`)
    t.equal(cli('umount', tr.m).status, 0)
  }
})

t.test('readahead: the mount\'s read_ahead_kb, 1020 unless told', { skip: mountSkip }, async t => {
  for (const [opt, want] of [[undefined, '1020'], ['readahead=4096', '4096'], ['readahead=0', '128']] as const) {
    const tr = tree(t)
    guard(t, tr.m)
    const r = cli('mount', ...(opt === undefined ? [] : ['-o', opt]), `${tr.a}:${tr.b}`, tr.m)
    t.equal(r.status, 0, `${opt ?? 'default'}: mount exits 0 ${r.stderr}`)
    const dev = run('mountpoint', ['-d', tr.m]).stdout.trim()
    t.equal(fs.readFileSync(`/sys/class/bdi/${dev}/read_ahead_kb`, 'utf8').trim(), want, `${opt ?? 'default'}: read_ahead_kb of ${dev}`)
    t.equal(probe(`cat '${tr.m}/shadowed'`).stdout, 'from a\n', 'served')
    t.equal(cli('umount', tr.m).status, 0)
  }
})

t.test('a mount whose daemon died, held busy by a process inside: unionfs-ts umount detaches it', { skip: mountSkip }, async t => {
  const tr = tree(t)
  let holder: ChildProcess | undefined
  t.teardown(() => { holder?.kill('SIGKILL') })
  guard(t, tr.m)
  const r = cli('mount', `${tr.a}:${tr.b}`, tr.m)
  t.equal(r.status, 0, `mount exits 0 ${r.stderr}`)
  const pids = servers(tr.m)
  t.equal(pids.length, 1, 'one daemon serves it')
  // A process whose working directory is in the mount keeps it busy.
  holder = spawn('sleep', ['600'], { cwd: tr.m, stdio: 'ignore' })
  await new Promise(resolve => holder?.once('spawn', resolve))
  process.kill(pids[0], 'SIGKILL')
  t.ok(await waitFor(() => !alive(pids[0]), 10_000), 'the daemon is gone')
  t.equal(run('umount', [tr.m]).status, 32, 'plain umount(8) finds it busy')
  const u = cli('umount', tr.m)
  t.equal(u.status, 0, `unionfs-ts umount exits 0 ${u.stderr}`)
  t.notOk(mountPoints().includes(tr.m), 'the dead mount is detached')
  const again = cli('mount', `${tr.a}:${tr.b}`, tr.m)
  t.equal(again.status, 0, `and the mountpoint takes a new mount ${again.stderr}`)
  t.equal(probe(`cat '${tr.m}/only-in-b'`).stdout, 'from b\n', 'which serves the union')
  t.equal(cli('umount', tr.m).status, 0)
})

t.test('a new daemon sweeps what killed daemons left in the pid directory', { skip: mountSkip }, async t => {
  const tr = tree(t)
  guard(t, tr.m)
  const dir = '/run/unionfs-ts'
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
  const dead = spawnSync('true').pid as number
  const stale = path.join(dir, `stale-test-${process.pid}`)
  // A pid that has exited, and a live pid whose start time is not the recorded one (reused).
  fs.writeFileSync(`${stale}-a.pid`, `${dead}\n/nowhere/a\n1\n`)
  fs.writeFileSync(`${stale}-b.pid`, `${process.pid}\n/nowhere/b\n1\n`)
  for (const ext of ['.sock', '.cookie']) fs.writeFileSync(`${stale}-a${ext}`, '')
  t.teardown(() => {
    for (const f of fs.readdirSync(dir)) if (f.startsWith(path.basename(stale))) fs.rmSync(path.join(dir, f), { force: true })
  })
  const r = cli('mount', `${tr.a}:${tr.b}`, tr.m)
  t.equal(r.status, 0, `mount exits 0 ${r.stderr}`)
  t.strictSame(fs.readdirSync(dir).filter(f => f.startsWith(path.basename(stale))), [], 'stale pid files, sockets and cookies are gone')
  t.equal(servers(tr.m).length, 1, 'and the new daemon runs')
  const own = fs.readdirSync(dir).filter(f => f.endsWith('.pid')).map(f => fs.statSync(path.join(dir, f)).mode & 0o777)
  t.ok(own.every(m => m === 0o644), 'pid files are mode 0644')
  t.equal(cli('umount', tr.m).status, 0)
})

t.test('daemon mode, overlay syntax; plain umount(8) ends the daemon', { skip: mountSkip }, async t => {
  const tr = tree(t)
  guard(t, tr.m)
  const r = cli('mount', '-o', `lowerdir=${tr.a}:${tr.b},upperdir=${tr.u},workdir=${tr.w}`, tr.m)
  t.equal(r.status, 0, `mount exits 0 ${r.stderr}`)
  const w = probe(`echo new > '${tr.m}/created' && cat '${tr.m}/only-in-b'`)
  t.equal(w.status, 0, w.stderr)
  t.equal(w.stdout, 'from b\n')
  const [pid] = servers(tr.m)
  t.ok(pid !== undefined && alive(pid), 'daemon running')
  const u = run('umount', [tr.m])
  t.equal(u.status, 0, u.stderr)
  t.ok(await waitFor(() => !alive(pid), 10_000), 'the daemon exits after an outside umount')
  t.equal(fs.readFileSync(path.join(tr.u, 'created'), 'utf8'), 'new\n', 'the write landed in the upper dir')
})

t.test('the mount.fuse form and the helper script mount', { skip: mountSkip }, async t => {
  const tr = tree(t)
  guard(t, tr.m)
  const opts = `rw,lowerdir=${tr.a}:${tr.b},upperdir=${tr.u},workdir=${tr.w},dev,suid`
  const r = cli('unionfs-ts', tr.m, '-o', opts)
  t.equal(r.status, 0, `unionfs-ts SOURCE MNT -o ...: exit 0 ${r.stderr}`)
  t.equal(probe(`cat '${tr.m}/only-in-a'`).stdout, 'from a\n')
  t.equal(cli('umount', tr.m).status, 0)
  t.notOk(mountPoints().includes(tr.m))

  const h = run(HELPER, ['unionfs-ts', tr.m, '-o', opts])
  t.equal(h.status, 0, `mount.fuse.unionfs-ts: exit 0 ${h.stderr}`)
  t.equal(probe(`cat '${tr.m}/only-in-b'`).stdout, 'from b\n')
  t.equal(cli('umount', tr.m).status, 0)
  t.notOk(mountPoints().includes(tr.m))
})

/** Start `unionfs-ts mount -f ...` as our child; resolves once the mount shows up. */
async function foreground (tt: Tap, tr: Tree, args: string[]): Promise<{ child: ChildProcess, exit: Promise<[number | null, string | null]> }> {
  const errFile = path.join(tr.root, `fg-${Date.now()}.err`)
  const err = fs.openSync(errFile, 'w')
  const child = spawn(process.execPath, [CLI, 'mount', '-f', ...args], { stdio: ['ignore', 'ignore', err] })
  fs.closeSync(err)
  const exit = new Promise<[number | null, string | null]>(resolve => child.on('exit', (c, s) => resolve([c, s])))
  guard(tt, tr.m, () => child.exitCode === null && child.pid !== undefined ? [child.pid] : [])
  const up = await waitFor(() => mountPoints().includes(tr.m) || child.exitCode !== null, 30_000)
  tt.ok(up && child.exitCode === null, `mounted in the foreground ${fs.readFileSync(errFile, 'utf8')}`)
  return { child, exit, stderr: () => fs.readFileSync(errFile, 'utf8') }
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  t.test(`-f stays in the foreground; ${sig} unmounts and exits 0`, { skip: mountSkip }, async t => {
    const tr = tree(t)
    const { child, exit, stderr } = await foreground(t, tr, [`${tr.u}:${tr.a}`, tr.m])
    const w = probe(`echo data > '${tr.m}/written' && cat '${tr.m}/only-in-a'`)
    t.equal(w.stdout, 'from a\n', w.stderr)
    await new Promise(resolve => setTimeout(resolve, 300))
    t.equal(child.exitCode, null, 'still running in the foreground')
    child.kill(sig)
    const [code, signal] = await exit
    t.equal(signal, null, 'not killed by the signal')
    t.equal(code, 0, 'exit status 0')
    t.notOk(mountPoints().includes(tr.m), 'unmounted')
    t.equal(fs.readFileSync(path.join(tr.u, 'written'), 'utf8'), 'data\n', 'the write is on disk')
    t.equal(stderr(), '', 'nothing on stderr, on the way out either')
  })
}

t.test('-f: an outside umount ends the foreground process with 0', { skip: mountSkip }, async t => {
  const tr = tree(t)
  const { exit, stderr } = await foreground(t, tr, ['-o', `lowerdir=${tr.a},upperdir=${tr.u},workdir=${tr.w}`, tr.m])
  t.equal(run('umount', [tr.m]).status, 0)
  const [code] = await exit
  t.equal(code, 0)
  t.equal(stderr(), '', 'nothing on stderr')
})

t.test('the library: mount() and unmount()', { skip: mountSkip }, async t => {
  const tr = tree(t)
  guard(t, tr.m)
  // Loaded here: importing the library loads the core.
  const lib = await import('../lib/index')
  await t.rejects(lib.mount({ branches: [tr.a, path.join(tr.root, 'missing')], mountpoint: tr.m }), { name: 'OptionsError' })
  const m = await lib.mount({ branches: [tr.u, { path: tr.a, mode: 'ro' }], mountpoint: tr.m })
  t.equal(m.mountpoint, tr.m)
  t.ok(alive(m.pid), 'a child process serves it')
  t.equal(probe(`cat '${tr.m}/only-in-a'`).stdout, 'from a\n', 'ready when mount() resolves')
  await m.unmount()
  t.notOk(mountPoints().includes(tr.m), 'unmounted')
  t.notOk(alive(m.pid), 'the child exited')
  await m.unmount()
  t.pass('a second unmount() is harmless')
})

t.test('daemon mode: log= gets the daemon\'s output', { skip: mountSkip }, async t => {
  const tr = tree(t)
  guard(t, tr.m)
  const log = path.join(tr.root, 'daemon.log')
  const r = cli('mount', '-o', `debug,log=${log}`, `${tr.u}:${tr.a}`, tr.m)
  t.equal(r.status, 0, r.stderr)
  t.equal(r.stderr, '', 'the debug output does not go to the caller')
  t.equal(probe(`cat '${tr.m}/only-in-a'`).stdout, 'from a\n')
  t.equal(cli('umount', tr.m).status, 0)
  t.match(fs.readFileSync(log, 'utf8'), /GETATTR|LOOKUP/, 'one line per request in the log')
})

t.test('daemon mode: a mount that fails after validation reports the daemon\'s error', { skip: mountSkip }, async t => {
  const tr = tree(t)
  guard(t, tr.m)
  // The writable branch on a read-only filesystem: valid input, but the work
  // dir cannot be made, so the failure comes from the daemon.
  const ro = path.join(tr.root, 'ro')
  fs.mkdirSync(ro)
  if (run('mount', ['--bind', tr.u, ro]).status !== 0) { t.skip('mount --bind failed'); return }
  t.teardown(() => { if (run('umount', [ro]).status !== 0) run('umount', ['-l', ro]) })
  if (run('mount', ['-o', 'remount,ro,bind', ro]).status !== 0) { t.skip('read-only remount failed'); return }
  const r = cli('mount', `${ro}:${tr.a}`, tr.m)
  const lines = r.stderr.split('\n').filter(l => l !== '')
  t.equal(r.status, 1, 'exit status 1')
  t.equal(lines.length, 1, 'one line on stderr')
  t.match(lines[0] ?? '', /^unionfs-ts: cannot mount .*\/m: /)
  t.notOk(mountPoints().includes(tr.m), 'nothing mounted')
  t.same(servers(tr.m).filter(alive), [], 'no daemon left behind')
})
