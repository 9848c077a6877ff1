/**
 * Processes and kernel knobs the bench needs: running a command with a
 * time limit, dropping the page cache, reading a daemon's CPU time and peak
 * RSS from /proc, and asking /proc/self/mountinfo what is mounted.
 *
 * Every process started here is remembered by PID until it exits; on a
 * time limit, or when the bench is interrupted, only those are killed, by
 * the process group each was started in (a shell pipeline's tar and wc go
 * with their shell).
 */
import { spawn, execFileSync } from 'node:child_process'
import * as fs from 'node:fs'

export interface RunResult {
  code: number | null
  signal: string | null
  stdout: string
  stderr: string
  /** Wall time from spawn to exit. */
  seconds: number
  timedOut: boolean
}

export interface RunOptions {
  timeoutMs?: number
  cwd?: string
  /** Keep the process group alive past this call (a daemon started with -f). */
  keep?: boolean
  stdoutFile?: string
  env?: NodeJS.ProcessEnv
}

/** Commands and workers running now (daemons are tracked apart: they go with their mounts). */
const live = new Set<number>()
const daemons = new Set<number>()

/** Kill the commands we started and that still run (SIGINT of the bench); unmounting ends the daemons. */
export function killStarted (): void {
  for (const pid of live) killGroup(pid)
  live.clear()
}

/** Kill the FUSE daemons we started (a second SIGINT: the mounts are left for umount -l). */
export function killDaemons (): void {
  for (const pid of daemons) killGroup(pid)
  daemons.clear()
}

export function killGroup (pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try { process.kill(-pid, signal) } catch {}
  try { process.kill(pid, signal) } catch {}
}

/** Run a command (no shell unless cmd is 'sh'); resolves when it exits or its time is up. */
export function run (cmd: string, args: readonly string[], o: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const out = o.stdoutFile !== undefined ? fs.openSync(o.stdoutFile, 'a') : 'pipe'
    const t0 = process.hrtime.bigint()
    const child = spawn(cmd, args, {
      cwd: o.cwd,
      env: o.env ?? process.env,
      detached: true,
      stdio: ['ignore', out, 'pipe']
    })
    if (typeof out === 'number') fs.closeSync(out)
    let stdout = ''
    let stderr = ''
    let seconds = 0
    let timedOut = false
    let timer: NodeJS.Timeout | undefined
    const pid = child.pid
    if (pid !== undefined) live.add(pid)
    child.stdout?.setEncoding('utf8')
    child.stdout?.on('data', (s: string) => { if (stdout.length < 1 << 20) stdout += s })
    child.stderr?.setEncoding('utf8')
    child.stderr?.on('data', (s: string) => { if (stderr.length < 1 << 16) stderr += s })
    if (o.timeoutMs !== undefined && o.timeoutMs > 0) {
      timer = setTimeout(() => {
        timedOut = true
        if (pid !== undefined) killGroup(pid)
      }, o.timeoutMs)
    }
    child.on('exit', () => { seconds = Number(process.hrtime.bigint() - t0) / 1e9 })
    child.on('error', (err) => {
      if (timer !== undefined) clearTimeout(timer)
      if (pid !== undefined) live.delete(pid)
      resolve({ code: null, signal: null, stdout, stderr: stderr + err.message, seconds: 0, timedOut })
    })
    child.on('close', (code, signal) => {
      if (timer !== undefined) clearTimeout(timer)
      if (pid !== undefined) live.delete(pid)
      resolve({ code, signal, stdout, stderr, seconds, timedOut })
    })
  })
}

export interface Daemon {
  pid: number
  /** Resolves when the process exits. */
  exited: Promise<void>
}

/** Start a long-running process (a FUSE daemon in the foreground) in its own group, output to `logFile`. */
export function startDaemon (cmd: string, args: readonly string[], logFile: string, cwd?: string): Daemon {
  const log = fs.openSync(logFile, 'a')
  const child = spawn(cmd, args, { cwd, detached: true, stdio: ['ignore', log, log] })
  fs.closeSync(log)
  const pid = child.pid
  if (pid === undefined) throw new Error(`cannot start ${cmd}`)
  daemons.add(pid)
  const exited = new Promise<void>((resolve) => {
    child.on('exit', () => { daemons.delete(pid); resolve() })
    child.on('error', () => { daemons.delete(pid); resolve() })
  })
  return { pid, exited }
}

export function sh (script: string): string {
  return execFileSync('sh', ['-c', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

export function commandExists (name: string): boolean {
  try {
    sh(`command -v ${name}`)
    return true
  } catch {
    return false
  }
}

/** Write dirty data out, then drop the page cache, dentries and inodes. */
export function dropCaches (): void {
  execFileSync('sync')
  fs.writeFileSync('/proc/sys/vm/drop_caches', '3')
}

/**
 * How many times anyone has written /proc/sys/vm/drop_caches since boot
 * (vmstat's drop_pagecache). Something outside the bench doing it during a
 * warm run makes that run partly cold; the samples record how often.
 */
export function cacheDrops (): number {
  try {
    return Number(/^drop_pagecache (\d+)/m.exec(fs.readFileSync('/proc/vmstat', 'utf8'))?.[1] ?? NaN)
  } catch {
    return NaN
  }
}

let clockTicks: number | undefined

function ticksPerSecond (): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
    } catch {
      clockTicks = 100
    }
  }
  return clockTicks
}

/** User plus system CPU seconds of a process (all its threads), or undefined when it is gone. */
export function cpuSeconds (pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after the command name, which is in parentheses and may hold spaces.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const utime = Number(rest[11])
    const stime = Number(rest[12])
    return (utime + stime) / ticksPerSecond()
  } catch {
    return undefined
  }
}

/** Peak and current resident set size in KiB. */
export function memoryKiB (pid: number): { hwm: number, rss: number } | undefined {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
    const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN)
    return { hwm: field('VmHWM'), rss: field('VmRSS') }
  } catch {
    return undefined
  }
}

export function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

function unescapeMountinfo (s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))
}

/** The filesystem type mounted at `mnt` (the last mount there), or undefined. */
export function mountedType (mnt: string): string | undefined {
  let found: string | undefined
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ')
    const sep = f.indexOf('-')
    if (sep < 0) continue
    if (unescapeMountinfo(f[4]) === mnt) found = f[sep + 1]
  }
  return found
}

export async function sleep (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}

/** Poll until `cond` holds or `ms` pass; returns whether it held. */
export async function waitFor (cond: () => boolean, ms: number, step = 20): Promise<boolean> {
  const deadline = Date.now() + ms
  for (;;) {
    if (cond()) return true
    if (Date.now() >= deadline) return false
    await sleep(step)
  }
}
