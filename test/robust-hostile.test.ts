/**
 * Ring 3, hostile layers: read-only branches someone else built, with
 * symlinks pointing out of the branches (`etc -> /sentinel`, `up ->
 * ../../..`, absolute and relative, to directories and to files), a
 * directory shadowed by a symlink in a higher branch and a symlink shadowed
 * by a directory, redirect xattrs that climb out of the branches, and a
 * writable branch whose work-dir name is a symlink.
 *
 * A sentinel tree outside the branches (helpers/robust-sentinel.ts) is what
 * the hostile entries point at; it is compared before and after, bytes,
 * modes, owners, xattrs and all three times: nothing done through the mount
 * may read it or change it. Every operation is driven through the mount
 * without following the hostile links itself (a process that follows a
 * symlink it got from the mount reaches the target through the kernel,
 * which is ordinary symlink behaviour): lookup, listing, readlink, read,
 * copy-up (write, chmod, truncate, setxattr, lchown, lutimes, lsetxattr),
 * create inside, rename, link, unlink and rmdir (whiteouts), mkdir over a
 * whiteout. Afterwards the view survives a remount, the read-only branches
 * are unchanged and the work dir is empty.
 *
 * The symlink scenario also runs on the kernel's overlayfs, whose results
 * must be the same. Names at the 255-byte limit and paths near PATH_MAX
 * are in robust-limits.test.ts.
 */
import t, { type Test } from 'tap'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { CLI, isMounted, run, tmpdir, unionArgs } from './helpers/mount'
import { dir, makeTree, snapshotTree, symlink } from './helpers/tree'
import { OVERLAYFS, UNION_AUFS, UNION_OVERLAY, codeOf, mountStack, transcript, workLeftovers, type Stack, type Variant } from './helpers/union-env'
import * as sys from './helpers/sys'
import { makeSentinel, snapshotSentinel } from './helpers/robust-sentinel'

const SENTINEL_NAMES = ['secret.txt', 'passwd', 'data.bin', 'inner', 'inner.txt', 'deeper', 'deep.txt']

interface Layers { base: string, sentinel: string, top: string, bottom: string }

/** The hostile read-only branches, and the sentinel they point at. */
function hostileLayers (t: Test): Layers {
  const base = tmpdir(t, 'hostile')
  const sentinel = makeSentinel(path.join(base, 'sentinel'))
  const top = path.join(base, 'top')
  const bottom = path.join(base, 'bottom')
  makeTree(bottom, {
    etc: { passwd: 'root:x:0:0:from the bottom branch, hidden by the top one\n' },
    shadow: symlink(sentinel),
    dirlink: { 'lower.txt': 'under a symlink of the top branch' },
    rel: { 'r.txt': 'under a relative symlink' },
    sub: { 'a.txt': 'bottom a' }
  })
  makeTree(top, {
    etc: symlink(sentinel),
    root: symlink('/'),
    up: symlink('../../..'),
    esc: symlink('../sentinel'),
    deep: dir({ x: symlink('../../sentinel'), secret: symlink('../../sentinel/secret.txt') }),
    shadow: { 'mine.txt': 'a directory over a symlink' },
    dirlink: symlink(sentinel),
    rel: symlink('../sentinel'),
    sub: { 'b.txt': 'top b', link: symlink(path.join(sentinel, 'secret.txt')) },
    'plain.txt': 'plain'
  })
  return { base, sentinel, top, bottom }
}

/** What `p` is, without following it; throws the lstat error. */
function lstatType (p: string): string {
  const st = fs.lstatSync(p)
  return st.isSymbolicLink() ? `symlink -> ${fs.readlinkSync(p)}` : st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other'
}

/**
 * The symlink scenario: every step through the mount, recorded as a
 * transcript (so the kernel's overlayfs can be held to the same).
 */
