/**
 * Progress of long imports and exports, on stderr, only where a person is
 * watching: stderr is a terminal. Piped or redirected, nothing is drawn. A
 * display appears only once the command has been at work for a moment
 * (counted from its first display, so the later phases of a long import show
 * at once), and short runs stay as quiet as piped ones; it is cleared when
 * its phase ends.
 */
import * as cliProgress from 'cli-progress'

const DELAY_MS = 250

/** When this process first asked for a display. */
let firstAsked: number | undefined

export interface Progress {
  /** `n` more units done. */
  add: (n: number) => void
  /** The total, once it is known. */
  total: (n: number) => void
  stop: () => void
}

const NONE: Progress = { add: () => {}, total: () => {}, stop: () => {} }

export function bytes (n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let u = 0
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++ }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`
}

/** A byte counter labelled `label`; with a total, a bar. */
export function progress (label: string, total?: number, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (stream.isTTY !== true) return NONE
  let done = 0
  let max = total
  let bar: cliProgress.SingleBar | undefined
  const payload = (): Record<string, string> => ({ label, done: bytes(done), all: max === undefined ? '?' : bytes(max) })
  firstAsked ??= Date.now()
  const timer = setTimeout(() => {
    bar = new cliProgress.SingleBar({
      stream,
      format: max === undefined ? '{label} {done}' : '{label} [{bar}] {percentage}% {done}/{all} eta {eta_formatted}',
      hideCursor: true,
      clearOnComplete: true,
      barsize: 30,
      fps: 8
    }, cliProgress.Presets.shades_classic)
    bar.start(max ?? 0, done, payload())
  }, Math.max(0, firstAsked + DELAY_MS - Date.now()))
  timer.unref()
  return {
    add: (n) => {
      done += n
      bar?.update(done, payload())
    },
    total: (n) => {
      max = n
      bar?.setTotal(n)
    },
    stop: () => {
      clearTimeout(timer)
      bar?.stop()
    }
  }
}
