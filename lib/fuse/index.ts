/**
 * The FUSE transport: the kernel's /dev/fuse protocol spoken from
 * TypeScript, serving a UnionFsApi at a mountpoint.
 */
export { mountFuse } from './mount'
export type { FuseMountOptions, FuseSession, FuseStats } from './types'
