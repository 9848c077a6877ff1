/**
 * Crashes during copy-up, at every point where a copy-up changes something
 * on disk: the body of robust-crash-copyup.test.ts (a 256 MiB file) and
 * robust-crash-parents.test.ts (a file whose parents are copied up first).
 *
 * test/union-crash.test.ts kills the daemon at timed moments of a chmod's
 * copy-up and checks the data. These cover what that one does not:
 *  - the kill lands just before each changing system call of the copy-up
 *    (strace fault injection, see robust-strace.ts), not at a moment a
 *    timer happens to hit;
 *  - other triggers: an appending write with fsync (256 MiB file), a
 *    truncate that copies only what it keeps, a setxattr on a file three
 *    directories down whose parents (one merged from two branches) are
 *    copied up first;
 *  - the metadata of the file and of every parent (mode, owner, mtime,
 *    xattrs, st_ino) is the old or the new, never something in between;
 *  - a file written and fsync'ed through the mount just before the
 *    operation survives the crash;
 *  - `mount` on the dead mountpoint fails with one clear line, `umount -l`
 *    cleans it, the remount sweeps the work dir, and the mount works (a
 *    new file round-trips; every fourth time the operation is run again
 *    and must give the new view).
 *
 * Only the appending write copies up the 256 MiB file; the other two use a
 * 4 MiB one, their crash points being around the data copy, not in it.
 * Without strace on the machine, the crash points are replaced by timed
 * kills during the operation.
 */
import type { Test } from 'tap'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { tmpdir } from './mount'
import { makeTree, dir, snapshotTree } from './tree'
import * as sys from './sys'
import { workLeftovers } from './union-env'
import { runChild, daemonPid, sleep, type ChildResult } from './robust-proc'
import { changingCalls, crashPoints, describeCalls, straceAvailable, type CrashPoint } from './robust-strace'
import {
  AUFS_LAYOUT, OVERLAY_LAYOUT, crashAndRemount, patternFile, sameBytes, startExperiment, writeSynced,
  type Experiment, type Layout
} from './robust-crash'

const MiB = 1 << 20
const SIZE = 256 * MiB
/** The file of the triggers whose crash points lie outside the data copy. */
const SMALL_SIZE = 4 * MiB
const T_M = 1_500_000_000
const T_A = 1_400_000_000
const haveStrace = straceAvailable()

interface Trigger {
  name: string
  /** the lower file (its bytes are the old view) */
  src: string
  size: number
  layout: Layout
  rel: string
  /** the python program run on the union path (argv[1]) */
  program: string
  /** the file's bytes in the new view */
  newBytes: Array<{ path: string, length: number } | Buffer>
  /** the operation changes the mtime (new view) */
  touchesMtime: boolean
  newXattrs: Record<string, string>
}

interface Meta { mode: number, uid: number, gid: number, mtimeNs: bigint, ino: bigint, xattrs: Record<string, string> }

/** Mode, owner, mtime, st_ino and xattrs of many paths (one python3 run for all the xattrs). */
function metasOf (paths: string[]): Map<string, Meta> {
  const xa = sys.xattrsOf(paths)
  const out = new Map<string, Meta>()
  for (const p of paths) {
    const st = fs.lstatSync(p, { bigint: true })
    const x = xa[p]
    const xattrs: Record<string, string> = {}
    if (typeof x === 'string') xattrs['!'] = x
    else for (const n of Object.keys(x).sort()) xattrs[n] = x[n].toString()
    out.set(p, { mode: Number(st.mode), uid: Number(st.uid), gid: Number(st.gid), mtimeNs: st.mtimeNs, ino: st.ino, xattrs })
  }
  return out
}

function parentsOf (rel: string): string[] {
  const out = ['.']
  const parts = rel.split('/').slice(0, -1)
  for (let i = 1; i <= parts.length; i++) out.push(parts.slice(0, i).join('/'))
  return out
}

