/**
 * Writing a layer tarball's bytes: tar-stream's pack, with what a layer
 * needs on top of it and nothing left to chance.
 *
 * - PAX extended headers are written here (pax.ts), byte for byte, whenever
 *   an entry needs one (a long or non-ASCII name or link target, a large
 *   uid/gid, xattrs as `SCHILY.xattr.NAME`); the ustar fields they override
 *   get an ASCII stand-in. tar-stream would write them as text.
 * - Every header field is given: no "now" for a missing mtime, no 0644 for
 *   a mode of 0 (tar-stream's reading of 0 as "unset"), empty user and group
 *   names. The same entries give the same bytes.
 * - Hard links: the first entry of a (dev, inode) key is written, later
 *   ones become links to it.
 * - One entry at a time, awaited, so a PAX header always lands between two
 *   entries, and memory stays bounded: data is written in chunks with
 *   backpressure from the output.
 * - The output is piped by hand: stdout must never be ended (streamx's pipe
 *   would end it).
 */
import * as fs from 'node:fs'
import type { Writable } from 'node:stream'
import * as tar from 'tar-stream'
import { fromBytes } from '../union/paths'
import { LayerError } from './layer-error'
import { devMajor, devMinor, SCHILY_XATTR } from './meta'
import { encodePax, paxMember } from './pax'

const CHUNK = 1 << 20
const USTAR_ID_MAX = 0o7777777

export type EntryType = 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo'

export interface Meta {
  /** Permission bits (0o7777). */
  mode: number
  uid: number
  gid: number
  mtimeSec: number
  size?: number
  rdev?: bigint
}

/** Names and link targets are byte strings (tar-name.ts), written as their bytes. */
export interface TarEntry {
  name: string
  type: EntryType
  meta: Meta
  linkname?: string
  xattrs?: Array<[string, Buffer]>
}

/** Reads up to `len` bytes at `pos` into `buf`; 0 at the end. */
export type ReadAt = (buf: Buffer, len: number, pos: number) => number | Promise<number>

export function metaOf (st: fs.BigIntStats): Meta {
  return {
    mode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    mtimeSec: Number(st.mtimeNs / 1_000_000_000n) - (st.mtimeNs < 0n && st.mtimeNs % 1_000_000_000n !== 0n ? 1 : 0),
    size: Number(st.size),
    rdev: st.rdev
  }
}

export function typeOfMode (mode: number): EntryType | undefined {
  switch (mode & fs.constants.S_IFMT) {
    case fs.constants.S_IFREG: return 'file'
    case fs.constants.S_IFDIR: return 'directory'
    case fs.constants.S_IFLNK: return 'symlink'
    case fs.constants.S_IFCHR: return 'character-device'
    case fs.constants.S_IFBLK: return 'block-device'
    case fs.constants.S_IFIFO: return 'fifo'
  }
  return undefined
}

function typeBits (type: EntryType): number {
  switch (type) {
    case 'directory': return fs.constants.S_IFDIR
    case 'symlink': return fs.constants.S_IFLNK
    case 'character-device': return fs.constants.S_IFCHR
    case 'block-device': return fs.constants.S_IFBLK
    case 'fifo': return fs.constants.S_IFIFO
    default: return fs.constants.S_IFREG
  }
}

/** Would tar-stream fit this name in a ustar header (name and prefix split at a slash)? */
function ustarFits (name: string): boolean {
  if (Buffer.byteLength(name) !== name.length) return false
  let rest = name
  let prefix = ''
  while (rest.length > 100) {
    const i = rest.indexOf('/')
    if (i === -1) return false
    prefix += prefix === '' ? rest.slice(0, i) : '/' + rest.slice(0, i)
    rest = rest.slice(i + 1)
  }
  return rest.length <= 100 && prefix.length <= 155
}

/** An ASCII stand-in of at most 100 bytes, for the ustar field a PAX record overrides. */
function standIn (name: string, isDir: boolean): string {
  const ascii = name.replace(/\/$/, '').replace(/[^\x20-\x7e]/g, '_')
  const s = ascii.length > 99 ? ascii.slice(ascii.length - 99).replace(/^\/+/, '') : ascii
  return isDir ? s + '/' : s
}

/** An entry's data sink, as tar-stream's pack hands it out. */
interface DataSink {
  write: (chunk: Buffer) => boolean
  end: () => void
  once: (event: 'drain', fn: () => void) => void
}

export class TarWriter {
  entries = 0
  bytes = 0
  private readonly pack = tar.pack()
  private readonly links = new Map<string, string>()
  private readonly done: Promise<void>

  /** `end`: end `out` when finished (false for stdout). `onBytes`: file data written. */
  constructor (out: Writable, end: boolean, private readonly onBytes?: (n: number) => void) {
    const pack = this.pack
    this.done = new Promise<void>((resolve, reject) => {
      out.on('error', reject)
      pack.on('error', reject)
      pack.on('data', (chunk) => { if (!out.write(chunk as Buffer)) pack.pause() })
      out.on('drain', () => pack.resume())
      pack.on('end', () => {
        if (end) out.end(() => resolve())
        else out.write('', () => resolve())
      })
    })
    // An aborted tarball's error is the caller's to report, not an unhandled rejection.
    this.done.catch(() => {})
  }

