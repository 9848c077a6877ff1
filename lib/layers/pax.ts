/**
 * PAX extended headers, byte for byte.
 *
 * tar-stream decodes PAX records as UTF-8 text and encodes them the same
 * way, which is wrong for xattr values and for names that are not UTF-8: a
 * `SCHILY.xattr.security.capability` value is binary and does not survive a
 * round through a JS string, nor does a `path` of Latin-1 bytes. So this
 * module keeps the records as bytes:
 *
 * - `PaxScanner` watches the bytes fed to tar-stream's extractor and walks
 *   the same 512-byte blocks, keeping each extended header ('x') raw, keyed
 *   by the offset of the entry header it belongs to (tar-stream's
 *   `entry.offset`). Global headers ('g') and GNU long names are left to
 *   tar-stream; only what they would lose is recovered here.
 * - `encodePax` builds an extended header's payload from byte values; diff.ts
 *   writes it as its own 'pax-header' entry ahead of the entry it describes.
 */

const BLOCK = 512

/** One PAX extended header: keys are UTF-8 text, values exact bytes. */
export type PaxRecords = Map<string, Buffer>

export function decodePax (buf: Buffer): PaxRecords {
  const out: PaxRecords = new Map()
  let at = 0
  while (at < buf.length) {
    const sp = buf.indexOf(0x20, at)
    if (sp < 0) break
    const len = Number(buf.toString('latin1', at, sp))
    if (!Number.isSafeInteger(len) || len <= sp - at || at + len > buf.length) break
    const rec = buf.subarray(sp + 1, at + len - 1) // drop the trailing '\n'
    const eq = rec.indexOf(0x3d)
    if (eq > 0) out.set(rec.toString('utf8', 0, eq), Buffer.from(rec.subarray(eq + 1)))
    at += len
  }
  return out
}

/** An extended header's payload: `LEN KEY=VALUE\n` records, in the order given. */
export function encodePax (records: ReadonlyArray<readonly [string, Buffer]>): Buffer {
  const parts: Buffer[] = []
  for (const [key, value] of records) {
    const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')])
    // The length counts its own digits.
    let len = body.length + 1
    while (String(len).length + body.length !== len) len = String(len).length + body.length
    parts.push(Buffer.from(String(len)), body)
  }
  return Buffer.concat(parts)
}

/**
 * An extended header member ('x'), padded: its ustar header block and the
 * payload. tar-stream's pack gives 'pax-header' entries no body, so diff.ts
 * pushes these bytes between two entries itself.
 */
export function paxMember (name: string, payload: Buffer, mtimeSec: number): Buffer {
  const head = Buffer.alloc(BLOCK)
  const field = (off: number, len: number, value: number): void => {
    head.write(value.toString(8).padStart(len - 1, '0') + '\0', off, len, 'latin1')
  }
  head.write(name.slice(0, 100), 0, 100, 'latin1')
  field(100, 8, 0o644)
  field(108, 8, 0)
  field(116, 8, 0)
  field(124, 12, payload.length)
  field(136, 12, Math.max(0, mtimeSec))
  head.write('x', 156, 1, 'latin1')
  head.write('ustar\0', 257, 6, 'latin1')
  head.write('00', 263, 2, 'latin1')
  head.fill(0x20, 148, 156)
  let sum = 0
  for (const b of head) sum += b
  head.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1')
  const pad = (BLOCK - (payload.length % BLOCK)) % BLOCK
  return Buffer.concat([head, payload, Buffer.alloc(pad)])
}

/** A header's numeric field: octal text, or base-256 when the top bit is set. */
function numField (block: Buffer, off: number, len: number): number {
  if ((block[off] & 0x80) !== 0) {
    let n = 0
    for (let i = off + 1; i < off + len; i++) n = n * 256 + block[i]
    return n
  }
  const s = block.toString('latin1', off, off + len).replace(/[\0 ].*$/s, '').trim()
  return s === '' ? 0 : parseInt(s, 8)
}

export class PaxScanner {
  private offset = 0
  private head: Buffer[] = []
  private headLen = 0
  /** Data bytes of the current member still to come. */
  private skip = 0
  /** The current member is an 'x' header: its payload is kept. */
  private collecting: Buffer[] | undefined
  /** The declared size of the 'x' payload being collected. */
  private paxSize = 0
  private pending: PaxRecords | undefined
  private pendingSize: number | undefined
  private readonly byOffset = new Map<number, PaxRecords>()

  feed (chunk: Buffer): void {
    let at = 0
    while (at < chunk.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - at)
        if (this.collecting !== undefined) this.collecting.push(chunk.subarray(at, at + n))
        this.skip -= n
        at += n
        this.offset += n
        if (this.skip === 0 && this.collecting !== undefined) {
          const payload = Buffer.concat(this.collecting)
          this.collecting = undefined
          this.pending = decodePax(payload.subarray(0, this.paxSize))
          const size = this.pending.get('size')
          this.pendingSize = size === undefined ? undefined : Number(size.toString())
        }
        continue
      }
      const n = Math.min(BLOCK - this.headLen, chunk.length - at)
      this.head.push(chunk.subarray(at, at + n))
      this.headLen += n
      at += n
      if (this.headLen < BLOCK) continue
      const block = Buffer.concat(this.head)
      this.head = []
      this.headLen = 0
      const start = this.offset
      this.offset += BLOCK
      this.header(block, start)
    }
  }

  /** The raw extended header of the entry whose header starts at `offset` (taken once). */
  take (offset: number): PaxRecords | undefined {
    const r = this.byOffset.get(offset)
    this.byOffset.delete(offset)
    return r
  }

  private header (block: Buffer, start: number): void {
    if (block.every(b => b === 0)) return
    const type = String.fromCharCode(block[156])
    let size = numField(block, 124, 12)
    const padded = (n: number): number => Math.ceil(n / BLOCK) * BLOCK
    if (type === 'x') {
      this.paxSize = size
      this.collecting = []
      this.skip = padded(size)
      return
    }
    if (type === 'g' || type === 'L' || type === 'K') {
      this.skip = padded(size)
      return
    }
    if (this.pending !== undefined) {
      this.byOffset.set(start, this.pending)
      if (this.pendingSize !== undefined && Number.isSafeInteger(this.pendingSize)) size = this.pendingSize
    }
    this.pending = undefined
    this.pendingSize = undefined
    // As tar-stream reads it: a directory (or an old-style file entry whose
    // name ends in '/') carries no data, whatever its size field says.
    const nameEnd = block.indexOf(0)
    const oldDir = (type === '0' || type === '\0') && block[(nameEnd < 0 || nameEnd > 100 ? 100 : nameEnd) - 1] === 0x2f
    this.skip = type === '5' || oldDir ? 0 : padded(size)
  }
}
