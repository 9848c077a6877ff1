/**
 * FUSE passthrough, the file ops of issue 7 item 5, and a daemon killed
 * under its users.
 *
 * 1. The open policy (lib/fuse/passthrough.ts) in process, with fake ioctls.
 * 2. The transport over a PassthroughFs (test/fixtures/fuse-serve.ts, served
 *    by a forked child: the serving process never touches its mount):
 *    reads and writes that never reach the daemon, one backing per inode,
 *    mmap, the writeback cache turning passthrough off, INTERRUPT, no
 *    security.capability question before each write.
 * 3. The real union through its CLI (`node bin/unionfs-ts.js mount`, built
 *    with `npx tsc -p tsconfig.json`): a read-only descriptor opened before a
 *    copy-up sees what another descriptor wrote after it; which files the
 *    kernel serves itself; RENAME2 flags, FALLOCATE, SEEK_DATA/SEEK_HOLE,
 *    FSYNC/FSYNCDIR, statx; SIGKILL of the daemon while a reader waits.
 *
 * Whether the kernel serves a file itself is seen from outside: a change
 * made to the branch file underneath shows at once through a descriptor the
 * kernel passes through, while a daemon-served descriptor keeps reading the
 * kernel's page cache of the FUSE inode.
 *
 * Every mount is unmounted in teardown, even when a test fails.
 */
import t, { type Test } from 'tap'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { createHash } from 'node:crypto'
import { spawn, spawnSync } from 'node:child_process'

import type { FuseLog } from '../lib/fuse/log'
import type { FuseNode } from '../lib/fuse/nodes'
import { CACHED_IO, Passthrough, type BackingIoctls } from '../lib/fuse/passthrough'
import { Fopen } from '../lib/fuse/protocol'
import type { UnionFsApi } from '../lib/union/types'
import { cliBuilt, isMounted, run, tmpdir, withUnion, CLI } from './helpers/mount'
import { exited, serve, waitExit, type Served } from './helpers/fuse-served'
import { pattern } from './helpers/tree'

const MiB = 1024 * 1024

// ---------------------------------------------------------------------------
// helpers

function pread (fd: number, n: number, pos: number): string {
  const b = Buffer.alloc(n)
  const got = fs.readSync(fd, b, 0, n, pos)
  return b.subarray(0, got).toString('latin1')
}

/** Run a python3 program with `args`; its stdout parsed as JSON. */
function py (program: string, ...args: string[]): any {
  const r = spawnSync('python3', ['-c', program, ...args], { encoding: 'utf8', timeout: 60_000 })
  if (r.status !== 0) throw new Error(`python3 failed (${String(r.status ?? r.signal)}): ${r.stderr}`)
  return JSON.parse(r.stdout)
}

const PY_ERR = [
  'import ctypes, errno, json, os, sys',
  'libc = ctypes.CDLL(None, use_errno=True)',
  'def err(f):',
  '    try:',
  '        r = f()',
  '        return r if r is not None else "ok"',
  '    except OSError as e:',
  '        return errno.errorcode.get(e.errno, str(e.errno))',
  'def check(r):',
  '    if r < 0:',
  '        e = ctypes.get_errno(); raise OSError(e, os.strerror(e))',
  '    return r'
].join('\n')

async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}

/** Backing ids still held once the RELEASEs of closed files arrived (the kernel sends them after close returns). */
async function backingsAfterRelease (s: Served): Promise<number> {
  const deadline = Date.now() + 5000
  for (;;) {
    const st = await s.stats()
    if (st.fuse.openFiles === 0 || Date.now() > deadline) return st.fuse.backingsOpen as number
    await sleep(20)
  }
}

async function unmountServed (tt: Test, s: Served): Promise<void> {
  s.child.send({ cmd: 'unmount' })
  await s.next(['closed'])
  tt.ok(await waitExit(s.child, 10000), 'the server exits')
  tt.notOk(isMounted(s.mnt), 'no mount left behind')
}

// ---------------------------------------------------------------------------
// 1. the open policy, in process

interface FakeIoctls extends BackingIoctls {
  opened: number[]
  closed: number[]
  fail?: string
}

function fakeIoctls (): FakeIoctls {
  let next = 1
  const f: FakeIoctls = {
    opened: [],
    closed: [],
    open: (_dev, fd) => {
      if (f.fail !== undefined) throw Object.assign(new Error(f.fail), { code: f.fail })
      f.opened.push(fd)
      return next++
    },
    close: (_dev, id) => { f.closed.push(id) }
  }
  return f
}

function node (id: number): FuseNode {
  return { id, generation: 0, ino: id, isDir: false, paths: [`/n${id}`], nlookup: 1, openFhs: undefined }
}

