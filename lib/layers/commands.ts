/**
 * The `layer`, `store`, `image` and `container` commands: argv in, one of
 * lib/layers/'s operations, text or a tarball out. No filesystem logic here.
 *
 * Mounting is the command line's business: cli.ts hands in `mount` (the
 * same detached-daemon path as `unionfs-ts mount`) and `unmount`, so this
 * module never loads the FUSE transport.
 *
 * Streams: a tarball is read from a file or stdin (never from a terminal)
 * and written to stdout or -o FILE (never to a terminal). Progress goes to
 * stderr only when it is a terminal (progress.ts).
 */
import * as fs from 'node:fs'
import { parseArgs } from 'node:util'
import type { MountSpec } from '../options'
import type { WhiteoutDialect } from '../union/config'
import type { Change } from './changes'
import { LayerError, oneLine } from './layer-error'
import { bytes, progress } from './progress'

export interface Mounter {
  /** Mounts as `unionfs-ts mount` does, returning once the mount is ready. */
  mount: (spec: MountSpec) => Promise<void>
  /** Unmounts as `unionfs-ts umount` does; a warning, if any. */
  unmount: (mountpoint: string) => Promise<string | undefined>
}

export const LAYERS_USAGE = `layers, images and containers:
  unionfs-ts layer apply [--whiteout aufs|overlay] LAYER.tar[.gz|.zst]|- DIR
  unionfs-ts layer diff [--lower L1[:L2...]] [-o FILE] DIR > LAYER.tar
  unionfs-ts layer changes [--lower L1[:L2...]] DIR
  unionfs-ts store [-s ROOT] create ID [--parent P]
  unionfs-ts store [-s ROOT] apply ID [LAYER.tar|-]       (stdin by default)
  unionfs-ts store [-s ROOT] mount [--ro] ID [MNT]        (MNT: ROOT/mnt/ID)
  unionfs-ts store [-s ROOT] umount ID
  unionfs-ts store [-s ROOT] diff [-o FILE] ID > LAYER.tar
  unionfs-ts store [-s ROOT] changes ID                   (A/C/D lines)
  unionfs-ts store [-s ROOT] rm ID
  unionfs-ts store [-s ROOT] exists ID | size ID | ls
  unionfs-ts image [-s ROOT] import SAVED.tar|-           (a \`docker save\` archive)
  unionfs-ts image [-s ROOT] ls
  unionfs-ts container [-s ROOT] create IMAGE NAME        (NAME-init, then NAME)
  unionfs-ts container [-s ROOT] mount NAME [MNT]
  unionfs-ts container [-s ROOT] umount NAME | rm NAME | ls
  unionfs-ts container [-s ROOT] diff [-o FILE] NAME | changes NAME

A layer tarball follows the OCI changeset rules: \`.wh.NAME\` whiteouts and
\`.wh..wh..opq\` opaque markers; gzip and zstd are recognised by content.
layer apply refuses any entry that would land outside DIR. --whiteout picks
the dialect whiteouts are written in (default aufs). layer diff needs --lower
only for directories renamed through a mount (their content is below).
The store (-s ROOT, default $UNIONFS_TS_STORE or /var/lib/unionfs-ts) keeps
the AUFS driver's layout: ROOT/diff/ID, ROOT/layers/ID, ROOT/mnt/ID.
IMAGE is NAME[:TAG] or an image id prefix.
`

const OPTIONS = {
  store: { type: 'string', short: 's' },
  parent: { type: 'string', short: 'p' },
  whiteout: { type: 'string' },
  lower: { type: 'string', short: 'l' },
  output: { type: 'string', short: 'o' },
  ro: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' }
} as const

type Values = { [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K]['type'] extends 'string' ? string : boolean }

function warnLine (msg: string): void {
  try { fs.writeSync(2, `unionfs-ts: ${msg}\n`) } catch { /* stderr gone */ }
}

