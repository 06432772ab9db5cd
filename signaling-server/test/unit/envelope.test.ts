// The bus envelope: every kind comes back from the wire as it went in, and anything that is not an
// envelope is refused instead of half-read.
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { Kind, decodeEnvelope, encodeEnvelope, type Envelope } from '../../src/rooms/envelope.js';

// Ids and frames as the rooms layer makes them: ids without tabs or newlines, frames from
// JSON.stringify (control characters escaped).
const id = fc.stringMatching(/^[A-Za-z0-9_:.-]{1,24}$/);
const frame = fc.jsonValue().map((v) => JSON.stringify(v));
const count = fc.nat({ max: 2 ** 40 });

const envelope: fc.Arbitrary<Envelope> = fc.oneof(
  fc.record({ kind: fc.constant(Kind.Broadcast as const), from: id, frame }),
  fc.record({ kind: fc.constant(Kind.Signal as const), to: id, frame }),
  fc.record({ kind: fc.constantFrom(Kind.PeerJoined as const, Kind.PeerLeft as const), participant: id, seq: count, frame }),
  fc.record({ kind: fc.constant(Kind.State as const), writer: id, version: count, frame }),
  fc.record({ kind: fc.constant(Kind.Claim as const), participant: id, epoch: count }),
  fc.record({ kind: fc.constant(Kind.Handover as const), participant: id, epoch: count, start: fc.constant('1700000000000-3') }),
  fc.record({ kind: fc.constant(Kind.Kicked as const), participant: id, seq: count, frame }),
  fc.record({ kind: fc.constant(Kind.Server as const), to: fc.option(id, { nil: null }), frame }),
  fc.record({ kind: fc.constant(Kind.NodeCommand as const), command: fc.constant('drain') }),
);

it('decodes every kind to what was encoded, with the origin', () => {
  fc.assert(
    fc.property(id, envelope, (origin, e) => {
      expect(decodeEnvelope(encodeEnvelope(origin, e))).toEqual({ origin, ...e });
    }),
  );
});

it('refuses what is not an envelope', () => {
  for (const payload of ['', 'no newline', 'a\tb\tc\n{}', 'a\tb\tc\td\te\n{}', 'node\tz\tp\t0\n{}', 'node\ts\tp\tx\n{}']) {
    expect(decodeEnvelope(payload), JSON.stringify(payload)).toBeNull();
  }
});