function symlinkScenario (s: Stack): string[] {
  const m = s.m
  const { out, step } = transcript()
  const types = (d: string): string[] => fs.readdirSync(m(d), { withFileTypes: true })
    .map(e => `${e.name}:${e.isSymbolicLink() ? 'l' : e.isDirectory() ? 'd' : e.isFile() ? 'f' : '?'}`).sort()

  // Lookups and listings: the links themselves, never what they point at.
  step('list /', () => types('.'))
  for (const p of ['etc', 'root', 'up', 'esc', 'deep/x', 'deep/secret', 'dirlink', 'rel', 'sub/link', 'shadow']) {
    step(`lstat ${p}`, () => lstatType(m(p)))
  }
  step('list shadow (a dir over a symlink)', () => types('shadow'))
  step('list sub (merged, holds a link out)', () => types('sub'))
  step('list deep', () => types('deep'))
  step('read plain.txt', () => fs.readFileSync(m('plain.txt'), 'utf8'))

  // Copy-up of the links themselves.
  step('lchown etc', () => fs.lchownSync(m('etc'), 1234, 5678))
  step('lutimes deep/x', () => fs.lutimesSync(m('deep/x'), 1_000_000_000, 1_000_000_000))
  step('lsetxattr esc trusted.t', () => sys.setxattr(m('esc'), 'trusted.t', 'v', 0, false))
  step('lchown sub/link', () => fs.lchownSync(m('sub/link'), 42, 43))
  step('lutimes deep/secret', () => fs.lutimesSync(m('deep/secret'), 1_100_000_000, 1_100_000_000))
  for (const p of ['etc', 'deep/x', 'esc', 'sub/link', 'deep/secret']) {
    step(`after copy-up: lstat ${p}`, () => {
      const st = fs.lstatSync(m(p))
      return `${lstatType(m(p))} uid=${st.uid} gid=${st.gid}`
    })
  }
  step('link etc -> etc-hard', () => fs.linkSync(m('etc'), m('etc-hard')))
  step('lstat etc-hard', () => `${lstatType(m('etc-hard'))} nlink=${fs.lstatSync(m('etc-hard')).nlink}`)
  step('rename esc -> esc2', () => fs.renameSync(m('esc'), m('esc2')))
  step('rename up -> up2', () => fs.renameSync(m('up'), m('up2')))
  step('lstat up2', () => lstatType(m('up2')))
  step('rename sub/link -> sub/link2', () => fs.renameSync(m('sub/link'), m('sub/link2')))
  step('unlink root (whiteout)', () => fs.unlinkSync(m('root')))
  step('lstat root', () => lstatType(m('root')))

  // A symlink over a directory: removing it must not uncover the directory.
  step('unlink dirlink', () => fs.unlinkSync(m('dirlink')))
  step('lstat dirlink', () => lstatType(m('dirlink')))
  step('mkdir dirlink', () => fs.mkdirSync(m('dirlink')))
  step('list dirlink (opaque: the bottom dir stays hidden)', () => types('dirlink'))
  step('create dirlink/new.txt', () => fs.writeFileSync(m('dirlink/new.txt'), 'new'))
  step('rename rel -> rel2', () => fs.renameSync(m('rel'), m('rel2')))
  step('lstat rel', () => lstatType(m('rel')))
  step('unlink etc', () => fs.unlinkSync(m('etc')))
  step('mkdir etc', () => fs.mkdirSync(m('etc')))
  step('list etc', () => types('etc'))
  step('create etc/passwd', () => fs.writeFileSync(m('etc/passwd'), 'new passwd\n'))
  step('read etc/passwd', () => fs.readFileSync(m('etc/passwd'), 'utf8'))

  // A directory over a symlink: every mutation inside it stays in the branches.
  step('create shadow/new.txt', () => fs.writeFileSync(m('shadow/new.txt'), 'created inside'))
  step('append shadow/mine.txt', () => fs.appendFileSync(m('shadow/mine.txt'), ' + appended'))
  step('chmod shadow/mine.txt', () => fs.chmodSync(m('shadow/mine.txt'), 0o600))
  step('truncate shadow/new.txt', () => fs.truncateSync(m('shadow/new.txt'), 7))
  step('setxattr shadow/mine.txt', () => sys.setxattr(m('shadow/mine.txt'), 'user.x', 'y'))
  step('rename shadow/mine.txt -> shadow/moved.txt', () => fs.renameSync(m('shadow/mine.txt'), m('shadow/moved.txt')))
  step('link shadow/moved.txt -> shadow/hard.txt', () => fs.linkSync(m('shadow/moved.txt'), m('shadow/hard.txt')))
  step('unlink shadow/hard.txt', () => fs.unlinkSync(m('shadow/hard.txt')))
  step('mkdir shadow/sd', () => fs.mkdirSync(m('shadow/sd')))
  step('list shadow', () => types('shadow'))
  step('read shadow/moved.txt', () => fs.readFileSync(m('shadow/moved.txt'), 'utf8'))
  step('rename shadow -> shadow2', () => fs.renameSync(m('shadow'), m('shadow2')))
  step('list shadow2', () => types('shadow2'))
  step('lstat shadow', () => lstatType(m('shadow')))
  step('rmdir shadow2/sd', () => fs.rmdirSync(m('shadow2/sd')))

  // The merged directory holding a link out.
  step('create sub/c.txt', () => fs.writeFileSync(m('sub/c.txt'), 'c'))
  step('unlink sub/a.txt', () => fs.unlinkSync(m('sub/a.txt')))
  step('list sub at the end', () => types('sub'))
  step('list / at the end', () => types('.'))
  return out
}

