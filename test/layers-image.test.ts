/**
 * `unionfs-ts image` and `unionfs-ts container`, through the command line,
 * with `docker save` archives the test builds:
 *  - import of the classic and the OCI-layout (Docker 25+) forms, a gzip
 *    layer among them; store ids are the OCI ChainIDs, the parent chains
 *    follow the images, a layer shared by two images (or imported twice) is
 *    stored once; tags are recorded and `image ls` lists them;
 *  - a digest the archive names and the content does not match (config,
 *    blob, diff_id), or a member name outside the archive, refuses the
 *    import and leaves no layer, image or staging dir behind;
 *  - `container create`: NAME-init with the seeds' placeholders (only where
 *    the image has nothing of that name, parents as the image has them),
 *    NAME on top; `container mount` mounts the chain with NAME writable: the
 *    container's writes land in NAME, the image layers stay the same;
 *  - progress on a terminal (run under script(1)), none when piped.
 */
import t from 'tap'
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as zlib from 'node:zlib'
import { spawnSync } from 'node:child_process'
import { CLI, cliBuilt, isMounted, tmpdir } from './helpers/mount'
import { snapshotTree } from './helpers/tree'
import { cli, dockerSave, makeTar, sha256, type Entry } from './fixtures/layers-archive'

const canMount = process.getuid?.() === 0 && fs.existsSync('/dev/fuse')
// These tests mount for real: a machine where that cannot happen fails here, it does not skip.
t.test('runs as root with /dev/fuse', async t => { t.ok(canMount, 'root and /dev/fuse') })

const BASE: Entry[] = [
  { name: 'bin/', type: 'directory' },
  { name: 'bin/sh', data: '#!fake shell', mode: 0o755 },
  { name: 'etc/', type: 'directory', mode: 0o755, mtime: 1_500_000_000 },
  { name: 'etc/passwd', data: 'root:x:0:0::/root:/bin/sh\n' },
  { name: 'etc/hostname', data: 'from-the-image\n' }
]

if (!cliBuilt()) {
  t.fail('dist/ is not built (run tsc -p tsconfig.json, as npm test does)')
} else {
  tests()
}

function ok (t: tap.Test, args: string[]): string {
  const r = cli(args)
  t.equal(r.status, 0, `${args.join(' ')}: ${r.stderr.trim()}`)
  return r.stdout
}

function chain (diffIds: string[]): string[] {
  const out: string[] = []
  for (const d of diffIds) out.push(out.length === 0 ? d : `sha256:${sha256(`${out[out.length - 1]} ${d}`)}`)
  return out.map(c => c.slice(7))
}

async function archive (t: tap.Test, oci = false): Promise<{ file: string, base: Buffer, app: Buffer, tool: Buffer }> {
  const base = await makeTar(BASE)
  const app = await makeTar([{ name: 'app/run', data: 'app' }, { name: 'etc/.wh.passwd' }])
  const tool = await makeTar([{ name: 'usr/bin/tool', data: 'tool' }])
  const buf = await dockerSave([
    { tags: ['demo/app:1.0', 'demo/app:latest'], layers: [base, app] },
    { tags: ['demo/tool:latest'], layers: [base, tool] }
  ], oci)
  const file = path.join(tmpdir(t, 'saved'), 'saved.tar')
  fs.writeFileSync(file, buf)
  return { file, base, app, tool }
}

function storeEmpty (t: tap.Test, root: string): void {
  for (const kind of ['diff', 'layers']) t.same(fs.readdirSync(path.join(root, kind)), [], `no ${kind}/ left`)
  t.same(fs.readdirSync(root).filter(n => n.startsWith('import-')), [], 'no staging left')
  t.notOk(fs.existsSync(path.join(root, 'images')) && fs.readdirSync(path.join(root, 'images')).length > 0, 'no image recorded')
}

