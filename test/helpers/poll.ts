// A bounded wait for a condition a test cannot await as an event (files, another process's output, a server's view).

/** Checks `check` every 50 ms until it holds, bounded by count and time; throws naming `what` otherwise. */
export async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 3000 && Date.now() < deadline; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}
