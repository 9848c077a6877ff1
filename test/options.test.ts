/**
 * lib/options.ts and lib/option-syntax.ts in-process, on temp dirs: every accepted form of both
 * syntaxes, and every validation error, each one line, with nothing created
 * on disk (checked by comparing a full snapshot of the temp tree).
 */
import t from 'tap'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { spawnSync } from 'node:child_process'
import { parseOptions, toArgs } from '../lib/option-syntax'
import { resolveOptions, OptionsError, WORKDIR_NAME, DEFAULT_CACHE_ENTRIES, type Options } from '../lib/options'
import { DEFAULT_READAHEAD_KB, defaultSpinUs } from '../lib/fuse/types'

const isRoot = process.getuid?.() === 0

interface Tree { root: string, [name: string]: string }

/** A temp tree: branches a, b, c, upper u, work w, mountpoint m, a file f. */
function tree (tt: { teardown: (fn: () => void) => void }): Tree {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'unionfs-ts-options-')))
  tt.teardown(() => fs.rmSync(root, { recursive: true, force: true }))
  const out: Tree = { root }
  for (const d of ['a', 'b', 'c', 'u', 'w', 'm']) {
    out[d] = path.join(root, d)
    fs.mkdirSync(out[d])
  }
  fs.writeFileSync(path.join(out.a, 'file-in-a'), 'x')
  out.f = path.join(root, 'f')
  fs.writeFileSync(out.f, 'not a dir')
  return out
}

/** Everything about a tree that validation could change. */
function snapshot (root: string): string[] {
  const out: string[] = []
  const walk = (p: string): void => {
    const st = fs.lstatSync(p)
    out.push(`${path.relative(root, p)} ${st.mode} ${st.size} ${st.mtimeMs} ${st.ctimeMs}`)
    if (st.isDirectory()) for (const n of fs.readdirSync(p).sort()) walk(path.join(p, n))
  }
  walk(root)
  return out
}

/** Parse `args`, expect an OptionsError matching `re`, one line, and the tree untouched. */
function rejects (tt: Tap, tr: Tree, args: string[], re: RegExp): void {
  const before = snapshot(tr.root)
  let caught: unknown
  try {
    parseOptions(args)
  } catch (err) {
    caught = err
  }
  tt.type(caught, OptionsError, `${args.join(' ')}: throws an OptionsError`)
  const msg = (caught as Error | undefined)?.message ?? ''
  tt.match(msg, re, 'the message says what is wrong')
  tt.notOk(msg.includes('\n'), 'the message is one line')
  tt.same(snapshot(tr.root), before, 'nothing changed on disk')
}

type Tap = typeof t

t.test('branch-list syntax', async t => {
  const tr = tree(t)
  const o = parseOptions([`${tr.a}:${tr.b}:${tr.c}`, tr.m])
  t.equal(o.union.upper, tr.a, 'the leftmost branch is the writable one')
  t.same(o.union.lowers, [tr.b, tr.c], 'the others are read-only, top first')
  t.equal(o.union.workdir, path.join(tr.a, WORKDIR_NAME), 'the work dir defaults to a hidden dir in the upper')
  t.notOk(fs.existsSync(path.join(tr.a, WORKDIR_NAME)), 'and parsing does not create it')
  t.equal(o.union.whiteout, 'aufs', 'aufs whiteouts by default')
  t.equal(o.union.cacheEntries, DEFAULT_CACHE_ENTRIES)
  t.equal(o.union.cacheTtlMs, 0)
  t.equal(o.union.xattrNamespace, isRoot ? 'trusted' : 'user')
  t.equal(o.mountpoint, tr.m)
  t.same(o.fuse, {
    fsname: 'unionfs-ts', entryTimeout: 60, attrTimeout: 60, negativeTimeout: 60,
    writeback: false, passthrough: true, killpriv: true, spin: defaultSpinUs(), readahead: DEFAULT_READAHEAD_KB, readdirplus: 'auto', xattr: true, acl: true, debug: false, allowOther: isRoot, readOnly: false
  })
  t.equal(o.backend, 'protocol')
  t.equal(o.foreground, false)
  t.equal(o.log, undefined)
  t.ok(Object.isFrozen(o) && Object.isFrozen(o.union) && Object.isFrozen(o.union.lowers) && Object.isFrozen(o.fuse), 'frozen all the way down')

  const ro = parseOptions([`${tr.a}=ro:${tr.b}`, tr.m])
  t.equal(ro.union.upper, undefined, 'top marked =ro: no writable branch')
  t.equal(ro.union.workdir, undefined, 'and no work dir')
  t.same(ro.union.lowers, [tr.a, tr.b])

  const marked = parseOptions([`${tr.a}=RW:${tr.b}=ro:${tr.c}=RO`, tr.m])
  t.equal(marked.union.upper, tr.a, 'markers are case-insensitive (unionfs-fuse writes =RW)')
  t.same(marked.union.lowers, [tr.b, tr.c])

  const single = parseOptions([tr.a, tr.m])
  t.equal(single.union.upper, tr.a, 'one branch: writable')
  t.same(single.union.lowers, [])
})

