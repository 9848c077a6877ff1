/**
 * The stats channel: how `unionfs-ts stats` and `inspect` reach a running
 * mount's daemon. Only the mount's owner (and root) can.
 *
 * The daemon listens on a unix socket next to its pid file, in the runtime
 * directory (`/run/unionfs-ts/` as root, `$XDG_RUNTIME_DIR/unionfs-ts/`
 * otherwise), named after the mountpoint: `<key>.sock`. Access is checked
 * three times:
 *  - the directory must be the daemon's uid's and mode 0700 (no group or
 *    other bits), not a symlink; otherwise the channel is not opened;
 *  - the socket is mode 0600 (connecting needs write permission on it);
 *  - the peer is checked with a cookie: Node cannot read SO_PEERCRED
 *    without native code, so the daemon writes 32 random bytes to
 *    `<key>.cookie` (mode 0600, same directory) and answers only a request
 *    that carries them, which only a process that can read the owner's
 *    0600 files can do.
 *
 * Protocol: one JSON line in (`{"cookie": HEX, "op": "stats"|"config"}`),
 * one JSON line out (the answer, or `{"error": MESSAGE}`), then the daemon
 * closes the connection. Read-only: nothing sent here changes the mount.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto'
import * as fs from 'node:fs'
import * as net from 'node:net'
import * as os from 'node:os'
import * as path from 'node:path'
import { pidDir, pidFile } from '../pid-files'
import { mountAt } from '../mountinfo'

const MAX_REQUEST = 4096

export interface ChannelPaths {
  dir: string
  socket: string
  cookie: string
}

export function channelPaths (mountpoint: string): ChannelPaths {
  const base = pidFile(mountpoint).replace(/\.pid$/, '')
  return { dir: pidDir(), socket: `${base}.sock`, cookie: `${base}.cookie` }
}

/** The uid a FUSE mount belongs to (its `user_id=`), from /proc/self/mountinfo. */
export function mountOwner (mountpoint: string): number | undefined {
  const m = /(?:^|,)user_id=([0-9]+)/.exec(mountAt(mountpoint)?.superOptions ?? '')
  return m === null ? undefined : Number(m[1])
}

/**
 * Where the channel of `mountpoint` may be: this user's runtime dir; for
 * root asking about another user's mount, that user's (XDG_RUNTIME_DIR
 * is /run/user/UID on systemd machines, else the temp dir fallback).
 */
function candidates (mountpoint: string): ChannelPaths[] {
  const own = channelPaths(mountpoint)
  const owner = mountOwner(mountpoint)
  const me = process.getuid?.() ?? -1
  if (me !== 0 || owner === undefined || owner === 0) return [own]
  const name = path.basename(own.socket, '.sock')
  return [own, ...[`/run/user/${owner}/unionfs-ts`, path.join(os.tmpdir(), `unionfs-ts-${owner}`)].map(dir => ({
    dir, socket: path.join(dir, `${name}.sock`), cookie: path.join(dir, `${name}.cookie`)
  }))]
}

export type Handler = (op: string) => unknown

export interface Channel {
  readonly paths: ChannelPaths
  close: () => void
}

/** Is `dir` the owner's alone (0700, ours, a real directory)? The reason when not. */
function privateDirProblem (dir: string): string | undefined {
  const st = fs.lstatSync(dir)
  if (!st.isDirectory()) return `${dir} is not a directory`
  const uid = process.getuid?.() ?? -1
  if (st.uid !== uid) return `${dir} belongs to uid ${st.uid}, not ${uid}`
  if ((st.mode & 0o077) !== 0) return `${dir} has mode ${(st.mode & 0o777).toString(8)}, not 700`
  return undefined
}

