/**
 * mountFuse: open /dev/fuse, start serving it, mount it, hand back the
 * session.
 *
 * Order matters: the session reads before the mount is made, because the
 * kernel queues INIT while mounting and anything that then touches the
 * mount would wait for our answer. The mount is made by mount(2) through
 * the native addon when it is built (mount(2) does not wait for INIT, so
 * the synchronous call is safe), else by `mount -i -t fuse.unionfs-ts` with
 * the device as the child's fd 3. The addon also brings the passthrough
 * ioctls (passthrough.ts); without it every file is served through the
 * daemon. Always with default_permissions, so the kernel checks
 * permissions against the attributes we report.
 *
 * An ordinary user mounts through the setuid fusermount3 instead
 * (fusermount.ts), which hands back the /dev/fuse descriptor of the mount
 * it made; the session starts once it has. What only root may have is
 * left out quietly: allow_other unless asked for (fusermount3 refuses it
 * without user_allow_other in /etc/fuse.conf), and passthrough (the
 * backing-file ioctl needs CAP_SYS_ADMIN). A user's mount is nosuid,nodev.
 *
 * Unmounting always goes through umount(8) (`fusermount3 -u` for a user)
 * in a child process: umount(2)
 * from this thread could deadlock, as the kernel writes dirty pages back
 * (WRITE requests we would have to answer) before it lets go.
 *
 * The serving process never touches its own mountpoint: no stat, no
 * realpath, before or after; mount(8) and umount(8), separate processes,
 * are the only ones that look at it.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { mountAt } from '../mountinfo'
import { settles } from '../settles'
import type { UnionFsApi } from '../union/types'
import { fuserUnmount, fusermountFd } from './fusermount'
import { isReaddirPlusMode, READDIRPLUS_MODES, type ReaddirPlusMode } from './listing-attrs'
import { debugFromEnv } from './log'
import { mountFd, unmountPath } from './mount-cmd'
import type { BackingIoctls } from './passthrough'
import type { SpliceCalls } from './splice'
import type { SessionConfig } from './session'
import { openConnection, type Connection } from './thread'
import { DEFAULT_READAHEAD_KB, defaultSpinUs, MAX_SPIN_US, type FuseMountOptions, type FuseSession } from './types'

const FSTYPE = 'fuse.unionfs-ts'

/** mount(2)'s read-only flag (MS_RDONLY in <sys/mount.h>). */
const MS_RDONLY = 1

type Mount2 = (source: string, target: string, fstype: string, flags: number, data: string) => void

interface Native {
  mount2: Mount2
  backing: BackingIoctls
  splice: SpliceCalls
  socketpair: () => [number, number]
  recvFd: (sockFd: number) => number
}

/** mount(2), the backing-file ioctls and the splice calls from the native addon, or undefined when it is not built. */
async function loadNative (): Promise<Native | undefined> {
  try {
    const n = await import('../native')
    return {
      mount2: n.mount,
      backing: { open: n.fuseBackingOpen, close: n.fuseBackingClose },
      splice: n,
      socketpair: n.socketpair,
      recvFd: n.recvFd
    }
  } catch {
    return undefined
  }
}

function mountOptions (opts: FuseMountOptions, fd: number, uid: number, gid: number): string {
  const o = [`fd=${fd}`, 'rootmode=40000', `user_id=${uid}`, `group_id=${gid}`, 'default_permissions']
  if (opts.allowOther ?? uid === 0) o.push('allow_other')
  return o.join(',')
}

/** For fusermount3: it sets fd, rootmode, user_id and group_id itself. */
function userMountOptions (opts: FuseMountOptions, fsname: string): string {
  const o = [`fsname=${fsname}`, `subtype=${FSTYPE.slice('fuse.'.length)}`, 'default_permissions']
  if (opts.allowOther === true) o.push('allow_other')
  if (opts.readOnly === true) o.push('ro')
  return o.join(',')
}

function seconds (v: number | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt
  if (!Number.isFinite(v) || v < 0) throw new TypeError(`${name} must be a number of seconds >= 0, got ${String(v)}`)
  return v
}

function spinUs (v: number | undefined): number {
  if (v === undefined) return defaultSpinUs()
  if (!Number.isSafeInteger(v) || v < 0 || v > MAX_SPIN_US) throw new TypeError(`spin must be whole microseconds from 0 to ${MAX_SPIN_US}, got ${String(v)}`)
  return v
}

function readaheadKb (v: number | undefined): number {
  if (v === undefined) return DEFAULT_READAHEAD_KB
  if (!Number.isSafeInteger(v) || v < 0) throw new TypeError(`readahead must be whole KiB >= 0, got ${String(v)}`)
  return v
}

function readdirPlus (v: ReaddirPlusMode | undefined): ReaddirPlusMode {
  if (v === undefined) return 'auto'
  if (!isReaddirPlusMode(v)) throw new TypeError(`readdirplus must be one of ${READDIRPLUS_MODES.join(', ')}, got ${String(v)}`)
  return v
}