t.test('paths are resolved to real absolute paths', async t => {
  const tr = tree(t)
  fs.symlinkSync(tr.b, path.join(tr.root, 'link-to-b'))
  const cwd = process.cwd()
  process.chdir(tr.root)
  t.teardown(() => process.chdir(cwd))
  const o = parseOptions(['a/:link-to-b', './m'])
  t.equal(o.union.upper, tr.a)
  t.same(o.union.lowers, [tr.b], 'a symlinked branch becomes its target')
  t.equal(o.mountpoint, tr.m)
})

t.test('escaped : , = and \\ in paths', async t => {
  const tr = tree(t)
  const odd = path.join(tr.root, 'x:y,z=w\\v')
  fs.mkdirSync(odd)
  const esc = odd.replace(/[\\:,=]/g, c => '\\' + c)
  const o = parseOptions([`${esc}=rw:${tr.b}`, tr.m])
  t.equal(o.union.upper, odd)
  const ov = parseOptions(['-o', `lowerdir=${esc}:${tr.b}`, tr.m])
  t.same(ov.union.lowers, [odd, tr.b])
})

t.test('options: flags, -o forms and values', async t => {
  const tr = tree(t)
  const o = parseOptions([
    '-f', `-owhiteout=overlay,cache_entries=10`, tr.a + ':' + tr.b, tr.m,
    '-o', 'cache_ttl=500,entry_timeout=0.5,attr_timeout=2,negative_timeout=0',
    '-o', 'writeback,debug,fsname=myunion,backend=protocol,log=unionfs.log,allow_other,killpriv=off,spin=0,readahead=0,readdirplus=never,xattr=off,noacl'
  ])
  t.equal(o.foreground, true, '-f')
  t.equal(o.union.whiteout, 'overlay')
  t.equal(o.union.cacheEntries, 10)
  t.equal(o.union.cacheTtlMs, 500)
  t.same(o.fuse, {
    fsname: 'myunion', entryTimeout: 0.5, attrTimeout: 2, negativeTimeout: 0,
    writeback: true, passthrough: true, killpriv: false, spin: 0, readahead: 0, readdirplus: 'never', xattr: false, acl: false, debug: true, allowOther: true, readOnly: false
  })
  t.equal(o.log, path.resolve('unionfs.log'), 'log= is made absolute')
  t.notOk(fs.existsSync(path.resolve('unionfs.log')), 'and not created by parsing')

  const off = parseOptions(['-o', 'cache=off,cache_entries=99', tr.a, tr.m])
  t.equal(off.union.cacheEntries, 0, 'cache=off turns the dentry cache off')
  t.same([off.fuse.entryTimeout, off.fuse.attrTimeout, off.fuse.negativeTimeout], [0, 0, 0],
    'and the kernel timeouts default to 0')
  const offKeep = parseOptions(['-o', 'cache=off,attr_timeout=3', tr.a, tr.m])
  t.equal(offKeep.fuse.attrTimeout, 3, 'an explicit timeout still wins')

  const bools = parseOptions(['-o', 'writeback=on,debug=off,allow_other=no,passthrough=off,acl=off', tr.a, tr.m])
  t.same([bools.fuse.writeback, bools.fuse.debug, bools.fuse.allowOther, bools.fuse.passthrough, bools.fuse.acl], [true, false, false, false, false])

  t.equal(defaultSpinUs(), os.availableParallelism() > 1 ? 100 : 0, 'the spin is on with a CPU to spare')
  t.equal(parseOptions(['-o', 'spin=250', tr.a, tr.m]).fuse.spin, 250)
  t.equal(parseOptions(['-o', 'readahead=4096', tr.a, tr.m]).fuse.readahead, 4096)

  const d = parseOptions(['-d', tr.a, tr.m])
  t.ok(d.fuse.debug && d.foreground, '-d is debug in the foreground')

  const later = parseOptions(['-o', 'whiteout=overlay', '-o', 'whiteout=aufs', tr.a, tr.m])
  t.equal(later.union.whiteout, 'aufs', 'a later -o wins')

  const ro = parseOptions(['-o', 'ro', `${tr.u}:${tr.a}`, tr.m])
  t.equal(ro.union.upper, undefined, 'ro: no writable branch')
  t.same(ro.union.lowers, [tr.u, tr.a], 'the writable branch is read as the top read-only one')
  t.equal(ro.fuse.readOnly, true, 'ro: mounted read-only')
  t.equal(parseOptions([`${tr.a}=ro:${tr.b}`, tr.m]).fuse.readOnly, true, 'no rw branch: mounted read-only')

  const roOverlay = parseOptions(['-o', `ro,lowerdir=${tr.a},upperdir=${tr.u}`, tr.m])
  t.same(roOverlay.union.lowers, [tr.u, tr.a], 'ro with upperdir=: no workdir= needed')
  t.equal(roOverlay.union.upper, undefined)

  const dashdash = parseOptions(['--', tr.a, tr.m])
  t.equal(dashdash.union.upper, tr.a, '-- ends the options')
})

