/**
 * Ring 3: seeing copy-on-write happen, through real mounts. `-o trace`
 * (its JSON lines), `unionfs-ts stats --json` and `unionfs-ts inspect --json`
 * after copy-ups, whiteouts, an opaque directory and a rename, checked
 * against each other and against the branches on disk; the text forms
 * (plain when piped); the stats channel's access checks. Every mount is
 * unmounted in teardown even when an assertion fails (helpers/mount.ts).
 */
import t from 'tap'
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as path from 'node:path'
import { CLI, cliBuilt, isMounted, run, tmpdir, withUnion } from './helpers/mount'
import { parseOptions, toArgs } from '../lib/option-syntax'
import { channelPaths } from '../lib/observe/channel'

const BIG = 3 * 1024 * 1024 + 17

interface TraceLine {
  time: string
  event: string
  path: string
  to?: string
  from?: { layer: number, branch: string }
  into?: { layer: number, branch: string }
  as?: string
  hides?: { layer: number, branch: string }
  bytes?: number
  ms: number
}

function cli (...args: string[]): { status: number | null, stdout: string, stderr: string } {
  return run(process.execPath, [CLI, ...args], 60_000)
}

function json<T> (args: string[]): T {
  const r = cli(...args)
  if (r.status !== 0) throw new Error(`unionfs-ts ${args.join(' ')}: exit ${r.status}: ${r.stderr}`)
  return JSON.parse(r.stdout) as T
}

t.test('the tests can run here', async t => {
  t.ok(cliBuilt(), 'dist/ is built (npm test builds it)')
  t.equal(process.getuid?.(), 0, 'running as root')
  t.ok(fs.existsSync('/dev/fuse'), '/dev/fuse exists')
})

t.test('-o trace, trace_format and toArgs', async t => {
  const up = tmpdir(t, 'up')
  const lo = tmpdir(t, 'lo')
  const mnt = tmpdir(t, 'mnt')
  const a = parseOptions(['-o', 'trace', `${up}:${lo}`, mnt])
  t.same(a.trace, { format: 'text' }, 'trace alone: the daemon\'s stderr, text')
  const b = parseOptions(['-o', `trace=${path.join(up, '..', 't.log')},trace_format=json`, `${up}:${lo}`, mnt])
  t.same(b.trace, { file: path.join(path.dirname(up), 't.log'), format: 'json' })
  t.same(parseOptions(toArgs(b)).trace, b.trace, 'toArgs carries it to the daemon')
  t.equal(parseOptions([`${up}:${lo}`, mnt]).trace, undefined, 'off by default')
  t.throws(() => parseOptions(['-o', 'trace_format=xml,trace', `${up}:${lo}`, mnt]), /trace_format=xml/)
  t.throws(() => parseOptions(['-o', 'trace_format=json', `${up}:${lo}`, mnt]), /needs trace/)
  t.throws(() => parseOptions(['-o', `trace=${mnt}/t.log`, `${up}:${lo}`, mnt]), /inside the mountpoint/)
})

