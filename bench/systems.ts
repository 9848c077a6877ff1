/**
 * The systems under test and how each is mounted and unmounted.
 *
 *   native              the flattened view, bind-mounted (the floor)
 *   overlayfs           the kernel's overlayfs, redirect_dir=on
 *   fuse-overlayfs      Debian's fuse-overlayfs (libfuse 3), in the foreground
 *   unionfs-fuse        Debian's unionfs-fuse (libfuse 2), -o cow, in the foreground
 *   unionfs-ts          this project's CLI, default options (dentry cache on, 60 s kernel timeouts)
 *   unionfs-ts-nocache  the same with -o cache=off (no dentry cache, kernel timeouts 0)
 *   unionfs-ts-noxattr  the same with -o xattr=off (no xattrs through the mount;
 *                       only when asked for with --systems)
 *
 * Each union gets the layers read-only (top first) and a fresh, empty
 * writable branch. The FUSE peers run with -f as children of the bench, so
 * their PID is known; unionfs-ts daemonizes and names its PID in
 * /run/unionfs-ts/*.pid (second line: the mountpoint).
 *
 * Unmounting never gives up silently: plain umount, retried while busy,
 * then a lazy one; then the daemon gets SIGTERM and at last SIGKILL, by
 * its PID, if it does not exit on its own.
 *
 * Packages. Debian 12's `fuse` (libfuse 2's fusermount) and `fuse3`
 * conflict. fuse-overlayfs depends on fuse3; unionfs-fuse depends on fuse
 * and libfuse2. We install fuse3 and fuse-overlayfs with apt-get (and
 * --no-remove: the bench never removes a package to make room), libfuse2
 * (the library alone, which installs beside fuse3), and unpack
 * unionfs-fuse's .deb (apt-get download, dpkg-deb -x) into the bench's own
 * tools directory instead of installing it: as root, libfuse 2 calls
 * mount(2) and umount2(2) itself and never needs fusermount, so the one
 * thing the `fuse` dependency would bring is not used. An unionfs-fuse
 * already installed system-wide is used as it is.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import {
  commandExists, cpuSeconds, isAlive, killGroup, mountedType, run, sh, sleep, startDaemon, waitFor
} from './proc'

export interface MountSpec {
  /** Read-only layers, top first. */
  layers: readonly string[]
  /** The flattened view (native only). */
  flat: string
  upper: string
  work: string
  mnt: string
  /** The daemon's output. */
  log: string
}

export interface Mounted {
  readonly mnt: string
  /** The FUSE daemon serving the mount. */
  readonly pid?: number
  unmount: () => Promise<void>
}

export interface System {
  readonly name: string
  /** A daemon in userspace (CPU time and RSS are recorded). */
  readonly fuse: boolean
  /** Workloads that write change the flattened view itself. */
  readonly writesFlat: boolean
  /** Why it cannot run here, or undefined. */
  unavailable: () => string | undefined
  version: () => string
  mount: (spec: MountSpec) => Promise<Mounted>
}

export const SYSTEM_NAMES = [
  'native', 'overlayfs', 'fuse-overlayfs', 'unionfs-fuse', 'unionfs-ts', 'unionfs-ts-nocache', 'unionfs-ts-noxattr'
] as const
export type SystemName = typeof SYSTEM_NAMES[number]

const MOUNT_WAIT_MS = 30_000
const EXIT_WAIT_MS = 10_000

function firstLine (s: string): string {
  return s.split('\n').map(l => l.trim()).find(l => l !== '') ?? ''
}

/** The first line of a command's output that names a version, else its first line. */
function tryVersion (cmd: string, args: string[]): string {
  let out = ''
  try {
    out = sh([cmd, ...args].map(a => `'${a}'`).join(' ') + ' 2>&1')
  } catch (err) {
    out = (err as { stdout?: string }).stdout ?? ''
  }
  const lines = out.split('\n').map(l => l.trim())
  return lines.find(l => l.startsWith(cmd) && /version/i.test(l)) ?? lines.find(l => /version/i.test(l)) ?? (firstLine(out) || 'unknown')
}

