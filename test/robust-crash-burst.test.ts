/**
 * Ring 3, crashes: SIGKILL in the middle of a burst of creates, writes with
 * fsync, overwrites of lower files (copy-up) and unlinks (whiteouts) from
 * four processes at once.
 *
 * Each worker process works in its own directory, seeded from a read-only
 * branch, and keeps a journal outside the mount: a `B` line before each
 * operation and an `E` line (with the data's sha1) once the operation and
 * its fsync returned. When the daemon dies, each worker stops at its first
 * error, which must be ENOTCONN or ECONNABORTED (nothing else is expected
 * of this workload), logged after the kill. Then `umount -l`, a remount,
 * and every name is checked against the journals:
 *  - a completed operation is there: the data of the last completed create
 *    or overwrite (everything fsync'ed before the kill), nothing after a
 *    completed unlink;
 *  - the one operation a worker had in flight shows its old state, its new
 *    state, or (create / overwrite) the empty file the open left, never
 *    part of the data: each write is one request of at most 64 KiB;
 *  - no name the journals do not account for;
 *  - the work dir is swept, the mount works.
 * Three rounds per stack, on the same writable branch: a later crash must
 * not disturb what earlier rounds left. Rerun a run with UNIONFS_TS_SEED=N.
 */
import t from 'tap'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { createHash } from 'node:crypto'
import { tmpdir } from './helpers/mount'
import { makeTree, type Spec } from './helpers/tree'
import { workLeftovers } from './helpers/union-env'
import { cleanDeadMount, daemonPid, kill9, sleep, spawnChild, waitFor, type ChildResult } from './helpers/robust-proc'
import { AUFS_LAYOUT, OVERLAY_LAYOUT, startExperiment, writeSynced } from './helpers/robust-crash'
import { prng, seedFromEnv } from './helpers/robust-prng'

const WORKERS = 4
const ROUNDS = 3
const SEEDS_PER_DIR = 6

/** The worker: node -e WORKER DIR JOURNAL SEED. */
const WORKER = String.raw`
const fs = require('fs'), path = require('path'), crypto = require('crypto')
const [dir, journal, seedArg, seedNames] = process.argv.slice(1)
let s = Number(seedArg) >>> 0
const rand = () => { s = (s + 0x6D2B79F5) >>> 0; let x = s; x = Math.imul(x ^ (x >>> 15), x | 1); x ^= x + Math.imul(x ^ (x >>> 7), x | 61); return ((x ^ (x >>> 14)) >>> 0) / 4294967296 }
const jfd = fs.openSync(journal, 'a')
const log = line => fs.writeSync(jfd, Date.now() + ' ' + line + '\n')
const live = seedNames.split(',')
const sha = b => crypto.createHash('sha1').update(b).digest('hex')
let seq = 0
function data () {
  const n = 1 + Math.floor(rand() * 65535)
  const b = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i++) b[i] = Math.floor(rand() * 256)
  return b
}
function writeAll (p, flags, b) {
  const fd = fs.openSync(p, flags, 0o644)
  try { fs.writeSync(fd, b, 0, b.length, 0); fs.fsyncSync(fd) } finally { fs.closeSync(fd) }
}
try {
  for (;;) {
    const r = rand()
    if (r < 0.5 || live.length < 2) {
      const name = 'n' + (seq++)
      const b = data()
      log('B create ' + name + ' ' + sha(b))
      writeAll(path.join(dir, name), 'wx', b)
      log('E create ' + name + ' ' + sha(b))
      live.push(name)
    } else if (r < 0.8) {
      const name = live[Math.floor(rand() * live.length)]
      const b = data()
      log('B write ' + name + ' ' + sha(b))
      writeAll(path.join(dir, name), 'w', b)
      log('E write ' + name + ' ' + sha(b))
    } else {
      const i = Math.floor(rand() * live.length)
      const name = live[i]
      log('B unlink ' + name + ' -')
      fs.unlinkSync(path.join(dir, name))
      log('E unlink ' + name + ' -')
      live.splice(i, 1)
    }
  }
} catch (e) {
  log('X ' + (e.code || e.message))
}
`

const EMPTY = createHash('sha1').update(Buffer.alloc(0)).digest('hex')
const ABSENT = 'absent'

function shaOf (b: Buffer): string { return createHash('sha1').update(b).digest('hex') }

function seedData (round: number, w: number, k: number): Buffer {
  return Buffer.from(`seed ${k} of worker ${w}, round ${round}\n`.repeat(50 + k * 100))
}

interface Expect {
  /** what a name must be now: one of these states (a sha1 or ABSENT) */
  allowed: Map<string, Set<string>>
  errors: Array<{ at: number, code: string }>
  ops: number
}

/** Replay a worker's journal from its seeds: the states each name may be in after the crash. */
function expectFromJournal (journal: string, seeds: Map<string, string>): Expect {
  const committed = new Map(seeds)
  const allowed = new Map<string, Set<string>>()
  const errors: Expect['errors'] = []
  let inFlight: { op: string, name: string, sha: string } | undefined
  let ops = 0
  for (const line of journal.split('\n').filter(Boolean)) {
    const [at, kind, op, name, sha] = line.split(' ')
    if (kind === 'X') { errors.push({ at: Number(at), code: op }); continue }
    if (kind === 'B') { inFlight = { op, name, sha }; continue }
    if (kind === 'E') {
      committed.set(name, op === 'unlink' ? ABSENT : sha)
      inFlight = undefined
      ops++
    }
  }
  for (const [name, state] of committed) allowed.set(name, new Set([state]))
  if (inFlight !== undefined) {
    const set = allowed.get(inFlight.name) ?? new Set([ABSENT])
    if (inFlight.op === 'unlink') set.add(ABSENT)
    else { set.add(EMPTY); set.add(inFlight.sha) }
    allowed.set(inFlight.name, set)
  }
  return { allowed, errors, ops }
}

