/**
 * The daemon's process: serving a mount in this process (the `-f` process,
 * and the library's in-process form), and starting such a process detached.
 *
 * Without -f, `mount` validates the arguments, starts `unionfs-ts mount ...
 * -f` detached, and waits on a readiness pipe (fd 3 in the child, named by
 * UNIONFS_TS_NOTIFY_FD): the child writes `ready PID` once the kernel
 * accepted the mount, or `error MESSAGE`. The daemon's stdout and stderr
 * are the log= file or /dev/null, never a pipe of the parent's: a write
 * after the parent exited would fail with EPIPE and take the daemon down
 * with its mount. Only a `-f` process serves a mount; it never touches the
 * mountpoint itself (a synchronous call into its own mount would wait for
 * the very thread that must answer it).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { toArgs } from './option-syntax'
import type { Options } from './options'
import { settles } from './settles'
import type { UnionFs } from './union/union-fs'
import type { FuseSession } from './fuse'

const NOTIFY_ENV = 'UNIONFS_TS_NOTIFY_FD'

// ---------------------------------------------------------------------------
// Serving (the -f process, and the library's in-process form)

export interface Server {
  readonly options: Options
  readonly fs: UnionFs
  readonly session: FuseSession
  /** Resolves once the kernel side is gone and the union is flushed (fs.destroy() ran). */
  readonly closed: Promise<void>
  /** Unmount and wait for `closed`. */
  close: () => Promise<void>
}

/**
 * Open the union and mount it in this process. The caller must not touch
 * the mountpoint from this process afterwards.
 */
export async function serve (options: Options): Promise<Server> {
  // Loaded here, not at the top: `umount`, `help` and bad input never pay
  // for loading the core, the transport and the native addon.
  const { UnionFs } = await import('./union/union-fs')
  const mountFuse = options.backend === 'fuse-native'
    ? (await import('./fuse-native')).mountFuseNative
    : (await import('./fuse')).mountFuse
  const union = await UnionFs.open(options.union)
  const tracer = options.trace === undefined ? undefined : (await import('./observe/trace')).startTrace(union, options.trace)
  let session: FuseSession
  try {
    session = await mountFuse(union, options.mountpoint, options.fuse)
  } catch (err) {
    tracer?.close()
    await union.destroy().catch(() => {})
    throw err
  }
  return {
    options,
    fs: union,
    session,
    // The transport runs fs.destroy() before `closed` resolves.
    closed: session.closed.finally(() => tracer?.close()),
    close: async () => {
      await session.unmount()
      await session.closed
    }
  }
}

// ---------------------------------------------------------------------------
// Readiness pipe

export interface Notifier {
  ready: () => void
  error: (message: string) => void
}

/** The readiness pipe this process was started with, if any (taken once). */
export function takeNotifier (): Notifier {
  const raw = process.env[NOTIFY_ENV]
  delete process.env[NOTIFY_ENV]
  const fd = raw === undefined || !/^[0-9]+$/.test(raw) ? -1 : Number(raw)
  let open = fd >= 0
  const send = (line: string): void => {
    if (!open) return
    open = false
    try {
      fs.writeSync(fd, line + '\n')
    } catch {
      // The parent is gone; nobody is waiting.
    }
    try { fs.closeSync(fd) } catch {}
  }
  return {
    ready: () => send(`ready ${process.pid}`),
    error: (message) => send(`error ${message}`)
  }
}

// ---------------------------------------------------------------------------
// Starting a daemon

/** The project's root: where bin/unionfs-ts.js lives (from lib/ or dist/lib/). */
export function packageRoot (): string {
  let dir = __dirname
  for (let i = 0; i < 4; i++) {
    if (fs.existsSync(path.join(dir, 'bin', 'unionfs-ts.js')) && fs.existsSync(path.join(dir, 'package.json'))) return dir
    dir = path.dirname(dir)
  }
  throw new Error(`cannot find bin/unionfs-ts.js above ${__dirname}`)
}

export interface SpawnHow {
  /** A daemon: own session, outlives this process. */
  detached: boolean
  /** Where the child's stderr goes when options.log is not set. */
  stderr: 'ignore' | 'inherit'
}

export interface Spawned {
  child: ChildProcess
  pid: number
}

