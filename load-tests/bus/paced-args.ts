// What the bus benchmarks share: their command line (a paced rate for some seconds over some rooms,
// in rounds) and the message they publish.
import { parseArgs } from 'node:util';

export interface PacedArgs {
  rate: number;
  seconds: number;
  rooms: number;
  rounds: number;
}

export function pacedArgs(defaults: PacedArgs): PacedArgs {
  const option = (value: number) => ({ type: 'string' as const, default: String(value) });
  const { values } = parseArgs({
    options: {
      rate: option(defaults.rate),
      seconds: option(defaults.seconds),
      rooms: option(defaults.rooms),
      rounds: option(defaults.rounds),
    },
  });
  return {
    rate: Number(values.rate),
    seconds: Number(values.seconds),
    rooms: Number(values.rooms),
    rounds: Number(values.rounds),
  };
}

// A typical signal envelope: header, then an ICE candidate frame.
export const MESSAGE = `node-1\ts\tAbCdEfGhIjKlMnOp\t0\n${JSON.stringify({
  type: 'signal',
  room: 'room-00',
  from: 'QrStUvWxYz012345',
  data: { candidate: 'candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 10.0.0.2 rport 46154', sdpMid: '0' },
})}`;