const viewOpts = { xattrs: 'user' as const }

for (const v of [UNION_AUFS, UNION_OVERLAY, OVERLAYFS] as Variant[]) {
  t.test(`${v.name}: hostile symlinks lead nothing out of the branches`, async t => {
    const L = hostileLayers(t)
    const sentinelBefore = snapshotSentinel(L.sentinel)
    const lowersBefore = [L.top, L.bottom].map(l => snapshotTree(l, { times: true, ino: true }))
    const s = mountStack(t, v, [L.top, L.bottom])
    const transcript = symlinkScenario(s)
    const expected = expectedTranscript(L)
    t.strictSame(transcript, expected, 'every step gives what a union of these branches should')
    t.strictSame(snapshotSentinel(L.sentinel), sentinelBefore, 'the sentinel was neither read nor changed')
    const view = snapshotTree(s.mnt, viewOpts)
    if (v.impl === 'unionfs-ts') {
      t.strictSame(workLeftovers(s.work), [], 'the work dir holds nothing')
      s.remount()
      t.strictSame(snapshotTree(s.mnt, viewOpts), view, 'the same view after a remount')
    }
    t.strictSame(snapshotSentinel(L.sentinel), sentinelBefore, 'still untouched after the remount')
    ;[L.top, L.bottom].forEach((l, i) => t.strictSame(snapshotTree(l, { times: true, ino: true }), lowersBefore[i], `read-only branch ${i + 1} unchanged`))
    // The copies of the links kept their targets in the writable branch.
    t.equal(fs.readlinkSync(s.u('esc2')), '../sentinel', 'the relative link was copied with its target')
    t.equal(fs.readlinkSync(s.u('deep/x')), '../../sentinel', 'the nested link too')
  })
}