const quiet = { info: () => {}, error: () => {}, request: () => {}, reply: () => {}, debug: false } as unknown as FuseLog

t.test('the open policy, in process', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'unionfs-ts-pt-policy-'))
  t.teardown(() => { fs.rmSync(dir, { recursive: true, force: true }) })
  const fds: number[] = []
  const fileFd = (name: string): number => {
    const fd = fs.openSync(path.join(dir, name), 'a+')
    fds.push(fd)
    return fd
  }
  t.teardown(() => { for (const fd of fds) fs.closeSync(fd) })
  // handle number -> branch fd, or undefined (a lower-branch handle the union withholds)
  const behind = new Map<number, number | undefined>()
  const union = { backingFd: (fh: number) => behind.get(fh) } as unknown as UnionFsApi
  const PT = Fopen.PASSTHROUGH

  t.test('off until INIT agrees', async (t) => {
    const io = fakeIoctls()
    const p = new Passthrough(99, union, io, true, quiet)
    t.ok(p.wanted, 'asked for at INIT')
    behind.set(1, fileFd('a'))
    t.same(p.opened(node(2), 1), CACHED_IO, 'before INIT: daemon-served')
    p.start(false)
    t.same(p.opened(node(2), 1), CACHED_IO, 'the kernel said no: daemon-served')
    t.same(io.opened, [], 'no ioctl')
    t.notOk(new Passthrough(99, {} as UnionFsApi, io, true, quiet).wanted, 'a union without backingFd: not asked for')
    t.notOk(new Passthrough(99, union, undefined, true, quiet).wanted, 'no native addon: not asked for')
    t.notOk(new Passthrough(99, union, io, false, quiet).wanted, 'the option off: not asked for')
  })

  t.test('one backing per inode, closed with its last handle', async (t) => {
    const io = fakeIoctls()
    const p = new Passthrough(99, union, io, true, quiet)
    p.start(true)
    const n = node(2)
    const fa = fileFd('b')
    behind.set(10, fa)
    behind.set(11, fileFd('b')) // another descriptor of the same file
    const first = p.opened(n, 10)
    t.equal(first.openFlags, PT, 'passthrough')
    t.equal(first.backingId, 1)
    t.same(p.opened(n, 11), first, 'a second open of the inode joins its backing...')
    t.same(io.opened, [fa], '...without a second backing id (the kernel refuses one)')
    p.released(10)
    t.same(io.closed, [], 'the id stays while a handle uses it')
    p.released(11)
    t.same(io.closed, [1], 'closed with the last handle')
    t.equal(p.opened(n, 11).backingId, 2, 'a later open registers afresh')
    p.released(11)
    t.same(p.stats(), { passthrough: 3, cached: 0, registered: 2, backings: 0 })
  })

  t.test('a daemon-served inode stays daemon-served until its last handle goes', async (t) => {
    // The copy-up case: a reader on the lower branch (no backing fd), then a
    // writer whose handle is on the writable branch.
    const io = fakeIoctls()
    const p = new Passthrough(99, union, io, true, quiet)
    p.start(true)
    const n = node(3)
    behind.set(20, undefined)
    behind.set(21, fileFd('c'))
    t.same(p.opened(n, 20), CACHED_IO, 'the lower reader: daemon-served')
    t.same(p.opened(n, 21), CACHED_IO, 'the writer joins the cached mode (the kernel refuses a mix)')
    t.same(io.opened, [], 'no backing registered')
    p.released(20)
    p.released(21)
    t.equal(p.opened(n, 21).openFlags, PT, 'once all are closed, the next open passes through')
  })

  t.test('a handle on another file than its inode\'s backing is not passed through', async (t) => {
    const io = fakeIoctls()
    const p = new Passthrough(99, union, io, true, quiet)
    p.start(true)
    const n = node(4)
    behind.set(30, fileFd('d'))
    behind.set(31, fileFd('e'))
    t.equal(p.opened(n, 30).openFlags, PT)
    t.same(p.opened(n, 31), CACHED_IO)
    t.equal(io.opened.length, 1)
  })

  t.test('ioctl failures fall back to the daemon', async (t) => {
    const io = fakeIoctls()
    const p = new Passthrough(99, union, io, true, quiet)
    p.start(true)
    behind.set(40, fileFd('f'))
    io.fail = 'ELOOP'
    t.same(p.opened(node(5), 40), CACHED_IO, 'ELOOP (a stacked branch filesystem): this file through the daemon')
    p.released(40)
    io.fail = undefined
    t.equal(p.opened(node(5), 40).openFlags, PT, 'the next file tries again')
    p.released(40)
    io.fail = 'EPERM'
    t.same(p.opened(node(6), 40), CACHED_IO, 'EPERM: through the daemon')
    io.fail = undefined
    t.same(p.opened(node(7), 40), CACHED_IO, 'and never asked again')
  })
})

