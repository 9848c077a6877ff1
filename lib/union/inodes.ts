/**
 * Inode numbers: stable for the life of a file, unique across branches.
 *
 * Branch inode numbers collide (every branch has its own inode 2, ...), so a
 * union inode number carries the branch's position in its high bits:
 * `layer * 2^40 + branch ino`, layer 0 being the top. A copied-up entry
 * records the number it had before in a private xattr (`*.unionfs-ts.origin`)
 * and keeps showing it, so st_ino is the same before and after copy-up and
 * across remounts with the same branches. Branch inode numbers of 2^40 and
 * more (rare: ext4 and tmpfs stay far below) are folded into 40 bits, which
 * could collide; the README says so.
 *
 * As with overlayfs without its index feature, copying up one name of a file
 * hard-linked inside a lower branch breaks that link.
 */
const SPAN = 2 ** 40

export function unionIno (layer: number, branchIno: number): number {
  const low = branchIno < SPAN ? branchIno : (branchIno % SPAN) ^ (Math.floor(branchIno / SPAN) % SPAN)
  return layer * SPAN + low
}

export function originXattr (ns: string): string {
  return `${ns}.unionfs-ts.origin`
}

export function decodeOrigin (value: Buffer | undefined): number | undefined {
  if (value === undefined) return undefined
  const n = Number(value.toString())
  return Number.isSafeInteger(n) && n > 0 ? n : undefined
}

export function encodeOrigin (ino: number): Buffer {
  return Buffer.from(String(ino))
}
