/**
 * Ring 3, crashes: SIGKILL just before each changing system call of a
 * rename of a directory merged from several branches (strace fault
 * injection, helpers/robust-strace.ts).
 *
 * Two stacks:
 *  - branch list, AUFS whiteouts: `top/d` in the writable branch and in two
 *    read-only ones (one hiding a file of the other with a `.wh.` whiteout),
 *    renamed to `top/e` in the same directory;
 *  - lowerdir=/upperdir=, overlay whiteouts: `p/q/d` only in the two
 *    read-only branches (a 0/0 device hiding a file), its parents missing
 *    from the writable branch, moved to `p/r/e` where `p/r` exists in the
 *    bottom branch only.
 * After each crash, `umount -l` and a remount: exactly one of the two names
 * exists, its whole merged tree (names, types, modes, owners, data, st_ino)
 * is the one from before, both parent listings agree with it, a file
 * fsync'ed just before the rename is there, the work dir is swept, and the
 * mount works: the directory can be renamed back and written into. The
 * read-only branches are unchanged at the end. Without strace, timed kills
 * replace the crash points.
 */
import t, { type Test } from 'tap'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { tmpdir } from './helpers/mount'
import { makeTree, snapshotTree, whiteout } from './helpers/tree'
import { workLeftovers } from './helpers/union-env'
import { daemonPid, runChild, sleep, type ChildResult } from './helpers/robust-proc'
import { changingCalls, crashPoints, describeCalls, straceAvailable, type CrashPoint } from './helpers/robust-strace'
import { AUFS_LAYOUT, OVERLAY_LAYOUT, crashAndRemount, startExperiment, writeSynced, type Experiment, type Layout } from './helpers/robust-crash'

const haveStrace = straceAvailable()

interface Stack {
  name: string
  layout: Layout
  from: string
  to: string
  lowers: string[]
  seedUpper?: (upper: string) => void
}

function stacks (t: Test): Stack[] {
  const base = tmpdir(t, 'lowers')
  const m1 = path.join(base, 'aufs-middle')
  const b1 = path.join(base, 'aufs-bottom')
  makeTree(m1, {
    top: {
      'other.txt': 'other',
      d: { 'm1.txt': 'middle one', sub: { 'ms.txt': 'middle sub' }, b_hidden: whiteout('aufs'), 'both.txt': 'middle wins' }
    }
  })
  makeTree(b1, {
    top: {
      d: {
        'b1.txt': 'bottom one',
        b_hidden: 'hidden by the middle',
        'both.txt': 'bottom loses',
        sub: { 'bs.txt': 'bottom sub', deeper: { 'x.bin': Buffer.alloc(70_000, 7) } }
      }
    }
  })
  const m2 = path.join(base, 'ovl-middle')
  const b2 = path.join(base, 'ovl-bottom')
  makeTree(m2, {
    p: { q: { d: { 'm1.txt': 'middle one', gone: whiteout('overlay'), sub: { 'ms.txt': 'middle sub' } }, 'q-file': 'q' } }
  })
  makeTree(b2, {
    p: {
      q: { d: { 'b1.txt': 'bottom one', gone: 'hidden by the middle', sub: { 'bs.txt': 'bottom sub' } } },
      r: { 'r-file': 'r' }
    }
  })
  return [
    {
      name: 'rename top/d -> top/e, d merged from the writable branch and two read-only ones',
      layout: AUFS_LAYOUT,
      from: 'top/d',
      to: 'top/e',
      lowers: [m1, b1],
      seedUpper: upper => makeTree(upper, { top: { d: { 'u1.txt': 'upper one', 'both.txt': 'upper wins over both' } } })
    },
    {
      name: 'rename p/q/d -> p/r/e, d merged from two read-only branches, parents not yet copied up',
      layout: OVERLAY_LAYOUT,
      from: 'p/q/d',
      to: 'p/r/e',
      lowers: [m2, b2]
    }
  ]
}

function listing (p: string): string[] {
  return fs.readdirSync(p).sort()
}

const SNAP = { xattrs: 'none' as const, ino: true }

function treeAt (p: string): Record<string, string> {
  const snap = snapshotTree(p, SNAP)
  // The moved directory's own line: its times and link count may change with the move.
  delete snap['.']
  return snap
}

function rename (e: Experiment, from: string, to: string): Promise<ChildResult> {
  return runChild('python3', ['-c', 'import os,sys\nos.rename(sys.argv[1], sys.argv[2])', e.m(from), e.m(to)], { timeoutMs: 60_000 })
}

let experiments = 0