// ---------------------------------------------------------------------------
// 2. the transport over a PassthroughFs

t.test('passthrough over a plain directory', async (t) => {
  const s = await serve(t, {}, true)
  fs.statSync(s.mnt) // waits for INIT, which mount(2) does not
  const st0 = await s.stats()
  t.equal(st0.fuse.passthrough, true, 'INIT agreed on passthrough (Linux 6.9+, root)')

  t.test('reads and writes never reach the daemon', async (t) => {
    const before = (await s.stats()).io
    const data = pattern(3 * MiB + 124, 7)
    fs.writeFileSync(s.m('big'), data)
    t.ok(fs.readFileSync(s.r('big')).equals(data), 'the bytes reached the branch file')
    t.ok(fs.readFileSync(s.m('big')).equals(data), 'and read back through the mount')
    const fd = fs.openSync(s.m('big'), 'r+')
    try {
      fs.writeSync(fd, 'XYZ', MiB + 1)
      t.equal(pread(fd, 5, MiB), data.toString('latin1', MiB, MiB + 1) + 'XYZ' + data.toString('latin1', MiB + 4, MiB + 5), 'a write in the middle')
    } finally {
      fs.closeSync(fd)
    }
    const dd = spawnSync('dd', [`if=${s.m('big')}`, 'of=/dev/null', 'bs=1M', 'iflag=direct'], { encoding: 'utf8' })
    t.equal(dd.status, 0, `O_DIRECT reads pass through too: ${dd.stderr}`)
    const after = await s.stats()
    t.equal(after.io.reads - before.reads, 0, 'no READ request')
    t.equal(after.io.writes - before.writes, 0, 'no WRITE request')
    t.ok((after.fuse.passthroughOpens as number) >= 4, 'the opens were answered with passthrough')
    t.equal(await backingsAfterRelease(s), 0, 'every backing id is closed with its last handle')
    t.equal(fs.statSync(s.m('big')).size, data.length, 'the size the kernel reports')
  })

  t.test('the kernel reads the branch file itself', async (t) => {
    fs.writeFileSync(s.r('under'), 'aaaa')
    const fd = fs.openSync(s.m('under'), 'r')
    try {
      t.equal(pread(fd, 4, 0), 'aaaa')
      fs.writeFileSync(s.r('under'), 'bbbb')
      t.equal(pread(fd, 4, 0), 'bbbb', 'a change underneath shows at once: no page cache of ours in between')
    } finally {
      fs.closeSync(fd)
    }
  })

  t.test('several opens of one inode share one backing', async (t) => {
    fs.writeFileSync(s.m('shared'), '0123456789')
    const before = await s.stats()
    const a = fs.openSync(s.m('shared'), 'r')
    const b = fs.openSync(s.m('shared'), 'r+')
    fs.linkSync(s.m('shared'), s.m('shared-link'))
    const c = fs.openSync(s.m('shared-link'), 'r')
    try {
      fs.writeSync(b, 'AB', 0)
      t.equal(pread(a, 4, 0), 'AB23', 'a reader sees the writer at once')
      t.equal(pread(c, 4, 0), 'AB23', 'so does a reader through a hard link (the same inode)')
      const mid = await s.stats()
      t.equal((mid.fuse.backingsRegistered as number) - (before.fuse.backingsRegistered as number), 1, 'one backing id for three opens')
      t.equal(mid.fuse.backingsOpen, 1)
    } finally {
      for (const fd of [a, b, c]) fs.closeSync(fd)
    }
    t.equal(await backingsAfterRelease(s), 0, 'closed with the last one')
  })

  t.test('mmap goes to the branch file', async (t) => {
    fs.writeFileSync(s.m('mapped'), Buffer.alloc(8192, 0x2e))
    const r = py([
      'import mmap, os, sys',
      'fd = os.open(sys.argv[1], os.O_RDWR)',
      'm = mmap.mmap(fd, 8192)',
      'm[4096:4101] = b"hello"',
      'm.flush(); m.close(); os.close(fd)',
      'print("true")'
    ].join('\n'), s.m('mapped'))
    t.equal(r, true)
    t.equal(fs.readFileSync(s.r('mapped')).toString('latin1', 4096, 4101), 'hello', 'a shared mapping wrote the branch file')
  })

  t.test('unmount', async (t) => { await unmountServed(t, s) })
})

