/**
 * Ring 3: a union without a writable branch answers EROFS to every mutation
 * (and to opens for writing), serves reads as usual, and leaves its branches
 * untouched. overlayfs with only lower layers is the reference.
 */
import t from 'tap'
import * as fs from 'node:fs'
import { file, makeTree, snapshotTree } from './helpers/tree'
import { ALL, codeOf, ls, mountStack } from './helpers/union-env'
import { tmpdir } from './helpers/mount'
import * as sys from './helpers/sys'

const C = fs.constants

for (const v of ALL) {
  t.test(`${v.name}: no writable branch, every mutation is EROFS`, async t => {
    const top = makeTree(tmpdir(t, 'top'), { f: file('top f', { xattrs: { 'user.a': '1' } }), d: { x: 'x' }, l: 'l' })
    const bottom = makeTree(tmpdir(t, 'bottom'), { g: 'bottom g', d: { y: 'y' }, e: {} })
    fs.symlinkSync('f', `${top}/s`)
    const before = [snapshotTree(top, { times: true, ino: true }), snapshotTree(bottom, { times: true, ino: true })]
    const s = mountStack(t, v, [top, bottom], { upper: false })
    t.strictSame(ls(s.mnt), ['d', 'e', 'f', 'g', 'l', 's'], 'merged listing served')
    t.strictSame(ls(s.m('d')), ['x', 'y'], 'merged dir served')
    t.equal(fs.readFileSync(s.m('g'), 'utf8'), 'bottom g', 'reads served')
    const ops: Array<[string, () => unknown]> = [
      ['create', () => fs.openSync(s.m('new'), C.O_CREAT | C.O_WRONLY, 0o644)],
      ['open O_WRONLY', () => fs.openSync(s.m('f'), C.O_WRONLY)],
      ['open O_RDWR', () => fs.openSync(s.m('f'), C.O_RDWR)],
      ['open O_TRUNC', () => fs.openSync(s.m('f'), C.O_WRONLY | C.O_TRUNC)],
      ['open O_APPEND', () => fs.openSync(s.m('f'), C.O_WRONLY | C.O_APPEND)],
      ['mkdir', () => fs.mkdirSync(s.m('nd'))],
      ['mknod fifo', () => sys.mknod(s.m('fifo'), C.S_IFIFO | 0o644)],
      ['symlink', () => fs.symlinkSync('f', s.m('s2'))],
      ['link', () => fs.linkSync(s.m('f'), s.m('f2'))],
      ['unlink', () => fs.unlinkSync(s.m('g'))],
      ['rmdir', () => fs.rmdirSync(s.m('e'))],
      ['rename file', () => fs.renameSync(s.m('f'), s.m('f3'))],
      ['rename dir', () => fs.renameSync(s.m('d'), s.m('d3'))],
      ['truncate', () => fs.truncateSync(s.m('f'), 0)],
      ['chmod', () => fs.chmodSync(s.m('f'), 0o600)],
      ['chown', () => fs.chownSync(s.m('f'), 1, 1)],
      ['lchown symlink', () => fs.lchownSync(s.m('s'), 1, 1)],
      ['utimes', () => fs.utimesSync(s.m('f'), 1, 1)],
      ['setxattr', () => sys.setxattr(s.m('f'), 'user.b', '2')],
      ['removexattr', () => sys.removexattr(s.m('f'), 'user.a')],
      ['chmod dir', () => fs.chmodSync(s.m('d'), 0o700)]
    ]
    for (const [name, op] of ops) {
      let fd: unknown
      const code = codeOf(() => { fd = op() })
      if (typeof fd === 'number') fs.closeSync(fd)
      t.equal(code, 'EROFS', `${name}: EROFS`)
    }
    t.equal(codeOf(() => fs.accessSync(s.m('f'), C.W_OK)), 'EROFS', 'access W_OK: EROFS')
    t.equal(codeOf(() => fs.accessSync(s.m('f'), C.R_OK)), 'ok', 'access R_OK: ok')
    t.equal(codeOf(() => fs.closeSync(fs.openSync(s.m('f'), C.O_RDONLY))), 'ok', 'open O_RDONLY: ok')
    t.strictSame(snapshotTree(top, { times: true, ino: true }), before[0], 'top branch unchanged')
    t.strictSame(snapshotTree(bottom, { times: true, ino: true }), before[1], 'bottom branch unchanged')
  })
}
