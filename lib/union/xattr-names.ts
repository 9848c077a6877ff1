/**
 * The names of an entry's xattrs, listed once per cached entry.
 *
 * `ls -l` asks for two xattrs of every file it lists (security.selinux and
 * system.posix_acl_access), and most files have neither. One llistxattr
 * per entry answers every later "is NAME there?" without a system call: a
 * name not listed is ENODATA, a listed one is read from the branch. A list
 * is kept with its cached entry (a WeakMap: it goes when the dentry cache
 * drops the entry) and holds until the union next changes an xattr of any
 * file (setxattr, removexattr, copy-up: one counter for all, since hard
 * links share their xattrs between entries). Names appear only through
 * those operations, so a list never misses one; a name removed behind it
 * reads as ENODATA from the branch. Without a dentry cache (cache=off, for
 * branches changed behind the mount) every question goes to the branch.
 */
import type { ReadonlyBranch } from '../branch/branch'
import type { Entry } from './resolve'

interface Listed {
  readonly gen: number
  readonly names: readonly string[]
  readonly set: ReadonlySet<string>
}

export class XattrNames {
  private readonly lists = new WeakMap<Entry, Listed>()
  private gen = 0

  constructor (private readonly layers: readonly ReadonlyBranch[], private readonly enabled: boolean) {}

  /** false: the entry certainly has no xattr `name`; true: ask its branch. */
  mayHave (e: Entry, name: string): boolean {
    return !this.enabled || this.listed(e).set.has(name)
  }

  /** The names of the entry's xattrs. */
  names (e: Entry): readonly string[] {
    return this.enabled ? this.listed(e).names : this.layers[e.top.layer].listxattr(e.top.rel)
  }

  /** The union changed an xattr of some file: every list is stale. */
  changed (): void {
    this.gen++
  }

  private listed (e: Entry): Listed {
    let l = this.lists.get(e)
    if (l === undefined || l.gen !== this.gen) {
      const names = this.layers[e.top.layer].listxattr(e.top.rel)
      l = { gen: this.gen, names, set: new Set(names) }
      this.lists.set(e, l)
    }
    return l
  }
}