t.test('passthrough off: with the option off, and with the writeback cache', async (t) => {
  for (const opts of [{ passthrough: false }, { writeback: true }]) {
    t.test(JSON.stringify(opts), async (t) => {
      const s = await serve(t, opts, true)
      fs.statSync(s.mnt)
      const st = await s.stats()
      t.equal(st.fuse.passthrough, false, 'INIT did not agree on passthrough')
      fs.writeFileSync(s.m('f'), pattern(MiB, 3))
      fs.writeFileSync(s.r('g'), pattern(MiB, 4)) // not in the kernel's page cache
      const fd = fs.openSync(s.m('g'), 'r')
      try {
        pread(fd, 16, 0)
      } finally {
        fs.closeSync(fd)
      }
      const after = await s.stats()
      t.ok(after.io.writes > st.io.writes, 'WRITEs reach the daemon')
      t.ok(after.io.reads > st.io.reads || opts.writeback === true, 'READs reach the daemon (or the page cache)')
      t.equal(after.fuse.passthroughOpens, 0)
      await unmountServed(t, s)
    })
  }
})

t.test('writes ask for security.capability once, not once each (HANDLE_KILLPRIV_V2)', async (t) => {
  for (const killpriv of [true, false]) {
    const s = await serve(t, { debug: true, killpriv }, true)
    fs.statSync(s.mnt)
    const fd = fs.openSync(s.m('w'), 'w')
    try {
      for (let i = 0; i < 16; i++) fs.writeSync(fd, pattern(64 * 1024, i))
    } finally {
      fs.closeSync(fd)
    }
    t.equal(fs.statSync(s.r('w')).size, 16 * 64 * 1024, 'the writes reached the branch file')
    const asks = s.log().split('\n').filter((l) => / <- \d+ GETXATTR .*security\.capability/.test(l)).length
    if (killpriv) t.ok(asks <= 1, `security.capability asked ${asks} times for 16 writes`)
    else t.equal(asks, 16, 'killpriv=off: asked before every write')
    await unmountServed(t, s)
  }
})

t.test('daemon-served opens keep the page cache, but not across a passthrough writer', async (t) => {
  // Read-only handles are daemon-served here, as a union's lower-branch readers.
  const s = await serve(t, { readersServed: true }, true)
  fs.statSync(s.mnt)
  const a = pattern(MiB, 5)
  const b = pattern(MiB, 6)
  fs.writeFileSync(s.r('f'), a)
  const reads = async (): Promise<number> => (await s.stats()).io.reads
  const r0 = await reads()
  t.ok(fs.readFileSync(s.m('f')).equals(a), 'first read')
  const r1 = await reads()
  t.ok(r1 > r0, 'through the daemon')
  t.ok(fs.readFileSync(s.m('f')).equals(a), 'second read')
  t.equal(await reads(), r1, 'from the page cache: no READ')

  const fd = fs.openSync(s.m('f'), 'r+')
  try {
    fs.writeSync(fd, b, 0, b.length, 0)
  } finally {
    fs.closeSync(fd)
  }
  t.ok((await s.stats()).fuse.passthroughOpens as number > 0, 'the writer was passed through')
  t.ok(fs.readFileSync(s.m('f')).equals(b), 'the next reader sees what the passthrough writer wrote')
  const r2 = await reads()
  t.ok(r2 > r1, 'the stale pages were dropped: read through the daemon')
  t.ok(fs.readFileSync(s.m('f')).equals(b))
  t.equal(await reads(), r2, 'and cached again')
  await unmountServed(t, s)
})

t.test('cache=off (zero timeouts): every open drops the page cache', async (t) => {
  const s = await serve(t, { passthrough: false, entryTimeout: 0, attrTimeout: 0, negativeTimeout: 0 }, true)
  fs.statSync(s.mnt)
  fs.writeFileSync(s.r('f'), pattern(MiB, 7))
  fs.readFileSync(s.m('f'))
  const r1 = (await s.stats()).io.reads
  fs.writeFileSync(s.r('f'), pattern(MiB, 8)) // behind the mount's back
  t.ok(fs.readFileSync(s.m('f')).equals(pattern(MiB, 8)), 'a change behind the mount shows at the next open')
  t.ok((await s.stats()).io.reads > r1, 'read through the daemon again')
  await unmountServed(t, s)
})