function expectedTranscript (L: Layers): string[] {
  const S = L.sentinel
  const secret = path.join(S, 'secret.txt')
  return [
    'list /: ok ["deep:d","dirlink:l","esc:l","etc:l","plain.txt:f","rel:l","root:l","shadow:d","sub:d","up:l"]',
    `lstat etc: ok symlink -> ${S}`,
    'lstat root: ok symlink -> /',
    'lstat up: ok symlink -> ../../..',
    'lstat esc: ok symlink -> ../sentinel',
    'lstat deep/x: ok symlink -> ../../sentinel',
    'lstat deep/secret: ok symlink -> ../../sentinel/secret.txt',
    `lstat dirlink: ok symlink -> ${S}`,
    'lstat rel: ok symlink -> ../sentinel',
    `lstat sub/link: ok symlink -> ${secret}`,
    'lstat shadow: ok dir',
    'list shadow (a dir over a symlink): ok ["mine.txt:f"]',
    'list sub (merged, holds a link out): ok ["a.txt:f","b.txt:f","link:l"]',
    'list deep: ok ["secret:l","x:l"]',
    'read plain.txt: ok plain',
    'lchown etc: ok',
    'lutimes deep/x: ok',
    'lsetxattr esc trusted.t: ok',
    'lchown sub/link: ok',
    'lutimes deep/secret: ok',
    `after copy-up: lstat etc: ok symlink -> ${S} uid=1234 gid=5678`,
    'after copy-up: lstat deep/x: ok symlink -> ../../sentinel uid=0 gid=0',
    'after copy-up: lstat esc: ok symlink -> ../sentinel uid=0 gid=0',
    `after copy-up: lstat sub/link: ok symlink -> ${secret} uid=42 gid=43`,
    'after copy-up: lstat deep/secret: ok symlink -> ../../sentinel/secret.txt uid=0 gid=0',
    'link etc -> etc-hard: ok',
    `lstat etc-hard: ok symlink -> ${S} nlink=2`,
    'rename esc -> esc2: ok',
    'rename up -> up2: ok',
    'lstat up2: ok symlink -> ../../..',
    'rename sub/link -> sub/link2: ok',
    'unlink root (whiteout): ok',
    'lstat root: ENOENT',
    'unlink dirlink: ok',
    'lstat dirlink: ENOENT',
    'mkdir dirlink: ok',
    'list dirlink (opaque: the bottom dir stays hidden): ok []',
    'create dirlink/new.txt: ok',
    'rename rel -> rel2: ok',
    'lstat rel: ENOENT',
    'unlink etc: ok',
    'mkdir etc: ok',
    'list etc: ok []',
    'create etc/passwd: ok',
    'read etc/passwd: ok new passwd\n',
    'create shadow/new.txt: ok',
    'append shadow/mine.txt: ok',
    'chmod shadow/mine.txt: ok',
    'truncate shadow/new.txt: ok',
    'setxattr shadow/mine.txt: ok',
    'rename shadow/mine.txt -> shadow/moved.txt: ok',
    'link shadow/moved.txt -> shadow/hard.txt: ok',
    'unlink shadow/hard.txt: ok',
    'mkdir shadow/sd: ok',
    'list shadow: ok ["moved.txt:f","new.txt:f","sd:d"]',
    'read shadow/moved.txt: ok a directory over a symlink + appended',
    'rename shadow -> shadow2: ok',
    'list shadow2: ok ["moved.txt:f","new.txt:f","sd:d"]',
    'lstat shadow: ENOENT',
    'rmdir shadow2/sd: ok',
    'create sub/c.txt: ok',
    'unlink sub/a.txt: ok',
    'list sub at the end: ok ["b.txt:f","c.txt:f","link2:l"]',
    'list / at the end: ok ["deep:d","dirlink:d","esc2:l","etc-hard:l","etc:d","plain.txt:f","rel2:l","shadow2:d","sub:d","up2:l"]'
  ]
}

/**
 * Redirect xattrs are how a moved directory finds its lower content. One
 * written by someone else can name any path: these climb out of the
 * branches, to the sentinel, in every form the union reads (absolute,
 * a bare relative name, the overlay and the unionfs-ts xattr).
 */