t.test('overlay syntax', async t => {
  const tr = tree(t)
  const o = parseOptions(['-o', `lowerdir=${tr.a}:${tr.b},upperdir=${tr.u},workdir=${tr.w}`, tr.m])
  t.same(o.union.lowers, [tr.a, tr.b], 'lowerdir= is top first')
  t.equal(o.union.upper, tr.u)
  t.equal(o.union.workdir, path.join(tr.w, 'work'), 'the work happens in W/work, as with overlayfs')
  t.equal(o.union.whiteout, 'overlay', 'overlay whiteouts by default')
  t.equal(o.fuse.fsname, 'unionfs-ts')

  const readonly = parseOptions(['-o', `lowerdir=${tr.a}:${tr.b}`, tr.m])
  t.equal(readonly.union.upper, undefined, 'no upperdir: a read-only union')
  t.equal(readonly.union.workdir, undefined)

  const aufs = parseOptions(['-o', `lowerdir=${tr.a},whiteout=aufs`, tr.m])
  t.equal(aufs.union.whiteout, 'aufs')

  const fresh = path.join(tr.root, 'new-work')
  const nw = parseOptions(['-o', `lowerdir=${tr.a},upperdir=${tr.u},workdir=${fresh}`, tr.m])
  t.equal(nw.union.workdir, path.join(fresh, 'work'), 'a work dir that does not exist yet is accepted')
  t.notOk(fs.existsSync(fresh), 'and not created by parsing')

  const inside = parseOptions(['-o', `lowerdir=${tr.a},upperdir=${tr.u},workdir=${tr.u}/.wh.work`, tr.m])
  t.equal(inside.union.workdir, path.join(tr.u, '.wh.work', 'work'), 'a hidden .wh. work dir inside the upper is fine')

  const withWork = parseOptions(['-o', `workdir=${tr.w}`, `${tr.u}:${tr.a}`, tr.m])
  t.equal(withWork.union.workdir, path.join(tr.w, 'work'), 'workdir= also goes with a branch list')
})

t.test('the mount.fuse form: SOURCE MOUNTPOINT -o OPTS', async t => {
  const tr = tree(t)
  const ignored = 'rw,dev,suid,nodev,nosuid,exec,noexec,atime,noatime,relatime,defaults,auto,noauto,' +
    'user,nouser,_netdev,default_permissions,x-systemd.automount,comment=foo'
  const o = parseOptions(['unionfs-ts', tr.m, '-o',
    `rw,lowerdir=${tr.a}:${tr.b},upperdir=${tr.u},workdir=${tr.w},dev,suid,${ignored},allow_other`], { source: true })
  t.equal(o.mountpoint, tr.m)
  t.equal(o.union.upper, tr.u)
  t.same(o.union.lowers, [tr.a, tr.b])
  t.equal(o.fuse.fsname, 'unionfs-ts', 'SOURCE is the default fsname')
  t.equal(o.fuse.allowOther, true)
  const named = parseOptions(['mylabel', tr.m, '-o', `lowerdir=${tr.a}`], { source: true })
  t.equal(named.fuse.fsname, 'mylabel')
  const fstab = parseOptions([`${tr.u}=rw:${tr.a}`, tr.m, '-o', 'rw,defaults'], { source: true })
  t.equal(fstab.union.upper, tr.u, 'without lowerdir=, SOURCE is the branch list')
  t.throws(() => parseOptions([tr.m, '-o', `lowerdir=${tr.a}`], { source: true }), /missing MOUNTPOINT/)
})

