// The rtc.io signaling protocol, end to end, with the official socket.io client.
//
// Runs twice against a default switchboard node: once over WebSocket only, once over HTTP
// long-polling only (SWITCHBOARD_TRANSPORT). The contract is /work/shared/protocol.md.
// crates/switchboard/tests/cluster.rs runs it again against two nodes sharing one Redis, with
// successive sockets alternating between the nodes, so every room's peers are split across
// them: nothing here assumes a single node.

import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';

import {
  ask,
  assertStillWorks,
  closeAll,
  connect,
  connectMany,
  disconnected,
  expectEachPairMetOnce,
  expectNone,
  join,
  openSocket,
  QUIET_MS,
  received,
  roomId,
  sleep,
  waitFor,
  waitForCount,
  waitForError,
} from './lib/harness.mjs';

afterEach(closeAll);

// ---------------------------------------------------------------------------------------------
// Helpers for this file

/** Connects one socket per name and joins them to `room` one after the other (join order). */
async function peersInRoom(room, ...names) {
  const sockets = await connectMany(names.length);
  for (const [i, socket] of sockets.entries()) await join(socket, room, names[i]);
  return sockets;
}

/** Lets in-flight events arrive before asserting on exact counts. */
const settle = () => sleep(QUIET_MS);

/** The events named in `events`, in the order the socket received them, as [name, payload]. */
function sequence(socket, ...events) {
  return socket.log.filter((e) => events.includes(e.event)).map((e) => [e.event, e.args[0]]);
}

/** Sends a signaling envelope with an ack; resolves with the ack. */
function relay(from, to, data, source = from.id) {
  return ask(from, '#rtcio:message', { source, target: to.id, data });
}

/** An SDP of at least `bytes` bytes with CRLF line endings, non-ASCII text and odd spacing. */
function fakeSdp(type, bytes) {
  const lines = [
    'v=0',
    'o=- 4611731400430051336 2 IN IP4 127.0.0.1',
    's= ',
    't=0 0',
    'a=group:BUNDLE 0 1',
    'a=extmap-allow-mixed',
    'a=msid-semantic: WMS stream-1',
    'm=audio 9 UDP/TLS/RTP/SAVPF 111 63',
    'c=IN IP4 0.0.0.0',
    `a=setup:${type === 'offer' ? 'actpass' : 'active'}`,
    'a=x-note: héllo ✓ "quoted" \\backslash\\ \ttab  trailing-spaces  ',
  ];
  for (let i = 0; lines.join('\r\n').length < bytes; i++) {
    lines.push(`a=ssrc:${100000 + i} cname:${'c'.repeat(16)}${i} msid:stream-1 track-${i}`);
  }
  return `${lines.join('\r\n')}\r\n`;
}

/** The i-th ICE candidate of a peer, as RTCIceCandidate.toJSON() gives it. */
function candidate(who, i) {
  return {
    candidate: {
      candidate: `candidate:${i} 1 udp 2122260223 10.0.${who}.${i} ${50000 + i} typ host generation 0 ufrag ${who}x network-id 1`,
      sdpMid: '0',
      sdpMLineIndex: 0,
      usernameFragment: `${who}x`,
    },
  };
}

/** The empty candidate that means end-of-candidates. */
const END_OF_CANDIDATES = { candidate: { candidate: '', sdpMid: '0', sdpMLineIndex: 0 } };

/** Asserts that `got` is the same JSON as `sent`, key order and string bytes included. */
function assertSameJson(got, sent) {
  assert.equal(JSON.stringify(got), JSON.stringify(sent));
}

