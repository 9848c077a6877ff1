/**
 * One crash experiment, shared by the robust-crash-* tests: mount a fresh
 * writable branch over fixed read-only branches, prepare, optionally arm a
 * crash point (robust-strace.ts), run an operation in a child process, make
 * sure the daemon is dead, clean the dead mount (umount -l), remount with
 * the same arguments and hand the remounted view to the caller's checks.
 *
 * The read-only branches are shared by every experiment of a test (they
 * never change: each test checks that); each experiment gets a new
 * writable branch (and work dir), so it starts from the same state.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { CLI, isMounted, run, tmpdir, unionArgs, withUnion, type Mounted, type UnionSpec } from './mount'
import { alive, cleanDeadMount, daemonPid, kill9, type ChildResult } from './robust-proc'
import { arm, type CrashPoint } from './robust-strace'
import { workLeftovers } from './union-env'

export interface Layout {
  name: string
  /** 'branches': DIR:DIR=ro... (AUFS whiteouts); 'overlay': lowerdir=/upperdir=/workdir= */
  syntax: 'branches' | 'overlay'
  whiteout: 'aufs' | 'overlay'
}

export const AUFS_LAYOUT: Layout = { name: 'branch list, whiteout=aufs', syntax: 'branches', whiteout: 'aufs' }
export const OVERLAY_LAYOUT: Layout = { name: 'lowerdir=/upperdir=, whiteout=overlay', syntax: 'overlay', whiteout: 'overlay' }

export interface Experiment {
  mnt: string
  upper: string
  work: string
  spec: UnionSpec
  mounted: Mounted
  m: (rel: string) => string
  u: (rel: string) => string
}

interface Tap {
  teardown: (fn: () => void | Promise<void>) => void
}

/** Mount `lowers` (top first) under a fresh writable branch, seeded by `seed` if given. */
export function startExperiment (t: Tap, layout: Layout, lowers: string[], seed?: (upper: string) => void): Experiment {
  const upper = tmpdir(t, 'upper')
  seed?.(upper)
  let spec: UnionSpec
  let work: string
  if (layout.syntax === 'overlay') {
    const w = tmpdir(t, 'work')
    work = path.join(w, 'work')
    spec = { lowers, upper, workdir: w, options: [`whiteout=${layout.whiteout}`] }
  } else {
    work = path.join(upper, '.wh..wh.unionfs-ts')
    spec = { branches: [upper, ...lowers.map(l => `${l}=ro`)], options: [`whiteout=${layout.whiteout}`] }
  }
  const mounted = withUnion(t, spec)
  return {
    mnt: mounted.mnt,
    upper,
    work,
    spec,
    mounted,
    m: rel => path.join(mounted.mnt, rel),
    u: rel => path.join(upper, rel)
  }
}

export interface CrashOutcome {
  /** the daemon died at the armed crash point (false: the operation finished first) */
  diedAtPoint: boolean
  op: ChildResult
  /** what the work dir held right after the crash, before the remount swept it */
  leftBehind: string[]
  /** `mount` run again on the dead mountpoint, before it was cleaned (when asked for) */
  mountOnDead?: { status: number | null, stderr: string }
}

/**
 * Run `op` against the experiment's mount with the daemon killed at `point`
 * (or, without a point, killed right after `op` ends), then clean the dead
 * mount and remount.
 */
export async function crashAndRemount (e: Experiment, point: CrashPoint | undefined,
  op: () => Promise<ChildResult>, opts: { tryMountOnDead?: boolean } = {}): Promise<CrashOutcome> {
  const pid = daemonPid(e.mnt)
  if (pid === undefined) throw new Error(`no daemon found for ${e.mnt}`)
  const armed = point === undefined ? undefined : await arm(pid, point)
  let res: ChildResult
  let diedAtPoint = false
  try {
    res = await op()
  } finally {
    if (armed !== undefined) diedAtPoint = await armed.disarm()
    if (alive(pid) && !await kill9(pid)) throw new Error(`daemon ${pid} survived SIGKILL`)
  }
  const leftBehind = workLeftovers(e.work)
  let mountOnDead: CrashOutcome['mountOnDead']
  if (opts.tryMountOnDead === true && isMounted(e.mnt)) {
    const r = run(process.execPath, [CLI, ...unionArgs(e.spec, e.mnt)], 60_000)
    mountOnDead = { status: r.status, stderr: r.stderr }
  }
  if (!cleanDeadMount(e.mnt)) throw new Error(`umount -l ${e.mnt} left it mounted`)
  e.mounted.remount()
  return { diedAtPoint, op: res, leftBehind, mountOnDead }
}

/** Compare `file` with the concatenation of `parts` (file regions or buffers) without holding it all. */
export function sameBytes (file: string, parts: Array<{ path: string, length: number } | Buffer>): string | undefined {
  const expectLen = parts.reduce((n, p) => n + (Buffer.isBuffer(p) ? p.length : p.length), 0)
  const size = fs.statSync(file).size
  if (size !== expectLen) return `size ${size}, expected ${expectLen}`
  const fd = fs.openSync(file, 'r')
  const CH = 4 << 20
  const got = Buffer.allocUnsafe(CH)
  const want = Buffer.allocUnsafe(CH)
  let off = 0
  try {
    for (const p of parts) {
      if (Buffer.isBuffer(p)) {
        const n = fs.readSync(fd, got, 0, p.length, off)
        if (n !== p.length || !got.subarray(0, n).equals(p)) return `bytes ${off}..${off + p.length} differ`
        off += p.length
        continue
      }
      const src = fs.openSync(p.path, 'r')
      try {
        for (let done = 0; done < p.length;) {
          const len = Math.min(CH, p.length - done)
          const a = fs.readSync(fd, got, 0, len, off)
          const b = fs.readSync(src, want, 0, len, done)
          if (a !== len || b !== len || !got.subarray(0, len).equals(want.subarray(0, len))) {
            return `bytes ${off}..${off + len} differ (read ${a}, expected ${b})`
          }
          done += len
          off += len
        }
      } finally { fs.closeSync(src) }
    }
  } finally { fs.closeSync(fd) }
  return undefined
}

/** Write a file of `size` bytes whose every 4-byte word depends on `seed` and its offset. */
export function patternFile (p: string, size: number, seed: number): void {
  const MiB = 1 << 20
  const chunk = Buffer.alloc(MiB)
  const fd = fs.openSync(p, 'w')
  try {
    for (let off = 0; off < size; off += MiB) {
      for (let i = 0; i < MiB; i += 4) chunk.writeUInt32LE((Math.imul(off + i + 1, 2654435761) ^ seed) >>> 0, i)
      fs.writeSync(fd, chunk, 0, Math.min(MiB, size - off))
    }
  } finally { fs.closeSync(fd) }
}

/** Write through the mount and fsync: what must survive any later crash. */
export function writeSynced (p: string, data: string | Buffer): void {
  const fd = fs.openSync(p, 'w')
  try {
    fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data)
    fs.fsyncSync(fd)
  } finally { fs.closeSync(fd) }
}
