/**
 * Scratch directories and real mounts for the ring 2 and ring 3 tests.
 *
 * - scratch(t) / tmpdir(t): fresh directories under one per-test base in the
 *   system temp dir, removed in teardown, after every mount still alive under
 *   the base has been unmounted (so removal never walks into a mount).
 * - withUnion(t, ...): mounts unionfs-ts through its command line (the daemon
 *   is another process: the test process never serves a mount it uses) on a
 *   fresh mountpoint; teardown unmounts it even when the test failed.
 * - withOverlay(t, ...): the same for the kernel's overlayfs, with
 *   redirect_dir=on (off by default on this kernel).
 *
 * The CLI's stdout and stderr go to files, not pipes: a daemon that kept an
 * inherited pipe open would otherwise hold the mount command's caller.
 *
 * A test killed by its timeout cannot run its teardown; its mounts are swept
 * when this module is next loaded, once the process that made them is gone
 * (the base dir's name carries that pid).
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { spawnSync } from 'node:child_process'

export const ROOT = path.resolve(__dirname, '..', '..')
export const CLI = path.join(ROOT, 'bin', 'unionfs-ts.js')
const PREFIX = 'unionfs-ts-test-'

interface Teardownable {
  teardown: (fn: () => void | Promise<void>) => void
}

/** Mount points currently in /proc/mounts (octal escapes decoded). */
export function mountPoints (): string[] {
  const text = fs.readFileSync('/proc/mounts', 'utf8')
  return text.split('\n').filter(Boolean).map(line =>
    line.split(' ')[1].replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))))
}

export function isMounted (p: string): boolean {
  return mountPoints().includes(path.resolve(p))
}

/** The filesystem type /proc/mounts shows for a mountpoint, or undefined. */
export function mountType (p: string): string | undefined {
  const abs = path.resolve(p)
  const text = fs.readFileSync('/proc/mounts', 'utf8')
  let type: string | undefined
  for (const line of text.split('\n')) {
    const f = line.split(' ')
    if (f[1] === abs) type = f[2]
  }
  return type
}

export interface RunResult { status: number | null, signal: string | null, stdout: string, stderr: string }

/**
 * Run a command to completion with its output captured in files. Never
 * throws for a non-zero exit; the caller judges.
 */
