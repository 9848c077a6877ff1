/**
 * Ring 2, the reference side: the POSIX suite on plain directories. It must
 * be deterministic (two runs give the same transcript) and must record the
 * behaviour Linux is known to have, or comparing a mount against it proves
 * nothing.
 */
import t from 'tap'
import { runPosixSuite, SCENARIOS } from './helpers/posix-suite'
import { tmpdir } from './helpers/mount'

t.test('the suite on two plain directories gives one transcript', async t => {
  const a = runPosixSuite(tmpdir(t, 'plain'))
  const b = runPosixSuite(tmpdir(t, 'plain'))
  t.strictSame(a, b, 'deterministic')
  t.notOk(a.some(l => l.includes('THROW')), 'no step failed with a non-system error')
  t.notOk(a.some(l => l.includes('scenario aborted')), 'no scenario aborted')
  for (const s of SCENARIOS) t.ok(a.some(l => l.startsWith(`${s}: final listing -> ok`)), `scenario ${s} ran to the end`)

  // Spot checks of behaviour every correct filesystem shows.
  const expect = [
    'open: open O_CREAT|O_EXCL existing -> EEXIST',
    'open: open dir O_WRONLY -> EISDIR',
    'append: read f -> ok "abcdefX1234"',
    'truncate: read f -> ok "hel\\u0000\\u0000Z"',
    'unlink-open: read through open fd -> ok buf"still here"',
    'mkdir-rmdir: rmdir d2 (has file) -> ENOTEMPTY',
    'mkdir-rmdir: rmdir file -> ENOTDIR',
    'mkdir-rmdir: unlink dir -> EISDIR',
    'rename-files: rename d/b over dir -> EISDIR',
    'rename-dirs: rename dir over non-empty dir -> ENOTEMPTY',
    'rename-dirs: rename dir into its own subdir -> EINVAL',
    'rename-files: rename keeps st_ino -> true',
    'hardlink: link shares st_ino -> true',
    'hardlink: stat f with 3 links -> file 0644 nlink=3 uid=0 gid=0 size=5',
    'symlink: stat l1 (dangling) -> ENOENT',
    'attrs: stat f after chown (setuid dropped) -> file 0755 nlink=1 uid=1234 gid=5678 size=1',
    'xattr: getxattr removed -> ENODATA',
    'long-names: create 256-byte name -> ENAMETOOLONG',
    'long-names: create 255-byte name -> ok',
    'many-files: readdir has all 2000 -> ok true',
    'sparse: sparse: st_blocks well under size -> true',
    'kill-privs: mode of suid -> ok "777"',
    'kill-privs: mode of sgid -> ok "767"',
    'kill-privs: mode of sgid-in-group -> ok "2767"',
    'kill-privs: mode of root-writes -> ok "6777"',
    'kill-privs: mode of truncated -> ok "777"',
    'kill-privs: mode of opened -> ok "777"',
    'kill-privs: mode of again -> ok "777"',
    'kill-privs: mode of chowned -> ok "777"',
    'new-set-id: mode of root-file -> ok "6755"',
    'new-set-id: mode of root-fifo -> ok "4644"',
    'new-set-id: mode of open/user-file -> ok "6755"',
    'new-set-id: mode of sgid-dir/outsider-file -> ok "755"'
  ]
  for (const l of expect) t.ok(a.includes(l), l)
})