function tests (): void {
  for (const oci of [false, true]) {
    t.test(`import a ${oci ? 'Docker 25+ (OCI layout)' : 'classic'} docker save archive`, async t => {
      const root = path.join(tmpdir(t, 'store'), 'root')
      const a = await archive(t, oci)
      const out = ok(t, ['image', '-s', root, 'import', a.file])
      t.match(out, /3 layers imported, 0 already in the store/, 'the shared base once')
      const ids = (l: Buffer[]): string[] => chain(l.map(b => `sha256:${sha256(b)}`))
      const [baseId, appId] = ids([a.base, a.app])
      const [, toolId] = ids([a.base, a.tool])
      t.same(fs.readdirSync(path.join(root, 'diff')).sort(), [baseId, appId, toolId].sort(), 'store ids are ChainIDs; the base is stored once')
      t.equal(fs.readFileSync(path.join(root, 'layers', appId), 'utf8'), `${baseId}\n`)
      t.equal(fs.readFileSync(path.join(root, 'layers', baseId), 'utf8'), '')
      t.ok(fs.existsSync(path.join(root, 'diff', appId, 'etc/.wh.passwd')), 'whiteouts kept in the layer')
      t.equal(fs.readFileSync(path.join(root, 'diff', baseId, 'bin/sh'), 'utf8'), '#!fake shell')
      const repos = JSON.parse(fs.readFileSync(path.join(root, 'repositories.json'), 'utf8')) as Record<string, string>
      t.same(Object.keys(repos).sort(), ['demo/app:1.0', 'demo/app:latest', 'demo/tool:latest'])
      const ls = ok(t, ['image', '-s', root, 'ls']).trim().split('\n')
      t.match(ls[0], /^REPOSITORY\s+TAG\s+IMAGE ID\s+LAYERS\s+SIZE$/)
      t.equal(ls.length, 4)
      t.match(ls.join('\n'), /demo\/app\s+1\.0\s+[0-9a-f]{12}\s+2\s/)
      t.match(ls.join('\n'), /demo\/tool\s+latest\s+[0-9a-f]{12}\s+2\s/)

      const again = ok(t, ['image', '-s', root, 'import', a.file])
      t.match(again, /0 layers imported, 3 already in the store/, 'a second import shares everything')
      t.equal(fs.readdirSync(path.join(root, 'diff')).length, 3)
    })
  }

  t.test('a gzip layer, from stdin', async t => {
    const root = path.join(tmpdir(t, 'store'), 'root')
    const raw = await makeTar(BASE)
    const gz = zlib.gzipSync(raw)
    const buf = await dockerSave([{ tags: ['gz:latest'], layers: [gz], diffIds: [`sha256:${sha256(raw)}`] }], true)
    const file = path.join(tmpdir(t, 'saved'), 'saved.tar')
    fs.writeFileSync(file, buf)
    const r = cli(['image', '-s', root, 'import'], { stdin: file })
    t.equal(r.status, 0, r.stderr)
    t.equal(r.stderr, '', 'quiet when piped')
    t.ok(fs.existsSync(path.join(root, 'diff', sha256(raw), 'etc/passwd')), 'the layer id is its uncompressed DiffID')
  })

  t.test('digests are checked; a bad archive leaves nothing', async t => {
    const base = await makeTar(BASE)
    const cases: Array<[string, Buffer, RegExp]> = []
    // A layer whose content does not match the config's diff_id.
    cases.push(['diff_id', await dockerSave([{ tags: ['x:1'], layers: [base], diffIds: [`sha256:${'0'.repeat(64)}`] }]), /diff_id/])
    // A config whose name promises another digest (the data changed, not the headers).
    const good = await dockerSave([{ tags: ['x:1'], layers: [base] }])
    const cfgName = /[0-9a-f]{64}\.json/.exec(good.toString('latin1'))?.[0] ?? ''
    const tampered = Buffer.from(good)
    const at = tampered.indexOf('"amd64"')
    tampered.write('"arm64"', at, 'latin1')
    cases.push(['config', tampered, new RegExp(`${cfgName}: sha256`)])
    // A blob whose name promises another digest (OCI layout).
    const oci = await dockerSave([{ tags: ['x:1'], layers: [base] }], true)
    const blob = Buffer.from(oci)
    const pos = blob.indexOf('#!fake shell')
    blob.write('#!evil shell', pos, 'latin1')
    cases.push(['blob', blob, /sha256 is/])
    // A member outside the archive.
    cases.push(['member name', await makeTar([{ name: '../escape', data: 'x' }, { name: 'manifest.json', data: '[]' }]), /outside the archive/])
    cases.push(['no manifest', await makeTar([{ name: 'x', data: 'x' }]), /no manifest\.json/])
    for (const [what, buf, re] of cases) {
      const root = path.join(tmpdir(t, 'store'), 'root')
      const file = path.join(tmpdir(t, 'saved'), 'bad.tar')
      fs.writeFileSync(file, buf)
      const r = cli(['image', '-s', root, 'import', file])
      t.equal(r.status, 1, `${what}: refused`)
      t.equal(r.stderr.trim().split('\n').length, 1, `${what}: one line`)
      t.match(r.stderr, re, `${what}: ${r.stderr.trim()}`)
      storeEmpty(t, root)
    }
  })

  t.test('container create: the init layer, then the container layer', async t => {
    const root = path.join(tmpdir(t, 'store'), 'root')
    const a = await archive(t)
    ok(t, ['image', '-s', root, 'import', a.file])
    ok(t, ['container', '-s', root, 'create', 'demo/app:1.0', 'box'])
    const [baseId, appId] = chain([a.base, a.app].map(b => `sha256:${sha256(b)}`))
    t.equal(fs.readFileSync(path.join(root, 'layers', 'box-init'), 'utf8'), `${appId}\n${baseId}\n`)
    t.equal(fs.readFileSync(path.join(root, 'layers', 'box'), 'utf8'), `box-init\n${appId}\n${baseId}\n`)
    const init = snapshotTree(path.join(root, 'diff', 'box-init'), { times: true, xattrs: 'none' })
    const kinds = Object.fromEntries(Object.entries(init).map(([k, v]) => [k, v.split(' ').slice(0, 2).join(' ')]))
    t.same(kinds, {
      '.': 'dir 0755',
      dev: 'dir 0755',
      'dev/console': 'file 0755',
      'dev/pts': 'dir 0755',
      'dev/shm': 'dir 0755',
      etc: 'dir 0755',
      'etc/hosts': 'file 0755',
      'etc/mtab': 'symlink 0777',
      'etc/resolv.conf': 'file 0755',
      proc: 'dir 0755',
      sys: 'dir 0755'
    }, 'the placeholders; etc/hostname is the image\'s own')
    t.match(init['etc/mtab'], /-> \/proc\/mounts/)
    t.match(init['etc/hosts'], /size=0/)
    const imageEtc = snapshotTree(path.join(root, 'diff', appId), { times: true, xattrs: 'none' }).etc
    t.equal(init.etc, imageEtc, 'a parent the image has is made as the image shows it')
    t.same(fs.readdirSync(path.join(root, 'diff', 'box')), [])
    t.match(ok(t, ['container', '-s', root, 'ls']), /box\s+[0-9a-f]{12}\s+-/)
    const r = cli(['container', '-s', root, 'create', 'demo/app:1.0', 'box'])
    t.equal(r.status, 1)
    t.match(r.stderr, /already exists/)
    const r2 = cli(['container', '-s', root, 'create', 'nope:1', 'other'])
    t.equal(r2.status, 1)
    t.match(r2.stderr, /no such image: nope:1/)
    t.notOk(fs.existsSync(path.join(root, 'layers', 'other-init')))
    ok(t, ['container', '-s', root, 'rm', 'box'])
    t.notOk(fs.existsSync(path.join(root, 'layers', 'box-init')))
    t.notOk(fs.existsSync(path.join(root, 'diff', 'box')))
  })

  t.test('container mount: writes land in the container layer', async t => {
    const root = path.join(tmpdir(t, 'store'), 'root')
    const mnt = tmpdir(t, 'mnt')
    t.teardown(() => { if (isMounted(mnt)) cli(['umount', mnt]) })
    const a = await archive(t)
    ok(t, ['image', '-s', root, 'import', a.file])
    ok(t, ['container', '-s', root, 'create', 'demo/app', 'box'])
    const image = chain([a.base, a.app].map(b => `sha256:${sha256(b)}`))
    const before = image.concat('box-init').map(id => snapshotTree(path.join(root, 'diff', id), { times: true }))
    ok(t, ['container', '-s', root, 'mount', 'box', mnt])
    t.ok(isMounted(mnt))
    t.same(fs.readdirSync(mnt).sort(), ['app', 'bin', 'dev', 'etc', 'proc', 'sys'])
    t.notOk(fs.existsSync(path.join(mnt, 'etc/passwd')), 'the app layer whited it out')
    t.equal(fs.readFileSync(path.join(mnt, 'etc/hostname'), 'utf8'), 'from-the-image\n')
    t.equal(fs.readlinkSync(path.join(mnt, 'etc/mtab')), '/proc/mounts')
    fs.writeFileSync(path.join(mnt, 'etc/hostname'), 'box\n')
    fs.writeFileSync(path.join(mnt, 'hello.txt'), 'hi\n')
    fs.rmSync(path.join(mnt, 'bin/sh'))
    t.equal(ok(t, ['container', '-s', root, 'changes', 'box']), ['C /bin', 'D /bin/sh', 'C /etc/hostname', 'A /hello.txt'].join('\n') + '\n')
    ok(t, ['container', '-s', root, 'umount', 'box'])
    t.notOk(isMounted(mnt))
    t.equal(fs.readFileSync(path.join(root, 'diff/box/hello.txt'), 'utf8'), 'hi\n')
    t.equal(fs.readFileSync(path.join(root, 'diff/box/etc/hostname'), 'utf8'), 'box\n')
    t.ok(fs.existsSync(path.join(root, 'diff/box/bin/.wh.sh')))
    t.same(image.concat('box-init').map(id => snapshotTree(path.join(root, 'diff', id), { times: true })), before, 'image and init layers untouched')
  })

  t.test('progress on a terminal, none when piped', async t => {
    const root = path.join(tmpdir(t, 'store'), 'root')
    const big = await makeTar([{ name: 'big', data: Buffer.alloc(96 << 20, 1) }])
    const file = path.join(tmpdir(t, 'saved'), 'big.tar')
    fs.writeFileSync(file, await dockerSave([{ tags: ['big:1'], layers: [big] }]))
    const log = path.join(tmpdir(t, 'log'), 'typescript')
    const cmd = `${process.execPath} ${CLI} image -s ${root} import ${file} > /dev/null`
    const r = spawnSync('script', ['-qec', cmd, log], { encoding: 'utf8', timeout: 120_000 })
    t.equal(r.status, 0, r.stderr)
    t.match(fs.readFileSync(log, 'latin1'), /(reading|importing layers) \[/, 'a bar on the terminal')
    const root2 = path.join(tmpdir(t, 'store'), 'root')
    const piped = cli(['image', '-s', root2, 'import', file])
    t.equal(piped.status, 0)
    t.equal(piped.stderr, '', 'nothing on a pipe')
  })
}

