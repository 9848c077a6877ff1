/**
 * The state of the machine a run measures on: what it is (kernel, CPUs,
 * disk), how loaded it is right now, and whether the code under test
 * changed on disk mid-run.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { sh } from './proc'

/** What the results' header says about the machine, for `dir`'s filesystem. */
export function host (dir: string): Record<string, string> {
  const q = (cmd: string): string => { try { return sh(cmd).trim() } catch { return 'unknown' } }
  return {
    kernel: os.release(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cpus: String(os.cpus().length),
    memoryGiB: (os.totalmem() / 2 ** 30).toFixed(1),
    node: process.version,
    filesystem: q(`stat -f -c %T '${dir}'`),
    device: q(`df --output=source '${dir}' | tail -1`),
    rotational: q(`cat /sys/block/$(basename $(df --output=source '${dir}' | tail -1))/queue/rotational 2>/dev/null`)
  }
}

/** The newest modification time under a directory: tells whether the code under test changed mid-run. */
export function newestMtime (dir: string): number {
  let newest = 0
  const walk = (d: string): void => {
    let names: fs.Dirent[] = []
    try { names = fs.readdirSync(d, { withFileTypes: true }) } catch { return }
    for (const n of names) {
      const p = path.join(d, n.name)
      if (n.isDirectory()) walk(p)
      else {
        try { newest = Math.max(newest, fs.statSync(p).mtimeMs) } catch {}
      }
    }
  }
  walk(dir)
  return newest
}

export function loadAverage (): number {
  return Number(os.loadavg()[0].toFixed(2))
}

export function cpuPressure (): number | undefined {
  try {
    const m = /^some avg10=([0-9.]+)/m.exec(fs.readFileSync('/proc/pressure/cpu', 'utf8'))
    return m === null ? undefined : Number(m[1])
  } catch {
    return undefined
  }
}
