/**
 * Ring 3, bad input and a hostile environment:
 *  - the command-line errors of the spec that test/cli.test.ts does not
 *    already run (workdir rules, branch modes and overlaps, option values,
 *    extra arguments, a work-dir name taken by a file, a mountpoint that is
 *    already a unionfs-ts mount), in daemon mode and with -f: exit 1, one
 *    line on stderr, nothing on stdout, nothing changed on disk, nothing
 *    mounted, no daemon left;
 *  - a writable branch on a read-only filesystem, from the start or made
 *    read-only while mounted: EROFS reaches the caller, reads go on, the
 *    mount works again once the filesystem is writable;
 *  - a writable branch on a full filesystem (2 MiB tmpfs, 64 inodes):
 *    ENOSPC reaches the writer, a failed copy-up leaves the lower version
 *    showing, nothing under the name in the writable branch and nothing in
 *    the work dir; a whiteout that cannot be made leaves the name showing;
 *    everything works again once there is room;
 *  - a daemon out of file descriptors (started with RLIMIT_NOFILE 64): opens
 *    beyond it fail with EMFILE/ENFILE, the daemon lives, and once the files
 *    are closed the mount works and the daemon holds no more descriptors
 *    than before;
 *  - a branch directory removed while mounted (a read-only one, the
 *    writable one): every call answers (an error or data) within a deadline,
 *    the daemon lives, nothing is written outside, unmount works.
 * Probes of a mount run in child processes with a deadline, so a hang fails
 * the test instead of stopping it.
 */
import t, { type Test } from 'tap'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { createHash } from 'node:crypto'
import { CLI, isMounted, mountPoints, run, tmpdir, withUnion } from './helpers/mount'
import { makeTree, snapshotTree } from './helpers/tree'
import { workLeftovers } from './helpers/union-env'
import { alive, daemonPid, fdTable, python, sleep, spawnChild, waitFor } from './helpers/robust-proc'

const isRoot = process.getuid?.() === 0

/** The CLI's pid file for a mountpoint (lib/pid-files.ts names it after the path's sha256). */
function pidFileOf (mnt: string): string {
  return path.join('/run/unionfs-ts', createHash('sha256').update(mnt).digest('hex').slice(0, 32) + '.pid')
}

interface Tree { root: string, a: string, b: string, u: string, w: string, m: string, f: string }

function tree (t: Test): Tree {
  const root = tmpdir(t, 'bad')
  const tr: Tree = { root, a: '', b: '', u: '', w: '', m: '', f: path.join(root, 'f') }
  for (const d of ['a', 'b', 'u', 'w', 'm'] as const) {
    tr[d] = path.join(root, d)
    fs.mkdirSync(tr[d])
  }
  fs.writeFileSync(path.join(tr.a, 'in-a'), 'a')
  fs.mkdirSync(path.join(tr.a, 'sub'))
  fs.writeFileSync(path.join(tr.b, 'in-b'), 'b')
  fs.writeFileSync(tr.f, 'a file')
  return tr
}

function badInput (t: Test, tr: Tree, args: string[], re: RegExp): void {
  const before = snapshotTree(tr.root, { times: true, xattrs: 'all' })
  for (const fg of [false, true]) {
    const full = fg && args[0] === 'mount' ? ['mount', '-f', ...args.slice(1)] : args
    if (fg && args[0] !== 'mount') continue
    const r = run(process.execPath, [CLI, ...full], 30_000)
    const lines = r.stderr.split('\n').filter(Boolean)
    t.equal(r.status, 1, `${full.join(' ')}: exit 1`)
    t.equal(lines.length, 1, `${full.join(' ')}: one line on stderr`)
    t.match(lines[0] ?? '', re, `${full.join(' ')}: says what is wrong: ${lines[0] ?? ''}`)
    t.equal(r.stdout, '', 'nothing on stdout')
  }
  t.strictSame(snapshotTree(tr.root, { times: true, xattrs: 'all' }), before, 'nothing changed on disk')
  t.notOk(fs.existsSync(pidFileOf(tr.m)), 'no pid file for the mountpoint')
  t.strictSame(mountPoints().filter(p => p.startsWith(tr.root + '/')), [], 'nothing mounted')
}

