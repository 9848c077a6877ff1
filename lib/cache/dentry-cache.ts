/**
 * The dentry cache: union path -> what the lookup found (which branches
 * serve it and the serving entry's attributes), plus negative entries for
 * names that exist nowhere, the common case of `$PATH`, `import` and
 * `dlopen` searches through deep layer stacks.
 *
 * Invalidation rules (storage first, cache second: the core changes the
 * branches, then drops what the change made stale, so a concurrent reader
 * never caches the old state after the change):
 *  - a mutation of a path drops that path. Its parent stays: what an entry
 *    holds besides attributes (serving branch, stack, inode number) a
 *    child's change cannot alter, and the parent of every mutation is
 *    served by the writable branch (copy-up sees to that), whose
 *    attributes are re-read anyway (below);
 *  - copy-up drops the copied path (its serving branch changed); children
 *    stay valid, since a directory's stack below the top is unchanged;
 *  - rmdir, a directory rename and anything that replaces a directory drop
 *    the whole subtree at both ends;
 *  - branches changed behind the mount's back are outside the contract, as
 *    with overlayfs: `cache=off` (max 0) or a TTL is the remedy.
 * Attributes of entries served by the writable branch are re-read on every
 * getattr (writes change them); lower branches never change through the
 * mount, so their cached attributes stay exact.
 *
 * The clock is injected so TTL behaviour is tested without sleeping. All
 * lookups run to completion on the JS thread, so two misses for one path
 * cannot be in flight at once and need no sharing.
 */
import { LRUCache } from 'lru-cache'
import { isWithin } from '../union/paths'

export interface Clock { now (): number }

export interface CacheStats {
  hits: number
  misses: number
  negativeHits: number
  size: number
}

const NEGATIVE = Symbol('negative')
type Slot<V> = V | typeof NEGATIVE

export class DentryCache<V extends object> {
  private readonly lru?: LRUCache<string, Slot<V>>
  /**
   * hits, misses, negative hits, size. Possibly shared memory: a union
   * served from a worker thread counts there, its owner reads (events.ts).
   */
  private readonly counters: Float64Array

  constructor (max: number, ttlMs = 0, clock?: Clock, counters: Float64Array = new Float64Array(4)) {
    this.counters = counters
    if (max > 0) {
      this.lru = new LRUCache<string, Slot<V>>({
        max,
        ...(ttlMs > 0 ? { ttl: ttlMs, ttlResolution: 0 } : {}),
        ...(clock !== undefined ? { perf: clock } : {})
      })
    }
  }

  /** The cached value, null for a cached "exists nowhere", undefined for a miss. */
  get (key: string): V | null | undefined {
    const v = this.lru?.get(key)
    if (v === undefined) { this.counters[1]++; return undefined }
    if (v === NEGATIVE) { this.counters[2]++; return null }
    this.counters[0]++
    return v
  }

  /** The cached value without counting a hit or touching recency. */
  peek (key: string): V | undefined {
    const v = this.lru?.peek(key)
    return v === undefined || v === NEGATIVE ? undefined : v
  }

  set (key: string, value: V | null): void {
    if (this.lru === undefined) return
    this.lru.set(key, value === null ? NEGATIVE : value)
    this.counters[3] = this.lru.size
  }

  delete (key: string): void {
    if (this.lru?.delete(key) === true) this.counters[3] = this.lru.size
  }

  /** Drops `dir` and everything cached below it (any key prefix space). */
  deleteTree (dir: string): void {
    if (this.lru === undefined) return
    for (const key of [...this.lru.keys()]) {
      const path = key.startsWith('/') ? key : key.slice(key.indexOf('/'))
      if (isWithin(path, dir)) this.lru.delete(key)
    }
    this.counters[3] = this.lru.size
  }

  clear (): void {
    this.lru?.clear()
    this.counters[3] = 0
  }

  stats (): CacheStats {
    const c = this.counters
    return { hits: c[0], misses: c[1], negativeHits: c[2], size: this.lru === undefined ? 0 : c[3] }
  }
}