function prepare (e: Experiment, n: number): void {
  // Before the operation: a new file, fsync'ed; it must survive the crash.
  writeSynced(e.m(`pre-${n}.txt`), `fsync'ed before crash ${n}\n`)
}

function runOp (e: Experiment, tr: Trigger): Promise<ChildResult> {
  return runChild('python3', ['-c', tr.program, e.m(tr.rel)], { timeoutMs: 120_000 })
}

/** Check the remounted view: each piece old or new, and consistently so. */
function checkView (t: Test, e: Experiment, tr: Trigger, n: number, before: Map<string, Meta>, label: string,
  opSucceeded: boolean): void {
  t.equal(fs.readFileSync(e.m(`pre-${n}.txt`), 'utf8'), `fsync'ed before crash ${n}\n`, `${label}: the file fsync'ed before the crash is there`)
  const size = fs.statSync(e.m(tr.rel)).size
  const oldDiff = sameBytes(e.m(tr.rel), [{ path: tr.src, length: tr.size }])
  const newDiff = oldDiff === undefined ? 'old' : sameBytes(e.m(tr.rel), tr.newBytes)
  const isOld = oldDiff === undefined
  const isNew = newDiff === undefined
  t.ok(isOld || isNew, `${label}: data is the old or the new (size ${size}; vs old: ${oldDiff ?? 'same'}; vs new: ${newDiff ?? 'same'})`)
  if (opSucceeded && tr.newBytes.length > 1) t.ok(isNew, `${label}: the operation reported success, so the data is the new`)
  const metas = metasOf([...parentsOf(tr.rel), tr.rel].map(p => e.m(p)))
  const now = metas.get(e.m(tr.rel)) as Meta
  const was = before.get(tr.rel) as Meta
  t.equal(now.ino, was.ino, `${label}: st_ino unchanged`)
  t.equal(now.mode, was.mode, `${label}: mode kept`)
  t.strictSame([now.uid, now.gid], [was.uid, was.gid], `${label}: owner kept`)
  const xattrsOld = JSON.stringify(was.xattrs)
  const xattrsNew = JSON.stringify(tr.newXattrs)
  t.ok([xattrsOld, xattrsNew].includes(JSON.stringify(now.xattrs)), `${label}: xattrs are the old or the new set: ${JSON.stringify(now.xattrs)}`)
  if (opSucceeded) t.equal(JSON.stringify(now.xattrs), xattrsNew, `${label}: the operation reported success, so the new xattrs`)
  if (!tr.touchesMtime || isOld) t.equal(now.mtimeNs, was.mtimeNs, `${label}: mtime is the old one`)
  for (const p of parentsOf(tr.rel)) {
    const a = metas.get(e.m(p)) as Meta
    const b = before.get(p) as Meta
    t.strictSame({ mode: a.mode, uid: a.uid, gid: a.gid, ino: a.ino, xattrs: a.xattrs },
      { mode: b.mode, uid: b.uid, gid: b.gid, ino: b.ino, xattrs: b.xattrs }, `${label}: parent '${p}' mode, owner, st_ino, xattrs unchanged`)
    // Also when the kill came between the rename into place and the restore
    // of the parent's times: the remount puts back what the work dir noted.
    t.equal(a.mtimeNs, b.mtimeNs, `${label}: parent '${p}' mtime unchanged (a copy-up does not change its parent's times)`)
  }
  t.strictSame(workLeftovers(e.work), [], `${label}: the remount swept the work dir`)
}

/**
 * The mount works after the crash: a new file round-trips, and (when
 * `rerun`) the operation runs to completion.
 */
