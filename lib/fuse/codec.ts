/**
 * Bytes <-> values for the FUSE wire: a Decoder that walks a request body
 * and an Encoder that writes a reply body, plus the encoders for the
 * structs several replies share (fuse_attr, fuse_entry_out, dirents), and
 * the two invalidation notices (a notice is a message with unique 0 and the
 * notice's code where a reply has its error).
 *
 * Both are reused across requests: the session owns one Decoder (requests
 * are decoded synchronously, before any await) and one Encoder over one
 * reply buffer (replies are encoded and written synchronously). Nothing
 * here allocates per call except the strings it decodes.
 *
 * u64 fields are JavaScript numbers: exact up to 2^53, which covers node
 * ids, handles, sizes and offsets in practice. Negative numbers are written
 * in two's complement (times before 1970).
 */
import type { Attr } from '../union/types'
import {
  AttrLayout, Dirent, DirentPlus, InHeader, Notify, NotifyInvalEntryOut, NotifyInvalInodeOut, OutHeader, align8
} from './protocol'

const TWO32 = 2 ** 32

export function readU64 (buf: Buffer, off: number): number {
  return buf.readUInt32LE(off) + buf.readUInt32LE(off + 4) * TWO32
}

export function writeU64 (buf: Buffer, off: number, n: number): void {
  buf.writeUInt32LE(n >>> 0, off)
  buf.writeUInt32LE(Math.floor(n / TWO32) >>> 0, off + 4)
}

/** A request body could not be decoded: the kernel sent less than the op needs. */
export class DecodeError extends Error {
  readonly code = 'EINVAL'
}

/** The fixed part of every request. */
export interface RequestHeader {
  readonly opcode: number
  readonly unique: number
  readonly nodeid: number
  readonly uid: number
  readonly gid: number
  readonly pid: number
}

/**
 * Decode the header of a request of `n` bytes and return it with the end of
 * its body: the body excludes the 7.36+ extensions (total_extlen) at its tail.
 */
export function decodeHeader (buf: Buffer, n: number): { header: RequestHeader, bodyEnd: number } {
  const len = buf.readUInt32LE(InHeader.len)
  if (len !== n || n < InHeader.SIZE) throw new DecodeError(`request length ${len}, read ${n}`)
  const extBytes = buf.readUInt16LE(InHeader.totalExtlen) * 8
  const header: RequestHeader = {
    opcode: buf.readUInt32LE(InHeader.opcode),
    unique: readU64(buf, InHeader.unique),
    nodeid: readU64(buf, InHeader.nodeid),
    uid: buf.readUInt32LE(InHeader.uid),
    gid: buf.readUInt32LE(InHeader.gid),
    pid: buf.readUInt32LE(InHeader.pid)
  }
  return { header, bodyEnd: Math.max(InHeader.SIZE, n - extBytes) }
}

/** Walks a request body front to back. */
export class Decoder {
  private buf: Buffer = Buffer.alloc(0)
  private pos = 0
  private end = 0

  reset (buf: Buffer, start: number, end: number): void {
    this.buf = buf
    this.pos = start
    this.end = end
  }

  get remaining (): number {
    return this.end - this.pos
  }

  private need (n: number): void {
    if (this.pos + n > this.end) {
      throw new DecodeError(`request body too short: need ${n} bytes, have ${this.end - this.pos}`)
    }
  }

  u32 (): number {
    this.need(4)
    const v = this.buf.readUInt32LE(this.pos)
    this.pos += 4
    return v
  }

  u64 (): number {
    this.need(8)
    const v = readU64(this.buf, this.pos)
    this.pos += 8
    return v
  }

  i64 (): number {
    this.need(8)
    const lo = this.buf.readUInt32LE(this.pos)
    const hi = this.buf.readInt32LE(this.pos + 4)
    this.pos += 8
    return hi * TWO32 + lo
  }

  skip (n: number): void {
    this.need(n)
    this.pos += n
  }

  /** A NUL-terminated UTF-8 string (names, link targets). */
  cstr (): string {
    const nul = this.buf.indexOf(0, this.pos)
    if (nul < 0 || nul >= this.end) throw new DecodeError('unterminated string in request')
    const s = this.buf.toString('utf8', this.pos, nul)
    this.pos = nul + 1
    return s
  }

  /** `n` raw bytes, as a view into the request buffer (valid while the buffer is held). */
  bytes (n: number): Buffer {
    this.need(n)
    const b = this.buf.subarray(this.pos, this.pos + n)
    this.pos += n
    return b
  }
}

