// V8's old generation grows to a factor of the live heap before its next full collection. Left to its heuristic,
// that factor reaches 4 on a machine with 16 GB or more: a broker with ~55 MB live then holds ~180 MB of old space
// at saturation, garbage awaiting collection (docs/operations.md "Memory and latency: V8's heap").
// `--heap-growing-percent` fixes the factor at 1 + percent / 100. It is set at runtime (node:v8 setFlagsFromString),
// as `phi-broker up` is started by a `node` its operator chose; an explicit flag on the command line or in
// NODE_OPTIONS wins.
import { setFlagsFromString } from 'node:v8';

const FLAG = '--heap-growing-percent';

export type HeapGrowing =
  | { readonly applied: number }
  | { readonly skipped: 'disabled' }
  | { readonly skipped: 'explicit'; readonly where: 'execArgv' | 'NODE_OPTIONS' };

/** Whether the process was started with the flag (either spelling: V8 takes `_` and `-` alike). */
function explicitIn(args: string): boolean {
  return args.split(/\s+/).some((a) => a.replaceAll('_', '-').startsWith(FLAG));
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
  if (explicitIn(started.execArgv.join(' '))) return { skipped: 'explicit', where: 'execArgv' };
  if (explicitIn(started.nodeOptions ?? '')) return { skipped: 'explicit', where: 'NODE_OPTIONS' };
  setFlagsFromString(`${FLAG}=${percent}`);
  return { applied: percent };
}
