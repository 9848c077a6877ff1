/**
 * Ring 3, data integrity: a long seeded sequence of reads, writes (inside,
 * across and past the end), truncates (by path and by descriptor, up and
 * down), mmap reads and writes (MAP_SHARED, with and without msync) and
 * fsyncs on files that start in a read-only branch (empty, small, 1 MiB,
 * sparse 8 MiB), run by a python3 child and checked against an in-memory
 * model after every read; a read-only descriptor opened on each file
 * before its copy-up is read against the model too. At the end every file
 * is compared whole, again after a remount, and the read-only branch is
 * unchanged. Runs with the default options, with the kernel's writeback
 * cache, and with the overlay syntax. Rerun a failure with UNIONFS_TS_SEED=N.
 *
 * Then fio's own verification (crc32c headers in every block) on files
 * that start in the read-only branch: random writes with psync and with
 * mmap, verified as fio writes and again by a verify-only pass after a
 * remount. `npm test` installs fio from Debian when it is missing.
 */
import t from 'tap'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { spawnSync } from 'node:child_process'
import { tmpdir } from './helpers/mount'
import { makeTree, snapshotTree, sparse } from './helpers/tree'
import { UNION_AUFS, UNION_OVL_SYNTAX, mountStack, workLeftovers, type Variant } from './helpers/union-env'
import { python, runChild } from './helpers/robust-proc'
import { seedFromEnv } from './helpers/robust-prng'

const OPS = 2500