/** Exact nanoseconds since the epoch as whole seconds and nanoseconds, 0 <= nsec < 1e9. */
export function splitNs (ns: bigint): { sec: number, nsec: number } {
  let sec = ns / 1_000_000_000n
  let nsec = ns % 1_000_000_000n
  if (nsec < 0n) { sec -= 1n; nsec += 1_000_000_000n }
  return { sec: Number(sec), nsec: Number(nsec) }
}

/** A time in fractional milliseconds as whole seconds and nanoseconds, 0 <= nsec < 1e9. */
export function splitMs (ms: number): { sec: number, nsec: number } {
  let sec = Math.floor(ms / 1000)
  let nsec = Math.round((ms - sec * 1000) * 1e6)
  if (nsec >= 1e9) { sec += 1; nsec -= 1e9 } else if (nsec < 0) { sec -= 1; nsec += 1e9 }
  return { sec, nsec }
}

/** A timeout in (fractional) seconds as the wire's seconds + nanoseconds. */
export interface Timeout { readonly sec: number, readonly nsec: number }

export function timeout (seconds: number): Timeout {
  const s = Math.max(0, seconds)
  const sec = Math.floor(s)
  return { sec, nsec: Math.min(999_999_999, Math.round((s - sec) * 1e9)) }
}

/** DT_* for a mode's S_IFMT bits. */
export function direntType (fmt: number): number {
  return (fmt & 0o170000) >>> 12
}

/**
 * Writes one reply. The body starts after the out header; `finish` fills
 * the header in. A reply whose body already sits in another buffer (READ
 * data) is sent with `framed`, which makes that buffer the message.
 */
export class Encoder {
  readonly buf: Buffer
  pos: number = OutHeader.SIZE
  /** Set by `framed`: the message is this buffer, header space included. */
  private framedBuf: Buffer | undefined
  private framedLen = 0

  constructor (size: number) {
    this.buf = Buffer.allocUnsafeSlow(size)
  }

  begin (): void {
    this.pos = OutHeader.SIZE
    this.framedBuf = undefined
  }

  get room (): number {
    return this.buf.length - this.pos
  }

  u16 (v: number): void { this.buf.writeUInt16LE(v, this.pos); this.pos += 2 }
  u32 (v: number): void { this.buf.writeUInt32LE(v >>> 0, this.pos); this.pos += 4 }
  u64 (v: number): void { writeU64(this.buf, this.pos, v); this.pos += 8 }

  zero (n: number): void {
    this.buf.fill(0, this.pos, this.pos + n)
    this.pos += n
  }

  bytes (b: Buffer): void {
    this.pos += b.copy(this.buf, this.pos)
  }

  /** A string's UTF-8 bytes, then NUL when `nul`. */
  str (s: string, nul: boolean): void {
    this.pos += this.buf.write(s, this.pos, 'utf8')
    if (nul) this.buf[this.pos++] = 0
  }

  /** Pad with zeros to the next multiple of 8 from the body start. */
  pad8 (): void {
    const body = this.pos - OutHeader.SIZE
    this.zero(align8(body) - body)
  }

  /** Send `buf[0, OutHeader.SIZE + bodyLen)`; its body was written at OutHeader.SIZE. */
  framed (buf: Buffer, bodyLen: number): void {
    this.framedBuf = buf
    this.framedLen = OutHeader.SIZE + bodyLen
  }

  /** Fill the out header in; return the message and its length. */
  finish (unique: number, error: number): { msg: Buffer, len: number } {
    const msg = this.framedBuf ?? this.buf
    const len = this.framedBuf !== undefined ? this.framedLen : this.pos
    msg.writeUInt32LE(len, OutHeader.len)
    msg.writeInt32LE(error, OutHeader.error)
    writeU64(msg, OutHeader.unique, unique)
    return { msg, len }
  }

