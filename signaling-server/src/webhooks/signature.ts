// Standard Webhooks signatures (https://www.standardwebhooks.com): the secret is `whsec_` plus
// base64 key bytes; the signature is `v1,` plus the base64 HMAC-SHA256 of `id.timestamp.body`.
import { createHmac } from 'node:crypto';

/** The key bytes of a `whsec_<base64>` secret; throws on anything else. */
export function parseWebhookSecret(secret: string, variable = 'WEBHOOK_SECRET'): Buffer {
  const match = /^whsec_([A-Za-z0-9+/=]+)$/.exec(secret.trim());
  const key = match ? Buffer.from(match[1]!, 'base64') : Buffer.alloc(0);
  if (key.length < 16) throw new Error(`${variable} must be whsec_ followed by at least 16 base64-encoded bytes`);
  return key;
}

/** The three headers of one delivery attempt. `timestampSec` is the attempt's time, in seconds. */
export function signWebhook(key: Buffer, id: string, timestampSec: number, body: string): Record<string, string> {
  const signature = createHmac('sha256', key).update(`${id}.${timestampSec}.${body}`).digest('base64');
  return { 'webhook-id': id, 'webhook-timestamp': String(timestampSec), 'webhook-signature': `v1,${signature}` };
}