const SEQUENCE = String.raw`
import hashlib, json, mmap, os, random, sys
req = json.loads(sys.stdin.read())
rnd = random.Random(req['seed'])
names = req['files']
model = {}
for n in names:
    with open(os.path.join(req['lower'], n), 'rb') as f:
        model[n] = bytearray(f.read())
P = lambda n: os.path.join(req['mnt'], n)
# Read-only descriptors opened before any copy-up: they must follow the copy.
early = {n: os.open(P(n), os.O_RDONLY) for n in names}
log = []
def fail(i, what):
    print(json.dumps({'ok': False, 'op': i, 'what': what, 'log': log[-25:]}))
    sys.exit(0)
def check(i, n, off, got, how):
    want = bytes(model[n][off:off + len(got)]) if len(got) > 0 else b''
    if len(got) != max(0, min(len(model[n]) - off, req_len[0])):
        fail(i, '%s %s at %d: read %d bytes, the model has %d there' % (how, n, off, len(got), max(0, min(len(model[n]) - off, req_len[0]))))
    if got != want:
        k = next(j for j in range(len(got)) if got[j] != want[j])
        fail(i, '%s %s at %d: byte %d is %d, the model says %d' % (how, n, off, off + k, got[k], want[k]))
req_len = [0]
for n in names:
    with open(P(n), 'rb') as f: got = f.read()
    req_len[0] = len(got) + 1
    check(-1, n, 0, got, 'first read')
def randdata(n):
    return rnd.randbytes(n) if hasattr(rnd, 'randbytes') else bytes(rnd.getrandbits(8) for _ in range(n))
MAX = 12 << 20
for i in range(req['ops']):
    n = rnd.choice(names)
    m = model[n]
    r = rnd.random()
    size = len(m)
    if r < 0.25:
        off = rnd.randrange(0, size + 4096)
        ln = rnd.choice([1, 7, 512, 4096, 4097, 65536, 131072 + 3, rnd.randrange(1, 300000)])
        req_len[0] = ln
        log.append('pread %s %d %d' % (n, off, ln))
        fd = early[n] if rnd.random() < 0.3 else os.open(P(n), os.O_RDONLY)
        got = os.pread(fd, ln, off)
        if fd != early[n]: os.close(fd)
        check(i, n, off, got, 'pread')
    elif r < 0.5:
        off = rnd.choice([0, size, rnd.randrange(0, size + 1), rnd.randrange(0, size + 200000), (rnd.randrange(0, 64) << 12)])
        data = randdata(rnd.choice([1, 100, 4096, 8192 + 5, rnd.randrange(1, 200000)]))
        if off + len(data) > MAX: continue
        log.append('pwrite %s %d %d' % (n, off, len(data)))
        fd = os.open(P(n), os.O_RDWR)
        os.pwrite(fd, data, off)
        if rnd.random() < 0.2: os.fsync(fd)
        os.close(fd)
        if off > len(m): m.extend(b'\0' * (off - len(m)))
        m[off:off + len(data)] = data
    elif r < 0.6:
        ln = rnd.choice([0, 1, size // 2, size + 1, size + rnd.randrange(0, 300000), rnd.randrange(0, size + 1)])
        if ln > MAX: continue
        by_fd = rnd.random() < 0.5
        log.append('truncate %s %d %s' % (n, ln, 'fd' if by_fd else 'path'))
        if by_fd:
            fd = os.open(P(n), os.O_RDWR); os.ftruncate(fd, ln); os.close(fd)
        else:
            os.truncate(P(n), ln)
        if ln < len(m): del m[ln:]
        else: m.extend(b'\0' * (ln - len(m)))
    elif r < 0.75:
        if size == 0: continue
        fd = os.open(P(n), os.O_RDWR)
        mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        off = rnd.randrange(0, size)
        ln = min(size - off, rnd.choice([1, 100, 4096, rnd.randrange(1, 100000)]))
        if rnd.random() < 0.5:
            data = randdata(ln)
            log.append('mmap-write %s %d %d' % (n, off, ln))
            mm[off:off + ln] = data
            m[off:off + ln] = data
            if rnd.random() < 0.5: mm.flush()
        else:
            log.append('mmap-read %s %d %d' % (n, off, ln))
            req_len[0] = ln
            check(i, n, off, bytes(mm[off:off + ln]), 'mmap-read')
        mm.close()
        os.close(fd)
    elif r < 0.85:
        log.append('read-whole %s' % n)
        with open(P(n), 'rb') as f: got = f.read()
        req_len[0] = len(got) + 1
        check(i, n, 0, got, 'read-whole')
    elif r < 0.9:
        log.append('stat %s' % n)
        st = os.stat(P(n))
        if st.st_size != len(m): fail(i, 'stat %s: size %d, the model says %d' % (n, st.st_size, len(m)))
        st2 = os.fstat(early[n])
        if st2.st_size != len(m): fail(i, 'fstat of the early descriptor of %s: size %d, the model says %d' % (n, st2.st_size, len(m)))
    else:
        log.append('fsync %s' % n)
        fd = os.open(P(n), os.O_RDWR); os.fsync(fd); os.close(fd)
for n in names:
    with open(P(n), 'rb') as f: got = f.read()
    if got != bytes(model[n]): fail(req['ops'], 'final: %s differs from the model (%d vs %d bytes)' % (n, len(got), len(model[n])))
    os.close(early[n])
print(json.dumps({'ok': True, 'sha': {n: hashlib.sha256(model[n]).hexdigest() for n in names}}))
`

interface Outcome { ok: boolean, op?: number, what?: string, log?: string[], sha?: Record<string, string> }

function lowerFiles (dir: string): string[] {
  makeTree(dir, {
    'empty.bin': '',
    'small.txt': 'small file in the read-only branch\n'.repeat(90),
    'mib.bin': Buffer.from(Array.from({ length: 1 << 20 }, (_, i) => (i * 31 + (i >> 9)) & 0xff)),
    'sparse.bin': sparse(8 << 20, [[4096, 'island one'], [5 << 20, Buffer.alloc(70_000, 0x5c)]])
  })
  return ['empty.bin', 'small.txt', 'mib.bin', 'sparse.bin']
}

function shaFiles (dir: string, names: string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (const n of names) {
    out[n] = require('node:crypto').createHash('sha256').update(fs.readFileSync(path.join(dir, n))).digest('hex') as string
  }
  return out
}

