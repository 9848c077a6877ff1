/**
 * The two command-line syntaxes of `unionfs-ts mount`, parsed into a
 * MountSpec and checked into Options (lib/options.ts), and `toArgs`, which
 * spells Options back out:
 *
 *   unionfs-ts mount [-o OPTIONS] [-f] BRANCH[:BRANCH...] MOUNTPOINT
 *   unionfs-ts mount -o lowerdir=L1:L2,upperdir=U,workdir=W[,...] [-f] MOUNTPOINT
 *
 * mount.fuse(8) and the mount.fuse.unionfs-ts helper pass the same options
 * as `SOURCE MOUNTPOINT -o OPTS`: with lowerdir= the SOURCE is only a label
 * (the default fsname), without it the SOURCE is the branch list, so an
 * /etc/fstab line can carry either syntax. Options mount(8) adds for every
 * filesystem (rw, dev, suid, noatime, ...) are accepted and ignored.
 *
 * Escaping: in a branch list, in lowerdir= and in any -o value, a backslash
 * makes the next character literal, so `\:`, `\,`, `\=` and `\\` put those
 * characters into a path (overlayfs escapes ':' in lowerdir= the same way).
 */
import * as path from 'node:path'
import {
  OptionsError, readdirPlusMode, resolveOptions, WORKDIR_NAME,
  type BranchSpec, type MountSpec, type Options
} from './options'

/**
 * Options mount(8), mount.fuse(8) and fstab lines pass along that mean
 * nothing to a FUSE union, or that the kernel and mount(8) already applied.
 */
const IGNORED = new Set([
  'rw', 'dev', 'nodev', 'suid', 'nosuid', 'exec', 'noexec',
  'atime', 'noatime', 'relatime', 'norelatime', 'strictatime', 'nostrictatime',
  'diratime', 'nodiratime', 'lazytime', 'nolazytime',
  'defaults', 'auto', 'noauto', 'user', 'nouser', 'users', 'owner', 'group',
  '_netdev', 'nofail', 'sync', 'async', 'silent', 'loud',
  'default_permissions'
])

// ---------------------------------------------------------------------------
// Escaped splitting

/** Split on unescaped `sep`, keeping the escapes for the next level. */
function splitEscaped (s: string, sep: string): string[] {
  const parts: string[] = []
  let cur = ''
  for (let i = 0; i < s.length; i++) {
    const c = s[i]
    if (c === '\\' && i + 1 < s.length) {
      cur += c + s[i + 1]
      i++
    } else if (c === sep) {
      parts.push(cur)
      cur = ''
    } else {
      cur += c
    }
  }
  parts.push(cur)
  return parts
}

/** Index of the last unescaped `ch`, or -1. */
function lastUnescaped (s: string, ch: string): number {
  let found = -1
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\') i++
    else if (s[i] === ch) found = i
  }
  return found
}

function unescape (s: string): string {
  return s.replace(/\\(.)/gs, '$1')
}

/** Escape a path or value so that the parsers above give it back unchanged. */
export function escapeValue (s: string): string {
  return s.replace(/[\\:,=]/g, c => '\\' + c)
}

// ---------------------------------------------------------------------------
// Command line -> MountSpec

function parseBranchList (list: string): BranchSpec[] {
  if (list === '') return []
  return splitEscaped(list, ':').map(item => {
    const eq = lastUnescaped(item, '=')
    if (eq < 0) return { path: unescape(item) }
    const p = unescape(item.slice(0, eq))
    const mode = item.slice(eq + 1).toLowerCase()
    if (mode !== 'rw' && mode !== 'ro') {
      throw new OptionsError(`branch ${p}: unknown mode '${item.slice(eq + 1)}' (expected rw or ro)`)
    }
    return { path: p, mode }
  })
}

function parseDirList (key: string, value: string): string[] {
  if (value === '') throw new OptionsError(`${key}= needs at least one directory`)
  const dirs = splitEscaped(value, ':').map(unescape)
  if (dirs.includes('')) throw new OptionsError(`${key}=${value}: empty directory name`)
  return dirs
}

function parseBool (key: string, value: string | undefined): boolean {
  if (value === undefined) return true
  switch (value.toLowerCase()) {
    case 'on': case 'yes': case 'true': case '1': return true
    case 'off': case 'no': case 'false': case '0': return false
  }
  throw new OptionsError(`option ${key}=${value}: expected on or off`)
}