// ---------------------------------------------------------------------------------------------
describe('joining a room', () => {
  test('two peers: each learns the other and only the existing member is asked to make the offer', async () => {
    const room = roomId();
    const [alice, bob] = await connectMany(2);

    const aliceAck = await join(alice, room, 'alice');
    assert.deepEqual(aliceAck, { ok: true, roomId: room, self: alice.id, peers: [] });

    const bobAck = await join(bob, room, 'bob');
    assert.deepEqual(bobAck, {
      ok: true,
      roomId: room,
      self: bob.id,
      peers: [{ id: alice.id, name: 'alice' }],
    });

    await waitFor(alice, '#rtcio:init-offer');
    await settle();
    assert.deepEqual(sequence(alice, 'user-connected', '#rtcio:init-offer'), [
      ['user-connected', { id: bob.id, name: 'bob' }],
      ['#rtcio:init-offer', { source: bob.id }],
    ]);
    assert.deepEqual(sequence(bob, 'user-connected', '#rtcio:init-offer'), [
      ['user-connected', { id: alice.id, name: 'alice' }],
    ]);
  });

  test('three peers: the newcomer is told about every member oldest first, and each existing member gets exactly one init-offer', async () => {
    const room = roomId();
    const [alice, bob, carol] = await peersInRoom(room, 'alice', 'bob', 'carol');

    await waitForCount(alice, '#rtcio:init-offer', 2);
    await waitForCount(bob, '#rtcio:init-offer', 1);
    await settle();

    assert.deepEqual(sequence(carol, 'user-connected', '#rtcio:init-offer'), [
      ['user-connected', { id: alice.id, name: 'alice' }],
      ['user-connected', { id: bob.id, name: 'bob' }],
    ]);
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
  });

  test('peers joining at the same moment each meet every other peer exactly once, with one offer per pair', async () => {
    const room = roomId();
    const peers = await connectMany(6);
    await Promise.all(peers.map((peer, i) => join(peer, room, `peer${i}`)));
    await expectEachPairMetOnce(peers);
  });

  test('a late joiner receives each member\'s name followed by its last media state, in join order', async () => {
    const room = roomId();
    const [alice, bob] = await peersInRoom(room, 'alice', 'bob');
    await ask(alice, 'media-state', { roomId: room, mic: true, cam: true });
    await ask(alice, 'media-state', { roomId: room, mic: true, cam: false });

    const carol = await connect();
    const ack = await join(carol, room, 'Carol Ünïcode 😀');
    assert.deepEqual(ack.peers, [
      { id: alice.id, name: 'alice', mic: true, cam: false },
      { id: bob.id, name: 'bob' },
    ]);

    await waitForCount(carol, 'user-connected', 2);
    await settle();
    assert.deepEqual(sequence(carol, 'user-connected', 'media-state'), [
      ['user-connected', { id: alice.id, name: 'alice' }],
      ['media-state', { id: alice.id, roomId: room, mic: true, cam: false }],
      ['user-connected', { id: bob.id, name: 'bob' }],
    ]);
    await waitFor(alice, 'user-connected', (p) => p.id === carol.id && p.name === 'Carol Ünïcode 😀');
  });

  test('joining the same room twice answers again but tells nobody anything new', async () => {
    const room = roomId();
    const [alice, bob] = await peersInRoom(room, 'alice', 'bob');

    const again = await join(bob, room, 'bob');
    assert.deepEqual(again, {
      ok: true,
      roomId: room,
      self: bob.id,
      peers: [{ id: alice.id, name: 'alice' }],
    });

    // Bob is in the room once: a later joiner hears about him once, a leave is heard once.
    const carol = await connect();
    await join(carol, room, 'carol');
    await waitForCount(carol, 'user-connected', 2);
    await ask(bob, 'leave-room', { roomId: room });
    await waitFor(alice, 'user-disconnected');
    await settle();

    assert.deepEqual(received(alice, '#rtcio:init-offer'), [{ source: bob.id }, { source: carol.id }]);
    assert.deepEqual(received(alice, 'user-connected').map((p) => p.id), [bob.id, carol.id]);
    assert.deepEqual(received(carol, 'user-connected').map((p) => p.id), [alice.id, bob.id]);
    assert.deepEqual(received(alice, 'user-disconnected'), [{ id: bob.id }]);
  });

  test('a join without a name is accepted and introduces the member with an empty name', async () => {
    const room = roomId();
    const [alice, bob] = await connectMany(2);
    await join(alice, room, 'alice');
    const ack = await ask(bob, 'join-room', { roomId: room });
    assert.equal(ack.ok, true);
    assert.deepEqual(await waitFor(alice, 'user-connected'), { id: bob.id, name: '' });
  });
});

