/**
 * Whether a READDIRPLUS reply carries the entries' attributes or their
 * names and types alone (`-o readdirplus=auto|always|never`).
 *
 * With attributes, the kernel caches every entry of the reply: a later
 * stat of it needs no request. They cost the daemon an lstat per entry,
 * which on a cold tree reads each inode from disk. A walker that needs
 * only names and types (find, a shell glob, a build tool scanning for
 * sources) pays that for nothing; one that stats every entry (ls -l, tar,
 * du, rsync) saves a LOOKUP round trip per entry. An entry sent without
 * attributes (node id 0) is a plain directory entry to the kernel: the
 * first stat of it sends a LOOKUP, as after a READDIR.
 *
 * `always` sends attributes; `never` does not ask for READDIRPLUS at INIT
 * (the kernel sends READDIR). `auto`, the default, tells the two kinds of
 * walker apart by what the caller does after a listing, much as the
 * kernel's READDIRPLUS_AUTO decides between READDIRPLUS and READDIR. What
 * is decided is the attributes of a listing's other entries: its
 * subdirectories always get theirs (ops-dir.ts), since every walker looks
 * them up to descend, find included. Only a listing with at least two
 * non-directory names can tell; one with fewer (a directory of
 * subdirectories) always gets attributes and does not count below.
 * - A listing answered with names alone is watched: each LOOKUP of one of
 *   its non-directory names is a stat the attributes would have saved.
 *   Once a quarter of them, and at least two, were looked up, listings
 *   get attributes.
 * - While listings get attributes, every PROBE_EVERY-th is answered with
 *   names and watched the same way. If the caller opens the next listing
 *   before that one drew its lookups, listings get names.
 * - A probe the caller read too little of to judge (fewer than two names)
 *   leaves the mode as it was, and the next listing is the probe.
 * Counting only listings that can tell keeps the probes on them: in a
 * tree whose directories mostly hold one subdirectory (a Java package
 * path), probes placed every PROBE_EVERY-th listing of any kind kept
 * landing where nothing could be judged, and a cold `find` paid an lstat
 * for every file.
 * The mode starts at attributes (what an `ls -l` of one directory wants),
 * but the first listing that can tell and holds at most FIRST_PROBE_MAX
 * non-directory names is a probe: a walker is judged at its first small
 * listing, for at most that many LOOKUPs if it stats what it lists, where
 * waiting for the PROBE_EVERY-th listing cost a cold `find` an lstat of
 * each file of the listings before it.
 * Walkers stat a listing's entries after reading all of it and before
 * opening the next (ls, tar and du do; find reads a directory and then
 * descends), so the verdict is in before the next listing is answered.
 * Two walkers of the two kinds at once make the mode flip: it costs lstats
 * or LOOKUPs, never a wrong answer.
 */

export type ReaddirPlusMode = 'auto' | 'always' | 'never'

export const READDIRPLUS_MODES: readonly ReaddirPlusMode[] = ['auto', 'always', 'never']

export function isReaddirPlusMode (v: unknown): v is ReaddirPlusMode {
  return READDIRPLUS_MODES.includes(v as ReaddirPlusMode)
}

/** While listings get attributes, every this many-th is a probe answered with names. */
export const PROBE_EVERY = 8

const MIN_NAMES = 2

/** Until the first probe, a listing with at least MIN_NAMES and at most this many non-directory names is the probe. */
export const FIRST_PROBE_MAX = 64

interface Watch {
  readonly dir: number
  /** Listed non-directory names not looked up yet. */
  readonly names: Set<string>
  hits: number
}

export class ListingAttrs {
  private attrs = true
  private sinceProbe = 0
  private probed = false
  private watch: Watch | undefined

  constructor (private readonly mode: ReaddirPlusMode) {}

  /** Ask for READDIRPLUS at INIT. */
  get readdirplus (): boolean {
    return this.mode !== 'never'
  }

  /**
   * Does a new listing of directory node `dir`, with `files` non-directory
   * names, get attributes? Called once per listing (dirs.ts): at its first READDIRPLUS.
   */
  choose (dir: number, files: number): boolean {
    if (this.mode !== 'auto') return true
    const w = this.watch
    this.watch = undefined
    if (w !== undefined && listed(w) >= MIN_NAMES) {
      if (!statted(w)) this.attrs = false
    } else if (w !== undefined) {
      this.sinceProbe = PROBE_EVERY - 1 // no verdict: the next listing that can tell is the probe
    }
    if (files < MIN_NAMES) return true
    const first = !this.probed && files <= FIRST_PROBE_MAX
    if (this.attrs && !first && ++this.sinceProbe < PROBE_EVERY) return true
    this.probed = true
    this.sinceProbe = 0
    this.watch = { dir, names: new Set(), hits: 0 }
    return false
  }

  /** A page of directory `dir` went out without attributes: watch its non-directory names. */
  listed (dir: number, names: readonly string[]): void {
    const w = this.watch
    if (w === undefined || w.dir !== dir) return
    for (const name of names) w.names.add(name)
  }

  /** The kernel looked up `name` in directory `dir`. */
  lookedUp (dir: number, name: string): void {
    const w = this.watch
    if (w === undefined || w.dir !== dir || !w.names.delete(name)) return
    w.hits++
    if (listed(w) >= MIN_NAMES && statted(w)) {
      this.attrs = true
      this.sinceProbe = 0
      this.watch = undefined
    }
  }
}

function listed (w: Watch): number {
  return w.names.size + w.hits
}

function statted (w: Watch): boolean {
  return w.hits >= MIN_NAMES && w.hits * 4 >= listed(w)
}