function parseNumber (key: string, value: string | undefined, integer: boolean): number {
  if (value === undefined || value === '') throw new OptionsError(`option ${key} needs a value`)
  const n = Number(value)
  if (!/^[0-9.eE+]+$/.test(value) || !Number.isFinite(n) || n < 0 || (integer && !Number.isSafeInteger(n))) {
    throw new OptionsError(`option ${key}=${value}: expected a ${integer ? 'whole ' : ''}number >= 0`)
  }
  return n
}

function needValue (key: string, value: string | undefined): string {
  if (value === undefined || value === '') throw new OptionsError(`option ${key} needs a value`)
  return value
}

/** Apply one -o item to the spec being built. */
function applyOption (spec: Partial<MountSpec>, item: string): void {
  if (item === '') return
  const eq = splitEscaped(item, '=')
  const key = unescape(eq[0])
  const raw = eq.length > 1 ? item.slice(eq[0].length + 1) : undefined
  const value = raw === undefined ? undefined : unescape(raw)
  if (IGNORED.has(key) && raw === undefined) return
  // fstab's x-* options (x-systemd.*, x-gvfs-*) and comment= are for other tools.
  if (key.startsWith('x-') || key === 'comment') return
  switch (key) {
    case 'lowerdir': spec.lowers = parseDirList(key, raw ?? ''); return
    case 'upperdir': spec.upper = needValue(key, value); return
    case 'workdir': spec.workdir = needValue(key, value); return
    case 'whiteout':
      if (value !== 'aufs' && value !== 'overlay') {
        throw new OptionsError(`option whiteout=${value ?? ''}: expected aufs or overlay`)
      }
      spec.whiteout = value
      return
    case 'cache': spec.cache = parseBool(key, value); return
    case 'cache_entries': spec.cacheEntries = parseNumber(key, value, true); return
    case 'cache_ttl': spec.cacheTtlMs = parseNumber(key, value, true); return
    case 'entry_timeout': spec.entryTimeout = parseNumber(key, value, false); return
    case 'attr_timeout': spec.attrTimeout = parseNumber(key, value, false); return
    case 'negative_timeout': spec.negativeTimeout = parseNumber(key, value, false); return
    case 'writeback': spec.writeback = parseBool(key, value); return
    case 'passthrough': spec.passthrough = parseBool(key, value); return
    case 'killpriv': spec.killpriv = parseBool(key, value); return
    case 'spin': spec.spin = parseNumber(key, value, true); return
    case 'readahead': spec.readahead = parseNumber(key, value, true); return
    case 'readdirplus': spec.readdirplus = readdirPlusMode(value); return
    case 'xattr': spec.xattr = parseBool(key, value); return
    case 'acl': spec.acl = parseBool(key, value); return
    case 'debug': spec.debug = parseBool(key, value); return
    case 'allow_other': spec.allowOther = parseBool(key, value); return
    case 'fsname': spec.fsname = needValue(key, value); return
    case 'backend': spec.backend = needValue(key, value); return
    case 'log': spec.log = needValue(key, value); return
    case 'trace': spec.trace = raw === undefined ? true : needValue(key, value); return
    case 'trace_format':
      if (value !== 'text' && value !== 'json') throw new OptionsError(`option trace_format=${value ?? ''}: expected text or json`)
      spec.traceFormat = value
      return
    case 'ro': if (raw === undefined) { spec.readOnly = true; return } break
    case 'noacl': if (raw === undefined) { spec.acl = false; return } break // fuse-overlayfs' spelling
  }
  throw new OptionsError(`unknown option '${key}'`)
}

export interface ParseMode {
  /**
   * The arguments are mount.fuse(8)'s `SOURCE MOUNTPOINT -o OPTS`: SOURCE is
   * the branch list, or with lowerdir= a label (the default fsname), as in
   * `mount -t overlay overlay MNT -o lowerdir=...`.
   */
  source?: boolean
}

/**
 * Parse the arguments of `unionfs-ts mount` (everything after the word
 * `mount`), or with `{ source: true }` those mount.fuse(8) passes, and
 * validate them against the disk.
 */
