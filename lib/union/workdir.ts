/**
 * The work dir: where copy-ups, new entries over whiteouts and removed
 * directories are built or torn down out of sight, to be moved into (or out
 * of) the writable branch with one rename. It lives on the writable
 * branch's filesystem (rename(2) cannot cross filesystems): by default
 * `<upper>/.wh..wh.unionfs-ts/`, hidden from the view like every `.wh.`
 * name; with the overlayfs syntax `<workdir>/work`, as overlayfs does.
 *
 * Invariant: between operations the work dir is empty. Whatever a crash
 * left in it is swept when the next mount opens it. It has no default ACL
 * (one inherited from the writable branch's root is removed): what is
 * built here gets its ACLs from copy-up or from its parent in the view
 * (acl.ts), never from the work dir.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { writableBranch, type WritableBranch } from '../branch/branch'
import { fsError } from '../errors'
import * as native from '../native'
import { ACL_DEFAULT } from './acl'

export class Workdir {
  private counter = 0
  /** The work dir as a branch: paths below it are relative to it. */
  readonly dir: WritableBranch

  private constructor (readonly root: string) {
    this.dir = writableBranch(root, -1)
  }

  /** Creates the work dir if needed and sweeps a crash's leftovers. */
  static open (root: string): Workdir {
    fs.mkdirSync(root, { recursive: true, mode: 0o700 })
    // mkdir accepts an existing symlink to a directory; sweeping through one
    // would delete whatever it points at. The work dir must be a directory.
    if (!fs.lstatSync(root).isDirectory()) {
      throw fsError('ENOTDIR', 'lstat', root, 'the work dir is not a directory (a symlink?)')
    }
    for (const name of fs.readdirSync(root)) {
      fs.rmSync(path.join(root, name), { recursive: true, force: true })
    }
    if (native.lfindxattr(root, ACL_DEFAULT) !== undefined) native.lremovexattr(root, ACL_DEFAULT)
    return new Workdir(root)
  }

  /** A fresh name in the work dir ('/tmp.PID.N'), not yet created. */
  tempName (): string {
    return `/tmp.${process.pid}.${++this.counter}`
  }

  /** Moves a built entry into the writable branch. */
  moveIn (tmp: string, upper: WritableBranch, rel: string, flags = 0): void {
    rename(this.dir.real(tmp), upper.real(rel), flags)
  }

  /** Moves an entry out of the writable branch, to be torn down here. */
  moveOut (upper: WritableBranch, rel: string, tmp: string, flags = 0): void {
    rename(upper.real(rel), this.dir.real(tmp), flags)
  }

  /** Removes whatever is at `tmp` (a failed build, a removed tree). */
  discard (tmp: string): void {
    this.dir.removeTree(tmp)
  }
}

function rename (from: string | Buffer, to: string | Buffer, flags: number): void {
  if (flags === 0) fs.renameSync(from, to)
  else native.renameat2(from, to, flags)
}