function stateOf (p: string): string {
  try { return shaOf(fs.readFileSync(p)) } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return ABSENT
    throw e
  }
}

for (const layout of [AUFS_LAYOUT, OVERLAY_LAYOUT]) {
  t.test(`${layout.name}: SIGKILL during a burst of creates, fsync'ed writes and unlinks`, async t => {
    const seed = seedFromEnv()
    t.comment(`seed ${seed} (rerun with UNIONFS_TS_SEED=${seed})`)
    const rand = prng(seed)
    const lower = tmpdir(t, 'lower')
    const seeds = new Map<string, Map<string, string>>()
    const spec: Spec = {}
    for (let r = 0; r < ROUNDS; r++) {
      const rs: Spec = {}
      for (let w = 0; w < WORKERS; w++) {
        const ws: Spec = {}
        const m = new Map<string, string>()
        for (let k = 0; k < SEEDS_PER_DIR; k++) {
          ws[`seed${k}`] = seedData(r, w, k)
          m.set(`seed${k}`, shaOf(seedData(r, w, k)))
        }
        rs[`w${w}`] = ws
        seeds.set(`r${r}/w${w}`, m)
      }
      spec[`r${r}`] = rs
    }
    makeTree(lower, spec)
    const journals = tmpdir(t, 'journals')
    const e = startExperiment(t, layout, [lower])
    const expects = new Map<string, Expect>()

    const verify = (label: string): void => {
      for (const [dirRel, ex] of expects) {
        const bad: string[] = []
        for (const [name, allowed] of ex.allowed) {
          const now = stateOf(e.m(`${dirRel}/${name}`))
          if (!allowed.has(now)) bad.push(`${name}: ${now.slice(0, 8)} not in {${[...allowed].map(a => a.slice(0, 8)).join(',')}}`)
        }
        const stray = fs.readdirSync(e.m(dirRel)).filter(n => !ex.allowed.has(n))
        t.strictSame(bad, [], `${label}: ${dirRel}: every name is in a state its journal allows (${ex.ops} operations done)`)
        t.strictSame(stray, [], `${label}: ${dirRel}: no name the journal does not account for`)
      }
    }

    for (let round = 0; round < ROUNDS; round++) {
      const pid = daemonPid(e.mnt)
      if (!t.ok(pid !== undefined, `round ${round}: daemon found`)) return
      writeSynced(e.m(`fsynced-${round}.txt`), `round ${round}`)
      const workers: Array<{ dir: string, journal: string, done: Promise<ChildResult> }> = []
      for (let w = 0; w < WORKERS; w++) {
        const dirRel = `r${round}/w${w}`
        const journal = path.join(journals, `r${round}-w${w}`)
        const names = [...(seeds.get(dirRel) as Map<string, string>).keys()].join(',')
        const child = spawnChild(process.execPath, ['-e', WORKER, e.m(dirRel), journal, String((seed + round * 7919 + w * 104729) >>> 0), names], { timeoutMs: 60_000 })
        workers.push({ dir: dirRel, journal, done: child.done })
      }
      // Kill once every worker has done some work (a loaded machine starts them slowly), then a random while later.
      const started = Date.now()
      const busy = (): boolean => workers.every(w => {
        try { return (fs.readFileSync(w.journal, 'utf8').match(/ E /g) ?? []).length >= 5 } catch { return false }
      })
      await waitFor(busy, 30_000, 20)
      await sleep(200 + Math.floor(rand() * 1300))
      const killedAt = Date.now()
      t.ok(await kill9(pid as number), `round ${round}: daemon killed ${killedAt - started} ms into the burst`)
      const results = await Promise.all(workers.map(w => w.done))
      results.forEach((r, w) => t.notOk(r.timedOut, `round ${round}: worker ${w} stopped after the crash ${r.stderr}`))
      const left = workLeftovers(e.work)
      if (left.length > 0) t.comment(`round ${round}: the work dir held ${left.join(', ')} before the remount`)
      t.ok(cleanDeadMount(e.mnt), `round ${round}: umount -l cleans the dead mount`)
      e.mounted.remount()

      for (const w of workers) {
        const ex = expectFromJournal(fs.readFileSync(w.journal, 'utf8'), seeds.get(w.dir) as Map<string, string>)
        expects.set(w.dir, ex)
        t.equal(ex.errors.length, 1, `round ${round}: ${w.dir} stopped at one error`)
        for (const err of ex.errors) {
          t.ok(['ENOTCONN', 'ECONNABORTED'].includes(err.code), `round ${round}: ${w.dir}: its error is the dead mount's: ${err.code}`)
          t.ok(err.at >= killedAt - 5, `round ${round}: ${w.dir}: and came after the kill`)
        }
        t.ok(ex.ops > 0, `round ${round}: ${w.dir} got work done before the crash (${ex.ops} operations)`)
      }
      for (let r = 0; r <= round; r++) {
        t.equal(fs.readFileSync(e.m(`fsynced-${r}.txt`), 'utf8'), `round ${r}`, `round ${round}: the file fsync'ed before round ${r} is there`)
      }
      verify(`round ${round}`)
      t.strictSame(workLeftovers(e.work), [], `round ${round}: the remount swept the work dir`)
    }
    writeSynced(e.m('after.txt'), 'the mount works')
    t.equal(fs.readFileSync(e.m('after.txt'), 'utf8'), 'the mount works', 'a new file round-trips after the last crash')
    e.mounted.remount()
    verify('after a clean remount')
  })
}
