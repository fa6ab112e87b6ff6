// Fixes V8's old-generation growing factor at 1 + percent / 100 (`--heap-growing-percent`), set at runtime so `up`
// and `gateway` need no node flags; an explicit flag wins. Why: docs/operations.md "Memory and latency: V8's heap".
import { setFlagsFromString } from 'node:v8';
import type { Logger } from '../log/log.js';

const FLAG = '--heap-growing-percent';

export type HeapGrowing =
  | { readonly applied: number }
  | { readonly skipped: 'disabled' }
  | { readonly skipped: 'explicit'; readonly where: 'execArgv' | 'NODE_OPTIONS' };

/** Whether the process was started with the flag (either spelling: V8 takes `_` and `-` alike). */
function explicitIn(args: readonly string[]): boolean {
  return args.some((a) => a.replaceAll('_', '-').startsWith(FLAG));
}

/** Sets V8's old-generation growing factor for this process; 0 or an explicit flag leaves it alone. */
export function applyHeapGrowing(
  percent: number,
  started: { readonly execArgv: readonly string[]; readonly nodeOptions: string | undefined } = {
    execArgv: process.execArgv,
    nodeOptions: process.env['NODE_OPTIONS'],
  },
): HeapGrowing {
  if (percent === 0) return { skipped: 'disabled' };
  if (explicitIn(started.execArgv)) return { skipped: 'explicit', where: 'execArgv' };
  if (explicitIn((started.nodeOptions ?? '').split(/\s+/))) return { skipped: 'explicit', where: 'NODE_OPTIONS' };
  setFlagsFromString(`${FLAG}=${percent}`);
  return { applied: percent };
}

/** One line at start: how this process's old generation grows (docs/operations.md "Memory and latency"). */
export function announceHeapGrowing(h: HeapGrowing, logger: Logger): void {
  if ('applied' in h) logger.info({ event: 'memory.heap_growing', percent: h.applied }, 'V8 heap growing factor set');
  else if (h.skipped === 'explicit')
    logger.info({ event: 'memory.heap_growing', from: h.where }, 'V8 heap growing factor as given to node');
}
