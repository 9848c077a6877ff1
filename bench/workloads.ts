/**
 * The workloads, each a command or a worker process run against a mounted
 * view, never inside the process serving the mount.
 *
 * Reads (each on a fresh mount: cold after `sync; echo 3 >
 * /proc/sys/vm/drop_caches`, then warm, repeated):
 *   find       `find MNT | wc -l`
 *   ls-lR      `ls -lR MNT | wc -l` (an lstat, and ls's xattr probes, per name)
 *   lstat      lstat of every small file (worker)
 *   missing    lstat of names that exist nowhere, in existing directories (worker)
 *   readdir    one readdir of the directory whose entries come from every layer (worker)
 *   tar        `tar -cf - . | wc -c` of every small file (GNU tar skips the
 *              reads when it writes to /dev/null, so the bytes go to wc)
 *   seqread    `dd if=big.bin of=/dev/null bs=1M`, the 256 MiB file in the bottom layer
 * Writes (one mount, one shot each, in this order; caches dropped before each):
 *   copyup     first write of 4 KiB at offset 0 of the 256 MiB lower file (its
 *              lower copy read into the page cache first, so the copy is timed,
 *              not the disk); the bytes written are the ones already there
 *   seqwrite   `dd if=/dev/zero of=MNT/seqwrite.bin bs=1M count=256 conv=fsync`
 *   chmod      chmod 0600 of lower files (worker)
 *   touch      utimes of other lower files (worker)
 *   create     new empty files in lower directories (worker)
 *   unlink     unlink of lower files (worker)
 *
 * Each result carries a `check` (entries found, bytes read, calls that
 * succeeded) so a system that returns the wrong tree is caught: the bench
 * compares it with what the view says or with native's.
 */
import * as path from 'node:path'
import { run, type RunResult } from './proc'
import { BIG_FILE, EVERY_LAYER_DIR, readList, type BuiltLayers, type BuiltView } from './tree'

export type Temp = 'cold' | 'warm'

export interface WorkloadCtx {
  mnt: string
  view: BuiltView
  layers: BuiltLayers
  /** dist/bench/worker.js */
  worker: string
  timeoutMs: number
  /** Big file size in MiB. */
  bigMiB: number
  /** Where the system reads the big file from (the bottom layer's, or the flattened copy). */
  bigSource: string
}

export interface Measure {
  seconds: number
  check?: number
  error?: string
  timedOut?: boolean
  /** Page-cache drops by others while it ran. */
  drops?: number
}

export interface Workload {
  readonly id: string
  readonly title: string
  readonly kind: 'read' | 'write'
  /** What `check` must equal, when the view alone says it; else it is compared with native's. */
  expect?: (ctx: WorkloadCtx) => number | undefined
  /** Untimed work after dropping caches and before the timed run. */
  prepare?: (ctx: WorkloadCtx) => Promise<void>
  run: (ctx: WorkloadCtx) => Promise<Measure>
}

function failure (r: RunResult, what: string): string | undefined {
  if (r.timedOut) return 'timed out'
  if (r.code !== 0) return `${what} exited ${r.code ?? r.signal ?? '?'}: ${r.stderr.trim().split('\n')[0] ?? ''}`
  return undefined
}

async function shell (ctx: WorkloadCtx, script: string, args: string[], what: string): Promise<Measure> {
  const r = await run('sh', ['-c', script, 'sh', ...args], { timeoutMs: ctx.timeoutMs, cwd: '/' })
  const error = failure(r, what)
  const n = Number(r.stdout.trim())
  return {
    seconds: r.seconds,
    ...(Number.isFinite(n) && r.stdout.trim() !== '' ? { check: n } : {}),
    ...(error !== undefined ? { error } : {}),
    ...(r.timedOut ? { timedOut: true } : {})
  }
}

interface WorkerOut { seconds: number, ok: number, failed: number, firstError?: string }

/** Run a worker op; `want` says which count is the check ('ok' or 'failed'). */
async function worker (ctx: WorkloadCtx, args: string[], want: 'ok' | 'failed' = 'ok'): Promise<Measure> {
  const r = await run(process.execPath, [ctx.worker, args[0], ctx.mnt, ...args.slice(1)], { timeoutMs: ctx.timeoutMs, cwd: '/' })
  const error = failure(r, `worker ${args[0]}`)
  if (error !== undefined) return { seconds: r.seconds, error, ...(r.timedOut ? { timedOut: true } : {}) }
  let out: WorkerOut
  try {
    out = JSON.parse(r.stdout) as WorkerOut
  } catch {
    return { seconds: r.seconds, error: `worker ${args[0]}: no result` }
  }
  const m: Measure = { seconds: out.seconds, check: out[want] }
  if (want === 'ok' && out.failed > 0) m.error = `${out.failed} failed, first: ${out.firstError ?? '?'}`
  if (want === 'failed' && out.ok > 0) m.error = `${out.ok} names that should be missing were found`
  return m
}

