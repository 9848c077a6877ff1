/**
 * Ops that change names: MKNOD, MKDIR, SYMLINK, LINK (each answers with a
 * new entry and counts its lookup), UNLINK, RMDIR, RENAME, RENAME2.
 *
 * The node table follows the union only after the union call succeeded:
 * a failed rename or unlink leaves every mapping as it was.
 */
import { fsError } from '../errors'
import { RENAME_EXCHANGE, type Attr } from '../union/types'
import type { Decoder } from './codec'
import type { FuseNode } from './nodes'
import {
  callerOf, creatorOf, encodeEntry, entryFor, entrySent, op, type EntryResult, type OpContext
} from './op-context'

const entryReply = { encode: encodeEntry, sent: entrySent }

async function linkUnnamed (ctx: OpContext, node: FuseNode, path: string): Promise<Attr> {
  if (ctx.fs.linkHandle === undefined) throw fsError('ENOENT', 'link', path)
  return await ctx.fs.linkHandle(ctx.nodes.openFh(node, 'link'), path)
}

export const mknodOp = op<{ mode: number, rdev: number, umask: number, name: string }, EntryResult>({
  decode: (d) => {
    const mode = d.u32()
    const rdev = d.u32()
    const umask = d.u32()
    d.skip(4) // padding
    return { mode, rdev, umask, name: d.cstr() }
  },
  run: async (ctx, h, a) => {
    const path = ctx.nodes.childPath(h.nodeid, a.name)
    return entryFor(ctx, path, await ctx.fs.mknod(path, a.mode, a.rdev, creatorOf(ctx, h, a.umask)))
  },
  ...entryReply
})

export const mkdirOp = op<{ mode: number, umask: number, name: string }, EntryResult>({
  decode: (d) => {
    const mode = d.u32()
    const umask = d.u32()
    return { mode, umask, name: d.cstr() }
  },
  run: async (ctx, h, a) => {
    const path = ctx.nodes.childPath(h.nodeid, a.name)
    return entryFor(ctx, path, await ctx.fs.mkdir(path, a.mode & 0o7777, creatorOf(ctx, h, a.umask)))
  },
  ...entryReply
})

export const symlinkOp = op<{ name: string, target: string }, EntryResult>({
  decode: (d) => {
    const name = d.cstr()
    return { name, target: d.cstr() }
  },
  run: async (ctx, h, a) => {
    const path = ctx.nodes.childPath(h.nodeid, a.name)
    return entryFor(ctx, path, await ctx.fs.symlink(a.target, path, callerOf(h)))
  },
  ...entryReply
})

export const linkOp = op<{ oldNodeId: number, name: string }, EntryResult>({
  decode: (d) => {
    const oldNodeId = d.u64()
    return { oldNodeId, name: d.cstr() }
  },
  run: async (ctx, h, a) => {
    const old = ctx.nodes.node(a.oldNodeId)
    const existing = old.paths[0]
    const path = ctx.nodes.childPath(h.nodeid, a.name)
    // No name: an O_TMPFILE file (the kernel links no other unnamed file), reached by its handle.
    const attr = existing !== undefined
      ? await ctx.fs.link(existing, path)
      : await linkUnnamed(ctx, old, path)
    // One kernel inode for both names, whatever their st_ino (nodes.ts).
    const linked = ctx.nodes.get(a.oldNodeId)
    return entryFor(ctx, path, attr, linked?.ino === attr.ino ? linked : undefined)
  },
  ...entryReply
})

export const unlinkOp = op<string, void>({
  decode: (d) => d.cstr(),
  run: async (ctx, h, name) => {
    const path = ctx.nodes.childPath(h.nodeid, name)
    await ctx.fs.unlink(path)
    ctx.nodes.unlinkPath(path, false)
  }
})

export const rmdirOp = op<string, void>({
  decode: (d) => d.cstr(),
  run: async (ctx, h, name) => {
    const path = ctx.nodes.childPath(h.nodeid, name)
    await ctx.fs.rmdir(path)
    ctx.nodes.unlinkPath(path, true)
  }
})

interface RenameIn { newdir: number, flags: number, oldname: string, newname: string }

function decodeRenameNames (d: Decoder, newdir: number, flags: number): RenameIn {
  const oldname = d.cstr()
  return { newdir, flags, oldname, newname: d.cstr() }
}

async function rename (ctx: OpContext, olddir: number, a: RenameIn): Promise<void> {
  const from = ctx.nodes.childPath(olddir, a.oldname)
  const to = ctx.nodes.childPath(a.newdir, a.newname)
  await ctx.fs.rename(from, to, a.flags)
  ctx.nodes.rename(from, to, (a.flags & RENAME_EXCHANGE) !== 0)
}

export const renameOp = op<RenameIn, void>({
  decode: (d) => decodeRenameNames(d, d.u64(), 0),
  run: async (ctx, h, a) => { await rename(ctx, h.nodeid, a) }
})

export const rename2Op = op<RenameIn, void>({
  decode: (d) => {
    const newdir = d.u64()
    const flags = d.u32()
    d.skip(4)
    return decodeRenameNames(d, newdir, flags)
  },
  run: async (ctx, h, a) => { await rename(ctx, h.nodeid, a) }
})