// ---------------------------------------------------------------------------------------------
describe('media state and screen sharing', () => {
  test('media-state is broadcast to the rest of the room, not back to the sender', async () => {
    const room = roomId();
    const [alice, bob, carol] = await peersInRoom(room, 'alice', 'bob', 'carol');

    const ack = await ask(alice, 'media-state', { roomId: room, mic: false, cam: true });
    assert.deepEqual(ack, { ok: true });

    const expected = { id: alice.id, roomId: room, mic: false, cam: true };
    assert.deepEqual(await waitFor(bob, 'media-state'), expected);
    assert.deepEqual(await waitFor(carol, 'media-state'), expected);
    await expectNone(alice, 'media-state');
    assert.equal(received(bob, 'media-state').length, 1);
  });

  test('stopScreenShare reaches the rest of the room with the sender\'s whole payload and its real id', async () => {
    const room = roomId();
    const [alice, bob, carol] = await peersInRoom(room, 'alice', 'bob', 'carol');
    const payload = {
      roomId: room,
      streamId: 'screen-1',
      extra: { nested: [1, 'two', null, true] },
      id: 'someone-else', // a client cannot speak for another member
    };

    const ack = await ask(alice, 'stopScreenShare', payload);
    assert.deepEqual(ack, { ok: true });

    const expected = { ...payload, id: alice.id };
    assert.deepEqual(await waitFor(bob, 'stopScreenShare'), expected);
    assert.deepEqual(await waitFor(carol, 'stopScreenShare'), expected);
    await expectNone(alice, 'stopScreenShare');
  });
});

