/**
 * The transport's one logger, writing to stderr.
 *
 * Debug tracing is off by default and turned on by UNIONFS_TS_DEBUG=1 or the
 * `debug` mount option: then every request and every reply is one line,
 * joined by the request's `unique`. Errors that carry no errno we know are
 * bugs: they are answered with EIO and always logged, once, with a stack.
 */
import { writeSync } from 'node:fs'

export function debugFromEnv (): boolean {
  const v = process.env.UNIONFS_TS_DEBUG
  return v !== undefined && v !== '' && v !== '0'
}

function show (v: unknown): string {
  if (Buffer.isBuffer(v)) return `<${v.length} bytes>`
  if (Array.isArray(v)) return v.length > 8 ? `[${v.length} items]` : `[${v.map(show).join(',')}]`
  if (typeof v === 'string') return JSON.stringify(v)
  if (typeof v === 'object' && v !== null) {
    return '{' + Object.entries(v).map(([k, x]) => `${k}:${show(x)}`).join(' ') + '}'
  }
  return String(v)
}

export class FuseLog {
  constructor (readonly debug: boolean) {}

  private line (s: string): void {
    try {
      writeSync(2, `unionfs-ts fuse: ${s}\n`)
    } catch {
      // stderr closed: nothing useful to do
    }
  }

  request (unique: number, op: string, nodeid: number, args: unknown): void {
    if (this.debug) this.line(`<- ${unique} ${op} node=${nodeid} ${args === undefined ? '' : show(args)}`)
  }

  reply (unique: number, errno: number, len: number): void {
    if (this.debug) this.line(`-> ${unique} ${errno === 0 ? 'ok' : `error -${errno}`} len=${len}`)
  }

  info (msg: string): void {
    if (this.debug) this.line(msg)
  }

  /** Always logged: an unexpected failure (a bug, or the device misbehaving). */
  error (msg: string, err?: unknown): void {
    const detail = err instanceof Error ? (err.stack ?? err.message) : err === undefined ? '' : String(err)
    this.line(`${msg}${detail !== '' ? `: ${detail}` : ''}`)
  }
}
