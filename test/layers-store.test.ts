/**
 * `unionfs-ts store`, through the command line:
 *  - the AUFS driver's layout: ROOT/diff/<id>/, ROOT/layers/<id> with the
 *    parent chain nearest first, ROOT/mnt/<id>/;
 *  - apply, mount (default and given mountpoint), writes landing in the
 *    layer's own diff dir with its parents untouched, changes (A/C/D), diff,
 *    umount, size, exists, ls;
 *  - a layer mounted, or the parent of another, is not removed, not applied
 *    to, and a parent is not mounted writable;
 *  - removal leaves nothing, and what an interrupted removal or a dead
 *    import left is swept the next time the store is opened;
 *  - bad input: exit 1, one line.
 */
import t from 'tap'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { cliBuilt, isMounted, tmpdir } from './helpers/mount'
import { snapshotTree } from './helpers/tree'
import { cli, listTar, makeTar } from './fixtures/layers-archive'

const canMount = process.getuid?.() === 0 && fs.existsSync('/dev/fuse')
// These tests mount for real: a machine where that cannot happen fails here, it does not skip.
t.test('runs as root with /dev/fuse', async t => { t.ok(canMount, 'root and /dev/fuse') })

if (!cliBuilt()) {
  t.fail('dist/ is not built (run tsc -p tsconfig.json, as npm test does)')
} else {
  tests()
}

function ok (t: tap.Test, args: string[], opts: Parameters<typeof cli>[1] = {}): string {
  const r = cli(args, opts)
  t.equal(r.status, 0, `${args.join(' ')}: ${r.stderr.trim()}`)
  return r.stdout
}

function fails (t: tap.Test, args: string[], re: RegExp): void {
  const r = cli(args)
  t.equal(r.status, 1, `${args.join(' ')} fails`)
  t.equal(r.stderr.trim().split('\n').length, 1, 'one line')
  t.match(r.stderr, re, r.stderr.trim())
}

/** Unmount whatever a store mounted under `root`, even when a test failed. */
function guard (t: tap.Test, root: string): void {
  t.teardown(() => {
    const text = fs.readFileSync('/proc/mounts', 'utf8')
    for (const line of text.split('\n')) {
      const mp = line.split(' ')[1]
      if (mp !== undefined && (mp.startsWith(root + '/') || line.split(' ')[0].startsWith(root + '/'))) {
        cli(['umount', mp])
        if (isMounted(mp)) cli(['umount', mp])
      }
    }
  })
}