// ---------------------------------------------------------------------------------------------
describe('relaying signaling messages', () => {
  test('a full offer, answer and ICE candidate exchange arrives in order and byte for byte', async () => {
    const room = roomId();
    const [alice, bob] = await peersInRoom(room, 'alice', 'bob');
    assert.deepEqual(await waitFor(alice, '#rtcio:init-offer'), { source: bob.id });

    // Alice (told to make the offer) sends a 5 KB offer; Bob answers.
    const offer = { description: { type: 'offer', sdp: fakeSdp('offer', 5000) } };
    assert.ok(offer.description.sdp.length >= 5000);
    assert.deepEqual(await relay(alice, bob, offer), { ok: true });
    const gotOffer = await waitFor(bob, '#rtcio:message');
    assert.deepEqual(gotOffer, { source: alice.id, target: bob.id, data: offer });
    assertSameJson(gotOffer.data, offer);

    const answer = { description: { type: 'answer', sdp: fakeSdp('answer', 3000) } };
    assert.deepEqual(await relay(bob, alice, answer), { ok: true });
    const gotAnswer = await waitFor(alice, '#rtcio:message');
    assert.deepEqual(gotAnswer, { source: bob.id, target: alice.id, data: answer });
    assertSameJson(gotAnswer.data, answer);

    // Candidates both ways at once, without waiting for acks (as the rtc.io client does).
    const fromAlice = [...Array.from({ length: 8 }, (_, i) => candidate(1, i)), END_OF_CANDIDATES];
    const fromBob = [...Array.from({ length: 8 }, (_, i) => candidate(2, i)), END_OF_CANDIDATES];
    for (let i = 0; i < fromAlice.length; i++) {
      alice.emit('#rtcio:message', { source: alice.id, target: bob.id, data: fromAlice[i] });
      bob.emit('#rtcio:message', { source: bob.id, target: alice.id, data: fromBob[i] });
    }

    const atBob = await waitForCount(bob, '#rtcio:message', 1 + fromAlice.length);
    const atAlice = await waitForCount(alice, '#rtcio:message', 1 + fromBob.length);
    await settle();
    assertSameJson(atBob.slice(1).map((m) => m.data), fromAlice);
    assertSameJson(atAlice.slice(1).map((m) => m.data), fromBob);
    assert.ok(atBob.every((m) => m.source === alice.id && m.target === bob.id));
    assert.ok(atAlice.every((m) => m.source === bob.id && m.target === alice.id));
    assert.equal(received(bob, '#rtcio:message').length, 1 + fromAlice.length);
    assert.equal(received(alice, '#rtcio:message').length, 1 + fromBob.length);
  });

  test('envelope data of any shape passes through untouched, unknown fields included', async () => {
    const room = roomId();
    const [alice, bob] = await peersInRoom(room, 'alice', 'bob');
    const variants = [
      { mid: '0' },
      { mid: '1', events: ['mute', { kind: 'video' }] },
      { candidate: {} },
      { future: { nested: [1, -2.5, 'three', null, false, { deep: '' }] }, 'x-ext': 'é\u2028\r\n' },
      'just a string',
      42,
      null,
      [],
    ];
    for (const data of variants) assert.deepEqual(await relay(alice, bob, data), { ok: true });

    const got = await waitForCount(bob, '#rtcio:message', variants.length);
    assertSameJson(got.map((m) => m.data), variants);
  });

  test('the relay stamps the real sender id as source, whatever the client claims', async () => {
    const room = roomId();
    const [alice, bob, carol] = await peersInRoom(room, 'alice', 'bob', 'carol');

    await relay(alice, bob, { n: 1 }, carol.id);
    await relay(alice, bob, { n: 2 }, bob.id);
    await relay(alice, bob, { n: 3 }, 'made-up');
    await ask(alice, '#rtcio:message', { target: bob.id, data: { n: 4 } }); // no source at all

    const got = await waitForCount(bob, '#rtcio:message', 4);
    assert.deepEqual(
      got.map((m) => [m.source, m.data.n]),
      [[alice.id, 1], [alice.id, 2], [alice.id, 3], [alice.id, 4]],
    );
    // Only the target gets it, not the rest of the room.
    await expectNone(carol, '#rtcio:message');
  });

  test('a relay to a socket that shares no room with the sender is refused and delivered nowhere', async () => {
    const [alice, eve] = await connectMany(2);
    await join(alice, roomId(), 'alice');
    await join(eve, roomId(), 'eve');

    const ack = await relay(eve, alice, { description: { type: 'offer', sdp: 'v=0\r\n' } });
    assert.equal(ack.ok, false);
    assert.equal(ack.code, 'not-in-room');
    const error = await waitForError(eve, 'not-in-room');
    assert.equal(error.event, '#rtcio:message');

    await expectNone(alice, '#rtcio:message');
    await assertStillWorks(eve);
  });

  test('a relay to an unknown socket id, or from a socket in no room, is refused with not-in-room', async () => {
    const [alice, loner] = await connectMany(2);
    await join(alice, roomId(), 'alice');

    const unknownTarget = await ask(alice, '#rtcio:message', { target: 'no-such-socket', data: {} });
    assert.equal(unknownTarget.code, 'not-in-room');
    const fromLoner = await relay(loner, alice, {});
    assert.equal(fromLoner.code, 'not-in-room');

    await expectNone(alice, '#rtcio:message');
  });

  test('after a peer leaves the room, relays to it are refused', async () => {
    const room = roomId();
    const [alice, bob] = await peersInRoom(room, 'alice', 'bob');
    await ask(bob, 'leave-room', { roomId: room });

    const ack = await relay(alice, bob, { n: 1 });
    assert.equal(ack.code, 'not-in-room');
    await expectNone(bob, '#rtcio:message');
  });
});

