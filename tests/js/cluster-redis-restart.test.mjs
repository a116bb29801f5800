// Redis outage: Redis is SIGKILLed while rooms are live and comes back empty (it keeps nothing
// on disk). No node exits; /health reports the outage (HTTP 200, degraded); sockets on the same
// node keep talking; joins are refused with `unavailable`. Once Redis is back, every node
// rewrites its local members, so a late joiner gets the whole roster with media state, and
// relays cross nodes again.
//
// Runs against two nodes (crates/switchboard/tests/cluster.rs, `redis_restart`).

import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';

import {
  ask,
  closeAll,
  connect,
  httpGet,
  join,
  NODE_IDS,
  NODE_TTL_MS,
  QUIET_MS,
  received,
  roomId,
  SERVER_URLS,
  sleep,
  step,
  waitFor,
  waitForCount,
  waitUntil,
} from './lib/harness.mjs';
import { mediaKey, membersKey } from './lib/cluster.mjs';

afterEach(closeAll);

assert.equal(SERVER_URLS.length, 2, 'this file runs against two nodes');

/** How long a node may take to notice that Redis went away or came back. */
const LINK_TIMEOUT_MS = 15_000;
/** "Within a few seconds" of Redis coming back, the roster is whole again. */
const REWRITE_TIMEOUT_MS = 10_000;
/** How long a join may take to be refused while Redis is down. */
const REFUSAL_TIMEOUT_MS = 10_000;


/** Resolves once both nodes' /health say `redis` and `status`, always with HTTP 200. */
function healthOfBoth(redis, status) {
  return waitUntil(async () => {
    const answers = await Promise.all([0, 1].map((node) => httpGet(node, '/health')));
    for (const { status: code, body } of answers) assert.equal(code, 200, JSON.stringify(body));
    return answers.every(({ body }) => body.redis === redis && body.status === status);
  }, `both nodes report redis ${redis}, status ${status}`, LINK_TIMEOUT_MS, 100);
}

/** Sends `data` from one socket to another until one arrives (bounded); resolves with the time it took. */
async function untilRelayArrives(from, to, timeoutMs) {
  const start = Date.now();
  for (let probe = 0; Date.now() - start < timeoutMs; probe++) {
    from.emit('#rtcio:message', { target: to.id, data: { probe } });
    const arrived = await waitFor(to, '#rtcio:message', (m) => m.source === from.id, 500).then(() => true, () => false);
    if (arrived) return Date.now() - start;
  }
  assert.fail(`no relay from node ${from.node} reached node ${to.node} within ${timeoutMs} ms after Redis came back`);
}