/** Open the channel for `mountpoint`; `handle` answers each op (throw for an unknown one). */
export async function openChannel (mountpoint: string, handle: Handler): Promise<Channel> {
  const paths = channelPaths(mountpoint)
  fs.mkdirSync(paths.dir, { recursive: true, mode: 0o700 })
  const problem = privateDirProblem(paths.dir)
  if (problem !== undefined) throw new Error(`not opening the stats channel: ${problem}`)
  const cookie = randomBytes(32)
  const cookieHex = cookie.toString('hex')
  fs.rmSync(paths.cookie, { force: true })
  fs.writeFileSync(paths.cookie, cookieHex + '\n', { mode: 0o600, flag: 'wx' })
  fs.rmSync(paths.socket, { force: true })

  const server = net.createServer({ allowHalfOpen: false }, sock => {
    let buf = ''
    let answered = false
    sock.setEncoding('utf8')
    sock.setTimeout(5000, () => sock.destroy())
    sock.on('error', () => sock.destroy())
    sock.on('data', (chunk: string) => {
      if (answered) return
      buf += chunk
      if (buf.length > MAX_REQUEST) { sock.destroy(); return }
      const nl = buf.indexOf('\n')
      if (nl < 0) return
      answered = true
      sock.end(JSON.stringify(answer(buf.slice(0, nl))) + '\n')
    })
  })
  const answer = (line: string): unknown => {
    let req: { cookie?: unknown, op?: unknown }
    try { req = JSON.parse(line) as typeof req } catch { return { error: 'bad request' } }
    const given = typeof req.cookie === 'string' && /^[0-9a-f]{64}$/.test(req.cookie) ? Buffer.from(req.cookie, 'hex') : undefined
    if (given === undefined || !timingSafeEqual(given, cookie)) return { error: 'permission denied (bad cookie)' }
    try {
      return handle(String(req.op))
    } catch (err) {
      return { error: err instanceof Error ? err.message : String(err) }
    }
  }
  // The daemon runs with umask 0: the socket would be born 0777. The
  // directory (0700) keeps others out until the chmod below.
  const old = process.umask(0o177)
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(paths.socket, () => { server.off('error', reject); resolve() })
    })
  } finally {
    process.umask(old)
  }
  fs.chmodSync(paths.socket, 0o600)
  server.unref()
  return {
    paths,
    close: () => {
      server.close()
      // Only our own files: a newer daemon on the same mountpoint may own them by now.
      try {
        if (fs.readFileSync(paths.cookie, 'utf8').trim() === cookieHex) {
          fs.rmSync(paths.cookie, { force: true })
          fs.rmSync(paths.socket, { force: true })
        }
      } catch {}
    }
  }
}

/** Ask the daemon serving `mountpoint` (its real path) for `op`. Throws a one-line Error. */
export async function ask (mountpoint: string, op: string, timeoutMs = 5000): Promise<unknown> {
  const owner = mountOwner(mountpoint)
  const me = process.getuid?.() ?? -1
  if (owner !== undefined && me !== 0 && owner !== me) {
    throw new Error(`${mountpoint}: the mount belongs to uid ${owner}; only its owner (or root) can ask its daemon`)
  }
  const tries = candidates(mountpoint)
  let paths = tries[0]
  let cookie: string | undefined
  for (const p of tries) {
    try {
      cookie = fs.readFileSync(p.cookie, 'utf8').trim()
      paths = p
      break
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'EACCES') throw new Error(`${mountpoint}: only the mount's owner (or root) can ask its daemon`)
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw new Error(`${mountpoint}: ${(err as Error).message}`)
    }
  }
  if (cookie === undefined) throw new Error(`${mountpoint}: its daemon has no stats channel (${paths.cookie} is missing; an older daemon?)`)
  const line = await new Promise<string>((resolve, reject) => {
    const sock = net.createConnection(paths.socket)
    let buf = ''
    sock.setEncoding('utf8')
    sock.setTimeout(timeoutMs, () => { sock.destroy(); reject(new Error(`${mountpoint}: its daemon did not answer within ${timeoutMs} ms`)) })
    sock.on('connect', () => sock.write(JSON.stringify({ cookie, op }) + '\n'))
    sock.on('data', (c: string) => { buf += c })
    sock.on('end', () => resolve(buf))
    sock.on('error', err => reject(new Error(`${mountpoint}: cannot reach its daemon: ${err.message}`)))
  })
  let reply: unknown
  try { reply = JSON.parse(line) } catch { throw new Error(`${mountpoint}: unreadable answer from its daemon`) }
  if (typeof reply === 'object' && reply !== null && 'error' in reply) {
    throw new Error(`${mountpoint}: ${String((reply as { error: unknown }).error)}`)
  }
  return reply
}