/** umount(8), retried while busy, then lazily; resolves once `mnt` is no longer a mount. */
async function umountPath (mnt: string, cmd: readonly string[] = ['umount', mnt]): Promise<void> {
  for (let i = 0; i < 20 && mountedType(mnt) !== undefined; i++) {
    const r = await run(cmd[0], cmd.slice(1), { timeoutMs: 30_000 })
    if (r.code === 0) break
    await sleep(250)
  }
  if (mountedType(mnt) !== undefined) await run('umount', ['-l', mnt], { timeoutMs: 30_000 })
}

/** Wait for a daemon to exit after its mount went away; TERM, then KILL it (by PID) if it does not. */
async function reap (pid: number | undefined, started: boolean): Promise<void> {
  if (pid === undefined) return
  if (await waitFor(() => !isAlive(pid) || isZombieOrGone(pid), EXIT_WAIT_MS)) return
  if (started) killGroup(pid, 'SIGTERM')
  else try { process.kill(pid, 'SIGTERM') } catch {}
  if (await waitFor(() => !isAlive(pid) || isZombieOrGone(pid), EXIT_WAIT_MS)) return
  if (started) killGroup(pid, 'SIGKILL')
  else try { process.kill(pid, 'SIGKILL') } catch {}
}

function isZombieOrGone (pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')
  } catch {
    return true
  }
}

// ---------------------------------------------------------------------------

class Native implements System {
  readonly name = 'native'
  readonly fuse = false
  readonly writesFlat = true
  unavailable (): string | undefined { return undefined }
  version (): string { return `bind mount of the flattened tree (${tryVersion('uname', ['-r'])})` }
  async mount (s: MountSpec): Promise<Mounted> {
    const r = await run('mount', ['--bind', s.flat, s.mnt], { timeoutMs: 30_000 })
    if (r.code !== 0) throw new Error(`mount --bind: ${firstLine(r.stderr)}`)
    return { mnt: s.mnt, unmount: async () => { await umountPath(s.mnt) } }
  }
}

class Overlayfs implements System {
  readonly name = 'overlayfs'
  readonly fuse = false
  readonly writesFlat = false
  unavailable (): string | undefined {
    return fs.readFileSync('/proc/filesystems', 'utf8').includes('\toverlay\n') || tryModprobe('overlay')
      ? undefined
      : 'the kernel has no overlay filesystem'
  }

  version (): string { return `kernel ${tryVersion('uname', ['-r'])}` }
  async mount (s: MountSpec): Promise<Mounted> {
    // mount(2) takes one page of options: 128 absolute lower paths do not
    // fit, so the lowers are named relative to their parent directory.
    const cwd = path.dirname(s.layers[0])
    const lower = s.layers.map(l => path.relative(cwd, l)).join(':')
    const o = `lowerdir=${lower},upperdir=${path.relative(cwd, s.upper)},workdir=${path.relative(cwd, s.work)},redirect_dir=on`
    const r = await run('mount', ['-t', 'overlay', 'overlay', '-o', o, s.mnt], { cwd, timeoutMs: 30_000 })
    if (r.code !== 0) throw new Error(`mount -t overlay: ${firstLine(r.stderr)}`)
    return { mnt: s.mnt, unmount: async () => { await umountPath(s.mnt) } }
  }
}

function tryModprobe (mod: string): boolean {
  try {
    sh(`modprobe ${mod} 2>/dev/null`)
    return fs.readFileSync('/proc/filesystems', 'utf8').includes(`\t${mod}\n`)
  } catch {
    return false
  }
}

/** A FUSE daemon the bench runs in the foreground as its own child. */
async function mountForeground (cmd: string, args: string[], s: MountSpec, fstypePrefix: string): Promise<Mounted> {
  const d = startDaemon(cmd, args, s.log)
  let gone = false
  void d.exited.then(() => { gone = true })
  const up = await waitFor(() => gone || (mountedType(s.mnt)?.startsWith(fstypePrefix) ?? false), MOUNT_WAIT_MS)
  if (!up || gone) {
    if (!gone) killGroup(d.pid)
    if (mountedType(s.mnt) !== undefined) await umountPath(s.mnt)
    const tail = fs.existsSync(s.log) ? fs.readFileSync(s.log, 'utf8').trim().split('\n').slice(-3).join(' | ') : ''
    throw new Error(`${path.basename(cmd)} did not mount${tail !== '' ? `: ${tail}` : ''}`)
  }
  return {
    mnt: s.mnt,
    pid: d.pid,
    unmount: async () => {
      try {
        await umountPath(s.mnt)
      } finally {
        await reap(d.pid, true)
      }
    }
  }
}

