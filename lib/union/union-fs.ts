/**
 * UnionFs: the union core. POSIX-shaped async methods on union paths that
 * throw Node-shaped errors; it knows nothing of FUSE.
 *
 * Branches: `lowers` are ReadonlyBranch (writing one does not compile); the
 * optional `upper` is the one WritableBranch, layer 0 of the lookup order.
 * Without it every mutation answers EROFS.
 *
 * Reads go to whichever branch serves the path (resolve.ts). A mutation of
 * an entry a lower branch serves copies it up first (copy-up.ts); new names
 * and removals honour whiteouts (create.ts, remove.ts); rename.ts moves
 * files and merged directories; open-files.ts does what goes through an
 * open handle.
 *
 * Each method runs to completion on the JS thread with synchronous branch
 * calls (see branch.ts for why), so operations never interleave and no path
 * needs a lock. What a method changes is on the branch filesystem before it
 * returns: a killed or unmounted daemon loses nothing it acknowledged
 * (fsync through the mount makes it durable against power loss as well).
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { readonlyBranch, writableBranch, type ReadonlyBranch, type WritableBranch } from '../branch/branch'
import { DentryCache, type CacheStats, type Clock } from '../cache/dentry-cache'
import { fsError } from '../errors'
import type { UnionConfig } from './config'
import { CopyUp, type CopyUpEvent } from './copy-up'
import { createFile, link, linkOpen, makeEntry, tmpFile } from './create'
import type { Core } from './core'
import { Handles } from './handles'
import { unionIno } from './inodes'
import { LowerIndex } from './lower-index'
import { OpenFiles } from './open-files'
import { mergedListing } from './readdir'
import { rename } from './rename'
import { rmdir, unlink } from './remove'
import { Resolver, type Entry } from './resolve'
import type { Attr, Caller, DirEntry, StatFs, TimeSpec, UnionChange, UnionFsApi, UnionThreadSpec } from './types'
import { isPrivateXattr, Whiteouts } from './whiteouts'
import { Workdir } from './workdir'
import { timeArg, toAttr } from './attrs'
import { XattrNames } from './xattr-names'
import { isMainThread } from 'node:worker_threads'
import { COUNTER_WORDS, SharedCounters, STATS_WORDS, type UnionCounters, type UnionEvent, type UnionObserver } from './events'

const { O_RDONLY, O_WRONLY, O_RDWR, O_TRUNC, O_CREAT, O_EXCL, O_NOCTTY } = fs.constants
const O_ACCMODE = O_RDONLY | O_WRONLY | O_RDWR

export interface UnionFsOptions {
  /** The dentry cache's clock (tests inject one). */
  clock?: Clock
  /** Where the counters live: a twin serving in a worker thread shares its owner's. */
  statsBuffer?: SharedArrayBuffer
}

export class UnionFs implements UnionFsApi {
  readonly layers: readonly ReadonlyBranch[]
  readonly upper?: WritableBranch
  readonly resolver: Resolver
  private readonly core?: Core
  private readonly handles = new Handles()
  private readonly xattrNames: XattrNames
  /** Calls on open handles (open-files.ts). */
  private readonly files: OpenFiles
  /** The transport's watchers (watch()). */
  private readonly watchers: Array<(change: UnionChange) => void> = []
  /** Counters for `stats`, shared with a serving thread's twin (events.ts). */
  readonly counters: UnionCounters
  private readonly statsBuffer: SharedArrayBuffer
  /** Observers of every copy-up, whiteout, opaque mark and rename (lib/observe/). */
  readonly observers: UnionObserver[] = []

