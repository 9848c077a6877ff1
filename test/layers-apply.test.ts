/**
 * `unionfs-ts layer apply`, run through the command line against archives
 * the test builds (tar-stream, and GNU tar where a second producer is the
 * point):
 *  - every entry kind lands with its mode, owner, mtime and xattrs (binary
 *    values exact, PAX `SCHILY.xattr.*`), device nodes as root;
 *  - the OCI changeset rules: `.wh.NAME` removes NAME and leaves a whiteout
 *    in the chosen dialect; `.wh..wh..opq` makes its directory opaque
 *    wherever it comes in the tarball, and what the directory held before
 *    goes; a whiteout does not remove an entry of its own tarball; a new
 *    entry over a whiteout clears it (a directory then is opaque);
 *  - gzip and zstd are recognised by content, stdin works;
 *  - hostile archives (absolute names, `..`, a symlinked parent, hard links
 *    to outside, whiteouts and opaque markers through a symlink) are refused
 *    with one clear line, and a sentinel tree outside DIR stays the same byte
 *    for byte, times and xattrs included.
 */
import t from 'tap'
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as zlib from 'node:zlib'
import { spawnSync } from 'node:child_process'
import { cliBuilt, tmpdir } from './helpers/mount'
import { bytePath, cli, describeTree, LONG_BYTE_NAME, makeByteNames, makeTar, type Entry } from './fixtures/layers-archive'

const isRoot = process.getuid?.() === 0
if (!cliBuilt()) {
  t.fail('dist/ is not built (run tsc -p tsconfig.json, as npm test does)')
} else {
  tests()
}

function write (t: tap.Test, buf: Buffer, name = 'layer.tar'): string {
  const f = path.join(tmpdir(t, 'tar'), name)
  fs.writeFileSync(f, buf)
  return f
}

async function applyEntries (t: tap.Test, entries: Entry[], dir: string, extra: string[] = []): Promise<ReturnType<typeof cli>> {
  const f = write(t, await makeTar(entries))
  return cli(['layer', 'apply', ...extra, f, dir])
}

function lstat (p: string): fs.Stats | undefined {
  try { return fs.lstatSync(p) } catch { return undefined }
}

function xattr (p: string, name: string): Buffer | undefined {
  const native = require('../dist/lib/native.js') as { lgetxattr: (p: string, n: string) => Buffer }
  try { return native.lgetxattr(p, name) } catch { return undefined }
}

