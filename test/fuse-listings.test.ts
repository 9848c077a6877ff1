/**
 * Directory listings (lib/fuse/dirs.ts): found by handle after OPENDIR, or
 * by offset where OPENDIR is answered with ENOSYS (the kernel may cache
 * listings: entry timeouts above 0). The store on its own, then through
 * real mounts of both kinds: the requests a walk sends, and telldir,
 * seekdir, rewinddir and two interleaved readers through glibc (python3's
 * ctypes), compared with what a plain directory gives.
 */
import t from 'tap'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { spawnSync } from 'node:child_process'
import { DirHandles, offsetOf, type Cursor } from '../lib/fuse/dirs'
import type { DirEntry } from '../lib/union/types'
import { serve, type Served } from './helpers/fuse-served'

function entries (...names: string[]): DirEntry[] {
  return names.map((name, i) => ({ name, ino: i + 1, type: 0o100000 }))
}

t.test('the store', async (t) => {
  const d = new DirHandles(2)
  let listed = 0
  const fresh = (...names: string[]) => async (): Promise<DirEntry[]> => { listed++; return entries(...names) }

  const a = await d.byOffset(7, 0, fresh('x', 'y', 'z'))
  t.equal(a.index, 0)
  t.equal(listed, 1, 'offset 0 lists the directory')
  const off = offsetOf(a.listing, 1)
  t.ok(off > 2 ** 32, 'the offset carries the listing\'s number')
  t.ok(Number.isSafeInteger(off), 'and stays exact in a double')
  const b = await d.byOffset(7, off, fresh('other'))
  t.equal(b.listing, a.listing, 'its offset finds the same listing')
  t.equal(b.index, 2, 'at the next index')
  t.equal(listed, 1, 'without listing again')

  const other = await d.byOffset(8, off, fresh('p', 'q'))
  t.not(other.listing, a.listing, 'another directory\'s offset: a fresh listing of this one')
  t.equal(other.index, 2, 'resumed at the same index')
  t.equal(d.size, 2)

  d.paged(a.listing, 3, 3)
  t.equal(d.size, 1, 'an empty page ends a listing')
  const again: Cursor = await d.byOffset(7, off, fresh('x', 'y', 'z'))
  t.not(again.listing, a.listing, 'its offset lists the directory again')
  t.equal(again.index, 2)

  await d.byOffset(9, 0, fresh('m'))
  t.equal(d.size, 2, 'at most maxListings are kept')
  const evicted = await d.byOffset(8, offsetOf(other.listing, 0), fresh('p', 'q'))
  t.not(evicted.listing, other.listing, 'the oldest went first')

  const small = new DirHandles(10, 5)
  const x = await small.byOffset(1, 0, fresh('a', 'b', 'c'))
  await small.byOffset(2, 0, fresh('d', 'e', 'f'))
  t.equal(small.size, 1, 'past the entries bound the oldest listing goes')
  t.not((await small.byOffset(1, offsetOf(x.listing, 0), fresh('a', 'b', 'c'))).listing, x.listing)
  await small.byOffset(3, 0, fresh('1', '2', '3', '4', '5', '6', '7'))
  t.equal(small.size, 1, 'a listing larger than the bound is kept alone')

  const fh = d.open(5, entries('h1', 'h2'))
  const h = await d.onHandle(fh, 0, fresh('new'))
  t.equal(h?.listing.number, 0, 'a handle\'s listing has number 0')
  t.equal(offsetOf(h!.listing, 0), 1, 'and plain offsets')
  d.paged(h!.listing, 0, 2)
  const rewound = await d.onHandle(fh, 0, fresh('new'))
  t.same(rewound?.listing.entries.map((e) => e.name), ['new'], 'offset 0 on a handle read from: a fresh snapshot (rewinddir)')
  d.paged(rewound!.listing, 1, 1)
  t.ok(await d.onHandle(fh, 1, fresh()), 'an empty page leaves the handle')
  d.release(fh)
  t.equal(await d.onHandle(fh, 0, fresh()), undefined, 'a released handle is gone')
})

/** python3 with glibc's opendir/readdir/telldir/seekdir/rewinddir through ctypes; prints JSON. */
const PY = `
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
class Dirent(ctypes.Structure):
    _fields_ = [('d_ino', ctypes.c_uint64), ('d_off', ctypes.c_int64), ('d_reclen', ctypes.c_ushort),
                ('d_type', ctypes.c_ubyte), ('d_name', ctypes.c_char * 256)]
libc.opendir.restype = ctypes.c_void_p
libc.opendir.argtypes = [ctypes.c_char_p]
libc.readdir.restype = ctypes.POINTER(Dirent)
libc.readdir.argtypes = [ctypes.c_void_p]
libc.telldir.restype = ctypes.c_long
libc.telldir.argtypes = [ctypes.c_void_p]
libc.seekdir.argtypes = [ctypes.c_void_p, ctypes.c_long]
libc.rewinddir.argtypes = [ctypes.c_void_p]
libc.closedir.argtypes = [ctypes.c_void_p]
def opendir(p):
    d = libc.opendir(p.encode())
    if not d: raise OSError(ctypes.get_errno(), 'opendir')
    return d
def names(d, n=None):
    out = []
    while n is None or len(out) < n:
        e = libc.readdir(d)
        if not e: break
        name = e.contents.d_name.decode()
        if name not in ('.', '..'): out.append(name)
    return out
what, p = sys.argv[1], sys.argv[2]
if what == 'seek':
    d = opendir(p)
    first = names(d, int(sys.argv[3]))
    pos = libc.telldir(d)
    rest = names(d)
    libc.seekdir(d, pos)
    again = names(d)
    libc.rewinddir(d)
    whole = names(d)
    libc.closedir(d)
    print(json.dumps({'first': first, 'rest': rest, 'again': again, 'whole': whole}))
else:
    a = opendir(p)
    ra = names(a, 400)
    gone = ra[5:7]
    for name in gone: os.unlink(os.path.join(p, name))
    b = opendir(p)
    rb = names(b, 900)
    ra += names(a)
    rb += names(b)
    libc.closedir(a)
    libc.closedir(b)
    print(json.dumps({'a': ra, 'b': rb, 'gone': gone}))
`