  private constructor (readonly config: UnionConfig, opts: UnionFsOptions) {
    const layers: ReadonlyBranch[] = []
    if (config.upper !== undefined) {
      this.upper = writableBranch(config.upper, 0)
      layers.push(this.upper)
    }
    for (const dir of config.lowers) layers.push(readonlyBranch(dir, layers.length))
    this.layers = layers
    this.statsBuffer = opts.statsBuffer ?? new SharedArrayBuffer(STATS_WORDS * 8)
    this.counters = new SharedCounters(new Float64Array(this.statsBuffer, 0, COUNTER_WORDS))
    const cacheCounters = new Float64Array(this.statsBuffer, COUNTER_WORDS * 8, STATS_WORDS - COUNTER_WORDS)
    const cache = new DentryCache<Entry>(config.cacheEntries, config.cacheTtlMs, opts.clock, cacheCounters)
    // The lower indexes share the dentry cache's budget, counted in names.
    const lowerIndex = config.cacheEntries > 0 ? new LowerIndex(layers, config.cacheEntries * 4) : undefined
    this.resolver = new Resolver(layers, cache, config.xattrNamespace, this.upper !== undefined, lowerIndex)
    this.xattrNames = new XattrNames(layers, config.cacheEntries > 0)
    this.files = new OpenFiles(this.handles, this.xattrNames, this.upper !== undefined)
    if (this.upper !== undefined) {
      const work = Workdir.open(config.workdir ?? path.join(config.upper!, '.wh..wh.unionfs-ts'), this.upper, config.xattrNamespace)
      const whiteouts = new Whiteouts(this.upper, config.whiteout, config.xattrNamespace)
      const copyUp = new CopyUp(this.resolver, this.upper, work, config.xattrNamespace)
      copyUp.onCopied = (entry, event) => this.copiedUp(entry, event)
      whiteouts.onMade = (kind, p, form, ms) => {
        if (kind === 'whiteout') this.counters.whiteouts++
        else this.counters.opaques++
        this.emit({ kind, path: p, layer: 0, form, ms })
      }
      this.core = {
        layers, upper: this.upper, resolver: this.resolver, whiteouts, copyUp, work,
        privileged: process.getuid?.() === 0
      }
    }
  }

  /**
   * Opens a union on validated branches. Creates the work dir and sweeps what
   * a crash left in it. The serving process's umask is cleared: the kernel
   * already applied the caller's.
   */
  static async open (config: UnionConfig, opts: UnionFsOptions = {}): Promise<UnionFs> {
    // Process-wide, and refused in a worker thread (the main thread opened its union first).
    if (isMainThread) process.umask(0)
    return new UnionFs(config, opts)
  }

  /**
   * The FUSE transport serves from a worker thread holding a twin of this
   * union (openUnion below); this instance then stays idle. Not while
   * something observes this instance: its observers would see nothing.
   */
  watch (listener: (change: UnionChange) => void): void {
    this.watchers.push(listener)
  }

  threadSpec (): UnionThreadSpec | undefined {
    if (this.observers.length > 0) return undefined
    // The twin counts into this instance's counters (shared memory), so `stats` sees them.
    return { module: __filename, arg: { config: this.config, statsBuffer: this.statsBuffer } }
  }

  cacheStats (): CacheStats {
    return this.resolver.cache.stats()
  }

  // ---- reads ----

  async getattr (p: string): Promise<Attr> {
    return this.attrOf(this.resolver.get(p, 'lstat'))
  }

  async lookupAttr (p: string): Promise<Attr | undefined> {
    const e = this.resolver.lookup(p)
    return e === undefined ? undefined : this.attrOf(e)
  }

  async fgetattr (fh: number): Promise<Attr> {
    return this.files.fgetattr(fh)
  }

  async readlink (p: string): Promise<string> {
    const e = this.resolver.get(p, 'readlink')
    if (!e.stat.isSymbolicLink()) throw fsError('EINVAL', 'readlink', p)
    return this.layers[e.top.layer].readlink(e.top.rel)
  }

  async readdir (p: string): Promise<DirEntry[]> {
    const e = this.resolver.get(p, 'scandir')
    if (!e.isDir) throw fsError('ENOTDIR', 'scandir', p)
    return mergedListing(this.resolver, e)
  }

  async getxattr (p: string, name: string): Promise<Buffer> {
    const e = this.resolver.get(p, 'getxattr')
    const v = isPrivateXattr(name) || !this.xattrNames.mayHave(e, name)
      ? undefined
      : this.layers[e.top.layer].getxattr(e.top.rel, name)
    if (v === undefined) throw fsError('ENODATA', 'getxattr', p)
    return v
  }

  async listxattr (p: string): Promise<string[]> {
    const e = this.resolver.get(p, 'listxattr')
    return this.xattrNames.names(e).filter(n => !isPrivateXattr(n))
  }

  async statfs (_p: string): Promise<StatFs> {
    const s = (this.upper ?? this.layers[0]).statfs()
    return {
      bsize: s.bsize, frsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail,
      files: s.files, ffree: s.ffree, namemax: 255
    }
  }

  // ---- open files ----

  async open (p: string, flags: number): Promise<number> {
    let e = this.resolver.get(p, 'open')
    const write = (flags & O_ACCMODE) !== O_RDONLY || (flags & O_TRUNC) !== 0
    if (e.isDir && write) throw fsError('EISDIR', 'open', p)
    const clean = flags & ~(O_CREAT | O_EXCL | O_NOCTTY)
    if (!write) {
      const fd = e.top.layer === 0 && this.upper !== undefined
        ? this.upper.open(p, clean)
        : this.layers[e.top.layer].openRead(e.top.rel)
      return this.handles.add(fd, e.ino, false, e.top.layer === 0)
    }
    const core = this.mutable('open', p)
    e = core.copyUp.file(p, 'open', (flags & O_TRUNC) !== 0 ? { size: 0 } : {})
    return this.handles.add(core.upper.open(p, clean), e.ino, true, true)
  }

