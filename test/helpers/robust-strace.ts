/**
 * Crash points: kill the daemon just before its Nth call of a given system
 * call, with strace's fault injection (`-e inject=SYSCALL:signal=SIGKILL:when=N`).
 *
 * The union core runs every operation on the daemon's serving thread with
 * synchronous calls (lib/branch/branch.ts), and replies to the kernel from
 * that thread too, so tracing that one thread (`strace -p TID`, no -f)
 * sees every change an operation makes to the branches, in order. The
 * serving thread is the one blocked reading /dev/fuse (lib/fuse/thread.ts). A
 * first run records which changing calls an operation makes and how many of
 * each; then the operation is replayed from the same starting state once per
 * call, with the daemon killed on entry to that call. Together the replays
 * stop the operation between every pair of consecutive changes, which a
 * timer-driven SIGKILL only hits by chance.
 *
 * strace counts each system call separately, so a crash point is a pair
 * (name, N). Calls that change nothing (stat, read, getxattr, ...) are left
 * out: a crash before one of them is the same state as a crash before the
 * next changing call. `write` stays in: the daemon's replies to the kernel
 * are writes to /dev/fuse, and a crash between finishing an operation and
 * replying is a crash point of its own.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { alive, sleep, waitFor } from './robust-proc'

/** System calls that only look: a crash before one equals a crash before the next change. */
const LOOKS_ONLY = new Set([
  'statx', 'newfstatat', 'fstat', 'lstat', 'stat', 'read', 'pread64', 'readv', 'preadv', 'preadv2',
  'lgetxattr', 'getxattr', 'fgetxattr', 'llistxattr', 'listxattr', 'flistxattr', 'lseek',
  'futex', 'epoll_wait', 'epoll_pwait', 'epoll_pwait2', 'epoll_ctl', 'getdents64', 'close',
  'readlink', 'readlinkat', 'getpid', 'gettid', 'getuid', 'getgid', 'geteuid', 'getegid',
  'clock_gettime', 'mmap', 'munmap', 'madvise', 'mprotect', 'brk', 'rt_sigprocmask',
  'rt_sigaction', 'access', 'faccessat', 'faccessat2', 'statfs', 'fstatfs', 'getrandom',
  'sched_yield', 'restart_syscall', 'ioctl_TCGETS', 'prctl', 'uname', 'getcwd'
])

/** strace is installed (UNIONFS_TS_NO_STRACE=1 pretends it is not, to run the timed fallback). */
export function straceAvailable (): boolean {
  if (process.env.UNIONFS_TS_NO_STRACE === '1') return false
  const r = spawnSync('strace', ['-V'], { stdio: 'ignore' })
  return r.status === 0
}

export interface CrashPoint {
  syscall: string
  /** 1-based: the daemon dies on entry to this call of `syscall` */
  nth: number
}

function tracerOf (pid: number, tid: number): number {
  try {
    const m = /^TracerPid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'))
    return m === null ? 0 : Number(m[1])
  } catch {
    return 0
  }
}

interface Attached {
  child: ChildProcess
  log: string
  exited: Promise<void>
}

/**
 * The daemon's thread that serves the connection: the one waiting in
 * read(2) on its /dev/fuse descriptor. Throws when there is none, so a
 * trace can never silently watch a thread that makes no calls.
 */
export function servingThread (pid: number): number {
  const fuseFds = new Set<number>()
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try { if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === '/dev/fuse') fuseFds.add(Number(fd)) } catch {}
  }
  const readers: number[] = []
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    let call: string[]
    try { call = fs.readFileSync(`/proc/${pid}/task/${tid}/syscall`, 'utf8').split(' ') } catch { continue }
    if (call[0] === '0' && fuseFds.has(Number(call[1]))) readers.push(Number(tid))
  }
  if (readers.length !== 1) throw new Error(`daemon ${pid}: ${readers.length} threads read /dev/fuse, expected the one serving thread`)
  return readers[0]
}

