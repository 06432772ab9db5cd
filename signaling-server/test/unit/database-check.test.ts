import { describe, expect, it } from 'vitest';
import { DatabaseCheck } from '../../src/store/database-check.js';

/** A database whose pings hang until answered by hand. */
function hangingDatabase() {
  const answers: (() => void)[] = [];
  let answeredAt = 0;
  const store = {
    pings: 0,
    ping: () => {
      store.pings++;
      return new Promise<void>((resolve) => answers.push(resolve));
    },
    lastAnsweredAt: () => answeredAt,
  };
  return {
    store,
    answerPings: () => answers.splice(0).forEach((a) => a()),
    answerOtherQuery: () => (answeredAt = performance.now()),
  };
}

describe('database check', () => {
  it('says down once the deadline passes without an answer, and callers meanwhile share one ping', async () => {
    const { store } = hangingDatabase();
    const check = new DatabaseCheck(store, 50);
    const started = performance.now();
    expect(await Promise.all([check.isUp(), check.isUp(), check.isUp()])).toEqual([false, false, false]);
    expect(performance.now() - started).toBeLessThan(500);
    expect(await check.isUp()).toBe(false);
    expect(store.pings).toBe(1);
  });

  it('says up when the ping answers, and pings afresh once it has', async () => {
    const { store, answerPings } = hangingDatabase();
    const check = new DatabaseCheck(store, 5000);
    const first = check.isUp();
    answerPings();
    expect(await first).toBe(true);
    const second = check.isUp();
    expect(store.pings).toBe(2);
    answerPings();
    expect(await second).toBe(true);
  });

  it('takes another query answered while it waited for a database that is up (a busy pool)', async () => {
    const { store, answerOtherQuery } = hangingDatabase();
    const check = new DatabaseCheck(store, 50);
    const asked = check.isUp();
    answerOtherQuery();
    expect(await asked).toBe(true);
  });
});
