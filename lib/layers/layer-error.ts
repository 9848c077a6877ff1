/**
 * The error of lib/layers/: bad input (a hostile or broken archive, an
 * unknown layer, a layer in use). The message is one line, meant for the
 * user as it is; the command line prints it and exits 1.
 */
export class LayerError extends Error {
  constructor (message: string, options?: { cause?: unknown }) {
    super(message.replace(/[\x00-\x1f\x7f]/g, c => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`), options)
    this.name = 'LayerError'
  }
}

/** The first line of an error's message, for one-line reports. */
export function oneLine (err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err)
  return msg.split('\n').map(s => s.trim()).find(s => s !== '') ?? ''
}
