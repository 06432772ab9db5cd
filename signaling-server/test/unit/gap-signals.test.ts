// The hand-over of signals across a resume, with the in-memory mailbox: the previous node keeps
// what is ordered before the claim, the new node delivers that, then what came after, once.
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { MemoryMailbox } from '../../src/bus/mailbox.js';
import { createMetrics } from '../../src/metrics.js';
import { GapSignals } from '../../src/rooms/gap-signals.js';

function node(mailbox: MemoryMailbox, handoverWaitMs = 60_000) {
  const delivered: string[][] = [];
  const handovers: string[] = [];
  const released: string[] = [];
  const metrics = createMetrics();
  const gaps = new GapSignals({
    mailbox,
    graceMs: 60_000,
    maxPerParticipant: 3,
    handoverWaitMs,
    metrics,
    log: pino({ level: 'silent' }),
    publishHandover: async (_room, id) => void handovers.push(id),
    deliver: (_id, frames) => void delivered.push(frames),
    onRoomReleased: (room) => void released.push(room),
  });
  return { gaps, delivered, handovers, released, metrics };
}

async function dropped(metrics: ReturnType<typeof createMetrics>, reason: string): Promise<number> {
  const { values } = await metrics.dropped.get();
  return values.find((v) => v.labels.reason === reason)?.value ?? 0;
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('GapSignals', () => {
  it('delivers what the previous node kept, then what came after the claim, after joined, once', async () => {
    const mailbox = new MemoryMailbox();
    const previous = node(mailbox);
    const next = node(mailbox);
    previous.gaps.own('r', 'bob');
    previous.gaps.store('bob', 's1');
    previous.gaps.store('bob', 's2');

    next.gaps.beginClaim('r', 'bob');
    // Before the marker comes back, signals are the previous node's business.
    expect(next.gaps.holdForClaim('bob', 's2')).toBe(true);
    next.gaps.onClaim('r', 'bob', true);
    previous.gaps.onClaim('r', 'bob', false);
    expect(next.gaps.holdForClaim('bob', 's3')).toBe(true);
    await previous.gaps.settled();
    expect(previous.handovers).toEqual(['bob']);
    expect(previous.gaps.owns('bob')).toBe(false);
    expect(previous.released).toEqual(['r']);

    next.gaps.onHandover('bob');
    await settle();
    expect(next.delivered).toEqual([]); // `joined` has not gone out yet
    next.gaps.markJoined('bob');
    await settle();
    expect(next.delivered).toEqual([['s1', 's2', 's3']]);
    expect(next.gaps.isClaiming('bob')).toBe(false);
    expect(next.gaps.holdForClaim('bob', 's4')).toBe(false);
    expect(await mailbox.take('bob')).toEqual([]);
  });

  it('keeps at most the bound and counts what it drops', async () => {
    const mailbox = new MemoryMailbox();
    const previous = node(mailbox);
    previous.gaps.own('r', 'bob');
    for (const s of ['a', 'b', 'c', 'd', 'e']) previous.gaps.store('bob', s);
    previous.gaps.onClaim('r', 'bob', false);
    await previous.gaps.settled();
    expect(await mailbox.take('bob')).toEqual(['a', 'b', 'c']);
    expect(await dropped(previous.metrics, 'mailbox-full')).toBe(2);
  });

  it('goes live with what the mailbox holds when no handover comes (the previous node died)', async () => {
    const mailbox = new MemoryMailbox();
    await mailbox.push('bob', 'kept-before-crash', 60_000, 10);
    const next = node(mailbox, 20);
    next.gaps.beginClaim('r', 'bob');
    next.gaps.markJoined('bob');
    next.gaps.onClaim('r', 'bob', true);
    next.gaps.holdForClaim('bob', 'after');
    while (next.delivered.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(next.delivered).toEqual([['kept-before-crash', 'after']]);
  });

  it('drops the kept signals when the grace ends without a resume', async () => {
    const mailbox = new MemoryMailbox();
    const previous = node(mailbox);
    previous.gaps.own('r', 'bob');
    previous.gaps.store('bob', 'lost');
    previous.gaps.release('bob', true);
    await settle();
    await settle();
    expect(await mailbox.take('bob')).toEqual([]);
    expect(await dropped(previous.metrics, 'grace-expired')).toBe(1);
  });
});
