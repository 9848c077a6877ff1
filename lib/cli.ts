/**
 * The command line: argv -> Options -> a served mount; the daemon's life
 * (readiness, signals, pid file); `umount`.
 *
 *   unionfs-ts mount [-o OPTIONS] [-f] BRANCH[:BRANCH...] MOUNTPOINT
 *   unionfs-ts mount -o lowerdir=L1:L2,upperdir=U,workdir=W[,...] [-f] MOUNTPOINT
 *   unionfs-ts SOURCE MOUNTPOINT -o OPTIONS      (as mount.fuse(8) runs it)
 *   unionfs-ts umount MOUNTPOINT
 *   unionfs-ts layer|store|image|container ...   (lib/layers/commands.ts)
 *
 * Processes. Only a `-f` process serves a mount; it never touches the
 * mountpoint itself (a synchronous call into its own mount would wait for
 * the very thread that must answer it). Without -f, `mount` validates the
 * arguments, starts `unionfs-ts mount ... -f` detached, and waits on a
 * readiness pipe (fd 3 in the child, named by UNIONFS_TS_NOTIFY_FD): the
 * child writes `ready PID` once the kernel accepted the mount, or
 * `error MESSAGE`. The daemon's stdout and stderr are the log= file or
 * /dev/null, never a pipe of the parent's: a write after the parent exited
 * would fail with EPIPE and take the daemon down with its mount.
 *
 * Ending. SIGINT, SIGTERM and SIGHUP unmount cleanly (the transport
 * detaches a busy mount lazily and the daemon serves its last users until
 * they let go); if unmounting fails, the daemon logs it and keeps serving
 * rather than leave a dead mount. When the kernel side goes away (plain
 * `umount MNT`), the daemon flushes the union and exits 0. The daemon records its pid in a file named after
 * the mountpoint, so `unionfs-ts umount` can wait for it to be gone.
 *
 * Errors. Bad input is one line on stderr and exit status 1.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { FSTYPE, mountAt, OptionsError, parseOptions, resolveOptions, toArgs, type MountSpec, type Options, type ParseMode } from './options'
import { settles } from './settles'
import type { UnionFs } from './union/union-fs'
import type { FuseSession } from './fuse'

const NAME = 'unionfs-ts'
const NOTIFY_ENV = 'UNIONFS_TS_NOTIFY_FD'
const UMOUNT_WAIT_MS = 10_000

const USAGE = `usage:
  unionfs-ts mount [-o OPTIONS] [-f] BRANCH[:BRANCH...] MOUNTPOINT
  unionfs-ts mount -o lowerdir=L1[:L2...][,upperdir=U,workdir=W][,OPTIONS] [-f] MOUNTPOINT
  unionfs-ts umount MOUNTPOINT
  unionfs-ts inspect [--json] PATH | stats [--json] MOUNTPOINT   (below)
  unionfs-ts layer|store|image|container ...   (below)
  unionfs-ts help | --help | --version

Branches are listed top first. BRANCH is DIR, DIR=rw or DIR=ro: the leftmost
branch is writable unless marked =ro, every other one is read-only. With
lowerdir=, L1 is the top read-only branch, upperdir= the writable one (leave
it out for a read-only union) and workdir= an empty directory on the upper's
filesystem. In paths, \\: \\, \\= and \\\\ stand for : , = and \\.

mount returns once the mount is ready; -f serves it in the foreground.
SIGINT or SIGTERM to the daemon, or umount, unmounts it.

OPTIONS (comma-separated):
  whiteout=aufs|overlay  whiteouts written (default: aufs for a branch list,
                         overlay with lowerdir=); both are always read
  cache=on|off           dentry cache (off: also kernel timeouts default 0)
  cache_entries=N        dentry cache size (default 65536)
  cache_ttl=MS           dentry cache expiry (default 0: none)
  entry_timeout=S, attr_timeout=S, negative_timeout=S
                         kernel caching in seconds (default 60, 0 with
                         cache=off)
  writeback              the kernel's writeback cache
  passthrough=on|off     the kernel reads and writes opened files itself
                         (Linux 6.9+, as root; default on)
  killpriv=on|off        the daemon clears suid/sgid on write (default on;
                         off: the kernel asks for security.capability on
                         every write)
  spin=US                the serving thread polls for the next request this
                         many microseconds before sleeping (default 100 with
                         two CPUs or more, else 0)
  readahead=KB           the kernel's read-ahead for files the daemon serves
                         (default 1024, as root; 0: the kernel's 128)
  readdirplus=auto|always|never
                         attributes with each listed entry: auto (default)
                         sends them while the caller stats what it lists
  xattr=on|off           extended attributes through the mount (default on;
                         off: the kernel stops asking after one ENOSYS, and
                         ls -l saves two requests per file)
  allow_other            let other users in (default as root)
  ro                     every branch read-only
  fsname=NAME            the source shown in /proc/mounts
  log=FILE               the daemon's output (default /dev/null)
  trace[=FILE]           one line per copy-up, whiteout, opaque mark and
                         rename (path, branches, bytes, time); without FILE
                         to the daemon's output (the terminal with -f)
  trace_format=text|json the trace's lines (default text)
  debug                  log every request (-d: debug in the foreground)
  backend=protocol|fuse-native
                         the FUSE transport (default protocol: the kernel's
                         FUSE protocol spoken directly; fuse-native: libfuse 2,
                         a fallback with the limits the README lists)
mount(8) options such as rw, dev, suid, noatime, defaults are ignored.
`

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

interface Notifier {
  ready: () => void
  error: (message: string) => void
}

/** The readiness pipe this process was started with, if any (taken once). */
function takeNotifier (): Notifier {
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

/** The project's root: where bin/unionfs-ts.js lives (from lib/ or dist/lib/). */
function packageRoot (): string {
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
      env: { ...process.env, [NOTIFY_ENV]: '3' }
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

// ---------------------------------------------------------------------------
// Pid files: which process serves which mountpoint

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

/** The pid file holds: pid, mountpoint, the process's start time (a pid alone may be reused). */
function writePidFile (mountpoint: string): void {
  try {
    sweepPidDir(ownPidDir())
    const file = pidFile(mountpoint)
    const tmp = `${file}.${process.pid}`
    fs.writeFileSync(tmp, `${process.pid}\n${mountpoint}\n${startTime(process.pid) ?? ''}\n`, { mode: 0o644 })
    fs.renameSync(tmp, file)
  } catch (err) {
    logLine(`cannot record the daemon's pid: ${oneLine(err)}`)
  }
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
function readPidFile (mountpoint: string): number | undefined {
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

function removePidFile (mountpoint: string): void {
  if (readPidFile(mountpoint) === process.pid) {
    try { fs.unlinkSync(pidFile(mountpoint)) } catch {}
  }
}

/** `pid` is alive and still a unionfs-ts process (not a recycled pid). */
function isDaemon (pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(NAME)
  } catch {
    return false
  }
}

// ---------------------------------------------------------------------------
// Unmounting by path

/** An absolute path for `given` that never looks inside the mount itself. */
function mountpointPath (given: string): string {
  const abs = path.resolve(given)
  try {
    return path.join(fs.realpathSync(path.dirname(abs)), path.basename(abs))
  } catch {
    return abs
  }
}

function runCommand (cmd: string, args: string[]): Promise<{ ok: boolean, stderr: string, missing: boolean }> {
  return new Promise(resolve => {
    execFile(cmd, args, { timeout: 30_000 }, (err, _stdout, stderr) => {
      const missing = (err as NodeJS.ErrnoException | null)?.code === 'ENOENT'
      resolve({ ok: err === null, stderr: String(stderr), missing })
    })
  })
}

async function sleep (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}

/** Tries each command in turn until one runs; '' when it unmounted, else why not. */
async function unmountWith (tries: Array<[string, string[]]>): Promise<string> {
  let failure = ''
  for (const [cmd, args] of tries) {
    const r = await runCommand(cmd, args)
    if (r.ok) return ''
    if (!r.missing) return oneLine(r.stderr) || `${cmd} failed`
    failure = `${cmd} not found`
  }
  return failure
}

/**
 * Unmount a unionfs-ts mount and wait (bounded) for its daemon to exit.
 * Returns a warning when the daemon outlived the wait. Throws an
 * OptionsError (one line) when `given` is not a unionfs-ts mount or the
 * kernel refuses (busy).
 */
export async function unmountPath (given: string, waitMs = UMOUNT_WAIT_MS): Promise<string | undefined> {
  const mnt = mountpointPath(given)
  const entry = mountAt(mnt)
  if (entry === undefined) throw new OptionsError(`${given} is not mounted`)
  if (entry.fstype !== FSTYPE) throw new OptionsError(`${given} is not a unionfs-ts mount (it is ${entry.fstype})`)
  const pid = readPidFile(mnt)

  // umount(8) as root; a user's FUSE mount is undone by fusermount.
  const tries: Array<[string, string[]]> = process.getuid?.() === 0
    ? [['umount', [mnt]]]
    : [['fusermount3', ['-u', mnt]], ['fusermount', ['-u', mnt]], ['umount', [mnt]]]
  let failure = await unmountWith(tries)
  // A mount whose daemon is gone answers nothing (ENOTCONN); a process that
  // still holds a file or its cwd there keeps it busy for good: detach it.
  if (failure !== '' && /busy/i.test(failure) && (pid === undefined || !isDaemon(pid))) {
    failure = await unmountWith(process.getuid?.() === 0
      ? [['umount', ['-l', mnt]]]
      : [['fusermount3', ['-u', '-z', mnt]], ['fusermount', ['-u', '-z', mnt]], ['umount', ['-l', mnt]]])
  }
  if (failure !== '') throw new OptionsError(`cannot unmount ${given}: ${failure}`)

  if (pid === undefined || !isDaemon(pid)) return undefined
  const deadline = Date.now() + waitMs
  while (Date.now() < deadline) {
    if (!isDaemon(pid)) return undefined
    await sleep(25)
  }
  return `unmounted ${given}, but its daemon (pid ${pid}) is still running`
}

// ---------------------------------------------------------------------------
// Commands

function oneLine (err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err)
  return msg.split('\n').map(s => s.trim()).filter(s => s !== '')[0] ?? ''
}

function logLine (msg: string): void {
  try {
    fs.writeSync(2, `${NAME}: ${msg}\n`)
  } catch {
    // stderr gone: nothing useful to do
  }
}

function version (): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { version: string }
  return pkg.version
}

async function foreground (options: Options, notify: Notifier): Promise<number> {
  // Every path in `options` is absolute; a cwd left inside some mount would keep it busy.
  process.chdir('/')
  let server: Server
  try {
    server = await serve(options)
  } catch (err) {
    const msg = `cannot mount ${options.mountpoint}: ${oneLine(err)}`
    notify.error(msg)
    logLine(msg)
    return 1
  }
  writePidFile(options.mountpoint)
  // `unionfs-ts stats` and `inspect` ask the daemon over this (lib/observe/channel.ts).
  const channel = await (await import('./observe/daemon')).openStatsChannel(server).catch((err: unknown) => {
    logLine(`no stats channel for ${options.mountpoint}: ${oneLine(err)}`)
    return undefined
  })

  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    if (options.fuse.debug) logLine(`${signal}: unmounting ${options.mountpoint}`)
    server.session.unmount().catch((err: unknown) => {
      // Keep serving rather than leave a dead mount behind.
      stopping = false
      logLine(`${signal}: cannot unmount ${options.mountpoint}, still serving: ${oneLine(err)}`)
    })
  }
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => stop(sig))
  process.on('uncaughtException', (err) => {
    logLine(`fatal: ${err.stack ?? err.message}`)
    const bounded = Promise.race([server.session.unmount(), sleep(5000)])
    bounded.catch(() => {}).finally(() => { removePidFile(options.mountpoint); process.exit(1) })
  })

  notify.ready()
  try {
    await server.closed
    return 0
  } catch (err) {
    logLine(`flushing ${options.mountpoint} failed: ${oneLine(err)}`)
    return 1
  } finally {
    channel?.close()
    removePidFile(options.mountpoint)
  }
}