  async create (p: string, flags: number, mode: number, caller: Caller): Promise<{ fh: number, attr: Attr }> {
    const core = this.mutable('open', p)
    const existing = this.resolver.lookup(p)
    if (existing !== undefined) {
      if ((flags & O_EXCL) !== 0) throw fsError('EEXIST', 'open', p)
      const fh = await this.open(p, flags)
      return { fh, attr: await this.fgetattr(fh) }
    }
    const fd = createFile(core, p, flags, mode, caller)
    try {
      const e = this.resolver.get(p, 'open')
      return { fh: this.handles.add(fd, e.ino, true, true), attr: this.attrOf(e) }
    } catch (err) {
      // No handle for the caller (EMFILE in a lookup, say): the descriptor is ours to close.
      fs.closeSync(fd)
      throw err
    }
  }

  async tmpfile (dir: string, flags: number, mode: number, caller: Caller): Promise<{ fh: number, attr: Attr }> {
    const fd = tmpFile(this.mutable('open', dir), dir, flags, mode, caller)
    try {
      const st = fs.fstatSync(fd, { bigint: true })
      const ino = unionIno(0, Number(st.ino))
      return { fh: this.handles.add(fd, ino, true, true), attr: toAttr(st, ino) }
    } catch (err) {
      fs.closeSync(fd)
      throw err
    }
  }

  async linkHandle (fh: number, p: string): Promise<Attr> {
    const core = this.mutable('link', p)
    const h = this.handles.get(fh, 'link')
    // A lower file's handle has no file of the writable branch to name.
    if (!h.onUpper) throw fsError('EXDEV', 'link', p)
    linkOpen(core, h.fd, p)
    return this.getattr(p)
  }

  async read (fh: number, buf: Buffer, length: number, position: number): Promise<number> {
    return this.files.read(fh, buf, length, position)
  }

  async write (fh: number, buf: Buffer, length: number, position: number): Promise<number> {
    return this.files.write(fh, buf, length, position)
  }

  async flush (fh: number): Promise<void> {
    this.files.flush(fh)
  }

  async fsync (fh: number, datasync: boolean): Promise<void> {
    this.files.fsync(fh, datasync)
  }

  async release (fh: number): Promise<void> {
    this.handles.release(fh)
  }

  backingFd (fh: number): number | undefined {
    return this.files.backingFd(fh)
  }

  readFd (fh: number): number {
    return this.files.readFd(fh)
  }

  async ftruncate (fh: number, size: number): Promise<void> {
    this.files.ftruncate(fh, size)
  }

  async fchmod (fh: number, mode: number): Promise<void> {
    this.files.fchmod(fh, mode)
  }

  async fchown (fh: number, uid: number, gid: number): Promise<void> {
    this.files.fchown(fh, uid, gid)
  }

  async futimens (fh: number, atime: TimeSpec, mtime: TimeSpec): Promise<void> {
    this.files.futimens(fh, atime, mtime)
  }

  async fgetxattr (fh: number, name: string): Promise<Buffer> {
    return this.files.fgetxattr(fh, name)
  }

  async flistxattr (fh: number): Promise<string[]> {
    return this.files.flistxattr(fh)
  }

  async fsetxattr (fh: number, name: string, value: Buffer, flags: number): Promise<void> {
    this.files.fsetxattr(fh, name, value, flags)
  }

  async fremovexattr (fh: number, name: string): Promise<void> {
    this.files.fremovexattr(fh, name)
  }

  async fallocate (fh: number, mode: number, offset: number, length: number): Promise<void> {
    this.files.fallocate(fh, mode, offset, length)
  }

  async lseek (fh: number, offset: number, whence: number): Promise<number> {
    return this.files.lseek(fh, offset, whence)
  }

  // ---- new names, removals, renames ----

  async mkdir (p: string, mode: number, caller: Caller): Promise<Attr> {
    makeEntry(this.mutable('mkdir', p), p, caller, 'mkdir', true, (b, rel, made) => { b.mkdir(rel, made) }, mode)
    return this.getattr(p)
  }

  async mknod (p: string, mode: number, rdev: number, caller: Caller): Promise<Attr> {
    makeEntry(this.mutable('mknod', p), p, caller, 'mknod', false, (b, rel, made) => { b.mknod(rel, made, rdev) }, mode)
    return this.getattr(p)
  }

  async symlink (target: string, p: string, caller: Caller): Promise<Attr> {
    makeEntry(this.mutable('symlink', p), p, caller, 'symlink', false, (b, rel) => b.symlink(target, rel))
    return this.getattr(p)
  }