/** Runs `unionfs-ts GROUP ...`; resolves to the exit status. */
export async function runLayersCommand (group: string, argv: readonly string[], mounter: Mounter): Promise<number> {
  let values: Values
  let positionals: string[]
  try {
    const parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true })
    values = parsed.values as Values
    positionals = parsed.positionals
  } catch (err) {
    warnLine(`${group}: ${oneLine(err)}`)
    return 1
  }
  if (values.help === true) {
    process.stdout.write(LAYERS_USAGE)
    return 0
  }
  const [sub, ...args] = positionals
  try {
    if (sub === undefined) throw new LayerError(`${group}: missing subcommand (try 'unionfs-ts help')`)
    switch (group) {
      case 'layer': return await layerCommand(sub, args, values)
      case 'store': return await storeCommand(sub, args, values, mounter)
      case 'image': return await imageCommand(sub, args, values)
      case 'container': return await containerCommand(sub, args, values, mounter)
    }
    throw new LayerError(`unknown command '${group}'`)
  } catch (err) {
    if (err instanceof LayerError) warnLine(err.message)
    else if ((err as { name?: string }).name === 'OptionsError') warnLine((err as Error).message)
    else warnLine(oneLine(err))
    return 1
  }
}

function want (args: string[], n: number, usage: string): void {
  if (args.length < n) throw new LayerError(`missing argument (usage: unionfs-ts ${usage})`)
  if (args.length > n) throw new LayerError(`unexpected argument '${args[n]}' (usage: unionfs-ts ${usage})`)
}

function dialect (v: string | undefined): WhiteoutDialect {
  if (v === undefined || v === 'aufs') return 'aufs'
  if (v === 'overlay') return 'overlay'
  throw new LayerError(`--whiteout ${v}: expected aufs or overlay`)
}

/** A tarball to read: FILE, or stdin for '-' or none; never a terminal. */
function input (file: string | undefined): { source: AsyncIterable<Buffer>, size?: number } {
  if (file === undefined || file === '-') {
    if (process.stdin.isTTY === true) throw new LayerError('refusing to read a tarball from a terminal (give a file or redirect stdin)')
    let size: number | undefined
    try {
      const st = fs.fstatSync(0)
      if (st.isFile()) size = st.size
    } catch { /* unknown */ }
    return { source: process.stdin, size }
  }
  let st: fs.Stats
  try {
    st = fs.statSync(file)
  } catch (err) {
    throw new LayerError(`${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : oneLine(err)}`)
  }
  if (st.isDirectory()) throw new LayerError(`${file}: is a directory, not a tarball`)
  return { source: fs.createReadStream(file), size: st.size }
}

/** Where a tarball goes: -o FILE, or stdout (never a terminal). */
function output (file: string | undefined): { out: NodeJS.WritableStream, end: boolean, finish: () => void, abort: () => void } {
  if (file !== undefined && file !== '-') {
    // Written aside and renamed into place: a failed diff leaves no half tarball.
    const tmp = `${file}.tmp.${process.pid}`
    const out = fs.createWriteStream(tmp, { mode: 0o644 })
    return { out, end: true, finish: () => fs.renameSync(tmp, file), abort: () => { out.destroy(); fs.rmSync(tmp, { force: true }) } }
  }
  if (process.stdout.isTTY === true) throw new LayerError('refusing to write a tarball to a terminal (redirect stdout or use -o FILE)')
  return { out: process.stdout, end: false, finish: () => {}, abort: () => {} }
}

async function writeDiff (label: string, file: string | undefined, run: (out: NodeJS.WritableStream, end: boolean, onBytes: (n: number) => void) => Promise<unknown>): Promise<void> {
  const o = output(file)
  const p = progress(label)
  try {
    await run(o.out, o.end, n => p.add(n))
  } catch (err) {
    o.abort()
    throw err
  } finally {
    p.stop()
  }
  o.finish()
}

function lowersOf (v: string | undefined): string[] | undefined {
  return v === undefined ? undefined : v.split(':').filter(s => s !== '')
}

function print (lines: string[]): void {
  if (lines.length > 0) process.stdout.write(lines.join('\n') + '\n')
}

/** A `changes` listing: its paths are byte strings, written as their bytes (as ls and docker diff do). */
function printChanges (changes: readonly Change[]): void {
  if (changes.length > 0) process.stdout.write(Buffer.from(changes.map(c => `${c.kind} ${c.path}\n`).join(''), 'latin1'))
}

function table (rows: string[][]): string[] {
  const widths = rows[0].map((_, i) => Math.max(...rows.map(r => r[i].length)))
  return rows.map(r => r.map((c, i) => i === r.length - 1 ? c : c.padEnd(widths[i])).join('  ').trimEnd())
}

// ---- layer ----

