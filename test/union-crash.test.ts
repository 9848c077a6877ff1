/**
 * Ring 3, crashes: the daemon killed with SIGKILL in the middle of copying up
 * a 512 MiB file. After a remount the file shows either its old state or its
 * new one, never a partial copy; the writable branch holds either nothing or
 * a complete copy under the name; the work dir's leftovers are swept by the
 * mount; the read-only branch is unchanged. And SIGTERM: the daemon unmounts
 * and everything written before it is on disk.
 *
 * The daemon is found by its command line (it names its mountpoint, which is
 * unique to this test) and signalled by pid: the test started it.
 */
import t from 'tap'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { isMounted, tmpdir } from './helpers/mount'
import { UNION_AUFS, UNION_OVL_SYNTAX, mountStack, workLeftovers } from './helpers/union-env'
import { snapshotTree } from './helpers/tree'

const MiB = 1024 * 1024
const SIZE = 512 * MiB

function sleep (ms: number): void { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms) }

/** The pid of the process serving `mnt`: the one whose command line ends with it. */
function daemonPid (mnt: string): number | undefined {
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue
    let argv: string[]
    try { argv = fs.readFileSync(`/proc/${name}/cmdline`, 'latin1').split('\0').filter(Boolean) } catch { continue }
    if (argv.at(-1) === mnt && argv.some(a => a.includes('unionfs-ts'))) return Number(name)
  }
  return undefined
}

function waitGone (pid: number, ms: number): boolean {
  const end = Date.now() + ms
  while (Date.now() < end) {
    try { process.kill(pid, 0) } catch { return true }
    sleep(20)
  }
  return false
}

function bigFile (p: string, seed: number): string {
  const chunk = Buffer.alloc(MiB)
  for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE((Math.imul(i + 1, 2654435761) ^ seed) >>> 0, i)
  const h = createHash('sha256')
  const fd = fs.openSync(p, 'w')
  try {
    for (let i = 0; i < SIZE / MiB; i++) {
      chunk.writeUInt32LE(i, 0)
      fs.writeSync(fd, chunk)
      h.update(chunk)
    }
  } finally { fs.closeSync(fd) }
  return h.digest('hex')
}

function hashOf (p: string): string {
  const h = createHash('sha256')
  const fd = fs.openSync(p, 'r')
  const b = Buffer.alloc(4 * MiB)
  try {
    for (let n; (n = fs.readSync(fd, b, 0, b.length, null)) > 0;) h.update(b.subarray(0, n))
  } finally { fs.closeSync(fd) }
  return h.digest('hex')
}

for (const v of [UNION_AUFS, UNION_OVL_SYNTAX]) {
  t.test(`${v.name}: SIGKILL during a copy-up leaves the old view or the new one`, async t => {
    const lower = tmpdir(t, 'lower')
    const hashes = [0, 1, 2, 3].map(i => bigFile(path.join(lower, `big${i}.bin`), i))
    const lowerBefore = snapshotTree(lower, { times: true, ino: true })
    const s = mountStack(t, v, [lower])

    // How long a chmod that copies up takes here, started the way the
    // attempts start it (a python3 child: its start-up is part of the time),
    // to aim each kill at a different point of the copy.
    const chmodChild = (name: string): Promise<number | null> => {
      const child = spawn('python3', ['-c', 'import os,sys; os.chmod(sys.argv[1], 0o600)', s.m(name)], { stdio: 'ignore' })
      return new Promise(resolve => child.on('exit', code => resolve(code)))
    }
    let start = Date.now()
    await chmodChild('big0.bin')
    const copyMs = Math.max(Date.now() - start, 2)
    t.comment(`python3 start-up plus one ${SIZE / MiB} MiB copy-up: ${copyMs} ms`)

    for (const [i, frac] of [[1, 0.5], [2, 0.7], [3, 0.9]]) {
      const name = `big${i}.bin`
      const pid = daemonPid(s.mnt)
      if (!t.ok(pid !== undefined, `attempt ${i}: daemon found`)) break
      start = Date.now()
      const exited = chmodChild(name)
      sleep(Math.floor(copyMs * frac))
      process.kill(pid as number, 'SIGKILL')
      t.ok(waitGone(pid as number, 10_000), `attempt ${i}: daemon gone after SIGKILL at ${Date.now() - start} ms`)
      await exited
      const left = workLeftovers(s.work)
      t.comment(`attempt ${i}: work dir right after the kill: ${left.length === 0 ? 'empty' : left.join(', ')}`)

      s.remount()
      const st = fs.statSync(s.m(name))
      t.equal(st.size, SIZE, `attempt ${i}: size intact through the mount`)
      t.ok((st.mode & 0o777) === 0o644 || (st.mode & 0o777) === 0o600, `attempt ${i}: mode is the old or the new one`)
      t.equal(hashOf(s.m(name)), hashes[i], `attempt ${i}: content intact through the mount`)
      if (fs.existsSync(s.u(name))) {
        t.equal(fs.statSync(s.u(name)).size, SIZE, `attempt ${i}: the copy in the upper is complete`)
        t.equal(hashOf(s.u(name)), hashes[i], `attempt ${i}: the copy in the upper has the whole content`)
      }
      t.strictSame(workLeftovers(s.work), [], `attempt ${i}: the mount swept the work dir`)
    }
    t.equal(hashOf(s.m('big0.bin')), hashes[0], 'the finished copy-up survived the crashes')
    t.strictSame(snapshotTree(lower, { times: true, ino: true }), lowerBefore, 'read-only branch unchanged')
  })
}

t.test('SIGTERM unmounts and keeps everything written', async t => {
  const lower = tmpdir(t, 'lower')
  fs.writeFileSync(path.join(lower, 'l.txt'), 'lower')
  const s = mountStack(t, UNION_AUFS, [lower])
  fs.writeFileSync(s.m('written.txt'), 'written just before SIGTERM')
  fs.appendFileSync(s.m('l.txt'), ' and more')
  fs.mkdirSync(s.m('dir'))
  const pid = daemonPid(s.mnt)
  if (!t.ok(pid !== undefined, 'daemon found')) return
  process.kill(pid as number, 'SIGTERM')
  t.ok(waitGone(pid as number, 20_000), 'daemon exits on SIGTERM')
  t.notOk(isMounted(s.mnt), 'and unmounted on its way out')
  t.equal(fs.readFileSync(s.u('written.txt'), 'utf8'), 'written just before SIGTERM', 'new file on disk')
  t.equal(fs.readFileSync(s.u('l.txt'), 'utf8'), 'lower and more', 'copied-up file on disk')
  t.ok(fs.statSync(s.u('dir')).isDirectory(), 'new dir on disk')
  t.strictSame(workLeftovers(s.work), [], 'work dir holds nothing')
})