export function parseOptions (args: readonly string[], mode: ParseMode = {}): Options {
  const spec: Partial<MountSpec> = {}
  const positional: string[] = []
  let sawOptionsEnd = false
  for (let i = 0; i < args.length; i++) {
    const a = args[i]
    if (sawOptionsEnd || a === '-' || !a.startsWith('-')) {
      positional.push(a)
    } else if (a === '--') {
      sawOptionsEnd = true
    } else if (a === '-f' || a === '--foreground') {
      spec.foreground = true
    } else if (a === '-d') {
      // libfuse's -d: debug output, which only makes sense in the foreground.
      spec.debug = true
      spec.foreground = true
    } else if (a === '-o') {
      if (i + 1 >= args.length) throw new OptionsError('option -o needs a value')
      for (const item of splitEscaped(args[++i], ',')) applyOption(spec, item)
    } else if (a.startsWith('-o')) {
      for (const item of splitEscaped(a.slice(2), ',')) applyOption(spec, item)
    } else {
      throw new OptionsError(`unknown option '${a}'`)
    }
  }

  const overlaySyntax = spec.lowers !== undefined || spec.upper !== undefined
  if (overlaySyntax) {
    const expected = mode.source === true ? 2 : 1
    if (positional.length < expected) throw new OptionsError('missing MOUNTPOINT')
    if (positional.length > expected) {
      throw new OptionsError(`unexpected argument '${positional[expected === 1 ? 0 : 2]}' (with lowerdir=, branches come from the options)`)
    }
    if (expected === 2 && spec.fsname === undefined && positional[0] !== '') spec.fsname = positional[0]
    spec.mountpoint = positional[expected - 1]
  } else {
    if (positional.length === 0) throw new OptionsError('no branches and no MOUNTPOINT given')
    if (positional.length === 1) {
      throw new OptionsError('no branches given (usage: unionfs-ts mount BRANCH[:BRANCH...] MOUNTPOINT)')
    }
    if (positional.length > 2) throw new OptionsError(`unexpected argument '${positional[2]}'`)
    spec.branches = parseBranchList(positional[0])
    spec.mountpoint = positional[1]
  }
  return resolveOptions(spec as MountSpec)
}

// ---------------------------------------------------------------------------
// Options -> command line

/**
 * Command-line arguments for `unionfs-ts mount` that parse back to
 * `options` (the library hands a mount to the CLI daemon this way). Every
 * setting is spelled out, so no default depends on the syntax.
 */
export function toArgs (options: Options): string[] {
  const { union, fuse } = options
  const branches = [
    ...(union.upper === undefined ? [] : [escapeValue(union.upper) + '=rw']),
    ...union.lowers.map(l => escapeValue(l) + '=ro')
  ]
  const o = [
    `whiteout=${union.whiteout}`,
    `cache_entries=${union.cacheEntries}`,
    `cache_ttl=${union.cacheTtlMs}`,
    `entry_timeout=${fuse.entryTimeout}`,
    `attr_timeout=${fuse.attrTimeout}`,
    `negative_timeout=${fuse.negativeTimeout}`,
    `writeback=${fuse.writeback ? 'on' : 'off'}`,
    `passthrough=${fuse.passthrough ? 'on' : 'off'}`,
    `killpriv=${fuse.killpriv ? 'on' : 'off'}`,
    `spin=${fuse.spin}`,
    `readahead=${fuse.readahead}`,
    `readdirplus=${fuse.readdirplus}`,
    `xattr=${fuse.xattr ? 'on' : 'off'}`,
    `acl=${fuse.acl ? 'on' : 'off'}`,
    `debug=${fuse.debug ? 'on' : 'off'}`,
    `allow_other=${fuse.allowOther ? 'on' : 'off'}`,
    `fsname=${escapeValue(fuse.fsname)}`,
    `backend=${options.backend}`
  ]
  // union.workdir is the work area itself: W/work for a given workdir=W.
  if (union.workdir !== undefined && union.upper !== undefined && union.workdir !== path.join(union.upper, WORKDIR_NAME)) {
    o.push(`workdir=${escapeValue(path.dirname(union.workdir))}`)
  }
  if (options.log !== undefined) o.push(`log=${escapeValue(options.log)}`)
  if (options.trace !== undefined) {
    o.push(options.trace.file === undefined ? 'trace' : `trace=${escapeValue(options.trace.file)}`, `trace_format=${options.trace.format}`)
  }
  return [
    '-o', o.join(','),
    ...(options.foreground ? ['-f'] : []),
    '--', branches.join(':'), options.mountpoint
  ]
}
