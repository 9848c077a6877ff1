/**
 * Names that are not UTF-8, in a read-only branch, through a real mount,
 * beside the kernel's overlayfs running the same script: listing, reading
 * and following them, a copy-up, a whiteout, a directory renamed (its lower
 * content followed through the redirect, whose value is such a path) and a
 * directory made over a whiteout. Then the writable branch on disk holds
 * the very bytes, and a remount (a fresh daemon, reading the redirect back
 * from disk) shows the same union. Both whiteout dialects.
 */
import t from 'tap'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { run, tmpdir, withOverlay, withUnion } from './helpers/mount'

const SCRIPT = String.raw`
import json, os, sys
m = sys.argv[1].encode()
out = []
def say(*a): out.append(' '.join(str(x) for x in a))
def p(name): return m + b'/' + name
def ls(d=None): return ' '.join(sorted(n.hex() for n in os.listdir(p(d) if d else m)))
def read(name): return open(p(name), 'rb').read().decode()
say('ls', ls())
say('ls d', ls(b'd\xe9'))
say('read', read(b'lat\xe9'))
say('readlink', os.readlink(p(b'l\xe9')).hex())
say('UTF-8 spelling', os.path.lexists(p('laté'.encode())))
with open(p(b'lat\xe9'), 'ab') as f: f.write(b'+')
say('after append', read(b'lat\xe9'))
os.unlink(p(b'gone\xff'))
say('unlinked', os.path.lexists(p(b'gone\xff')))
os.rename(p(b'd\xe9'), p(b'moved\xfe'))
say('ls moved', ls(b'moved\xfe'), 'old name', os.path.lexists(p(b'd\xe9')))
say('read moved', read(b'moved\xfe/in\x80'))
os.mkdir(p(b'gone\xff'))
say('ls made over the whiteout', ls(b'gone\xff'))
say('ls', ls())
print(json.dumps(out))
`

function transcript (mnt: string): string[] {
  const r = run('python3', ['-c', SCRIPT, mnt])
  if (r.status !== 0) throw new Error(`python3: ${r.stderr}`)
  return JSON.parse(r.stdout) as string[]
}

/** `dir`/`name`, `name` given as bytes (one character a byte). */
function at (dir: string, name: string): Buffer {
  return Buffer.concat([Buffer.from(dir + '/'), Buffer.from(name, 'latin1')])
}

function lowerTree (t: Tap.Test): string {
  const lower = tmpdir(t, 'lower')
  fs.writeFileSync(at(lower, 'lat\xe9'), 'latin')
  fs.writeFileSync(at(lower, 'gone\xff'), 'x')
  fs.mkdirSync(at(lower, 'd\xe9'))
  fs.writeFileSync(at(lower, 'd\xe9/in\x80'), 'inner')
  fs.symlinkSync(Buffer.from('t\xe9', 'latin1'), at(lower, 'l\xe9'))
  return lower
}

function names (dir: string): string[] {
  return fs.readdirSync(dir, { encoding: 'buffer' }).map(n => n.toString('latin1')).sort()
}

t.test('names that are not UTF-8: what overlayfs does, and the writable branch after', async (t) => {
  const oLower = lowerTree(t)
  const ovl = withOverlay(t, { lowers: [oLower], upper: tmpdir(t, 'oupper'), work: tmpdir(t, 'owork') })
  const want = transcript(ovl.mnt)
  t.equal(want[2], 'read latin', 'overlayfs reads the Latin-1 name (the script itself is right)')

  for (const whiteout of ['aufs', 'overlay']) {
    t.test(`whiteout=${whiteout}`, async (t) => {
      const lower = lowerTree(t)
      const upper = tmpdir(t, 'upper')
      const u = withUnion(t, { branches: [upper, `${lower}=ro`], options: [`whiteout=${whiteout}`] })
      const got = transcript(u.mnt)
      t.same(got, want, 'the same transcript as overlayfs')
      t.equal(fs.readFileSync(at(upper, 'lat\xe9'), 'utf8'), 'latin+', 'the copy has the very name')
      t.ok(names(upper).includes('moved\xfe'), 'the renamed directory has the very name')
      t.equal(fs.readFileSync(at(lower, 'lat\xe9'), 'utf8'), 'latin', 'the lower file is untouched')
      t.notOk(names(upper).some(n => n.includes('\ufffd') || n.includes('\xc3')), 'no name on disk was re-encoded')

      u.remount()
      const ls = run('python3', ['-c', 'import os, sys; print(" ".join(sorted(n.hex() for n in os.listdir(sys.argv[1].encode()))))', u.mnt])
      t.equal(`ls ${ls.stdout.trim()}`, want[want.length - 1], 'a fresh daemon lists the same root')
      const r = run('python3', ['-c', 'import os, sys; print(open(sys.argv[1].encode() + b"/moved\\xfe/in\\x80", "rb").read().decode())', u.mnt])
      t.equal(r.stdout.trim(), 'inner', 'the redirect (a path that is not UTF-8) is followed after a remount')
    })
  }
})
