/**
 * Ring 3, identity through a real mount: st_ino is the same before and after
 * copy-up, the same across a remount (for lower, upper, copied-up and newly
 * made entries, files and dirs), unique across branches even when the
 * branches' own inode numbers collide (two tmpfs branches), and hard links
 * show one st_ino with a correct st_nlink. Every entry reports the mount's
 * st_dev.
 */
import t from 'tap'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { hardlink, makeTree } from './helpers/tree'
import { ALL, UNION_ONLY, mountStack, workLeftovers } from './helpers/union-env'
import { tmpdir, withTmpfs } from './helpers/mount'

function st (p: string): fs.BigIntStats { return fs.lstatSync(p, { bigint: true }) }

for (const v of ALL) {
  t.test(`${v.name}: st_ino stable across copy-up and remount, hard links`, async t => {
    const lower = makeTree(tmpdir(t, 'lower'), {
      'lower.txt': 'l', 'to-copy.txt': 'c', 'to-write.txt': 'w', ldir: { x: 'x' }, cdir: { y: 'y' },
      h1: 'hard', h2: hardlink('h1'), sym: 'x'
    })
    const upper = makeTree(tmpdir(t, 'upper'), { 'upper.txt': 'u', udir: {}, ldir: { z: 'z' } })
    const s = mountStack(t, v, [lower], { upper })
    const names = ['lower.txt', 'to-copy.txt', 'to-write.txt', 'ldir', 'cdir', 'h1', 'h2', 'upper.txt', 'udir', 'ldir/x', 'ldir/z', '.']
    const ino0 = new Map(names.map(n => [n, st(s.m(n)).ino]))
    const dev = st(s.mnt).dev

    t.equal(new Set(names.filter(n => n !== 'h2').map(n => ino0.get(n))).size, names.length - 1, 'distinct entries have distinct st_ino')
    t.equal(ino0.get('h1'), ino0.get('h2'), 'lower hard links: one st_ino')
    t.equal(st(s.m('h1')).nlink, 2n, 'lower hard links: nlink 2')
    for (const n of names) t.equal(st(s.m(n)).dev, dev, `${n}: st_dev is the mount's`)

    fs.chmodSync(s.m('to-copy.txt'), 0o600)
    fs.appendFileSync(s.m('to-write.txt'), 'more')
    fs.chmodSync(s.m('cdir'), 0o700)
    t.ok(fs.existsSync(s.u('to-copy.txt')) && fs.existsSync(s.u('cdir')), 'copied up')
    for (const n of ['to-copy.txt', 'to-write.txt', 'cdir']) t.equal(st(s.m(n)).ino, ino0.get(n), `${n}: st_ino unchanged by copy-up`)

    fs.writeFileSync(s.m('new.txt'), 'n')
    fs.mkdirSync(s.m('newdir'))
    fs.linkSync(s.m('upper.txt'), s.m('upper-link'))
    fs.linkSync(s.m('lower.txt'), s.m('lower-link'))
    const newIno = st(s.m('new.txt')).ino
    const newDirIno = st(s.m('newdir')).ino
    t.equal(st(s.m('upper-link')).ino, ino0.get('upper.txt'), 'link of an upper file: same st_ino')
    t.equal(st(s.m('upper.txt')).nlink, 2n, 'link of an upper file: nlink 2')
    t.equal(st(s.m('lower-link')).ino, ino0.get('lower.txt'), 'link of a lower file: same st_ino as before the copy-up')
    t.equal(st(s.m('lower.txt')).nlink, 2n, 'link of a lower file: nlink 2')
    fs.unlinkSync(s.m('upper-link'))
    t.equal(st(s.m('upper.txt')).nlink, 1n, 'unlink one name: nlink back to 1')

    s.remount()
    for (const n of names) t.equal(st(s.m(n)).ino, ino0.get(n), `${n}: same st_ino after remount`)
    t.equal(st(s.m('new.txt')).ino, newIno, 'new file: same st_ino after remount')
    t.equal(st(s.m('newdir')).ino, newDirIno, 'new dir: same st_ino after remount')
    t.equal(st(s.m('lower-link')).ino, ino0.get('lower.txt'), 'linked pair: one st_ino after remount')
    t.equal(st(s.m('lower.txt')).nlink, 2n, 'linked pair: nlink 2 after remount')
    t.equal(st(s.m('h2')).ino, st(s.m('h1')).ino, 'lower hard links still one st_ino after remount')
    t.strictSame(workLeftovers(s.work), [], 'work dir holds nothing')
  })
}

for (const v of UNION_ONLY) {
  t.test(`${v.name}: st_ino unique across branches whose inode numbers collide`, async t => {
    const spec = { a: 'a', b: 'b', d: { c: 'c' } }
    const l1 = makeTree(path.join(withTmpfs(t, 'l1'), 'br'), spec)
    const l2 = makeTree(path.join(withTmpfs(t, 'l2'), 'br'), { e: 'e', f: 'f', g: { h: 'h' } })
    t.equal(st(path.join(l1, 'a')).ino, st(path.join(l2, 'e')).ino, 'the two branches really share inode numbers')
    const s = mountStack(t, v, [l1, l2])
    const all = ['a', 'b', 'd', 'd/c', 'e', 'f', 'g', 'g/h', '.']
    const inos = all.map(n => st(s.m(n)).ino)
    t.equal(new Set(inos).size, all.length, 'every entry has its own st_ino')
    fs.chmodSync(s.m('e'), 0o600)
    t.equal(st(s.m('e')).ino, inos[all.indexOf('e')], 'copy-up from the second branch keeps st_ino')
    s.remount()
    t.strictSame(all.map(n => st(s.m(n)).ino), inos, 'the same numbers after a remount')
  })
}
