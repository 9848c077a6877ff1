/**
 * Ring 3, lookup and merged listings through a real mount, over three
 * branches (rw upper, read-only middle, read-only bottom) whose whiteouts and
 * opaque markers were written beforehand in either dialect:
 *  - top wins for a name; a merged directory lists the union of names once,
 *    top entry winning, whiteouts and opaque dirs honoured in the rw branch
 *    and in a read-only middle branch;
 *  - a directory hides a lower file of the same name and vice versa, and a
 *    name resolved to a file is never looked up below it for children;
 *  - `.wh.*` names are never listed nor looked up, creating one is EPERM;
 *  - private xattrs (trusted.overlay.*, trusted.unionfs-ts.*) never show.
 * Lookups change nothing on disk. Runs on unionfs-ts (markers in both
 * dialects, whatever the mount writes) and on overlayfs (overlay markers).
 */
import t from 'tap'
import * as fs from 'node:fs'
import { dir, file, makeTree, snapshotTree, snapshotUpper, whiteout, type Dialect, type Spec } from './helpers/tree'
import { ALL, UNION_ONLY, codeOf, ls, mountStack, type Variant } from './helpers/union-env'
import { tmpdir } from './helpers/mount'
import * as sys from './helpers/sys'

function bottomSpec (): Spec {
  return {
    'a.txt': 'bottom a',
    'b.txt': 'bottom b',
    'only-bottom.txt': 'only bottom',
    shared: { x: 'bottom x', y: 'bottom y', deep: { z: 'bottom z' }, gone: 'bottom gone' },
    'gone-by-mid.txt': 'hidden by a whiteout in the middle branch',
    'gone-dir': { inside: 'hidden with its dir' },
    opq: { old1: 'bottom old', olddir: { o: 'o' } },
    'file-then-dir': 'a file in bottom, a dir in the middle',
    'dir-then-file': { child: 'bottom child' },
    'back-again': { old: 'hidden by mid whiteout, recreated above' }
  }
}

function midSpec (d: Dialect): Spec {
  return {
    'a.txt': 'mid a',
    'mid-only.txt': 'mid only',
    shared: { y: 'mid y', w: 'mid w', gone: whiteout(d) },
    'gone-by-mid.txt': whiteout(d),
    'gone-dir': whiteout(d),
    opq: dir({ new1: 'mid new' }, { opaque: d }),
    'file-then-dir': { c: 'mid c' },
    'dir-then-file': 'a file in the middle, a dir in bottom',
    'back-again': whiteout(d)
  }
}

function upperSpec (d: Dialect): Spec {
  return {
    'a.txt': 'upper a',
    'b.txt': whiteout(d),
    'upper-only.txt': 'upper only',
    shared: { x: 'upper x', deep: whiteout(d) },
    'back-again': { fresh: 'upper fresh' }
  }
}

const ROOT_NAMES = ['a.txt', 'back-again', 'dir-then-file', 'file-then-dir', 'mid-only.txt', 'only-bottom.txt',
  'opq', 'shared', 'upper-only.txt']

function read (p: string): string { return fs.readFileSync(p, 'utf8') }