for (const v of [UNION_AUFS, UNION_OVERLAY, OVERLAYFS] as Variant[]) {
  t.test(`${v.name}: redirect xattrs in a read-only branch cannot lead out of the branches`, async t => {
    const base = tmpdir(t, 'redirect')
    const sentinel = makeSentinel(path.join(base, 'sentinel'))
    const top = path.join(base, 'top')
    const bottom = path.join(base, 'bottom')
    // The bottom branch is base/bottom: '/..' from its root is base, '/../sentinel' the sentinel.
    makeTree(bottom, { other: { 'o.txt': 'o' } })
    makeTree(top, {
      r1: dir({ 'mine.txt': 'r1' }, { xattrs: { 'trusted.overlay.redirect': '/../sentinel' } }),
      r2: dir({ 'mine.txt': 'r2' }, { xattrs: { 'user.overlay.redirect': '../sentinel' } }),
      r3: dir({ 'mine.txt': 'r3' }, { xattrs: { 'trusted.unionfs-ts.redirect': '/../sentinel/inner' } }),
      r4: dir({ 'mine.txt': 'r4' }, { xattrs: { 'trusted.overlay.redirect': '/other/../../sentinel' } })
    })
    const sentinelBefore = snapshotSentinel(sentinel)
    const s = mountStack(t, v, [top, bottom])
    for (const d of ['r1', 'r2', 'r3', 'r4']) {
      let names: string[] | string
      try { names = fs.readdirSync(s.m(d)).sort() } catch (e) { names = codeOf(() => { throw e }) }
      t.ok(Array.isArray(names) ? !names.some(n => SENTINEL_NAMES.includes(n)) : true,
        `${d}: its listing shows nothing of the sentinel: ${JSON.stringify(names)}`)
      for (const n of ['secret.txt', 'inner.txt']) {
        let got: string
        try { got = fs.readFileSync(s.m(`${d}/${n}`), 'utf8') } catch (e) { got = codeOf(() => { throw e }) }
        t.ok(/^E[A-Z]+$/.test(got), `${d}/${n}: not readable through the mount (${got.slice(0, 40)})`)
      }
      // Mutations inside must stay in the branches too.
      try { fs.writeFileSync(s.m(`${d}/new.txt`), 'new') } catch { /* an error is an answer; the sentinel check decides */ }
      try { fs.unlinkSync(s.m(`${d}/secret.txt`)) } catch { /* likewise */ }
      try { fs.renameSync(s.m(d), s.m(`${d}-moved`)) } catch { /* likewise */ }
    }
    t.strictSame(snapshotSentinel(sentinel), sentinelBefore, 'the sentinel was neither read nor changed')
  })
}

t.test('a writable branch whose work-dir name is a symlink out of it', async t => {
  const base = tmpdir(t, 'workdir-link')
  const sentinel = makeSentinel(path.join(base, 'sentinel'))
  const lower = makeTree(path.join(base, 'lower'), { 'f.txt': 'lower file' })
  const upper = makeTree(path.join(base, 'upper'), { '.wh..wh.unionfs-ts': symlink(sentinel) })
  const before = snapshotSentinel(sentinel)
  const mnt = tmpdir(t, 'mnt')
  const spec = { branches: [upper, `${lower}=ro`] }
  t.teardown(() => { if (isMounted(mnt)) run('umount', ['-l', mnt]) })
  const r = run(process.execPath, [CLI, ...unionArgs(spec, mnt)])
  if (r.status === 0) {
    t.comment('mounted: the link must have been replaced, not followed')
    fs.appendFileSync(path.join(mnt, 'f.txt'), ' + copy-up through the work dir')
    t.equal(fs.readFileSync(path.join(mnt, 'f.txt'), 'utf8'), 'lower file + copy-up through the work dir')
    run(process.execPath, [CLI, 'umount', mnt])
  } else {
    t.equal(r.stderr.split('\n').filter(Boolean).length, 1, `refused with one line: ${r.stderr.trim()}`)
  }
  t.strictSame(snapshotSentinel(sentinel), before, 'the sentinel the work-dir link points at was neither swept nor used')
})
