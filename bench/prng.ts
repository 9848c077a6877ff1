/**
 * A seeded pseudo-random generator, so the same parameters always build the
 * same tree, byte for byte, on any machine.
 *
 * sfc32 (Chris Doty-Humphrey's "small fast counting" generator): four 32-bit
 * words of state, a period of at least 2^32, and good statistical quality
 * for picking sizes, layers and names. The seed is spread over the state by
 * a splitmix32 step per word and 12 discarded outputs.
 */

function splitmix32 (x: number): number {
  x = (x + 0x9e3779b9) | 0
  let z = x
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
  return (z ^ (z >>> 16)) >>> 0
}

/** A 32-bit hash of a string (FNV-1a), for deriving sub-seeds from labels. */
export function hash32 (s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

export class Prng {
  private a: number
  private b: number
  private c: number
  private d: number

  /** `seed` and an optional label: Prng(7, 'layers/d64') and Prng(7, 'view') are independent streams. */
  constructor (seed: number, label = '') {
    let s = (seed ^ hash32(label)) >>> 0
    s = splitmix32(s); this.a = s
    s = splitmix32(s); this.b = s
    s = splitmix32(s); this.c = s
    s = splitmix32(s); this.d = s
    for (let i = 0; i < 12; i++) this.u32()
  }

  /** Uniform in [0, 2^32). */
  u32 (): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0
    this.d = (this.d + 1) | 0
    this.a = this.b ^ (this.b >>> 9)
    this.b = (this.c + (this.c << 3)) | 0
    this.c = (this.c << 21) | (this.c >>> 11)
    this.c = (this.c + t) | 0
    return t >>> 0
  }

  /** Uniform in [0, 1). */
  float (): number {
    return this.u32() / 4294967296
  }

  /** Uniform integer in [0, n). */
  below (n: number): number {
    return Math.floor(this.float() * n)
  }

  /** Uniform integer in [lo, hi]. */
  between (lo: number, hi: number): number {
    return lo + this.below(hi - lo + 1)
  }

  /** `count` distinct indexes of [0, n), in random order (partial Fisher-Yates). */
  sample (n: number, count: number): number[] {
    const idx = Array.from({ length: n }, (_, i) => i)
    const k = Math.min(count, n)
    for (let i = 0; i < k; i++) {
      const j = i + this.below(n - i)
      const t = idx[i]; idx[i] = idx[j]; idx[j] = t
    }
    return idx.slice(0, k)
  }

  /** Fill `buf` with random bytes. */
  fill (buf: Buffer): Buffer {
    let i = 0
    for (; i + 4 <= buf.length; i += 4) buf.writeUInt32LE(this.u32(), i)
    for (; i < buf.length; i++) buf[i] = this.u32() & 0xff
    return buf
  }
}
