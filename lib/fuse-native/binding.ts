/**
 * Loading fuse-native (pinned at 2.2.6) and naming the parts of it this
 * backend relies on.
 *
 * libfuse.so.2. fuse-native's addon (prebuilt, or built from source by its
 * install script) lists `libfuse.so.2` as a needed library and carries no
 * RPATH or RUNPATH, so the dynamic linker looks for it only in the system's
 * directories, where a fresh machine has none. The package ships the
 * library itself, though: a `libfuse.so` (libfuse 2.9.9) whose soname is
 * `libfuse.so.2` sits next to the addon (prebuilds/linux-<arch>/ or
 * build/Release/), and fuse-shared-library-linux has another copy. glibc
 * satisfies a needed library from an object already loaded under that
 * soname, so we load the shipped file by absolute path before the addon.
 * `process.dlopen` does the loading; it then reports that the file is no
 * Node addon and dlcloses it, so the flags carry RTLD_NODELETE, which keeps
 * the library mapped through that dlclose. Node does not export
 * RTLD_NODELETE in os.constants.dlopen: its value, 0x1000, is glibc's on
 * every Linux architecture (<bits/dlfcn.h>; musl's is the same).
 *
 * Rejected: LD_LIBRARY_PATH only works when set before the process starts
 * (the daemon would have to re-exec itself); a `libfuse.so.2` symlink made
 * at install time would have to go into a system directory, since the addon
 * has no RPATH to point anywhere else; Debian's libfuse2 would need apt-get.
 * The preload needs nothing beyond `npm ci`, and a machine that has libfuse2
 * installed still gets the shipped copy, the one the addon was built with.
 *
 * Internals. The public callback API of fuse-native loses information
 * (see ops.ts), so the backend replaces the per-op glue of its `Fuse` class
 * (`_op_<name>`, which receives the native reply function `signal`), its
 * libfuse option string (`_fuseOptions`); its close is never called (it
 * would run `fusermount -uz`, absent on a fresh machine). `FuseInternals` lists
 * exactly what is used; the exact version pin in package.json is what makes
 * relying on them safe.
 */
import * as os from 'node:os'
import * as path from 'node:path'

/** glibc's RTLD_NODELETE (see the header). */
const RTLD_NODELETE = 0x1000

/** The reply function fuse-native hands each `_op_<name>`: result, then the op's reply values. */
export type Signal = (res: number, ...reply: unknown[]) => void

/** What the backend touches on a `Fuse` instance. */
export interface FuseInternals {
  /** The resolved mountpoint. */
  readonly mnt: string
  /** The native fuse_thread_t, allocated when mounting. */
  readonly _thread: Buffer | null
  /** Mounts; the callback runs once the kernel sent INIT, or with the error. */
  mount: (cb: (err: Error | null) => void) => void
  _fuseOptions: () => string
  [op: `_op_${string}`]: (signal: Signal, ...args: any[]) => void
}

export interface FuseConstructor {
  new (mnt: string, ops: Record<string, unknown>, opts: { timeout: false }): FuseInternals
}

export interface NativeBinding {
  /** Unreferences the mount's libuv handle so the event loop can end. */
  fuse_native_unmount: (mnt: string, thread: Buffer) => void
}

export interface FuseNative {
  Fuse: FuseConstructor
  binding: NativeBinding
  /** The libfuse file that was preloaded. */
  libfuse: string
}

let loaded: FuseNative | undefined

function describe (err: unknown): string {
  return err instanceof Error ? err.message.split('\n')[0] : String(err)
}

/** Loads fuse-native once (libfuse first); throws one readable Error when it cannot. */
export function loadFuseNative (): FuseNative {
  if (loaded !== undefined) return loaded
  let dir: string
  try {
    dir = path.dirname(require.resolve('fuse-native/package.json'))
  } catch {
    throw new Error('the fuse-native backend needs the fuse-native package, which is not installed ' +
      '(npm i fuse-native@2.2.6)')
  }
  const from = { paths: [dir] }
  const nodeGypBuild = require(require.resolve('node-gyp-build', from)) as { path: (d: string) => string }
  let addon: string
  try {
    addon = nodeGypBuild.path(dir)
  } catch (err) {
    throw new Error(`fuse-native has no addon for this platform: ${describe(err)}`)
  }
  const candidates = [path.join(path.dirname(addon), 'libfuse.so')]
  try {
    candidates.push((require(require.resolve('fuse-shared-library', from)) as { lib: string }).lib)
  } catch {
    // only a second choice
  }

  const problems: string[] = []
  let libfuse: string | undefined
  for (const file of candidates) {
    try {
      process.dlopen({ exports: {} }, file, os.constants.dlopen.RTLD_NOW | RTLD_NODELETE)
    } catch (err) {
      // Expected: "did not self-register" once dlopen itself succeeded.
      if (!/self-register/.test(describe(err))) {
        problems.push(`${file}: ${describe(err)}`)
        continue
      }
    }
    libfuse = file
    break
  }

  let Fuse: FuseConstructor
  try {
    Fuse = require(dir) as FuseConstructor
  } catch (err) {
    throw new Error(`cannot load fuse-native from ${dir}: ${describe(err)}` +
      (problems.length > 0 ? `; preloading libfuse failed: ${problems.join('; ')}` : ''))
  }
  // The same module node-gyp-build loaded for fuse-native (require's cache).
  const binding = require(addon) as NativeBinding
  loaded = { Fuse, binding, libfuse: libfuse ?? '(the system\'s)' }
  return loaded
}