async function layerCommand (sub: string, args: string[], v: Values): Promise<number> {
  if (sub === 'apply') {
    want(args, 2, 'layer apply [--whiteout aufs|overlay] LAYER.tar DIR')
    const { applyLayer } = await import('./apply')
    const inp = input(args[0])
    const p = progress('applying', inp.size)
    try {
      await applyLayer(inp.source, args[1], { whiteout: dialect(v.whiteout), onRaw: n => p.add(n), warn: warnLine })
    } finally {
      p.stop()
    }
    return 0
  }
  if (sub === 'diff') {
    want(args, 1, 'layer diff [--lower L1:L2] [-o FILE] DIR')
    const { diffLayer } = await import('./diff')
    await writeDiff('writing', v.output, async (out, end, onBytes) =>
      await diffLayer(args[0], out as never, { lowers: lowersOf(v.lower), onBytes, end }))
    return 0
  }
  if (sub === 'changes') {
    want(args, 1, 'layer changes [--lower L1:L2] DIR')
    const { layerChanges } = await import('./changes')
    printChanges(await layerChanges(args[0], lowersOf(v.lower) ?? []))
    return 0
  }
  throw new LayerError(`layer: unknown subcommand '${sub}' (apply, diff, changes)`)
}

// ---- store ----

async function openStore (v: Values, create = true): Promise<import('./store').LayerStore> {
  const { LayerStore, defaultRoot } = await import('./store')
  return LayerStore.open(v.store ?? defaultRoot(), create)
}

async function storeCommand (sub: string, args: string[], v: Values, mounter: Mounter): Promise<number> {
  switch (sub) {
    case 'create': {
      want(args, 1, 'store -s ROOT create ID [--parent P]')
      ;(await openStore(v)).create(args[0], v.parent)
      return 0
    }
    case 'apply': {
      if (args.length < 1 || args.length > 2) want(args, 1, 'store -s ROOT apply ID [LAYER.tar|-]')
      const store = await openStore(v, false)
      const inp = input(args[1])
      const p = progress('applying', inp.size)
      try {
        await store.apply(args[0], inp.source, { onRaw: n => p.add(n), warn: warnLine, whiteout: dialect(v.whiteout) })
      } finally {
        p.stop()
      }
      return 0
    }
    case 'mount': {
      if (args.length < 1 || args.length > 2) want(args, 1, 'store -s ROOT mount [--ro] ID [MNT]')
      const store = await openStore(v, false)
      await mounter.mount(store.mountSpec(args[0], args[1], v.ro === true))
      return 0
    }
    case 'umount':
    case 'unmount': {
      want(args, 1, 'store -s ROOT umount ID')
      return await unmountLayer(await openStore(v, false), args[0], mounter)
    }
    case 'diff': {
      want(args, 1, 'store -s ROOT diff [-o FILE] ID')
      const store = await openStore(v, false)
      if (!store.exists(args[0])) throw new LayerError(`no such layer: ${args[0]}`)
      await writeDiff('writing', v.output, async (out, end, onBytes) => await store.diff(args[0], out as never, onBytes, end))
      return 0
    }
    case 'changes': {
      want(args, 1, 'store -s ROOT changes ID')
      const store = await openStore(v, false)
      printChanges(await store.changes(args[0]))
      return 0
    }
    case 'rm': {
      want(args, 1, 'store -s ROOT rm ID')
      ;(await openStore(v, false)).remove(args[0])
      return 0
    }
    case 'exists': {
      want(args, 1, 'store -s ROOT exists ID')
      return (await openStore(v, false)).exists(args[0]) ? 0 : 1
    }
    case 'size': {
      want(args, 1, 'store -s ROOT size ID')
      print([String((await openStore(v, false)).size(args[0]))])
      return 0
    }
    case 'ls': {
      want(args, 0, 'store -s ROOT ls')
      const store = await openStore(v, false)
      const rows = store.list().map(l => [l.id, l.parents[0] ?? '-', store.mounts(l.id)[0] ?? '-'])
      print(table([['LAYER', 'PARENT', 'MOUNTED'], ...rows]))
      return 0
    }
  }
  throw new LayerError(`store: unknown subcommand '${sub}' (create, apply, mount, umount, diff, changes, rm, exists, size, ls)`)
}