export function run (cmd: string, args: string[], timeoutMs = 60_000): RunResult {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${PREFIX}${process.pid}-run-`))
  const outPath = path.join(dir, 'out')
  const errPath = path.join(dir, 'err')
  const out = fs.openSync(outPath, 'w')
  const err = fs.openSync(errPath, 'w')
  try {
    const r = spawnSync(cmd, args, { stdio: ['ignore', out, err], timeout: timeoutMs, killSignal: 'SIGKILL' })
    return {
      status: r.status,
      signal: r.signal,
      stdout: fs.readFileSync(outPath, 'utf8'),
      stderr: fs.readFileSync(errPath, 'utf8') + (r.error !== undefined ? String(r.error) : '')
    }
  } finally {
    fs.closeSync(out)
    fs.closeSync(err)
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

/** The FUSE connection number of a mount (its st_dev minor), if it is a FUSE mount. */
function fuseConnection (mnt: string): number | undefined {
  const text = fs.readFileSync('/proc/self/mountinfo', 'utf8')
  for (const line of text.split('\n')) {
    const f = line.split(' ')
    const sep = f.indexOf('-')
    if (f[4] === mnt && sep > 0 && f[sep + 1]?.startsWith('fuse')) {
      return Number(f[2].split(':')[1])
    }
  }
  return undefined
}

/**
 * Unmount `mnt` by every means, gentlest first: the CLI's umount for our FUSE
 * mounts, then umount(8), then aborting the FUSE connection and a lazy
 * unmount. Returns what happened, for the log.
 */
export function forceUnmount (mnt: string, viaCli: boolean): string[] {
  const log: string[] = []
  if (!isMounted(mnt)) return log
  if (viaCli) {
    const r = run(process.execPath, [CLI, 'umount', mnt], 30_000)
    if (r.status !== 0) log.push(`unionfs-ts umount exit ${r.status ?? r.signal}: ${r.stderr.trim()}`)
    if (!isMounted(mnt)) return log
  }
  const r = run('umount', [mnt], 30_000)
  if (!isMounted(mnt)) return log
  log.push(`umount exit ${r.status ?? r.signal}: ${r.stderr.trim()}`)
  const conn = fuseConnection(mnt)
  if (conn !== undefined) {
    try {
      fs.writeFileSync(`/sys/fs/fuse/connections/${conn}/abort`, '1')
      log.push(`aborted fuse connection ${conn}`)
    } catch (e) { log.push(`abort failed: ${String(e)}`) }
  }
  const l = run('umount', ['-l', mnt], 30_000)
  log.push(`umount -l exit ${l.status ?? l.signal}`)
  return log
}

function pidAlive (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM' }
}

/** Unmount and remove what earlier, killed test processes left behind. */
function sweepStale (): void {
  const tmp = os.tmpdir()
  const re = new RegExp(`^${tmp.replace(/[/.]/g, '\\$&')}/${PREFIX}(\\d+)-[^/]+`)
  const stale = new Set<string>()
  for (const mp of mountPoints()) {
    const m = re.exec(mp)
    if (m !== null && !pidAlive(Number(m[1]))) {
      forceUnmount(mp, mountType(mp)?.startsWith('fuse') === true)
      stale.add(m[0])
    }
  }
  for (const name of fs.readdirSync(tmp)) {
    const m = new RegExp(`^${PREFIX}(\\d+)-`).exec(name)
    if (m !== null && !pidAlive(Number(m[1]))) stale.add(path.join(tmp, name))
  }
  for (const dir of stale) {
    if (!mountPoints().some(mp => mp.startsWith(dir + '/'))) fs.rmSync(dir, { recursive: true, force: true })
  }
}
sweepStale()

const bases = new WeakMap<object, string>()

/** The per-test base directory, removed (after unmounting anything under it) in teardown. */
export function scratch (t: Teardownable): string {
  const have = bases.get(t)
  if (have !== undefined) return have
  const base = fs.mkdtempSync(path.join(os.tmpdir(), `${PREFIX}${process.pid}-`))
  bases.set(t, base)
  t.teardown(() => {
    for (const mp of mountPoints().filter(m => m.startsWith(base + '/')).reverse()) {
      forceUnmount(mp, mountType(mp)?.startsWith('fuse') === true)
    }
    if (mountPoints().some(m => m.startsWith(base + '/'))) {
      throw new Error(`cannot remove ${base}: a mount under it is still there`)
    }
    fs.rmSync(base, { recursive: true, force: true })
  })
  return base
}

let counter = 0
/** A fresh empty directory under the test's scratch base. */
export function tmpdir (t: Teardownable, name = 'd'): string {
  const d = path.join(scratch(t), `${name}-${++counter}`)
  fs.mkdirSync(d, { mode: 0o755 })
  fs.chmodSync(d, 0o755)
  return d
}

export interface UnionSpec {
  /** branch-list syntax: leftmost is the top; 'DIR=ro' / 'DIR=rw' markers allowed */
  branches?: string[]
  /** overlay syntax: lowers top first */
  lowers?: string[]
  upper?: string
  workdir?: string
  /** extra -o options, e.g. ['whiteout=overlay', 'cache=off'] */
  options?: string[]
}

export interface Mounted {
  mnt: string
  /** Unmount now (teardown then has nothing left to do). */
  unmount: () => void
  /** Unmount and mount again with the same arguments, on the same mountpoint. */
  remount: () => void
}

export function unionArgs (spec: UnionSpec, mnt: string): string[] {
  const opts = [...(spec.options ?? [])]
  const args = ['mount']
  if (spec.branches !== undefined) {
    if (opts.length > 0) args.push('-o', opts.join(','))
    args.push(spec.branches.join(':'), mnt)
  } else {
    const o: string[] = []
    if (spec.lowers !== undefined) o.push(`lowerdir=${spec.lowers.join(':')}`)
    if (spec.upper !== undefined) o.push(`upperdir=${spec.upper}`)
    if (spec.workdir !== undefined) o.push(`workdir=${spec.workdir}`)
    args.push('-o', [...o, ...opts].join(','), mnt)
  }
  return args
}

function mountUnion (args: string[], mnt: string): void {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: the CLI is not built`)
  const r = run(process.execPath, [CLI, ...args], 60_000)
  if (r.status !== 0) {
    throw new Error(`unionfs-ts ${args.join(' ')}: exit ${r.status ?? r.signal}: ${r.stderr.trim()}`)
  }
  if (!isMounted(mnt)) {
    throw new Error(`unionfs-ts ${args.join(' ')}: exit 0 but ${mnt} is not in /proc/mounts`)
  }
}

