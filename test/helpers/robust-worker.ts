/**
 * The load test's worker, a Node program run as its own process:
 *
 *   node -e WORKER seed DIR W           write worker W's starting tree into DIR
 *   node -e WORKER run DIR W SEED MS    work in DIR for MS milliseconds
 *
 * `run` keeps a model of its subtree (file -> bytes, directories) and, for
 * MS milliseconds, picks operations at random: whole and partial reads
 * checked against the model, writes at random offsets, appends,
 * truncates, creates, renames of files (over existing ones too) and of
 * directories (the seeded ones are merged from a read-only branch),
 * unlinks, mkdir, listings checked against the model, fsync. Any
 * difference from the model or any error is recorded (nothing in this
 * workload should fail). At the end it checks the whole subtree against
 * the model and prints one JSON line: counts, errors, and the model as
 * path -> sha1 (directories as 'dir').
 */
export const WORKER = String.raw`
const fs = require('fs'), path = require('path'), crypto = require('crypto')
const [mode, dir, wArg, seedArg, msArg] = process.argv.slice(1)
const w = Number(wArg)
let s = (Number(seedArg || 1) ^ (w * 2654435761)) >>> 0
const rand = () => { s = (s + 0x6D2B79F5) >>> 0; let x = s; x = Math.imul(x ^ (x >>> 15), x | 1); x ^= x + Math.imul(x ^ (x >>> 7), x | 61); return ((x ^ (x >>> 14)) >>> 0) / 4294967296 }
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo))
const pick = a => a[Math.floor(rand() * a.length)]
const bytes = n => {
  const b = Buffer.allocUnsafe(n)
  let i = 0
  for (; i + 4 <= n; i += 4) b.writeUInt32LE((rand() * 4294967296) >>> 0, i)
  for (; i < n; i++) b[i] = (rand() * 256) | 0
  return b
}
const sha = b => crypto.createHash('sha1').update(b).digest('hex')

if (mode === 'seed') {
  // The starting tree: deterministic in W alone, so the parent never needs it.
  s = (w * 7919 + 17) >>> 0
  fs.mkdirSync(dir, { recursive: true })
  for (let i = 0; i < 16; i++) fs.writeFileSync(path.join(dir, 'f' + i), bytes(int(1, 65536)))
  for (let d = 0; d < 3; d++) {
    fs.mkdirSync(path.join(dir, 'd' + d))
    for (let i = 0; i < 5; i++) fs.writeFileSync(path.join(dir, 'd' + d, 'g' + i), bytes(int(1, 20000)))
  }
  process.exit(0)
}

const files = new Map()
const dirs = new Set([''])
const walk = rel => {
  for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const r = rel === '' ? e.name : rel + '/' + e.name
    if (e.isDirectory()) { dirs.add(r); walk(r) } else files.set(r, fs.readFileSync(path.join(dir, r)))
  }
}
walk('')
const counts = {}
const errors = []
const fail = (what) => { if (errors.length < 50) errors.push(what) }
const P = r => path.join(dir, r)
let seq = 0
const fresh = () => 'n' + w + '-' + (seq++)
const dirList = () => [...dirs]
const fileList = () => [...files.keys()]
const under = (d) => d === '' ? '' : d + '/'

function op (name, fn) {
  counts[name] = (counts[name] || 0) + 1
  try { fn() } catch (e) { fail(name + ': ' + (e.code || e.message)) }
}

const ops = [
  [20, 'read', () => {
    const f = pick(fileList()); if (f === undefined) return
    const got = fs.readFileSync(P(f))
    if (!got.equals(files.get(f))) fail('read ' + f + ': ' + got.length + ' bytes differ from the model (' + files.get(f).length + ')')
  }],
  [10, 'pread', () => {
    const f = pick(fileList()); if (f === undefined) return
    const m = files.get(f); const off = int(0, m.length + 1); const len = int(0, 70000)
    const fd = fs.openSync(P(f), 'r'); const b = Buffer.alloc(len)
    try {
      const n = fs.readSync(fd, b, 0, len, off)
      if (!b.subarray(0, n).equals(m.subarray(off, off + len))) fail('pread ' + f + ' at ' + off + ': differs')
    } finally { fs.closeSync(fd) }
  }],
  [14, 'pwrite', () => {
    const f = pick(fileList()); if (f === undefined) return
    const m = files.get(f); const off = int(0, m.length + 5000); const data = bytes(int(1, 40000))
    const fd = fs.openSync(P(f), 'r+')
    try { fs.writeSync(fd, data, 0, data.length, off) } finally { fs.closeSync(fd) }
    const n = Buffer.alloc(Math.max(m.length, off + data.length)); m.copy(n); data.copy(n, off); files.set(f, n)
  }],
  [5, 'append', () => {
    const f = pick(fileList()); if (f === undefined) return
    const data = bytes(int(1, 9000)); fs.appendFileSync(P(f), data); files.set(f, Buffer.concat([files.get(f), data]))
  }],
  [5, 'truncate', () => {
    const f = pick(fileList()); if (f === undefined) return
    const m = files.get(f); const len = int(0, m.length + 3000)
    fs.truncateSync(P(f), len)
    const n = Buffer.alloc(len); m.copy(n, 0, 0, Math.min(len, m.length)); files.set(f, n)
  }],
  [9, 'create', () => {
    const d = pick(dirList()); const r = under(d) + fresh(); const data = bytes(int(0, 30000))
    fs.writeFileSync(P(r), data, { flag: 'wx' }); files.set(r, data)
  }],
  [8, 'rename', () => {
    const f = pick(fileList()); if (f === undefined) return
    const over = rand() < 0.3 ? pick(fileList()) : undefined
    const to = over !== undefined && over !== f ? over : under(pick(dirList())) + fresh()
    fs.renameSync(P(f), P(to)); files.set(to, files.get(f)); files.delete(f)
  }],
  [6, 'unlink', () => {
    if (files.size < 5) return
    const f = pick(fileList()); fs.unlinkSync(P(f)); files.delete(f)
  }],
  [3, 'mkdir', () => {
    if (dirs.size > 12) return
    const r = under(pick(dirList())) + fresh(); fs.mkdirSync(P(r)); dirs.add(r)
  }],
  [2, 'rename-dir', () => {
    const cands = dirList().filter(d => d !== '')
    if (cands.length === 0) return
    const d = pick(cands); const parent = path.dirname(d) === '.' ? '' : path.dirname(d)
    const to = under(parent) + fresh()
    fs.renameSync(P(d), P(to))
    const moved = r => r === d ? to : r.startsWith(d + '/') ? to + r.slice(d.length) : r
    for (const r of [...dirs]) { dirs.delete(r); dirs.add(moved(r)) }
    for (const [r, b] of [...files]) { files.delete(r); files.set(moved(r), b) }
  }],
  [6, 'list', () => {
    const d = pick(dirList())
    const got = fs.readdirSync(P(d)).sort()
    const want = [...new Set([...fileList(), ...dirList()].filter(r => r !== '' && (path.dirname(r) === '.' ? '' : path.dirname(r)) === d).map(r => path.basename(r)))].sort()
    if (JSON.stringify(got) !== JSON.stringify(want)) fail('list ' + d + ': ' + JSON.stringify(got) + ' != ' + JSON.stringify(want))
  }],
  [3, 'fsync', () => {
    const f = pick(fileList()); if (f === undefined) return
    const fd = fs.openSync(P(f), 'r+'); try { fs.fsyncSync(fd) } finally { fs.closeSync(fd) }
  }],
  [2, 'stat', () => {
    const f = pick(fileList()); if (f === undefined) return
    const st = fs.statSync(P(f)); if (st.size !== files.get(f).length) fail('stat ' + f + ': size ' + st.size + ' != ' + files.get(f).length)
  }]
]
const total = ops.reduce((n, o) => n + o[0], 0)
const end = Date.now() + Number(msArg)
while (Date.now() < end) {
  let r = rand() * total
  const o = ops.find(x => (r -= x[0]) < 0) || ops[0]
  op(o[1], o[2])
}
// The whole subtree against the model.
const seenFiles = new Map(), seenDirs = new Set([''])
const walk2 = rel => {
  for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const r = rel === '' ? e.name : rel + '/' + e.name
    if (e.isDirectory()) { seenDirs.add(r); walk2(r) } else seenFiles.set(r, sha(fs.readFileSync(path.join(dir, r))))
  }
}
try { walk2('') } catch (e) { fail('final walk: ' + (e.code || e.message)) }
const model = {}
for (const d of dirs) if (d !== '') model[d] = 'dir'
for (const [f, b] of files) model[f] = sha(b)
const seen = {}
for (const d of seenDirs) if (d !== '') seen[d] = 'dir'
for (const [f, h] of seenFiles) seen[f] = h
const keys = [...new Set([...Object.keys(model), ...Object.keys(seen)])].sort()
for (const k of keys) if (model[k] !== seen[k]) fail('final: ' + k + ' is ' + (seen[k] || 'missing') + ', the model says ' + (model[k] || 'nothing'))
process.stdout.write(JSON.stringify({ counts, errors, model }) + '\n')
`