// ---------------------------------------------------------------------------------------------
describe('leaving and disconnecting', () => {
  test('leave-room tells the rest of the room, and the leaver hears nothing more from it', async () => {
    const room = roomId();
    const [alice, bob, carol] = await peersInRoom(room, 'alice', 'bob', 'carol');

    assert.deepEqual(await ask(bob, 'leave-room', { roomId: room }), { ok: true });
    assert.deepEqual(await waitFor(alice, 'user-disconnected'), { id: bob.id });
    assert.deepEqual(await waitFor(carol, 'user-disconnected'), { id: bob.id });

    const mark = bob.log.length;
    await ask(alice, 'media-state', { roomId: room, mic: true, cam: true });
    await ask(alice, 'stopScreenShare', { roomId: room });
    await waitFor(carol, 'stopScreenShare');
    await expectNone(bob, '*', { since: mark });
    await expectNone(bob, 'user-disconnected');
  });

  test('leave-room forgets the leaver\'s media state: a later joiner does not see it', async () => {
    const room = roomId();
    const [alice, bob] = await peersInRoom(room, 'alice', 'bob');
    await ask(bob, 'media-state', { roomId: room, mic: true, cam: true });
    await ask(bob, 'leave-room', { roomId: room });
    await join(bob, room, 'bob'); // back, with no media state announced yet

    const carol = await connect();
    const ack = await join(carol, room, 'carol');
    assert.deepEqual(ack.peers, [
      { id: alice.id, name: 'alice' },
      { id: bob.id, name: 'bob' },
    ]);
    await waitForCount(carol, 'user-connected', 2);
    await expectNone(carol, 'media-state');
  });

  test('a disconnecting socket is announced to every room it was in: peer-left, then user-disconnected', async () => {
    const [room1, room2] = [roomId(), roomId()];
    const [alice, bob, carol] = await connectMany(3);
    await join(alice, room1, 'alice');
    await join(alice, room2, 'alice');
    await join(bob, room1, 'bob');
    await join(carol, room2, 'carol');

    const aliceId = alice.id; // socket.io-client forgets it on disconnect
    alice.disconnect();
    for (const peer of [bob, carol]) {
      await waitFor(peer, 'user-disconnected');
      await settle();
      assert.deepEqual(sequence(peer, '#rtcio:peer-left', 'user-disconnected'), [
        ['#rtcio:peer-left', { id: aliceId }],
        ['user-disconnected', { id: aliceId }],
      ]);
    }
    // Gone means unreachable.
    const ack = await ask(bob, '#rtcio:message', { target: aliceId, data: {} });
    assert.equal(ack.code, 'not-in-room');
  });

  test('a socket whose transport drops without a goodbye is announced too', async () => {
    const room = roomId();
    const [alice, bob] = await peersInRoom(room, 'alice', 'bob');
    const aliceId = alice.id;
    const gone = disconnected(alice);
    alice.io.engine.close(); // transport closed under the socket.io layer
    await gone;
    assert.deepEqual(await waitFor(bob, '#rtcio:peer-left'), { id: aliceId });
    assert.deepEqual(await waitFor(bob, 'user-disconnected'), { id: aliceId });
  });
});

// ---------------------------------------------------------------------------------------------
describe('isolation', () => {
  test('two rooms are isolated: nothing in one room reaches the members of the other', async () => {
    const [room1, room2] = [roomId(), roomId()];
    const [carol, dave] = await peersInRoom(room2, 'carol', 'dave');
    await waitFor(carol, '#rtcio:init-offer');
    const marks = [carol.log.length, dave.log.length];

    const [alice, bob] = await peersInRoom(room1, 'alice', 'bob');
    await ask(alice, 'media-state', { roomId: room1, mic: true, cam: false });
    await ask(alice, 'stopScreenShare', { roomId: room1 });
    await relay(alice, bob, { description: { type: 'offer', sdp: 'v=0\r\n' } });
    await ask(bob, 'leave-room', { roomId: room1 });
    alice.disconnect();

    await Promise.all([
      expectNone(carol, '*', { since: marks[0] }),
      expectNone(dave, '*', { since: marks[1] }),
    ]);
  });
});