async function checkWorks (t: Test, e: Experiment, tr: Trigger, label: string, rerun: boolean): Promise<void> {
  writeSynced(e.m('post.txt'), 'after the crash')
  t.equal(fs.readFileSync(e.m('post.txt'), 'utf8'), 'after the crash', `${label}: a new file round-trips`)
  fs.unlinkSync(e.m('post.txt'))
  if (!rerun) return
  // An append that already landed would append twice: only an op whose new view is not there yet runs again.
  const landed = tr.newBytes.length > 1 && sameBytes(e.m(tr.rel), tr.newBytes) === undefined
  if (landed) return
  const again = await runOp(e, tr)
  t.equal(again.code, 0, `${label}: the operation now succeeds: ${again.stderr}`)
  t.equal(sameBytes(e.m(tr.rel), tr.newBytes), undefined, `${label}: and gives the new data`)
  t.strictSame(workLeftovers(e.work), [], `${label}: the work dir is empty after it`)
}

function snapshotBefore (e: Experiment, tr: Trigger): Map<string, Meta> {
  const rels = [...parentsOf(tr.rel), tr.rel]
  const metas = metasOf(rels.map(p => e.m(p)))
  return new Map(rels.map(p => [p, metas.get(e.m(p)) as Meta]))
}

interface Lowers {
  lowers: string[]
  triggers: Trigger[]
  snapshot: () => Record<string, Record<string, string>>
}

/** The read-only branches, shared by every experiment of a test (checked unchanged at its end). */
function makeLowers (t: Test, withBig: boolean): Lowers {
  const lowerBase = tmpdir(t, 'lowers')
  const middle = path.join(lowerBase, 'middle')
  const bottom = path.join(lowerBase, 'bottom')
  makeTree(middle, {
    a: dir({ b: dir({ 'from-middle.txt': 'middle' }, { mode: 0o750, uid: 7, gid: 8, mtime: T_M + 20 }) }, { mode: 0o751, mtime: T_M + 10 })
  })
  makeTree(bottom, {
    a: dir({ b: dir({ c: dir({}, { mode: 0o705, uid: 9, gid: 10, mtime: T_M + 30 }) }) })
  })
  const BIG = path.join(bottom, 'top.bin')
  const SMALL = path.join(bottom, 'small.bin')
  const files: Array<[string, number, number]> = [[SMALL, SMALL_SIZE, 0x5a11]]
  if (withBig) files.push([BIG, SIZE, 0x5eed])
  for (const [p, size, seed] of files) {
    patternFile(p, size, seed)
    fs.chownSync(p, 123, 456)
    fs.chmodSync(p, 0o640)
    sys.setxattr(p, 'user.orig', 'o')
    fs.utimesSync(p, T_A, T_M)
  }
  // The small file again under a second name (the same inode), three directories down.
  fs.linkSync(SMALL, path.join(bottom, 'a/b/c/small.bin'))
  fs.utimesSync(path.join(bottom, 'a/b/c'), T_A, T_M + 30)
  const lowers = [middle, bottom]
  const triggers: Trigger[] = [
    {
      name: 'appending write + fsync to a 256 MiB file',
      src: BIG,
      size: SIZE,
      layout: AUFS_LAYOUT,
      rel: 'top.bin',
      program: 'import os,sys\nf=os.open(sys.argv[1], os.O_WRONLY|os.O_APPEND)\nos.write(f, b"TAIL")\nos.fsync(f)\nos.close(f)',
      newBytes: [{ path: BIG, length: SIZE }, Buffer.from('TAIL')],
      touchesMtime: true,
      newXattrs: { 'user.orig': 'o' }
    },
    {
      name: 'truncate to 4097 bytes',
      src: SMALL,
      size: SMALL_SIZE,
      layout: OVERLAY_LAYOUT,
      rel: 'small.bin',
      program: 'import os,sys\nos.truncate(sys.argv[1], 4097)',
      newBytes: [{ path: SMALL, length: 4097 }],
      touchesMtime: true,
      newXattrs: { 'user.orig': 'o' }
    },
    {
      name: 'setxattr three directories down (parents copied up first)',
      src: SMALL,
      size: SMALL_SIZE,
      layout: AUFS_LAYOUT,
      rel: 'a/b/c/small.bin',
      program: 'import os,sys\nos.setxattr(sys.argv[1], "user.k", b"v")',
      newBytes: [{ path: SMALL, length: SMALL_SIZE }],
      touchesMtime: false,
      newXattrs: { 'user.k': 'v', 'user.orig': 'o' }
    }
  ]
  const snapshot = (): Record<string, Record<string, string>> =>
    Object.fromEntries(lowers.map(l => [l, snapshotTree(l, { times: true, ino: true })]))
  return { lowers, triggers, snapshot }
}

