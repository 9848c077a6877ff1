/**
 * The dentry cache: union path -> what the lookup found (which branches
 * serve it and the serving entry's attributes), plus negative entries for
 * names that exist nowhere, the common case of `$PATH`, `import` and
 * `dlopen` searches through deep layer stacks.
 *
 * Invalidation rules (storage first, cache second: the core changes the
 * branches, then drops what the change made stale, so a concurrent reader
 * never caches the old state after the change):
 *  - a mutation of a path drops that path and its parent (the parent's
 *    mtime, nlink and listing changed);
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
  private readonly counters = { hits: 0, misses: 0, negativeHits: 0 }

  constructor (max: number, ttlMs = 0, clock?: Clock) {
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
    if (v === undefined) { this.counters.misses++; return undefined }
    if (v === NEGATIVE) { this.counters.negativeHits++; return null }
    this.counters.hits++
    return v
  }

  /** The cached value without counting a hit or touching recency. */
  peek (key: string): V | undefined {
    const v = this.lru?.peek(key)
    return v === undefined || v === NEGATIVE ? undefined : v
  }

  set (key: string, value: V | null): void {
    this.lru?.set(key, value === null ? NEGATIVE : value)
  }

  delete (key: string): void {
    this.lru?.delete(key)
  }

  /** Drops `dir` and everything cached below it (any key prefix space). */
  deleteTree (dir: string): void {
    if (this.lru === undefined) return
    for (const key of [...this.lru.keys()]) {
      const path = key.startsWith('/') ? key : key.slice(key.indexOf('/'))
      if (isWithin(path, dir)) this.lru.delete(key)
    }
  }

  clear (): void { this.lru?.clear() }

  stats (): CacheStats {
    return { ...this.counters, size: this.lru?.size ?? 0 }
  }
}
