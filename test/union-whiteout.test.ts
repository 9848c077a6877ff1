/**
 * Ring 3, removal through a real mount, checked in the branches on disk:
 *  - unlink of a name that a read-only branch has leaves a whiteout in the
 *    dialect the mount writes (and only that one); unlink of an upper-only
 *    name leaves none; a new file, symlink or dir over the whiteout clears it;
 *  - rmdir of a directory merged from three branches, once the merged view is
 *    empty; rmdir answers ENOTEMPTY while a read-only branch alone still has
 *    entries, also after the dir itself was copied up;
 *  - mkdir over a whited-out directory is opaque: the old lower contents
 *    never come back, not after a remount either;
 *  - rm -r of a lower-only tree;
 *  - the read-only branches are unchanged, the work dir holds nothing.
 */
import t from 'tap'
import * as fs from 'node:fs'
import { makeTree, snapshotTree } from './helpers/tree'
import { ALL, anyWhiteoutOnDisk, codeOf, ls, mountStack, opaqueOnDisk, whiteoutOnDisk, workLeftovers, type Variant } from './helpers/union-env'
import { tmpdir } from './helpers/mount'

function isDir (p: string): boolean {
  try { return fs.lstatSync(p).isDirectory() } catch { return false }
}

function checkRemoval (t: tap.Test, v: Variant): void {
  const other = v.dialect === 'aufs' ? 'overlay' : 'aufs'
  const bottom = makeTree(tmpdir(t, 'bottom'), {
    'l.txt': 'lower',
    'both.txt': 'lower both',
    'relink.txt': 'lower relink',
    'redir.txt': 'lower redir',
    merged: { x: 'x bottom', deep: { d: 'd' } },
    'only-lower-dir': { inner: 'i', sub: { s: 's' } },
    'empty-lower-dir': {},
    wd: { old: 'old', olddir: { o: 'o' } },
    tree: { a: { b: { c: { f: 'f' } }, g: 'g' }, h: 'h' }
  })
  const mid = makeTree(tmpdir(t, 'mid'), { merged: { y: 'y mid' }, 'l1.txt': 'l1' })
  const upper = makeTree(tmpdir(t, 'upper'), { 'both.txt': 'upper both', 'u.txt': 'upper only', merged: { z: 'z upper' } })
  const before = [snapshotTree(bottom, { times: true, ino: true }), snapshotTree(mid, { times: true, ino: true })]
  const s = mountStack(t, v, [mid, bottom], { upper })

  t.test('unlink a lower-only file', async t => {
    fs.unlinkSync(s.m('l.txt'))
    t.equal(codeOf(() => fs.lstatSync(s.m('l.txt'))), 'ENOENT', 'gone from the view')
    t.notOk(ls(s.mnt).includes('l.txt'), 'not listed')
    t.ok(whiteoutOnDisk(upper, 'l.txt', v.dialect), `whiteout in the ${v.dialect} dialect`)
    t.notOk(whiteoutOnDisk(upper, 'l.txt', other), `no ${other}-dialect whiteout`)
    t.equal(codeOf(() => fs.unlinkSync(s.m('l.txt'))), 'ENOENT', 'second unlink: ENOENT')
  })
  t.test('unlink a file of the middle (read-only, top lower) branch', async t => {
    fs.unlinkSync(s.m('l1.txt'))
    t.equal(codeOf(() => fs.lstatSync(s.m('l1.txt'))), 'ENOENT', 'gone from the view')
    t.ok(whiteoutOnDisk(upper, 'l1.txt', v.dialect), 'whiteout written')
  })
  t.test('unlink an upper-only file', async t => {
    fs.unlinkSync(s.m('u.txt'))
    t.equal(codeOf(() => fs.lstatSync(s.m('u.txt'))), 'ENOENT', 'gone from the view')
    t.notOk(fs.existsSync(s.u('u.txt')), 'removed from the upper')
    t.notOk(anyWhiteoutOnDisk(upper, 'u.txt'), 'no whiteout needed, none written')
  })
  t.test('unlink a file present in upper and lower', async t => {
    fs.unlinkSync(s.m('both.txt'))
    t.equal(codeOf(() => fs.lstatSync(s.m('both.txt'))), 'ENOENT', 'the lower copy does not show through')
    t.ok(whiteoutOnDisk(upper, 'both.txt', v.dialect), 'whiteout written')
  })
  t.test('create over a whiteout clears it', async t => {
    fs.unlinkSync(s.m('relink.txt'))
    fs.writeFileSync(s.m('relink.txt'), 'new')
    t.equal(fs.readFileSync(s.m('relink.txt'), 'utf8'), 'new', 'new file visible')
    t.ok(fs.lstatSync(s.u('relink.txt')).isFile(), 'regular file in the upper')
    t.notOk(whiteoutOnDisk(upper, 'relink.txt', 'aufs'), 'no .wh. file left')
    t.strictSame(ls(s.mnt).filter(n => n === 'relink.txt'), ['relink.txt'], 'listed once')
    fs.unlinkSync(s.m('redir.txt'))
    fs.symlinkSync('l1.txt', s.m('redir.txt'))
    t.equal(fs.readlinkSync(s.m('redir.txt')), 'l1.txt', 'symlink over a whiteout')
    t.notOk(whiteoutOnDisk(upper, 'redir.txt', 'aufs'), 'no .wh. file left for the symlink')
  })
  t.test('rmdir of a dir merged from three branches', async t => {
    t.equal(codeOf(() => fs.rmdirSync(s.m('merged'))), 'ENOTEMPTY', 'ENOTEMPTY while the merged view has entries')
    fs.unlinkSync(s.m('merged/z'))
    fs.unlinkSync(s.m('merged/y'))
    fs.unlinkSync(s.m('merged/x'))
    t.equal(codeOf(() => fs.rmdirSync(s.m('merged'))), 'ENOTEMPTY', 'ENOTEMPTY while a subdir is left in a lower branch')
    fs.unlinkSync(s.m('merged/deep/d'))
    fs.rmdirSync(s.m('merged/deep'))
    t.strictSame(ls(s.m('merged')), [], 'merged view empty')
    t.equal(codeOf(() => fs.rmdirSync(s.m('merged'))), 'ok', 'rmdir succeeds once the merged view is empty')
    t.equal(codeOf(() => fs.lstatSync(s.m('merged'))), 'ENOENT', 'gone from the view')
    t.ok(whiteoutOnDisk(upper, 'merged', v.dialect), 'whiteout for the dir')
    t.notOk(isDir(s.u('merged')), 'no directory left in the upper under that name')
  })
  t.test('rmdir ENOTEMPTY when only a lower branch has entries', async t => {
    t.equal(codeOf(() => fs.rmdirSync(s.m('only-lower-dir'))), 'ENOTEMPTY', 'lower-only dir with entries')
    fs.chmodSync(s.m('only-lower-dir'), 0o700)
    t.ok(isDir(s.u('only-lower-dir')), 'dir copied up by chmod')
    t.equal(codeOf(() => fs.rmdirSync(s.m('only-lower-dir'))), 'ENOTEMPTY', 'still ENOTEMPTY once the dir is in the upper, empty there')
    t.strictSame(ls(s.m('only-lower-dir')), ['inner', 'sub'], 'entries still visible')
  })
  t.test('rmdir of an empty lower dir', async t => {
    t.equal(codeOf(() => fs.rmdirSync(s.m('empty-lower-dir'))), 'ok', 'rmdir ok')
    t.ok(whiteoutOnDisk(upper, 'empty-lower-dir', v.dialect), 'whiteout written')
    t.equal(codeOf(() => fs.lstatSync(s.m('empty-lower-dir'))), 'ENOENT', 'gone from the view')
  })
  t.test('mkdir over a whited-out dir is opaque', async t => {
    fs.rmSync(s.m('wd'), { recursive: true })
    t.equal(codeOf(() => fs.lstatSync(s.m('wd'))), 'ENOENT', 'removed')
    fs.mkdirSync(s.m('wd'))
    t.strictSame(ls(s.m('wd')), [], 'new dir is empty: old lower entries do not come back')
    t.equal(codeOf(() => fs.lstatSync(s.m('wd/old'))), 'ENOENT', 'old lower file not found by name')
    t.equal(codeOf(() => fs.lstatSync(s.m('wd/olddir/o'))), 'ENOENT', 'old lower subtree not found by name')
    t.ok(opaqueOnDisk(s.u('wd'), v.dialect), `opaque marker in the ${v.dialect} dialect`)
    t.notOk(anyWhiteoutOnDisk(upper, 'wd'), 'the whiteout is gone')
    fs.writeFileSync(s.m('wd/new'), 'n')
    t.strictSame(ls(s.m('wd')), ['new'], 'lists only what was made in it')
    t.strictSame(ls(s.u('wd')).filter(n => !n.startsWith('.wh.')), ['new'], 'upper holds the new entry')
  })
  t.test('rm -r of a lower-only tree', async t => {
    fs.rmSync(s.m('tree'), { recursive: true })
    t.equal(codeOf(() => fs.lstatSync(s.m('tree'))), 'ENOENT', 'gone from the view')
    t.ok(whiteoutOnDisk(upper, 'tree', v.dialect), 'one whiteout at the top of the removed tree')
    t.notOk(isDir(s.u('tree')), 'no directory left in the upper')
    fs.mkdirSync(s.m('tree'))
    t.strictSame(ls(s.m('tree')), [], 'recreated dir is empty')
  })
  t.test('after a remount', async t => {
    s.remount()
    const want = ['only-lower-dir', 'redir.txt', 'relink.txt', 'tree', 'wd']
    t.strictSame(ls(s.mnt), want, 'the view is the same after a remount')
    t.strictSame(ls(s.m('wd')), ['new'], 'opaque dir still hides the old entries')
    t.strictSame(ls(s.m('tree')), [], 'recreated dir still empty')
    t.equal(fs.readFileSync(s.m('relink.txt'), 'utf8'), 'new', 'recreated file kept')
  })
  t.test('branches on disk', async t => {
    t.strictSame(snapshotTree(bottom, { times: true, ino: true }), before[0], 'bottom branch unchanged')
    t.strictSame(snapshotTree(mid, { times: true, ino: true }), before[1], 'middle branch unchanged')
    t.strictSame(workLeftovers(s.work), [], 'work dir holds nothing')
  })
}

for (const v of ALL) {
  t.test(`${v.name}: unlink, rmdir and whiteouts`, async t => { checkRemoval(t, v) })
}