let experiments = 0

/** Run the crash experiments of the triggers whose names match `which`. */
export function copyUpCrashes (t: Test, which: RegExp): void {
  const { lowers, triggers, snapshot } = makeLowers(t, which.test('appending'))
  const lowersBefore = snapshot()
  for (const tr of triggers.filter(x => which.test(x.name))) {
    t.test(`${tr.layout.name}: SIGKILL during the copy-up of a ${tr.name}`, async t => {
      let points: CrashPoint[] = []
      if (haveStrace) {
        // Record the operation's changing calls on a fresh mount.
        const e = startExperiment(t, tr.layout, lowers)
        const n = ++experiments
        prepare(e, n)
        snapshotBefore(e, tr)
        const pid = daemonPid(e.mnt)
        if (!t.ok(pid !== undefined, 'daemon found')) return
        let res: ChildResult | undefined
        const calls = await changingCalls(pid as number, async () => { res = await runOp(e, tr) })
        t.equal(res?.code, 0, `the traced operation succeeds ${res?.stderr ?? ''}`)
        t.comment(`changing calls: ${describeCalls(calls)}`)
        t.ok(calls.some(c => c.startsWith('rename')), 'the trace saw the copy renamed into place')
        const copied = calls.lastIndexOf('copy_file_range')
        if (copied >= 0) {
          const renamed = calls.findIndex((c, i) => i > copied && c.startsWith('rename'))
          const synced = calls.indexOf('fdatasync', copied)
          t.ok(synced > copied && (renamed < 0 || synced < renamed), 'the copied data is synced before the rename into place')
        }
        points = crashPoints(calls)
        e.mounted.unmount()
      } else {
        t.comment('strace is not installed: timed kills instead of crash points')
      }
      const timed = haveStrace ? [] : [0.1, 0.3, 0.5, 0.7, 0.9]
      const runs: Array<CrashPoint | number> = [...points, ...timed]
      let first = true
      let i = 0
      for (const p of runs) {
        i++
        const label = typeof p === 'number' ? `kill at ${p} of the copy time` : `kill before ${p.syscall} #${p.nth}`
        const e = startExperiment(t, tr.layout, lowers)
        const n = ++experiments
        prepare(e, n)
        const before = snapshotBefore(e, tr)
        let out
        if (typeof p === 'number') {
          const pid = daemonPid(e.mnt) as number
          out = await crashAndRemount(e, undefined, async () => {
            const child = runOp(e, tr)
            await sleep(Math.floor(400 * p))
            try { process.kill(pid, 'SIGKILL') } catch {}
            return await child
          })
        } else {
          out = await crashAndRemount(e, p, () => runOp(e, tr), { tryMountOnDead: first })
        }
        if (out.mountOnDead !== undefined) {
          const lines = out.mountOnDead.stderr.split('\n').filter(Boolean)
          t.equal(out.mountOnDead.status, 1, 'mount on the dead mountpoint fails')
          t.equal(lines.length, 1, 'with one line')
          t.match(lines[0] ?? '', /not connected|already a mount point/, `that says the mountpoint is taken: ${lines[0] ?? ''}`)
          first = false
        }
        if (out.leftBehind.length > 0) t.comment(`${label}: the work dir held ${out.leftBehind.join(', ')} before the remount`)
        checkView(t, e, tr, n, before, label, out.op.code === 0)
        await checkWorks(t, e, tr, label, i % 4 === 0 || i === runs.length)
        e.mounted.unmount()
        fs.rmSync(e.upper, { recursive: true, force: true })
      }
    })
  }

  t.test('the read-only branches are unchanged', async t => {
    t.strictSame(snapshot(), lowersBefore)
  })
}
