/**
 * A layer tarball as it comes in: plain, gzip or zstd, told apart by its
 * first bytes (a file name's suffix can lie; the magic cannot). gzip is
 * Node's zlib; zstd is fzstd, a pure-JS streaming decoder (Node 20's zlib
 * has none). While the bytes go through, the raw ones are counted for the
 * progress display and the decompressed ones hashed: their sha256 is the
 * layer's DiffID, which a `docker save` config names.
 */
import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import * as zlib from 'node:zlib'
import { Decompress } from 'fzstd'
import { LayerError } from './layer-error'

export type Compression = 'none' | 'gzip' | 'zstd'

const GZIP = Buffer.from([0x1f, 0x8b])
const ZSTD = Buffer.from([0x28, 0xb5, 0x2f, 0xfd])

export function detect (head: Buffer): Compression {
  if (head.subarray(0, 2).equals(GZIP)) return 'gzip'
  if (head.subarray(0, 4).equals(ZSTD)) return 'zstd'
  return 'none'
}

export interface LayerInput {
  /** The uncompressed tar stream. */
  readonly tar: Readable
  /** `sha256:HEX` of the uncompressed bytes; valid once `tar` has ended. */
  digest: () => string
  /** Uncompressed bytes so far. */
  size: () => number
}

/**
 * Wraps `source` (a file's or stdin's bytes). `onRaw` is told every raw
 * chunk's length; `onTar` sees every uncompressed chunk in order.
 */
export function layerInput (source: AsyncIterable<Buffer>, onRaw?: (n: number) => void, onTar?: (chunk: Buffer) => void): LayerInput {
  const hash = createHash('sha256')
  let total = 0
  let hex: string | undefined
  async function * counted (): AsyncGenerator<Buffer> {
    for await (const chunk of source) {
      const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array)
      onRaw?.(b.length)
      yield b
    }
  }
  async function * out (): AsyncGenerator<Buffer> {
    for await (const chunk of decompressed(counted())) {
      hash.update(chunk)
      total += chunk.length
      onTar?.(chunk)
      yield chunk
    }
    hex = hash.digest('hex')
  }
  return {
    tar: Readable.from(out(), { objectMode: false }),
    digest: () => {
      if (hex === undefined) throw new Error('the layer stream has not ended')
      return `sha256:${hex}`
    },
    size: () => total
  }
}

async function * decompressed (raw: AsyncGenerator<Buffer>): AsyncGenerator<Buffer> {
  // Enough bytes to tell the formats apart.
  const head: Buffer[] = []
  let headLen = 0
  let ended = false
  while (headLen < 4) {
    const r = await raw.next()
    if (r.done === true) { ended = true; break }
    head.push(r.value)
    headLen += r.value.length
  }
  const first = Buffer.concat(head)
  async function * all (): AsyncGenerator<Buffer> {
    if (first.length > 0) yield first
    if (!ended) yield * raw
  }
  const kind = detect(first)
  if (kind === 'none') {
    yield * all()
  } else if (kind === 'gzip') {
    const gunzip = zlib.createGunzip()
    const src = Readable.from(all())
    src.on('error', err => gunzip.destroy(err))
    src.pipe(gunzip)
    try {
      for await (const chunk of gunzip) yield chunk as Buffer
    } catch (err) {
      throw new LayerError(`gzip: ${(err as Error).message}`, { cause: err })
    }
  } else {
    yield * unzstd(all())
  }
}

async function * unzstd (raw: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  let queue: Buffer[] = []
  // fzstd may reuse its window: each chunk is copied out.
  const d = new Decompress((data) => { queue.push(Buffer.from(data)) })
  const push = (chunk: Uint8Array, final: boolean): void => {
    try {
      d.push(chunk, final)
    } catch (err) {
      throw new LayerError(`zstd: ${(err as Error).message}`, { cause: err })
    }
  }
  for await (const chunk of raw) {
    push(chunk, false)
    const ready = queue
    queue = []
    yield * ready
  }
  push(new Uint8Array(0), true)
  yield * queue
}