function count (ctx: WorkloadCtx, list: 'files' | 'missing' | 'chmod' | 'touch' | 'create' | 'unlink'): number {
  return readList(ctx.view.lists[list]).length
}

export const WORKLOADS: readonly Workload[] = [
  {
    id: 'find',
    title: 'find',
    kind: 'read',
    // The root, every directory, every small file and big.bin.
    expect: (ctx) => 1 + ctx.view.view.dirs.length + ctx.view.view.files.length + 1,
    run: async (ctx) => await shell(ctx, 'find "$1" | wc -l', [ctx.mnt], 'find')
  },
  {
    id: 'ls-lR',
    title: 'ls -lR',
    kind: 'read',
    run: async (ctx) => await shell(ctx, 'ls -lR "$1" | wc -l', [ctx.mnt], 'ls -lR')
  },
  {
    id: 'lstat',
    title: 'lstat every file',
    kind: 'read',
    expect: (ctx) => count(ctx, 'files'),
    run: async (ctx) => await worker(ctx, ['lstat', ctx.view.lists.files])
  },
  {
    id: 'missing',
    title: 'lstat missing names',
    kind: 'read',
    expect: (ctx) => count(ctx, 'missing'),
    run: async (ctx) => await worker(ctx, ['lstat', ctx.view.lists.missing], 'failed')
  },
  {
    id: 'readdir',
    title: 'readdir, every-layer dir',
    kind: 'read',
    expect: (ctx) => ctx.view.view.common.length,
    run: async (ctx) => await worker(ctx, ['readdir', EVERY_LAYER_DIR])
  },
  {
    id: 'tar',
    title: 'read small files (tar)',
    kind: 'read',
    run: async (ctx) => await shell(ctx, 'tar -C "$1" -cf - --exclude=./big . | wc -c', [ctx.mnt], 'tar')
  },
  {
    id: 'seqread',
    title: 'sequential read',
    kind: 'read',
    expect: (ctx) => ctx.bigMiB,
    run: async (ctx) => await shell(ctx,
      'dd if="$1" of=/dev/null bs=1M 2>&1 | sed -n "s/^\\([0-9]*\\) bytes.*/\\1/p" | awk "{print \\$1/1048576}"',
      [path.join(ctx.mnt, BIG_FILE)], 'dd')
  },
  {
    id: 'copyup',
    title: 'copy-up: first write',
    kind: 'write',
    expect: () => 1,
    prepare: async (ctx) => {
      await run('sh', ['-c', 'cat "$1" > /dev/null', 'sh', ctx.bigSource])
    },
    run: async (ctx) => await worker(ctx, ['firstwrite', BIG_FILE, ctx.view.bigHead])
  },
  {
    id: 'seqwrite',
    title: 'sequential write',
    kind: 'write',
    expect: (ctx) => ctx.bigMiB,
    run: async (ctx) => await shell(ctx,
      `dd if=/dev/zero of="$1" bs=1M count=${ctx.bigMiB} conv=fsync 2>&1 | sed -n "s/^\\([0-9]*\\) bytes.*/\\1/p" | awk "{print \\$1/1048576}"`,
      [path.join(ctx.mnt, 'seqwrite.bin')], 'dd')
  },
  {
    id: 'chmod',
    title: 'chmod lower files',
    kind: 'write',
    expect: (ctx) => count(ctx, 'chmod'),
    run: async (ctx) => await worker(ctx, ['chmod', ctx.view.lists.chmod])
  },
  {
    id: 'touch',
    title: 'touch lower files',
    kind: 'write',
    expect: (ctx) => count(ctx, 'touch'),
    run: async (ctx) => await worker(ctx, ['touch', ctx.view.lists.touch])
  },
  {
    id: 'create',
    title: 'create in lower dirs',
    kind: 'write',
    expect: (ctx) => count(ctx, 'create'),
    run: async (ctx) => await worker(ctx, ['create', ctx.view.lists.create])
  },
  {
    id: 'unlink',
    title: 'unlink lower files',
    kind: 'write',
    expect: (ctx) => count(ctx, 'unlink'),
    run: async (ctx) => await worker(ctx, ['unlink', ctx.view.lists.unlink])
  }
]

export const WORKLOAD_IDS = WORKLOADS.map(w => w.id)
