/**
 * POSIX ACLs of new entries: the umask, and a parent's default ACL.
 *
 * POSIX's rule for a new file, directory or device node: when the parent
 * directory has a default ACL, the new entry's permissions come from it
 * (masked by the mode asked for) and the umask does not apply; otherwise
 * the umask does. With FUSE_POSIX_ACL the kernel leaves that to the daemon
 * (it sends the umask beside an unmasked mode: DONT_MASK, ops-init.ts).
 *
 * Made in place, an entry gets its parent's default ACL from the writable
 * branch's filesystem, as any file does there (the daemon's own umask is
 * 0): `newEntryMode` only decides whether the umask applies. Made in the
 * work dir (over a whiteout, create.ts), it has no parent there to inherit
 * from, so `inheritAcl` sets what the branch's filesystem would have set:
 * the kernel's posix_acl_create, done by hand, as overlayfs does when it
 * creates over a whiteout.
 *
 * The xattr form of an ACL (the kernel's posix_acl_xattr): a u32 version
 * (2), then 8-byte entries of u16 tag, u16 permission bits, u32 id, all
 * little-endian.
 */
import type { WritableBranch } from '../branch/branch'

export const ACL_ACCESS = 'system.posix_acl_access'
export const ACL_DEFAULT = 'system.posix_acl_default'

const HEADER = 4
const ENTRY = 8
const Tag = { USER_OBJ: 0x01, USER: 0x02, GROUP_OBJ: 0x04, GROUP: 0x08, MASK: 0x10, OTHER: 0x20 } as const

/** The mode to make an entry with, given its parent's default ACL (if any) and the caller's umask. */
export function newEntryMode (mode: number, umask: number, parentDefault: Buffer | undefined): number {
  return parentDefault === undefined ? mode & ~umask : mode
}

/**
 * posix_acl_create_masq: the default ACL `dflt` applied to a new entry of
 * `mode`. Returns the entry's mode and its access ACL, or no access ACL
 * when the result says no more than the mode does (owner, group, other).
 */
export function createMasq (dflt: Buffer, mode: number): { mode: number, access: Buffer | undefined } {
  if (dflt.length < HEADER || (dflt.length - HEADER) % ENTRY !== 0) return { mode, access: undefined }
  const acl = Buffer.from(dflt)
  let perms = mode & 0o777
  let extended = false
  let groupAt = -1
  let maskAt = -1
  for (let at = HEADER; at < acl.length; at += ENTRY) {
    const tag = acl.readUInt16LE(at)
    const perm = acl.readUInt16LE(at + 2)
    switch (tag) {
      case Tag.USER_OBJ: {
        const p = perm & (perms >> 6)
        acl.writeUInt16LE(p, at + 2)
        perms = (perms & ~0o700) | (p << 6)
        break
      }
      case Tag.OTHER: {
        const p = perm & perms & 0o7
        acl.writeUInt16LE(p, at + 2)
        perms = (perms & ~0o7) | p
        break
      }
      case Tag.GROUP_OBJ: groupAt = at; break
      case Tag.MASK: maskAt = at; extended = true; break
      case Tag.USER: case Tag.GROUP: extended = true; break
    }
  }
  // The group class: the mask when there is one, else the owning group.
  const classAt = maskAt >= 0 ? maskAt : groupAt
  if (classAt >= 0) {
    const p = acl.readUInt16LE(classAt + 2) & ((perms >> 3) & 0o7)
    acl.writeUInt16LE(p, classAt + 2)
    perms = (perms & ~0o70) | (p << 3)
  }
  return { mode: (mode & ~0o777) | perms, access: extended ? acl : undefined }
}

/**
 * Gives an entry made at `rel` of `branch` (with `mode`) what a parent with
 * default ACL `dflt` would have given it: the masked mode, an access ACL
 * where it says more than the mode, and for a directory the default ACL
 * itself.
 */
export function inheritAcl (branch: WritableBranch, rel: string, mode: number, isDir: boolean, dflt: Buffer): void {
  const made = createMasq(dflt, mode)
  branch.chmod(rel, made.mode & 0o7777)
  if (made.access !== undefined) branch.setxattr(rel, ACL_ACCESS, made.access)
  if (isDir) branch.setxattr(rel, ACL_DEFAULT, dflt)
}
