/**
 * A small seeded PRNG (mulberry32) for the randomised robustness tests, so a
 * failing run can be repeated: each test prints its seed, and
 * UNIONFS_TS_SEED=N runs that seed again.
 */

export function seedFromEnv (): number {
  const given = process.env.UNIONFS_TS_SEED
  if (given !== undefined && /^[0-9]+$/.test(given)) return Number(given) >>> 0
  return (Date.now() ^ (process.pid << 16)) >>> 0
}

/** Uniform in [0, 1). */
export function prng (seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6D2B79F5) >>> 0
    let x = s
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

/** An integer in [lo, hi). */
export function between (rand: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rand() * (hi - lo))
}

export function pick<T> (rand: () => number, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)]
}
