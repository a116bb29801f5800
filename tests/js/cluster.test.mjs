// Cross-node behaviour of a cluster: sockets of one room on different nodes sharing one Redis.
//
// Runs against three nodes (crates/switchboard/tests/cluster.rs, `cross_node_scenarios`);
// every socket here names its node, so each test knows which peer is where. The wire
// contract is /work/shared/protocol.md; the Redis key schema is docs/architecture.md.

import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';

import {
  ask,
  closeAll,
  connect,
  expectEachPairMetOnce,
  expectNone,
  httpGet,
  join,
  NODE_IDS,
  QUIET_MS,
  received,
  roomId,
  SERVER_URLS,
  sleep,
  step,
  waitFor,
  waitForCount,
  waitForError,
  waitUntil,
} from './lib/harness.mjs';
import { hash, mediaKey, membersKey, nodeMembersKey } from './lib/cluster.mjs';

afterEach(closeAll);

assert.equal(SERVER_URLS.length, 3, 'this file runs against three nodes');

const settle = () => sleep(QUIET_MS);

/** One connected socket per node index given. */
function onNodes(...nodes) {
  return Promise.all(nodes.map((node) => connect({ node })));
}

/** The events named in `events`, in arrival order, as [name, payload]. */
function sequence(socket, ...events) {
  return socket.log.filter((e) => events.includes(e.event)).map((e) => [e.event, e.args[0]]);
}

/** A relay with an ack. */
function relay(from, to, data) {
  return ask(from, '#rtcio:message', { source: from.id, target: to.id, data });
}

// ---------------------------------------------------------------------------------------------
describe('joining across nodes', () => {
  test('a room spread over three nodes: each newcomer meets every member, each existing member gets one init-offer', async () => {
    const room = roomId();
    const [alice, bob, carol] = await onNodes(0, 1, 2);
    assert.deepEqual((await join(alice, room, 'alice')).peers, []);
    assert.deepEqual((await join(bob, room, 'bob')).peers, [{ id: alice.id, name: 'alice' }]);
    assert.deepEqual((await join(carol, room, 'carol')).peers, [
      { id: alice.id, name: 'alice' },
      { id: bob.id, name: 'bob' },
    ]);

    await waitForCount(alice, '#rtcio:init-offer', 2);
    await waitForCount(bob, '#rtcio:init-offer', 1);
    await settle();
    assert.deepEqual(sequence(alice, 'user-connected', '#rtcio:init-offer'), [
      ['user-connected', { id: bob.id, name: 'bob' }],
      ['#rtcio:init-offer', { source: bob.id }],
      ['user-connected', { id: carol.id, name: 'carol' }],
      ['#rtcio:init-offer', { source: carol.id }],
    ]);
    assert.deepEqual(sequence(bob, 'user-connected', '#rtcio:init-offer'), [
      ['user-connected', { id: alice.id, name: 'alice' }],
      ['user-connected', { id: carol.id, name: 'carol' }],
      ['#rtcio:init-offer', { source: carol.id }],
    ]);
    assert.deepEqual(sequence(carol, 'user-connected', '#rtcio:init-offer'), [
      ['user-connected', { id: alice.id, name: 'alice' }],
      ['user-connected', { id: bob.id, name: 'bob' }],
    ]);
  });

  test('a late joiner on a third node gets every member\'s name and last media state from Redis, in join order', async () => {
    const room = roomId();
    const [alice, bob, dave, carol] = await onNodes(0, 1, 2, 2);
    await join(alice, room, 'alice');
    await join(bob, room, 'bob');
    await join(dave, room, 'dave');
    await ask(alice, 'media-state', { roomId: room, mic: true, cam: true });
    await ask(alice, 'media-state', { roomId: room, mic: false, cam: true });
    await ask(bob, 'media-state', { roomId: room, mic: true, cam: false });
    // Dave, on carol's node, has heard every change: the broadcasts have reached node 2, so
    // carol can only learn them from her backfill. (Without this wait, a broadcast still in
    // flight from another node can reach her as a live event just after she joined, ahead of
    // her backfill: pub/sub between nodes is asynchronous.)
    await waitForCount(dave, 'media-state', 3);

    const ack = await join(carol, room, 'carol');
    assert.deepEqual(ack.peers, [
      { id: alice.id, name: 'alice', mic: false, cam: true },
      { id: bob.id, name: 'bob', mic: true, cam: false },
      { id: dave.id, name: 'dave' },
    ]);
    await waitForCount(carol, 'user-connected', 3);
    await settle();
    assert.deepEqual(sequence(carol, 'user-connected', 'media-state'), [
      ['user-connected', { id: alice.id, name: 'alice' }],
      ['media-state', { id: alice.id, roomId: room, mic: false, cam: true }],
      ['user-connected', { id: bob.id, name: 'bob' }],
      ['media-state', { id: bob.id, roomId: room, mic: true, cam: false }],
      ['user-connected', { id: dave.id, name: 'dave' }],
    ]);
  });

  test('nine peers on three nodes joining at once meet each other exactly once, with one offer per pair', async () => {
    const room = roomId();
    const peers = await onNodes(0, 1, 2, 0, 1, 2, 0, 1, 2);
    await Promise.all(peers.map((peer, i) => join(peer, room, `peer${i}`)));
    await expectEachPairMetOnce(peers);
  });
});

