// AccessRechecks on its own, with a join hook whose answers the test releases: what happens to
// the timers when the node shuts down while a re-check is in flight.
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { HookRequest, HookVerdict, JoinHook } from '../../src/hook/join-hook.js';
import { createMetrics } from '../../src/metrics.js';
import { AccessRechecks } from '../../src/rooms/access-rechecks.js';
import { LocalMember, Session, type ClientLink } from '../../src/rooms/session.js';

const link: ClientLink = { send: () => {}, subscribe: () => {}, unsubscribe: () => {}, publish: () => {}, close: () => {} };

const request: HookRequest = {
  type: 'join',
  room: 'r',
  participant: null,
  name: null,
  meta: {},
  address: '127.0.0.1',
  token: null,
  claims: null,
  cookies: {},
  headers: {},
};

/** A hook whose every request waits until the test answers it. */
function heldHook() {
  const asked: ((v: HookVerdict) => void)[] = [];
  let onAsk: () => void = () => {};
  const hook = {
    ask: () =>
      new Promise<HookVerdict>((resolve) => {
        asked.push(resolve);
        onAsk();
      }),
  } as unknown as JoinHook;
  const untilAsked = () => new Promise<void>((resolve) => (asked.length > 0 ? resolve() : (onAsk = resolve)));
  return { hook, asked, untilAsked };
}

function joinedMember(id: string) {
  const member = new LocalMember(new Session(link, undefined), 'r');
  member.id = id;
  member.status = 'joined';
  return member;
}

describe('AccessRechecks', () => {
  it('a re-check answered after close() schedules nothing more', async () => {
    const { hook, asked, untilAsked } = heldHook();
    const remover = { removeParticipant: async () => true };
    const rechecks = new AccessRechecks({ hook, remover, metrics: createMetrics(), log: pino({ level: 'silent' }) });
    rechecks.schedule(joinedMember('p1'), Date.now(), request);
    await untilAsked();
    rechecks.close();
    asked[0]!({ kind: 'allow', answer: { allow: true, recheckAfterSec: 60 } });
    await new Promise((resolve) => setImmediate(resolve));
    expect(rechecks.pendingCount).toBe(0);
  });
});
