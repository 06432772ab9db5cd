// The room-full rule for in-memory stores; db/005_grace_seat_caps.sql is the same rule in SQL.
// Participants in grace hold a seat only up to a cap per identity and per room, so a client that
// joins and drops in a loop cannot keep a room full.

export interface SeatCaps {
  /** Grace participants that may hold seats in one room; undefined: no cap. */
  maxGracePerRoom?: number;
  /** Grace participants of one identity (token `sub`) that may hold seats; undefined: no cap. */
  maxGracePerIdentity?: number;
}

export interface Seated {
  status: 'connected' | 'disconnected';
  identity: string | null;
}

/** Seats taken in a room: connected participants plus grace participants within the caps. */
export function seatsTaken(participants: Iterable<Seated>, caps: SeatCaps): number {
  let connected = 0;
  let anonymousInGrace = 0;
  const graceByIdentity = new Map<string, number>();
  for (const p of participants) {
    if (p.status === 'connected') connected++;
    else if (p.identity === null) anonymousInGrace++;
    else graceByIdentity.set(p.identity, (graceByIdentity.get(p.identity) ?? 0) + 1);
  }
  let inGrace = anonymousInGrace;
  for (const n of graceByIdentity.values()) inGrace += Math.min(n, caps.maxGracePerIdentity ?? Infinity);
  return connected + Math.min(inGrace, caps.maxGracePerRoom ?? Infinity);
}
