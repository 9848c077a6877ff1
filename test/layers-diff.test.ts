/**
 * `unionfs-ts layer diff`, through the command line:
 *  - a branch with whiteouts and opaque dirs in both dialects gives `.wh.`
 *    entries, each opaque dir's marker right after its directory entry and
 *    ahead of its children; the union's private state (work dir, private
 *    xattrs) is not in it; user xattrs and hard links are;
 *  - deterministic bytes: the same branch, and a copy of it, give the same
 *    tarball;
 *  - the round trip, in both whiteout dialects: mount lowers + a writable
 *    branch, change things through the mount (including renaming a merged
 *    directory, which leaves a redirect), diff the writable branch, apply
 *    the diff to a copy of the top lower, mount that over the other lowers:
 *    the two merged views agree, entry for entry.
 */
import t from 'tap'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { spawnSync } from 'node:child_process'
import { cliBuilt, tmpdir, withUnion } from './helpers/mount'
import { dir, file, hardlink, makeTree, snapshotTree, symlink, whiteout } from './helpers/tree'
import { bytePath, cli, listTar, LONG_BYTE_NAME, makeByteNames } from './fixtures/layers-archive'

const isRoot = process.getuid?.() === 0
const canMount = isRoot && fs.existsSync('/dev/fuse')
// These tests mount for real: a machine where that cannot happen fails here, it does not skip.
t.test('runs as root with /dev/fuse', async t => { t.ok(canMount, 'root and /dev/fuse') })

if (!cliBuilt()) {
  t.fail('dist/ is not built (run tsc -p tsconfig.json, as npm test does)')
} else {
  tests()
}

function diffOf (t: tap.Test, branch: string, extra: string[] = []): { file: string, bytes: Buffer } {
  const out = path.join(tmpdir(t, 'out'), 'diff.tar')
  const r = cli(['layer', 'diff', ...extra, branch], { stdoutFile: out })
  t.equal(r.status, 0, r.stderr)
  t.equal(r.stderr, '', 'quiet when piped')
  return { file: out, bytes: fs.readFileSync(out) }
}

