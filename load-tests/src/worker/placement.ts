// Which node each client of a spread room connects to. The nodes of room g start at node g and
// wrap, so over many rooms every node holds as many senders and receivers as any other, whether
// a room spans 2 nodes or all of them.

/** The node of member `m` of room `g` when each room spans `span` of `nodes` nodes. */
export function spreadNode(g: number, m: number, span: number, nodes: number): number {
  return (g + (m % span)) % nodes;
}
