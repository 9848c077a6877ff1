/**
 * Ops on one node: LOOKUP, FORGET, BATCH_FORGET, GETATTR, SETATTR,
 * READLINK, STATFS, ACCESS.
 *
 * A LOOKUP that finds nothing is answered, when the negative timeout is not
 * zero, as a success with node id 0: the kernel caches the miss for that
 * long instead of asking again (the common case of $PATH and import searches).
 *
 * SETATTR is decomposed in the order that keeps an explicit request intact:
 * chown first (it may clear suid/sgid), then chmod, then the size, then the
 * suid/sgid the kernel leaves to us (killpriv.ts), then the times (a
 * truncate moves mtime). The reply carries the attributes after.
 *
 * A SETATTR that sets nothing is chown(f, -1, -1) (without the writeback
 * cache the kernel keeps the change time it would set to itself) or a kill
 * (killpriv.ts). It is answered as a chown with -1 for both ids: that moves
 * the file's ctime, as chown(2) does on the branch's own filesystem (and
 * copies up a lower file, as overlayfs does).
 */
import { fsError, isCode } from '../errors'
import type { Attr, TimeSpec } from '../union/types'
import { timeout, type Encoder } from './codec'
import { killSuidSgid, setsNothing } from './killpriv'
import type { FuseNode } from './nodes'
import {
  encodeEntry, entryFor, entrySent, noArgs, op, type EntryResult, type OpContext
} from './op-context'
import { Fattr, FUSE_GETATTR_FH, StatfsOut } from './protocol'

const NO_TIME = timeout(0)

/**
 * Attributes of a node: through `fh` when given, else its path, else (an
 * unlinked but open file) any handle open on it.
 */
export async function attrOfNode (ctx: OpContext, node: FuseNode, fh?: number): Promise<Attr> {
  let attr: Attr
  const path = node.paths[0]
  if (fh !== undefined) attr = await ctx.fs.fgetattr(fh)
  else if (path !== undefined) attr = await ctx.fs.getattr(path)
  else attr = await ctx.fs.fgetattr(ctx.nodes.openFh(node, 'getattr'))
  ctx.nodes.noteAttr(node, attr)
  return attr
}

function encodeAttr (e: Encoder, attr: Attr, ctx: OpContext): void {
  e.attrOut(attr, ctx.attrValid)
}

export const lookupOp = op<string, EntryResult | undefined>({
  decode: (d) => d.cstr(),
  run: async (ctx, h, name) => {
    ctx.listingAttrs.lookedUp(h.nodeid, name)
    const path = ctx.nodes.childPath(h.nodeid, name)
    let attr: Attr | undefined
    if (ctx.fs.lookupAttr !== undefined) {
      attr = await ctx.fs.lookupAttr(path)
      if (attr === undefined && ctx.negativeValid === undefined) throw fsError('ENOENT', 'lookup', path)
    } else {
      try {
        attr = await ctx.fs.getattr(path)
      } catch (err) {
        if (ctx.negativeValid !== undefined && isCode(err, 'ENOENT')) return undefined
        throw err
      }
    }
    return attr === undefined ? undefined : entryFor(ctx, path, attr)
  },
  encode: (e, r, ctx) => {
    if (r !== undefined) encodeEntry(e, r, ctx)
    else e.entryOut(0, 0, undefined, ctx.negativeValid ?? NO_TIME, NO_TIME)
  },
  sent: (ctx, r, ok) => { if (r !== undefined) entrySent(ctx, r, ok) }
})

export const forgetOp = op<number, void>({
  noReply: true,
  decode: (d) => d.u64(),
  run: (ctx, h, nlookup) => { ctx.nodes.forget(h.nodeid, nlookup) }
})

export const batchForgetOp = op<number[], void>({
  noReply: true,
  decode: (d) => {
    const count = d.u32()
    d.skip(4)
    const pairs: number[] = new Array(count * 2)
    for (let i = 0; i < count; i++) {
      pairs[2 * i] = d.u64()
      pairs[2 * i + 1] = d.u64()
    }
    return pairs
  },
  run: (ctx, _h, pairs) => {
    for (let i = 0; i < pairs.length; i += 2) ctx.nodes.forget(pairs[i], pairs[i + 1])
  }
})

export const getattrOp = op<number | undefined, Attr>({
  decode: (d) => {
    const flags = d.u32()
    d.skip(4)
    const fh = d.u64()
    return (flags & FUSE_GETATTR_FH) !== 0 ? fh : undefined
  },
  run: async (ctx, h, fh) => await attrOfNode(ctx, ctx.nodes.node(h.nodeid), fh),
  encode: encodeAttr
})