test('Redis killed and restarted empty while a room spread over two nodes is live', async () => {
  const room = roomId();
  const [alice, bob, carol, dave, frank] = await Promise.all([0, 1, 0, 1, 1].map((node) => connect({ node })));
  await join(alice, room, 'alice');
  await join(bob, room, 'bob');
  await join(carol, room, 'carol');
  await join(dave, room, 'dave');
  await join(frank, room, 'frank');
  await ask(alice, 'media-state', { roomId: room, mic: true, cam: false });
  await ask(bob, 'media-state', { roomId: room, mic: false, cam: true });
  await waitForCount(frank, 'media-state', 2);
  await healthOfBoth('up', 'ok');

  // Outage.
  assert.equal(await step('kill-redis'), true);
  await healthOfBoth('down', 'degraded');
  assert.deepEqual(await step('alive'), [true, true]);

  // Sockets on the same node keep relaying and broadcasting to each other.
  assert.deepEqual(await ask(alice, '#rtcio:message', { target: carol.id, data: { during: 'outage' } }), { ok: true });
  assert.deepEqual((await waitFor(carol, '#rtcio:message')).data, { during: 'outage' });
  assert.deepEqual(await ask(dave, '#rtcio:message', { target: bob.id, data: { during: 'outage' } }), { ok: true });
  assert.deepEqual((await waitFor(bob, '#rtcio:message', (m) => m.source === dave.id)).data, { during: 'outage' });
  alice.emit('stopScreenShare', { roomId: room, streamId: 'outage' });
  assert.deepEqual(await waitFor(carol, 'stopScreenShare'), { roomId: room, streamId: 'outage', id: alice.id });

  // A media change during the outage: whether the node accepts it or refuses it, what its
  // roommates see must match what a late joiner is told once Redis is back.
  const mediaAck = await alice.timeout(REFUSAL_TIMEOUT_MS).emitWithAck('media-state', { roomId: room, mic: false, cam: false });
  if (mediaAck.ok) {
    const changed = (m) => m.id === alice.id && !m.mic && !m.cam;
    assert.deepEqual(await waitFor(carol, 'media-state', changed), { id: alice.id, roomId: room, mic: false, cam: false });
  } else {
    assert.equal(mediaAck.code, 'unavailable', JSON.stringify(mediaAck));
  }
  const aliceMedia = mediaAck.ok ? { mic: false, cam: false } : { mic: true, cam: false };

  // A member leaving during the outage is gone from the roster once Redis is back.
  const frankId = frank.id;
  frank.disconnect();
  await waitFor(bob, 'user-disconnected', (u) => u.id === frankId);

  // Joins are refused, not left hanging.
  const early = await connect({ node: 0 });
  const askedAt = Date.now();
  const refusal = await early.timeout(REFUSAL_TIMEOUT_MS).emitWithAck('join-room', { roomId: room, name: 'early' });
  console.log(`# a join during the outage was answered in ${Date.now() - askedAt} ms`);
  assert.equal(refusal.ok, false, JSON.stringify(refusal));
  assert.equal(refusal.code, 'unavailable');
  early.disconnect();

  // An outage longer than the node TTL: when Redis comes back, no node may take another
  // (whose heartbeat is simply missing from the empty Redis) for dead.
  await sleep(NODE_TTL_MS + 1000);
  assert.deepEqual(await step('alive'), [true, true]);

  // Redis comes back empty; the nodes reconnect and rewrite their members.
  const restartedAt = Date.now();
  assert.equal(await step('restart-redis'), true);
  await healthOfBoth('up', 'ok');
  await waitUntil(
    async () => (await step('redis', 'HLEN', membersKey(room))) === 4 && (await step('redis', 'HLEN', mediaKey(room))) === 2,
    'the room hashes hold the four members and two media states again',
    REWRITE_TIMEOUT_MS,
    100,
  );
  const rewritten = Date.now() - restartedAt;
  for (const node of [0, 1]) {
    await waitUntil(async () => {
      const { body } = await httpGet(node, '/cluster');
      return JSON.stringify(body.nodes?.map((n) => n.id)) === JSON.stringify(NODE_IDS);
    }, `node ${node}'s /cluster lists both nodes again`, REWRITE_TIMEOUT_MS, 100);
  }
  const crossAB = await untilRelayArrives(alice, bob, REWRITE_TIMEOUT_MS);
  const crossBA = await untilRelayArrives(bob, alice, REWRITE_TIMEOUT_MS);
  console.log(`# roster rewritten ${rewritten} ms after the restart; cross-node relays flowed after ${crossAB} / ${crossBA} ms more`);

  // Nobody was reaped by mistake, not even once the TTL has passed since the restart.
  await sleep(Math.max(0, NODE_TTL_MS + 2000 - (Date.now() - restartedAt)));
  assert.equal(await step('redis', 'HLEN', membersKey(room)), 4, 'a live member was removed from the room hash');
  for (const peer of [alice, bob, carol, dave]) {
    const departures = peer.log.filter((e) => (e.event === 'user-disconnected' || e.event === '#rtcio:peer-left') && e.args[0].id !== frankId);
    assert.deepEqual(departures, [], `${peer.id} (node ${peer.node}) was told a live member left`);
  }

  // A late joiner on node 1 gets the whole roster, with media state, in join order.
  const erin = await connect({ node: 1 });
  const ack = await join(erin, room, 'erin');
  assert.deepEqual(ack.peers, [
    { id: alice.id, name: 'alice', ...aliceMedia },
    { id: bob.id, name: 'bob', mic: false, cam: true },
    { id: carol.id, name: 'carol' },
    { id: dave.id, name: 'dave' },
  ]);
  await waitForCount(erin, 'user-connected', 4);
  await sleep(QUIET_MS);
  assert.deepEqual(
    erin.log.filter((e) => e.event === 'user-connected' || e.event === 'media-state').map((e) => [e.event, e.args[0]]),
    [
      ['user-connected', { id: alice.id, name: 'alice' }],
      ['media-state', { id: alice.id, roomId: room, ...aliceMedia }],
      ['user-connected', { id: bob.id, name: 'bob' }],
      ['media-state', { id: bob.id, roomId: room, mic: false, cam: true }],
      ['user-connected', { id: carol.id, name: 'carol' }],
      ['user-connected', { id: dave.id, name: 'dave' }],
    ],
  );

  // The members on node 0 hear of erin (node 1) and relay with her, both ways.
  for (const peer of [alice, carol]) {
    await waitFor(peer, '#rtcio:init-offer', (o) => o.source === erin.id);
  }
  assert.deepEqual(await ask(alice, '#rtcio:message', { target: erin.id, data: { after: 'restart' } }), { ok: true });
  assert.deepEqual((await waitFor(erin, '#rtcio:message', (m) => m.source === alice.id)).data, { after: 'restart' });
  assert.deepEqual(await ask(erin, '#rtcio:message', { target: carol.id, data: { after: 'restart' } }), { ok: true });
  assert.deepEqual((await waitFor(carol, '#rtcio:message', (m) => m.source === erin.id)).data, { after: 'restart' });

  // Departures cross nodes again too.
  await ask(dave, 'leave-room', { roomId: room });
  assert.deepEqual(await waitFor(alice, 'user-disconnected', (u) => u.id === dave.id), { id: dave.id });
  assert.equal(received(alice, 'user-disconnected').filter((u) => u.id === dave.id).length, 1);
  assert.deepEqual(await step('alive'), [true, true]);
  // What the other node missed during the outage is told once Redis is back, exactly once:
  // frank's departure, and alice's media change.
  for (const peer of [alice, carol]) {
    await waitFor(peer, 'user-disconnected', (u) => u.id === frankId);
    await waitFor(peer, '#rtcio:peer-left', (u) => u.id === frankId);
  }
  if (mediaAck.ok) {
    for (const peer of [bob, dave]) {
      await waitFor(peer, 'media-state', (m) => m.id === alice.id && !m.mic && !m.cam);
    }
  }
  await sleep(QUIET_MS);
  for (const peer of [alice, bob, carol, dave]) {
    const told = received(peer, 'user-disconnected').filter((u) => u.id === frankId).length;
    assert.equal(told, 1, `${peer.id} (node ${peer.node}) heard of frank's departure ${told} times`);
  }
});