// ---------------------------------------------------------------------------------------------
describe('relaying across nodes', () => {
  test('offer, answer and 100 candidates each way arrive in order, byte for byte, only at the target', async () => {
    const room = roomId();
    const [alice, bob, carol] = await onNodes(0, 1, 2);
    for (const [socket, name] of [[alice, 'alice'], [bob, 'bob'], [carol, 'carol']]) {
      await join(socket, room, name);
    }
    const offer = { description: { type: 'offer', sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns= é ✓ \r\n' } };
    assert.deepEqual(await relay(alice, bob, offer), { ok: true });
    assert.deepEqual(await waitFor(bob, '#rtcio:message'), { source: alice.id, target: bob.id, data: offer });

    const fromAlice = Array.from({ length: 100 }, (_, i) => ({ candidate: { candidate: `a ${i}`, sdpMid: '0', sdpMLineIndex: 0 } }));
    const fromBob = Array.from({ length: 100 }, (_, i) => ({ candidate: { candidate: `b ${i}`, sdpMid: '0', sdpMLineIndex: 0 } }));
    for (let i = 0; i < 100; i++) {
      alice.emit('#rtcio:message', { source: alice.id, target: bob.id, data: fromAlice[i] });
      bob.emit('#rtcio:message', { source: bob.id, target: alice.id, data: fromBob[i] });
    }
    const atBob = await waitForCount(bob, '#rtcio:message', 101);
    const atAlice = await waitForCount(alice, '#rtcio:message', 100);
    await settle();
    assert.equal(JSON.stringify(atBob.slice(1).map((m) => m.data)), JSON.stringify(fromAlice));
    assert.equal(JSON.stringify(atAlice.map((m) => m.data)), JSON.stringify(fromBob));
    assert.equal(received(bob, '#rtcio:message').length, 101);
    assert.equal(received(alice, '#rtcio:message').length, 100);
    await expectNone(carol, '#rtcio:message');
  });

  test('a relay to a socket on another node that shares no room is refused and delivered nowhere', async () => {
    const [alice, eve] = await onNodes(0, 1);
    await join(alice, roomId(), 'alice');
    await join(eve, roomId(), 'eve');

    const ack = await relay(eve, alice, { description: { type: 'offer', sdp: 'v=0\r\n' } });
    assert.equal(ack.ok, false);
    assert.equal(ack.code, 'not-in-room');
    assert.equal((await waitForError(eve, 'not-in-room')).event, '#rtcio:message');
    await expectNone(alice, '#rtcio:message');
  });

  test('a relay between sockets on different nodes that share two rooms is delivered once', async () => {
    const [room1, room2] = [roomId(), roomId()];
    const [alice, bob, carol] = await onNodes(0, 1, 2);
    for (const room of [room1, room2]) {
      await join(alice, room, 'alice');
      await join(bob, room, 'bob');
      await join(carol, room, 'carol');
    }
    assert.deepEqual(await relay(alice, bob, { mid: '0' }), { ok: true });
    await waitFor(bob, '#rtcio:message');
    await settle();
    assert.equal(received(bob, '#rtcio:message').length, 1);
  });
});

// ---------------------------------------------------------------------------------------------
describe('room events across nodes', () => {
  test('media-state and stopScreenShare reach the members on every other node, not the sender', async () => {
    const room = roomId();
    const [alice, bob, carol] = await onNodes(0, 1, 2);
    for (const [socket, name] of [[alice, 'alice'], [bob, 'bob'], [carol, 'carol']]) {
      await join(socket, room, name);
    }
    assert.deepEqual(await ask(bob, 'media-state', { roomId: room, mic: true, cam: false }), { ok: true });
    assert.deepEqual(await ask(bob, 'stopScreenShare', { roomId: room, streamId: 's1' }), { ok: true });
    for (const peer of [alice, carol]) {
      assert.deepEqual(await waitFor(peer, 'media-state'), { id: bob.id, roomId: room, mic: true, cam: false });
      assert.deepEqual(await waitFor(peer, 'stopScreenShare'), { roomId: room, streamId: 's1', id: bob.id });
    }
    await expectNone(bob, 'media-state');
    await expectNone(bob, 'stopScreenShare');
    assert.equal(received(alice, 'media-state').length, 1);
  });

  test('leave-room on one node is heard on the others; the leaver hears nothing more and cannot be reached', async () => {
    const room = roomId();
    const [alice, bob, carol] = await onNodes(0, 1, 2);
    for (const [socket, name] of [[alice, 'alice'], [bob, 'bob'], [carol, 'carol']]) {
      await join(socket, room, name);
    }
    assert.deepEqual(await ask(bob, 'leave-room', { roomId: room }), { ok: true });
    assert.deepEqual(await waitFor(alice, 'user-disconnected'), { id: bob.id });
    assert.deepEqual(await waitFor(carol, 'user-disconnected'), { id: bob.id });

    const mark = bob.log.length;
    await ask(alice, 'media-state', { roomId: room, mic: true, cam: true });
    await waitFor(carol, 'media-state');
    assert.equal((await relay(carol, bob, { n: 1 })).code, 'not-in-room');
    await expectNone(bob, '*', { since: mark });
    await settle();
    assert.equal(received(alice, 'user-disconnected').length, 1);
  });

  test('a socket disconnecting from one node is announced on the others in every room it was in: peer-left, then user-disconnected', async () => {
    const [room1, room2] = [roomId(), roomId()];
    const [alice, bob, carol] = await onNodes(0, 1, 2);
    await join(alice, room1, 'alice');
    await join(alice, room2, 'alice');
    await join(bob, room1, 'bob');
    await join(carol, room2, 'carol');

    const aliceId = alice.id;
    alice.disconnect();
    for (const peer of [bob, carol]) {
      await waitFor(peer, 'user-disconnected');
      await settle();
      assert.deepEqual(sequence(peer, '#rtcio:peer-left', 'user-disconnected'), [
        ['#rtcio:peer-left', { id: aliceId }],
        ['user-disconnected', { id: aliceId }],
      ]);
    }
    const ack = await ask(bob, '#rtcio:message', { target: aliceId, data: {} });
    assert.equal(ack.code, 'not-in-room');
  });
});

// ---------------------------------------------------------------------------------------------
describe('room state in Redis', () => {
  test('members, media state and each node\'s index are written on join and media-state, and removed on leave and disconnect', async () => {
    assert.equal(NODE_IDS.length, 3, 'the node ids are known');
    const room = roomId();
    const [alice, bob] = await onNodes(0, 1);
    const before = Date.now();
    await join(alice, room, 'alice');
    await join(bob, room, 'bob ✓');
    await ask(bob, 'media-state', { roomId: room, mic: false, cam: true });

    const members = await hash(membersKey(room));
    assert.deepEqual(Object.keys(members).sort(), [alice.id, bob.id].sort());
    assert.equal(members[alice.id].name, 'alice');
    assert.equal(members[alice.id].node, NODE_IDS[0]);
    assert.equal(members[bob.id].name, 'bob ✓');
    assert.equal(members[bob.id].node, NODE_IDS[1]);
    for (const member of Object.values(members)) {
      assert.ok(member.joined_at_ms >= before - 5000 && member.joined_at_ms <= Date.now() + 5000, JSON.stringify(member));
    }
    assert.ok(members[alice.id].joined_at_ms <= members[bob.id].joined_at_ms);
    assert.deepEqual(await hash(mediaKey(room)), { [bob.id]: { mic: false, cam: true } });
    assert.equal(await step('redis', 'SISMEMBER', nodeMembersKey(NODE_IDS[0]), `${room} ${alice.id}`), 1);
    assert.equal(await step('redis', 'SISMEMBER', nodeMembersKey(NODE_IDS[1]), `${room} ${bob.id}`), 1);

    await ask(bob, 'leave-room', { roomId: room });
    assert.deepEqual(Object.keys(await hash(membersKey(room))), [alice.id]);
    assert.deepEqual(await hash(mediaKey(room)), {});
    assert.equal(await step('redis', 'SISMEMBER', nodeMembersKey(NODE_IDS[1]), `${room} ${bob.id}`), 0);

    alice.disconnect();
    const start = Date.now();
    while (Date.now() - start < 3000 && (await step('redis', 'HLEN', membersKey(room))) !== 0) await sleep(50);
    assert.equal(await step('redis', 'HLEN', membersKey(room)), 0, 'a disconnected member stays in the room hash');
    assert.equal(await step('redis', 'SISMEMBER', nodeMembersKey(NODE_IDS[0]), `${room} ${alice.id}`), 0);
  });
});

// ---------------------------------------------------------------------------------------------
describe('node registry', () => {
  test('/cluster on every node lists the three nodes, with the socket and room counts of each', async () => {
    const [x, y, z] = await onNodes(2, 2, 2);
    const [room1, room2] = [roomId(), roomId()];
    await join(x, room1, 'x');
    await join(y, room1, 'y');
    await join(z, room2, 'z');
    for (const node of [0, 1, 2]) {
      await waitUntil(async () => {
        const { status, body } = await httpGet(node, '/cluster');
        assert.equal(status, 200);
        const listed = body.nodes.map((n) => n.id);
        const third = body.nodes.find((n) => n.id === NODE_IDS[2]);
        return body.node === NODE_IDS[node]
          && JSON.stringify(listed) === JSON.stringify(NODE_IDS)
          && third.sockets === 3 && third.rooms === 2;
      }, `node ${node}'s /cluster lists every node and 3 sockets in 2 rooms on ${NODE_IDS[2]}`, 5000, 100);
    }
  });
});