function checkMerged (t: tap.Test, v: Variant, upperD: Dialect, midD: Dialect): void {
  const bottom = makeTree(tmpdir(t, 'bottom'), bottomSpec())
  const mid = makeTree(tmpdir(t, 'mid'), midSpec(midD))
  const upper = makeTree(tmpdir(t, 'upper'), upperSpec(upperD))
  const snaps = [bottom, mid].map(b => snapshotTree(b, { times: true, ino: true }))
  const s = mountStack(t, v, [mid, bottom], { upper })
  // After the mount: making the private work dir in the upper is the mount's business.
  snaps.push(snapshotUpper(upper, { times: true, ino: true }))

  t.strictSame(ls(s.mnt), ROOT_NAMES, 'root lists the union of names, whiteouts applied, no marker names')
  t.equal(read(s.m('a.txt')), 'upper a', 'top branch wins')
  t.equal(read(s.m('mid-only.txt')), 'mid only', 'middle-only name found')
  t.equal(read(s.m('only-bottom.txt')), 'only bottom', 'bottom-only name found')
  t.equal(codeOf(() => fs.lstatSync(s.m('b.txt'))), 'ENOENT', 'whiteout in the rw branch hides a bottom file')
  t.equal(codeOf(() => fs.lstatSync(s.m('gone-by-mid.txt'))), 'ENOENT', 'whiteout in a ro middle branch hides a bottom file')
  t.equal(codeOf(() => fs.lstatSync(s.m('gone-dir'))), 'ENOENT', 'whiteout in a ro branch hides a bottom dir')
  t.equal(codeOf(() => fs.lstatSync(s.m('gone-dir/inside'))), 'ENOENT', '... and everything in it')

  t.strictSame(ls(s.m('shared')), ['w', 'x', 'y'], 'merged dir: union of three branches, whiteouts in two of them applied')
  t.equal(read(s.m('shared/x')), 'upper x', 'merged dir: upper entry wins')
  t.equal(read(s.m('shared/y')), 'mid y', 'merged dir: middle entry wins over bottom')
  t.equal(codeOf(() => fs.lstatSync(s.m('shared/deep/z'))), 'ENOENT', 'whited-out dir hides its lower children')

  t.strictSame(ls(s.m('opq')), ['new1'], 'opaque dir in a ro branch stops the merge')
  t.equal(codeOf(() => fs.lstatSync(s.m('opq/old1'))), 'ENOENT', 'opaque dir: bottom name not found')
  t.equal(codeOf(() => fs.lstatSync(s.m('opq/olddir/o'))), 'ENOENT', 'opaque dir: bottom subtree not found')

  t.ok(fs.lstatSync(s.m('file-then-dir')).isDirectory(), 'a dir hides a lower file of the same name')
  t.strictSame(ls(s.m('file-then-dir')), ['c'], '... and lists only its own branch')
  t.ok(fs.lstatSync(s.m('dir-then-file')).isFile(), 'a file hides a lower dir of the same name')
  t.equal(read(s.m('dir-then-file')), 'a file in the middle, a dir in bottom', '... with its own content')
  t.equal(codeOf(() => fs.lstatSync(s.m('dir-then-file/child'))), 'ENOTDIR', 'no lookup below a name that resolved to a file')
  t.equal(codeOf(() => fs.readdirSync(s.m('dir-then-file'))), 'ENOTDIR', 'readdir of that file is ENOTDIR')
  t.strictSame(ls(s.m('back-again')), ['fresh'], 'dir above a whiteout does not merge with what the whiteout hides')

  // readdir agrees with lookup: every listed name stats, with the listed type, no duplicates.
  for (const d of ['.', 'shared', 'opq', 'file-then-dir', 'back-again']) {
    const ents = fs.readdirSync(s.m(d), { withFileTypes: true })
    t.equal(new Set(ents.map(e => e.name)).size, ents.length, `no duplicate names in ${d}`)
    for (const e of ents) {
      const st = fs.lstatSync(s.m(`${d}/${e.name}`))
      t.equal(e.isDirectory(), st.isDirectory(), `${d}/${e.name}: readdir type matches lstat`)
    }
  }
  t.strictSame(snapshotTree(bottom, { times: true, ino: true }), snaps[0], 'bottom branch unchanged by lookups and listings')
  t.strictSame(snapshotTree(mid, { times: true, ino: true }), snaps[1], 'middle branch unchanged by lookups and listings')
  t.strictSame(snapshotUpper(upper, { times: true, ino: true }), snaps[2], 'upper branch unchanged by lookups and listings')
}

for (const v of ALL) {
  const dialects: Array<[Dialect, Dialect]> = v.impl === 'overlayfs'
    ? [['overlay', 'overlay']]
    : [['aufs', 'aufs'], ['overlay', 'overlay'], ['overlay', 'aufs'], ['aufs', 'overlay']]
  for (const [ud, md] of dialects) {
    t.test(`${v.name}: lookup order and merged readdir, markers: upper ${ud}, middle ${md}`, async t => {
      checkMerged(t, v, ud, md)
    })
  }
}

