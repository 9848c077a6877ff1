/**
 * The library API: what the command line does, from code.
 *
 *   const m = await mount({ branches: ['/upper', '/lower'], mountpoint: '/mnt' })
 *   ...                          // another process's business: see below
 *   await m.unmount()
 *
 * mount() serves the union from a child process (`unionfs-ts mount ... -f`)
 * and resolves once the kernel accepted the mount. The union is never served
 * from the caller's process: a synchronous fs call from the serving process
 * into its own mount waits for the very thread that must answer it. The
 * child belongs to the caller (same process group, so a terminal's Ctrl-C
 * reaches it and it unmounts cleanly) and keeps the caller's event loop
 * alive until unmount() or an outside umount ends it.
 *
 * serve() is the in-process form the daemon itself uses; only a process that
 * never touches the mountpoint may call it.
 */
import type { ChildProcess } from 'node:child_process'
import { readMountInfo } from './mountinfo'
import { resolveOptions, type MountSpec } from './options'
import { unmountPath } from './cli'
import { spawnServer } from './server'

export { unmountPath } from './cli'
export { serve, type Server } from './server'
export { parseOptions, toArgs, type ParseMode } from './option-syntax'
export {
  resolveOptions, OptionsError, FSTYPE,
  type Options, type MountSpec, type MountSettings, type BranchSpec, type FuseMountOptions, type Backend
} from './options'
export { UnionFs } from './union/union-fs'
export { toBytes, fromBytes } from './union/paths'
export type { UnionConfig, WhiteoutDialect } from './union/config'
export type * from './union/types'

export interface MountHandle {
  /** The mountpoint's real absolute path. */
  readonly mountpoint: string
  /** The pid of the process serving the mount. */
  readonly pid: number
  /** Unmount (umount(8)) and wait for the serving process to exit. */
  unmount: () => Promise<void>
}

/**
 * Mount a union. Bad input rejects with an OptionsError before anything is
 * touched; a failed mount rejects with the daemon's one-line error.
 */
export async function mount (spec: MountSpec): Promise<MountHandle> {
  const options = resolveOptions({ ...spec, foreground: true })
  const { child, pid } = await spawnServer(options, { detached: false, stderr: 'inherit' })
  const exited = exitOf(child)
  let unmounting: Promise<void> | undefined
  return {
    mountpoint: options.mountpoint,
    pid,
    unmount: () => {
      unmounting ??= (async () => {
        try {
          await unmountPath(options.mountpoint)
        } catch (err) {
          // Already unmounted from outside: the daemon is on its way out.
          if (readMountInfo().some(m => m.mountpoint === options.mountpoint)) throw err
        }
        const code = await exited
        if (code !== 0) throw new Error(`the daemon serving ${options.mountpoint} exited with ${code}`)
      })()
      return unmounting
    }
  }
}

function exitOf (child: ChildProcess): Promise<number | string> {
  return new Promise(resolve => {
    if (child.exitCode !== null) resolve(child.exitCode)
    else if (child.signalCode !== null) resolve(child.signalCode)
    else child.once('exit', (code, signal) => resolve(signal ?? code ?? -1))
  })
}

// Seeing copy-on-write happen: the lookup walk of a path, a mount's live counters.
export { inspect, stats, formatInspection, formatStats } from './observe/commands'
export type { Inspection, BranchWalk, ListedEntry } from './observe/inspect'
export type { MountStats, MountConfig } from './observe/daemon'
export type { UnionEvent, UnionCounters } from './union/events'