async function mountCommand (args: string[], notify: Notifier, mode: ParseMode): Promise<number> {
  let options: Options
  try {
    options = parseOptions(args, mode)
  } catch (err) {
    const msg = err instanceof OptionsError ? err.message : `cannot check the arguments: ${oneLine(err)}`
    notify.error(msg)
    logLine(msg)
    return 1
  }
  if (options.foreground) return await foreground(options, notify)
  try {
    const { child } = await spawnServer(options, { detached: true, stderr: 'ignore' })
    child.unref()
    return 0
  } catch (err) {
    logLine(oneLine(err))
    return 1
  }
}

async function umountCommand (args: string[]): Promise<number> {
  if (args.length !== 1) {
    logLine(args.length === 0 ? 'umount: missing MOUNTPOINT' : `umount: unexpected argument '${args[1]}'`)
    return 1
  }
  try {
    const warning = await unmountPath(args[0])
    if (warning !== undefined) logLine(warning)
    return 0
  } catch (err) {
    logLine(oneLine(err))
    return 1
  }
}

/**
 * A store or container mount: validated and started exactly as `mount`
 * does without -f (a detached daemon), returning once it is ready.
 */
async function mountDetached (spec: MountSpec): Promise<void> {
  const options = resolveOptions({ ...spec, foreground: true })
  const { child } = await spawnServer(options, { detached: true, stderr: 'ignore' })
  child.unref()
}