t.test('command-line errors cli.test.ts does not cover', async t => {
  const tr = tree(t)
  const { a, b, u, w, m, f } = tr
  const br = `${a}:${b}`
  const missing = path.join(tr.root, 'missing')
  const cases: Array<[string[], RegExp]> = [
    [['mount', `${a}=ro:${b}=rw`, m], /only the leftmost \(top\) branch can be rw/],
    [['mount', `${a}:${b}=rw`, m], /two writable branches/],
    [['mount', `${a}=xx:${b}`, m], /unknown mode 'xx'/],
    [['mount', `${a}::${b}`, m], /empty path/],
    [['mount', '-o', `lowerdir=${a},upperdir=${f},workdir=${w}`, m], /branch .*\/f: not a directory/],
    [['mount', '-o', `lowerdir=${a},upperdir=${missing},workdir=${w}`, m], /branch .*\/missing: no such directory/],
    [['mount', '-o', `lowerdir=${a},upperdir=${u},workdir=${f}`, m], /workdir .*\/f: not a directory/],
    [['mount', '-o', `lowerdir=${a},upperdir=${u},workdir=${u}`, m], /workdir .* must not be the writable branch/],
    [['mount', '-o', `lowerdir=${a},upperdir=${u},workdir=${u}/work`, m], /workdir .* is inside the writable branch/],
    [['mount', '-o', `lowerdir=${a},upperdir=${u},workdir=${a}/sub`, m], /workdir .* overlaps branch/],
    [['mount', '-o', `lowerdir=${a},upperdir=${u},workdir=${missing}/w`, m], /workdir parent .*: no such directory/],
    [['mount', '-o', `lowerdir=${a},upperdir=${a}/sub,workdir=${w}`, m], /overlap/],
    [['mount', '-o', `lowerdir=${a}:${a}`, m], /listed twice/],
    [['mount', '-o', `workdir=${w}`, `${a}=ro:${b}`, m], /workdir= needs a writable branch/],
    [['mount', '-o', `upperdir=${u},workdir=${w}`, m], /upperdir= needs lowerdir=/],
    [['mount', '-o', 'lowerdir=', m], /lowerdir= needs at least one directory/],
    [['mount', '-o', 'whiteout=bogus', br, m], /whiteout=bogus: expected aufs or overlay/],
    [['mount', '-o', 'cache=maybe', br, m], /cache=maybe: expected on or off/],
    [['mount', '-o', 'cache_entries=-1', br, m], /cache_entries=-1: expected a whole number/],
    [['mount', '-o', 'entry_timeout=soon', br, m], /entry_timeout=soon: expected a number/],
    [['mount', '-o', `log=${m}/x.log`, br, m], /log file .* is inside the mountpoint/],
    [['mount', '-o', 'fsname=', br, m], /fsname.* needs a value/],
    [['mount', br, m, 'extra'], /unexpected argument 'extra'/],
    [['mount', '--bogus', br, m], /unknown option '--bogus'/],
    [['mount', '-o', `lowerdir=${a}`, m, b], /unexpected argument/],
    [['mount', '-o', `lowerdir=${a}`], /missing MOUNTPOINT/],
    [['mount', '-o'], /-o needs a value/],
    [['umount', m, b], /unexpected argument/]
  ]
  for (const [args, re] of cases) badInput(t, tr, args, re)
})