function py (...args: string[]): Record<string, string[]> {
  const r = spawnSync('python3', ['-c', PY, ...args], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`python3 ${args.join(' ')}: ${r.error?.message ?? r.stderr}`)
  return JSON.parse(r.stdout) as Record<string, string[]>
}

function counts (names: string[]): Map<string, number> {
  const m = new Map<string, number>()
  for (const n of names) m.set(n, (m.get(n) ?? 0) + 1)
  return m
}

/** A directory of `n` files with names long enough that a listing takes several READDIR pages. */
function bigDir (s: Served, name: string, n: number): string[] {
  fs.mkdirSync(s.r(name))
  const names: string[] = []
  for (let i = 0; i < n; i++) {
    const f = `entry-with-a-name-long-enough-to-fill-pages-${i}`
    fs.writeFileSync(s.r(path.join(name, f)), '')
    names.push(f)
  }
  return names
}

async function kinds (s: Served): Promise<Record<string, number>> {
  return (await s.stats()).fuse.requestsByKind ?? {}
}

for (const cached of [true, false]) {
  const timeouts = cached ? { entryTimeout: 60, attrTimeout: 60 } : { entryTimeout: 0, attrTimeout: 0, negativeTimeout: 0 }
  t.test(cached ? 'kernel-cached listings: no OPENDIR' : 'cache off: OPENDIR and a handle per reader', async (t) => {
    const s = await serve(t, timeouts)

    t.test('a walk', async (t) => {
      const dirs = ['w0', 'w1', 'w1/a', 'w1/a/b', 'w2']
      for (const d of dirs) {
        fs.mkdirSync(s.r(d))
        for (let i = 0; i < 5; i++) fs.writeFileSync(s.r(path.join(d, `f${i}`)), '')
      }
      const before = await kinds(s)
      for (const d of dirs) t.same(fs.readdirSync(s.m(d)).sort(), fs.readdirSync(s.r(d)).sort(), `${d} lists as underneath`)
      let after = await kinds(s)
      const sent = (k: string): number => (after[k] ?? 0) - (before[k] ?? 0)
      if (cached) {
        t.ok((after.OPENDIR ?? 0) <= 1, `one OPENDIR in all, answered ENOSYS (${after.OPENDIR ?? 0})`)
        t.equal(after.RELEASEDIR ?? 0, 0, 'no RELEASEDIR')
        t.equal((await s.stats()).fuse.openDirs, 0, 'every listing read to its end is dropped')
      } else {
        t.equal(sent('OPENDIR'), dirs.length, 'an OPENDIR per directory')
        // The kernel sends RELEASEDIR after close(2) has returned.
        for (let i = 0; i < 100 && sent('RELEASEDIR') < dirs.length; i++) {
          await new Promise((resolve) => setTimeout(resolve, 20))
          after = await kinds(s)
        }
        t.equal(sent('RELEASEDIR'), dirs.length, 'and its RELEASEDIR')
      }
    })

    t.test('telldir, seekdir, rewinddir', async (t) => {
      const all = bigDir(s, 'seek', 3000)
      for (const at of [1, 700, 2999]) {
        const r = py('seek', s.m('seek'), String(at))
        t.equal(r.first.length, at)
        t.same([...r.first, ...r.rest].sort(), [...all].sort(), `read in two parts at ${at}: every entry once`)
        t.same(r.again, r.rest, 'seekdir to telldir\'s position reads the rest again')
        t.same([...r.whole].sort(), [...all].sort(), 'rewinddir reads it all again')
      }
    })

    t.test('two readers, entries removed between their first pages', async (t) => {
      const all = bigDir(s, 'two', 2000)
      const r = py('two', s.m('two'))
      t.equal(r.gone.length, 2)
      const left = all.filter((n) => !r.gone.includes(n))
      // Reader a listed before the removal (and had read both names), b after it.
      for (const [who, names, expected] of [['a', r.a, all], ['b', r.b, left]] as const) {
        const twice = [...counts(names)].filter(([, n]) => n > 1).map(([name]) => name)
        t.same(twice, [], `reader ${who}: no entry twice`)
        t.same([...new Set(names)].sort(), [...expected].sort(), `reader ${who}: every entry of its listing, nothing else`)
      }
      t.same(fs.readdirSync(s.m('two')).sort(), fs.readdirSync(s.r('two')).sort(), 'a new reader sees the change')
    })
  })
}