for (const v of UNION_ONLY) {
  t.test(`${v.name}: .wh.* names are invisible and cannot be created`, async t => {
    const lower = makeTree(tmpdir(t, 'lower'), { d: { f: 'f', '.wh.gone': '' }, gone: 'g', f: 'file' })
    const upper = makeTree(tmpdir(t, 'upper'), { '.wh.gone': '', '.wh.notthere': '', u: 'u' })
    const s = mountStack(t, v, [lower], { upper })
    t.strictSame(ls(s.mnt), ['d', 'f', 'u'], 'no .wh. name listed in the root')
    t.strictSame(ls(s.m('d')), ['f'], 'no .wh. name listed in a lower dir')
    t.equal(codeOf(() => fs.lstatSync(s.m('.wh.gone'))), 'ENOENT', 'lookup of a whiteout file by name: ENOENT')
    t.equal(codeOf(() => fs.lstatSync(s.m('.wh..wh.unionfs-ts'))), 'ENOENT', 'private work dir not visible')
    t.equal(codeOf(() => fs.lstatSync(s.m('d/.wh.gone'))), 'ENOENT', 'lookup in a lower dir: ENOENT')
    const before = snapshotTree(s.upper as string)
    t.equal(codeOf(() => fs.writeFileSync(s.m('.wh.x'), 'x')), 'EPERM', 'create .wh.x: EPERM')
    t.equal(codeOf(() => fs.writeFileSync(s.m('d/.wh.f'), '')), 'EPERM', 'create .wh.f next to f: EPERM')
    t.equal(codeOf(() => fs.writeFileSync(s.m('.wh..wh..opq'), '')), 'EPERM', 'create .wh..wh..opq: EPERM')
    t.equal(codeOf(() => fs.mkdirSync(s.m('.wh.dir'))), 'EPERM', 'mkdir .wh.dir: EPERM')
    t.equal(codeOf(() => fs.symlinkSync('u', s.m('.wh.link'))), 'EPERM', 'symlink .wh.link: EPERM')
    t.equal(codeOf(() => sys.mknod(s.m('.wh.fifo'), fs.constants.S_IFIFO | 0o644)), 'EPERM', 'mkfifo .wh.fifo: EPERM')
    t.equal(codeOf(() => fs.linkSync(s.m('u'), s.m('.wh.u'))), 'EPERM', 'link to .wh.u: EPERM')
    t.equal(codeOf(() => fs.renameSync(s.m('u'), s.m('.wh.u'))), 'EPERM', 'rename to .wh.u: EPERM')
    t.equal(codeOf(() => fs.renameSync(s.m('f'), s.m('d/.wh.f'))), 'EPERM', 'rename a lower file to .wh.f: EPERM')
    t.strictSame(snapshotTree(s.upper as string), before, 'upper branch untouched by the refused calls')
    t.equal(fs.readFileSync(s.m('u'), 'utf8'), 'u', 'source of the refused rename still there')
  })

  t.test(`${v.name}: user.overlay.opaque=y marks an opaque dir too`, async t => {
    const bottom = makeTree(tmpdir(t, 'bottom'), { o: { old: 'old' }, p: { kept: 'kept' } })
    const mid = makeTree(tmpdir(t, 'mid'), { o: dir({ new: 'new' }, { opaque: 'overlay-user' }), p: { also: 'also' } })
    const s = mountStack(t, v, [mid, bottom])
    t.strictSame(ls(s.m('o')), ['new'], 'user.overlay.opaque stops the merge')
    t.equal(codeOf(() => fs.lstatSync(s.m('o/old'))), 'ENOENT', 'hidden name not found')
    t.strictSame(ls(s.m('p')), ['also', 'kept'], 'an unmarked dir still merges')
  })

  t.test(`${v.name}: private xattrs are never visible`, async t => {
    const lower = makeTree(tmpdir(t, 'lower'), {
      f: file('x', { xattrs: { 'user.visible': '1', 'trusted.overlay.origin': 'o', 'trusted.unionfs-ts.ino': '42', 'trusted.other': 't' } }),
      d: dir({ g: 'g' }, { opaque: 'overlay', xattrs: { 'user.dirattr': 'd' } })
    })
    const upper = makeTree(tmpdir(t, 'upper'), {
      u: file('u', { xattrs: { 'user.u': '1', 'trusted.overlay.redirect': '/x', 'trusted.unionfs-ts.state': 's' } })
    })
    const s = mountStack(t, v, [lower], { upper })
    const priv = (names: string[]): string[] => names.filter(n => n.startsWith('trusted.overlay.') || n.startsWith('trusted.unionfs-ts.'))
    t.strictSame(priv(sys.listxattr(s.m('f'))), [], 'lower file: no private xattr listed')
    t.ok(sys.listxattr(s.m('f')).includes('user.visible'), 'lower file: user xattr listed')
    t.ok(sys.listxattr(s.m('f')).includes('trusted.other'), 'lower file: other trusted xattr listed')
    t.strictSame(priv(sys.listxattr(s.m('d'))), [], 'opaque dir: marker not listed')
    t.strictSame(priv(sys.listxattr(s.m('u'))), [], 'upper file: no private xattr listed')
    t.equal(codeOf(() => sys.getxattr(s.m('f'), 'trusted.overlay.origin')), 'ENODATA', 'getxattr of trusted.overlay.*: ENODATA')
    t.equal(codeOf(() => sys.getxattr(s.m('u'), 'trusted.unionfs-ts.state')), 'ENODATA', 'getxattr of trusted.unionfs-ts.*: ENODATA')
    sys.setxattr(s.m('f'), 'user.new', 'n')
    t.strictSame(priv(sys.listxattr(s.m('f'))), [], 'after copy-up: still no private xattr listed')
    t.strictSame(sys.listxattr(s.m('f')).filter(n => n.startsWith('user.')), ['user.new', 'user.visible'], 'after copy-up: user xattrs')
    fs.writeFileSync(s.m('fresh'), 'f')
    fs.mkdirSync(s.m('newdir'))
    t.strictSame(priv(sys.listxattr(s.m('fresh'))), [], 'new file: no private xattr listed')
    t.strictSame(priv(sys.listxattr(s.m('newdir'))), [], 'new dir: no private xattr listed')
  })
}