export async function mountFuse (unionFs: UnionFsApi, mountpoint: string, opts: FuseMountOptions = {}): Promise<FuseSession> {
  const fsname = opts.fsname ?? 'unionfs-ts'
  if (fsname === '') throw new TypeError('fsname must not be empty')
  const config = {
    fs: unionFs,
    entryTimeout: seconds(opts.entryTimeout, 'entryTimeout', 1),
    attrTimeout: seconds(opts.attrTimeout, 'attrTimeout', 1),
    negativeTimeout: seconds(opts.negativeTimeout, 'negativeTimeout', 1),
    writeback: opts.writeback === true,
    killPriv: opts.killpriv ?? true,
    passthrough: opts.passthrough ?? true,
    spinUs: spinUs(opts.spin),
    readdirPlus: readdirPlus(opts.readdirplus),
    xattr: opts.xattr ?? true,
    acl: opts.acl ?? true,
    debug: opts.debug === true || debugFromEnv()
  }
  const readahead = readaheadKb(opts.readahead)
  const uid = process.getuid?.() ?? 0
  const gid = process.getgid?.() ?? 0
  const mnt = path.resolve(mountpoint)
  if (uid !== 0) return await mountAsUser(config, mnt, opts, fsname)

  let fd: number
  try {
    fd = fs.openSync('/dev/fuse', fs.constants.O_RDWR)
  } catch (err) {
    throw new Error(`mounting ${mnt} failed: cannot open /dev/fuse: ${(err as Error).message}`)
  }
  const native = await loadNative()
  const mount2 = opts.useMountCommand === true ? undefined : native?.mount2
  const conn = openConnection({ fd, ...config, backing: native?.backing, splice: native?.splice })
  conn.start()
  try {
    if (mount2 !== undefined) {
      try {
        mount2(fsname, mnt, FSTYPE, opts.readOnly === true ? MS_RDONLY : 0, mountOptions(opts, fd, uid, gid))
      } catch (err) {
        throw new Error(`mounting ${mnt} failed: ${(err as Error).message}`)
      }
    } else {
      // The child gets the device as its fd 3.
      const ro = opts.readOnly === true ? ',ro' : ''
      await mountFd(fd, fsname, mnt, FSTYPE, mountOptions(opts, 3, uid, gid) + ro)
    }
  } catch (err) {
    conn.abandon()
    // An unattached device ends the reads at once (EPERM). If mount(8)
    // failed after the kernel had mounted it, the reads wait on a live
    // mount: take that mount down too.
    if (!await settles(conn.closed, 1000)) {
      await unmountPath(mnt).catch(() => {})
      if (!await settles(conn.closed, 5000)) conn.log.error(`the device of the failed mount on ${mnt} is still being read`)
    }
    throw err
  }
  conn.setMounted()
  conn.log.info(`mounted ${fsname} on ${mnt} with ${mount2 !== undefined ? 'mount(2)' : 'mount(8)'}`)
  await setReadahead(conn, mnt, readahead)

  return sessionOf(conn, mnt, unmountPath)
}

/**
 * An ordinary user's mount: fusermount3 mounts and hands back the device,
 * then the session starts. Passthrough is not asked for: registering a
 * backing file needs CAP_SYS_ADMIN.
 */
async function mountAsUser (config: Omit<SessionConfig, 'fd' | 'backing'>, mnt: string, opts: FuseMountOptions, fsname: string): Promise<FuseSession> {
  const native = await loadNative()
  if (native === undefined) {
    throw new Error(`mounting ${mnt} failed: without root, mounting needs the native addon (native-shim) to receive fusermount3's descriptor`)
  }
  if (fsname.includes(',')) throw new Error(`mounting ${mnt} failed: fsname must not contain ',' when mounting through fusermount3`)
  const fd = await fusermountFd(native, mnt, userMountOptions(opts, fsname))
  const conn = openConnection({ fd, ...config, passthrough: false, backing: undefined, splice: native.splice })
  conn.start()
  conn.setMounted()
  conn.log.info(`mounted ${fsname} on ${mnt} with fusermount3 (uid ${process.getuid?.() ?? '?'}; passthrough off)`)

  return sessionOf(conn, mnt, fuserUnmount)
}

/** How long setReadahead waits for INIT's answer. */
const INIT_WAIT_MS = 5000

/**
 * The kernel reads ahead of a sequential reader by the mount's own
 * read_ahead_kb, 128 KiB on a FUSE mount (INIT's max_readahead can only
 * lower it), so a daemon-served cold read comes as one 128 KiB READ after
 * another. Raised through /sys/class/bdi/MAJOR:MINOR/read_ahead_kb, which
 * only root may write, once INIT is answered (the answer would lower it
 * again). The mount's device number comes from /proc/self/mountinfo: the
 * mountpoint itself is not touched. A failure leaves the kernel's value.
 */
async function setReadahead (conn: Connection, mnt: string, kb: number): Promise<void> {
  if (kb === 0) return
  const until = Date.now() + INIT_WAIT_MS
  while (!conn.agreed()) {
    if (Date.now() > until) {
      conn.log.info(`readahead: INIT not answered in ${INIT_WAIT_MS} ms; left as the kernel set it`)
      return
    }
    await new Promise(resolve => setTimeout(resolve, 2))
  }
  try {
    const dev = mountAt(mnt)?.device
    if (dev === undefined) throw new Error(`${mnt} is not in /proc/self/mountinfo`)
    fs.writeFileSync(`/sys/class/bdi/${dev}/read_ahead_kb`, String(kb))
  } catch (err) {
    conn.log.info(`readahead: left as the kernel set it: ${(err as Error).message}`)
  }
}

/** The handle of a mounted connection; `unmount` runs `umount` once (again after a failure) and waits for the end. */
function sessionOf (conn: Connection, mnt: string, umount: (mnt: string) => Promise<void>): FuseSession {
  let unmounting: Promise<void> | undefined
  return {
    mountpoint: mnt,
    closed: conn.closed,
    unmount: async () => {
      unmounting ??= umount(mnt).then(async () => { await conn.closed }, (err: unknown) => {
        unmounting = undefined
        throw err
      })
      await unmounting
    },
    notifyInvalEntry: (parent, name) => conn.notifyInvalEntry(parent, name),
    notifyInvalInode: (node, off, len) => conn.notifyInvalInode(node, off, len),
    nodeIdOf: (p) => conn.ctx.nodes.nodeIdOf(p),
    stats: () => conn.stats()
  }
}
