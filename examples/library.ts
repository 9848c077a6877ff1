// The library API: mount, inspect and unmount from TypeScript.
//
//   npm ci                                  (compiles this file to dist/examples/)
//   sudo node dist/examples/library.js
//
// It imports the project's own lib/; in your project, `import { mount,
// inspect, stats, formatInspection } from 'unionfs-ts'` gives the same.
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { mount, inspect, stats, formatInspection, type MountHandle } from '../lib'

async function main () {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'unionfs-ts-example.'))
  const upper = path.join(work, 'upper')
  const lower = path.join(work, 'lower')
  const mnt = path.join(work, 'mnt')
  for (const d of [upper, path.join(lower, 'etc'), mnt]) fs.mkdirSync(d, { recursive: true })
  fs.writeFileSync(path.join(lower, 'etc', 'motd'), 'welcome\n')

  let m: MountHandle | undefined
  try {
    // Branches top first: the top one is writable unless marked { mode: 'ro' }.
    m = await mount({ branches: [upper, lower], mountpoint: mnt })
    console.log(`mounted ${m.mountpoint} (daemon pid ${m.pid})`)

    // Reading a lower file copies nothing...
    console.log('before:', JSON.stringify(fs.readFileSync(path.join(mnt, 'etc/motd'), 'utf8')))
    let r = await inspect(path.join(mnt, 'etc/motd'))
    console.log(`served by layer ${r.servedBy?.layer}, copied up: ${r.copiedUp}`)

    // ...writing to it copies it up into the writable branch first.
    fs.appendFileSync(path.join(mnt, 'etc/motd'), 'have a nice day\n')
    r = await inspect(path.join(mnt, 'etc/motd'))
    console.log(`served by layer ${r.servedBy?.layer}, copied up: ${r.copiedUp} (from layer ${r.copiedFrom?.layer})`)
    process.stdout.write(formatInspection(r))

    const s = await stats(mnt)
    console.log(`copy-ups: ${s.copyUps}, bytes copied: ${s.bytesCopied}, whiteouts: ${s.whiteouts}`)
    console.log('lower branch untouched:', JSON.stringify(fs.readFileSync(path.join(lower, 'etc/motd'), 'utf8')))
    console.log('upper branch now holds:', JSON.stringify(fs.readFileSync(path.join(upper, 'etc/motd'), 'utf8')))
  } finally {
    // Unmount even when something above failed, then clean up.
    if (m !== undefined) await m.unmount()
    fs.rmSync(work, { recursive: true, force: true })
  }
  console.log('unmounted')
}

main().catch((err: unknown) => {
  console.error(err)
  process.exitCode = 1
})
