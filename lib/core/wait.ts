// Waiting for the kernel (a partition node, a released loop, an emptied cgroup) by polling the
// condition with a growing delay, never by sleeping blindly.

/** Poll `test` until it holds (true) or `ms` pass (false); the delay doubles from `startMs` up to `maxMs`. */
export async function waitFor(test: () => boolean | Promise<boolean>, ms: number, o: { startMs?: number; maxMs?: number } = {}): Promise<boolean> {
  const until = Date.now() + ms;
  for (let delay = o.startMs ?? 2; ; delay = Math.min(delay * 2, o.maxMs ?? 50)) {
    if (await test()) return true;
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, delay));
  }
}
