// Loopback source addresses for the clients. Every 127.0.0.0/8 address reaches this machine, and
// each has its own ~28,000 ephemeral ports and its own count against a per-IP connection limit
// (the project's MAX_CONNECTIONS_PER_IP), so a run spreads its clients over enough of them.

/** The i-th address: 127.0.0.1 … 127.0.0.250, then 127.0.1.1 …, never a .0 or .255 host. */
export function sourceAddress(i: number): string {
  return `127.${Math.floor(i / 62_500) % 256}.${Math.floor(i / 250) % 250}.${(i % 250) + 1}`;
}

/** Enough addresses that none carries more than `perSource` clients, and at least `min`. */
export function sourceAddresses(clients: number, min: number, perSource: number): string[] {
  const count = Math.max(1, min, Math.ceil(clients / Math.max(1, perSource)));
  return Array.from({ length: count }, (_, i) => sourceAddress(i));
}
