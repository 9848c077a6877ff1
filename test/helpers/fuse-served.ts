/**
 * A UnionFsApi served over FUSE by a forked child (test/fixtures/fuse-serve.ts):
 * the serving process never touches its own mount, this one does the I/O.
 * The child reports over IPC (ready, error, stats, closed); the mount is
 * undone and the child ended in teardown, even when a test fails.
 */
import type { Test } from 'tap'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { fork, spawnSync, type ChildProcess } from 'node:child_process'
import type { FuseStats } from '../../lib/fuse/types'
import { isMounted } from './mount'

const SERVE = path.join(__dirname, '..', 'fixtures', 'fuse-serve.ts')

export interface Message { type: string, [k: string]: unknown }

/** The fixture's I/O counters and the session's own. */
export interface ServedStats { io: Record<string, number>, fuse: FuseStats }

function execArgvForTs (): string[] {
  const ts = process.execArgv.filter((a) => a.includes('typescript'))
  return ts.length > 0 ? ts : ['--import=@tapjs/typescript/import']
}

export function exited (child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null
}

export function waitExit (child: ChildProcess, ms: number): Promise<boolean> {
  if (exited(child)) return Promise.resolve(true)
  return new Promise((resolve) => {
    const timer = setTimeout(() => { resolve(false) }, ms)
    child.once('exit', () => { clearTimeout(timer); resolve(true) })
  })
}

/** Forks the fixture serving `root` on `mnt`; its stderr goes to `stderr` (ours by default). */
export function forkServer (root: string, mnt: string, opts: object, stderr: 'inherit' | 'ignore' | number = 'inherit'): ChildProcess {
  return fork(SERVE, [root, mnt, JSON.stringify(opts)], {
    execArgv: execArgvForTs(),
    stdio: ['ignore', 'inherit', stderr, 'ipc']
  })
}

function readTail (file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').slice(-4000)
  } catch (err) {
    return String(err)
  }
}

export class Served {
  private readonly inbox: Message[] = []
  private waiters: Array<() => void> = []

  /** `logFile`: where the child's stderr goes, when not to ours. */
  constructor (readonly child: ChildProcess, readonly root: string, readonly mnt: string, readonly logFile?: string) {
    child.on('message', (m: Message) => {
      this.inbox.push(m)
      for (const w of this.waiters.splice(0)) w()
    })
    child.on('exit', () => { for (const w of this.waiters.splice(0)) w() })
  }

  /** The next message of one of `types` (earlier messages of other types are dropped). */
  async next (types: string[], ms = 20000): Promise<Message> {
    const deadline = Date.now() + ms
    for (;;) {
      const i = this.inbox.findIndex((m) => types.includes(m.type))
      if (i >= 0) return this.inbox.splice(i, 1)[0]
      if (exited(this.child)) throw new Error(`server exited (${String(this.child.exitCode)}) before sending ${types.join('/')}`)
      if (Date.now() > deadline) throw new Error(`no ${types.join('/')} from the server in ${ms} ms`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, deadline - Date.now())
        this.waiters.push(() => { clearTimeout(timer); resolve() })
      })
    }
  }

  async ask (cmd: object, reply: string): Promise<Message> {
    this.child.send(cmd)
    return await this.next([reply, 'error'])
  }

  async stats (): Promise<ServedStats> {
    return await this.ask({ cmd: 'stats' }, 'stats') as unknown as ServedStats
  }

  /** The child's stderr so far (debug mounts log every request); '' when it went to ours. */
  log (): string {
    return this.logFile === undefined ? '' : fs.readFileSync(this.logFile, 'utf8')
  }

  m (p: string): string { return path.join(this.mnt, p) }
  r (p: string): string { return path.join(this.root, p) }
}

/**
 * Mounts a passthrough of a fresh scratch dir (`opts` go to the fixture as
 * JSON) and resolves once it is live. `logToFile`: the child's stderr goes
 * to a file (Served.log) instead of ours.
 */
export async function serve (tt: Test, opts: object = {}, logToFile = false): Promise<Served> {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'unionfs-ts-fuse-'))
  const root = path.join(base, 'root')
  const mnt = path.join(base, 'mnt')
  fs.mkdirSync(root)
  fs.mkdirSync(mnt)
  const logFile = logToFile ? path.join(base, 'log') : undefined
  const log = logFile === undefined ? 'inherit' : fs.openSync(logFile, 'w')
  const child = forkServer(root, mnt, opts, log)
  if (typeof log === 'number') fs.closeSync(log)
  tt.teardown(async () => {
    if (!tt.passing()) {
      // What the server said before the failure goes with the base directory.
      const said = logFile === undefined ? '(on stderr)' : readTail(logFile)
      process.stderr.write(`fuse-serve on ${mnt} (exit ${String(child.exitCode ?? child.signalCode)}), its log:\n${said}\n`)
    }
    if (isMounted(mnt)) spawnSync('umount', [mnt])
    if (isMounted(mnt)) spawnSync('umount', ['-l', mnt])
    if (!await waitExit(child, 5000) && child.pid !== undefined) {
      process.kill(child.pid, 'SIGKILL')
      await waitExit(child, 5000)
    }
    if (!isMounted(mnt)) fs.rmSync(base, { recursive: true, force: true })
  })
  const s = new Served(child, root, mnt, logFile)
  const first = await s.next(['ready', 'error'])
  if (first.type !== 'ready') throw new Error(`mount failed: ${String(first.message)}`)
  return s
}
