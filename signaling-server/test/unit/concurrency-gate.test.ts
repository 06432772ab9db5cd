import { describe, expect, it } from 'vitest';
import { ConcurrencyGate, GateFull } from '../../src/hook/concurrency-gate.js';

/** A call that runs until released. */
function held() {
  let release!: () => void;
  const done = new Promise<void>((resolve) => (release = resolve));
  return { work: () => done, release };
}

describe('concurrency gate', () => {
  it('runs at most maxInFlight calls at once and starts waiting ones in order as slots free', async () => {
    const gate = new ConcurrencyGate({ maxInFlight: 2, maxWaiting: 5, maxWaitMs: 5000 });
    const calls = [held(), held(), held()];
    const started: number[] = [];
    const runs = calls.map((c, i) =>
      gate.run(() => {
        started.push(i);
        return c.work();
      }),
    );
    await Promise.resolve();
    expect(started).toEqual([0, 1]);
    expect(gate.queued).toBe(1);
    calls[1]!.release();
    await runs[1];
    await Promise.resolve();
    expect(started).toEqual([0, 1, 2]);
    expect(gate.active).toBe(2);
    calls[0]!.release();
    calls[2]!.release();
    await Promise.all(runs);
    expect(gate.active).toBe(0);
  });

  it('refuses at once beyond maxWaiting, and a waiter past maxWaitMs, without running them', async () => {
    const gate = new ConcurrencyGate({ maxInFlight: 1, maxWaiting: 1, maxWaitMs: 50 });
    const first = held();
    const running = gate.run(first.work);
    let ran = 0;
    const waiting = gate.run(async () => void ran++);
    await expect(gate.run(async () => void ran++)).rejects.toEqual(new GateFull('queue-full'));
    await expect(waiting).rejects.toEqual(new GateFull('wait-timeout'));
    expect(gate.queued).toBe(0);
    first.release();
    await running;
    expect(ran).toBe(0);
    await gate.run(async () => void ran++);
    expect(ran).toBe(1);
  });
});