t.test('INTERRUPT is answered ENOSYS once, then never sent again', async (t) => {
  const s = await serve(t, { debug: true, slowMs: 800, passthrough: false }, true)
  fs.writeFileSync(s.r('slow1'), '1')
  fs.writeFileSync(s.r('slow2'), '2')
  const program = [
    'import os, signal, sys, time',
    'signal.signal(signal.SIGUSR1, lambda *a: None)',
    'print("go", flush=True)',
    'st = os.stat(sys.argv[1])',
    'print(st.st_size, flush=True)'
  ].join('\n')
  for (const name of ['slow1', 'slow2']) {
    const child = spawn('python3', ['-c', program, s.m(name)], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (d: string) => { out += d })
    while (!out.includes('go') && !exited(child)) await sleep(10)
    await sleep(300) // the LOOKUP is with the daemon now, which holds it for 800 ms
    child.kill('SIGUSR1')
    t.ok(await waitExit(child, 10000), `${name}: the signalled process finishes`)
    t.equal(child.exitCode, 0, `${name}: and its stat succeeded`)
    t.match(out, /go\n1\n/)
  }
  const log = s.log()
  const interrupts = log.split('\n').filter((l) => / INTERRUPT /.test(l))
  t.equal(interrupts.length, 1, 'one INTERRUPT reached the daemon: the kernel stopped after ENOSYS')
  const unique = / <- (\d+) INTERRUPT/.exec(interrupts[0] ?? '')?.[1]
  t.match(log, new RegExp(`-> ${unique ?? 'x'} error -${os.constants.errno.ENOSYS} `), 'answered ENOSYS')
  await unmountServed(t, s)
})

// ---------------------------------------------------------------------------
// 3. the union, through its command line

const noCli = !cliBuilt() ? 'the CLI is not built (npx tsc -p tsconfig.json)' : false

/** The union core names backing fds (UnionFs.backingFd): upper files pass through. */
async function coreHasBackingFd (): Promise<boolean> {
  const { UnionFs } = await import('../lib/union/union-fs')
  return typeof (UnionFs.prototype as unknown as UnionFsApi).backingFd === 'function'
}

t.test('the union: a reader opened before a copy-up sees the copy', { skip: noCli }, async (t) => {
  const top = tmpdir(t, 'top')
  const low = tmpdir(t, 'low')
  fs.writeFileSync(path.join(low, 'f'), 'old-data')
  fs.writeFileSync(path.join(low, 'g'), 'old-data')
  const { mnt } = withUnion(t, { branches: [top, low] })
  const m = (p: string): string => path.join(mnt, p)

  const a = fs.openSync(m('f'), 'r')
  t.equal(pread(a, 8, 0), 'old-data', 'the reader, on the lower branch')
  const b = fs.openSync(m('f'), 'r+')
  fs.writeSync(b, 'NEW', 0)
  t.equal(pread(a, 8, 0), 'NEW-data', 'the reader sees the write made after the copy-up')
  const c = fs.openSync(m('f'), 'r')
  t.equal(pread(c, 8, 0), 'NEW-data', 'a reader opened after it too')
  fs.writeSync(b, 'MORE', 4)
  t.equal(pread(a, 8, 0), 'NEW-MORE', 'and keeps seeing later writes')
  for (const fd of [a, b, c]) fs.closeSync(fd)
  t.equal(fs.readFileSync(path.join(low, 'f'), 'utf8'), 'old-data', 'the lower branch is untouched')
  t.equal(fs.readFileSync(path.join(top, 'f'), 'utf8'), 'NEW-MORE', 'the copy has the writes')

  // The same with the writer's handle opened through a truncating open.
  const r = fs.openSync(m('g'), 'r')
  t.equal(pread(r, 8, 0), 'old-data')
  fs.writeFileSync(m('g'), 'fresh')
  t.equal(pread(r, 8, 0), 'fresh', 'O_TRUNC copy-up: the reader sees the new contents')
  fs.closeSync(r)

  // Once the copy is all there is, every open of it is an upper handle.
  const d = fs.openSync(m('f'), 'r+')
  const e = fs.openSync(m('f'), 'r')
  fs.writeSync(d, 'x', 0)
  t.equal(pread(e, 8, 0), 'xEW-MORE', 'two handles on the copy agree')
  fs.closeSync(d)
  fs.closeSync(e)
})