/**
 * The daemon's Node flags: V8's pool of background threads (its optimizing
 * compiler's jobs, the garbage collector's helpers) gets the CPUs left once
 * the serving thread and the program using the mount have one each: at
 * least 1, at most Node's default of 4. On this 2-core VM the default pool
 * ran up to four compiles beside the two busy threads, and a fresh daemon
 * spent more CPU compiling than serving; with one, cold `ls -lR` of 4,000
 * files took 0.64 s instead of 0.93, `find` 0.10 instead of 0.14 and 4,000
 * missing names 0.16 instead of 0.24 (medians of 6-8 fresh mounts each,
 * README "FUSE backends"). A pool size the caller gave Node stands.
 */
export function daemonNodeArgs (cpus = os.availableParallelism()): string[] {
  const given = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].some((a) => a.includes('--v8-pool-size'))
  return given ? [] : [`--v8-pool-size=${Math.min(4, Math.max(1, cpus - 2))}`]
}

/**
 * The daemon's environment: the caller's, with the ready-pipe's descriptor,
 * and without NODE_EXTRA_CA_CERTS. Node reads and parses that file of TLS
 * certificates when it starts, whether or not TLS is used, and the daemon
 * makes no connection. Where it names Debian's bundle, `node -e ''` takes
 * 90 ms instead of 20, and a mount took 0.39 s instead of 0.33 (medians of
 * 5 alternating with the build before).
 */
function daemonEnv (): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, [NOTIFY_ENV]: '3' }
  delete env.NODE_EXTRA_CA_CERTS
  return env
}

/**
 * Start `unionfs-ts mount ... -f` for `options` and resolve once it reports
 * the mount ready; reject with its one-line error otherwise.
 */
export async function spawnServer (options: Options, how: SpawnHow): Promise<Spawned> {
  const bin = path.join(packageRoot(), 'bin', 'unionfs-ts.js')
  const logFd = options.log === undefined ? undefined : fs.openSync(options.log, 'a', 0o644)
  let child: ChildProcess
  try {
    child = spawn(process.execPath, [...daemonNodeArgs(), bin, 'mount', ...toArgs({ ...options, foreground: true })], {
      detached: how.detached,
      stdio: ['ignore', logFd ?? 'ignore', logFd ?? how.stderr, 'pipe'],
      env: daemonEnv()
    })
  } finally {
    if (logFd !== undefined) fs.closeSync(logFd)
  }
  const pipe = child.stdio[3] as NodeJS.ReadableStream & { destroy: () => void }
  const line = await new Promise<string>((resolve) => {
    let buf = ''
    let done = false
    const finish = (s: string): void => {
      if (done) return
      done = true
      pipe.destroy()
      resolve(s)
    }
    pipe.setEncoding('utf8')
    pipe.on('data', (chunk: string) => {
      buf += chunk
      const nl = buf.indexOf('\n')
      if (nl >= 0) finish(buf.slice(0, nl))
    })
    pipe.on('error', () => finish(buf))
    pipe.on('end', () => finish(buf))
    child.on('error', (err) => finish(`error cannot start ${bin}: ${err.message}`))
  })
  if (line.startsWith('ready ')) return { child, pid: child.pid ?? Number(line.slice(6)) }
  if (line.startsWith('error ')) {
    // The daemon said why and is on its way out: report once it is gone,
    // so a failed mount leaves no process behind when the command returns.
    if (!await settles(exitCode(child), FAILED_EXIT_MS)) child.kill('SIGKILL')
    throw new Error(line.slice(6))
  }
  const code = await exitCode(child)
  const where = options.log === undefined ? '' : ` (see ${options.log})`
  throw new Error(`the daemon exited (${code}) before the mount was ready${where}`)
}

/** How long a daemon that reported a failed mount gets to exit before it is killed. */
const FAILED_EXIT_MS = 10_000

function exitCode (child: ChildProcess): Promise<string> {
  if (child.exitCode !== null) return Promise.resolve(`status ${child.exitCode}`)
  if (child.signalCode !== null) return Promise.resolve(`signal ${child.signalCode}`)
  return new Promise(resolve => child.once('exit', (c, s) => resolve(s !== null ? `signal ${s}` : `status ${c ?? '?'}`)))
}
