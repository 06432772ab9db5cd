// The messages of y-webrtc's signaling protocol (its bin/server.js): JSON text frames of
// subscribe, unsubscribe, publish and ping; the server answers ping with pong and relays a
// publish as it was sent. Decoding checks only what the server acts on; the rest of a publish is
// the clients' business and is relayed untouched.
import { z } from 'zod';
import { storableString } from './storable.js';

/** Longer topics are ignored; y-webrtc uses the room name of the app as the topic. */
export const MAX_TOPIC_LENGTH = 256;

/** Not stored, but a topic names a bus channel and a uWS topic: no lone surrogates (they cannot be encoded) nor U+0000. */
const Topic = storableString(z.string().min(1).max(MAX_TOPIC_LENGTH));
/** As y-webrtc's own server, entries that are not topics are skipped, the others kept. */
const Topics = z
  .array(z.unknown())
  .max(1000)
  .optional()
  .transform((topics) => (topics ?? []).filter((t): t is string => Topic.safeParse(t).success));

const YWebrtcMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('subscribe'), topics: Topics }),
  z.object({ type: z.literal('unsubscribe'), topics: Topics }),
  z.object({ type: z.literal('publish'), topic: Topic }),
  z.object({ type: z.literal('ping') }),
]);

export type YWebrtcMessage = z.infer<typeof YWebrtcMessage>;

const KNOWN_TYPES = new Set(['subscribe', 'unsubscribe', 'publish', 'ping']);

/**
 * The message in a parsed frame: `unknown` for an object whose type the protocol does not have
 * (y-webrtc's server ignores those), `invalid` for anything else that is not a message.
 */
export function decodeYWebrtcMessage(value: unknown): YWebrtcMessage | 'unknown' | 'invalid' {
  const parsed = YWebrtcMessage.safeParse(value);
  if (parsed.success) return parsed.data;
  const type = (value as { type?: unknown } | null)?.type;
  return typeof type === 'string' && !KNOWN_TYPES.has(type) ? 'unknown' : 'invalid';
}

export const PONG_FRAME = JSON.stringify({ type: 'pong' });