/** Mount unionfs-ts over branches the test made; unmounted in teardown. */
export function withUnion (t: Teardownable, spec: UnionSpec): Mounted {
  const mnt = tmpdir(t, 'mnt')
  const args = unionArgs(spec, mnt)
  const unmount = (): void => {
    const log = forceUnmount(mnt, true)
    if (isMounted(mnt)) throw new Error(`cannot unmount ${mnt}: ${log.join('; ')}`)
  }
  t.teardown(() => { forceUnmount(mnt, true) })
  mountUnion(args, mnt)
  return { mnt, unmount, remount: () => { unmount(); mountUnion(args, mnt) } }
}

export interface OverlaySpec {
  lowers: string[]
  upper?: string
  work?: string
  /** extra options; redirect_dir=on is always passed */
  options?: string[]
}

/** Mount the kernel's overlayfs (redirect_dir=on); unmounted in teardown. */
export function withOverlay (t: Teardownable, spec: OverlaySpec): Mounted {
  const mnt = tmpdir(t, 'ovl')
  const o = [`lowerdir=${spec.lowers.join(':')}`]
  if (spec.upper !== undefined) o.push(`upperdir=${spec.upper}`, `workdir=${spec.work ?? ''}`)
  o.push('redirect_dir=on', ...(spec.options ?? []))
  const doMount = (): void => {
    const r = run('mount', ['-t', 'overlay', 'overlay', '-o', o.join(','), mnt])
    if (r.status !== 0 || !isMounted(mnt)) throw new Error(`mount -t overlay ${o.join(',')}: ${r.stderr.trim()}`)
  }
  const unmount = (): void => {
    const log = forceUnmount(mnt, false)
    if (isMounted(mnt)) throw new Error(`cannot unmount ${mnt}: ${log.join('; ')}`)
  }
  t.teardown(() => { forceUnmount(mnt, false) })
  doMount()
  return { mnt, unmount, remount: () => { unmount(); doMount() } }
}

/** True when the CLI and the compiled code it runs (dist/, from `tsc -p tsconfig.json`) exist. */
export function cliBuilt (): boolean {
  return fs.existsSync(CLI) && fs.existsSync(path.join(ROOT, 'dist', 'lib', 'cli.js'))
}

/**
 * A fresh tmpfs mounted on a new dir under the test's scratch base (unmounted
 * in teardown before the base is removed). Two of them hand out the same inode
 * numbers, which is what a test of st_ino uniqueness across branches needs.
 */
export function withTmpfs (t: Teardownable, name = 'tmpfs'): string {
  const d = tmpdir(t, name)
  const r = run('mount', ['-t', 'tmpfs', '-o', 'size=64m,mode=0755', 'tmpfs', d])
  if (r.status !== 0 || !isMounted(d)) throw new Error(`mount -t tmpfs ${d}: ${r.stderr.trim()}`)
  t.teardown(() => { forceUnmount(d, false) })
  return d
}
