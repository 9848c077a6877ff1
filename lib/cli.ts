/**
 * The command line: argv -> Options -> a served mount (lib/server.ts);
 * the daemon's life (readiness, signals, pid file); `umount`.
 *
 *   unionfs-ts mount [-o OPTIONS] [-f] BRANCH[:BRANCH...] MOUNTPOINT
 *   unionfs-ts mount -o lowerdir=L1:L2,upperdir=U,workdir=W[,...] [-f] MOUNTPOINT
 *   unionfs-ts SOURCE MOUNTPOINT -o OPTIONS      (as mount.fuse(8) runs it)
 *   unionfs-ts umount MOUNTPOINT
 *   unionfs-ts layer|store|image|container ...   (lib/layers/commands.ts)
 *
 * Processes. Only a `-f` process serves a mount. Without -f, `mount`
 * starts one detached and returns once it reports the mount ready
 * (lib/server.ts says how).
 *
 * Ending. SIGINT, SIGTERM and SIGHUP unmount cleanly (the transport
 * detaches a busy mount lazily and the daemon serves its last users until
 * they let go); if unmounting fails, the daemon logs it and keeps serving
 * rather than leave a dead mount. When the kernel side goes away (plain
 * `umount MNT`), the daemon flushes the union and exits 0. The daemon
 * records its pid (lib/pid-files.ts), so `unionfs-ts umount` can wait for
 * it to be gone.
 *
 * Errors. Bad input is one line on stderr and exit status 1.
 */
import { execFile } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { mountAt } from './mountinfo'
import { parseOptions, type ParseMode } from './option-syntax'
import { FSTYPE, OptionsError, resolveOptions, type MountSpec, type Options } from './options'
import { isDaemon, readPidFile, removePidFile, writePidFile } from './pid-files'
import { packageRoot, serve, spawnServer, takeNotifier, type Notifier, type Server } from './server'

const NAME = 'unionfs-ts'
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
  acl=on|off             the kernel enforces POSIX ACLs (default on; off,
                         or noacl: it checks the mode bits alone)
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
  try {
    writePidFile(options.mountpoint)
  } catch (err) {
    logLine(`cannot record the daemon's pid: ${oneLine(err)}`)
  }
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