function tests (): void {
  t.test('layout, chain, exists, size, ls', async t => {
    const root = path.join(tmpdir(t, 'store'), 'root')
    ok(t, ['store', '-s', root, 'create', 'base'])
    ok(t, ['store', '-s', root, 'create', 'mid', '--parent', 'base'])
    ok(t, ['store', '-s', root, 'create', 'top', '-p', 'mid'])
    for (const id of ['base', 'mid', 'top']) {
      t.ok(fs.statSync(path.join(root, 'diff', id)).isDirectory(), `diff/${id}`)
      t.ok(fs.statSync(path.join(root, 'mnt', id)).isDirectory(), `mnt/${id}`)
    }
    t.equal(fs.readFileSync(path.join(root, 'layers', 'base'), 'utf8'), '')
    t.equal(fs.readFileSync(path.join(root, 'layers', 'mid'), 'utf8'), 'base\n')
    t.equal(fs.readFileSync(path.join(root, 'layers', 'top'), 'utf8'), 'mid\nbase\n')
    const layer = path.join(tmpdir(t, 'tar'), 'l.tar')
    fs.writeFileSync(layer, await makeTar([{ name: 'etc/motd', data: '12345' }, { name: 'etc/other', data: 'abc' }]))
    ok(t, ['store', '-s', root, 'apply', 'base'], { stdin: layer })
    t.equal(fs.readFileSync(path.join(root, 'diff/base/etc/motd'), 'utf8'), '12345')
    t.equal(ok(t, ['store', '-s', root, 'size', 'base']), '8\n')
    t.equal(cli(['store', '-s', root, 'exists', 'base']).status, 0)
    t.equal(cli(['store', '-s', root, 'exists', 'nope']).status, 1)
    const ls = ok(t, ['store', '-s', root, 'ls']).trim().split('\n')
    t.match(ls[0], /^LAYER\s+PARENT\s+MOUNTED$/)
    t.match(ls.slice(1).join('\n'), /base\s+-\s+-\nmid\s+base\s+-\ntop\s+mid\s+-/)

    fails(t, ['store', '-s', root, 'create', 'base'], /already exists/)
    fails(t, ['store', '-s', root, 'create', 'x', '--parent', 'nope'], /no such layer: nope/)
    fails(t, ['store', '-s', root, 'create', '../evil'], /layer id/)
    fails(t, ['store', '-s', root, 'create', 'x-removing'], /layer id/)
    fails(t, ['store', '-s', root, 'rm', 'nope'], /no such layer/)
    fails(t, ['store', '-s', root, 'rm', 'mid'], /in use: it is the parent of top/)
    fails(t, ['store', '-s', root, 'frobnicate'], /unknown subcommand/)
    fails(t, ['store', '-s', root, 'create'], /missing argument/)
    fails(t, ['store', '-s', root, 'create', 'a', '--bogus'], /bogus/)
    fails(t, ['store', '-s', path.join(root, 'nowhere'), 'ls'], /not a layer store/)
  })

  t.test('mount, write, changes, diff, umount, rm', async t => {
    const root = path.join(tmpdir(t, 'store'), 'root')
    guard(t, root)
    const layer = path.join(tmpdir(t, 'tar'), 'l.tar')
    fs.writeFileSync(layer, await makeTar([
      { name: 'etc/motd', data: 'hello' },
      { name: 'etc/passwd', data: 'root' },
      { name: 'usr/lib/x', data: 'x' },
      { name: 'var/', type: 'directory' }
    ]))
    ok(t, ['store', '-s', root, 'create', 'base'])
    ok(t, ['store', '-s', root, 'apply', 'base', layer])
    ok(t, ['store', '-s', root, 'create', 'c1', '--parent', 'base'])
    const baseBefore = snapshotTree(path.join(root, 'diff/base'), { times: true })

    fails(t, ['store', '-s', root, 'mount', 'base'], /parent of c1.*--ro/)
    ok(t, ['store', '-s', root, 'mount', 'c1'])
    const mnt = path.join(root, 'mnt/c1')
    t.ok(isMounted(mnt), 'mounted on ROOT/mnt/ID')
    t.equal(fs.readFileSync(path.join(mnt, 'etc/motd'), 'utf8'), 'hello')
    fs.writeFileSync(path.join(mnt, 'etc/motd'), 'changed')
    fs.unlinkSync(path.join(mnt, 'etc/passwd'))
    fs.mkdirSync(path.join(mnt, 'var/new'))
    fs.writeFileSync(path.join(mnt, 'var/new/f'), 'f')
    t.match(ok(t, ['store', '-s', root, 'ls']), new RegExp(`c1\\s+base\\s+${mnt}`))
    fails(t, ['store', '-s', root, 'rm', 'c1'], /in use: mounted at/)
    fails(t, ['store', '-s', root, 'apply', 'c1', layer], /in use: mounted at/)
    fails(t, ['store', '-s', root, 'mount', 'c1'], /already mounted/)

    t.equal(ok(t, ['store', '-s', root, 'changes', 'c1']), [
      'C /etc', 'C /etc/motd', 'D /etc/passwd', 'C /var', 'A /var/new', 'A /var/new/f'
    ].join('\n') + '\n')
    ok(t, ['store', '-s', root, 'umount', 'c1'])
    t.notOk(isMounted(mnt))
    fails(t, ['store', '-s', root, 'umount', 'c1'], /not mounted/)

    t.equal(fs.readFileSync(path.join(root, 'diff/c1/etc/motd'), 'utf8'), 'changed', 'the write landed in the layer')
    t.ok(fs.existsSync(path.join(root, 'diff/c1/etc/.wh.passwd')), 'an AUFS whiteout')
    t.same(snapshotTree(path.join(root, 'diff/base'), { times: true }), baseBefore, 'the parent is untouched')

    const out = path.join(tmpdir(t, 'out'), 'c1.tar')
    ok(t, ['store', '-s', root, 'diff', 'c1'], { stdoutFile: out })
    t.same((await listTar(fs.readFileSync(out))).map(e => e.name),
      ['etc/', 'etc/.wh.passwd', 'etc/motd', 'var/', 'var/new/', 'var/new/f'])
    const out2 = path.join(tmpdir(t, 'out'), 'c1-o.tar')
    ok(t, ['store', '-s', root, 'diff', '-o', out2, 'c1'])
    t.same(fs.readFileSync(out2), fs.readFileSync(out), '-o FILE writes the same bytes')

    const other = tmpdir(t, 'mnt')
    ok(t, ['store', '-s', root, 'mount', '--ro', 'base', other])
    t.ok(isMounted(other), 'a parent mounts read-only on a given mountpoint')
    t.throws(() => fs.writeFileSync(path.join(other, 'x'), 'x'), { code: 'EROFS' })
    fails(t, ['store', '-s', root, 'rm', 'base'], /in use/)
    ok(t, ['store', '-s', root, 'umount', 'base'])

    ok(t, ['store', '-s', root, 'rm', 'c1'])
    ok(t, ['store', '-s', root, 'rm', 'base'])
    for (const kind of ['diff', 'layers', 'mnt']) t.same(fs.readdirSync(path.join(root, kind)), [], `${kind}/ is empty`)
  })

  t.test('an interrupted removal and a dead import are swept', async t => {
    const root = path.join(tmpdir(t, 'store'), 'root')
    ok(t, ['store', '-s', root, 'create', 'half'])
    ok(t, ['store', '-s', root, 'create', 'whole'])
    fs.writeFileSync(path.join(root, 'diff/half/f'), 'x')
    // The removal's first step, then a crash.
    fs.renameSync(path.join(root, 'diff/half'), path.join(root, 'diff/half-removing'))
    fs.mkdirSync(path.join(root, 'diff/gone-importing-999999999'))
    fs.mkdirSync(path.join(root, 'import-999999999-abc'))
    fs.writeFileSync(path.join(root, 'layers/x.tmp.999999999'), '')
    t.equal(cli(['store', '-s', root, 'exists', 'half']).status, 1, 'half gone the moment its removal began')
    t.equal(ok(t, ['store', '-s', root, 'ls']).trim().split('\n').slice(1).map(l => l.split(/\s+/)[0]).join(' '), 'whole')
    t.same(fs.readdirSync(path.join(root, 'diff')), ['whole'])
    t.same(fs.readdirSync(path.join(root, 'layers')), ['whole'])
    t.same(fs.readdirSync(path.join(root, 'mnt')), ['whole'])
    t.notOk(fs.existsSync(path.join(root, 'import-999999999-abc')))
  })
}
