/**
 * Processes around a mount, for the robustness tests: the daemon serving a
 * mountpoint (found through the pid file the CLI writes), its open file
 * descriptors and peak memory, killing it, cleaning the dead mount it
 * leaves, and child processes run with a deadline.
 *
 * The pid file is /run/unionfs-ts/<first 32 hex digits of sha256(mountpoint)>.pid
 * (lib/pid-files.ts), holding the pid and the mountpoint on two lines; a pid is
 * only trusted while /proc/PID/cmdline still names unionfs-ts.
 *
 * Children run asynchronously with their output in files: a hung mount
 * then fails the test at the deadline instead of hanging it, and the
 * child is killed by its own pid.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { createHash } from 'node:crypto'
import { spawn } from 'node:child_process'
import { isMounted, run } from './mount'

export function sleep (ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms))
}

function pidDir (): string {
  if (process.getuid?.() === 0) return '/run/unionfs-ts'
  const xdg = process.env.XDG_RUNTIME_DIR
  if (xdg !== undefined && xdg !== '') return path.join(xdg, 'unionfs-ts')
  return path.join(os.tmpdir(), `unionfs-ts-${process.getuid?.() ?? -1}`)
}

/** Alive and not a zombie. */
export function alive (pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z'
  } catch {
    return false
  }
}

/** The pid of the daemon serving `mnt`, from the CLI's pid file. */
export function daemonPid (mnt: string): number | undefined {
  const real = path.join(fs.realpathSync(path.dirname(mnt)), path.basename(mnt))
  const key = createHash('sha256').update(real).digest('hex').slice(0, 32)
  let text: string
  try { text = fs.readFileSync(path.join(pidDir(), `${key}.pid`), 'utf8') } catch { return undefined }
  const [pid, where] = text.split('\n')
  if (where !== real || !/^[0-9]+$/.test(pid)) return undefined
  try {
    if (!fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('unionfs-ts')) return undefined
  } catch { return undefined }
  return alive(Number(pid)) ? Number(pid) : undefined
}

/** Names of the open descriptors of `pid` with what they point at. */
export function fdTable (pid: number): Map<number, string> {
  const out = new Map<number, string>()
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    let target = '?'
    try { target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`) } catch { /* closed meanwhile */ }
    out.set(Number(fd), target)
  }
  return out
}

/** A field of /proc/PID/status in kB (VmHWM, VmRSS, ...). */
export function statusKb (pid: number, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (m === null) throw new Error(`no ${field} in /proc/${pid}/status`)
  return Number(m[1])
}

export async function waitFor (cond: () => boolean, ms: number, step = 20): Promise<boolean> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (cond()) return true
    await sleep(step)
  }
  return cond()
}

/** SIGKILL `pid` and wait until it is gone. */
export async function kill9 (pid: number): Promise<boolean> {
  try { process.kill(pid, 'SIGKILL') } catch { /* already gone */ }
  return await waitFor(() => !alive(pid), 10_000)
}

/**
 * After the daemon died: the mountpoint answers ENOTCONN until it is
 * lazily unmounted. Returns true when it is no longer in /proc/mounts.
 */
export function cleanDeadMount (mnt: string): boolean {
  if (isMounted(mnt)) run('umount', ['-l', mnt], 30_000)
  return !isMounted(mnt)
}

export interface ChildResult {
  code: number | null
  signal: string | null
  stdout: string
  stderr: string
  /** killed at the deadline */
  timedOut: boolean
  ms: number
}

export interface ChildOptions {
  timeoutMs?: number
  input?: string
  cwd?: string
  env?: NodeJS.ProcessEnv
  /** a shell wrapper such as ['prlimit', '--nofile=64:64'] */
  prefix?: string[]
}

let childCounter = 0

/** Spawn a child with a deadline; its output goes to files, read when it exits. */
export function spawnChild (cmd: string, args: string[], opts: ChildOptions = {}): { pid: number, done: Promise<ChildResult> } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `unionfs-ts-robust-${process.pid}-${++childCounter}-`))
  const outPath = path.join(dir, 'out')
  const errPath = path.join(dir, 'err')
  const out = fs.openSync(outPath, 'w')
  const err = fs.openSync(errPath, 'w')
  const full = [...(opts.prefix ?? []), cmd, ...args]
  const started = Date.now()
  const child = spawn(full[0], full.slice(1), {
    stdio: [opts.input === undefined ? 'ignore' : 'pipe', out, err],
    cwd: opts.cwd,
    env: opts.env ?? process.env
  })
  fs.closeSync(out)
  fs.closeSync(err)
  if (opts.input !== undefined) {
    child.stdin?.on('error', () => {})
    child.stdin?.end(opts.input)
  }
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    if (child.pid !== undefined) { try { process.kill(child.pid, 'SIGKILL') } catch {} }
  }, opts.timeoutMs ?? 60_000)
  const done = new Promise<ChildResult>(resolve => {
    const finish = (code: number | null, signal: string | null, extra = ''): void => {
      clearTimeout(timer)
      const res: ChildResult = {
        code,
        signal,
        stdout: fs.readFileSync(outPath, 'utf8'),
        stderr: fs.readFileSync(errPath, 'utf8') + extra,
        timedOut,
        ms: Date.now() - started
      }
      fs.rmSync(dir, { recursive: true, force: true })
      resolve(res)
    }
    child.on('error', e => finish(null, null, String(e)))
    child.on('exit', (code, signal) => finish(code, signal))
  })
  return { pid: child.pid ?? -1, done }
}

export async function runChild (cmd: string, args: string[], opts: ChildOptions = {}): Promise<ChildResult> {
  return await spawnChild(cmd, args, opts).done
}

/**
 * Run a python3 program that reads one JSON request on stdin and prints one
 * JSON answer; resolves to the parsed answer, or throws with the program's
 * stderr.
 */
export async function python<T> (program: string, request: unknown, timeoutMs = 120_000, prefix?: string[]): Promise<T> {
  const r = await runChild('python3', ['-c', program], { input: JSON.stringify(request), timeoutMs, prefix })
  if (r.timedOut) throw new Error(`python3 program timed out after ${timeoutMs} ms: ${r.stderr.slice(-2000)}`)
  const last = r.stdout.trim().split('\n').pop() ?? ''
  try {
    return JSON.parse(last) as T
  } catch {
    throw new Error(`python3 program (exit ${r.code ?? r.signal}) printed no JSON: ${r.stdout.slice(-1000)} ${r.stderr.slice(-2000)}`)
  }
}

/** The one-line error of an errno code, as the tests record it. */
export function codeOf (e: unknown): string {
  return String((e as { code?: unknown }).code ?? (e as Error).message)
}