function tests (): void {
  t.test('every entry kind, with its metadata', async t => {
    const dir = tmpdir(t, 'dst')
    const r = await applyEntries(t, [
      { name: 'etc/', type: 'directory', mode: 0o750, uid: 7, gid: 8, mtime: 1_500_000_000 },
      { name: 'etc/motd', data: 'hello\n', mode: 0o640, uid: 1234, gid: 4321, mtime: 1_400_000_000, pax: { 'SCHILY.xattr.user.note': 'kept' } },
      { name: 'etc/none', data: 'zero mode', mode: 0 },
      { name: 'etc/suid', data: '#!/bin/sh\n', mode: 0o4755, uid: 0, gid: 0 },
      { name: 'etc/hard', type: 'link', linkname: 'etc/motd' },
      { name: 'bin/sh', type: 'symlink', linkname: '/bin/busybox', mtime: 1_300_000_000 },
      { name: 'run/fifo', type: 'fifo', mode: 0o600 },
      { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
      { name: 'dev/loop0', type: 'block-device', devmajor: 7, devminor: 0, mode: 0o660 },
      { name: 'sub/deep/file', data: 'implicit parents' },
      { name: 'long/' + 'n'.repeat(120) + '/' + 'x'.repeat(200), data: 'a long name' }
    ], dir)
    t.equal(r.status, 0, r.stderr)
    t.equal(r.stdout, '')
    const motd = fs.lstatSync(path.join(dir, 'etc/motd'))
    t.equal(fs.readFileSync(path.join(dir, 'etc/motd'), 'utf8'), 'hello\n')
    t.equal(motd.mode & 0o7777, 0o640)
    t.equal(motd.mtimeMs, 1_400_000_000_000)
    t.equal(motd.nlink, 2, 'the hard link shares the inode')
    t.equal(fs.lstatSync(path.join(dir, 'etc/hard')).ino, motd.ino)
    t.equal(xattr(path.join(dir, 'etc/motd'), 'user.note')?.toString(), 'kept')
    t.equal(fs.lstatSync(path.join(dir, 'etc/none')).mode & 0o7777, 0, 'mode 0 stays 0')
    const etc = fs.lstatSync(path.join(dir, 'etc'))
    t.equal(etc.mode & 0o7777, 0o750)
    t.equal(etc.mtimeMs, 1_500_000_000_000, 'directory times are set after their content')
    t.equal(fs.readlinkSync(path.join(dir, 'bin/sh')), '/bin/busybox')
    t.equal(fs.lstatSync(path.join(dir, 'bin/sh')).mtimeMs, 1_300_000_000_000)
    t.ok(fs.lstatSync(path.join(dir, 'run/fifo')).isFIFO())
    t.equal(fs.readFileSync(path.join(dir, 'long/' + 'n'.repeat(120) + '/' + 'x'.repeat(200)), 'utf8'), 'a long name')
    t.equal(fs.readFileSync(path.join(dir, 'sub/deep/file'), 'utf8'), 'implicit parents')
    if (isRoot) {
      t.equal(motd.uid, 1234)
      t.equal(motd.gid, 4321)
      t.equal(etc.uid, 7)
      t.equal(fs.lstatSync(path.join(dir, 'etc/suid')).mode & 0o7777, 0o4755, 'setuid survives the chown')
      const nul = fs.lstatSync(path.join(dir, 'dev/null'))
      t.ok(nul.isCharacterDevice())
      t.equal(nul.rdev, (1 << 8) | 3)
      t.ok(fs.lstatSync(path.join(dir, 'dev/loop0')).isBlockDevice())
    }
  })

  t.test('binary xattrs from GNU tar come through exactly', async t => {
    const native = require('../dist/lib/native.js') as { lsetxattr: (p: string, n: string, v: Buffer, f: number) => void }
    const src = tmpdir(t, 'src')
    fs.writeFileSync(path.join(src, 'ping'), 'binary')
    const cap = Buffer.from('0100000200200000ff0000000000000000000000', 'hex')
    native.lsetxattr(path.join(src, 'ping'), 'security.capability', cap, 0)
    native.lsetxattr(path.join(src, 'ping'), 'user.bin', Buffer.from([0xff, 0x00, 0xfe]), 0)
    const f = path.join(tmpdir(t, 'tar'), 'gnu.tar')
    const g = spawnSync('tar', ['--xattrs', '--xattrs-include=*', '-C', src, '-cf', f, '.'])
    t.equal(g.status, 0, String(g.stderr))
    const dir = tmpdir(t, 'dst')
    const r = cli(['layer', 'apply', f, dir])
    t.equal(r.status, 0, r.stderr)
    t.same(xattr(path.join(dir, 'ping'), 'security.capability'), cap)
    t.same(xattr(path.join(dir, 'ping'), 'user.bin'), Buffer.from([0xff, 0x00, 0xfe]))
  })

  t.test('names that are not UTF-8 come through as their bytes, from GNU tar in gnu and pax format', async t => {
    const bytes = bytePath
    const long = LONG_BYTE_NAME
    const src = tmpdir(t, 'src')
    makeByteNames(src)
    fs.symlinkSync(bytes('T'.repeat(110) + '\xe9'), bytes(`${src}/long-ln`))
    for (const format of ['gnu', 'pax']) {
      // gnu: the bytes in the ustar fields and in GNU long names; pax: in
      // PAX path records, as Go's archive/tar (Docker) writes them too.
      const f = path.join(tmpdir(t, 'tar'), `${format}.tar`)
      const g = spawnSync('tar', [`--format=${format}`, '-C', src, '-cf', f, '.'])
      t.equal(g.status, 0, String(g.stderr))
      const dir = tmpdir(t, 'dst')
      const r = cli(['layer', 'apply', f, dir])
      t.equal(r.status, 0, r.stderr)
      t.same(fs.readdirSync(dir, { encoding: 'buffer' }).map(n => n.toString('latin1')).sort(),
        ['d\xff', 'lat\xe9', 'ln', 'long-ln', long].sort(), `${format}: the names' bytes`)
      t.equal(fs.readFileSync(bytes(`${dir}/lat\xe9`), 'utf8'), 'latin', `${format}: a short name`)
      t.equal(fs.readFileSync(bytes(`${dir}/d\xff/f\x80`), 'utf8'), 'deep', `${format}: below a directory so named`)
      t.equal(fs.readFileSync(bytes(`${dir}/${long}`), 'utf8'), 'long', `${format}: a long name`)
      t.equal(fs.readlinkSync(bytes(`${dir}/ln`), { encoding: 'buffer' }).toString('latin1'), 't\xe9', `${format}: a link target`)
      t.equal(fs.readlinkSync(bytes(`${dir}/long-ln`), { encoding: 'buffer' }).toString('latin1'), 'T'.repeat(110) + '\xe9', `${format}: a long link target`)
    }
  })

  for (const dialect of ['aufs', 'overlay'] as const) {
    t.test(`whiteouts, ${dialect} dialect`, async t => {
      const dir = tmpdir(t, 'dst')
      fs.writeFileSync(path.join(dir, 'gone'), 'old')
      fs.mkdirSync(path.join(dir, 'olddir/sub'), { recursive: true })
      fs.writeFileSync(path.join(dir, 'olddir/sub/f'), 'old')
      const r = await applyEntries(t, [
        { name: '.wh.gone' },
        { name: '.wh.olddir' },
        { name: 'd/.wh.never' }
      ], dir, ['--whiteout', dialect])
      t.equal(r.status, 0, r.stderr)
      t.notOk(lstat(path.join(dir, 'olddir/sub')), 'the old tree went')
      for (const [d, n] of [['', 'gone'], ['', 'olddir'], ['d', 'never']]) {
        const p = path.join(dir, d, n)
        if (dialect === 'aufs' || !isRoot) {
          t.ok(lstat(path.join(dir, d, `.wh.${n}`))?.isFile(), `.wh.${n}`)
          t.notOk(lstat(p), `${n} itself is gone`)
        } else {
          const st = lstat(p)
          t.ok(st?.isCharacterDevice() === true && st.rdev === 0, `${n} is a 0/0 char device`)
          t.notOk(lstat(path.join(dir, d, `.wh.${n}`)))
        }
      }
    })

    t.test(`opaque directories wherever the marker comes, ${dialect} dialect`, async t => {
      const dir = tmpdir(t, 'dst')
      fs.mkdirSync(path.join(dir, 'o/sub'), { recursive: true })
      fs.writeFileSync(path.join(dir, 'o/old'), 'below')
      fs.writeFileSync(path.join(dir, 'o/sub/x'), 'below')
      fs.mkdirSync(path.join(dir, 'o/kept'))
      fs.writeFileSync(path.join(dir, 'o/kept/old'), 'below')
      fs.writeFileSync(path.join(dir, 'keep'), 'untouched')
      const r = await applyEntries(t, [
        { name: 'o/new', data: 'before the marker' },
        { name: 'o/sub/', type: 'directory' },
        { name: 'o/.wh..wh..opq' },
        { name: 'o/sub/y', data: 'after the marker' },
        { name: 'o/kept/z', data: 'into an old directory, with no entry of its own' },
        { name: 'fresh/.wh..wh..opq' }
      ], dir, ['--whiteout', dialect])
      t.equal(r.status, 0, r.stderr)
      t.same(fs.readdirSync(path.join(dir, 'o')).filter(n => n !== '.wh..wh..opq').sort(), ['kept', 'new', 'sub'])
      t.same(fs.readdirSync(path.join(dir, 'o/kept')), ['z'])
      t.same(fs.readdirSync(path.join(dir, 'o/sub')), ['y'], 'old content of a kept subdirectory went too')
      t.equal(fs.readFileSync(path.join(dir, 'keep'), 'utf8'), 'untouched')
      for (const d of ['o', 'fresh']) {
        if (dialect === 'aufs') {
          t.ok(lstat(path.join(dir, d, '.wh..wh..opq'))?.isFile(), `${d} has the marker file`)
        } else {
          t.equal(xattr(path.join(dir, d), `${isRoot ? 'trusted' : 'user'}.overlay.opaque`)?.toString(), 'y', `${d} has the opaque xattr`)
          t.notOk(lstat(path.join(dir, d, '.wh..wh..opq')))
        }
      }
    })
  }

  t.test('a whiteout leaves entries of its own tarball alone', async t => {
    const dir = tmpdir(t, 'dst')
    const r = await applyEntries(t, [
      { name: 'x', data: 'same layer' },
      { name: '.wh.x' },
      { name: 'd/', type: 'directory' },
      { name: 'd/f', data: 'f' },
      { name: '.wh.d' }
    ], dir)
    t.equal(r.status, 0, r.stderr)
    t.equal(fs.readFileSync(path.join(dir, 'x'), 'utf8'), 'same layer')
    t.equal(fs.readFileSync(path.join(dir, 'd/f'), 'utf8'), 'f')
    t.ok(lstat(path.join(dir, 'd/.wh..wh..opq')), 'the directory hides what is below instead')
  })

  t.test('private names are skipped: the work dir, AUFS state, anything below .wh.', async t => {
    const dir = tmpdir(t, 'dst')
    const r = await applyEntries(t, [
      { name: '.wh..wh.unionfs-ts/tmp.1.1', data: 'planted in the work dir' },
      { name: '.wh..wh.plnk/x', data: 'AUFS state' },
      { name: '.wh..wh.orph', data: '' },
      { name: 'ok', data: 'content' }
    ], dir)
    t.equal(r.status, 0, r.stderr)
    t.same(fs.readdirSync(dir), ['ok'])
  })

  t.test('a new entry over a whiteout clears it; a directory is then opaque', async t => {
    const dir = tmpdir(t, 'dst')
    fs.writeFileSync(path.join(dir, '.wh.a'), '')
    fs.writeFileSync(path.join(dir, '.wh.b'), '')
    const r = await applyEntries(t, [
      { name: 'a/f', data: 'new' },
      { name: 'b', data: 'file' }
    ], dir)
    t.equal(r.status, 0, r.stderr)
    t.notOk(lstat(path.join(dir, '.wh.a')))
    t.notOk(lstat(path.join(dir, '.wh.b')))
    t.ok(lstat(path.join(dir, 'a/.wh..wh..opq')), 'a is opaque')
    t.equal(fs.readFileSync(path.join(dir, 'b'), 'utf8'), 'file')
  })

  t.test('an entry replaces what is there; a directory over a directory keeps its content', async t => {
    const dir = tmpdir(t, 'dst')
    fs.mkdirSync(path.join(dir, 'was-dir/inner'), { recursive: true })
    fs.writeFileSync(path.join(dir, 'was-file'), 'old')
    fs.mkdirSync(path.join(dir, 'stays'))
    fs.writeFileSync(path.join(dir, 'stays/old'), 'old')
    const r = await applyEntries(t, [
      { name: 'was-dir', data: 'now a file' },
      { name: 'was-file/', type: 'directory' },
      { name: 'stays/', type: 'directory', mode: 0o700 }
    ], dir)
    t.equal(r.status, 0, r.stderr)
    t.equal(fs.readFileSync(path.join(dir, 'was-dir'), 'utf8'), 'now a file')
    t.ok(fs.lstatSync(path.join(dir, 'was-file')).isDirectory())
    t.equal(fs.readFileSync(path.join(dir, 'stays/old'), 'utf8'), 'old')
    t.equal(fs.lstatSync(path.join(dir, 'stays')).mode & 0o7777, 0o700)
  })

  t.test('gzip, zstd and stdin', async t => {
    const raw = await makeTar([{ name: 'a/b', data: 'compressed' }, { name: '.wh.c' }])
    const want = (dir: string): void => {
      t.equal(fs.readFileSync(path.join(dir, 'a/b'), 'utf8'), 'compressed')
      t.ok(lstat(path.join(dir, '.wh.c')))
    }
    const gz = write(t, zlib.gzipSync(raw), 'layer.tar.gz')
    const d1 = tmpdir(t, 'gz')
    t.equal(cli(['layer', 'apply', gz, d1]).status, 0)
    want(d1)
    const d2 = tmpdir(t, 'stdin')
    const r = cli(['layer', 'apply', '-', d2], { stdin: gz })
    t.equal(r.status, 0, r.stderr)
    want(d2)
    const plain = write(t, raw, 'plain.tar')
    const zst = `${plain}.zst`
    const z = spawnSync('zstd', ['-q', '-o', zst, plain])
    t.equal(z.error, undefined, 'zstd(1) is installed')
    {
      const d3 = tmpdir(t, 'zst')
      const r3 = cli(['layer', 'apply', zst, d3])
      t.equal(r3.status, 0, r3.stderr)
      want(d3)
    }
  })

  t.test('bad input: one line, exit 1', async t => {
    const dir = tmpdir(t, 'dst')
    const junk = write(t, Buffer.from('this is not a tar file at all'.repeat(40)), 'junk.tar')
    for (const args of [
      ['layer', 'apply', junk, dir],
      ['layer', 'apply', path.join(dir, 'missing.tar'), dir],
      ['layer', 'apply', junk, path.join(dir, 'no-such-dir')],
      ['layer', 'apply', junk],
      ['layer', 'apply', '--whiteout', 'nope', junk, dir]
    ]) {
      const r = cli(args)
      t.equal(r.status, 1, args.join(' '))
      t.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr.trim()}`)
      t.equal(r.stdout, '')
    }
  })

  t.test('hostile archives: refused, nothing outside DIR touched', async t => {
    const base = tmpdir(t, 'hostile')
    const sentinel = path.join(base, 'sentinel')
    fs.mkdirSync(path.join(sentinel, 'sub'), { recursive: true })
    fs.writeFileSync(path.join(sentinel, 'secret'), 'do not touch')
    fs.writeFileSync(path.join(sentinel, 'sub/inner'), 'nor this')
    fs.symlinkSync('secret', path.join(sentinel, 'alias'))
    const native = require('../dist/lib/native.js') as { lsetxattr: (p: string, n: string, v: Buffer, f: number) => void }
    native.lsetxattr(path.join(sentinel, 'secret'), 'user.mark', Buffer.from('x'), 0)
    fs.utimesSync(path.join(sentinel, 'secret'), 1_000_000_000, 1_000_000_000)
    for (const d of ['sub', '']) fs.utimesSync(path.join(sentinel, d), 1_000_000_000, 1_000_000_000)
    const before = describeTree(base, { xattrs: true })

    const cases: Array<{ name: string, entries: Entry[], refused: RegExp | false }> = [
      { name: 'absolute name', entries: [{ name: `${sentinel}/pwn`, data: 'x' }], refused: /absolute/ },
      { name: 'absolute directory', entries: [{ name: `${sentinel}/newdir/`, type: 'directory' }], refused: /absolute/ },
      { name: '.. name', entries: [{ name: '../sentinel/pwn', data: 'x' }], refused: /'\.\.'/ },
      { name: '.. in the middle', entries: [{ name: 'a/../../sentinel/secret', data: 'x' }], refused: /'\.\.'/ },
      { name: 'symlinked parent', entries: [{ name: 'evil', type: 'symlink', linkname: sentinel }, { name: 'evil/pwn', data: 'x' }], refused: /symbolic link/ },
      { name: 'symlinked parent, relative', entries: [{ name: 'evil', type: 'symlink', linkname: '../sentinel' }, { name: 'evil/secret', data: 'x' }], refused: /symbolic link/ },
      { name: 'symlinked grandparent', entries: [{ name: 'evil', type: 'symlink', linkname: sentinel }, { name: 'evil/sub/inner', data: 'x' }], refused: /symbolic link/ },
      { name: 'directory through a symlink', entries: [{ name: 'evil', type: 'symlink', linkname: sentinel }, { name: 'evil/newdir/', type: 'directory' }], refused: /symbolic link/ },
      { name: 'whiteout through a symlink', entries: [{ name: 'evil', type: 'symlink', linkname: sentinel }, { name: 'evil/.wh.secret' }], refused: /symbolic link/ },
      { name: 'opaque marker through a symlink', entries: [{ name: 'evil', type: 'symlink', linkname: sentinel }, { name: 'evil/.wh..wh..opq' }], refused: /symbolic link/ },
      { name: 'hard link with ..', entries: [{ name: 'hl', type: 'link', linkname: '../sentinel/secret' }], refused: /'\.\.'/ },
      { name: 'hard link, absolute', entries: [{ name: 'hl', type: 'link', linkname: `${sentinel}/secret` }], refused: /absolute/ },
      { name: 'hard link through a symlink', entries: [{ name: 'evil', type: 'symlink', linkname: sentinel }, { name: 'hl', type: 'link', linkname: 'evil/secret' }], refused: /symbolic link/ },
      { name: 'hard link to a missing target', entries: [{ name: 'hl', type: 'link', linkname: 'nowhere' }], refused: /not in this directory/ },
      { name: 'file over a symlink to outside', entries: [{ name: 'evil', type: 'symlink', linkname: `${sentinel}/secret` }, { name: 'evil', data: 'replaced, not written through' }], refused: false },
      { name: 'hard link to a symlink, then a file over it', entries: [{ name: 'evil', type: 'symlink', linkname: `${sentinel}/secret` }, { name: 'hl', type: 'link', linkname: 'evil' }, { name: 'hl', data: 'replaced' }], refused: false },
      { name: 'directory over a symlink to outside', entries: [{ name: 'evil', type: 'symlink', linkname: sentinel }, { name: 'evil/', type: 'directory', mode: 0o777 }], refused: false }
    ]
    for (const c of cases) {
      const dir = path.join(base, `dst-${cases.indexOf(c)}`)
      fs.mkdirSync(dir)
      const r = await applyEntries(t, c.entries, dir)
      if (c.refused === false) {
        t.equal(r.status, 0, `${c.name}: applied (${r.stderr.trim()})`)
        const st = fs.lstatSync(path.join(dir, c.entries[c.entries.length - 1].name))
        t.notOk(st.isSymbolicLink(), `${c.name}: the symlink was replaced`)
      } else {
        t.equal(r.status, 1, `${c.name}: refused`)
        t.equal(r.stderr.trim().split('\n').length, 1, `${c.name}: one line`)
        t.match(r.stderr, c.refused, `${c.name}: says why (${r.stderr.trim()})`)
      }
      t.same(describeTree(base, { xattrs: true }).filter(l => !l.startsWith('dst-') && !l.startsWith('. ')), before.filter(l => !l.startsWith('. ')), `${c.name}: the sentinel is untouched`)
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
}