t.test('the union: which files the kernel serves itself', { skip: noCli }, async (t) => {
  const hasAccessor = await coreHasBackingFd()
  const top = tmpdir(t, 'top')
  const low = tmpdir(t, 'low')
  fs.writeFileSync(path.join(low, 'lower'), 'aaaa')
  fs.writeFileSync(path.join(top, 'upper'), 'aaaa')
  const { mnt } = withUnion(t, { branches: [top, low] })

  /** Read through a descriptor, change the branch file underneath, read again. */
  const seesUnderneath = (name: string, branchFile: string): boolean => {
    const fd = fs.openSync(path.join(mnt, name), 'r')
    try {
      pread(fd, 4, 0)
      fs.writeFileSync(branchFile, 'bbbb')
      return pread(fd, 4, 0) === 'bbbb'
    } finally {
      fs.closeSync(fd)
      fs.writeFileSync(branchFile, 'aaaa')
    }
  }
  t.equal(seesUnderneath('lower', path.join(low, 'lower')), false,
    'a lower file in a union with a writable branch is served through the daemon (a copy-up must be able to re-point it)')
  if (hasAccessor) {
    t.equal(seesUnderneath('upper', path.join(top, 'upper')), true, 'a file on the writable branch is passed through')
  } else {
    t.equal(seesUnderneath('upper', path.join(top, 'upper')), false,
      'the core has no backingFd yet: upper files are served through the daemon too')
  }

  t.test('a read-only union passes lower files through', async (t) => {
    const only = tmpdir(t, 'only')
    fs.writeFileSync(path.join(only, 'lower'), 'aaaa')
    const ro = withUnion(t, { lowers: [only] })
    const fd = fs.openSync(path.join(ro.mnt, 'lower'), 'r')
    try {
      pread(fd, 4, 0)
      fs.writeFileSync(path.join(only, 'lower'), 'bbbb')
      t.equal(pread(fd, 4, 0), hasAccessor ? 'bbbb' : 'aaaa', hasAccessor ? 'passed through' : 'through the daemon (no backingFd in the core)')
    } finally {
      fs.closeSync(fd)
    }
  })
})

