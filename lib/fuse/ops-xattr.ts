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
 */
import { fsError } from '../errors'
import type { UnionFsApi } from '../union/types'
import type { Encoder } from './codec'
import { op, type OpContext } from './op-context'

type Target = { path: string, fh?: undefined } | { path?: undefined, fh: number }

/** The node's path, else an open handle of it; ENOENT when neither. */
function target (ctx: OpContext, nodeid: number, syscall: string): Target {
  const node = ctx.nodes.node(nodeid)
  const path = node.paths[0]
  if (path !== undefined) return { path }
  const fh = ctx.nodes.anyOpenFh(node)
  if (fh === undefined) throw fsError('ENOENT', syscall)
  return { fh }
}

function xattrCall<T> (ctx: OpContext, nodeid: number, syscall: string,
  byPath: (fs: UnionFsApi, path: string) => Promise<T>, byFh: (fs: UnionFsApi, fh: number) => Promise<T>): Promise<T> {
  const t = target(ctx, nodeid, syscall)
  return t.path !== undefined ? byPath(ctx.fs, t.path) : byFh(ctx.fs, t.fh)
}

interface SetxattrIn { flags: number, name: string, value: Buffer }

export const setxattrOp = op<SetxattrIn, void>({
  keepsBuffer: true,
  decode: (d, ctx) => {
    const size = d.u32()
    const flags = d.u32()
    if (ctx.conn.setxattrExt) d.skip(8) // setxattr_flags (ACL sgid handling: no POSIX ACLs here), padding
    const name = d.cstr()
    return { flags, name, value: d.bytes(size) }
  },
  run: async (ctx, h, a) => {
    await xattrCall(ctx, h.nodeid, 'setxattr',
      async (fs, p) => await fs.setxattr(p, a.name, a.value, a.flags),
      async (fs, fh) => await fs.fsetxattr(fh, a.name, a.value, a.flags))
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
    return { size, name: d.cstr() }
  },
  run: async (ctx, h, a) => {
    const value = await xattrCall(ctx, h.nodeid, 'getxattr',
      async (fs, p) => await fs.getxattr(p, a.name),
      async (fs, fh) => await fs.fgetxattr(fh, a.name))
    return sized(value, a.size, 'getxattr')
  },
  encode: encodeSized
})

export const listxattrOp = op<number, SizedValue>({
  decode: (d) => d.u32(),
  run: async (ctx, h, size) => {
    const names = await xattrCall(ctx, h.nodeid, 'listxattr',
      async (fs, p) => await fs.listxattr(p),
      async (fs, fh) => await fs.flistxattr(fh))
    const value = Buffer.from(names.map((n) => n + '\0').join(''), 'utf8')
    return sized(value, size, 'listxattr')
  },
  encode: encodeSized
})

export const removexattrOp = op<string, void>({
  decode: (d) => d.cstr(),
  run: async (ctx, h, name) => {
    await xattrCall(ctx, h.nodeid, 'removexattr',
      async (fs, p) => await fs.removexattr(p, name),
      async (fs, fh) => await fs.fremovexattr(fh, name))
  }
})