interface SetattrIn {
  valid: number
  fh: number
  size: number
  atime: number
  mtime: number
  atimensec: number
  mtimensec: number
  mode: number
  uid: number
  gid: number
}

export const setattrOp = op<SetattrIn, Attr>({
  decode: (d) => {
    const valid = d.u32()
    d.skip(4)
    const fh = d.u64()
    const size = d.u64()
    d.skip(8) // lock_owner
    const atime = d.i64()
    const mtime = d.i64()
    d.skip(8) // ctime
    const atimensec = d.u32()
    const mtimensec = d.u32()
    d.skip(4) // ctimensec
    const mode = d.u32()
    d.skip(4)
    const uid = d.u32()
    const gid = d.u32()
    return { valid, fh, size, atime, mtime, atimensec, mtimensec, mode, uid, gid }
  },
  run: async (ctx, h, a) => {
    const node = ctx.nodes.node(h.nodeid)
    const fs = ctx.fs
    const v = a.valid
    const fh = (v & Fattr.FH) !== 0 ? a.fh : undefined
    // A file unlinked while open has no path: it is changed through a handle
    // (with the writeback cache, even an ftruncate of it sets its times).
    const path = node.paths[0]
    const handle = (syscall: string): number => fh ?? ctx.nodes.openFh(node, syscall)
    if ((v & (Fattr.UID | Fattr.GID)) !== 0 || setsNothing(v)) {
      const uid = (v & Fattr.UID) !== 0 ? a.uid : -1
      const gid = (v & Fattr.GID) !== 0 ? a.gid : -1
      if (path !== undefined) await fs.chown(path, uid, gid)
      else await fs.fchown(handle('fchown'), uid, gid)
    }
    if ((v & Fattr.MODE) !== 0) {
      if (path !== undefined) await fs.chmod(path, a.mode & 0o7777)
      else await fs.fchmod(handle('fchmod'), a.mode & 0o7777)
    }
    if ((v & Fattr.SIZE) !== 0) {
      if (fh !== undefined || path === undefined) await fs.ftruncate(handle('ftruncate'), a.size)
      else await fs.truncate(path, a.size)
    }
    if ((v & Fattr.KILL_SUIDGID) !== 0 || (ctx.conn.killPriv && setsNothing(v))) await killSuidSgid(ctx, h, path, fh)
    if ((v & (Fattr.ATIME | Fattr.MTIME | Fattr.ATIME_NOW | Fattr.MTIME_NOW)) !== 0) {
      const at: TimeSpec = (v & Fattr.ATIME_NOW) !== 0
        ? 'now'
        : (v & Fattr.ATIME) !== 0 ? [a.atime, a.atimensec] : undefined
      const mt: TimeSpec = (v & Fattr.MTIME_NOW) !== 0
        ? 'now'
        : (v & Fattr.MTIME) !== 0 ? [a.mtime, a.mtimensec] : undefined
      if (path !== undefined) await fs.utimens(path, at, mt)
      else await fs.futimens(handle('futimens'), at, mt)
    }
    return await attrOfNode(ctx, node, fh)
  },
  encode: encodeAttr
})

export const readlinkOp = op<undefined, string>({
  decode: noArgs,
  run: async (ctx, h) => await ctx.fs.readlink(ctx.nodes.path(h.nodeid)),
  encode: (e, target) => { e.str(target, false) }
})

export const statfsOp = op({
  decode: noArgs,
  run: async (ctx: OpContext, h) => await ctx.fs.statfs(ctx.nodes.pathOf(h.nodeid) ?? '/'),
  encode: (e, s) => {
    const start = e.pos
    e.zero(StatfsOut.SIZE)
    e.pos = start
    e.u64(s.blocks)
    e.u64(s.bfree)
    e.u64(s.bavail)
    e.u64(s.files)
    e.u64(s.ffree)
    e.u32(s.bsize)
    e.u32(s.namemax)
    e.u32(s.frsize)
    e.pos = start + StatfsOut.SIZE
  }
})

/**
 * With default_permissions (always on) the kernel checks access(2) itself
 * and does not send ACCESS; should it ever, the node exists (the kernel
 * holds it), so the answer is yes.
 */
export const accessOp = op({ decode: noArgs, run: () => undefined })