  attr (a: Attr): void {
    const b = this.buf
    const o = this.pos
    const at = a.atimeNs !== undefined ? splitNs(a.atimeNs) : splitMs(a.atimeMs)
    const mt = a.mtimeNs !== undefined ? splitNs(a.mtimeNs) : splitMs(a.mtimeMs)
    const ct = a.ctimeNs !== undefined ? splitNs(a.ctimeNs) : splitMs(a.ctimeMs)
    writeU64(b, o + AttrLayout.ino, a.ino)
    writeU64(b, o + AttrLayout.size, a.size)
    writeU64(b, o + AttrLayout.blocks, a.blocks)
    writeU64(b, o + AttrLayout.atime, at.sec)
    writeU64(b, o + AttrLayout.mtime, mt.sec)
    writeU64(b, o + AttrLayout.ctime, ct.sec)
    b.writeUInt32LE(at.nsec, o + AttrLayout.atimensec)
    b.writeUInt32LE(mt.nsec, o + AttrLayout.mtimensec)
    b.writeUInt32LE(ct.nsec, o + AttrLayout.ctimensec)
    b.writeUInt32LE(a.mode >>> 0, o + AttrLayout.mode)
    b.writeUInt32LE(a.nlink >>> 0, o + AttrLayout.nlink)
    b.writeUInt32LE(a.uid >>> 0, o + AttrLayout.uid)
    b.writeUInt32LE(a.gid >>> 0, o + AttrLayout.gid)
    b.writeUInt32LE(a.rdev >>> 0, o + AttrLayout.rdev)
    b.writeUInt32LE(a.blksize >>> 0, o + AttrLayout.blksize)
    b.writeUInt32LE(0, o + AttrLayout.flags)
    this.pos += AttrLayout.SIZE
  }

  /** fuse_attr_out */
  attrOut (a: Attr, valid: Timeout): void {
    this.u64(valid.sec)
    this.u32(valid.nsec)
    this.u32(0)
    this.attr(a)
  }

  /**
   * fuse_entry_out. Node id 0 is a negative entry (cached for `entryValid`)
   * or, in READDIRPLUS, "no entry information".
   */
  entryOut (nodeid: number, generation: number, a: Attr | undefined, entryValid: Timeout, attrValid: Timeout): void {
    this.u64(nodeid)
    this.u64(generation)
    this.u64(entryValid.sec)
    this.u64(attrValid.sec)
    this.u32(entryValid.nsec)
    this.u32(attrValid.nsec)
    if (a !== undefined) this.attr(a)
    else this.zero(AttrLayout.SIZE)
  }

  /** fuse_dirent with its name, padded to 8. */
  dirent (ino: number, off: number, type: number, name: string): void {
    const o = this.pos
    const namelen = this.buf.write(name, o + Dirent.SIZE, 'utf8')
    writeU64(this.buf, o + Dirent.ino, ino)
    writeU64(this.buf, o + Dirent.off, off)
    this.buf.writeUInt32LE(namelen, o + Dirent.namelen)
    this.buf.writeUInt32LE(type, o + Dirent.type)
    this.pos = o + Dirent.SIZE + namelen
    this.pad8()
  }
}

/** Bytes a fuse_dirent for `name` takes. */
export function direntSize (name: string): number {
  return align8(Dirent.SIZE + Buffer.byteLength(name))
}

/** Bytes a fuse_direntplus for `name` takes. */
export function direntPlusSize (name: string): number {
  return align8(DirentPlus.SIZE + Buffer.byteLength(name))
}

function notice (code: number, bodySize: number): Buffer {
  const b = Buffer.alloc(OutHeader.SIZE + bodySize)
  b.writeUInt32LE(b.length, OutHeader.len)
  b.writeInt32LE(code, OutHeader.error)
  return b
}

/** NOTIFY_INVAL_ENTRY: drop the kernel's dentry `name` in directory node `parent`. */
export function invalEntryNotice (parent: number, name: string): Buffer {
  const namelen = Buffer.byteLength(name)
  const b = notice(Notify.INVAL_ENTRY, NotifyInvalEntryOut.SIZE + namelen + 1)
  const o = OutHeader.SIZE
  writeU64(b, o + NotifyInvalEntryOut.parent, parent)
  b.writeUInt32LE(namelen, o + NotifyInvalEntryOut.namelen)
  b.write(name, o + NotifyInvalEntryOut.SIZE, 'utf8')
  return b
}

/** NOTIFY_INVAL_INODE: drop node `node`'s cached attributes, and its pages in [off, off+len) unless off is -1. */
export function invalInodeNotice (node: number, off: number, len: number): Buffer {
  const b = notice(Notify.INVAL_INODE, NotifyInvalInodeOut.SIZE)
  const o = OutHeader.SIZE
  writeU64(b, o + NotifyInvalInodeOut.ino, node)
  writeU64(b, o + NotifyInvalInodeOut.off, off)
  writeU64(b, o + NotifyInvalInodeOut.len, len)
  return b
}
