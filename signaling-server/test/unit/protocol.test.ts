import { describe, expect, it } from 'vitest';
import { DecodeError, ServerMessage, decodeClientMessage, encode } from '../../src/protocol/messages.js';

const decodeError = (text: string) => {
  try {
    decodeClientMessage(text);
  } catch (err) {
    return err as DecodeError;
  }
  throw new Error(`decoded: ${text}`);
};

describe('decoding client messages', () => {
  it('accepts every message type of protocol v1', () => {
    expect(
      decodeClientMessage('{"type":"join","id":1,"room":"a.b:c-d_e","name":"n","meta":{"x":1},"token":"t","resume":"r"}'),
    ).toMatchObject({ type: 'join' });
    expect(decodeClientMessage('{"type":"leave","room":"r"}')).toEqual({ type: 'leave', room: 'r' });
    expect(decodeClientMessage('{"type":"signal","room":"r","to":"p","data":null}')).toEqual({
      type: 'signal',
      room: 'r',
      to: 'p',
      data: null,
    });
    expect(decodeClientMessage('{"type":"broadcast","id":"x","room":"r","data":[1]}')).toMatchObject({ id: 'x' });
    expect(decodeClientMessage('{"type":"state","room":"r","data":{},"version":3}')).toMatchObject({ version: 3 });
    expect(decodeClientMessage('{"type":"ping"}')).toEqual({ type: 'ping' });
  });

  it('rejects what is not a message with bad-request and echoes a valid id', () => {
    expect(decodeError('nope')).toMatchObject({ code: 'bad-request', requestId: undefined });
    expect(decodeError('"a string"')).toMatchObject({ code: 'bad-request' });
    expect(decodeError('null')).toMatchObject({ code: 'bad-request' });
    expect(decodeError('{"type":"teleport","id":7}')).toMatchObject({ code: 'bad-request', requestId: 7 });
    expect(decodeError('{"type":"signal","id":"q","room":"r","to":"p"}')).toMatchObject({ requestId: 'q' });
    expect(decodeError('{"type":"ping","id":1.5}')).toMatchObject({ requestId: undefined });
    expect(decodeError(`{"type":"ping","id":"${'x'.repeat(65)}"}`)).toMatchObject({ requestId: undefined });
    // Each message names its field once.
    expect(decodeError('{"type":"join","room":"bad room"}').message).toBe('join: room: 1-128 characters of [A-Za-z0-9_.:-]');
    expect(decodeError('{"type":"signal","room":"r","to":"p"}').message).toBe('signal: data: required');
    expect(decodeError('{"type":"state","room":"r","data":{},"version":1e300}')).toMatchObject({ code: 'bad-request' });
  });

  it('does not let a __proto__ key reach the prototype of what the domain sees', () => {
    const msg = decodeClientMessage('{"type":"join","room":"r","meta":{"__proto__":{"polluted":true}}}');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(msg.type).toBe('join');
  });

  it('does not treat inherited property names as message types', () => {
    expect(decodeError('{"type":"constructor"}')).toMatchObject({ code: 'bad-request' });
    expect(decodeError('{"type":"__proto__"}')).toMatchObject({ code: 'bad-request' });
  });
});

describe('encoding server messages', () => {
  it('produces frames that match the server message schemas', () => {
    const peer = { id: 'p', name: 'n', meta: {} };
    const frames = [
      encode.welcome('node', 15000),
      encode.joined(1, 'r', peer, [peer], { version: 0, data: null }, 'tok', false),
      encode.left('x', 'r'),
      encode.peerJoined('r', peer),
      encode.peerLeft('r', 'p', 'timeout'),
      encode.signal('r', 'p', { sdp: 1 }),
      encode.broadcast('r', 'p', 'hi'),
      encode.state('r', 2, { a: 1 }, 'p'),
      encode.ack(3, 4),
      encode.pong(undefined),
      encode.reconnect(500),
      encode.error(undefined, 'version-conflict', 'm', { state: { version: 1, data: {} } }),
    ];
    for (const frame of frames) expect(ServerMessage.safeParse(JSON.parse(frame)).success, frame).toBe(true);
    expect(JSON.parse(encode.pong(undefined))).toEqual({ type: 'pong' });
  });
});
