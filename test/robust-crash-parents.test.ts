/**
 * Ring 3, crashes: SIGKILL just before each changing system call of a
 * copy-up whose three missing parents (one merged from two branches) are
 * copied up first; see helpers/robust-copyup-crash.ts for what is checked
 * after each crash and remount.
 */
import t from 'tap'
import { copyUpCrashes } from './helpers/robust-copyup-crash'

copyUpCrashes(t, /^setxattr/)
