/**
 * `-o trace[=FILE]`: one line per copy-up, whiteout, opaque mark and rename,
 * as the core reports them (lib/union/events.ts), with the union path, the
 * branches involved, the bytes copied and the time taken.
 *
 *   text (default):
 *     2026-11-23T07:30:01.123Z copy-up /etc/motd from layer 2 (/l1) to layer 0 (/up): 1048576 bytes in 3.210 ms
 *     2026-11-23T07:30:01.200Z whiteout /bin/old in layer 0 (/up) as .wh.old, hides layer 1 (/l2): 0.104 ms
 *     2026-11-23T07:30:01.300Z opaque /d in layer 0 (/up) as .wh..wh..opq: 0.080 ms
 *     2026-11-23T07:30:01.400Z rename /a -> /b from layer 1 (/l2) to layer 0 (/up): 0 bytes copied in 0.512 ms
 *   json (`trace_format=json`): the same as one JSON object a line:
 *     {"time":"...","event":"copy-up","path":"/etc/motd","from":{"layer":2,"branch":"/l1"},
 *      "to":{"layer":0,"branch":"/up"},"bytes":1048576,"ms":3.21}
 *
 * Lines are appended with one write(2) each (O_APPEND), synchronously, so
 * they are in order and whole even when several mounts share a file. A
 * whiteout's "hides" is looked up in the branches below the writable one
 * (through the dentry cache, so tracing adds to its counters).
 */
import * as fs from 'node:fs'
import type { TraceSettings } from '../options'
import type { UnionEvent } from '../union/events'
import type { UnionFs } from '../union/union-fs'
import { baseName, fromBytes } from '../union/paths'
import { OPAQUE_MARKER, WH_PREFIX } from '../union/whiteouts'

export interface Tracer {
  close: () => void
}

interface Where { layer: number, branch: string }

/** Start tracing `union`'s events; close() stops and closes the file. */
export function startTrace (union: UnionFs, settings: TraceSettings): Tracer {
  const fd = settings.file === undefined ? 2 : fs.openSync(settings.file, 'a', 0o644)
  const where = (layer: number): Where => ({ layer, branch: union.layers[layer]?.root ?? '?' })
  const observer = (e: UnionEvent): void => {
    const record = toRecord(union, e, where)
    const line = settings.format === 'json' ? JSON.stringify(record) : toText(record)
    try { fs.writeSync(fd, line + '\n') } catch {}
  }
  union.observers.push(observer)
  return {
    close: () => {
      const i = union.observers.indexOf(observer)
      if (i >= 0) union.observers.splice(i, 1)
      if (fd !== 2) { try { fs.closeSync(fd) } catch {} }
    }
  }
}

export interface TraceRecord {
  time: string
  event: UnionEvent['kind']
  path: string
  to?: string
  from?: Where
  into?: Where
  /** whiteout/opaque: how it is written on disk. */
  as?: string
  /** whiteout: the branch whose entry it hides. */
  hides?: Where
  bytes?: number
  ms: number
}

function toRecord (union: UnionFs, e: UnionEvent, where: (layer: number) => Where): TraceRecord {
  const time = new Date().toISOString()
  const ms = Math.round(e.ms * 1000) / 1000
  switch (e.kind) {
    case 'copy-up':
      return { time, event: e.kind, path: fromBytes(e.path), from: where(e.fromLayer), into: where(e.toLayer), bytes: e.bytes, ms }
    case 'rename':
      return { time, event: e.kind, path: fromBytes(e.path), to: fromBytes(e.to), from: where(e.fromLayer), into: where(e.toLayer), bytes: e.bytes, ms }
    case 'whiteout': {
      const below = union.layers.length > 1 ? union.resolver.lookupFrom(e.path, 1) : undefined
      return {
        time, event: e.kind, path: fromBytes(e.path), into: where(e.layer),
        as: e.form === 'aufs' ? fromBytes(WH_PREFIX + baseName(e.path)) : 'char device 0/0',
        ...(below === undefined ? {} : { hides: where(below.top.layer) }),
        ms
      }
    }
    case 'opaque':
      return { time, event: e.kind, path: fromBytes(e.path), into: where(e.layer), as: e.form === 'aufs' ? OPAQUE_MARKER : 'xattr overlay.opaque=y', ms }
  }
}

function at (w: Where | undefined): string {
  return w === undefined ? '?' : `layer ${w.layer} (${w.branch})`
}

function toText (r: TraceRecord): string {
  const head = `${r.time} ${r.event} ${r.path}`
  const ms = `${r.ms.toFixed(3)} ms`
  switch (r.event) {
    case 'copy-up': return `${head} from ${at(r.from)} to ${at(r.into)}: ${r.bytes ?? 0} bytes in ${ms}`
    case 'rename': return `${head} -> ${r.to ?? '?'} from ${at(r.from)} to ${at(r.into)}: ${r.bytes ?? 0} bytes copied in ${ms}`
    case 'whiteout': return `${head} in ${at(r.into)} as ${r.as ?? '?'}${r.hides === undefined ? '' : `, hides ${at(r.hides)}`}: ${ms}`
    case 'opaque': return `${head} in ${at(r.into)} as ${r.as ?? '?'}: ${ms}`
  }
}
