// Three nodes and Redis behind nginx, configured by the shipped docker/nginx.conf (ip_hash).
// Clients come from different /24 networks on loopback (lib/proxy.mjs) so ip_hash spreads them.
//
// Runs from crates/switchboard/tests/nginx.rs, which starts the nodes with a 1 s ping interval:
// every long-poll then ends and is reissued each second, so a few seconds of traffic are many
// chances for a poll to land on the wrong node.

import assert from 'node:assert/strict';
import { after, afterEach, test } from 'node:test';

import { closeAll, join, NODE_IDS, received, roomId, sleep, waitFor, waitForCount } from './lib/harness.mjs';
import { addressesByNode, clientAddress, closeAgents, connectVia, nodeBehind, watchTrouble } from './lib/proxy.mjs';

afterEach(closeAll);
after(closeAgents);

assert.equal(NODE_IDS.length, 3, 'this file runs against three nodes');

/** Envelopes each peer of a pair sends the other in the long-polling test. */
const RELAYS = 40;

/** Two addresses that nginx sends to different nodes, and those nodes. */
async function addressesOnTwoNodes() {
  const byNode = await addressesByNode(12);
  const [[nodeA, [a]], [nodeB, [b]]] = [...byNode.entries()];
  return { a, b, nodeA, nodeB };
}

test('ip_hash sends each client network to one node, and the networks to all three', async () => {
  const byNode = await addressesByNode(24);
  assert.deepEqual([...byNode.keys()].sort(), [...NODE_IDS].sort(), 'every node gets clients');
  for (const [node, addresses] of byNode) {
    for (const address of addresses) assert.equal(await nodeBehind(address), node, `${address} stays on ${node}`);
  }
});

test('long-polling clients on all nodes talk for seconds without a single "Session ID unknown"', async () => {
  const trouble = [];
  const pairs = [];
  for (let i = 0; i < 6; i++) {
    const [a, b] = [clientAddress(2 * i), clientAddress(2 * i + 1)];
    const first = await connectVia(a, { transports: ['polling'] });
    const second = await connectVia(b, { transports: ['polling'] });
    for (const socket of [first, second]) watchTrouble(socket, trouble);
    const room = roomId('poll');
    await join(first, room, 'first');
    await join(second, room, 'second');
    await waitFor(first, '#rtcio:init-offer');
    pairs.push([first, second]);
  }
  for (let n = 0; n < RELAYS; n++) {
    for (const [first, second] of pairs) {
      first.emit('#rtcio:message', { source: first.id, target: second.id, data: { candidate: { candidate: `f ${n}` } } });
      second.emit('#rtcio:message', { source: second.id, target: first.id, data: { candidate: { candidate: `s ${n}` } } });
    }
    await sleep(75); // 3 s in all: three ping cycles, dozens of polls per client
  }
  for (const [first, second] of pairs) {
    const atSecond = await waitForCount(second, '#rtcio:message', RELAYS);
    const atFirst = await waitForCount(first, '#rtcio:message', RELAYS);
    assert.deepEqual(atSecond.map((m) => m.data.candidate.candidate), Array.from({ length: RELAYS }, (_, n) => `f ${n}`));
    assert.deepEqual(atFirst.map((m) => m.data.candidate.candidate), Array.from({ length: RELAYS }, (_, n) => `s ${n}`));
    for (const socket of [first, second]) {
      assert.equal(socket.io.engine.transport.name, 'polling');
      assert.equal(socket.connected, true);
    }
  }
  assert.deepEqual(trouble, [], 'no poll reached a node that did not know its session');
});

test('the WebSocket upgrade goes through the proxy, and the socket keeps working on it', async () => {
  const { a, b } = await addressesOnTwoNodes();
  const trouble = [];
  const [first, second] = [await connectVia(a, { transports: ['polling', 'websocket'] }), await connectVia(b, { transports: ['polling', 'websocket'] })];
  for (const socket of [first, second]) {
    watchTrouble(socket, trouble);
    if (socket.io.engine.transport.name !== 'websocket') {
      await new Promise((resolve) => socket.io.engine.once('upgrade', resolve));
    }
    assert.equal(socket.io.engine.transport.name, 'websocket');
  }
  const room = roomId('upgrade');
  await join(first, room, 'first');
  await join(second, room, 'second');
  first.emit('#rtcio:message', { source: first.id, target: second.id, data: { mid: '0' } });
  assert.deepEqual(await waitFor(second, '#rtcio:message'), { source: first.id, target: second.id, data: { mid: '0' } });
  assert.deepEqual(trouble, []);
});

test('peers that landed on different nodes complete offer, answer and candidates through the proxy', async () => {
  const { a, b, nodeA, nodeB } = await addressesOnTwoNodes();
  assert.notEqual(nodeA, nodeB);
  const alice = await connectVia(a);
  const bob = await connectVia(b);
  const room = roomId('call');
  await join(alice, room, 'alice');
  await join(bob, room, 'bob');
  // The existing peer offers (the protocol's rule).
  assert.deepEqual(await waitFor(alice, '#rtcio:init-offer'), { source: bob.id });

  const offer = { description: { type: 'offer', sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n' } };
  const answer = { description: { type: 'answer', sdp: 'v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\n' } };
  const candidates = (who) => Array.from({ length: 8 }, (_, i) => ({ candidate: { candidate: `candidate:${i} 1 udp 1 127.0.0.1 ${5000 + i} typ host ${who}`, sdpMid: '0', sdpMLineIndex: 0 } }));
  alice.emit('#rtcio:message', { source: alice.id, target: bob.id, data: offer });
  await waitFor(bob, '#rtcio:message');
  bob.emit('#rtcio:message', { source: bob.id, target: alice.id, data: answer });
  for (const data of candidates('bob')) bob.emit('#rtcio:message', { source: bob.id, target: alice.id, data });
  for (const data of candidates('alice')) alice.emit('#rtcio:message', { source: alice.id, target: bob.id, data });

  const atBob = await waitForCount(bob, '#rtcio:message', 9);
  const atAlice = await waitForCount(alice, '#rtcio:message', 9);
  assert.deepEqual(atBob.map((m) => m.data), [offer, ...candidates('alice')]);
  assert.deepEqual(atAlice.map((m) => m.data), [answer, ...candidates('bob')]);
  assert.ok(atBob.every((m) => m.source === alice.id && m.target === bob.id));
  assert.ok(atAlice.every((m) => m.source === bob.id && m.target === alice.id));
  assert.equal(received(alice, 'error').length + received(bob, 'error').length, 0);
});