async function attach (pid: number, extra: string[]): Promise<Attached> {
  const tid = await waitForServingThread(pid)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `unionfs-ts-robust-strace-${process.pid}-`))
  const log = path.join(dir, 'trace')
  const err = fs.openSync(path.join(dir, 'err'), 'w')
  const child = spawn('strace', ['-p', String(tid), '-o', log, ...extra], { stdio: ['ignore', 'ignore', err] })
  fs.closeSync(err)
  const exited = new Promise<void>(resolve => child.on('exit', () => resolve()))
  const ok = await waitFor(() => tracerOf(pid, tid) === child.pid || child.exitCode !== null, 10_000)
  if (!ok || child.exitCode !== null) {
    const msg = fs.readFileSync(path.join(dir, 'err'), 'utf8')
    if (child.exitCode === null) child.kill('SIGKILL')
    throw new Error(`strace -p ${tid} (daemon ${pid}) did not attach: ${msg}`)
  }
  return { child, log, exited }
}

async function detach (a: Attached): Promise<string> {
  if (a.child.exitCode === null && a.child.signalCode === null) {
    a.child.kill('SIGINT')
    const gone = await Promise.race([a.exited.then(() => true), sleep(10_000).then(() => false)])
    if (!gone) { a.child.kill('SIGKILL'); await a.exited }
  }
  const text = fs.existsSync(a.log) ? fs.readFileSync(a.log, 'utf8') : ''
  fs.rmSync(path.dirname(a.log), { recursive: true, force: true })
  return text
}

/** The serving thread, once it waits for a request (it may be answering one). */
async function waitForServingThread (pid: number): Promise<number> {
  let last: unknown
  for (let i = 0; i < 100; i++) {
    try { return servingThread(pid) } catch (err) { last = err }
    await sleep(20)
  }
  throw last
}

/**
 * Run `op` with the daemon's serving thread traced; returns the changing calls
 * it made, in order.
 */
export async function changingCalls (pid: number, op: () => Promise<void>): Promise<string[]> {
  const a = await attach(pid, ['-e', 'trace=all'])
  let text = ''
  try {
    await op()
    // Let the replies of the operation's last requests go out.
    await sleep(100)
  } finally {
    text = await detach(a)
  }
  const calls: string[] = []
  for (const line of text.split('\n')) {
    const m = /^([a-z_0-9]+)\(/.exec(line)
    if (m !== null && !LOOKS_ONLY.has(m[1])) calls.push(m[1])
  }
  return calls
}

/** `write×3 rename×1 ...`: a recorded sequence, for the log. */
export function describeCalls (calls: string[]): string {
  const counts = new Map<string, number>()
  for (const c of calls) counts.set(c, (counts.get(c) ?? 0) + 1)
  return [...counts].map(([c, n]) => `${c}×${n}`).join(' ')
}

/**
 * The crash points of a recorded sequence. A reply to the kernel changes
 * nothing on disk, so of a run of consecutive replies only the first
 * (nothing of the run sent) and the very last reply of the operation (all
 * but its final answer sent) are distinct states worth a crash.
 */
export function crashPoints (calls: string[]): CrashPoint[] {
  const out: CrashPoint[] = []
  const seen = new Map<string, number>()
  const lastWrite = calls.lastIndexOf('write')
  calls.forEach((c, i) => {
    const nth = (seen.get(c) ?? 0) + 1
    seen.set(c, nth)
    if (c === 'write' && i > 0 && calls[i - 1] === 'write' && i !== lastWrite) return
    out.push({ syscall: c, nth })
  })
  return out
}

/**
 * Arm a crash point: from now on the daemon dies on entry to the point's
 * call. `disarm()` detaches strace (if the daemon is still alive) and tells
 * whether the daemon died at the point.
 */
export async function arm (pid: number, p: CrashPoint): Promise<{ disarm: () => Promise<boolean> }> {
  const a = await attach(pid, ['-e', `trace=${p.syscall}`, '-e', `inject=${p.syscall}:signal=SIGKILL:when=${p.nth}`])
  return {
    disarm: async () => {
      // The daemon dies on its own when the point is reached; give it a moment.
      await waitFor(() => !alive(pid), 300)
      const died = !alive(pid)
      await detach(a)
      return died
    }
  }
}
