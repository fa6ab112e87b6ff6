// The typed lint of STYLE §11, run by `npm run lint` (and so by `npm test`, which CI runs). Only rules that catch
// real bugs here, not a style guide: a promise nobody awaits or handles (an unhandled rejection ends a Node
// process), a promise passed where a callback's void return is expected (its rejection is lost), an `await` of
// something that is not a promise, a `switch` over a union that misses a member — and, in src/ only, console
// output (STYLE §10: pino only; bench/ and scripts/ print by design).
//
// Type information comes from tsconfig.json, whose program covers src/, test/, bench/ and vitest.config.ts: every
// linted file. `project`, not `projectService`: the same program, for about 30% less CPU and memory on this code
// base (typescript-eslint#9571; figures in docs/performance.md). scripts/*.mjs are plain JavaScript outside that
// program, with no promises in them.
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig(
  { ignores: ['dist/', 'coverage/', 'scripts/', 'eslint.config.js'] },
  {
    files: ['**/*.ts'],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { project: ['./tsconfig.json'], tsconfigRootDir: import.meta.dirname },
    },
    plugins: { '@typescript-eslint': tseslint.plugin },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      // A `default:` here is deliberate: the alert rules watch 3 of the 11 audit fact kinds (src/audit/alerts.ts),
      // sealing refuses every typeof that is not JSON (src/envelope/leaves.ts), an access command's `op` comes from
      // untrusted JSON (src/access/desk.ts). Switches without one must still name every member.
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
    },
  },
  {
    files: ['src/**/*.ts'],
    rules: { 'no-console': 'error' },
  },
);
