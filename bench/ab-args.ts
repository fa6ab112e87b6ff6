// The command line of the before/after tools that run two builds in alternation (drain.js, ab-sdk.js):
//   <root-of-build-A> [<root-of-build-B> = this checkout] [--messages N] [--rounds R]
import { fileURLToPath } from 'node:url';

/** This checkout's root (the default build B). */
export const HERE = fileURLToPath(new URL('../../', import.meta.url));

export interface AbArgs {
  readonly rootA: string;
  readonly rootB: string;
  readonly messages: number;
  readonly rounds: number;
}

export function abArgs(
  tool: string,
  argv: readonly string[],
  defaults: { readonly messages: number; readonly rounds: number },
): AbArgs {
  const flag = (name: string, fallback: number): number => {
    const i = argv.indexOf(name);
    return i >= 0 ? Number(argv[i + 1]) : fallback;
  };
  const positional = argv.filter((a, i) => !a.startsWith('--') && !(argv[i - 1] ?? '').startsWith('--'));
  const rootA = positional[0];
  if (rootA === undefined)
    throw new TypeError(
      `usage: node dist/bench/${tool}.js <root-of-build-A> [<root-of-build-B>] [--messages N] [--rounds R]`,
    );
  return {
    rootA,
    rootB: positional[1] ?? HERE,
    messages: flag('--messages', defaults.messages),
    rounds: flag('--rounds', defaults.rounds),
  };
}
