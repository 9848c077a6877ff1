/**
 * The fallback FUSE transport: libfuse 2's path-based API through the
 * fuse-native package, serving a UnionFsApi at a mountpoint. Same signature
 * and session as lib/fuse's mountFuse; chosen with `-o backend=fuse-native`.
 * Slower than lib/fuse and unable to express what lib/fuse can (inode-based
 * ops, invalidation notices, caller identity, nanosecond and separate
 * atime/mtime updates): see ops.ts and mount.ts for what it gives up.
 *
 * fuse-native is loaded when the first mount is made, not when this module
 * is imported, so a machine without it can still use the default transport.
 */
export { mountFuseNative } from './mount'
export type { FuseMountOptions, FuseSession, FuseStats } from '../fuse/types'
