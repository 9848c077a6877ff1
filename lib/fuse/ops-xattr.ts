/**
 * Extended attributes: SETXATTR, GETXATTR, LISTXATTR, REMOVEXATTR.
 *
 * GETXATTR and LISTXATTR with size 0 ask how big the value is (answered
 * with a fuse_getxattr_out); with a size too small for the value they get
 * ERANGE, as getxattr(2) does. LISTXATTR's value is the names, each
 * NUL-terminated. SETXATTR's body grew a flags word in 7.33, sent only when
 * SETXATTR_EXT was agreed at INIT.
 *
 * A file unlinked while open has no path: its xattrs are reached through
 * one of its open handles (the requests carry none), as fgetxattr(2) and
 * friends reach them natively.
 *
 * Setting an ACL (with POSIX_ACL agreed) changes the mode too: the
 * branch's filesystem derives the group bits from the ACL's mask, and the
 * kernel, which dropped its cached ACL and attributes, asks for both
 * again. It also says when the setter may not keep the set-group-ID bit
 * (FUSE_SETXATTR_ACL_KILL_SGID), which the daemon, as root, would keep.
 */
import { fsError } from '../errors'
import type { Encoder } from './codec'
import { clearModeBits } from './killpriv'
import { op } from './op-context'
import { FUSE_SETXATTR_ACL_KILL_SGID } from './protocol'

const S_ISGID = 0o2000

interface SetxattrIn { flags: number, setxattrFlags: number, name: string, value: Buffer }

export const setxattrOp = op<SetxattrIn, void>({
  keepsBuffer: true,
  decode: (d, ctx) => {
    const size = d.u32()
    const flags = d.u32()
    let setxattrFlags = 0
    if (ctx.conn.setxattrExt) {
      setxattrFlags = d.u32()
      d.skip(4) // padding
    }
    const name = d.xattrName()
    return { flags, setxattrFlags, name, value: d.bytes(size) }
  },
  run: async (ctx, h, a) => {
    const node = ctx.nodes.node(h.nodeid)
    const p = node.paths[0]
    if (p !== undefined) await ctx.fs.setxattr(p, a.name, a.value, a.flags)
    else await ctx.fs.fsetxattr(ctx.nodes.openFh(node, 'fsetxattr'), a.name, a.value, a.flags)
    if ((a.setxattrFlags & FUSE_SETXATTR_ACL_KILL_SGID) !== 0) {
      await clearModeBits(ctx, p, p === undefined ? ctx.nodes.openFh(node, 'fchmod') : undefined, (attr) => attr.mode & S_ISGID)
    }
  }
})

/** Either the value, or (size 0 asked) only its size. */
interface SizedValue { value: Buffer | undefined, size: number }

function sized (value: Buffer, asked: number, syscall: string): SizedValue {
  if (asked === 0) return { value: undefined, size: value.length }
  if (value.length > asked) throw fsError('ERANGE', syscall)
  return { value, size: value.length }
}

function encodeSized (e: Encoder, r: SizedValue): void {
  if (r.value !== undefined) {
    e.bytes(r.value)
  } else {
    e.u32(r.size)
    e.u32(0)
  }
}

export const getxattrOp = op<{ size: number, name: string }, SizedValue>({
  decode: (d) => {
    const size = d.u32()
    d.skip(4)
    return { size, name: d.xattrName() }
  },
  run: async (ctx, h, a) => {
    const node = ctx.nodes.node(h.nodeid)
    const p = node.paths[0]
    const value = p !== undefined
      ? await ctx.fs.getxattr(p, a.name)
      : await ctx.fs.fgetxattr(ctx.nodes.openFh(node, 'fgetxattr'), a.name)
    return sized(value, a.size, 'getxattr')
  },
  encode: encodeSized
})

export const listxattrOp = op<number, SizedValue>({
  decode: (d) => d.u32(),
  run: async (ctx, h, size) => {
    const node = ctx.nodes.node(h.nodeid)
    const p = node.paths[0]
    const names = p !== undefined
      ? await ctx.fs.listxattr(p)
      : await ctx.fs.flistxattr(ctx.nodes.openFh(node, 'flistxattr'))
    const value = Buffer.from(names.map((n) => n + '\0').join(''), 'utf8')
    return sized(value, size, 'listxattr')
  },
  encode: encodeSized
})

export const removexattrOp = op<string, void>({
  decode: (d) => d.xattrName(),
  run: async (ctx, h, name) => {
    const node = ctx.nodes.node(h.nodeid)
    const p = node.paths[0]
    if (p !== undefined) await ctx.fs.removexattr(p, name)
    else await ctx.fs.fremovexattr(ctx.nodes.openFh(node, 'fremovexattr'), name)
  }
})