t.test('the library form', async t => {
  const tr = tree(t)
  const o = resolveOptions({ branches: [tr.a, { path: tr.b, mode: 'ro' }], mountpoint: tr.m, cache: false })
  t.equal(o.union.upper, tr.a)
  t.same(o.union.lowers, [tr.b])
  t.equal(o.union.cacheEntries, 0)
  const ro = resolveOptions({ branches: [{ path: tr.a, mode: 'ro' }, tr.b], mountpoint: tr.m })
  t.equal(ro.union.upper, undefined)
  const ov = resolveOptions({ lowers: [tr.a, tr.b], upper: tr.u, workdir: tr.w, mountpoint: tr.m, entryTimeout: 5 })
  t.equal(ov.union.whiteout, 'overlay')
  t.equal(ov.fuse.entryTimeout, 5)
  t.throws(() => resolveOptions({ branches: [tr.a], mountpoint: tr.m, cacheEntries: -1 }), OptionsError)
  t.throws(() => resolveOptions({ branches: [tr.a], lowers: [tr.b], mountpoint: tr.m }), /not both/)
  t.throws(() => resolveOptions({ branches: [], mountpoint: tr.m }), /no branches/)
  t.throws(() => resolveOptions({ branches: [tr.a], mountpoint: tr.m, readdirplus: 'plain' as 'auto' }), /readdirplus=plain/)
})

t.test('toArgs gives back the same options', async t => {
  const tr = tree(t)
  const odd = path.join(tr.root, 'p:q,r=s')
  fs.mkdirSync(odd)
  const cases: Options[] = [
    parseOptions([`${tr.a}:${tr.b}:${tr.c}`, tr.m]),
    parseOptions(['-f', '-o', 'cache=off,writeback,debug,fsname=a\\,b,log=/tmp/x.log', `${tr.a}=ro:${tr.b}`, tr.m]),
    parseOptions(['-o', `lowerdir=${tr.a}:${tr.b},upperdir=${tr.u},workdir=${tr.w},cache_ttl=7,allow_other=off`, tr.m]),
    resolveOptions({ branches: [odd, tr.b], mountpoint: tr.m, entryTimeout: 0.25, readdirplus: 'always' }),
    parseOptions(['-o', 'xattr=off', tr.a, tr.m]),
    parseOptions(['-o', 'acl=off', tr.a, tr.m])
  ]
  for (const o of cases) t.same(parseOptions(toArgs(o)), o, toArgs(o).join(' '))
})

t.test('bad branches', async t => {
  const tr = tree(t)
  const missing = path.join(tr.root, 'missing')
  rejects(t, tr, [`${missing}:${tr.b}`, tr.m], /^branch .*missing: no such directory$/)
  rejects(t, tr, [`${tr.a}:${missing}`, tr.m], /^branch .*missing: no such directory$/)
  rejects(t, tr, [`${tr.a}:${tr.f}`, tr.m], /^branch .*\/f: not a directory$/)
  rejects(t, tr, [`${tr.a}:${tr.f}/sub`, tr.m], /^branch .*\/f\/sub: not a directory$/)
  rejects(t, tr, [`${tr.a}=rw:${tr.b}=rw`, tr.m], /^two writable branches: .*\/a and .*\/b/)
  rejects(t, tr, [`${tr.a}:${tr.b}=rw`, tr.m], /^two writable branches/)
  rejects(t, tr, [`${tr.a}=ro:${tr.b}=rw`, tr.m], /only the leftmost \(top\) branch can be rw/)
  rejects(t, tr, [`${tr.a}=rx:${tr.b}`, tr.m], /unknown mode 'rx'/)
  rejects(t, tr, [`${tr.a}:${tr.a}`, tr.m], /^branch .*\/a is listed twice$/)
  rejects(t, tr, [`${tr.a}=ro:${tr.b}:${tr.b}/`, tr.m], /listed twice/)
  fs.symlinkSync(tr.a, path.join(tr.root, 'also-a'))
  rejects(t, tr, [`${tr.a}:${tr.root}/also-a`, tr.m], /listed twice/)
  rejects(t, tr, [`${tr.root}:${tr.b}`, path.join(tr.root, 'elsewhere')], /mountpoint|overlap/)
  rejects(t, tr, [`${tr.a}:${tr.a}/..`, tr.m], /overlap/)
  rejects(t, tr, [':', tr.m], /empty path/)
  rejects(t, tr, [`${tr.root}/new\nline`, tr.m], /^branch .*new\\x0aline: no such directory$/)
})

