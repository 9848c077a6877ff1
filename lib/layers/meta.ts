/**
 * Entry metadata shared by apply and diff: device numbers, times, and the
 * PAX keys that carry xattrs.
 *
 * Device numbers use glibc's makedev/major/minor encoding of st_rdev.
 * Times in a tar are whole seconds in the ustar header, or a decimal
 * string in a PAX `mtime`/`atime` record; both become [sec, nsec] here,
 * the form utimensat takes.
 */
import type { TimeArg } from '../native'
import type { PaxRecords } from './pax'

export function makedev (major: number, minor: number): number {
  const ma = BigInt(major)
  const mi = BigInt(minor)
  const dev = (mi & 0xffn) | ((ma & 0xfffn) << 8n) | ((mi & ~0xffn) << 12n) | ((ma & ~0xfffn) << 32n)
  return Number(dev)
}

export function devMajor (rdev: bigint): number {
  return Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn))
}

export function devMinor (rdev: bigint): number {
  return Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn))
}

/** A PAX decimal time ("1700000000.5") as [sec, nsec]; undefined when malformed. */
export function paxTime (s: string): [number, number] | undefined {
  const m = /^(-?[0-9]+)(?:\.([0-9]*))?$/.exec(s.trim())
  if (m === null) return undefined
  const sec = Number(m[1])
  const frac = (m[2] ?? '').slice(0, 9).padEnd(9, '0')
  if (!Number.isSafeInteger(sec)) return undefined
  return [sec, Number(frac)]
}

export interface EntryTimes {
  atime: TimeArg
  mtime: TimeArg
}

export function entryTimes (headerMtime: Date | undefined, pax: PaxRecords | undefined): EntryTimes {
  const fromHeader: [number, number] = [Math.floor((headerMtime?.getTime() ?? 0) / 1000), 0]
  const m = pax?.get('mtime')
  const mtime = (m !== undefined ? paxTime(m.toString()) : undefined) ?? fromHeader
  const a = pax?.get('atime')
  const atime = (a !== undefined ? paxTime(a.toString()) : undefined) ?? mtime
  return { atime, mtime }
}

/** A PAX numeric record (uid, gid) that overrides the header's field. */
export function paxNumber (pax: PaxRecords | undefined, key: string): number | undefined {
  const v = pax?.get(key)
  if (v === undefined) return undefined
  const n = Number(v.toString())
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined
}

export const SCHILY_XATTR = 'SCHILY.xattr.'
export const LIBARCHIVE_XATTR = 'LIBARCHIVE.xattr.'

/**
 * The xattrs a PAX header carries: GNU tar's and Docker's `SCHILY.xattr.NAME`
 * (raw value), and libarchive's `LIBARCHIVE.xattr.NAME` (name %-encoded,
 * value base64). Sorted by name.
 */
export function paxXattrs (pax: PaxRecords | undefined): Array<[string, Buffer]> {
  const out = new Map<string, Buffer>()
  if (pax === undefined) return []
  for (const [key, value] of pax) {
    if (key.startsWith(SCHILY_XATTR)) {
      out.set(key.slice(SCHILY_XATTR.length), value)
    } else if (key.startsWith(LIBARCHIVE_XATTR)) {
      let name: string
      try { name = decodeURIComponent(key.slice(LIBARCHIVE_XATTR.length)) } catch { continue }
      if (!out.has(name)) out.set(name, Buffer.from(value.toString(), 'base64'))
    }
  }
  return [...out].filter(([n]) => n !== '').sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
}
