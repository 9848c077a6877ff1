/**
 * READDIRPLUS with attributes or names alone (-o readdirplus=, listing-attrs.ts):
 * the policy on its own, then through a real mount, where a LOOKUP of a
 * listed file after its listing shows that the listing went without
 * attributes (with them, the kernel has the entry and asks nothing).
 */
import t from 'tap'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { FIRST_PROBE_MAX, ListingAttrs, PROBE_EVERY } from '../lib/fuse/listing-attrs'
import { serve, type Served } from './helpers/fuse-served'

const NAMES = ['a', 'b', 'c', 'd', 'e', 'f']

/** Lists directory nodes from..from+n-1, six file names each; `stat`: looks up every name of each listing after it. */
function walk (p: ListingAttrs, from: number, n: number, stat: boolean): boolean[] {
  const chose: boolean[] = []
  for (let dir = from; dir < from + n; dir++) {
    const attrs = p.choose(dir, NAMES.length)
    chose.push(attrs)
    if (!attrs) p.listed(dir, NAMES)
    if (stat) for (const name of NAMES) p.lookedUp(dir, name)
  }
  return chose
}

t.test('the policy', async (t) => {
  const always = new ListingAttrs('always')
  t.same(walk(always, 1, 20, false), new Array(20).fill(true), 'always: attributes whatever the caller does')
  t.ok(always.readdirplus)
  t.notOk(new ListingAttrs('never').readdirplus, 'never: READDIRPLUS is not asked for')

  const auto = new ListingAttrs('auto')
  const names = walk(auto, 1, 3 * PROBE_EVERY, false)
  t.same(names, new Array(3 * PROBE_EVERY).fill(false),
    'the first small listing is a probe, and one nobody stats turns attributes off for good')
  const stats = walk(auto, 100, 3 * PROBE_EVERY, true)
  t.equal(stats[0], false, 'the first listing of a statting walker still goes without')
  t.same(stats.slice(1, PROBE_EVERY), new Array(PROBE_EVERY - 1).fill(true), 'its lookups turn attributes on')
  t.equal(stats.filter((a) => !a).length, 3, 'then one probe in every PROBE_EVERY listings')
  t.equal(auto.choose(200, 1), true, 'a listing of one file and subdirectories: attributes, in either mode')
  walk(auto, 201, 1, false)
  t.equal(auto.choose(202, 0), true, '(names mode now)')

  const dirsOnly = new ListingAttrs('auto')
  t.equal(dirsOnly.choose(1, 0), true, 'a first listing that cannot tell: attributes')
  t.equal(dirsOnly.choose(2, FIRST_PROBE_MAX + 1), true,
    'a large first listing: attributes (as a probe it would cost an ls -l a LOOKUP per name)')
  t.equal(dirsOnly.choose(3, FIRST_PROBE_MAX), false, 'the first small listing that can tell is the probe')
  const first = Array.from({ length: FIRST_PROBE_MAX }, (_, i) => `n${i}`)
  dirsOnly.listed(3, first)
  for (const name of first.slice(0, FIRST_PROBE_MAX / 4)) dirsOnly.lookedUp(3, name)
  const chose = []
  // Its lookups turned attributes on; now PROBE_EVERY - 1 listings with files among three times as many without.
  for (let dir = 10; dir < 10 + 4 * (PROBE_EVERY - 1); dir++) chose.push(dirsOnly.choose(dir, dir % 4 === 0 ? 3 : 0))
  t.ok(chose.every(a => a), 'listings that cannot tell are not probed, and do not count')
  t.equal(dirsOnly.choose(100, 3), false, 'the PROBE_EVERY-th listing that can tell is the probe')
  dirsOnly.listed(100, ['a']) // the caller read one name of it, then moved on
  t.equal(dirsOnly.choose(101, 3), false, 'no verdict: the next listing that can tell is the probe')
  dirsOnly.listed(101, ['a', 'b', 'c'])
  for (const name of ['a', 'b', 'c']) dirsOnly.lookedUp(101, name)
  t.equal(dirsOnly.choose(102, 3), true, 'its lookups keep the attributes on')

  const javaTree = new ListingAttrs('auto')
  const found: boolean[] = []
  for (let dir = 1; dir <= 5 * PROBE_EVERY; dir++) {
    // A find of com/example/...: three of four directories hold one subdirectory, the fourth files.
    const files = dir % 4 === 1 ? 3 : 0
    const attrs = javaTree.choose(dir, files)
    found.push(attrs)
    if (!attrs) javaTree.listed(dir, ['A.java', 'B.java', 'C.java'])
  }
  const fileListings = found.filter((_, i) => (i + 1) % 4 === 1)
  t.ok(found.every((a, i) => a || (i + 1) % 4 === 1), 'the listings without files: attributes')
  t.same(fileListings, new Array(fileListings.length).fill(false),
    'a walker that stats nothing: its first listing with files is the probe, names after')

  const few = new ListingAttrs('auto')
  walk(few, 1, 1, true) // the first probe, statted: attributes on
  t.same(walk(few, 2, PROBE_EVERY - 1, true), new Array(PROBE_EVERY - 1).fill(true))
  t.equal(few.choose(9, 9), false, 'probe')
  few.listed(9, ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'])
  few.lookedUp(9, 'a')
  few.lookedUp(8, 'b')
  few.lookedUp(9, 'nope')
  t.equal(few.choose(10, 9), false, 'one lookup of nine names, one in another dir and one of an unlisted name: no stats')
})

function mkTree (s: Served, prefix: string, dirs: number, files: number): string[] {
  const out: string[] = []
  for (let d = 0; d < dirs; d++) {
    const dir = `${prefix}${d}`
    fs.mkdirSync(s.r(dir), { recursive: true })
    fs.mkdirSync(s.r(path.join(dir, 'sub')))
    for (let f = 0; f < files; f++) fs.writeFileSync(s.r(path.join(dir, `f${f}`)), 'x')
    out.push(dir)
  }
  return out
}

/** LOOKUPs the server saw while `fn` ran. */
async function lookups (s: Served, fn: () => void): Promise<number> {
  const before = (await s.stats()).fuse.requestsByKind?.LOOKUP ?? 0
  fn()
  return ((await s.stats()).fuse.requestsByKind?.LOOKUP ?? 0) - before
}

/** A find: names and types of each directory, no stat. */
function find (s: Served, dirs: string[]): number {
  let n = 0
  for (const d of dirs) n += fs.readdirSync(s.m(d), { withFileTypes: true }).filter((e) => e.isFile()).length
  return n
}

/** An ls -l: each directory listed, then each entry stat'ed. */
function lsl (s: Served, dirs: string[]): void {
  for (const d of dirs) for (const name of fs.readdirSync(s.m(d))) fs.lstatSync(s.m(path.join(d, name)))
}

t.test('through a mount', async (t) => {
  const FILES = 10
  const DIRS = 3 * PROBE_EVERY

  t.test('auto', async (t) => {
    const s = await serve(t, { readdirplus: 'auto', entryTimeout: 60, attrTimeout: 60 })
    const walked = mkTree(s, 'find', DIRS, FILES)
    t.equal(find(s, walked), DIRS * FILES, 'a find sees every file')
    t.equal(await lookups(s, () => { find(s, walked.map((d) => path.join(d, 'sub'))) }), 0,
      'descending into the subdirectories asks nothing: every listing sent theirs with attributes')
    t.equal(await lookups(s, () => { lsl(s, walked.slice(-1)) }), FILES,
      'its last listing sent the files\' names alone: stat of each file asks, of its subdirectory not')
    const statted = mkTree(s, 'ls', DIRS, FILES)
    const n = await lookups(s, () => { lsl(s, statted) })
    // The walk looks up each directory it lists, and the entries of the listings that went without.
    t.ok(n > DIRS && n <= DIRS + (FILES + 1) * (1 + Math.ceil(DIRS / PROBE_EVERY)),
      `an ls -l walk turns attributes on: ${n} lookups for ${DIRS} dirs of ${FILES + 1} entries`)
    t.equal(await lookups(s, () => { lsl(s, statted) }), 0, 'and everything it stat\'ed is cached')
  })

  for (const mode of ['always', 'never'] as const) {
    t.test(mode, async (t) => {
      const s = await serve(t, { readdirplus: mode, entryTimeout: 60, attrTimeout: 60 })
      const dirs = mkTree(s, 'd', PROBE_EVERY + 1, FILES)
      find(s, dirs)
      const n = await lookups(s, () => { lsl(s, dirs) })
      t.equal(n, mode === 'always' ? 0 : dirs.length * (FILES + 1),
        mode === 'always' ? 'every entry came with its attributes' : 'every entry is looked up')
      const kinds = (await s.stats()).fuse.requestsByKind ?? {}
      if (mode === 'never') t.notOk(kinds.READDIRPLUS, 'no READDIRPLUS was sent')
      else t.ok((kinds.READDIRPLUS ?? 0) > 0, 'READDIRPLUS was sent')
    })
  }
})
