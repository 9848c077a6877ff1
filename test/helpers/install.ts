/**
 * The mount(8) helpers for tests that go through mount(8).
 *
 * useHelpers(t) makes /sbin/mount.fuse.unionfs-ts and /usr/local/bin/unionfs-ts
 * lead to this checkout for the length of the test and puts back exactly what
 * was there before, in teardown, even when the test fails:
 * - already a link to this checkout (what `npm ci` as root leaves): untouched;
 * - missing: linked, and the link removed again;
 * - a symlink elsewhere (another checkout): swapped for ours with one
 *   rename, and the old link put back the same way;
 * - anything else (a file someone installed): never touched; the test fails.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { spawnSync } from 'node:child_process'
import { ROOT } from './mount'

export const INSTALL_SCRIPT = path.join(ROOT, 'scripts', 'install-helpers.js')
export const HELPER = path.join(ROOT, 'bin', 'mount.fuse.unionfs-ts')
export const CLI = path.join(ROOT, 'bin', 'unionfs-ts.js')
/** Where the install puts the links, and what they lead to. */
export const LINKS: ReadonlyArray<readonly [link: string, to: string]> = [
  ['/sbin/mount.fuse.unionfs-ts', HELPER],
  ['/usr/local/bin/unionfs-ts', CLI]
]

export interface ScriptResult { status: number | null, stdout: string, stderr: string, lines: string[] }

/** Runs the install script; `env` adds to (or overrides) the environment. */
export function installScript (env: Record<string, string>, ...args: string[]): ScriptResult {
  const r = spawnSync(process.execPath, [INSTALL_SCRIPT, ...args], {
    encoding: 'utf8', timeout: 30_000, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe']
  })
  const stdout = r.stdout ?? ''
  return { status: r.status, stdout, stderr: r.stderr ?? '', lines: stdout.split('\n').filter(Boolean) }
}

function leadsTo (link: string, to: string): boolean {
  try { return fs.realpathSync(link) === fs.realpathSync(to) } catch { return false }
}

/** Points `link` at `target` in one step (a new link renamed over the name). */
function relink (link: string, target: string): void {
  const tmp = `${link}.test-${process.pid}.tmp`
  fs.rmSync(tmp, { force: true })
  fs.symlinkSync(target, tmp)
  fs.renameSync(tmp, link)
}

/**
 * Makes the helpers lead to this checkout until the test ends. Returns what
 * it had to do (for a comment), or throws when a helper path holds
 * something it must not touch.
 */
export function useHelpers (t: { teardown: (fn: () => void) => void }): string[] {
  const did: string[] = []
  for (const [link, to] of LINKS) {
    if (leadsTo(link, to)) continue
    let old: string | undefined
    try {
      const st = fs.lstatSync(link)
      if (!st.isSymbolicLink()) throw new Error(`${link} is not a symlink (someone else's helper): left alone`)
      old = fs.readlinkSync(link)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
    fs.mkdirSync(path.dirname(link), { recursive: true })
    relink(link, to)
    did.push(old === undefined ? `linked ${link} for the test` : `pointed ${link} (-> ${old}) at this checkout for the test`)
    t.teardown(() => {
      // Only undo our own link: someone may have changed it since.
      let now: string | undefined
      try { now = fs.readlinkSync(link) } catch {}
      if (now !== to) return
      if (old === undefined) fs.unlinkSync(link)
      else relink(link, old)
    })
  }
  return did
}
