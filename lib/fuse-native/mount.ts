/**
 * mountFuseNative: serve a UnionFsApi at a mountpoint through fuse-native
 * and libfuse 2, with the same signature and session as lib/fuse's
 * mountFuse.
 *
 * Mount options. fuse-native builds the libfuse argument from a whitelist
 * that lacks use_ino, big_writes and max_write; its option builder is
 * replaced (binding.ts), and libfuse gets one `-o` list:
 *   fsname, subtype=unionfs-ts      (the mount shows as fuse.unionfs-ts)
 *   default_permissions, allow_other (root's default, as lib/fuse)
 *   use_ino                          (st_ino is the union's, not libfuse's)
 *   big_writes, max_write=131072     (128 KiB writes instead of 4 KiB ones;
 *                                     libfuse 2 cannot negotiate more pages)
 *   entry_timeout, attr_timeout, negative_timeout
 * hard_remove is left off: unlinking an open file makes libfuse rename it
 * to `.fuse_hiddenNNNN` (through the union, so it lands on the writable
 * branch) and unlink that at release, which keeps the open file readable
 * as POSIX wants; with hard_remove, reads of it would fail with ENOENT.
 * fuse-native's per-op timeout (15 s, then ETIMEDOUT) is turned off: a
 * copy-up of a large file may take longer. libfuse 2 has no writeback cache
 * and no invalidation notices: `writeback` is ignored, the notify calls
 * answer false.
 *
 * Mounting needs root here: libfuse 2 mounts with mount(2) itself and falls
 * back to fusermount, which a fresh machine lacks.
 *
 * Ending. fuse-native tells JS nothing when libfuse's loop ends (unmounted
 * from here or outside, or aborted), and its unmount runs `fusermount -uz`.
 * So: unmount() runs umount(8) (lazily when busy, as lib/fuse does), and the
 * session watches the /dev/fuse descriptor libfuse opened (found by
 * comparing /proc/self/fd before and after mounting): libfuse closes it once
 * its loop has ended, after the last request, lazy unmounts included. Then
 * the mount's libuv handle is unreferenced, fs.destroy() runs and `closed`
 * resolves.
 *
 * The serving process never touches its own mountpoint: fuse-native and
 * libfuse stat it before mounting only; afterwards only /proc is read.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { FuseLog, debugFromEnv } from '../fuse/log'
import { unmountPath } from '../fuse/mount-cmd'
import type { FuseMountOptions, FuseSession } from '../fuse/types'
import type { UnionFsApi } from '../union/types'
import { loadFuseNative, type FuseInternals } from './binding'
import { makeOps, serveOp } from './ops'

/** libfuse 2's largest write: 32 pages, what the kernel allows without max_pages. */
export const MAX_WRITE = 131072
const SUBTYPE = 'unionfs-ts'
const XATTR_OPS = ['getxattr', 'setxattr', 'listxattr', 'removexattr']
/** How often the session checks whether libfuse's loop has ended. */
const WATCH_MS = 100

function seconds (v: number | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt
  if (!Number.isFinite(v) || v < 0) throw new TypeError(`${name} must be a number of seconds >= 0, got ${String(v)}`)
  return v
}

/** The libfuse option list for `opts` (exported for the test). */
export function libfuseOptions (opts: FuseMountOptions, uid: number): string[] {
  const fsname = opts.fsname ?? 'unionfs-ts'
  if (fsname === '' || /[\s,\\]/.test(fsname)) throw new TypeError(`fsname must be one word without commas: ${JSON.stringify(fsname)}`)
  const o = [
    `fsname=${fsname}`, `subtype=${SUBTYPE}`, 'default_permissions', 'use_ino', 'big_writes', `max_write=${MAX_WRITE}`,
    `entry_timeout=${seconds(opts.entryTimeout, 'entryTimeout', 1)}`,
    `attr_timeout=${seconds(opts.attrTimeout, 'attrTimeout', 1)}`,
    `negative_timeout=${seconds(opts.negativeTimeout, 'negativeTimeout', 1)}`
  ]
  if (opts.allowOther ?? uid === 0) o.push('allow_other')
  return o
}

