#!/usr/bin/env node
'use strict'
/**
 * Puts the mount(8) helpers of this checkout in place, or takes them away.
 *
 *   node scripts/install-helpers.js            install (npm's postinstall: `npm ci` as root)
 *   node scripts/install-helpers.js --remove   remove what an install made
 *
 * Two symlinks, both into this checkout's bin/:
 *   /sbin/mount.fuse.unionfs-ts -> bin/mount.fuse.unionfs-ts
 *       `mount -t fuse.unionfs-ts` and fstab lines: util-linux's mount(8)
 *       looks for helpers in /sbin, /sbin/fs.d and /sbin/fs only (never in
 *       /usr/local/sbin); on a usr-merged system /sbin is /usr/sbin.
 *   /usr/local/bin/unionfs-ts -> bin/unionfs-ts.js
 *       the SUBTYPE command libfuse's mount.fuse runs through /bin/sh with a
 *       PATH of the standard system directories, should it be the helper
 *       mount(8) finds (a checkout elsewhere, or fuse3's mount.fuse).
 *
 * Rules: a symlink already pointing at this checkout is left as it is (the
 * script is idempotent); a dangling symlink to a unionfs-ts bin (a checkout
 * that was removed) is replaced; anything else at those paths (a file, a
 * link to something else or to another live checkout) is never touched, and
 * is reported. --remove deletes only links that point at this checkout.
 * Without root the install does nothing and says so in one line.
 *
 * It never fails `npm ci` / `npm install` (package.json runs it as the
 * postinstall script): there, a link it cannot make is one warning line and
 * exit 0 (test/mount-helper.test.ts is what then fails). Run by hand, a link
 * it could not make (or remove) is exit 1. Note that npm runs lifecycle
 * scripts as the owner of the package directory: `npm ci` as root in a
 * checkout owned by another user installs nothing.
 *
 * UNIONFS_TS_SBIN_DIR and UNIONFS_TS_BIN_DIR replace /sbin and
 * /usr/local/bin (tests run the script against scratch directories).
 */
const fs = require('node:fs')
const path = require('node:path')

const ROOT = path.resolve(__dirname, '..')
const NAME = 'unionfs-ts'

function targets () {
  const sbin = process.env.UNIONFS_TS_SBIN_DIR || '/sbin'
  const bin = process.env.UNIONFS_TS_BIN_DIR || '/usr/local/bin'
  return [
    { link: path.join(sbin, `mount.fuse.${NAME}`), to: path.join(ROOT, 'bin', `mount.fuse.${NAME}`) },
    { link: path.join(bin, NAME), to: path.join(ROOT, 'bin', `${NAME}.js`) }
  ]
}

const say = msg => process.stdout.write(`${NAME}: ${msg}\n`)

/** What is at `link` now: 'missing', 'ours', 'stale' (ours from a removed checkout) or 'foreign'. */
function stateOf (link, to) {
  let st
  try {
    st = fs.lstatSync(link)
  } catch (err) {
    if (err.code === 'ENOENT') return { state: 'missing' }
    throw err
  }
  if (!st.isSymbolicLink()) return { state: 'foreign', why: 'not a symlink' }
  const target = fs.readlinkSync(link)
  const abs = path.resolve(path.dirname(link), target)
  if (abs === to) return { state: 'ours', target }
  if (path.basename(abs) === path.basename(to) && path.basename(path.dirname(abs)) === 'bin' && !fs.existsSync(abs)) {
    return { state: 'stale', target }
  }
  return { state: 'foreign', why: `links to ${target}` }
}

function install () {
  let failed = false
  for (const { link, to } of targets()) {
    try {
      const s = stateOf(link, to)
      if (s.state === 'ours') {
        say(`${link} already links to ${to}`)
        continue
      }
      if (s.state === 'foreign') {
        say(`left ${link} alone (${s.why}); mount -t fuse.${NAME} may not find this checkout`)
        continue
      }
      // A checkout that lost its modes (an archive without them) still runs.
      if ((fs.statSync(to).mode & 0o111) === 0) fs.chmodSync(to, 0o755)
      fs.mkdirSync(path.dirname(link), { recursive: true })
      if (s.state === 'stale') {
        // Replace in one rename, so the name is never missing.
        const tmp = `${link}.${process.pid}.tmp`
        fs.symlinkSync(to, tmp)
        fs.renameSync(tmp, link)
        say(`replaced the dangling ${link} (was -> ${s.target}) with a link to ${to}`)
      } else {
        fs.symlinkSync(to, link)
        say(`linked ${link} -> ${to}`)
      }
    } catch (err) {
      say(`could not link ${link} -> ${to}: ${err.message}`)
      failed = true
    }
  }
  return failed ? 1 : 0
}

function remove () {
  let failed = false
  for (const { link, to } of targets()) {
    try {
      const s = stateOf(link, to)
      if (s.state !== 'ours') {
        say(s.state === 'missing' ? `${link}: nothing to remove` : `left ${link} alone (not a link to this checkout)`)
        continue
      }
      fs.unlinkSync(link)
      say(`removed ${link}`)
    } catch (err) {
      say(`could not remove ${link}: ${err.message}`)
      failed = true
    }
  }
  return failed ? 1 : 0
}

function main (argv) {
  const removing = argv.includes('--remove')
  const unknown = argv.filter(a => a !== '--remove')
  if (unknown.length > 0) {
    process.stderr.write(`${NAME}: usage: node scripts/install-helpers.js [--remove]\n`)
    return 2
  }
  const testing = process.env.UNIONFS_TS_SBIN_DIR !== undefined || process.env.UNIONFS_TS_BIN_DIR !== undefined
  if (!testing && process.getuid?.() !== 0) {
    say(`not root: mount helpers not ${removing ? 'removed' : 'installed'} (as root: node ${path.join('scripts', 'install-helpers.js')}${removing ? ' --remove' : ''})`)
    return 0
  }
  return removing ? remove() : install()
}

/** Under npm's install lifecycle, nothing this script meets may fail the install. */
const underNpm = process.env.npm_lifecycle_event === 'postinstall' || process.env.npm_lifecycle_event === 'install'
try {
  const code = main(process.argv.slice(2))
  if (code !== 0 && underNpm) say('warning: the mount helpers are not (all) in place; see the lines above')
  process.exitCode = underNpm ? 0 : code
} catch (err) {
  say(`${underNpm ? 'warning: ' : ''}could not check the mount helpers: ${err.message}`)
  process.exitCode = underNpm ? 0 : 1
}
