// A publish burst: tens of thousands of relays from a socket on one node to a socket on
// another, as fast as the sender may go. Every message must arrive, in order, and the
// receiving node must still hear the cluster afterwards (a lagging or dropped subscription
// would lose messages silently or leave the node deaf).
//
// Runs against two nodes with --rate-limit 0 (crates/switchboard/tests/cluster.rs,
// `publish_burst`).

import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';

import {
  ask,
  closeAll,
  connect,
  httpGet,
  join,
  received,
  roomId,
  SERVER_URLS,
  sleep,
  waitFor,
  waitForCount,
} from './lib/harness.mjs';

afterEach(closeAll);

assert.equal(SERVER_URLS.length, 2, 'this file runs against two nodes');

/** Relays in the burst. */
const COUNT = 20_000;
/**
 * Relays the sender keeps unacknowledged. The server queues at most 4096 events per socket
 * when rate limiting is off and refuses beyond that, so the sender waits for acks (as fast as
 * the server admits); the cross-node fan-out behind the acks is not throttled by this.
 */
const WINDOW = 1000;
/** Longest time the whole burst may take to arrive. */
const DELIVERY_TIMEOUT_MS = 120_000;

/** An ICE candidate of realistic size carrying its sequence number. */
function candidate(seq) {
  return {
    candidate: {
      candidate: `candidate:${seq} 1 udp 2122260223 192.168.${seq % 256}.${(seq >> 8) % 256} ${10000 + (seq % 50000)} typ host generation 0 ufrag abcd network-id 1`,
      sdpMid: '0',
      sdpMLineIndex: 0,
      usernameFragment: 'abcd',
    },
    seq,
  };
}

/** Emits `count` relays from `from` to `to` keeping at most WINDOW unacknowledged; resolves with the refusals. */
async function burst(from, to, count) {
  const refusals = [];
  let inFlight = 0;
  let wake = null;
  const acked = (err, ack) => {
    inFlight--;
    if (err) refusals.push({ error: err.message });
    else if (!ack.ok) refusals.push(ack);
    if (wake) {
      const resume = wake;
      wake = null;
      resume();
    }
  };
  for (let seq = 0; seq < count; seq++) {
    while (inFlight >= WINDOW) await new Promise((resolve) => { wake = resolve; });
    inFlight++;
    from.timeout(DELIVERY_TIMEOUT_MS).emit('#rtcio:message', { target: to.id, data: candidate(seq) }, acked);
  }
  while (inFlight > 0) await new Promise((resolve) => { wake = resolve; });
  return refusals;
}

test(`${COUNT} relays from a socket on one node to a socket on another all arrive, in order, and the cluster still talks afterwards`, async () => {
  const room = roomId();
  const alice = await connect({ node: 0 });
  const bob = await connect({ node: 1 });
  await join(alice, room, 'alice');
  await join(bob, room, 'bob');
  await waitFor(alice, '#rtcio:init-offer');

  const start = Date.now();
  const refusals = await burst(alice, bob, COUNT);
  const sent = Date.now() - start;
  assert.deepEqual(refusals.slice(0, 5), [], `${refusals.length} relays refused`);

  const deadline = start + DELIVERY_TIMEOUT_MS;
  while (received(bob, '#rtcio:message').length < COUNT && Date.now() < deadline) await sleep(20);
  const got = received(bob, '#rtcio:message');
  const delivered = Date.now() - start;
  console.log(`# ${COUNT} relays acked in ${sent} ms, delivered across nodes in ${delivered} ms`);
  assert.equal(got.length, COUNT, `${got.length} of ${COUNT} relays delivered`);
  const outOfOrder = got.findIndex((m, i) => m.data.seq !== i || m.source !== alice.id);
  assert.equal(outOfOrder, -1, `relay #${outOfOrder} arrived as ${JSON.stringify(got[outOfOrder])}`);
  assert.equal(JSON.stringify(got[COUNT - 1].data), JSON.stringify(candidate(COUNT - 1)));

  // Both nodes still hear the cluster: relays both ways, a join and a media change.
  assert.deepEqual(await ask(alice, '#rtcio:message', { target: bob.id, data: { after: 'burst' } }), { ok: true });
  assert.deepEqual((await waitFor(bob, '#rtcio:message', (m) => m.data.after === 'burst')).data, { after: 'burst' });
  assert.deepEqual(await ask(bob, '#rtcio:message', { target: alice.id, data: { after: 'burst' } }), { ok: true });
  assert.deepEqual((await waitFor(alice, '#rtcio:message')).data, { after: 'burst' });
  const carol = await connect({ node: 0 });
  await join(carol, room, 'carol');
  assert.deepEqual(await waitFor(bob, 'user-connected', (u) => u.id === carol.id), { id: carol.id, name: 'carol' });
  await ask(bob, 'media-state', { roomId: room, mic: true, cam: true });
  await waitForCount(carol, 'media-state', 1);
  assert.deepEqual(await waitFor(alice, 'media-state'), { id: bob.id, roomId: room, mic: true, cam: true });
  for (const node of [0, 1]) {
    const { status, body } = await httpGet(node, '/health');
    assert.equal(status, 200);
    assert.equal(body.redis, 'up', JSON.stringify(body));
  }
});

test('bursts both ways at once between two pairs of sockets all arrive, in order', async () => {
  const room = roomId();
  const [a0, b1, c1, d0] = await Promise.all([0, 1, 1, 0].map((node) => connect({ node })));
  for (const [socket, name] of [[a0, 'a0'], [b1, 'b1'], [c1, 'c1'], [d0, 'd0']]) await join(socket, room, name);
  const half = COUNT / 2;

  const refusals = (await Promise.all([burst(a0, b1, half), burst(c1, d0, half)])).flat();
  assert.deepEqual(refusals.slice(0, 5), [], `${refusals.length} relays refused`);
  const start = Date.now();
  for (const receiver of [b1, d0]) {
    while (received(receiver, '#rtcio:message').length < half && Date.now() - start < DELIVERY_TIMEOUT_MS) await sleep(20);
    const got = received(receiver, '#rtcio:message');
    assert.equal(got.length, half, `${got.length} of ${half} relays delivered to node ${receiver.node}`);
    const outOfOrder = got.findIndex((m, i) => m.data.seq !== i);
    assert.equal(outOfOrder, -1, `relay #${outOfOrder} arrived as ${JSON.stringify(got[outOfOrder])}`);
  }
});