t.test('no branches', async t => {
  const tr = tree(t)
  rejects(t, tr, [tr.m], /^no branches given/)
  rejects(t, tr, [], /^no branches and no MOUNTPOINT given$/)
  rejects(t, tr, ['', tr.m], /^no branches given$/)
  rejects(t, tr, ['-o', 'lowerdir=', tr.m], /lowerdir= needs at least one directory/)
  rejects(t, tr, ['-o', `upperdir=${tr.u},workdir=${tr.w}`, tr.m], /upperdir= needs lowerdir=/)
})

t.test('bad mountpoints', async t => {
  const tr = tree(t)
  rejects(t, tr, [tr.a, path.join(tr.root, 'nope')], /^mountpoint .*\/nope: no such directory$/)
  rejects(t, tr, [tr.a, tr.f], /^mountpoint .*\/f: not a directory$/)
  rejects(t, tr, [tr.a, '/proc'], /^mountpoint \/proc is already a mount point$/)
  rejects(t, tr, [`${tr.a}:${tr.b}`, path.join(tr.a)], /^branch .*\/a is the mountpoint$/)
  rejects(t, tr, [`${tr.a}:${tr.b}`, tr.b], /^branch .*\/b is the mountpoint$/)
  fs.mkdirSync(path.join(tr.b, 'inner'))
  rejects(t, tr, [`${tr.a}:${tr.b}`, path.join(tr.b, 'inner')], /^mountpoint .*\/b\/inner is inside branch .*\/b$/)
  fs.mkdirSync(path.join(tr.m, 'br'))
  rejects(t, tr, [`${tr.a}:${tr.m}/br`, tr.m], /^branch .*\/m\/br is inside the mountpoint .*\/m$/)
  rejects(t, tr, [`${tr.root}=ro`, tr.m], /^mountpoint .* is inside branch/)
  rejects(t, tr, [tr.a, tr.m, 'extra'], /unexpected argument 'extra'/)
  rejects(t, tr, ['-o', `lowerdir=${tr.a}`, 'src', tr.m], /unexpected argument 'src'/)
  rejects(t, tr, ['-o', `lowerdir=${tr.a}`], /missing MOUNTPOINT/)
})

t.test('a mountpoint that is already mounted (bind mount: same st_dev)', { skip: !isRoot && 'needs root' }, async t => {
  const tr = tree(t)
  const r = spawnSync('mount', ['--bind', tr.c, tr.m])
  if (r.status !== 0) { t.skip(`mount --bind failed: ${String(r.stderr)}`); return }
  t.teardown(() => {
    if (spawnSync('umount', [tr.m]).status !== 0) spawnSync('umount', ['-l', tr.m])
  })
  rejects(t, tr, [`${tr.a}:${tr.b}`, tr.m], /already a mount point/)
})