class FuseOverlayfs implements System {
  readonly name = 'fuse-overlayfs'
  readonly fuse = true
  readonly writesFlat = false
  unavailable (): string | undefined {
    return commandExists('fuse-overlayfs') ? undefined : 'fuse-overlayfs is not installed (apt-get install fuse3 fuse-overlayfs)'
  }

  version (): string { return tryVersion('fuse-overlayfs', ['--version']) }
  async mount (s: MountSpec): Promise<Mounted> {
    const o = `lowerdir=${s.layers.join(':')},upperdir=${s.upper},workdir=${s.work}`
    return await mountForeground('fuse-overlayfs', ['-f', '-o', o, s.mnt], s, 'fuse.fuse-overlayfs')
  }
}

class UnionfsFuse implements System {
  readonly name = 'unionfs-fuse'
  readonly fuse = true
  readonly writesFlat = false
  constructor (private readonly toolsDir: string) {}

  /** The unionfs binary: installed system-wide, or unpacked into the tools directory. */
  binary (): string | undefined {
    const local = path.join(this.toolsDir, 'unionfs-fuse', 'usr', 'bin', 'unionfs')
    if (fs.existsSync(local)) return local
    if (commandExists('unionfs')) return 'unionfs'
    return undefined
  }

  unavailable (): string | undefined {
    if (this.binary() === undefined) return 'unionfs-fuse is not available (see --install)'
    if (!libfuse2Installed()) return 'libfuse2 is not installed (apt-get install libfuse2)'
    return undefined
  }

  version (): string { return `unionfs-fuse ${debVersion('unionfs-fuse', this.toolsDir)}` }
  async mount (s: MountSpec): Promise<Mounted> {
    const bin = this.binary()
    if (bin === undefined) throw new Error('unionfs-fuse is not available')
    const branches = [`${s.upper}=RW`, ...s.layers.map(l => `${l}=RO`)].join(':')
    return await mountForeground(bin, ['-f', '-o', 'cow', branches, s.mnt], s, 'fuse')
  }
}

function libfuse2Installed (): boolean {
  try {
    return sh("dpkg-query -W -f '${Status}' libfuse2 2>/dev/null").includes('install ok installed')
  } catch {
    return false
  }
}

function debVersion (pkg: string, toolsDir: string): string {
  const stamp = path.join(toolsDir, `${pkg}.version`)
  if (fs.existsSync(stamp)) return fs.readFileSync(stamp, 'utf8').trim()
  try {
    return sh(`dpkg-query -W -f '\${Version}' ${pkg} 2>/dev/null`).trim() || 'unknown'
  } catch {
    return 'unknown'
  }
}

class UnionfsTs implements System {
  readonly fuse = true
  readonly writesFlat = false
  constructor (readonly name: string, private readonly bin: string, private readonly opts: readonly string[]) {}

  unavailable (): string | undefined {
    return fs.existsSync(this.bin) ? undefined : `${this.bin} is missing (npm ci builds it)`
  }