t.test('the union: RENAME2, FALLOCATE, SEEK_DATA/SEEK_HOLE, FSYNC, FSYNCDIR, statx', { skip: noCli }, async (t) => {
  const top = tmpdir(t, 'top')
  const low = tmpdir(t, 'low')
  // A sparse lower file: data at 0 and at 4 MiB, a hole between.
  const sparse = fs.openSync(path.join(low, 'sparse'), 'w')
  fs.writeSync(sparse, Buffer.alloc(4096, 1), 0, 4096, 0)
  fs.writeSync(sparse, Buffer.alloc(4096, 2), 0, 4096, 4 * MiB)
  fs.closeSync(sparse)
  fs.writeFileSync(path.join(low, 'a'), 'A')
  fs.writeFileSync(path.join(low, 'b'), 'B')
  fs.mkdirSync(path.join(low, 'dir'))
  fs.writeFileSync(path.join(top, 'punch'), Buffer.alloc(3 * 65536, 0x41))
  const { mnt } = withUnion(t, { branches: [top, low] })
  const m = (p: string): string => path.join(mnt, p)

  t.test('RENAME2: NOREPLACE, EXCHANGE, WHITEOUT', async (t) => {
    const r = py(PY_ERR + '\n' + [
      'SYS_renameat2 = 316  # x86_64',
      'AT_FDCWD = -100',
      'def rn(a, b, flags): return check(libc.syscall(SYS_renameat2, AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), flags))',
      'm = sys.argv[1]',
      'out = {}',
      'out["noreplaceOverExisting"] = err(lambda: rn(m + "/a", m + "/b", 1))',
      'out["exchange"] = err(lambda: rn(m + "/a", m + "/b", 2))',
      'out["a"] = open(m + "/a").read(); out["b"] = open(m + "/b").read()',
      'out["noreplaceToNew"] = err(lambda: rn(m + "/a", m + "/c", 1))',
      'out["exchangeWithMissing"] = err(lambda: rn(m + "/c", m + "/nope", 2))',
      'out["whiteout"] = err(lambda: rn(m + "/c", m + "/d", 4))',
      'out["bothFlags"] = err(lambda: rn(m + "/c", m + "/d", 3))',
      'out["names"] = sorted(os.listdir(m))',
      'print(json.dumps(out))'
    ].join('\n'), mnt)
    t.same(r, {
      noreplaceOverExisting: 'EEXIST',
      exchange: 0,
      a: 'B',
      b: 'A',
      noreplaceToNew: 0,
      exchangeWithMissing: 'ENOENT',
      whiteout: 'EINVAL',
      bothFlags: 'EINVAL',
      names: ['b', 'c', 'dir', 'punch', 'sparse']
    }, 'flags reach the union; RENAME_WHITEOUT is refused (a 0/0 device is a whiteout to the union itself)')
    t.equal(fs.readFileSync(path.join(low, 'a'), 'utf8'), 'A', 'the lower branch is untouched')
  })

  t.test('SEEK_DATA and SEEK_HOLE, before and after a copy-up', async (t) => {
    const seek = [
      'fd = os.open(sys.argv[1], os.O_RDWR if len(sys.argv) > 2 else os.O_RDONLY)',
      'if len(sys.argv) > 2: os.pwrite(fd, b"z", 0)',
      'out = {}',
      'out["data0"] = err(lambda: os.lseek(fd, 0, os.SEEK_DATA))',
      'out["hole0"] = err(lambda: os.lseek(fd, 0, os.SEEK_HOLE))',
      'out["data1M"] = err(lambda: os.lseek(fd, 1 << 20, os.SEEK_DATA))',
      'out["pastEnd"] = err(lambda: os.lseek(fd, 5 << 20, os.SEEK_DATA))',
      'out["size"] = os.fstat(fd).st_size',
      'print(json.dumps(out))'
    ].join('\n')
    const expected = { data0: 0, hole0: 4096, data1M: 4 * MiB, pastEnd: 'ENXIO', size: 4 * MiB + 4096 }
    t.same(py(PY_ERR + '\n' + seek, m('sparse')), expected, 'on the lower branch')
    t.same(py(PY_ERR + '\n' + seek, m('sparse'), 'write'), expected, 'on the copy (holes stay holes), through a written descriptor')
  })

  t.test('FALLOCATE: punch a hole, grow, keep the size', async (t) => {
    const r = py(PY_ERR + '\n' + [
      'FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 1, 2',
      'libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]',
      'fd = os.open(sys.argv[1], os.O_RDWR)',
      'out = {}',
      'out["punch"] = err(lambda: check(libc.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 65536, 65536)))',
      'out["middle"] = os.pread(fd, 4, 65536).hex()',
      'out["edges"] = (os.pread(fd, 1, 65535) + os.pread(fd, 1, 131072)).decode()',
      'out["hole"] = err(lambda: os.lseek(fd, 0, os.SEEK_HOLE))',
      'out["grow"] = err(lambda: check(libc.fallocate(fd, 0, 0, 4 * 65536)))',
      'out["size"] = os.fstat(fd).st_size',
      'out["keep"] = err(lambda: check(libc.fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 8 * 65536)))',
      'out["sizeKept"] = os.fstat(fd).st_size',
      'os.close(fd)',
      'out["statSize"] = os.stat(sys.argv[1]).st_size',
      'print(json.dumps(out))'
    ].join('\n'), m('punch'))
    t.same(r, {
      punch: 0,
      middle: '00000000',
      edges: 'AA',
      hole: 65536,
      grow: 0,
      size: 4 * 65536,
      keep: 0,
      sizeKept: 4 * 65536,
      statSize: 4 * 65536
    })
    t.equal(fs.statSync(path.join(top, 'punch')).size, 4 * 65536, 'on the branch file')
  })

  t.test('FSYNC, FDATASYNC, FSYNCDIR', async (t) => {
    const r = py(PY_ERR + '\n' + [
      'm = sys.argv[1]',
      'out = {}',
      'fd = os.open(m + "/synced", os.O_CREAT | os.O_WRONLY, 0o644)',
      'os.write(fd, b"durable")',
      'out["fsync"] = err(lambda: os.fsync(fd))',
      'out["fdatasync"] = err(lambda: os.fdatasync(fd))',
      'os.close(fd)',
      'd = os.open(m + "/dir", os.O_RDONLY | os.O_DIRECTORY)',
      'out["fsyncdir"] = err(lambda: os.fsync(d))',
      'os.close(d)',
      'print(json.dumps(out))'
    ].join('\n'), mnt)
    t.same(r, { fsync: 'ok', fdatasync: 'ok', fsyncdir: 'ok' })
    t.equal(fs.readFileSync(path.join(top, 'synced'), 'utf8'), 'durable')
  })

  t.test('statx asking for the birth time', async (t) => {
    // GNU stat asks statx() for STATX_BTIME: the kernel tries STATX once,
    // gets ENOSYS, and answers from GETATTR from then on.
    for (const name of ['b', 'dir', 'sparse']) {
      const r = spawnSync('stat', ['-c', '%s %i %W', m(name)], { encoding: 'utf8' })
      t.equal(r.status, 0, `stat ${name}: ${r.stderr}`)
      const [size, ino, birth] = r.stdout.trim().split(' ')
      const st = fs.statSync(m(name))
      t.same([Number(size), Number(ino)], [st.size, st.ino], `${name}: size and inode`)
      t.equal(birth, '0', `${name}: no birth time (the union has none)`)
    }
  })
})

