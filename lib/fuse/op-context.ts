/**
 * The shape of an op handler and the state handlers share.
 *
 * An op is four small functions, run by the session's one generic wrapper
 * (session.ts `dispatch`): `decode` reads the request body synchronously,
 * `run` does the work against the union (may be async, may throw an
 * errno-carrying error), `encode` writes the success reply body
 * synchronously, and `sent` learns whether that reply reached the kernel
 * (entry replies count a lookup that must be undone if it did not); a READ
 * whose data waits in the splicer's pipe says so through `spliced`, and
 * the wrapper sends it from there. No op writes to the device itself:
 * exactly one reply per request is the wrapper's job.
 */
import type { Attr, Caller, UnionFsApi } from '../union/types'
import type { BufferPool } from './buffers'
import type { RequestHeader, Decoder, Encoder, Timeout } from './codec'
import type { DirHandles } from './dirs'
import type { ListingAttrs } from './listing-attrs'
import type { FuseLog } from './log'
import type { FuseNode, NodeTable } from './nodes'
import type { Passthrough } from './passthrough'
import type { Splicer } from './splice'

/** What INIT settled with the kernel. */
export interface Connection {
  /** Protocol minor version in use; 0 until INIT. */
  minor: number
  /** INIT flags both sides agreed on (low 32 bits). */
  flags: number
  writeback: boolean
  setxattrExt: boolean
  /** HANDLE_KILLPRIV_V2 agreed: clearing suid/sgid on write, truncate and chown is ours (killpriv.ts). */
  killPriv: boolean
  /**
   * POSIX_ACL and DONT_MASK agreed: the kernel enforces ACLs, and leaves
   * the umask of a new entry to us (it sends it beside the mode).
   */
  acl: boolean
  /** FUSE_PASSTHROUGH agreed: open replies may name backing files. */
  passthrough: boolean
  /** OPENDIR is answered with ENOSYS: the kernel offers NO_OPENDIR_SUPPORT and may cache listings (ops-dir.ts). */
  noOpendir: boolean
}

export interface OpContext {
  readonly fs: UnionFsApi
  readonly nodes: NodeTable
  readonly dirs: DirHandles
  readonly pool: BufferPool
  readonly log: FuseLog
  readonly entryValid: Timeout
  readonly attrValid: Timeout
  /** Undefined: answer a failed LOOKUP with ENOENT instead of a cached negative entry. */
  readonly negativeValid: Timeout | undefined
  /** The writeback cache is asked for at INIT. */
  readonly wantWriteback: boolean
  /** HANDLE_KILLPRIV_V2 is asked for at INIT. */
  readonly wantKillPriv: boolean
  /** POSIX_ACL and DONT_MASK are asked for at INIT. */
  readonly wantAcl: boolean
  readonly maxWrite: number
  readonly maxPages: number
  /** File handles of open files -> their node (fstat of an unlinked file). */
  readonly fhNodes: Map<number, FuseNode>
  /** Which opens the kernel serves itself from a branch file. */
  readonly passthrough: Passthrough
  /** Large READ replies spliced from the file; undefined without the native addon. */
  readonly splicer: Splicer | undefined
  /** Attributes in READDIRPLUS replies, or names alone. */
  readonly listingAttrs: ListingAttrs
  /**
   * Nodes whose attributes the kernel must drop, noticed while running a
   * request (a copy-up, a mode change the reply does not carry): the
   * session sends the notices before that request's reply.
   */
  readonly staleNodes: Set<number>
  conn: Connection
}

export interface OpSpec<A, R> {
  readonly noReply?: boolean
  /** `decode`'s result holds views into the request buffer: keep it until `run` is done. */
  readonly keepsBuffer?: boolean
  decode: (d: Decoder, ctx: OpContext) => A
  run: (ctx: OpContext, h: RequestHeader, a: A) => Promise<R> | R
  /** Writes the reply body; absent: an empty success reply. */
  encode?: (e: Encoder, r: R, ctx: OpContext) => void
  /** Does the reply's body wait in the session's pipe (a spliced READ, splice.ts) instead of being encoded? */
  spliced?: (r: R) => boolean
  /** Called after the reply was written (`ok`) or refused by the kernel (interrupted). */
  sent?: (ctx: OpContext, r: R, ok: boolean) => void
}

/** Typing helper: lets each op's A and R be inferred while the table stays uniform. */
export function op<A, R> (spec: OpSpec<A, R>): OpSpec<unknown, unknown> {
  return spec as unknown as OpSpec<unknown, unknown>
}

export const noArgs = (): undefined => undefined

/** May the kernel keep what it caches (names, listings, file pages)? Not with cache=off's zero timeouts. */
export function kernelKeeps (ctx: OpContext): boolean {
  return ctx.entryValid.sec > 0 || ctx.entryValid.nsec > 0
}

/** The common result of ops that answer with a fuse_entry_out. */
export interface EntryResult {
  node: FuseNode
  attr: Attr
}

/** Map `path` to its node and count the lookup the reply will carry. */
export function entryFor (ctx: OpContext, path: string, attr: Attr, linkedTo?: FuseNode): EntryResult {
  return { node: ctx.nodes.link(path, attr, linkedTo), attr }
}

export function encodeEntry (e: Encoder, r: EntryResult, ctx: OpContext): void {
  e.entryOut(r.node.id, r.node.generation, r.attr, ctx.entryValid, ctx.attrValid)
}

export function entrySent (ctx: OpContext, r: EntryResult, ok: boolean): void {
  if (!ok) ctx.nodes.forget(r.node.id, 1)
}

/** Who is asking, for the owner of what gets created. */
export function callerOf (h: RequestHeader): Caller {
  return { uid: h.uid, gid: h.gid, pid: h.pid }
}

/**
 * Who makes a new entry, with the umask the request carries when the
 * kernel left applying it to us (DONT_MASK, with ACLs); otherwise the
 * kernel applied it to the mode already.
 */
export function creatorOf (ctx: OpContext, h: RequestHeader, umask: number): Caller {
  return ctx.conn.acl ? { uid: h.uid, gid: h.gid, pid: h.pid, umask } : callerOf(h)
}
