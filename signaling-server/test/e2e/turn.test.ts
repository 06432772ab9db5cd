// Calls that can only connect through TURN: a real coturn (Debian's `coturn`) with the TURN REST
// API secret, two nodes handing out credentials, and two Chromium pages of the demo on different
// nodes allowed relayed paths only (`?relay=1` → iceTransportPolicy 'relay'). The data channel
// opens over a relay/relay candidate pair. The nodes are on different secrets, as in the middle of
// a rotation, and coturn holds both. With secrets coturn does not have, the same call never
// connects: the test cannot pass by accident.
/// <reference lib="dom" />
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { launchChromium, openDemo, selfId, waitForChannelOpen, WAIT, type Chromium } from '../support/chromium.js';
import { startCoturn, type ThrowawayCoturn } from '../support/coturn.js';
import { createTestDatabase, killAllNodes, startNode, testRedisUrl, uniqueName, type RunningNode } from '../support/cluster.js';

const OLD_SECRET = 'turn-secret-before-rotation-0001';
const NEW_SECRET = 'turn-secret-after-rotation-00002';
const TTL_SECONDS = 600;

let browser: Chromium;
let coturn: ThrowawayCoturn;
let nodeA: RunningNode;
let nodeB: RunningNode;

beforeAll(async () => {
  coturn = await startCoturn([OLD_SECRET, NEW_SECRET]);
  const common = { databaseUrl: await createTestDatabase(), redisUrl: testRedisUrl(), redisPrefix: `${uniqueName('t')}:` };
  const ice = { ICE_SERVERS: coturn.url, TURN_TTL: String(TTL_SECONDS) };
  nodeA = await startNode({ ...common, env: { ...ice, TURN_SECRET: OLD_SECRET } }); // alone first: it migrates
  nodeB = await startNode({ ...common, env: { ...ice, TURN_SECRET: NEW_SECRET } });
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await killAllNodes();
  await coturn?.stop();
});

/** Ada on node A calls Grace on node B, relayed paths only; returns both pages and ids. */
async function relayOnlyCall() {
  const room = uniqueName('turn-');
  const ada = await openDemo(browser.context, nodeA.httpUrl, room, 'Ada', 'relay=1');
  const grace = await openDemo(browser.context, nodeB.httpUrl, room, 'Grace', 'relay=1');
  const adaId = await selfId(ada);
  const graceId = await selfId(grace);
  await ada.waitForSelector(`#peers li[data-peer="${graceId}"]`, WAIT);
  await ada.click(`#peers li[data-peer="${graceId}"] button[data-action="call"]`);
  return { ada, grace, adaId, graceId };
}

/** The candidate types of the selected pair of the page's call with `peerId`, from getStats. */
function selectedPair(page: Page, peerId: string) {
  return page.evaluate(async (p) => {
    // The report is a Map; the DOM typings here lack its iterable half.
    const stats = (await window.demo.page.calls.get(p)!.pc.getStats()) as unknown as Map<string, Record<string, string>>;
    const transport = [...stats.values()].find((s) => s.type === 'transport' && s.selectedCandidatePairId);
    const pair = stats.get(transport?.selectedCandidatePairId ?? '');
    if (!pair) return null;
    return {
      state: pair.state,
      local: stats.get(pair.localCandidateId!)?.candidateType,
      remote: stats.get(pair.remoteCandidateId!)?.candidateType,
    };
  }, peerId);
}

/** Waits until the page's call has gathered every candidate it can; returns their types. */
function gatheredCandidateTypes(page: Page, peerId: string) {
  return page
    .waitForFunction((p) => window.demo.page.calls.get(p)?.pc.iceGatheringState === 'complete', peerId, WAIT)
    .then(() =>
      page.evaluate(async (p) => {
        const stats = (await window.demo.page.calls.get(p)!.pc.getStats()) as unknown as Map<string, Record<string, string>>;
        return [...stats.values()].filter((s) => s.type === 'local-candidate').map((s) => s.candidateType);
      }, peerId),
    );
}

it(
  'a relay-only call between two nodes connects through coturn with the credentials the nodes handed out',
  { timeout: 120_000 },
  async () => {
    const { ada, grace, adaId, graceId } = await relayOnlyCall();
    // The pages use the cluster's TURN server, with a credential bound to their own participant.
    const adaIce = await ada.evaluate(() => window.demo.client.room(window.demo.page.room!)!.iceServers);
    expect(adaIce).toEqual([
      { urls: [coturn.url], username: expect.stringMatching(new RegExp(`^\\d+:${adaId}$`)), credential: expect.any(String) },
    ]);

    await waitForChannelOpen(ada, graceId, 'chat');
    await waitForChannelOpen(grace, adaId, 'chat');
    await ada.fill('#message', 'relayed hello');
    await ada.click('#send');
    await grace.waitForFunction(
      () => window.demo.page.log.some((e) => e.text === 'relayed hello' && e.from !== null),
      null,
      WAIT,
    );

    expect(await selectedPair(ada, graceId)).toEqual({ state: 'succeeded', local: 'relay', remote: 'relay' });
    expect(await selectedPair(grace, adaId)).toEqual({ state: 'succeeded', local: 'relay', remote: 'relay' });
    // A renewal (what the SDK does by itself at 80 % of TURN_TTL) reaches the live call's configuration.
    const usernameInCall = () =>
      ada.evaluate((p) => window.demo.page.calls.get(p)!.pc.getConfiguration().iceServers![0]!.username!, graceId);
    const before = await usernameInCall();
    // Expiries are whole seconds: once the clock is past the second of the first issue, a renewal differs.
    const issuedAtMs = (Number(before.split(':')[0]) - TTL_SECONDS + 1) * 1000;
    await ada.waitForFunction((t) => Date.now() >= t, issuedAtMs, WAIT);
    const renewed = await ada.evaluate(
      async () => (await window.demo.client.refreshIceServers(window.demo.page.room!))[0]!.username,
    );
    expect(renewed).not.toBe(before);
    expect(await usernameInCall()).toBe(renewed);

    // coturn allocated for both participants: one credential made with each secret.
    expect(coturn.log()).toMatch(new RegExp(`user <\\d+:${adaId}>: incoming packet ALLOCATE processed, success`));
    expect(coturn.log()).toMatch(new RegExp(`user <\\d+:${graceId}>: incoming packet ALLOCATE processed, success`));
    await Promise.all([ada.close(), grace.close()]);
  },
);

it('with a TURN secret the nodes do not have, the same call gets no relay and never connects', { timeout: 120_000 }, async () => {
  await coturn.start(['a-secret-neither-node-has-0003']);
  const { ada, grace, adaId, graceId } = await relayOnlyCall();
  // Relay-only and refused by TURN: no candidate at all, so nothing can connect.
  expect(await gatheredCandidateTypes(ada, graceId)).toEqual([]);
  expect(await gatheredCandidateTypes(grace, adaId)).toEqual([]);
  // coturn refused each participant's credential.
  for (const id of [adaId, graceId])
    expect(coturn.log()).toMatch(new RegExp(`user <\\d+:${id}>: incoming packet message processed, error 401`));
  expect(await ada.evaluate((p) => window.demo.page.calls.get(p)!.channels.get('chat')!.readyState, graceId)).not.toBe('open');
  expect(await selectedPair(ada, graceId)).toBeNull();
  await Promise.all([ada.close(), grace.close()]);
});