  async link (existing: string, p: string): Promise<Attr> {
    link(this.mutable('link', p), existing, p)
    return this.getattr(p)
  }

  async unlink (p: string): Promise<void> {
    unlink(this.mutable('unlink', p), p)
  }

  async rmdir (p: string): Promise<void> {
    rmdir(this.mutable('rmdir', p), p)
  }

  async rename (from: string, to: string, flags: number): Promise<void> {
    const core = this.mutable('rename', from)
    const started = performance.now()
    const bytesBefore = this.counters.bytesCopied
    const fromLayer = this.resolver.lookup(from)?.top.layer ?? 0
    rename(core, from, to, flags)
    this.counters.renames++
    this.emit({ kind: 'rename', path: from, to, fromLayer, toLayer: 0, bytes: this.counters.bytesCopied - bytesBefore, ms: performance.now() - started })
  }

  // ---- attribute changes: copy-up, then change the upper copy ----

  async chmod (p: string, mode: number): Promise<void> {
    this.upperCopy('chmod', p).chmod(p, mode)
  }

  async chown (p: string, uid: number, gid: number): Promise<void> {
    this.upperCopy('chown', p).lchown(p, uid, gid)
  }

  async truncate (p: string, size: number): Promise<void> {
    const e = this.resolver.get(p, 'truncate')
    if (e.isDir) throw fsError('EISDIR', 'truncate', p)
    this.upperCopy('truncate', p, size).truncate(p, size)
  }

  async utimens (p: string, atime: TimeSpec, mtime: TimeSpec): Promise<void> {
    this.upperCopy('utimensat', p).utimens(p, timeArg(atime), timeArg(mtime))
  }

  async setxattr (p: string, name: string, value: Buffer, flags: number): Promise<void> {
    if (isPrivateXattr(name)) throw fsError('EPERM', 'setxattr', p)
    const upper = this.upperCopy('setxattr', p)
    this.xattrNames.changed()
    upper.setxattr(p, name, value, flags)
  }

  async removexattr (p: string, name: string): Promise<void> {
    if (isPrivateXattr(name)) throw fsError('ENODATA', 'removexattr', p)
    const e = this.resolver.get(p, 'removexattr')
    if (this.layers[e.top.layer].getxattr(e.top.rel, name) === undefined) throw fsError('ENODATA', 'removexattr', p)
    const upper = this.upperCopy('removexattr', p)
    this.xattrNames.changed()
    upper.removexattr(p, name)
  }

  async destroy (): Promise<void> {
    this.handles.closeAll()
  }

  // ---- helpers ----

  private mutable (syscall: string, p: string): Core {
    if (this.core === undefined) throw fsError('EROFS', syscall, p)
    return this.core
  }

  /** Copies `p` up (a truncate copies only what it keeps) and returns the upper branch. */
  private upperCopy (syscall: string, p: string, size?: number): WritableBranch {
    const core = this.mutable(syscall, p)
    core.copyUp.file(p, syscall, size === undefined ? {} : { size })
    return core.upper
  }

  private copiedUp (entry: Entry, event: CopyUpEvent): void {
    this.counters.copyUps++
    this.counters.bytesCopied += event.bytes
    this.xattrNames.changed()
    if (!entry.isDir) this.handles.repoint(entry.ino, () => this.upper!.open(entry.path, O_RDONLY))
    for (const w of this.watchers) w({ kind: 'copy-up', path: entry.path })
    this.emit({ kind: 'copy-up', path: event.path, fromLayer: event.fromLayer, toLayer: 0, bytes: event.bytes, ms: event.ms })
  }

  /** An observer's failure is its own: it never fails the operation. */
  private emit (e: UnionEvent): void {
    for (const o of this.observers) {
      try { o(e) } catch {}
    }
  }

  private attrOf (e: Entry): Attr {
    let st = e.stat
    if (e.top.layer === 0 && this.upper !== undefined) {
      st = this.upper.lstat(e.top.rel) ?? fsErrorThrow('ENOENT', 'lstat', e.path)
    }
    return toAttr(st, e.ino, e.isDir && e.dirs.length > 1)
  }
}

function fsErrorThrow (code: string, syscall: string, p: string): never {
  throw fsError(code, syscall, p)
}

/** A twin of a union for a serving thread (UnionFs.threadSpec). */
export async function openUnion (arg: { config: UnionConfig, statsBuffer?: SharedArrayBuffer }): Promise<UnionFs> {
  return await UnionFs.open(arg.config, arg.statsBuffer === undefined ? {} : { statsBuffer: arg.statsBuffer })
}