async function unmountLayer (store: import('./store').LayerStore, id: string, mounter: Mounter): Promise<number> {
  if (!store.exists(id)) throw new LayerError(`no such layer: ${id}`)
  const at = store.mounts(id)
  if (at.length === 0) throw new LayerError(`layer ${id} is not mounted`)
  for (const m of at) {
    const warning = await mounter.unmount(m)
    if (warning !== undefined) warnLine(warning)
  }
  return 0
}

// ---- image ----

async function imageCommand (sub: string, args: string[], v: Values): Promise<number> {
  if (sub === 'import' || sub === 'load') {
    if (args.length > 1) want(args, 1, 'image -s ROOT import SAVED.tar')
    const store = await openStore(v)
    const { importImage } = await import('./image')
    const inp = input(args[0])
    let p = progress('reading', inp.size)
    let phase = 1
    try {
      const res = await importImage(store, inp.source, {
        onBytes: n => p.add(n),
        onLayerTotal: total => {
          if (phase !== 1) return
          phase = 2
          p.stop()
          p = progress('importing layers', total)
        },
        warn: warnLine
      })
      p.stop()
      const lines: string[] = []
      for (const img of res.images) {
        lines.push(`${img.id}${img.repoTags.length > 0 ? ' ' + img.repoTags.join(' ') : ''}`)
      }
      lines.push(`${res.added.length} layer${res.added.length === 1 ? '' : 's'} imported, ${res.shared.length} already in the store`)
      print(lines)
    } finally {
      p.stop()
    }
    return 0
  }
  if (sub === 'ls') {
    want(args, 0, 'image -s ROOT ls')
    const store = await openStore(v)
    const { listImages } = await import('./image')
    const rows: string[][] = []
    for (const img of listImages(store)) {
      const size = bytes(img.layers.filter(l => store.exists(l)).reduce((n, l) => n + store.size(l), 0))
      const tags = img.repoTags.length > 0 ? img.repoTags : ['<none>:<none>']
      for (const t of tags) {
        const i = t.lastIndexOf(':')
        rows.push([t.slice(0, i), t.slice(i + 1), img.id.slice(7, 19), String(img.layers.length), size])
      }
    }
    print(table([['REPOSITORY', 'TAG', 'IMAGE ID', 'LAYERS', 'SIZE'], ...rows]))
    return 0
  }
  throw new LayerError(`image: unknown subcommand '${sub}' (import, ls)`)
}

// ---- container ----

async function containerCommand (sub: string, args: string[], v: Values, mounter: Mounter): Promise<number> {
  const c = await import('./container')
  switch (sub) {
    case 'create': {
      want(args, 2, 'container -s ROOT create IMAGE NAME')
      await c.createContainer(await openStore(v, false), args[0], args[1])
      return 0
    }
    case 'mount': {
      if (args.length < 1 || args.length > 2) want(args, 1, 'container -s ROOT mount NAME [MNT]')
      const store = await openStore(v, false)
      c.needContainer(store, args[0])
      await mounter.mount(store.mountSpec(args[0], args[1]))
      return 0
    }
    case 'umount':
    case 'unmount': {
      want(args, 1, 'container -s ROOT umount NAME')
      const store = await openStore(v, false)
      c.needContainer(store, args[0])
      return await unmountLayer(store, args[0], mounter)
    }
    case 'rm': {
      want(args, 1, 'container -s ROOT rm NAME')
      c.removeContainer(await openStore(v, false), args[0])
      return 0
    }
    case 'ls': {
      want(args, 0, 'container -s ROOT ls')
      const store = await openStore(v, false)
      const rows = c.listContainers(store).map(r => [r.name, r.image.slice(7, 19), store.mounts(r.name)[0] ?? '-'])
      print(table([['NAME', 'IMAGE ID', 'MOUNTED'], ...rows]))
      return 0
    }
    case 'diff': {
      want(args, 1, 'container -s ROOT diff [-o FILE] NAME')
      const store = await openStore(v, false)
      c.needContainer(store, args[0])
      await writeDiff('writing', v.output, async (out, end, onBytes) => await store.diff(args[0], out as never, onBytes, end))
      return 0
    }
    case 'changes': {
      want(args, 1, 'container -s ROOT changes NAME')
      const store = await openStore(v, false)
      c.needContainer(store, args[0])
      printChanges(await store.changes(args[0]))
      return 0
    }
  }
  throw new LayerError(`container: unknown subcommand '${sub}' (create, mount, umount, rm, ls, diff, changes)`)
}
