// Polls a condition that has no event to await (a database row, a metric, a readiness probe) until
// it holds or the deadline passes.
export async function eventually<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T>,
  holds: (value: T) => boolean,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T;
  for (;;) {
    last = await probe();
    if (holds(last)) return last;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms (last seen ${JSON.stringify(last)})`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
