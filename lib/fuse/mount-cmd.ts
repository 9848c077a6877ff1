/**
 * Running mount(8) and umount(8) as child processes.
 *
 * mount gets the /dev/fuse descriptor as its fd 3 (fd=3 in the options) and
 * `-i`, so it mounts directly instead of looking for a mount.fuse helper.
 * Nothing here touches the mountpoint itself: the serving process must not,
 * or it would wait on its own replies.
 */
import { spawn } from 'node:child_process'

export interface CommandResult {
  code: number | null
  signal: NodeJS.Signals | null
  stderr: string
}

/** Runs `cmd`, with `passFd` as its fd 3 when given and `env` added to ours. */
export function runCommand (cmd: string, args: readonly string[], passFd?: number, env?: NodeJS.ProcessEnv): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const stdio: Array<'ignore' | 'pipe' | number> = ['ignore', 'pipe', 'pipe']
    if (passFd !== undefined) stdio.push(passFd)
    const child = spawn(cmd, args, { stdio, env: env === undefined ? process.env : { ...process.env, ...env } })
    let stderr = ''
    child.stdout?.resume()
    child.stderr?.setEncoding('utf8')
    child.stderr?.on('data', (s: string) => { stderr += s })
    child.on('error', reject)
    child.on('close', (code, signal) => { resolve({ code, signal, stderr: stderr.trim() }) })
  })
}

export function failure (what: string, r: CommandResult): Error {
  const why = r.stderr !== '' ? r.stderr.split('\n')[0] : r.signal !== null ? `killed by ${r.signal}` : `exit status ${String(r.code)}`
  return new Error(`${what}: ${why}`)
}

export async function mountFd (fd: number, fsname: string, mountpoint: string, fstype: string, options: string): Promise<void> {
  const r = await runCommand('mount', ['-i', '-t', fstype, '-o', options, fsname, mountpoint], fd)
  if (r.code !== 0) throw failure(`mounting ${mountpoint} failed`, r)
}

/**
 * Unmount; when busy, detach lazily (the session then ends once the last
 * user lets go). "not mounted" is success: someone unmounted it already.
 */
export async function unmountPath (mountpoint: string): Promise<void> {
  const r = await runCommand('umount', ['-i', mountpoint])
  if (r.code === 0 || /not mounted/i.test(r.stderr)) return
  if (/busy/i.test(r.stderr)) {
    const lazy = await runCommand('umount', ['-i', '-l', mountpoint])
    if (lazy.code === 0 || /not mounted/i.test(lazy.stderr)) return
    throw failure(`unmounting ${mountpoint} failed`, lazy)
  }
  throw failure(`unmounting ${mountpoint} failed`, r)
}
