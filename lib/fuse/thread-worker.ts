/**
 * The serving thread's entry (thread.ts): open the union's twin, serve the
 * device with the blocking 'sync' loop until the connection ends, say
 * 'closed'. An exception out of here reaches the owner as the worker's
 * 'error' event.
 */
import { parentPort, workerData } from 'node:worker_threads'
import type { UnionFsApi } from '../union/types'
import type { BackingIoctls } from './passthrough'
import { FuseConnection } from './session'
import { FLAG_READY } from './shared-state'
import type { ThreadData } from './thread'

const data = workerData as ThreadData

/** Tell the owner, waiting in start(), that this thread serves (1) or failed (-1). */
function ready (v: 1 | -1): void {
  Atomics.store(data.shared.flags, FLAG_READY, v)
  Atomics.notify(data.shared.flags, FLAG_READY)
}

async function main (): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const mod = require(data.union.module) as { openUnion: (arg: unknown) => Promise<UnionFsApi> }
  const union = await mod.openUnion(data.union.arg)
  // Without the addon: no passthrough, and reads that sleep at once.
  const native = await import('../native').catch(() => undefined)
  const backing: BackingIoctls | undefined = data.backing && native !== undefined
    ? { open: native.fuseBackingOpen, close: native.fuseBackingClose }
    : undefined
  // The device is the owner's: it closes it once this thread says 'closed'.
  const conn = new FuseConnection({
    ...data.session, fs: union, backing, splice: data.splice ? native : undefined, readDevice: native?.readDevice, loop: 'sync', shared: data.shared, ownsFd: false
  })
  ready(1)
  conn.start()
  await conn.closed
  parentPort?.postMessage({ closed: true })
}

main().catch((err: unknown) => {
  ready(-1)
  // Rethrown outside the promise: the owner sees it as 'error'.
  setImmediate(() => { throw err })
})