function tests (): void {
  t.test('what a diff holds, in which order', async t => {
    const native = require('../dist/lib/native.js') as { lsetxattr: (p: string, n: string, v: Buffer, f: number) => void }
    const ns = isRoot ? 'trusted' : 'user'
    const b = makeTree(tmpdir(t, 'branch'), {
      a: 'file a',
      h1: 'linked',
      h2: hardlink('h1'),
      ln: symlink('a'),
      '.wh.gone-aufs': '',
      ...(isRoot ? { 'gone-ovl': whiteout('overlay') } : {}),
      opq: dir({ z: 'z', b: 'b' }, { opaque: 'aufs' }),
      opq2: dir({ c: 'c' }),
      plain: dir({ x: file('x', { xattrs: { 'user.keep': 'yes' } }) }),
      '.wh..wh.unionfs-ts': { 'tmp.1.1': 'work dir leftovers' },
      '.wh..wh.plnk': {},
      '.wh.odd-dir': { f: 'a .wh. directory is no whiteout, and nothing a union shows' }
    })
    native.lsetxattr(path.join(b, 'opq2'), `${ns}.overlay.opaque`, Buffer.from('y'), 0)
    native.lsetxattr(path.join(b, 'a'), `${ns}.unionfs-ts.origin`, Buffer.from('12345'), 0)
    native.lsetxattr(path.join(b, 'a'), 'user.visible', Buffer.from([0xff, 0x01]), 0)

    const d = diffOf(t, b)
    const entries = await listTar(d.bytes)
    const names = entries.map(e => e.name)
    t.same(names, [
      '.wh.gone-aufs',
      ...(isRoot ? ['.wh.gone-ovl'] : []),
      'a', 'h1', 'h2', 'ln',
      'opq/', 'opq/.wh..wh..opq', 'opq/b', 'opq/z',
      'opq2/', 'opq2/.wh..wh..opq', 'opq2/c',
      'plain/', 'plain/x'
    ], 'sorted, markers first in their dirs, private state left out')
    const by = new Map(entries.map(e => [e.name, e]))
    t.equal(by.get('h2')?.type, 'link')
    t.equal(by.get('h2')?.linkname, 'h1')
    t.equal(by.get('ln')?.linkname, 'a')
    t.equal(by.get('plain/x')?.pax?.['SCHILY.xattr.user.keep'], 'yes')
    t.notOk(Object.keys(by.get('a')?.pax ?? {}).some(k => k.includes('unionfs-ts') || k.includes('overlay')), 'no private xattr')
    t.ok(Object.keys(by.get('a')?.pax ?? {}).includes('SCHILY.xattr.user.visible'))
    t.ok(entries.every(e => e.uname === ''), 'no user names')

    t.same(diffOf(t, b).bytes, d.bytes, 'the same branch gives the same bytes')
    const copy = path.join(tmpdir(t, 'copy'), 'b')
    const cp = spawnSync('cp', ['-a', b, copy])
    t.equal(cp.status, 0, String(cp.stderr))
    t.same(diffOf(t, copy).bytes, d.bytes, 'a copy (other inodes) gives the same bytes')
    fs.utimesSync(path.join(copy, 'a'), 1_234_567_890, 1_234_567_890)
    t.not(Buffer.compare(diffOf(t, copy).bytes, d.bytes), 0, 'a recorded mtime is in the bytes')
  })

  t.test('names that are not UTF-8 go out as their bytes, for GNU tar to extract as they were', async t => {
    const bytes = bytePath
    const long = LONG_BYTE_NAME
    const b = tmpdir(t, 'branch')
    makeByteNames(b)
    fs.linkSync(bytes(`${b}/lat\xe9`), bytes(`${b}/hard\xe9`))
    fs.writeFileSync(bytes(`${b}/.wh.gone\xe9`), '')
    const d = diffOf(t, b)
    const out = tmpdir(t, 'extracted')
    const x = spawnSync('tar', ['-C', out, '-xf', d.file])
    t.equal(x.status, 0, String(x.stderr))
    t.same(fs.readdirSync(out, { encoding: 'buffer' }).map(n => n.toString('latin1')).sort(),
      ['.wh.gone\xe9', 'd\xff', 'hard\xe9', 'lat\xe9', 'ln', long].sort(), 'the names\' bytes')
    t.equal(fs.readFileSync(bytes(`${out}/d\xff/f\x80`), 'utf8'), 'deep', 'below a directory so named')
    t.equal(fs.readFileSync(bytes(`${out}/${long}`), 'utf8'), 'long', 'a long name')
    t.equal(fs.statSync(bytes(`${out}/hard\xe9`)).ino, fs.statSync(bytes(`${out}/lat\xe9`)).ino, 'a hard link to such a name')
    t.equal(fs.readlinkSync(bytes(`${out}/ln`), { encoding: 'buffer' }).toString('latin1'), 't\xe9', 'a link target')

    const listing = path.join(tmpdir(t, 'out'), 'changes')
    const c = cli(['layer', 'changes', b], { stdoutFile: listing })
    t.equal(c.status, 0, c.stderr)
    t.same(fs.readFileSync(listing).toString('latin1').split('\n').filter(l => l !== ''),
      [`A /${long}`, 'A /d\xff', 'A /d\xff/f\x80', 'D /gone\xe9', 'A /hard\xe9', 'A /lat\xe9', 'A /ln'],
      '`layer changes` writes such names as their bytes, sorted by them')
  })

  t.test('a renamed directory needs the lowers', async t => {
    const lower = makeTree(tmpdir(t, 'lower'), { src: { f: 'from below' } })
    const upper = tmpdir(t, 'upper')
    const m = withUnion(t, { branches: [upper, lower] })
    fs.renameSync(path.join(m.mnt, 'src'), path.join(m.mnt, 'dst'))
    m.unmount()
    const r = cli(['layer', 'diff', upper], { stdoutFile: path.join(tmpdir(t, 'o'), 'x.tar') })
    t.equal(r.status, 1)
    t.match(r.stderr, /renamed directory.*--lower/)
    const d = diffOf(t, upper, ['--lower', lower])
    const names = (await listTar(d.bytes)).map(e => e.name)
    t.same(names, ['.wh.src', 'dst/', 'dst/.wh..wh..opq', 'dst/f'])
  })

  for (const dialect of ['aufs', 'overlay'] as const) {
    t.test(`round trip through a mount, ${dialect} dialect`, async t => {
      const bottom = makeTree(tmpdir(t, 'bottom'), {
        etc: { passwd: 'root:x:0:0\n', motd: 'welcome\n', 'old.conf': 'old' },
        usr: { bin: { tool: file('#!/bin/sh\n', { mode: 0o755 }) }, share: { doc: { readme: 'r' } } },
        var: { log: { a: 'a', b: 'b' } },
        data: { big: Buffer.alloc(300_000, 7) },
        tmp: dir({}, { mode: 0o1777 }),
        merged: { low: 'low' }
      })
      const top = makeTree(tmpdir(t, 'top'), {
        etc: { hostname: 'box\n', '.wh.old.conf': '' },
        merged: { high: 'high' },
        opt: { app: { conf: 'c' } }
      })
      const upper = tmpdir(t, 'upper')
      const opts = dialect === 'overlay' ? ['whiteout=overlay'] : []
      const m = withUnion(t, { branches: [upper, top, bottom], options: opts })
      const at = (p: string): string => path.join(m.mnt, p)
      fs.writeFileSync(at('new-file'), 'new\n')
      fs.appendFileSync(at('etc/motd'), 'changed\n')
      fs.unlinkSync(at('etc/passwd'))
      fs.rmSync(at('var/log'), { recursive: true })
      fs.mkdirSync(at('var/log'))
      fs.writeFileSync(at('var/log/fresh'), 'fresh')
      fs.chmodSync(at('usr/bin/tool'), 0o700)
      fs.symlinkSync('../etc/motd', at('usr/motd-link'))
      fs.linkSync(at('new-file'), at('new-link'))
      fs.renameSync(at('merged'), at('moved'))
      fs.renameSync(at('usr/share/doc/readme'), at('usr/share/doc/README'))
      fs.rmSync(at('opt'), { recursive: true })
      spawnSync('mkfifo', [at('tmp/pipe')])
      fs.writeFileSync(at('data/big'), Buffer.alloc(1000, 9), { flag: 'r+' })
      const native = require('../dist/lib/native.js') as { lsetxattr: (p: string, n: string, v: Buffer, f: number) => void }
      native.lsetxattr(at('etc/hostname'), 'user.tag', Buffer.from('v1'), 0)
      const opts2 = { times: true, xattrs: 'user' as const }
      const before = snapshotTree(m.mnt, opts2)
      m.unmount()

      const d = diffOf(t, upper, ['--lower', `${top}:${bottom}`])
      const copy = path.join(tmpdir(t, 'copy'), 'top')
      t.equal(spawnSync('cp', ['-a', top, copy]).status, 0)
      const r = cli(['layer', 'apply', '--whiteout', dialect, d.file, copy])
      t.equal(r.status, 0, r.stderr)
      const m2 = withUnion(t, { branches: [`${copy}=ro`, bottom] })
      const after = snapshotTree(m2.mnt, opts2)
      delete before['.']
      delete after['.']
      t.same(after, before, 'the merged views agree')
      t.ok(Object.keys(before).includes('moved/low'), 'the renamed merged directory is whole')
      t.notOk(Object.keys(after).includes('etc/passwd'))
      t.notOk(Object.keys(after).includes('var/log/a'))
    })
  }
}
