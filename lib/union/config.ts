/**
 * What a union is built from: the validated, frozen configuration the core
 * takes. lib/options.ts turns both command-line syntaxes (parsed by
 * lib/option-syntax.ts) into this; the library API takes it directly.
 */
export type WhiteoutDialect = 'aufs' | 'overlay'

export interface UnionConfig {
  /** Read-only branches, top first (absolute, real paths). */
  readonly lowers: readonly string[]
  /** The writable branch (absolute, real path), if any. */
  readonly upper?: string
  /** Work dir for atomic copy-up; on the upper's filesystem. Default <upper>/.wh..wh.unionfs-ts */
  readonly workdir?: string
  /** The whiteout dialect written. Both are always read. */
  readonly whiteout: WhiteoutDialect
  /** Dentry cache: max entries (0 turns it off) and time to live in ms (0: no expiry). */
  readonly cacheEntries: number
  readonly cacheTtlMs: number
  /** xattr namespace for private state: 'trusted' as root, 'user' otherwise. */
  readonly xattrNamespace: 'trusted' | 'user'
}