const LAYER_COMMANDS = new Set(['layer', 'store', 'image', 'container'])
const COMMANDS = new Set(['mount', 'umount', 'unmount', 'help', 'inspect', 'stats', ...LAYER_COMMANDS])

/** Run the command line; resolves to the exit status. */
export async function main (argv: readonly string[]): Promise<number> {
  const notify = takeNotifier()
  const [cmd, ...rest] = argv
  if (cmd === undefined) {
    logLine(`missing command (try '${NAME} --help')`)
    return 1
  }
  if (cmd === 'help' || cmd === '--help' || cmd === '-h') {
    process.stdout.write(USAGE + '\n' + (await import('./observe/commands')).OBSERVE_USAGE + '\n' + (await import('./layers/commands')).LAYERS_USAGE)
    return 0
  }
  if (cmd === '--version' || cmd === '-V') {
    process.stdout.write(`${NAME} ${version()}\n`)
    return 0
  }
  if (cmd === 'mount') return await mountCommand(rest, notify, {})
  if (cmd === 'umount' || cmd === 'unmount') return await umountCommand(rest)
  if (cmd === 'inspect' || cmd === 'stats') return await (await import('./observe/commands')).runObserveCommand(cmd, rest)
  if (LAYER_COMMANDS.has(cmd)) {
    const { runLayersCommand } = await import('./layers/commands')
    return await runLayersCommand(cmd, rest, { mount: mountDetached, unmount: unmountPath })
  }
  // mount.fuse(8) and the mount.fuse.unionfs-ts helper run `unionfs-ts SOURCE MOUNTPOINT -o OPTS`.
  if (!cmd.startsWith('-') && !COMMANDS.has(cmd) && argv.length >= 2) return await mountCommand([...argv], notify, { source: true })
  logLine(cmd.startsWith('-') ? `unknown option '${cmd}' (try '${NAME} --help')` : `unknown command '${cmd}' (try '${NAME} --help')`)
  return 1
}

/** The bin's entry point: run and exit with the status. */
export function run (): void {
  main(process.argv.slice(2)).then(
    code => process.exit(code),
    (err: unknown) => {
      logLine(`internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
      process.exit(1)
    })
}