// ---------------------------------------------------------------------------------------------
describe('bad input', () => {
  const long = (n) => 'x'.repeat(n);

  // [what is wrong, event, arguments to emit (given the sender's room and its roommate), code]
  const cases = [
    ['a join-room payload that is a string', 'join-room', () => ['lobby'], 'invalid-payload'],
    ['a join-room payload that is an array', 'join-room', () => [[roomId(), 'eve']], 'invalid-payload'],
    ['a media-state payload that is an array', 'media-state', (room) => [[room, true, false]], 'invalid-payload'],
    ['a join-room payload that is null', 'join-room', () => [null], 'invalid-payload'],
    ['a join-room without any payload', 'join-room', () => [], 'invalid-payload'],
    ['a join-room without roomId', 'join-room', () => [{ name: 'eve' }], 'invalid-payload'],
    ['a join-room whose roomId is a number', 'join-room', () => [{ roomId: 7 }], 'invalid-payload'],
    ['a join-room whose roomId is empty', 'join-room', () => [{ roomId: '' }], 'invalid-payload'],
    ['a join-room whose roomId is 129 characters', 'join-room', () => [{ roomId: long(129) }], 'invalid-payload'],
    ['a join-room whose roomId has a space', 'join-room', () => [{ roomId: 'a b' }], 'invalid-payload'],
    ['a join-room whose roomId has a slash', 'join-room', () => [{ roomId: 'room/1' }], 'invalid-payload'],
    ['a join-room whose roomId is not ASCII', 'join-room', () => [{ roomId: 'café' }], 'invalid-payload'],
    ['a join-room whose name is 65 characters', 'join-room', () => [{ roomId: roomId(), name: long(65) }], 'invalid-payload'],
    ['a join-room whose name has a newline', 'join-room', () => [{ roomId: roomId(), name: 'eve\n' }], 'invalid-payload'],
    ['a join-room whose name has a NUL', 'join-room', () => [{ roomId: roomId(), name: 'e\u0000ve' }], 'invalid-payload'],
    ['a join-room whose name is a number', 'join-room', () => [{ roomId: roomId(), name: 42 }], 'invalid-payload'],
    ['a media-state whose mic is a string', 'media-state', (room) => [{ roomId: room, mic: 'yes', cam: true }], 'invalid-payload'],
    ['a media-state whose cam is 1', 'media-state', (room) => [{ roomId: room, mic: true, cam: 1 }], 'invalid-payload'],
    ['a media-state without cam', 'media-state', (room) => [{ roomId: room, mic: true }], 'invalid-payload'],
    ['a leave-room without roomId', 'leave-room', () => [{}], 'invalid-payload'],
    ['a stopScreenShare without roomId', 'stopScreenShare', () => [{ streamId: 's' }], 'invalid-payload'],
    ['a stopScreenShare whose roomId is a number', 'stopScreenShare', () => [{ roomId: 1 }], 'invalid-payload'],
    ['a relay without target', '#rtcio:message', () => [{ source: 'x', data: {} }], 'invalid-payload'],
    ['a relay whose target is empty', '#rtcio:message', () => [{ target: '', data: {} }], 'invalid-payload'],
    ['a relay whose target is 129 bytes', '#rtcio:message', () => [{ target: long(129), data: {} }], 'invalid-payload'],
    ['a relay whose target is a number', '#rtcio:message', () => [{ target: 5, data: {} }], 'invalid-payload'],
    ['a relay without data', '#rtcio:message', (room, peer) => [{ target: peer.id }], 'invalid-payload'],
    ['a relay payload that is a string', '#rtcio:message', () => ['hello'], 'invalid-payload'],
    ['an unknown event', 'no-such-event', (room) => [{ roomId: room }], 'unknown-event'],
    ['an unknown event ("error") without payload', 'error', () => [], 'unknown-event'],
    ['a media-state for a room the sender has not joined', 'media-state', () => [{ roomId: roomId(), mic: true, cam: true }], 'not-in-room'],
    ['a leave-room for a room the sender has not joined', 'leave-room', () => [{ roomId: roomId() }], 'not-in-room'],
    ['a stopScreenShare for a room the sender has not joined', 'stopScreenShare', () => [{ roomId: roomId() }], 'not-in-room'],
  ];

  for (const [what, event, args, code] of cases) {
    const name = `${what} is refused with ${code}, changes nothing for others, and the sender keeps working`;
    test(name, async () => {
      // The sender shares a room with a roommate; a bystander sits alone in another room.
      const room = roomId();
      const [roommate, sender] = await peersInRoom(room, 'roommate', 'sender');
      const bystander = await connect();
      await join(bystander, roomId(), 'bystander');
      await waitFor(roommate, '#rtcio:init-offer');
      const marks = [roommate.log.length, sender.log.length];

      const ack = await ask(sender, event, ...args(room, roommate));
      assert.equal(ack.ok, false);
      assert.equal(ack.code, code);
      assert.equal(typeof ack.message, 'string');
      assert.ok(ack.message.length > 0);

      const error = await waitForError(sender, code);
      assert.deepEqual(error, { code, message: ack.message, event });

      await Promise.all([
        expectNone(roommate, '*', { since: marks[0] }),
        expectNone(bystander, '*'),
      ]);
      assert.deepEqual(sender.log.slice(marks[1]).map((e) => e.event), ['error']);
      await assertStillWorks(sender);
    });
  }
});