for (const dialect of ['aufs', 'overlay'] as const) {
  t.test(`trace, stats and inspect agree (whiteout=${dialect})`, async t => {
    const up = tmpdir(t, 'up')
    const lo = tmpdir(t, 'lo')
    const traceFile = path.join(tmpdir(t, 'trace'), 'trace.jsonl')
    fs.writeFileSync(path.join(lo, 'big.bin'), Buffer.alloc(BIG, 7))
    fs.writeFileSync(path.join(lo, 'gone.txt'), 'to be deleted\n')
    fs.mkdirSync(path.join(lo, 'd'))
    fs.writeFileSync(path.join(lo, 'd', 'old'), 'old\n')
    fs.writeFileSync(path.join(lo, 'mv-me'), 'moving\n')
    fs.writeFileSync(path.join(up, 'own.txt'), 'made in the upper\n')
    const { mnt } = withUnion(t, { branches: [up, lo], options: [`whiteout=${dialect}`, `trace=${traceFile}`, 'trace_format=json'] })

    const before = json<{ copyUps: number, requests: { total: number } }>(['stats', '--json', mnt])
    t.equal(before.copyUps, 0, 'no copy-up yet')

    fs.appendFileSync(path.join(mnt, 'big.bin'), 'x') // copy-up of BIG bytes
    fs.unlinkSync(path.join(mnt, 'gone.txt')) // whiteout
    fs.rmSync(path.join(mnt, 'd'), { recursive: true }) // copy-up of d, whiteout d/old, whiteout d
    fs.mkdirSync(path.join(mnt, 'd')) // opaque
    fs.renameSync(path.join(mnt, 'mv-me'), path.join(mnt, 'moved')) // rename: copy-up + whiteout

    // --- the trace
    const lines = fs.readFileSync(traceFile, 'utf8').trim().split('\n').map(l => JSON.parse(l) as TraceLine)
    const ev = (event: string, p: string): TraceLine | undefined => lines.find(l => l.event === event && l.path === p)
    const big = ev('copy-up', '/big.bin')
    t.ok(big, 'a copy-up line for /big.bin')
    t.equal(big?.bytes, BIG, 'it copied the whole file')
    t.same([big?.from?.layer, big?.from?.branch, big?.into?.layer, big?.into?.branch], [1, lo, 0, up], 'from the lower branch into the upper')
    t.type(big?.ms, 'number')
    t.ok(big !== undefined && big.ms >= 0, 'a time')
    t.ok(!Number.isNaN(Date.parse(big?.time ?? '')), 'a timestamp')
    const gone = ev('whiteout', '/gone.txt')
    t.ok(gone, 'a whiteout line for /gone.txt')
    t.equal(gone?.into?.layer, 0)
    t.equal(gone?.hides?.layer, 1, 'it hides the lower branch\'s file')
    t.equal(gone?.as, dialect === 'aufs' ? '.wh.gone.txt' : 'char device 0/0', 'written in the mount\'s dialect')
    t.ok(ev('whiteout', '/d/old'), 'rm -rf whited out d/old')
    t.ok(ev('whiteout', '/d'), 'and d')
    t.ok(ev('copy-up', '/d'), 'after copying d up')
    t.equal(ev('opaque', '/d')?.as, dialect === 'aufs' ? '.wh..wh..opq' : 'xattr overlay.opaque=y', 'the new d is opaque')
    const mv = ev('rename', '/mv-me')
    t.equal(mv?.to, '/moved')
    t.equal(mv?.from?.layer, 1, 'renamed from the lower branch')
    t.equal(mv?.bytes, 'moving\n'.length, 'its copy-up\'s bytes')
    t.ok(ev('copy-up', '/mv-me'), 'the rename copied up first')
    t.ok(ev('whiteout', '/mv-me'), 'and left a whiteout')
    t.notOk(lines.some(l => l.path === '/own.txt'), 'nothing traced for an untouched file')

    // --- stats, against the trace
    const s = json<{
      copyUps: number, bytesCopied: number, whiteouts: number, opaques: number, renames: number,
      requests: { total: number, byKind: Record<string, number> },
      dentryCache: { hits: number, misses: number, negativeHits: number, size: number }
    }>(['stats', '--json', mnt])
    const count = (e: string): number => lines.filter(l => l.event === e).length
    t.equal(s.copyUps, count('copy-up'), 'copy-ups: as many as traced')
    t.equal(s.bytesCopied, lines.filter(l => l.event === 'copy-up').reduce((n, l) => n + (l.bytes ?? 0), 0), 'bytes copied: the traced sum')
    t.ok(s.bytesCopied >= BIG)
    t.equal(s.whiteouts, count('whiteout'), 'whiteouts: as many as traced')
    t.equal(s.whiteouts, 4)
    t.equal(s.opaques, 1)
    t.equal(s.renames, 1)
    t.ok(s.requests.total > before.requests.total, 'requests grow')
    t.ok((s.requests.byKind.LOOKUP ?? 0) > 0, 'LOOKUP requests counted')
    t.equal(s.requests.byKind.UNLINK, 2, 'two unlinks (gone.txt, d/old)')
    t.ok((s.requests.byKind.RMDIR ?? 0) >= 1, 'RMDIR counted (rm -r may try it before emptying)')
    t.equal(s.requests.byKind.MKDIR, 1)
    t.ok(s.dentryCache.misses > 0 && s.dentryCache.hits > 0, 'dentry cache hits and misses')
    t.ok(s.dentryCache.size > 0)
    // A missing name: the first lookup a miss, the next (kernel caching aside) a negative hit.
    const neg0 = s.dentryCache.negativeHits
    for (let i = 0; i < 3; i++) fs.existsSync(path.join(mnt, 'gone.txt'))
    t.ok(json<typeof s>(['stats', '--json', mnt]).dentryCache.negativeHits >= neg0, 'negative hits never go down')

    // --- inspect, against the disk
    type Insp = {
      path: string, exists: boolean, copiedUp: boolean, copiedFrom?: { layer: number }, servedBy?: { layer: number, branch: string }
      why?: string, type?: string
      walk: Array<{ layer: number, branch: string, holds: string, role: string, whiteoutForm?: string, opaque?: boolean, consulted: boolean }>
      entries?: Array<{ name: string, type: string, layer: number, copiedUp?: boolean }>
      whiteouts?: Array<{ name: string, layer: number }>
    }
    const bi = json<Insp>(['inspect', '--json', path.join(mnt, 'big.bin')])
    t.equal(bi.exists, true)
    t.same(bi.servedBy, { layer: 0, branch: up }, 'served by the upper branch')
    t.equal(bi.copiedUp, true, 'copied up')
    t.equal(bi.copiedFrom?.layer, 1, 'from the lower branch')
    t.same(bi.walk.map(w => [w.holds, w.role]), [['file', 'serves'], ['file', 'hidden']], 'both branches hold it, the lower one hidden')
    t.equal(bi.walk[1].consulted, false, 'the lookup stopped at the upper file')

    const gi = json<Insp>(['inspect', '--json', path.join(mnt, 'gone.txt')])
    t.equal(gi.exists, false)
    t.same([gi.walk[0].holds, gi.walk[0].role, gi.walk[0].whiteoutForm], ['whiteout', 'hides', dialect])
    t.same([gi.walk[1].holds, gi.walk[1].role], ['file', 'hidden'])
    t.match(gi.why, /whited out in layer 0/)
    t.equal(fs.existsSync(path.join(lo, 'gone.txt')), true, 'the lower file is still on disk')

    const di = json<Insp>(['inspect', '--json', path.join(mnt, 'd')])
    t.equal(di.walk[0].opaque, true, 'the new d is opaque')
    t.same(di.walk.map(w => w.role), ['serves', 'hidden'], 'the lower d is hidden by it')
    t.same(di.entries, [], 'and shows nothing of it')
    t.equal(di.copiedUp, false, 'a new directory is not a copy-up')

    const ri = json<Insp>(['inspect', '--json', mnt])
    const byName = new Map((ri.entries ?? []).map(e => [e.name, e]))
    t.same([...byName.keys()].sort(), ['big.bin', 'd', 'moved', 'own.txt'], 'the merged listing')
    t.equal(byName.get('own.txt')?.layer, 0)
    t.equal(byName.get('own.txt')?.copiedUp, undefined, 'made in the upper, not copied')
    t.equal(byName.get('big.bin')?.copiedUp, true)
    t.equal(byName.get('moved')?.copiedUp, true, 'a renamed lower file was copied up')
    const hidden = (ri.whiteouts ?? []).map(w => `${w.name}@${w.layer}`).sort()
    t.ok(hidden.includes('gone.txt@0') && hidden.includes('mv-me@0'), `the root's whiteouts: ${hidden.join(' ')}`)

    // --- the text forms, piped: plain
    const text = cli('inspect', path.join(mnt, 'big.bin'))
    t.equal(text.status, 0, text.stderr)
    t.match(text.stdout, /copied up from layer 1/)
    t.notMatch(text.stdout, /\x1b\[/, 'no colour when piped')
    const st = cli('stats', mnt)
    t.equal(st.status, 0, st.stderr)
    t.match(st.stdout, new RegExp(`copy-ups: +${s.copyUps}`))
    t.match(st.stdout, /whiteouts: +4 made, 1 opaque/)
    t.notMatch(st.stdout, /\x1b\[/)
  })
}

t.test('stats without trace (the mount served from its worker thread, when it has one)', async t => {
  const up = tmpdir(t, 'up')
  const lo = tmpdir(t, 'lo')
  fs.writeFileSync(path.join(lo, 'a'), 'abc')
  fs.writeFileSync(path.join(lo, 'b'), 'b')
  const { mnt } = withUnion(t, { branches: [up, lo] })
  fs.appendFileSync(path.join(mnt, 'a'), 'd')
  fs.unlinkSync(path.join(mnt, 'b'))
  for (let i = 0; i < 5; i++) fs.existsSync(path.join(mnt, `missing-${i}`))
  const s = json<{ copyUps: number, bytesCopied: number, whiteouts: number, dentryCache: { misses: number, hits: number }, requests: { byKind: Record<string, number> } }>(['stats', '--json', mnt])
  t.equal(s.copyUps, 1, 'the copy-up is counted')
  t.equal(s.bytesCopied, 3)
  t.equal(s.whiteouts, 1, 'the whiteout is counted')
  t.ok(s.dentryCache.misses >= 5, 'the missing names were dentry cache misses')
  t.ok((s.requests.byKind.LOOKUP ?? 0) >= 5, 'and LOOKUP requests')
  const i = json<{ copiedUp: boolean }>(['inspect', '--json', path.join(mnt, 'a')])
  t.equal(i.copiedUp, true)
})

t.test('the stats channel: only the owner gets in', async t => {
  const up = tmpdir(t, 'up')
  const lo = tmpdir(t, 'lo')
  const m = withUnion(t, { branches: [up, lo] })
  const p = channelPaths(m.mnt)
  t.equal(fs.statSync(p.dir).mode & 0o777, 0o700, 'the runtime dir is 0700')
  t.equal(fs.statSync(p.socket).mode & 0o777, 0o600, 'the socket is 0600')
  t.equal(fs.statSync(p.cookie).mode & 0o777, 0o600, 'the cookie is 0600')
  t.ok(fs.statSync(p.socket).isSocket())

  const ask = (line: string): Promise<string> => new Promise((resolve, reject) => {
    const s = net.createConnection(p.socket)
    let buf = ''
    s.setEncoding('utf8')
    s.on('connect', () => s.write(line + '\n'))
    s.on('data', (c: string) => { buf += c })
    s.on('end', () => resolve(buf))
    s.on('error', reject)
  })
  t.match(await ask(JSON.stringify({ cookie: '00'.repeat(32), op: 'stats' })), /bad cookie/, 'a wrong cookie is refused')
  t.match(await ask(JSON.stringify({ op: 'config' })), /bad cookie/, 'no cookie is refused')
  const cookie = fs.readFileSync(p.cookie, 'utf8').trim()
  t.match(await ask(JSON.stringify({ cookie, op: 'config' })), /"branches"/, 'the right cookie is answered')

  // Another user: cannot read the cookie, cannot even connect.
  // (env -u NODE_OPTIONS: tap's own hooks would try to write its files as nobody)
  const other = run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'env', '-u', 'NODE_OPTIONS', process.execPath, CLI, 'stats', m.mnt])
  t.equal(other.status, 1, 'stats as nobody fails')
  t.match(other.stderr, /only its owner \(or root\) can ask/)
  const conn = run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'env', '-u', 'NODE_OPTIONS', process.execPath, '-e',
    `require('net').createConnection(${JSON.stringify(p.socket)}).on('error', e => { console.log(e.code); process.exit(0) }).on('connect', () => { console.log('connected'); process.exit(0) })`])
  t.equal(conn.stdout.trim(), 'EACCES', 'nobody cannot connect to the socket')

  m.unmount()
  t.notOk(isMounted(m.mnt))
  t.notOk(fs.existsSync(p.socket), 'the socket is gone after unmount')
  t.notOk(fs.existsSync(p.cookie), 'the cookie is gone after unmount')
  const after = cli('stats', m.mnt)
  t.equal(after.status, 1, 'stats on an unmounted dir fails')
  t.match(after.stderr, /not inside a unionfs-ts mount/)
})

t.test('inspect and stats: bad input', async t => {
  const r = cli('inspect')
  t.equal(r.status, 1)
  t.match(r.stderr, /missing PATH/)
  t.match(cli('stats', '--bogus', '/').stderr, /unknown option '--bogus'/)
  const d = tmpdir(t, 'plain')
  const s = cli('inspect', d)
  t.equal(s.status, 1)
  t.match(s.stderr, /not inside a unionfs-ts mount/)
})
