/** True if `p` resolves within `ms` (its rejection passes through; the timer keeps no process alive). */
export async function settles (p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => { resolve(false) }, ms)
    timer.unref()
  })
  try {
    return await Promise.race([p.then(() => true), late])
  } finally {
    clearTimeout(timer)
  }
}