for (const st of stacks(t)) {
  t.test(`${st.layout.name}: SIGKILL during ${st.name}`, async t => {
    const lowersBefore = st.lowers.map(l => snapshotTree(l, { times: true, ino: true }))
    const fromDir = path.dirname(st.from)
    const toDir = path.dirname(st.to)

    const prepare = (e: Experiment): { n: number, tree: Record<string, string>, fromList: string[], toList: string[], ino: bigint } => {
      const n = ++experiments
      writeSynced(e.m(`pre-${n}.txt`), `fsync'ed before crash ${n}`)
      return {
        n,
        tree: treeAt(e.m(st.from)),
        fromList: listing(e.m(fromDir)),
        toList: listing(e.m(toDir)),
        ino: fs.lstatSync(e.m(st.from), { bigint: true }).ino
      }
    }

    let points: CrashPoint[] = []
    if (haveStrace) {
      const e = startExperiment(t, st.layout, st.lowers, st.seedUpper)
      prepare(e)
      let res: ChildResult | undefined
      const calls = await changingCalls(daemonPid(e.mnt) as number, async () => { res = await rename(e, st.from, st.to) })
      t.equal(res?.code, 0, `the traced rename succeeds ${res?.stderr ?? ''}`)
      t.comment(`changing calls: ${describeCalls(calls)}`)
      t.ok(calls.some(c => c.startsWith('rename')), 'the trace saw the rename')
      points = crashPoints(calls)
      e.mounted.unmount()
    } else {
      t.comment('strace is not installed: timed kills instead of crash points')
    }
    const runs: Array<CrashPoint | number> = haveStrace ? points : [0, 2, 4, 6, 8, 10, 15, 20, 30, 50]
    for (const p of runs) {
      const label = typeof p === 'number' ? `kill ${p} ms into the rename` : `kill before ${p.syscall} #${p.nth}`
      const e = startExperiment(t, st.layout, st.lowers, st.seedUpper)
      const before = prepare(e)
      const pid = daemonPid(e.mnt) as number
      const out = typeof p === 'number'
        ? await crashAndRemount(e, undefined, async () => {
          const child = rename(e, st.from, st.to)
          // python3's start-up is about 20 ms of the wait.
          await sleep(20 + p)
          try { process.kill(pid, 'SIGKILL') } catch {}
          return await child
        })
        : await crashAndRemount(e, p, () => rename(e, st.from, st.to))
      if (out.leftBehind.length > 0) t.comment(`${label}: the work dir held ${out.leftBehind.join(', ')} before the remount`)

      t.equal(fs.readFileSync(e.m(`pre-${before.n}.txt`), 'utf8'), `fsync'ed before crash ${before.n}`, `${label}: the fsync'ed file is there`)
      const hasFrom = fs.existsSync(e.m(st.from))
      const hasTo = fs.existsSync(e.m(st.to))
      t.ok(hasFrom !== hasTo, `${label}: exactly one of ${st.from} and ${st.to} exists (from: ${hasFrom}, to: ${hasTo})`)
      if (out.op.code === 0) t.ok(hasTo && !hasFrom, `${label}: the rename reported success, so the new name`)
      const at = hasTo ? st.to : st.from
      if (hasFrom || hasTo) {
        t.strictSame(treeAt(e.m(at)), before.tree, `${label}: the merged tree under ${at} is whole`)
        t.equal(fs.lstatSync(e.m(at), { bigint: true }).ino, before.ino, `${label}: the directory keeps its st_ino`)
      }
      const name = (rel: string): string => path.basename(rel)
      const expectFrom = hasTo ? before.fromList.filter(n => n !== name(st.from) && n !== `pre-${before.n}.txt`) : before.fromList.filter(n => n !== `pre-${before.n}.txt`)
      const gotFrom = listing(e.m(fromDir)).filter(n => n !== `pre-${before.n}.txt`)
      if (fromDir === toDir) {
        const expect = hasTo ? [...expectFrom, name(st.to)].sort() : expectFrom
        t.strictSame(gotFrom, expect, `${label}: the parent lists the directory under one name`)
      } else {
        t.strictSame(gotFrom, expectFrom, `${label}: the source parent's listing`)
        const expectTo = hasTo ? [...before.toList, name(st.to)].sort() : before.toList
        t.strictSame(listing(e.m(toDir)), expectTo, `${label}: the target parent's listing`)
      }
      t.strictSame(workLeftovers(e.work), [], `${label}: the remount swept the work dir`)

      // The mount works: move it to the other name and back, write into it.
      const other = hasTo ? st.from : st.to
      const back = await rename(e, at, other)
      t.equal(back.code, 0, `${label}: renaming it again works ${back.stderr}`)
      t.strictSame(treeAt(e.m(other)), before.tree, `${label}: and keeps the whole tree`)
      writeSynced(e.m(`${other}/new.txt`), 'new')
      t.equal(fs.readFileSync(e.m(`${other}/new.txt`), 'utf8'), 'new', `${label}: a file created inside round-trips`)
      t.notOk(fs.existsSync(e.m(at)), `${label}: the old name is gone`)
      e.mounted.unmount()
    }
    st.lowers.forEach((l, i) => t.strictSame(snapshotTree(l, { times: true, ino: true }), lowersBefore[i], `read-only branch ${i + 1} unchanged`))
  })
}
