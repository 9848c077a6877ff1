/**
 * The shared POSIX behaviour suite (ring 2).
 *
 * runPosixSuite(root) runs every scenario in its own subdirectory of `root`
 * (which must exist and be empty) and returns a transcript: one line per step,
 * `scenario: step -> result`, where a result is `ok`, `ok <value>` or an errno
 * code. What a line records is chosen to be equal on any correct POSIX
 * filesystem: stat fields (type, permission bits, size, nlink, owner), st_ino
 * *relations* (a hard link has its target's st_ino, a rename keeps it), time
 * *relations* (mtime moved after a write), never raw inode numbers or clock
 * readings (only times the suite set itself).
 * Run it on a plain directory and on a mount and compare the transcripts.
 *
 * Lines starting with '~' record optional behaviour (SEEK_DATA / SEEK_HOLE
 * placement): compare them separately and treat a difference as a note.
 *
 * The scenarios themselves are in ./posix-scenarios; this file holds the
 * recorder they write through, the runner and the comparison. Everything is
 * synchronous node:fs (plus ./sys for xattrs and mknod): the filesystem under
 * test is always served by another process.
 */
import type {} from 'tap'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { dir, typeName, type Spec } from './tree'
import { scenarios } from './posix-scenarios'

function fmt (v: unknown): string {
  if (v === undefined || v === null) return ''
  if (Buffer.isBuffer(v)) {
    return v.length <= 64 ? `buf${JSON.stringify(v.toString('latin1'))}` : `buf[${v.length}]`
  }
  if (typeof v === 'bigint') return v.toString()
  if (typeof v === 'string') return JSON.stringify(v.length <= 4000 ? v : `${v.slice(0, 40)}...[${v.length}]`)
  return JSON.stringify(v)
}

export function errCode (e: unknown): string {
  const code = (e as { code?: unknown })?.code
  if (typeof code === 'string') return code
  return `THROW ${(e as Error)?.message ?? String(e)}`
}

export function describeStat (st: fs.BigIntStats | fs.Stats): string {
  const type = typeName(st.mode)
  const parts = [type, (Number(st.mode) & 0o7777).toString(8).padStart(4, '0'),
    `nlink=${st.nlink}`, `uid=${st.uid}`, `gid=${st.gid}`]
  if (type !== 'dir') parts.push(`size=${st.size}`)
  return parts.join(' ')
}

/** The recorder one scenario writes its transcript lines through; paths are relative to its dir. */
export class Rec {
  constructor (readonly dir: string, readonly name: string, readonly lines: string[]) {}

  p (rel: string): string { return rel === '.' ? this.dir : path.join(this.dir, rel) }

  line (label: string, result: string): void { this.lines.push(`${this.name}: ${label} -> ${result}`) }

  /** Run fn; record `ok <value>` or the error code. Returns the value (undefined on error). */
  do<T> (label: string, fn: () => T): T | undefined {
    try {
      const v = fn()
      const s = fmt(v)
      this.line(label, s === '' ? 'ok' : `ok ${s}`)
      return v
    } catch (e) {
      this.line(label, errCode(e))
      return undefined
    }
  }

  /** open(2) recording `ok` or the code (never the descriptor number). */
  open (label: string, rel: string, flags: number, mode = 0o644): number | undefined {
    try { const fd = fs.openSync(this.p(rel), flags, mode); this.line(label, 'ok'); return fd } catch (e) { this.line(label, errCode(e)); return undefined }
  }

  /** open(2) then close(2) at once, recording `ok` or the open's code. */
  openClose (label: string, rel: string, flags: number, mode = 0o644): void {
    const fd = this.open(label, rel, flags, mode)
    if (fd !== undefined) fs.closeSync(fd)
  }

  /** Record an error code only: `ok` or the code, with any value dropped. */
  try (label: string, fn: () => unknown): boolean {
    try { fn(); this.line(label, 'ok'); return true } catch (e) { this.line(label, errCode(e)); return false }
  }

  check (label: string, cond: boolean): void { this.line(label, String(cond)) }

  stat (rel: string, label = `stat ${rel}`): fs.BigIntStats | undefined {
    try {
      const st = fs.statSync(this.p(rel), { bigint: true })
      this.line(label, describeStat(st))
      return st
    } catch (e) { this.line(label, errCode(e)); return undefined }
  }

  lstat (rel: string, label = `lstat ${rel}`): fs.BigIntStats | undefined {
    try {
      const st = fs.lstatSync(this.p(rel), { bigint: true })
      this.line(label, describeStat(st))
      return st
    } catch (e) { this.line(label, errCode(e)); return undefined }
  }