/** Descriptors of this process open on /dev/fuse. */
function fuseDeviceFds (): Set<number> {
  const fds = new Set<number>()
  for (const name of fs.readdirSync('/proc/self/fd')) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${name}`) === '/dev/fuse') fds.add(Number(name))
    } catch {
      // closed since the listing (the listing's own descriptor, for one)
    }
  }
  return fds
}

function unescapeMountPath (s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)))
}

/** Ids of the FUSE mounts at `mnt` in this process's mount table. */
function fuseMountIds (mnt: string): Set<string> {
  const ids = new Set<string>()
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ')
    const sep = f.indexOf('-')
    if (sep > 0 && unescapeMountPath(f[4]) === mnt && f[sep + 1].startsWith('fuse')) ids.add(f[0])
  }
  return ids
}

function mountWith (fuse: FuseInternals): Promise<void> {
  return new Promise((resolve, reject) => {
    fuse.mount((err) => { if (err !== null && err !== undefined) reject(err); else resolve() })
  })
}

export async function mountFuseNative (unionFs: UnionFsApi, mountpoint: string, opts: FuseMountOptions = {}): Promise<FuseSession> {
  const uid = process.getuid?.() ?? 0
  const gid = process.getgid?.() ?? 0
  const options = libfuseOptions(opts, uid)
  const mnt = path.resolve(mountpoint)
  if (uid !== 0) {
    throw new Error(`mounting ${mnt} failed: the fuse-native backend needs root (running as uid ${uid})`)
  }
  const { Fuse, binding, libfuse } = loadFuseNative()
  const log = new FuseLog(opts.debug === true || debugFromEnv())
  log.info(`fuse-native backend, libfuse from ${libfuse}, options ${options.join(',')}`)
  if (opts.writeback === true) log.info('writeback cache requested: libfuse 2 has none, ignored')

  const counter = { requests: 0 }
  const openFiles = { n: 0 }
  const ops = makeOps(unionFs, { uid, gid, pid: 0 }, openFiles)
  // Ops left out get ENOSYS from libfuse, and the kernel stops asking (FuseMountOptions.xattr).
  if (opts.xattr === false) for (const name of XATTR_OPS) Reflect.deleteProperty(ops, name)
  const fuse = new Fuse(mnt, Object.fromEntries(Object.keys(ops).map(n => [n, true])), { timeout: false })
  for (const [name, def] of Object.entries(ops)) fuse[`_op_${name}`] = serveOp(name, def, log, counter)
  fuse._fuseOptions = () => '-o' + options.join(',')

  const devBefore = fuseDeviceFds()
  const mountsBefore = fuseMountIds(mnt)
  try {
    await mountWith(fuse)
  } catch (err) {
    // libfuse mounts before it parses its own options: a failure after that
    // leaves a mount nobody serves.
    for (const id of fuseMountIds(mnt)) {
      if (!mountsBefore.has(id)) await unmountPath(mnt).catch(() => undefined)
    }
    const why = (err as Error).message === 'fuse failed' ? 'libfuse refused (its message, if any, is above)' : (err as Error).message
    throw new Error(`mounting ${mnt} failed: ${why}`)
  }
  const devFd = [...fuseDeviceFds()].find(fd => !devBefore.has(fd))
  const mountId = [...fuseMountIds(mnt)].find(id => !mountsBefore.has(id))
  log.info(`mounted ${mnt} (mount id ${mountId ?? '?'}, /dev/fuse fd ${devFd ?? '?'})`)

  const live = (): boolean => {
    if (devFd !== undefined) {
      try {
        return fs.readlinkSync(`/proc/self/fd/${devFd}`) === '/dev/fuse'
      } catch {
        return false
      }
    }
    return mountId !== undefined && fuseMountIds(mnt).has(mountId)
  }

  let resolveClosed!: () => void
  const closed = new Promise<void>((resolve) => { resolveClosed = resolve })
  const watch = setInterval(() => {
    if (live()) return
    clearInterval(watch)
    log.info(`session on ${mnt} ended`)
    if (fuse._thread !== null) binding.fuse_native_unmount(mnt, fuse._thread)
    unionFs.destroy()
      .catch((err: unknown) => { log.error('destroy failed', err) })
      .finally(resolveClosed)
  }, WATCH_MS)
  // While mounted, fuse-native's own handle keeps the event loop alive.
  watch.unref()

  let unmounting: Promise<void> | undefined
  return {
    mountpoint: mnt,
    closed,
    unmount: async () => {
      unmounting ??= unmountPath(mnt).then(async () => { await closed }, (err: unknown) => {
        unmounting = undefined
        throw err
      })
      await unmounting
    },
    notifyInvalEntry: () => false,
    notifyInvalInode: () => false,
    nodeIdOf: () => undefined,
    stats: () => ({ requests: counter.requests, nodes: 0, openDirs: 0, openFiles: openFiles.n })
  }
}
