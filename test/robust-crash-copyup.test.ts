/**
 * Ring 3, crashes: SIGKILL just before each changing system call of the
 * copy-up of a 256 MiB file (an appending write with fsync), and of a
 * truncate's copy-up; see helpers/robust-copyup-crash.ts for what is
 * checked after each crash and remount.
 */
import t from 'tap'
import { copyUpCrashes } from './helpers/robust-copyup-crash'

copyUpCrashes(t, /^(appending|truncate)/)