  /** The end-of-archive blocks; resolves once everything reached the output. */
  async finish (): Promise<void> {
    this.pack.finalize()
    await this.done
  }

  abort (err: Error): void {
    this.pack.destroy(err)
  }

  /**
   * Hard-link bookkeeping: the name `key` was first written under, which
   * this entry then links to; or undefined, and `name` is remembered.
   */
  private linkTo (key: string | undefined, name: string): string | undefined {
    if (key === undefined) return undefined
    const first = this.links.get(key)
    if (first === undefined) this.links.set(key, name)
    return first
  }

  /** An entry without data (or an empty file); `linkKey` for a non-directory with more than one link. */
  async entry (e: TarEntry, linkKey?: string): Promise<void> {
    const first = e.type === 'directory' || e.type === 'symlink' ? undefined : this.linkTo(linkKey, e.name)
    const sink = first !== undefined
      ? this.begin({ name: e.name, type: 'link', meta: { ...e.meta, size: 0 }, linkname: first })
      : this.begin({ ...e, meta: { ...e.meta, size: e.type === 'file' ? (e.meta.size ?? 0) : 0 } })
    sink.stream.end()
    await sink.done
  }

  /** A regular file, its data read with `read` (meta.size bytes). */
  async file (e: TarEntry, read: ReadAt, linkKey?: string): Promise<void> {
    const first = this.linkTo(linkKey, e.name)
    if (first !== undefined) {
      await this.entry({ name: e.name, type: 'link', meta: { ...e.meta, size: 0 }, linkname: first })
      return
    }
    const size = e.meta.size ?? 0
    const sink = this.begin({ ...e, type: 'file' })
    const buf = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(size, 1)))
    let pos = 0
    while (pos < size) {
      const n = await read(buf, Math.min(buf.length, size - pos), pos)
      if (n === 0) throw new LayerError(`${fromBytes(e.name)}: the file shrank while it was being written`)
      pos += n
      this.bytes += n
      this.onBytes?.(n)
      if (!sink.stream.write(Buffer.from(buf.subarray(0, n)))) await new Promise<void>(resolve => sink.stream.once('drain', resolve))
    }
    sink.stream.end()
    await sink.done
  }

  /** Writes the headers (PAX first when needed) and returns the entry's data sink. */
  private begin (e: TarEntry): { stream: DataSink, done: Promise<void> } {
    this.entries++
    const isDir = e.type === 'directory'
    const records: Array<[string, Buffer]> = []
    let name = e.name
    let linkname = e.linkname
    if (!ustarFits(name)) {
      records.push(['path', Buffer.from(name, 'latin1')])
      name = standIn(name, isDir)
    }
    if (linkname !== undefined && (Buffer.byteLength(linkname) !== linkname.length || linkname.length > 100)) {
      records.push(['linkpath', Buffer.from(linkname, 'latin1')])
      linkname = standIn(linkname, false)
    }
    if (e.meta.uid > USTAR_ID_MAX) records.push(['uid', Buffer.from(String(e.meta.uid))])
    if (e.meta.gid > USTAR_ID_MAX) records.push(['gid', Buffer.from(String(e.meta.gid))])
    for (const [n, v] of e.xattrs ?? []) records.push([SCHILY_XATTR + n, v])
    if (records.length > 0) {
      // No entry is open (each one is awaited), so these bytes go between two entries.
      this.pack.push(paxMember(standIn(`PaxHeaders/${e.name}`, false), encodePax(records), e.meta.mtimeSec))
    }
    const rdev = e.meta.rdev ?? 0n
    const isDev = e.type === 'character-device' || e.type === 'block-device'
    let resolveDone!: () => void
    let rejectDone!: (err: Error) => void
    const done = new Promise<void>((resolve, reject) => { resolveDone = resolve; rejectDone = reject })
    const stream = this.pack.entry({
      name,
      type: e.type,
      size: e.type === 'file' ? (e.meta.size ?? 0) : 0,
      // With its type bits: tar-stream takes a mode of 0 for "unset" and
      // writes 0644; it keeps only the permission bits anyway.
      mode: e.meta.mode | typeBits(e.type),
      uid: Math.min(e.meta.uid, USTAR_ID_MAX),
      gid: Math.min(e.meta.gid, USTAR_ID_MAX),
      uname: '',
      gname: '',
      mtime: new Date(e.meta.mtimeSec * 1000),
      linkname: linkname ?? '',
      devmajor: isDev ? devMajor(rdev) : 0,
      devminor: isDev ? devMinor(rdev) : 0
    }, (err) => { if (err != null) rejectDone(err); else resolveDone() })
    return { stream: stream as unknown as DataSink, done }
  }
}
