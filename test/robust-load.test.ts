/**
 * Ring 3, load: 8 processes at once for 20 seconds, each in its own subtree
 * seeded from a read-only branch, doing mixed reads, writes, appends,
 * truncates, creates, renames (files and merged directories), unlinks,
 * mkdirs and listings, each checking everything it reads against its own
 * model (helpers/robust-worker.ts).
 *
 * - No deadlock: a watchdog stats the mountpoint from a fresh process every
 *   two seconds and must get an answer within ten; every worker must end
 *   within a minute of its time.
 * - No error the workload did not expect, no difference from a model.
 * - No leaked descriptors: the daemon's /proc/PID/fd, counted at rest before
 *   and after (everything closed), is the same.
 * - Memory: the daemon's peak RSS (VmHWM) is reported against the files
 *   touched, and must stay under a bound far above what the dentry cache
 *   (cache_entries=4096 here) can explain.
 * - The final trees survive a remount, exactly as the workers' models say.
 * Rerun with UNIONFS_TS_SEED=N.
 */
import t from 'tap'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { createHash } from 'node:crypto'
import { tmpdir } from './helpers/mount'
import { UNION_AUFS, mountStack, workLeftovers } from './helpers/union-env'
import { daemonPid, fdTable, runChild, sleep, spawnChild, statusKb, waitFor, type ChildResult } from './helpers/robust-proc'
import { seedFromEnv } from './helpers/robust-prng'
import { WORKER } from './helpers/robust-worker'

const WORKERS = 8
const RUN_MS = 20_000
const HWM_BOUND_KB = 384 * 1024

interface Report { counts: Record<string, number>, errors: string[], model: Record<string, string> }

t.test(`${WORKERS} processes of mixed operations for ${RUN_MS / 1000} s`, async t => {
  const seed = seedFromEnv()
  t.comment(`seed ${seed} (rerun with UNIONFS_TS_SEED=${seed})`)
  const lower = tmpdir(t, 'lower')
  for (let w = 0; w < WORKERS; w++) {
    const r = await runChild(process.execPath, ['-e', WORKER, 'seed', path.join(lower, `w${w}`), String(w)])
    t.equal(r.code, 0, `seeded w${w} ${r.stderr}`)
  }
  const s = mountStack(t, UNION_AUFS, [lower], { options: ['cache_entries=4096'] })
  const pid = daemonPid(s.mnt)
  if (!t.ok(pid !== undefined, 'daemon found')) return
  fs.readdirSync(s.mnt)
  const fdsBefore = fdTable(pid as number)
  const hwmBefore = statusKb(pid as number, 'VmHWM')
  t.comment(`daemon at rest: ${fdsBefore.size} descriptors, VmHWM ${hwmBefore} kB`)

  const workers = Array.from({ length: WORKERS }, (_, w) =>
    spawnChild(process.execPath, ['-e', WORKER, 'run', s.m(`w${w}`), String(w), String(seed), String(RUN_MS)], { timeoutMs: RUN_MS + 60_000 }))
  let finished = false
  const all = Promise.all(workers.map(w => w.done)).finally(() => { finished = true })

  // The watchdog: a fresh process must get an answer from the mount within 10 s, every 2 s.
  const stalls: string[] = []
  let probes = 0
  let peakFds = 0
  while (!finished) {
    const r = await runChild('stat', ['-c', '%i', s.mnt], { timeoutMs: 10_000 })
    probes++
    if (r.timedOut || r.code !== 0) stalls.push(`probe ${probes}: ${r.timedOut ? 'no answer in 10 s' : r.stderr.trim()}`)
    peakFds = Math.max(peakFds, fdTable(pid as number).size)
    await Promise.race([all, sleep(2000)])
  }
  const results: ChildResult[] = await all
  t.strictSame(stalls, [], `the mount answered all ${probes} watchdog probes`)
  t.comment(`daemon descriptors at the busiest probe: ${peakFds}`)

  const reports: Report[] = []
  results.forEach((r, w) => {
    t.notOk(r.timedOut, `w${w} finished in time (deadlock otherwise)`)
    t.equal(r.code, 0, `w${w} exited 0 ${r.stderr.slice(-500)}`)
    let rep: Report = { counts: {}, errors: [`no report: ${r.stdout.slice(-200)}`], model: {} }
    try { rep = JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as Report } catch {}
    reports.push(rep)
    const n = Object.values(rep.counts).reduce((a, b) => a + b, 0)
    t.strictSame(rep.errors, [], `w${w}: ${n} operations, no unexpected error and no difference from its model`)
  })
  const counts: Record<string, number> = {}
  for (const rep of reports) for (const [k, v] of Object.entries(rep.counts)) counts[k] = (counts[k] ?? 0) + v
  t.comment(`operations: ${Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(', ')}`)

  // Every descriptor the workers had is closed; FUSE releases arrive asynchronously.
  const settled = await waitFor(() => fdTable(pid as number).size <= fdsBefore.size, 10_000, 100)
  const after = fdTable(pid as number)
  const extra = [...after.entries()].filter(([fd]) => !fdsBefore.has(fd)).map(([fd, target]) => `${fd} -> ${target}`)
  t.ok(settled, `the daemon holds ${after.size} descriptors at rest, as before (${fdsBefore.size}); extra: ${extra.join(', ') || 'none'}`)

  const hwm = statusKb(pid as number, 'VmHWM')
  const touched = reports.reduce((n, r) => n + Object.keys(r.model).length, 0) + (counts.create ?? 0) + (counts.mkdir ?? 0)
  t.comment(`daemon peak RSS (VmHWM): ${hwm} kB after touching about ${touched} paths (${hwmBefore} kB at rest)`)
  t.ok(hwm < HWM_BOUND_KB, `peak RSS ${hwm} kB under ${HWM_BOUND_KB} kB`)
  t.strictSame(workLeftovers(s.work), [], 'the work dir holds nothing')

  s.remount()
  reports.forEach((rep, w) => {
    const seen: Record<string, string> = {}
    const walk = (rel: string): void => {
      for (const e of fs.readdirSync(s.m(path.join(`w${w}`, rel)), { withFileTypes: true })) {
        const r = rel === '' ? e.name : `${rel}/${e.name}`
        if (e.isDirectory()) { seen[r] = 'dir'; walk(r) } else seen[r] = createHash('sha1').update(fs.readFileSync(s.m(path.join(`w${w}`, r)))).digest('hex')
      }
    }
    walk('')
    t.strictSame(seen, rep.model, `w${w}: after a remount the tree is the model`)
  })
})