test('a relay to a socket on the same node is not held up by a lookup stuck on a hung Redis', async () => {
  await healthOfBoth('up', 'ok');
  const room = roomId();
  const [alice, bob, carol] = await Promise.all([0, 1, 0].map((node) => connect({ node })));
  await join(alice, room, 'alice');
  await join(bob, room, 'bob');
  await join(carol, room, 'carol');

  // Redis hangs: connections stay open, commands wait for their 2 s timeout.
  assert.equal(await step('pause-redis'), true);
  try {
    const started = Date.now();
    const toBob = alice.timeout(REFUSAL_TIMEOUT_MS).emitWithAck('#rtcio:message', { target: bob.id, data: { n: 1 } });
    const toCarol = ask(alice, '#rtcio:message', { target: carol.id, data: { n: 2 } });
    assert.deepEqual((await waitFor(carol, '#rtcio:message', (m) => m.source === alice.id)).data, { n: 2 });
    const carolAfter = Date.now() - started;
    assert.deepEqual(await toCarol, { ok: true });
    const bobAck = await toBob;
    const bobAfter = Date.now() - started;
    console.log(`# same-node relay delivered after ${carolAfter} ms; the one waiting on Redis answered after ${bobAfter} ms (${JSON.stringify(bobAck)})`);
    assert.equal(bobAck.code, 'unavailable', JSON.stringify(bobAck));
    assert.ok(carolAfter < bobAfter, 'the same-node relay waited for the Redis lookup');
    assert.ok(carolAfter < 1000, `the same-node relay took ${carolAfter} ms`);
  } finally {
    assert.equal(await step('resume-redis'), true);
  }
  await healthOfBoth('up', 'ok');
});
