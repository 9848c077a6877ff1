/**
 * The daemon's side of observing a mount: the stats channel's answers (live
 * counters, and the configuration `inspect` walks), opened by the `-f`
 * process once the mount is live and closed when it ends.
 */
import type { Server } from '../server'
import { openChannel, type Channel } from './channel'

export interface BranchInfo {
  layer: number
  path: string
  writable: boolean
}

/** What `config` answers: enough for `inspect` to walk the branches itself. */
export interface MountConfig {
  mountpoint: string
  pid: number
  branches: BranchInfo[]
  workdir?: string
  whiteout: 'aufs' | 'overlay'
  xattrNamespace: 'trusted' | 'user'
}

/** What `stats` answers. */
export interface MountStats {
  mountpoint: string
  pid: number
  uptimeSeconds: number
  /** splicedReads: READ replies spliced from the file (protocol backend only). */
  requests: { total: number, byKind: Record<string, number>, splicedReads?: number }
  dentryCache: { hits: number, misses: number, negativeHits: number, size: number, capacity: number }
  copyUps: number
  bytesCopied: number
  whiteouts: number
  opaques: number
  renames: number
  kernel: { nodes: number, openFiles: number, openDirs: number, passthroughOpens?: number }
}

export function mountConfig (server: Server): MountConfig {
  const { union } = server.options
  return {
    mountpoint: server.options.mountpoint,
    pid: process.pid,
    branches: server.fs.layers.map(b => ({ layer: b.index, path: b.root, writable: b.writable })),
    ...(union.workdir === undefined ? {} : { workdir: union.workdir }),
    whiteout: union.whiteout,
    xattrNamespace: union.xattrNamespace
  }
}

export function mountStats (server: Server, startedAt: number): MountStats {
  const s = server.session.stats()
  const c = server.fs.counters
  const cache = server.fs.cacheStats()
  return {
    mountpoint: server.options.mountpoint,
    pid: process.pid,
    uptimeSeconds: Math.round((Date.now() - startedAt) / 100) / 10,
    requests: {
      total: s.requests,
      byKind: s.requestsByKind ?? {},
      ...(s.splicedReads === undefined ? {} : { splicedReads: s.splicedReads })
    },
    dentryCache: { ...cache, capacity: server.options.union.cacheEntries },
    copyUps: c.copyUps,
    bytesCopied: c.bytesCopied,
    whiteouts: c.whiteouts,
    opaques: c.opaques,
    renames: c.renames,
    kernel: {
      nodes: s.nodes,
      openFiles: s.openFiles,
      openDirs: s.openDirs,
      ...(s.passthroughOpens === undefined ? {} : { passthroughOpens: s.passthroughOpens })
    }
  }
}

/** Open the stats channel of a served mount. */
export async function openStatsChannel (server: Server): Promise<Channel> {
  const startedAt = Date.now()
  return await openChannel(server.options.mountpoint, op => {
    if (op === 'stats') return mountStats(server, startedAt)
    if (op === 'config') return mountConfig(server)
    throw new Error(`unknown request '${op}'`)
  })
}
