/**
 * The system-call side of the workloads that no standard tool does alone,
 * run as its own process: never inside a process that serves a mount (a
 * synchronous call into one's own FUSE mount waits for the thread that must
 * answer it).
 *
 *   node worker.js lstat      ROOT LIST     lstat each listed path (missing ones count as failed)
 *   node worker.js readdir    ROOT REL      one full readdir of ROOT/REL
 *   node worker.js chmod      ROOT LIST     chmod 0600 each
 *   node worker.js touch      ROOT LIST     set atime and mtime to now on each
 *   node worker.js create     ROOT LIST     create each as a new empty file (O_CREAT|O_EXCL)
 *   node worker.js unlink     ROOT LIST     unlink each
 *   node worker.js firstwrite ROOT REL HEAD write HEAD's bytes at offset 0 of an existing file
 *
 * The list is read and the process is warm before the clock starts, so the
 * time is the calls alone, without Node's start-up. One JSON line on stdout:
 * {"seconds", "ok", "failed", "firstError"}. Calls are synchronous and one
 * at a time, like a shell loop or a single-threaded program.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'

interface Result {
  seconds: number
  ok: number
  failed: number
  firstError?: string
}

function readList (file: string): string[] {
  return fs.readFileSync(file, 'utf8').split('\n').filter(s => s !== '')
}

function each (root: string, list: string[], call: (p: string) => boolean): Result {
  const paths = list.map(rel => path.join(root, rel))
  let ok = 0
  let failed = 0
  let firstError: string | undefined
  const t0 = process.hrtime.bigint()
  for (const p of paths) {
    try {
      if (call(p)) ok++
      else failed++
    } catch (err) {
      failed++
      firstError ??= `${(err as NodeJS.ErrnoException).code ?? String(err)} ${p}`
    }
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  return { seconds, ok, failed, ...(firstError !== undefined ? { firstError } : {}) }
}

function timed (call: () => number): Result {
  const t0 = process.hrtime.bigint()
  try {
    const ok = call()
    return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, ok, failed: 0 }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err)
    return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, ok: 0, failed: 1, firstError: code }
  }
}

function main (argv: string[]): number {
  const [op, root, arg, extra] = argv
  if (op === undefined || root === undefined || arg === undefined) {
    process.stderr.write('usage: worker OP ROOT LIST|REL [HEAD]\n')
    return 2
  }
  let r: Result
  switch (op) {
    case 'lstat':
      r = each(root, readList(arg), p => fs.lstatSync(p, { throwIfNoEntry: false }) !== undefined)
      break
    case 'readdir':
      r = timed(() => fs.readdirSync(path.join(root, arg)).length)
      break
    case 'chmod':
      r = each(root, readList(arg), p => { fs.chmodSync(p, 0o600); return true })
      break
    case 'touch': {
      const now = new Date()
      r = each(root, readList(arg), p => { fs.utimesSync(p, now, now); return true })
      break
    }
    case 'create':
      r = each(root, readList(arg), p => { fs.closeSync(fs.openSync(p, 'wx', 0o644)); return true })
      break
    case 'unlink':
      r = each(root, readList(arg), p => { fs.unlinkSync(p); return true })
      break
    case 'firstwrite': {
      if (extra === undefined) throw new Error('firstwrite needs the file with the bytes to write')
      const head = fs.readFileSync(extra)
      const file = path.join(root, arg)
      r = timed(() => {
        const fd = fs.openSync(file, fs.constants.O_WRONLY)
        try {
          return fs.writeSync(fd, head, 0, head.length, 0) === head.length ? 1 : 0
        } finally {
          fs.closeSync(fd)
        }
      })
      break
    }
    default:
      process.stderr.write(`worker: unknown op '${op}'\n`)
      return 2
  }
  process.stdout.write(JSON.stringify(r) + '\n')
  return 0
}

process.exitCode = main(process.argv.slice(2))
