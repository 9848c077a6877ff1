/**
 * Ring 3, rename through a real mount, checked in the branches on disk:
 * files from a read-only branch (copy-up, old name whited out), files over
 * lower files, directories that exist only in a lower branch, and
 * directories merged from three branches — never EXDEV, the renamed dir shows
 * all its merged content (whiteouts inside it still applied), the old name is
 * gone and stays gone when a new dir is made there, all of it across a
 * remount. ENOTEMPTY / EISDIR / ENOTDIR / EINVAL keep their meaning when the
 * target or the source lives in a lower branch.
 *
 * overlayfs runs it too, with redirect_dir=on (without it, it would answer
 * EXDEV for the merged directory renames; the spec says we never do).
 */
import t from 'tap'
import * as fs from 'node:fs'
import { makeTree, snapshotTree } from './helpers/tree'
import { ALL, codeOf, ls, mountStack, whiteoutOnDisk, workLeftovers, type Variant } from './helpers/union-env'
import { tmpdir } from './helpers/mount'

function read (p: string): string { return fs.readFileSync(p, 'utf8') }
function ino (p: string): bigint { return fs.lstatSync(p, { bigint: true }).ino }

function checkRename (t: tap.Test, v: Variant): void {
  const bottom = makeTree(tmpdir(t, 'bottom'), {
    'f.txt': 'f bottom',
    'target.txt': 'target bottom',
    dirA: { a1: 'a1 bottom', gone: 'hidden by the upper', sub: { s: 's bottom' } },
    lowdir: { k: 'k bottom', kk: { deep: 'deep bottom' } },
    'dst-parent': { existing: 'e' },
    emptydir: {},
    'file-target': 'a file',
    'dir-target': { x: 'x' },
    nest: { inner: {} }
  })
  const mid = makeTree(tmpdir(t, 'mid'), { dirA: { a2: 'a2 mid', sub: { t: 't mid' } }, 'm.txt': 'm mid' })
  const upper = makeTree(tmpdir(t, 'upper'), { dirA: { a3: 'a3 upper' }, 'u.txt': 'u upper' })
  const before = [snapshotTree(bottom, { times: true, ino: true }), snapshotTree(mid, { times: true, ino: true })]
  const s = mountStack(t, v, [mid, bottom], { upper })
  fs.unlinkSync(s.m('dirA/gone'))

  t.test('rename a lower file', async t => {
    const i = ino(s.m('f.txt'))
    t.equal(codeOf(() => fs.renameSync(s.m('f.txt'), s.m('g.txt'))), 'ok', 'rename ok')
    t.equal(read(s.m('g.txt')), 'f bottom', 'content under the new name')
    t.equal(codeOf(() => fs.lstatSync(s.m('f.txt'))), 'ENOENT', 'old name gone')
    t.equal(ino(s.m('g.txt')), i, 'st_ino kept')
    t.equal(read(s.u('g.txt')), 'f bottom', 'copied up under the new name')
    t.ok(whiteoutOnDisk(upper, 'f.txt', v.dialect), 'old name whited out')
  })
  t.test('rename a middle-branch file over a bottom file', async t => {
    t.equal(codeOf(() => fs.renameSync(s.m('m.txt'), s.m('target.txt'))), 'ok', 'rename ok')
    t.equal(read(s.m('target.txt')), 'm mid', 'target replaced')
    t.equal(codeOf(() => fs.lstatSync(s.m('m.txt'))), 'ENOENT', 'old name gone')
    t.ok(whiteoutOnDisk(upper, 'm.txt', v.dialect), 'old name whited out')
  })
  t.test('rename an upper file over a lower file', async t => {
    t.equal(codeOf(() => fs.renameSync(s.m('u.txt'), s.m('g.txt'))), 'ok', 'rename ok')
    t.equal(read(s.m('g.txt')), 'u upper', 'content replaced')
    t.equal(read(s.u('g.txt')), 'u upper', 'upper holds it')
  })
  t.test('rename a directory merged from three branches', async t => {
    const i = ino(s.m('dirA'))
    t.equal(codeOf(() => fs.renameSync(s.m('dirA'), s.m('dirB'))), 'ok', 'rename ok (never EXDEV)')
    t.strictSame(ls(s.m('dirB')), ['a1', 'a2', 'a3', 'sub'], 'all merged entries under the new name, whiteout inside still applied')
    t.strictSame(ls(s.m('dirB/sub')), ['s', 't'], 'merged subdir content under the new name')
    t.equal(read(s.m('dirB/a1')), 'a1 bottom', 'bottom entry readable')
    t.equal(read(s.m('dirB/a2')), 'a2 mid', 'middle entry readable')
    t.equal(read(s.m('dirB/sub/s')), 's bottom', 'bottom entry of the subdir readable')
    t.equal(codeOf(() => fs.lstatSync(s.m('dirA'))), 'ENOENT', 'old name gone')
    t.notOk(ls(s.mnt).includes('dirA'), 'old name not listed')
    t.equal(ino(s.m('dirB')), i, 'dir st_ino kept', { todo: v.impl === 'overlayfs' ? 'overlayfs may change a merged dir\'s st_ino' : false })
    t.ok(whiteoutOnDisk(upper, 'dirA', v.dialect) || !fs.existsSync(s.u('dirA')), 'nothing left in the upper under the old name but a whiteout')
  })
  t.test('a new dir at the old name does not bring the old content back', async t => {
    fs.mkdirSync(s.m('dirA'))
    t.strictSame(ls(s.m('dirA')), [], 'empty')
    fs.writeFileSync(s.m('dirA/fresh'), 'f')
    t.strictSame(ls(s.m('dirA')), ['fresh'], 'only the new entry')
    t.strictSame(ls(s.m('dirB')), ['a1', 'a2', 'a3', 'sub'], 'renamed dir unaffected')
  })
  t.test('rename a renamed dir again, and a file out of it', async t => {
    t.equal(codeOf(() => fs.renameSync(s.m('dirB'), s.m('dirC'))), 'ok', 'second rename ok')
    t.strictSame(ls(s.m('dirC')), ['a1', 'a2', 'a3', 'sub'], 'content follows again')
    t.equal(codeOf(() => fs.renameSync(s.m('dirC/a1'), s.m('a1-out'))), 'ok', 'move a lower entry out of it')
    t.strictSame(ls(s.m('dirC')), ['a2', 'a3', 'sub'], 'gone from the dir')
    t.equal(read(s.m('a1-out')), 'a1 bottom', 'content moved')
  })
  t.test('rename a lower-only dir into another lower-only dir', async t => {
    t.equal(codeOf(() => fs.renameSync(s.m('lowdir'), s.m('dst-parent/moved'))), 'ok', 'rename ok')
    t.strictSame(ls(s.m('dst-parent')), ['existing', 'moved'], 'target parent lists it')
    t.strictSame(ls(s.m('dst-parent/moved')), ['k', 'kk'], 'content follows')
    t.equal(read(s.m('dst-parent/moved/kk/deep')), 'deep bottom', 'deep content readable')
    t.equal(codeOf(() => fs.lstatSync(s.m('lowdir'))), 'ENOENT', 'old name gone')
  })
  t.test('errors keep their meaning across branches', async t => {
    t.equal(codeOf(() => fs.renameSync(s.m('dirC'), s.m('dst-parent'))), 'ENOTEMPTY', 'dir over non-empty lower dir: ENOTEMPTY')
    t.equal(codeOf(() => fs.renameSync(s.m('dirC'), s.m('file-target'))), 'ENOTDIR', 'dir over lower file: ENOTDIR')
    t.equal(codeOf(() => fs.renameSync(s.m('file-target'), s.m('dir-target'))), 'EISDIR', 'lower file over lower dir: EISDIR')
    t.equal(codeOf(() => fs.renameSync(s.m('nest'), s.m('nest/inner/x'))), 'EINVAL', 'lower dir into its own subdir: EINVAL')
    t.equal(codeOf(() => fs.renameSync(s.m('nope'), s.m('x'))), 'ENOENT', 'missing source: ENOENT')
    t.equal(codeOf(() => fs.renameSync(s.m('dirC'), s.m('emptydir'))), 'ok', 'dir over an empty lower dir: ok')
    t.strictSame(ls(s.m('emptydir')), ['a2', 'a3', 'sub'], 'content shows under the target name')
    t.equal(codeOf(() => fs.lstatSync(s.m('dirC'))), 'ENOENT', 'source gone')
  })
  t.test('after a remount', async t => {
    s.remount()
    t.strictSame(ls(s.mnt), ['a1-out', 'dir-target', 'dirA', 'dst-parent', 'emptydir', 'file-target', 'g.txt', 'nest', 'target.txt'],
      'root listing')
    t.strictSame(ls(s.m('emptydir')), ['a2', 'a3', 'sub'], 'renamed merged dir keeps its merged content')
    t.strictSame(ls(s.m('emptydir/sub')), ['s', 't'], 'and its merged subdir')
    t.strictSame(ls(s.m('dirA')), ['fresh'], 'new dir at the old name still holds only its own entry')
    t.strictSame(ls(s.m('dst-parent/moved')), ['k', 'kk'], 'moved lower-only dir')
  })
  t.test('branches on disk', async t => {
    t.strictSame(snapshotTree(bottom, { times: true, ino: true }), before[0], 'bottom branch unchanged')
    t.strictSame(snapshotTree(mid, { times: true, ino: true }), before[1], 'middle branch unchanged')
    t.strictSame(workLeftovers(s.work), [], 'work dir holds nothing')
  })
}

for (const v of ALL) {
  t.test(`${v.name}: rename`, async t => { checkRename(t, v) })
}
