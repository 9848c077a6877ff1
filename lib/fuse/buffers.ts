/**
 * A free list of equally sized large buffers: request buffers for the
 * /dev/fuse reads and the data buffers READ replies are built in.
 *
 * Each buffer is max_write + 4096 bytes (about 1 MiB), big enough for the
 * largest WRITE request and the largest READ reply. A buffer is taken for
 * one request or reply and given back when it is done; at most `keep` idle
 * buffers are retained, the rest are left to the garbage collector.
 */
export class BufferPool {
  private readonly free: Buffer[] = []

  constructor (readonly size: number, private readonly keep: number) {}

  take (): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.size)
  }

  give (buf: Buffer): void {
    if (buf.length === this.size && this.free.length < this.keep) this.free.push(buf)
  }
}