// ---------------------------------------------------------------------------------------------
describe('acks are optional', () => {
  test('events sent without an ack callback are handled just the same', async () => {
    const room = roomId();
    const [alice, bob] = await connectMany(2);
    await join(alice, room, 'alice');
    bob.emit('join-room', { roomId: room, name: 'bob' });

    assert.deepEqual(await waitFor(alice, '#rtcio:init-offer'), { source: bob.id });
    assert.deepEqual(await waitFor(bob, 'user-connected'), { id: alice.id, name: 'alice' });

    bob.emit('media-state', { roomId: room, mic: true, cam: false });
    bob.emit('stopScreenShare', { roomId: room, streamId: 's' });
    bob.emit('#rtcio:message', { source: bob.id, target: alice.id, data: { mid: '0' } });
    bob.emit('media-state', { roomId: room, mic: 'loud', cam: false }); // refused
    bob.emit('leave-room', { roomId: room });

    assert.deepEqual(await waitFor(alice, 'media-state'), { id: bob.id, roomId: room, mic: true, cam: false });
    assert.deepEqual(await waitFor(alice, 'stopScreenShare'), { roomId: room, streamId: 's', id: bob.id });
    assert.deepEqual(await waitFor(alice, '#rtcio:message'), { source: bob.id, target: alice.id, data: { mid: '0' } });
    assert.equal((await waitForError(bob, 'invalid-payload')).event, 'media-state');
    assert.deepEqual(await waitFor(alice, 'user-disconnected'), { id: bob.id });
    assert.equal(bob.connected, true);
  });
});

