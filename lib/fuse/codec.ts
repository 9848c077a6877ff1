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
  AttrLayout, Dirent, DirentPlus, EntryOut, InHeader, Notify, NotifyInvalEntryOut, NotifyInvalInodeOut, OutHeader, align8
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

  /** A NUL-terminated name or link target, as a byte string (lib/union/paths.ts). */
  cstr (): string {
    return this.nulTerminated('latin1')
  }

  /** A NUL-terminated xattr name, decoded as UTF-8: the union keeps xattr names as JavaScript strings. */
  xattrName (): string {
    return this.nulTerminated('utf8')
  }

  private nulTerminated (encoding: 'latin1' | 'utf8'): string {
    const nul = this.buf.indexOf(0, this.pos)
    if (nul < 0 || nul >= this.end) throw new DecodeError('unterminated string in request')
    const s = this.buf.toString(encoding, this.pos, nul)
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
 *
 * Fields land through typed-array views of the reply buffer, not Buffer's
 * write methods: a READDIRPLUS page writes some 40 fields per entry, and a
 * fresh daemon (its code not yet compiled) spent 20 ms on the 4,000 entries
 * of a walk through those methods' checks, against 9 ms through the views.
 * The views are in host byte order, which is the FUSE wire's. Every struct
 * field sits at a multiple of 4 from the message start, where the word
 * view reaches it; a field past a string of odd length (none does today)
 * goes through Buffer's methods, and so does anything past the buffer's
 * end, which they refuse (a typed array would drop it silently).
 */
export class Encoder {
  readonly buf: Buffer
  /** `buf` as 32-bit words: the field at byte offset o is words[o / 4]. */
  private readonly words: Uint32Array
  /** The byte length the words cover. */
  private readonly wordsEnd: number
  pos: number = OutHeader.SIZE
  /** Set by `framed`: the message is this buffer, header space included. */
  private framedBuf: Buffer | undefined
  private framedLen = 0

  constructor (size: number) {
    // Its own ArrayBuffer, so offset 0 of buf is offset 0 of the words.
    this.buf = Buffer.allocUnsafeSlow(size)
    this.words = new Uint32Array(this.buf.buffer, this.buf.byteOffset, size >>> 2)
    this.wordsEnd = this.words.length * 4
  }

  begin (): void {
    this.pos = OutHeader.SIZE
    this.framedBuf = undefined
  }

  get room (): number {
    return this.buf.length - this.pos
  }

  /** A u32 at byte offset `o` (the low 32 bits of `v`, so -1 is 0xffffffff). */
  private put32 (o: number, v: number): void {
    if ((o & 3) === 0 && o < this.wordsEnd) this.words[o >>> 2] = v
    else this.buf.writeUInt32LE(v >>> 0, o)
  }

  /** A u64 at byte offset `o`, two's complement for negative `v`. */
  private put64 (o: number, v: number): void {
    this.put32(o, v)
    this.put32(o + 4, Math.floor(v / TWO32))
  }

  u16 (v: number): void { this.buf.writeUInt16LE(v, this.pos); this.pos += 2 }
  u32 (v: number): void { this.put32(this.pos, v); this.pos += 4 }
  u64 (v: number): void { this.put64(this.pos, v); this.pos += 8 }

  zero (n: number): void {
    const start = this.pos
    const end = start + n
    if (((start | n) & 3) === 0 && end <= this.wordsEnd) this.words.fill(0, start >>> 2, end >>> 2)
    else if (n < 8 && end <= this.buf.length) for (let o = start; o < end; o++) this.buf[o] = 0
    else this.buf.fill(0, start, end)
    this.pos = end
  }

  bytes (b: Buffer): void {
    this.pos += b.copy(this.buf, this.pos)
  }

  /** The bytes of a byte string (a name, a link target), then NUL when `nul`. */
  str (s: string, nul: boolean): void {
    this.pos += this.byteString(s, this.pos)
    if (nul) this.buf[this.pos++] = 0
  }

  /**
   * Byte string `s` at byte offset `o`; its length. Copied byte by byte: a
   * call into Buffer's encoder per name cost more than the copy.
   */
  private byteString (s: string, o: number): number {
    const b = this.buf
    const n = s.length
    if (o + n > b.length) return b.write(s, o, 'latin1')
    for (let i = 0; i < n; i++) b[o + i] = s.charCodeAt(i)
    return n
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
    const o = this.pos
    this.put64(o + AttrLayout.ino, a.ino)
    this.put64(o + AttrLayout.size, a.size)
    this.put64(o + AttrLayout.blocks, a.blocks)
    this.time(o + AttrLayout.atime, o + AttrLayout.atimensec, a.atimeNs, a.atimeMs)
    this.time(o + AttrLayout.mtime, o + AttrLayout.mtimensec, a.mtimeNs, a.mtimeMs)
    this.time(o + AttrLayout.ctime, o + AttrLayout.ctimensec, a.ctimeNs, a.ctimeMs)
    this.put32(o + AttrLayout.mode, a.mode)
    this.put32(o + AttrLayout.nlink, a.nlink)
    this.put32(o + AttrLayout.uid, a.uid)
    this.put32(o + AttrLayout.gid, a.gid)
    this.put32(o + AttrLayout.rdev, a.rdev)
    this.put32(o + AttrLayout.blksize, a.blksize)
    this.put32(o + AttrLayout.flags, 0)
    this.pos = o + AttrLayout.SIZE
  }

  /** A time's seconds (u64) and nanoseconds (u32): exact when `ns` is known, else from `ms`. */
  private time (secAt: number, nsecAt: number, ns: bigint | undefined, ms: number): void {
    const t = ns !== undefined ? splitNs(ns) : splitMs(ms)
    this.put64(secAt, t.sec)
    this.put32(nsecAt, t.nsec)
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
    const o = this.pos
    this.put64(o + EntryOut.nodeid, nodeid)
    this.put64(o + EntryOut.generation, generation)
    this.put64(o + EntryOut.entryValid, entryValid.sec)
    this.put64(o + EntryOut.attrValid, attrValid.sec)
    this.put32(o + EntryOut.entryValidNsec, entryValid.nsec)
    this.put32(o + EntryOut.attrValidNsec, attrValid.nsec)
    this.pos = o + EntryOut.attr
    if (a !== undefined) this.attr(a)
    else this.zero(AttrLayout.SIZE)
  }

  /** fuse_dirent with its name, padded to 8. */
  dirent (ino: number, off: number, type: number, name: string): void {
    const o = this.pos
    const namelen = this.byteString(name, o + Dirent.SIZE)
    this.put64(o + Dirent.ino, ino)
    this.put64(o + Dirent.off, off)
    this.put32(o + Dirent.namelen, namelen)
    this.put32(o + Dirent.type, type)
    this.pos = o + Dirent.SIZE + namelen
    this.pad8()
  }
}

/** Bytes a fuse_dirent for `name` (a byte string) takes. */
export function direntSize (name: string): number {
  return align8(Dirent.SIZE + name.length)
}

/** Bytes a fuse_direntplus for `name` (a byte string) takes. */
export function direntPlusSize (name: string): number {
  return align8(DirentPlus.SIZE + name.length)
}

function notice (code: number, bodySize: number): Buffer {
  const b = Buffer.alloc(OutHeader.SIZE + bodySize)
  b.writeUInt32LE(b.length, OutHeader.len)
  b.writeInt32LE(code, OutHeader.error)
  return b
}

/** NOTIFY_INVAL_ENTRY: drop the kernel's dentry `name` in directory node `parent`. */
export function invalEntryNotice (parent: number, name: string): Buffer {
  const namelen = name.length
  const b = notice(Notify.INVAL_ENTRY, NotifyInvalEntryOut.SIZE + namelen + 1)
  const o = OutHeader.SIZE
  writeU64(b, o + NotifyInvalEntryOut.parent, parent)
  b.writeUInt32LE(namelen, o + NotifyInvalEntryOut.namelen)
  b.write(name, o + NotifyInvalEntryOut.SIZE, 'latin1')
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