t.test('a work dir on another filesystem than the writable branch', { skip: !isRoot && 'needs root' }, async t => {
  const tr = tree(t)
  const other = tmpdir(t, 'tmpfs')
  if (run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', other]).status !== 0) { t.comment('cannot mount a tmpfs here: nothing to check'); return }
  t.teardown(() => { run('umount', [other]) })
  badInput(t, tr, ['mount', '-o', `lowerdir=${tr.a},upperdir=${tr.u},workdir=${other}`, tr.m], /workdir .* is not on the same filesystem as the writable branch/)
})

t.test('the work-dir name in the writable branch is taken by a file', async t => {
  const tr = tree(t)
  fs.writeFileSync(path.join(tr.u, '.wh..wh.unionfs-ts'), 'not a directory')
  t.teardown(() => { if (isMounted(tr.m)) run('umount', ['-l', tr.m]) })
  const before = snapshotTree(tr.root, { times: true })
  const r = run(process.execPath, [CLI, 'mount', `${tr.u}:${tr.a}`, tr.m])
  const lines = r.stderr.split('\n').filter(Boolean)
  t.equal(r.status, 1, 'exit 1')
  t.equal(lines.length, 1, `one line: ${r.stderr.trim()}`)
  t.match(lines[0] ?? '', /^unionfs-ts: cannot mount .*/)
  t.notOk(isMounted(tr.m), 'nothing mounted')
  t.strictSame(snapshotTree(tr.root, { times: true }), before, 'the file and everything else untouched')
})

t.test('a mountpoint that is already a unionfs-ts mount', async t => {
  const tr = tree(t)
  const s = withUnion(t, { branches: [tr.u, `${tr.a}=ro`] })
  const pid = daemonPid(s.mnt)
  const r = run(process.execPath, [CLI, 'mount', `${tr.w}:${tr.b}`, s.mnt])
  t.equal(r.status, 1, 'exit 1')
  t.match(r.stderr.trim(), /^unionfs-ts: mountpoint .* is already a mount point$/, r.stderr.trim())
  t.equal(daemonPid(s.mnt), pid, 'the first mount still serves it')
  t.equal(fs.readFileSync(path.join(s.mnt, 'in-a'), 'utf8'), 'a', 'and still works')
  t.strictSame(fs.readdirSync(tr.w), [], 'the second writable branch was not touched')
})

// ---------------------------------------------------------------------------
// Probes: a python3 child runs a list of calls against the mount, each
// answered 'ok[ value]' or its errno name, with a deadline for the whole.

const PROBE = String.raw`
import errno, json, os, sys
req = json.loads(sys.stdin.read())
out = []
for op, p, *rest in req:
    try:
        if op == 'read':
            with open(p, 'rb') as f: v = f.read().decode(errors='replace')
        elif op == 'append':
            fd = os.open(p, os.O_WRONLY | os.O_APPEND); os.write(fd, rest[0].encode()); os.fsync(fd); os.close(fd); v = None
        elif op == 'create':
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, rest[0].encode() if rest else b'x'); os.fsync(fd)
            finally:
                os.close(fd)
            v = None
        elif op == 'write-big':
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                for i in range(rest[0]): os.write(fd, b'z' * 65536)
                os.fsync(fd)
            finally:
                os.close(fd)
            v = None
        elif op == 'truncate': os.truncate(p, rest[0]); v = None
        elif op == 'chmod': os.chmod(p, rest[0]); v = None
        elif op == 'unlink': os.unlink(p); v = None
        elif op == 'rename': os.rename(p, rest[0]); v = None
        elif op == 'mkdir': os.mkdir(p); v = None
        elif op == 'rmdir': os.rmdir(p); v = None
        elif op == 'list': v = sorted(os.listdir(p))
        elif op == 'stat': v = os.stat(p).st_size
        elif op == 'exists': v = os.path.lexists(p)
        else: raise ValueError(op)
        out.append('ok' if v is None else 'ok ' + json.dumps(v))
    except OSError as e:
        out.append(errno.errorcode.get(e.errno, str(e.errno)))
print(json.dumps(out))
`

type Call = [string, string, ...unknown[]]

async function probe (calls: Call[], timeoutMs = 30_000): Promise<string[]> {
  return await python<string[]>(PROBE, calls, timeoutMs)
}

t.test('a writable branch on a read-only filesystem', { skip: !isRoot && 'needs root' }, async t => {
  const tr = tree(t)
  makeTree(tr.a, { 'lower.txt': 'lower data', dir: { 'x.txt': 'x' } })
  const ro = tmpdir(t, 'ro-upper')
  // The work dir already there: the mount can open it without writing.
  fs.mkdirSync(path.join(tr.u, '.wh..wh.unionfs-ts'))
  fs.writeFileSync(path.join(tr.u, 'upper.txt'), 'upper data')
  t.equal(run('mount', ['--bind', tr.u, ro]).status, 0, 'bind mount')
  t.teardown(() => { if (isMounted(ro)) run('umount', ['-l', ro]) })
  const bind = (mode: 'ro' | 'rw'): void => { t.equal(run('mount', ['-o', `remount,${mode},bind`, ro]).status, 0, `remount ${mode}`) }

  t.test('read-only from the start', async t => {
    bind('ro')
    const mnt = tmpdir(t, 'mnt')
    t.teardown(() => { if (isMounted(mnt)) run('umount', ['-l', mnt]) })
    const r = run(process.execPath, [CLI, 'mount', `${ro}:${tr.a}`, mnt])
    if (r.status !== 0) {
      t.equal(r.stderr.split('\n').filter(Boolean).length, 1, `refused with one line: ${r.stderr.trim()}`)
      t.notOk(isMounted(mnt), 'nothing mounted')
      return
    }
    const got = await probe([
      ['read', `${mnt}/lower.txt`], ['read', `${mnt}/upper.txt`], ['append', `${mnt}/lower.txt`, '+'],
      ['append', `${mnt}/upper.txt`, '+'], ['create', `${mnt}/new.txt`], ['mkdir', `${mnt}/newdir`],
      ['unlink', `${mnt}/lower.txt`], ['chmod', `${mnt}/dir/x.txt`, 0o600], ['read', `${mnt}/lower.txt`]
    ])
    t.strictSame(got, ['ok "lower data"', 'ok "upper data"', 'EROFS', 'EROFS', 'EROFS', 'EROFS', 'EROFS', 'EROFS', 'ok "lower data"'],
      'reads work, every write answers EROFS')
    t.equal(run(process.execPath, [CLI, 'umount', mnt]).status, 0, 'unmounts')
  })

  t.test('made read-only while mounted, then writable again', async t => {
    bind('rw')
    const mnt = tmpdir(t, 'mnt')
    t.teardown(() => { if (isMounted(mnt)) run('umount', ['-l', mnt]) })
    const r = run(process.execPath, [CLI, 'mount', `${ro}:${tr.a}`, mnt])
    if (!t.equal(r.status, 0, `mounts ${r.stderr}`)) return
    t.strictSame(await probe([['create', `${mnt}/before.txt`, 'b']]), ['ok'], 'writable at first')
    bind('ro')
    const got = await probe([
      ['read', `${mnt}/lower.txt`], ['append', `${mnt}/lower.txt`, '+'], ['append', `${mnt}/before.txt`, '+'],
      ['create', `${mnt}/new.txt`], ['unlink', `${mnt}/dir/x.txt`], ['rename', `${mnt}/lower.txt`, `${mnt}/moved.txt`],
      ['read', `${mnt}/lower.txt`], ['list', `${mnt}/dir`]
    ])
    t.strictSame(got, ['ok "lower data"', 'EROFS', 'EROFS', 'EROFS', 'EROFS', 'EROFS', 'ok "lower data"', 'ok ["x.txt"]'],
      'EROFS for every write, the view unchanged')
    t.strictSame(workLeftovers(path.join(tr.u, '.wh..wh.unionfs-ts')), [], 'nothing in the work dir')
    bind('rw')
    t.strictSame(await probe([['append', `${mnt}/lower.txt`, '+'], ['read', `${mnt}/lower.txt`], ['unlink', `${mnt}/dir/x.txt`]]),
      ['ok', 'ok "lower data+"', 'ok'], 'writable again: copy-up and whiteouts work')
    t.equal(run(process.execPath, [CLI, 'umount', mnt]).status, 0, 'unmounts')
  })
})

t.test('a writable branch on a full filesystem', { skip: !isRoot && 'needs root' }, async t => {
  const lower = tmpdir(t, 'lower')
  makeTree(lower, {
    'big.bin': Buffer.alloc(3 << 20, 1),
    'mid.bin': Buffer.alloc(1 << 20, 2),
    dir: { 'f1.txt': 'one', 'f2.txt': 'two' },
    'keep.txt': 'keep'
  })
  const upper = tmpdir(t, 'small-tmpfs')
  if (run('mount', ['-t', 'tmpfs', '-o', 'size=2m,nr_inodes=64,mode=0755', 'tmpfs', upper]).status !== 0) { t.comment('cannot mount a tmpfs here: nothing to check'); return }
  t.teardown(() => { run('umount', ['-l', upper]) })
  const s = withUnion(t, { branches: [upper, `${lower}=ro`] })
  const m = (rel: string): string => path.join(s.mnt, rel)
  const work = path.join(upper, '.wh..wh.unionfs-ts')

  t.test('no room for the copy-up of a 3 MiB file', async t => {
    t.strictSame(await probe([['append', m('big.bin'), 'more'], ['truncate', m('big.bin'), (3 << 20) - 1], ['chmod', m('big.bin'), 0o600]]),
      ['ENOSPC', 'ENOSPC', 'ENOSPC'], 'ENOSPC reaches the writer for every trigger')
    t.ok(fs.readFileSync(m('big.bin')).equals(Buffer.alloc(3 << 20, 1)), 'the lower version still shows, whole')
    t.equal(fs.statSync(m('big.bin')).mode & 0o777, 0o644, 'with its old mode')
    t.notOk(fs.existsSync(path.join(upper, 'big.bin')), 'nothing under the name in the writable branch')
    t.strictSame(workLeftovers(work), [], 'nothing in the work dir')
  })

  t.test('a new file larger than the room', async t => {
    t.strictSame(await probe([['write-big', m('huge.bin'), 48]]), ['ENOSPC'], 'ENOSPC reaches the writer')
    t.strictSame(await probe([['unlink', m('huge.bin')]]), ['ok'], 'the partial file can be removed')
    t.strictSame(workLeftovers(work), [], 'nothing in the work dir')
  })

  t.test('with room again, copy-up works', async t => {
    t.strictSame(await probe([['append', m('mid.bin'), 'tail'], ['stat', m('mid.bin')]]), ['ok', `ok ${(1 << 20) + 4}`])
  })

  t.test('out of inodes: creates, whiteouts and renames answer ENOSPC and change nothing', async t => {
    const fill = await probe(Array.from({ length: 100 }, (_, i) => ['create', m(`fill-${i}`)] as Call))
    const made = fill.flatMap((r, i) => r === 'ok' ? [`fill-${i}`] : [])
    t.ok(fill.slice(made.length).every(r => r === 'ENOSPC'), `once full, every create fails with ENOSPC: ${[...new Set(fill)].join(' ')}`)
    t.ok(made.length > 0 && made.length < 100, `${made.length} files filled the inodes`)
    const before = snapshotTree(s.mnt, { xattrs: 'none' })
    const got = await probe([['unlink', m('keep.txt')], ['unlink', m('dir/f1.txt')], ['rename', m('dir/f2.txt'), m('f2.txt')], ['mkdir', m('newdir')]])
    t.ok(got.every(r => r === 'ENOSPC'), `each fails with ENOSPC: ${got.join(' ')}`)
    t.strictSame(snapshotTree(s.mnt, { xattrs: 'none' }), before, 'the view did not change')
    t.strictSame(workLeftovers(work), [], 'nothing in the work dir')
    await probe(made.slice(0, 10).map(n => ['unlink', m(n)] as Call))
    t.strictSame(await probe([['unlink', m('keep.txt')], ['exists', m('keep.txt')], ['rename', m('dir/f2.txt'), m('f2.txt')], ['read', m('f2.txt')]]),
      ['ok', 'ok false', 'ok', 'ok "two"'], 'with inodes back, whiteouts and renames work')
  })
})

t.test('the daemon runs out of file descriptors', { skip: !isRoot && 'needs root' }, async t => {
  const lower = tmpdir(t, 'lower')
  const spec: Record<string, string> = {}
  for (let i = 0; i < 150; i++) spec[`f${i}.txt`] = `file ${i}`
  makeTree(lower, spec)
  const upper = tmpdir(t, 'upper')
  const mnt = tmpdir(t, 'mnt')
  // -f: the daemon is this child, with RLIMIT_NOFILE 64 (Node raises the soft limit to the hard one, so both).
  const daemon = spawnChild(process.execPath, [CLI, 'mount', '-f', `${upper}:${lower}=ro`, mnt], { prefix: ['prlimit', '--nofile=64:64'], timeoutMs: 600_000 })
  t.teardown(async () => {
    if (isMounted(mnt)) run('umount', ['-l', mnt])
    if (alive(daemon.pid)) { try { process.kill(daemon.pid, 'SIGKILL') } catch {} }
  })
  if (!t.ok(await waitFor(() => isMounted(mnt), 30_000), 'mounted in the foreground')) return
  const pid = daemonPid(mnt) ?? daemon.pid
  t.match(fs.readFileSync(`/proc/${pid}/limits`, 'utf8'), /Max open files\s+64\s+64/, 'the daemon has 64 descriptors')
  // At rest: the daemon opens its stats channel just after the mount is live.
  let atRest = fdTable(pid)
  for (let stable = 0; stable < 5;) {
    await sleep(100)
    const now = fdTable(pid)
    stable = now.size === atRest.size ? stable + 1 : 0
    atRest = now
  }
  const baseline = atRest.size
  t.comment(`daemon descriptors at rest: ${baseline}`)

  const HOLD = String.raw`
import errno, json, os, resource, sys
req = json.loads(sys.stdin.read())
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
fds, errs = [], []
for i, p in enumerate(req['paths']):
    try:
        fds.append(os.open(p, os.O_RDWR if i % 3 == 0 else os.O_RDONLY))
    except OSError as e:
        errs.append(errno.errorcode.get(e.errno, str(e.errno)))
sys.stdout.write(json.dumps({'opened': len(fds), 'errors': errs}) + '\n')
sys.stdout.flush()
sys.stdin.close()
# Hold them until told: the parent checks the daemon meanwhile.
import time
while not os.path.exists(req['release']): time.sleep(0.02)
for fd in fds: os.close(fd)
`
  const release = path.join(tmpdir(t, 'flag'), 'release')
  const paths = Array.from({ length: 150 }, (_, i) => path.join(mnt, `f${i}.txt`))
  const holder = spawnChild('python3', ['-c', HOLD], { input: JSON.stringify({ paths, release }), timeoutMs: 60_000 })
  // Wait for the holder to report (its first stdout line), without ending it.
  const ok = await waitFor(() => {
    try { return fs.readFileSync(`/proc/${holder.pid}/fd/1`, 'utf8').includes('\n') } catch { return false }
  }, 30_000)
  t.ok(ok, 'the holder opened what it could')
  t.ok(alive(pid), 'the daemon is alive while at its limit')
  const during = await probe([['read', path.join(mnt, 'f149.txt')], ['create', path.join(mnt, 'new.txt')], ['list', mnt]], 20_000)
  t.ok(during.every(r => r === 'EMFILE' || r === 'ENFILE' || r.startsWith('ok')), `other calls get an answer, not a hang or EIO: ${during.map(r => r.slice(0, 20)).join(' | ')}`)
  fs.writeFileSync(release, '')
  const held = await holder.done
  const report = JSON.parse(held.stdout.trim().split('\n')[0] ?? '{}') as { opened: number, errors: string[] }
  t.comment(`opened ${report.opened} of ${paths.length}; errors: ${[...new Set(report.errors)].join(', ')}`)
  t.ok(report.opened > 0 && report.opened < paths.length, 'some opens succeeded, then the limit hit')
  t.ok(report.errors.length > 0 && report.errors.every(e => e === 'EMFILE' || e === 'ENFILE'), 'each open beyond it failed with EMFILE or ENFILE')
  t.ok(alive(pid), 'the daemon is alive')

  const back = await waitFor(() => fdTable(pid).size <= baseline, 10_000)
  const extra = [...fdTable(pid)].filter(([fd, target]) => atRest.get(fd) !== target).map(([fd, target]) => `${fd} -> ${target}`)
  t.ok(back, `once closed, the daemon's descriptors are back to ${baseline} (extra: ${extra.join(', ')})`)
  const after = await probe([
    ['read', path.join(mnt, 'f1.txt')], ['append', path.join(mnt, 'f2.txt'), '+'], ['read', path.join(mnt, 'f2.txt')],
    ['create', path.join(mnt, 'new.txt'), 'n'], ['read', path.join(mnt, 'new.txt')], ['unlink', path.join(mnt, 'f3.txt')]
  ])
  t.strictSame(after, ['ok "file 1"', 'ok', 'ok "file 2+"', 'ok', 'ok "n"', 'ok'], 'the mount works again')
  t.strictSame(workLeftovers(path.join(upper, '.wh..wh.unionfs-ts')), [], 'nothing in the work dir')
  const upperFiles = fs.readdirSync(upper).filter(n => !n.startsWith('.wh.'))
  t.ok(upperFiles.every(n => n === 'new.txt' || /^f\d+\.txt$/.test(n)), `only whole copy-ups in the writable branch: ${upperFiles.join(' ')}`)
  for (const n of upperFiles.filter(x => x !== 'new.txt' && x !== 'f2.txt')) {
    t.equal(fs.readFileSync(path.join(upper, n), 'utf8'), `file ${n.slice(1, -4)}`, `${n}: a complete copy`)
  }
  t.equal(run('umount', [mnt]).status, 0, 'umount works')
  const end = await daemon.done
  t.equal(end.code, 0, `the foreground daemon exits 0 ${end.stderr}`)
})

t.test('a branch directory removed while mounted', { skip: !isRoot && 'needs root' }, async t => {
  for (const cache of ['on', 'off']) {
    t.test(`a read-only branch, cache=${cache}`, async t => {
      const lower = tmpdir(t, 'lower')
      makeTree(lower, { 'l.txt': 'lower', d: { 'x.txt': 'x' } })
      const upper = tmpdir(t, 'upper')
      const s = withUnion(t, { branches: [upper, `${lower}=ro`], options: [`cache=${cache}`] })
      const m = (rel: string): string => path.join(s.mnt, rel)
      t.strictSame(await probe([['read', m('l.txt')], ['list', m('d')]]), ['ok "lower"', 'ok ["x.txt"]'], 'mounted and served')
      const pid = daemonPid(s.mnt) as number
      fs.rmSync(lower, { recursive: true, force: true })
      const got = await probe([
        ['stat', m('l.txt')], ['read', m('l.txt')], ['list', m('d')], ['list', s.mnt], ['append', m('l.txt'), '+'],
        ['unlink', m('d/x.txt')], ['create', m('new.txt'), 'new'], ['read', m('new.txt')]
      ])
      t.comment(`after rm -rf of the read-only branch: ${got.join(' | ')}`)
      t.ok(got.every(r => r.startsWith('ok') || /^E[A-Z]+$/.test(r)), 'every call answered')
      t.notOk(got.includes('EIO'), 'none with EIO')
      t.equal(got[7], 'ok "new"', 'the writable branch still takes new files')
      if (cache === 'off') t.equal(got[1], 'ENOENT', 'with cache=off the removed file is gone from the view')
      t.ok(alive(pid), 'the daemon is alive')
      t.notOk(fs.existsSync(lower), 'the removed branch was not recreated')
      t.equal(run(process.execPath, [CLI, 'umount', s.mnt]).status, 0, 'unmount works')
      t.ok(await waitFor(() => !alive(pid), 10_000), 'the daemon exits')
    })
  }
  t.test('the writable branch', async t => {
    const lower = tmpdir(t, 'lower')
    makeTree(lower, { 'l.txt': 'lower' })
    const upper = tmpdir(t, 'upper')
    fs.writeFileSync(path.join(upper, 'u.txt'), 'upper')
    const s = withUnion(t, { branches: [upper, `${lower}=ro`] })
    const m = (rel: string): string => path.join(s.mnt, rel)
    const pid = daemonPid(s.mnt) as number
    fs.rmSync(upper, { recursive: true, force: true })
    const got = await probe([
      ['read', m('l.txt')], ['create', m('new.txt'), 'n'], ['append', m('l.txt'), '+'], ['mkdir', m('nd')],
      ['unlink', m('l.txt')], ['read', m('u.txt')], ['list', s.mnt]
    ])
    t.comment(`after rm -rf of the writable branch: ${got.join(' | ')}`)
    t.ok(got.every(r => r.startsWith('ok') || /^E[A-Z]+$/.test(r)), 'every call answered')
    t.notOk(got.includes('EIO'), 'none with EIO')
    t.equal(got[0], 'ok "lower"', 'the read-only branch still reads')
    t.ok(got.slice(1, 5).every(r => r !== 'ok'), 'writes fail')
    t.ok(alive(pid), 'the daemon is alive')
    t.notOk(fs.existsSync(upper), 'the removed branch was not recreated')
    t.equal(run(process.execPath, [CLI, 'umount', s.mnt]).status, 0, 'unmount works')
    t.ok(await waitFor(() => !alive(pid), 10_000), 'the daemon exits')
  })
})
