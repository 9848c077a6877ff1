/**
 * Reading a layer tarball's entries: tar-stream's extract, with what it
 * would lose put back (tar-writer.ts is the other direction).
 * - Names and link targets are byte strings (tar-name.ts): ustar fields and
 *   GNU long names are read as latin1, one char per byte, and PAX `path`
 *   and `linkpath` come from the records' bytes, which tar-stream decodes
 *   as UTF-8 into the header.
 * - PAX records are bytes (pax.ts), so binary xattr values survive.
 * - The input is decompressed, counted and digested on the way (input.ts).
 * Each entry's data must be read (or drained) before the next one comes.
 */
import type { Readable } from 'node:stream'
import * as tar from 'tar-stream'
import { layerInput } from './input'
import { PaxScanner, type PaxRecords } from './pax'

export interface TarEntryIn {
  /** Its name and linkname are byte strings. */
  header: tar.Header
  /** The entry's PAX records, exact bytes. */
  pax: PaxRecords | undefined
  data: Readable
}

export interface TarReader {
  entries: AsyncIterable<TarEntryIn>
  /** Stops reading, after a failure. */
  destroy: () => void
  /** `sha256:HEX` of the uncompressed tarball, once it has been read to the end. */
  digest: () => string
  /** Uncompressed bytes read so far. */
  size: () => number
}

/** The entries of the tarball (compressed or not) read from `source`; `onRaw` counts raw bytes. */
export function readTar (source: AsyncIterable<Buffer>, onRaw?: (n: number) => void): TarReader {
  const scanner = new PaxScanner()
  const input = layerInput(source, onRaw, chunk => scanner.feed(chunk))
  // filenameEncoding: an option tar-stream has that its typings lack.
  const extract = tar.extract({ filenameEncoding: 'latin1' } as unknown as Parameters<typeof tar.extract>[0])
  input.tar.on('error', err => extract.destroy(err))
  input.tar.pipe(extract as unknown as NodeJS.WritableStream)
  async function * entries (): AsyncGenerator<TarEntryIn> {
    for await (const entry of extract) {
      const pax = scanner.take(entry.offset) ?? fallbackPax(entry.header.pax)
      yield { header: withByteNames(entry.header, pax), pax, data: entry as unknown as Readable }
    }
  }
  return {
    entries: entries(),
    destroy: () => {
      input.tar.destroy()
      extract.destroy()
    },
    digest: input.digest,
    size: input.size
  }
}

/** The header with the name and link target its PAX records give, as byte strings. */
function withByteNames (h: tar.Header, pax: PaxRecords | undefined): tar.Header {
  const name = pax?.get('path')
  const link = pax?.get('linkpath')
  if (name === undefined && link === undefined) return h
  return { ...h, name: name?.toString('latin1') ?? h.name, linkname: link?.toString('latin1') ?? h.linkname }
}

/** tar-stream's decoded PAX (text values), when the raw one was not seen. */
function fallbackPax (pax: unknown): PaxRecords | undefined {
  if (pax === null || typeof pax !== 'object') return undefined
  return new Map(Object.entries(pax as Record<string, string>).map(([k, v]) => [k, Buffer.from(v)]))
}