t.test('unknown and malformed options', async t => {
  const tr = tree(t)
  const br = `${tr.a}:${tr.b}`
  rejects(t, tr, ['-o', 'frobnicate', br, tr.m], /^unknown option 'frobnicate'$/)
  rejects(t, tr, ['-o', 'rw,frob=1', br, tr.m], /^unknown option 'frob'$/)
  rejects(t, tr, ['-o', 'lowerdir+=/x', tr.m], /^unknown option 'lowerdir\+'$/)
  rejects(t, tr, ['-x', br, tr.m], /^unknown option '-x'$/)
  rejects(t, tr, [br, tr.m, '-o'], /-o needs a value/)
  rejects(t, tr, ['-o', 'whiteout=both', br, tr.m], /whiteout=both: expected aufs or overlay/)
  rejects(t, tr, ['-o', 'cache=maybe', br, tr.m], /cache=maybe: expected on or off/)
  rejects(t, tr, ['-o', 'cache_entries=-1', br, tr.m], /cache_entries=-1: expected a whole number/)
  rejects(t, tr, ['-o', 'cache_entries=1.5', br, tr.m], /cache_entries=1.5/)
  rejects(t, tr, ['-o', 'cache_ttl=soon', br, tr.m], /cache_ttl=soon/)
  rejects(t, tr, ['-o', 'spin=-5', br, tr.m], /spin=-5: expected a whole number/)
  rejects(t, tr, ['-o', 'spin=1000001', br, tr.m], /spin: at most 1000000 microseconds/)
  rejects(t, tr, ['-o', 'readahead=-1', br, tr.m], /readahead=-1: expected a whole number/)
  rejects(t, tr, ['-o', 'readahead=1.5', br, tr.m], /readahead=1.5/)
  rejects(t, tr, ['-o', 'readdirplus=sometimes', br, tr.m], /readdirplus=sometimes: expected auto, always or never/)
  rejects(t, tr, ['-o', 'entry_timeout=', br, tr.m], /entry_timeout needs a value/)
  rejects(t, tr, ['-o', 'attr_timeout=-2', br, tr.m], /attr_timeout=-2/)
  rejects(t, tr, ['-o', 'negative_timeout=x', br, tr.m], /negative_timeout=x/)
  rejects(t, tr, ['-o', 'fsname=', br, tr.m], /fsname needs a value/)
  rejects(t, tr, ['-o', 'backend=libfuse3', br, tr.m], /^unknown backend 'libfuse3' \(expected protocol or fuse-native\)$/)
  rejects(t, tr, ['-o', 'rw=1', br, tr.m], /^unknown option 'rw'$/)
  rejects(t, tr, ['-o', `log=${tr.m}/x.log`, br, tr.m], /log file .* is inside the mountpoint/)
  rejects(t, tr, ['-o', `lowerdir=${tr.a}`, br, tr.m], /^unexpected argument '.*' \(with lowerdir=, branches come from the options\)$/)
})

t.test('bad work dirs', async t => {
  const tr = tree(t)
  const ov = (extra: string): string[] => ['-o', `lowerdir=${tr.a},upperdir=${tr.u}${extra}`, tr.m]
  rejects(t, tr, ov(''), /^upperdir= needs workdir=/)
  rejects(t, tr, ov(`,workdir=${tr.f}`), /^workdir .*\/f: not a directory$/)
  rejects(t, tr, ov(`,workdir=${tr.root}/no/such`), /^workdir parent .*: no such directory$/)
  rejects(t, tr, ov(`,workdir=${tr.u}`), /must not be the writable branch/)
  rejects(t, tr, ov(`,workdir=${tr.root}`), /must not be the writable branch .* or contain it/)
  rejects(t, tr, ov(`,workdir=${tr.u}/work`), /inside the writable branch and would show/)
  rejects(t, tr, ov(`,workdir=${tr.a}/work`), /overlaps branch/)
  rejects(t, tr, ov(`,workdir=${tr.m}/work`), /overlaps the mountpoint/)
  rejects(t, tr, ['-o', `workdir=${tr.w}`, `${tr.a}=ro:${tr.b}`, tr.m], /workdir= needs a writable branch/)
  rejects(t, tr, ['-o', `lowerdir=${tr.a},workdir=${tr.w}`, tr.m], /workdir= needs a writable branch/)

  // Another filesystem: /dev/shm is a tmpfs here. The work dir need not exist;
  // its parent's st_dev decides, and nothing is created there either.
  const shm = fs.existsSync('/dev/shm') ? fs.statSync('/dev/shm') : undefined
  if (shm === undefined || shm.dev === fs.statSync(tr.u).dev) {
    t.skip('no second filesystem at /dev/shm')
    return
  }
  const other = path.join('/dev/shm', `unionfs-ts-options-${process.pid}-work`)
  rejects(t, tr, ov(`,workdir=${other}`), /^workdir .* is not on the same filesystem as the writable branch .*\/u$/)
  t.notOk(fs.existsSync(other), 'the foreign work dir was not created')
})
