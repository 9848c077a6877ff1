/**
 * Pid files: which process serves which mountpoint. A daemon records its
 * pid in a file named after the mountpoint (a hash of it, in a directory
 * only its user can write), so `unionfs-ts umount` can wait for it to be
 * gone, and `stats` and `inspect` find its channel beside it
 * (lib/observe/channel.ts names the socket and cookie alike).
 */
import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

/** What a daemon's command line holds (`isDaemon`). */
const NAME = 'unionfs-ts'

export function pidDir (): string {
  const uid = process.getuid?.() ?? -1
  if (uid === 0) return '/run/unionfs-ts'
  const xdg = process.env.XDG_RUNTIME_DIR
  if (xdg !== undefined && xdg !== '') return path.join(xdg, 'unionfs-ts')
  return path.join(os.tmpdir(), `unionfs-ts-${uid}`)
}

export function pidFile (mountpoint: string): string {
  const key = createHash('sha256').update(mountpoint).digest('hex').slice(0, 32)
  return path.join(pidDir(), `${key}.pid`)
}

/** The clock tick `pid` started at (/proc/PID/stat field 22): with the pid, it names one process for good. */
function startTime (pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
  } catch {
    return undefined
  }
}

/** The pid directory, made if missing; refused when it is not this user's own private directory. */
function ownPidDir (): string {
  const dir = pidDir()
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
  const st = fs.lstatSync(dir)
  const uid = process.getuid?.() ?? 0
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o022) !== 0) {
    throw new Error(`${dir} is not a directory of uid ${uid} that only it can write`)
  }
  return dir
}

/**
 * Record this process as the one serving `mountpoint`, after sweeping what
 * killed daemons left. The pid file holds: pid, mountpoint, the process's
 * start time (a pid alone may be reused).
 */
export function writePidFile (mountpoint: string): void {
  sweepPidDir(ownPidDir())
  const file = pidFile(mountpoint)
  const tmp = `${file}.${process.pid}`
  fs.writeFileSync(tmp, `${process.pid}\n${mountpoint}\n${startTime(process.pid) ?? ''}\n`, { mode: 0o644 })
  fs.renameSync(tmp, file)
}

/** The daemon a pid file names, if that process still runs: [pid, mountpoint]. */
function readPid (file: string): [number, string] | undefined {
  try {
    const [pid, mnt, started] = fs.readFileSync(file, 'utf8').split('\n')
    if (!/^[0-9]+$/.test(pid)) return undefined
    if (started !== undefined && started !== '' ? startTime(Number(pid)) !== started : !isDaemon(Number(pid))) return undefined
    return [Number(pid), mnt]
  } catch {
    return undefined
  }
}

/** The daemon serving `mountpoint` by its pid file, if that process still runs. */
export function readPidFile (mountpoint: string): number | undefined {
  const r = readPid(pidFile(mountpoint))
  return r !== undefined && r[1] === mountpoint ? r[0] : undefined
}

/**
 * Removes what killed daemons left: pid files whose process is gone, with
 * their stats socket and cookie (lib/observe/channel.ts names them alike).
 */
function sweepPidDir (dir: string): void {
  for (const name of fs.readdirSync(dir)) {
    if (!name.endsWith('.pid')) continue
    const file = path.join(dir, name)
    if (readPid(file) !== undefined) continue
    for (const ext of ['.pid', '.sock', '.cookie']) {
      try { fs.unlinkSync(file.slice(0, -'.pid'.length) + ext) } catch {}
    }
  }
}

/** Drop the pid file of `mountpoint` if it names this process. */
export function removePidFile (mountpoint: string): void {
  if (readPidFile(mountpoint) === process.pid) {
    try { fs.unlinkSync(pidFile(mountpoint)) } catch {}
  }
}

/** `pid` is alive and still a unionfs-ts process (not a recycled pid). */
export function isDaemon (pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(NAME)
  } catch {
    return false
  }
}