  version (): string {
    const root = path.dirname(path.dirname(this.bin))
    let v = 'unknown'
    try {
      v = (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version
    } catch {}
    let rev = ''
    try {
      rev = sh(`git -C '${root}' describe --always --dirty 2>/dev/null`).trim()
    } catch {}
    return `unionfs-ts ${v}${rev !== '' ? ` (${rev})` : ''}${this.opts.length > 0 ? ` -o ${this.opts.join(',')}` : ''}`
  }

  async mount (s: MountSpec): Promise<Mounted> {
    const o = [...this.opts, `log=${s.log}`].join(',')
    const branches = [s.upper, ...s.layers].join(':')
    const r = await run(process.execPath, [this.bin, 'mount', '-o', o, branches, s.mnt], { timeoutMs: MOUNT_WAIT_MS })
    if (r.code !== 0) throw new Error(`unionfs-ts mount: ${firstLine(r.stderr) || `exit ${String(r.code)}`}`)
    const pid = unionfsTsPid(s.mnt)
    return {
      mnt: s.mnt,
      pid,
      unmount: async () => {
        try {
          await umountPath(s.mnt, [process.execPath, this.bin, 'umount', s.mnt])
        } finally {
          await reap(pid, false)
        }
      }
    }
  }
}

/** The daemon serving a unionfs-ts mount, from its pid file. */
export function unionfsTsPid (mnt: string): number | undefined {
  const dir = '/run/unionfs-ts'
  let names: string[] = []
  try { names = fs.readdirSync(dir) } catch { return undefined }
  for (const n of names) {
    if (!n.endsWith('.pid')) continue
    try {
      const [pid, where] = fs.readFileSync(path.join(dir, n), 'utf8').split('\n')
      if (where === mnt && /^[0-9]+$/.test(pid) && cpuSeconds(Number(pid)) !== undefined) return Number(pid)
    } catch {}
  }
  return undefined
}

export function makeSystems (toolsDir: string, unionfsTsBin: string): Map<SystemName, System> {
  return new Map<SystemName, System>([
    ['native', new Native()],
    ['overlayfs', new Overlayfs()],
    ['fuse-overlayfs', new FuseOverlayfs()],
    ['unionfs-fuse', new UnionfsFuse(toolsDir)],
    ['unionfs-ts', new UnionfsTs('unionfs-ts', unionfsTsBin, [])],
    ['unionfs-ts-nocache', new UnionfsTs('unionfs-ts-nocache', unionfsTsBin, ['cache=off'])],
    ['unionfs-ts-noxattr', new UnionfsTs('unionfs-ts-noxattr', unionfsTsBin, ['xattr=off'])]
  ])
}

// ---------------------------------------------------------------------------
// Installing the peers

async function apt (args: string[], cwd?: string): Promise<{ ok: boolean, err: string }> {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  let r = await run('apt-get', args, { cwd, env, timeoutMs: 600_000 })
  if (r.code !== 0) {
    // Stale or missing package lists are the usual cause: refresh once and retry.
    await run('apt-get', ['update'], { env, timeoutMs: 600_000 })
    r = await run('apt-get', args, { cwd, env, timeoutMs: 600_000 })
  }
  return { ok: r.code === 0, err: r.stderr.trim().split('\n').slice(-2).join(' | ') }
}

/** Install what the chosen peers need; returns one line per action or problem. */
export async function installPeers (names: readonly SystemName[], toolsDir: string, log: (s: string) => void): Promise<void> {
  if (names.includes('fuse-overlayfs') && !commandExists('fuse-overlayfs')) {
    log('installing fuse3 and fuse-overlayfs (apt-get)')
    const r = await apt(['install', '-y', '--no-remove', 'fuse3', 'fuse-overlayfs'])
    if (!r.ok) log(`could not install fuse-overlayfs (${r.err}); it will be skipped`)
  }
  if (names.includes('unionfs-fuse')) {
    if (!libfuse2Installed()) {
      log('installing libfuse2 (apt-get)')
      const r = await apt(['install', '-y', '--no-remove', 'libfuse2'])
      if (!r.ok) log(`could not install libfuse2 (${r.err})`)
    }
    const local = path.join(toolsDir, 'unionfs-fuse', 'usr', 'bin', 'unionfs')
    if (!fs.existsSync(local) && !commandExists('unionfs')) {
      log(`unpacking unionfs-fuse into ${toolsDir} (apt-get download, dpkg-deb -x)`)
      const dl = path.join(toolsDir, 'download')
      fs.rmSync(dl, { recursive: true, force: true })
      fs.mkdirSync(dl, { recursive: true })
      // apt's sandbox user must be able to write the download directory.
      try { sh(`chown _apt '${dl}' 2>/dev/null`) } catch {}
      const r = await apt(['download', 'unionfs-fuse'], dl)
      const deb = fs.readdirSync(dl).find(n => n.endsWith('.deb'))
      if (!r.ok || deb === undefined) {
        log(`could not download unionfs-fuse (${r.err}); it will be skipped`)
      } else {
        const x = await run('dpkg-deb', ['-x', path.join(dl, deb), path.join(toolsDir, 'unionfs-fuse')], { timeoutMs: 60_000 })
        if (x.code !== 0) log(`could not unpack ${deb}: ${firstLine(x.stderr)}`)
        const ver = await run('dpkg-deb', ['-f', path.join(dl, deb), 'Version'], { timeoutMs: 60_000 })
        fs.writeFileSync(path.join(toolsDir, 'unionfs-fuse.version'), ver.stdout.trim() + '\n')
      }
      fs.rmSync(dl, { recursive: true, force: true })
    }
  }
}
