// Ring 1: what a new entry inherits (lib/union/acl.ts), in-process: the
// default-ACL arithmetic against hand-worked cases, and the union core
// making entries with a caller's umask, in place and over a whiteout.
// test/fuse-acl.test.ts compares the same through a mount with a plain dir.
import t from 'tap'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { ACL_ACCESS, ACL_DEFAULT, createMasq, newEntryMode } from '../lib/union/acl'
import { UnionFs } from '../lib/union/union-fs'
import * as native from '../lib/native'

const Tag = { USER_OBJ: 0x01, USER: 0x02, GROUP_OBJ: 0x04, MASK: 0x10, OTHER: 0x20 }

/** An ACL in its xattr form from [tag, perm, id] triples. */
function aclOf (entries: Array<[number, number, number?]>): Buffer {
  const b = Buffer.alloc(4 + 8 * entries.length)
  b.writeUInt32LE(2, 0)
  entries.forEach(([tag, perm, id], i) => {
    b.writeUInt16LE(tag, 4 + 8 * i)
    b.writeUInt16LE(perm, 6 + 8 * i)
    b.writeUInt32LE(id ?? 0xffffffff, 8 + 8 * i)
  })
  return b
}

function permsOf (acl: Buffer): number[] {
  const out: number[] = []
  for (let at = 4; at < acl.length; at += 8) out.push(acl.readUInt16LE(at + 2))
  return out
}

t.test('createMasq: the mode masks the default ACL, and the ACL the mode', async (t) => {
  const dflt = aclOf([[Tag.USER_OBJ, 7], [Tag.USER, 7, 1000], [Tag.GROUP_OBJ, 5], [Tag.MASK, 7], [Tag.OTHER, 0]])
  const file = createMasq(dflt, 0o100666)
  t.equal(file.mode, 0o100660, 'rw-rw---- from 0666: owner rw, the mask rw (group class), other none')
  t.same(permsOf(file.access as Buffer), [6, 7, 5, 6, 0], 'owner and mask lose x, the named user keeps rwx (the mask limits it)')
  t.same(permsOf(dflt), [7, 7, 5, 7, 0], 'the default ACL itself is left as it was')

  const minimal = aclOf([[Tag.USER_OBJ, 7], [Tag.GROUP_OBJ, 5], [Tag.OTHER, 1]])
  const plain = createMasq(minimal, 0o40777)
  t.equal(plain.mode, 0o40751, 'no mask: the owning group is the group class')
  t.equal(plain.access, undefined, 'owner, group and other alone: no access ACL, the mode says it all')
  t.equal(createMasq(minimal, 0o41700).mode, 0o41700, 'set-group-ID and the type stay')

  t.same(createMasq(Buffer.from([2, 0, 0]), 0o600), { mode: 0o600, access: undefined }, 'a malformed value leaves the mode')
})

t.test('newEntryMode: the umask applies without a default ACL only', async (t) => {
  t.equal(newEntryMode(0o666, 0o022, undefined), 0o644)
  t.equal(newEntryMode(0o666, 0o077, aclOf([[Tag.USER_OBJ, 7], [Tag.GROUP_OBJ, 7], [Tag.OTHER, 7]])), 0o666)
})

t.test('the core: a caller\'s umask, and a default ACL over a whiteout', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'uts-acl-'))
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }))
  const up = path.join(root, 'up')
  const lo = path.join(root, 'lo')
  fs.mkdirSync(up)
  fs.mkdirSync(path.join(lo, 'd'), { recursive: true })
  fs.writeFileSync(path.join(lo, 'd', 'gone'), 'old')
  const dflt = aclOf([[Tag.USER_OBJ, 7], [Tag.USER, 7, 65534], [Tag.GROUP_OBJ, 5], [Tag.MASK, 7], [Tag.OTHER, 0]])
  native.lsetxattr(path.join(lo, 'd'), ACL_DEFAULT, dflt, 0)
  const u = await UnionFs.open({ lowers: [lo], upper: up, whiteout: 'aufs', cacheEntries: 100, cacheTtlMs: 0, xattrNamespace: 'trusted' })
  t.teardown(async () => { await u.destroy() })
  const caller = { uid: 0, gid: 0, pid: process.pid, umask: 0o077 }

  await u.mkdir('/plain', 0o777, caller)
  t.equal(fs.statSync(path.join(up, 'plain')).mode & 0o7777, 0o700, 'no default ACL: umask 077 applied')
  await u.mkdir('/d/in', 0o777, caller)
  t.equal(fs.statSync(path.join(up, 'd', 'in')).mode & 0o7777, 0o770, 'made in place under the default ACL: the umask did not apply')
  await u.unlink('/d/gone')
  await u.mkdir('/d/gone', 0o777, caller)
  const made = path.join(up, 'd', 'gone')
  t.equal(fs.statSync(made).mode & 0o7777, 0o770, 'over the whiteout: the same mode')
  t.same(native.lgetxattr(made, ACL_DEFAULT), dflt, 'the default ACL passed on')
  t.same(permsOf(native.lgetxattr(made, ACL_ACCESS)), [7, 7, 5, 7, 0], 'and the access ACL made from it')
  t.same(native.lgetxattr(made, ACL_ACCESS), native.lgetxattr(path.join(up, 'd', 'in'), ACL_ACCESS), 'as the branch\'s filesystem made it in place')
})