  fstat (fd: number, label: string): fs.BigIntStats | undefined {
    try {
      const st = fs.fstatSync(fd, { bigint: true })
      this.line(label, describeStat(st))
      return st
    } catch (e) { this.line(label, errCode(e)); return undefined }
  }

  /** lstat without recording (for relations). */
  quiet (rel: string): fs.BigIntStats | undefined {
    try { return fs.lstatSync(this.p(rel), { bigint: true }) } catch { return undefined }
  }

  read (rel: string, label = `read ${rel}`): string | undefined {
    return this.do(label, () => fs.readFileSync(this.p(rel)).toString('latin1'))
  }

  ls (rel = '.', label = `ls ${rel}`): void {
    this.do(label, () => fs.readdirSync(this.p(rel), { withFileTypes: true })
      .map(d => `${d.name}:${d.isDirectory() ? 'd' : d.isSymbolicLink() ? 'l' : d.isFile() ? 'f' : 'o'}`)
      .sort().join(' '))
  }

  write (rel: string, content: string | Buffer, label = `write ${rel}`): boolean {
    return this.try(label, () => fs.writeFileSync(this.p(rel), content))
  }

  /** A past time every test sets before checking that an operation moved a time forward. */
  static readonly PAST = 1_000_000_000
  backdate (rel: string): void {
    fs.utimesSync(this.p(rel), Rec.PAST, Rec.PAST)
  }

  moved (rel: string, field: 'mtimeMs' | 'ctimeMs' | 'atimeMs', label: string): void {
    const st = this.quiet(rel)
    this.check(label, st !== undefined && st[field] > BigInt(Rec.PAST) * 1000n)
  }
}

export const SCENARIOS = Object.keys(scenarios)

/**
 * Run the scenarios (all, or the named ones) under `root` and return the
 * transcript. Sets the umask to 022 for the run and restores it.
 */
export function runPosixSuite (root: string, only: string[] = SCENARIOS): string[] {
  const lines: string[] = []
  const old = process.umask(0o022)
  try {
    for (const name of only) {
      const dir = path.join(root, name)
      const r = new Rec(dir, name, lines)
      try {
        fs.mkdirSync(dir)
        scenarios[name](r)
        r.ls('.', 'final listing')
      } catch (e) {
        r.line('scenario aborted', errCode(e))
      }
    }
  } finally { process.umask(old) }
  return lines
}

/** Split a transcript into required lines and optional ('~') ones. */
export function splitOptional (lines: string[]): { required: string[], optional: string[] } {
  const isOpt = (l: string): boolean => l.slice(l.indexOf(': ') + 2).startsWith('~')
  return { required: lines.filter(l => !isOpt(l)), optional: lines.filter(isOpt) }
}

/**
 * Assert that `got` (the filesystem under test) matches `want` (the plain
 * directory). Required lines must be equal; a difference in optional lines is
 * reported as a todo. Differences are also listed as comments, one per line,
 * so a failure reads without a diff viewer.
 */
export function compareTranscripts (t: tap.Test, got: string[], want: string[], what: string): boolean {
  const g = splitOptional(got)
  const w = splitOptional(want)
  const wantSet = new Set(w.required)
  const gotSet = new Set(g.required)
  for (const l of w.required) if (!gotSet.has(l)) t.comment(`${what}: expected  ${l}`)
  for (const l of g.required) if (!wantSet.has(l)) t.comment(`${what}: got       ${l}`)
  const ok = t.strictSame(g.required, w.required, `${what}: POSIX transcript matches the plain directory`)
  if (g.optional.join('\n') !== w.optional.join('\n')) {
    t.strictSame(g.optional, w.optional, `${what}: optional behaviour (SEEK_DATA/SEEK_HOLE)`,
      { todo: 'optional: hole and data placement may differ' })
  }
  return ok
}

/**
 * The lower branch the mounted runs use: unrelated content beside the suite,
 * and a directory chain (deep/er/here, with its own modes and owners) that
 * exists only in the lower branch, for runs whose working dir makes every
 * first mutation copy up its parents.
 */
export const LOWER_SPEC: Spec = {
  unrelated: { 'a.txt': 'lower a', sub: { 'b.txt': 'lower b' } },
  'top.txt': 'top of the lower branch',
  deep: dir({
    'sibling.txt': 'beside er',
    er: dir({ here: dir({}, { mode: 0o755 }), 'x.txt': 'x' }, { mode: 0o751, uid: 42, gid: 43, mtime: 1_234_567_890 })
  }, { mode: 0o750, mtime: 1_234_567_000 })
}
export const DEEP_DIR = 'deep/er/here'