// ---------------------------------------------------------------------------------------------
describe('event shape', () => {
  test('every event the server sends carries exactly one plain object', async () => {
    const room = roomId();
    const [alice, bob] = await peersInRoom(room, 'alice', 'bob');
    await ask(alice, 'media-state', { roomId: room, mic: true, cam: true });
    await ask(alice, 'stopScreenShare', { roomId: room });
    await relay(alice, bob, { mid: '0' });
    await relay(bob, alice, { mid: '0' });
    await ask(bob, 'media-state', { roomId: roomId(), mic: true, cam: true });
    const carol = await connect();
    await join(carol, room, 'carol');
    await waitForCount(carol, 'media-state', 1);
    carol.disconnect();
    await waitFor(bob, 'user-disconnected');
    await ask(bob, 'leave-room', { roomId: room });
    await waitFor(alice, 'user-disconnected', (p) => p.id === bob.id);
    await settle();

    const events = [...alice.log, ...bob.log, ...carol.log];
    const names = new Set(events.map((e) => e.event));
    for (const name of [
      'user-connected', 'user-disconnected', 'media-state', 'stopScreenShare',
      '#rtcio:init-offer', '#rtcio:message', '#rtcio:peer-left', 'error',
    ]) {
      assert.ok(names.has(name), `the scenario should have produced "${name}"`);
    }
    for (const { event, args } of events) {
      assert.equal(args.length, 1, `${event} carried ${args.length} arguments`);
      const [payload] = args;
      assert.ok(
        payload !== null && typeof payload === 'object' && !Array.isArray(payload),
        `${event} carried ${JSON.stringify(payload)}, not a plain object`,
      );
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Each socket is in a socket.io room named after its id (relays are addressed there), and a
// socket id is a valid roomId: a call room of that name must stay a different room.
describe('rooms named after socket ids', () => {
  test('joining a room named after another socket\'s id does not intercept the relays addressed to it', async () => {
    const room = roomId();
    const [alice, bob] = await peersInRoom(room, 'alice', 'bob');
    const eve = await connect();
    await ask(eve, 'join-room', { roomId: bob.id, name: 'eve' }); // refused or accepted: either is fine

    await relay(alice, bob, { description: { type: 'offer', sdp: 'v=0\r\nsecret\r\n' } });
    await waitFor(bob, '#rtcio:message');
    await expectNone(eve, '#rtcio:message');
  });

  test('events for a room named after a socket\'s id do not reach that socket unless it joined', async () => {
    const bob = await connect();
    await join(bob, roomId(), 'bob');
    const eve = await connect();
    const joined = await ask(eve, 'join-room', { roomId: bob.id, name: 'eve' });
    if (joined.ok) {
      await ask(eve, 'media-state', { roomId: bob.id, mic: true, cam: true });
      await ask(eve, 'stopScreenShare', { roomId: bob.id, forged: true });
    }
    await expectNone(bob, '*');
  });

  test('leaving a room named after one\'s own socket id does not cut the socket off from relays', async () => {
    const room = roomId();
    const [alice, bob] = await peersInRoom(room, 'alice', 'bob');
    const joined = await ask(bob, 'join-room', { roomId: bob.id, name: 'bob' });
    if (joined.ok) await ask(bob, 'leave-room', { roomId: bob.id });

    assert.deepEqual(await relay(alice, bob, { mid: '0' }), { ok: true });
    assert.deepEqual((await waitFor(bob, '#rtcio:message')).data, { mid: '0' });
  });
});

// ---------------------------------------------------------------------------------------------
// The rtc.io client emits join-room the moment it connects; socket.io-client sends it right
// after the CONNECT packet. switchboard installs its handlers before sending CONNECT, so such
// an event is never dropped. (Before that fix, up to 11 of 400 connections lost it under load.)
describe('connection start-up', () => {
  test('an event sent as soon as the connection opens is always answered', async () => {
    for (let attempt = 1; attempt <= 200; attempt++) {
      // Emitted before the connection is up: socket.io-client sends it right after CONNECT.
      const socket = openSocket();
      let ack;
      try {
        ack = await socket.timeout(1000).emitWithAck('join-room', { roomId: roomId('early'), name: 'early' });
      } catch {
        ack = { ok: false, message: 'no answer within 1 s' };
      }
      const id = socket.id;
      socket.disconnect();
      assert.equal(ack.ok, true, `connection #${attempt} (socket ${id}): first event refused or lost (${ack.message})`);
    }
  });
});
