/**
 * READ replies spliced from the branch file into /dev/fuse, for the reads
 * the daemon serves itself (a lower file of a union with a writable
 * branch, and any file when passthrough is off: passthrough.ts).
 *
 * A buffered READ copies its data twice: pread(2) from the branch file's
 * pages into the daemon's buffer, then write(2) of the reply, which pins
 * the buffer page by page and copies it into the kernel's request. Spliced
 * (native-shim/src/splice.cc), the file's pages go into a pipe as
 * references and the device copies each once: for a 1 MiB READ, four
 * system calls instead of two, and half the copying. Below SPLICE_MIN the
 * extra calls cost more than the copy saves, so small reads stay buffered
 * (O_DIRECT reads of a cached lower file, one READ each, microseconds a
 * read in 3 runs, spliced / buffered: 4 KiB 33-46 / 27-31, 16 KiB 39-46 /
 * 34-37, 32 KiB 39-46 / 44-61, 64 KiB 55-63 / 63-69), and so does a read
 * of a file whose filesystem cannot splice (EINVAL).
 *
 * Two pipes per session (per serving thread), made with it and closed with
 * it, so that the daemon's descriptors stay as they were at start. They
 * hold one reply at a time: `fill` puts the data in, the session's reply (`send`) takes it out,
 * and both leave the pipes empty when they fail. A read that finds the
 * pipes holding another reply's data (two READs between fill and send:
 * only with thread-pool reads, PoolReader) is buffered instead. A reply
 * must fit the pipes: the data pipe takes one slot per page the data
 * touches, the message pipe one more for the header. A process without
 * CAP_SYS_RESOURCE (a mount made through fusermount3, or root in a
 * container that drops it) cannot grow a pipe past
 * /proc/sys/fs/pipe-max-size, 1 MiB by default: it splices reads of up to
 * 1 MiB less two pages and buffers larger ones (readahead's default keeps
 * a sequential reader's READs under that: types.ts).
 */
import type { WriteOutcome } from './device'
import type { FuseLog } from './log'
import { OutHeader } from './protocol'

/** The native calls (lib/native.ts). */
export interface SpliceCalls {
  makePipe: (bytes: number) => [number, number, number]
  closePipe: (readFd: number, writeFd: number) => void
  spliceIn: (fileFd: number, offset: number, size: number, dataR: number, dataW: number) => number
  spliceOut: (devFd: number, unique: number, bytes: number, dataR: number, msgR: number, msgW: number) => void
}

/** Reads smaller than this are read into a buffer. */
export const SPLICE_MIN = 64 * 1024

const PAGE = 4096

interface Pipes {
  dataR: number
  dataW: number
  msgR: number
  msgW: number
  /** Pages (pipe slots) the smaller of the two holds. */
  slots: number
}

/** Data waiting in the data pipe for its reply. */
export interface Spliced {
  readonly spliced: number
}

export class Splicer {
  /** Null: could not be made (logged), or closed: reads stay buffered. */
  private pipes: Pipes | null
  /** Bytes in the data pipe waiting for `send`, or -1: the pipes are free. */
  private waiting = -1
  /** Replies the kernel took (FuseStats.splicedReads). */
  sent = 0

  constructor (
    private readonly devFd: number,
    private readonly calls: SpliceCalls,
    /** The largest READ the kernel sends (max_pages). */
    private readonly maxRead: number,
    private readonly log: FuseLog
  ) {
    this.pipes = this.make()
  }

  /** Can a read of `size` bytes at `offset` be spliced now? */
  takes (offset: number, size: number): boolean {
    if (size < SPLICE_MIN || this.waiting >= 0 || this.pipes === null) return false
    return slotsFor(offset, size) + 1 <= this.pipes.slots
  }

  /**
   * Up to `size` bytes of `fd` at `offset` into the data pipe (fewer at end
   * of file); throws the file's error. Undefined when the file cannot be
   * spliced (EINVAL: its filesystem has no splice_read), for a buffered
   * read instead. Only after `takes` said yes.
   */
  fill (fd: number, offset: number, size: number): Spliced | undefined {
    const p = this.pipes as Pipes
    let n: number
    try {
      n = this.calls.spliceIn(fd, offset, size, p.dataR, p.dataW)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EINVAL') return undefined
      throw err
    }
    this.waiting = n
    return { spliced: n }
  }

  /** Sends the reply to `unique` with the data `fill` left waiting. */
  send (unique: number): { outcome: WriteOutcome, len: number } {
    const p = this.pipes as Pipes
    const n = this.waiting
    this.waiting = -1
    const len = OutHeader.SIZE + n
    try {
      this.calls.spliceOut(this.devFd, unique, n, p.dataR, p.msgR, p.msgW)
      this.sent++
      return { outcome: 'ok', len }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT' || code === 'ENODEV') return { outcome: 'gone', len }
      this.log.error('splicing a READ reply into /dev/fuse failed', err)
      return { outcome: 'refused', len }
    }
  }

  close (): void {
    if (this.pipes === null) return
    this.calls.closePipe(this.pipes.dataR, this.pipes.dataW)
    this.calls.closePipe(this.pipes.msgR, this.pipes.msgW)
    this.pipes = null
  }

  private make (): Pipes | null {
    // Room for the largest read at any offset, and the header.
    const want = (slotsFor(PAGE - 1, this.maxRead) + 1) * PAGE
    let data: [number, number, number] | undefined
    try {
      data = this.calls.makePipe(want)
      const [msgR, msgW, msgCap] = this.calls.makePipe(want)
      return { dataR: data[0], dataW: data[1], msgR, msgW, slots: Math.floor(Math.min(data[2], msgCap) / PAGE) }
    } catch (err) {
      if (data !== undefined) this.calls.closePipe(data[0], data[1])
      this.log.error('no pipes for spliced reads, reading into buffers', err)
      return null
    }
  }
}

/** Pipe slots `size` bytes of a file at `offset` take: one per page they touch. */
function slotsFor (offset: number, size: number): number {
  return Math.ceil(((offset % PAGE) + size) / PAGE)
}
