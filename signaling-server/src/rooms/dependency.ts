// The one rule for awaiting the database or the bus on a client's behalf: a failure reaches the
// client as `unavailable` (a value it can retry on), never as `internal`.
import type { Warner } from '../log-repeats.js';
import { ProtocolError, isProtocolError } from '../protocol/errors.js';

/** Awaits a database or bus call; its failure reaches the client as `unavailable`. */
export async function dependency<T>(work: Promise<T>, log: Warner): Promise<T> {
  try {
    return await work;
  } catch (err) {
    if (isProtocolError(err)) throw err;
    log.warn({ err }, 'a dependency failed');
    throw new ProtocolError('unavailable', 'the database or the bus is unreachable; retry later');
  }
}