const VARIANTS: Array<[Variant, string[]]> = [[UNION_AUFS, []], [UNION_AUFS, ['writeback']], [UNION_OVL_SYNTAX, []]]

for (const [v, options] of VARIANTS) {
  t.test(`${v.name}${options.length > 0 ? ', ' + options.join(',') : ''}: ${OPS} random operations against a model`, async t => {
    const seed = seedFromEnv()
    t.comment(`seed ${seed} (rerun with UNIONFS_TS_SEED=${seed})`)
    const lower = tmpdir(t, 'lower')
    const names = lowerFiles(lower)
    const before = snapshotTree(lower, { times: true, ino: true })
    const s = mountStack(t, v, [lower], { options })
    const out = await python<Outcome>(SEQUENCE, { seed, mnt: s.mnt, lower, files: names, ops: OPS }, 240_000)
    if (!t.ok(out.ok, `no difference from the model${out.ok ? '' : `: operation ${out.op ?? '?'}: ${out.what ?? ''}`}`)) {
      t.comment(`the last operations:\n${(out.log ?? []).join('\n')}`)
      return
    }
    t.strictSame(workLeftovers(s.work), [], 'the work dir holds nothing')
    s.remount()
    t.strictSame(shaFiles(s.mnt, names), out.sha, 'every file is the model after a remount')
    t.strictSame(snapshotTree(lower, { times: true, ino: true }), before, 'the read-only branch is unchanged')
  })
}

const haveFio = spawnSync('fio', ['--version'], { stdio: 'ignore' }).status === 0

t.test('fio --verify=crc32c on files that start in the read-only branch', async t => {
  t.ok(haveFio, 'fio is installed (npm test installs it)')
  const seed = seedFromEnv()
  const lower = tmpdir(t, 'lower')
  makeTree(lower, { 'psync.dat': Buffer.alloc(32 << 20, 0x11), 'mmap.dat': Buffer.alloc(16 << 20, 0x22) })
  const s = mountStack(t, UNION_AUFS, [lower])
  // fio leaves state files in its working directory.
  const scratchDir = tmpdir(t, 'fio-cwd')
  const jobs = (verifyOnly: boolean): string[][] => [
    ['--name=psync', `--filename=${s.m('psync.dat')}`, '--size=32m', '--bs=4k', '--rw=randwrite', '--ioengine=psync'],
    ['--name=mmap', `--filename=${s.m('mmap.dat')}`, '--size=16m', '--bs=16k', '--rw=randwrite', '--ioengine=mmap'],
    ['--name=seq', `--filename=${s.m('seq.dat')}`, '--size=24m', '--bs=1m', '--rw=write', '--ioengine=psync']
  ].map(j => [...j, '--verify=crc32c', '--do_verify=1', '--verify_fatal=1', '--verify_state_save=0', `--randseed=${seed}`, '--group_reporting',
    ...(verifyOnly ? ['--verify_only'] : [])])
  for (const j of jobs(false)) {
    const r = await runChild('fio', j, { timeoutMs: 240_000, cwd: scratchDir })
    t.equal(r.code, 0, `fio ${j[0]}: writes verified ${r.code === 0 ? '' : r.stdout.slice(-1500) + r.stderr.slice(-1500)}`)
    t.notMatch(r.stdout + r.stderr, /verify: bad|crc32c: verify failed|bad magic/i, `${j[0]}: no verify error`)
  }
  t.strictSame(workLeftovers(s.work), [], 'the work dir holds nothing')
  s.remount()
  for (const j of jobs(true)) {
    const r = await runChild('fio', j, { timeoutMs: 240_000, cwd: scratchDir })
    t.equal(r.code, 0, `fio ${j[0]} --verify_only after a remount ${r.code === 0 ? '' : r.stdout.slice(-1500) + r.stderr.slice(-1500)}`)
    t.notMatch(r.stdout + r.stderr, /verify: bad|crc32c: verify failed|bad magic/i, `${j[0]}: no verify error after the remount`)
  }
})
