/**
 * What is mounted where: this process's mount namespace as
 * /proc/self/mountinfo lists it.
 */
import * as fs from 'node:fs'

/** Undo the octal escapes /proc/self/mountinfo puts in paths (\040 for space, ...). */
function unmangle (s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))
}

export interface MountInfo {
  /** MAJOR:MINOR of the mounted filesystem. */
  device: string
  mountpoint: string
  fstype: string
  source: string
  /** The filesystem's own options (for FUSE: user_id=, group_id=, ...). */
  superOptions: string
}

/** The mounts of this process's namespace, in mount order. */
export function readMountInfo (): MountInfo[] {
  let text: string
  try {
    text = fs.readFileSync('/proc/self/mountinfo', 'utf8')
  } catch {
    return []
  }
  const out: MountInfo[] = []
  for (const line of text.split('\n')) {
    if (line === '') continue
    const fields = line.split(' ')
    const dash = fields.indexOf('-')
    if (dash < 0 || fields.length < 5) continue
    out.push({
      device: fields[2],
      mountpoint: unmangle(fields[4]),
      fstype: fields[dash + 1] ?? '',
      source: unmangle(fields[dash + 2] ?? ''),
      superOptions: fields[dash + 3] ?? ''
    })
  }
  return out
}

/** The mount on top at `mountpoint` (the last one mounted there), if any. */
export function mountAt (mountpoint: string): MountInfo | undefined {
  return readMountInfo().filter(m => m.mountpoint === mountpoint).at(-1)
}