t.test('the union: its daemon killed under a waiting reader', { skip: noCli }, async (t) => {
  const top = tmpdir(t, 'top')
  const low = tmpdir(t, 'low')
  fs.writeFileSync(path.join(low, 'f'), 'lower data')
  fs.writeFileSync(path.join(top, 'open-before'), 'upper data')
  const { mnt } = withUnion(t, { branches: [top, low] })
  const pidFile = path.join('/run/unionfs-ts', createHash('sha256').update(mnt).digest('hex').slice(0, 32) + '.pid')
  const daemon = Number(fs.readFileSync(pidFile, 'utf8').split('\n')[0])
  t.ok(daemon > 0 && fs.readFileSync(`/proc/${daemon}/cmdline`, 'utf8').includes('unionfs-ts'), `the daemon is pid ${daemon}`)

  // A descriptor opened before the daemon dies.
  const held = fs.openSync(path.join(mnt, 'open-before'), 'r')
  t.teardown(() => { try { fs.closeSync(held) } catch {} })

  // Stop the daemon. A process that exits or execs with a descriptor on a
  // stopped daemon's mount would wait for the FLUSH of that close for ever
  // (were there one), so the daemon must not outlive this test stopped,
  // even if this process is killed before its teardown runs.
  spawn('sh', ['-c', `sleep 30; kill -KILL ${daemon} 2>/dev/null`], { detached: true, stdio: 'ignore' }).unref()
  t.teardown(() => { try { process.kill(daemon, 'SIGKILL') } catch {} })
  process.kill(daemon, 'SIGSTOP')

  // Start a reader: its request waits in the kernel. Its execve closes the
  // descriptor it inherited from this process: no FLUSH (FOPEN_NOFLUSH), so
  // starting it does not wait for the stopped daemon.
  const spawnedAt = Date.now()
  const reader = spawn('python3', ['-c', [
    'import errno, os, sys, time',
    't = time.time()',
    'try:',
    '    print(open(sys.argv[1]).read())',
    'except OSError as e:',
    '    print(errno.errorcode[e.errno])',
    'print("%.1f" % (time.time() - t))'
  ].join('\n'), path.join(mnt, 'f')], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  reader.stdout.setEncoding('utf8')
  reader.stdout.on('data', (d: string) => { out += d })
  t.teardown(() => { if (!exited(reader)) reader.kill('SIGKILL') })
  t.ok(Date.now() - spawnedAt < 5000, 'starting a process that inherits a descriptor does not wait for the daemon')
  await sleep(1000)
  t.notOk(exited(reader), 'the reader waits on the stopped daemon')
  const wchan = fs.readFileSync(`/proc/${reader.pid ?? 0}/wchan`, 'utf8')
  t.match(wchan, /request_wait_answer|fuse/, `in the FUSE request queue (${wchan})`)

  process.kill(daemon, 'SIGKILL')
  t.ok(await waitExit(reader, 10000), 'the reader is let go when the daemon dies')
  const [what] = out.trim().split('\n')
  t.ok(['ECONNABORTED', 'ENOTCONN'].includes(what), `with an error, not data or a hang (${what})`)

  // Nothing else hangs: new users get ENOTCONN at once.
  const t0 = Date.now()
  const stat = spawnSync('stat', [mnt], { encoding: 'utf8', timeout: 10_000 })
  t.match(stat.stderr, /Transport endpoint is not connected/, 'the mountpoint answers ENOTCONN')
  t.ok(Date.now() - t0 < 5000, 'at once')
  const ls = spawnSync('ls', [path.join(mnt, 'f')], { encoding: 'utf8', timeout: 10_000 })
  t.match(ls.stderr, /Transport endpoint is not connected/)
  t.ok(isMounted(mnt), 'the dead mount stays in the mount table until unmounted')

  // A descriptor the kernel passes through still reads its branch file;
  // a daemon-served one fails.
  let heldRead: string
  try {
    heldRead = pread(held, 10, 0)
  } catch (err) {
    heldRead = (err as NodeJS.ErrnoException).code ?? 'error'
  }
  t.ok(['upper data', 'ECONNABORTED', 'ENOTCONN', 'EIO'].includes(heldRead), `a descriptor opened before: ${heldRead}`)
  try { fs.closeSync(held) } catch {}

  // The command line takes the dead mount down.
  const um = run(process.execPath, [CLI, 'umount', mnt], 30_000)
  t.equal(um.status, 0, `unionfs-ts umount of the dead mount: ${um.stderr}`)
  t.notOk(isMounted(mnt), 'unmounted')
  const again = run(process.execPath, [CLI, 'mount', `${top}:${low}`, mnt], 60_000)
  t.equal(again.status, 0, `a new mount on the same mountpoint: ${again.stderr}`)
  t.equal(fs.readFileSync(path.join(mnt, 'f'), 'utf8'), 'lower data', 'serves again')
})
