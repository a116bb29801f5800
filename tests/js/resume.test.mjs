// Session resume (switchboard's extension): a client that opts in keeps its peer id across
// connections, on any node, and its partners notice nothing.
//
// Runs against two nodes with --resume-grace 4 --drain-wait 0 --drain-spread 1
// (crates/switchboard/tests/cluster.rs, `session_resume`). The opted-in client starts on node
// 0, its partner on node 1; node 0 is drained (SIGTERM) or SIGKILLed and restarted, and the
// client comes back through node 1, as it would behind a balancer.

import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';

import {
  ask,
  closeAll,
  connect,
  disconnected,
  expectNone,
  join,
  NODE_TTL_MS,
  openSocket,
  received,
  roomId,
  SERVER_URLS,
  sleep,
  step,
  waitFor,
  waitForCount,
} from './lib/harness.mjs';

afterEach(closeAll);

assert.equal(SERVER_URLS.length, 2, 'this file runs against two nodes');

const GRACE_MS = 4000;
const SESSION = 'switchboard:session';

/** An opted-in socket on `node` presenting `resume` ('' for a new session); resolves with the
 *  socket once its `switchboard:session` arrived (`socket.session`). */
async function session(node, resume = '', extra = {}) {
  const socket = await connect({ node, auth: { resume }, ...extra });
  socket.session = await waitFor(socket, SESSION);
  return socket;
}

/** Sends `count` relays from `from` to peer id `to`, numbered from `first`; resolves once all
 *  are acked (an ack is `ok` once the server accepted the envelope). */
async function relay(from, to, first, count) {
  for (let n = first; n < first + count; n++) {
    const ack = await ask(from, '#rtcio:message', { source: 'forged', target: to, data: { n } });
    assert.equal(ack.ok, true, `relay ${n} refused: ${JSON.stringify(ack)}`);
  }
}

/** The numbers of the relays `socket` received from peer `source`, in arrival order. */
function numbers(socket, source) {
  return received(socket, '#rtcio:message')
    .filter((m) => m.source === source)
    .map((m) => m.data.n);
}

/** The events a partner must never see while its peer moves. */
const NOISE = ['user-disconnected', '#rtcio:peer-left', 'user-connected', '#rtcio:init-offer'];

function assertQuiet(partner, since, peerId) {
  const noise = partner.log
    .slice(since)
    .filter((e) => NOISE.includes(e.event) && (e.args[0]?.id === peerId || e.args[0]?.source === peerId));
  assert.deepEqual(noise, [], 'the partner noticed the move');
}

/** A room with an opted-in `alice` on node 0 and a stock `bob` on node 1, in a call. */
async function call() {
  const room = roomId('resume');
  const alice = await session(0);
  const bob = await connect({ node: 1 });
  await join(alice, room, 'alice');
  await join(bob, room, 'bob');
  await waitFor(alice, '#rtcio:init-offer', (o) => o.source === bob.id);
  return { room, alice, bob };
}

/** Checks the resumed connection and the partner after a move, then relays both ways. */
async function checkResumed({ room, alice, bob }, resumed, since) {
  const peer = alice.session.id;
  assert.equal(resumed.session.resumed, true, 'resumed');
  assert.equal(resumed.session.id, peer, 'same peer id');
  assert.notEqual(resumed.session.resume, alice.session.resume, 'a new token');
  assert.equal(resumed.session.graceMs, GRACE_MS);
  assert.equal(resumed.log[0].event, SESSION, 'switchboard:session comes first');
  // Relays sent during the gap (1..5) and after (6..8) arrive once each, in order.
  await relay(bob, peer, 6, 3);
  await waitForCount(resumed, '#rtcio:message', 8);
  assert.deepEqual(numbers(resumed, bob.id), [1, 2, 3, 4, 5, 6, 7, 8]);
  // Relays it sends carry its old id; the room still counts it as a member.
  await relay(resumed, bob.id, 100, 1);
  const got = await waitFor(bob, '#rtcio:message', (m) => m.data.n === 100);
  assert.equal(got.source, peer);
  const again = await join(resumed, room, 'alice');
  assert.equal(again.self, peer);
  assert.deepEqual(again.peers.map((p) => p.id), [bob.id]);
  // Joining again resent the backfill to it alone.
  await waitFor(resumed, 'user-connected', (u) => u.id === bob.id);
  // Past the grace period nothing is announced either: the session is alive.
  await expectNone(bob, '*', { ms: 500, since: bob.log.length });
  assertQuiet(bob, since, peer);
}

test('a drained node: the moved client resumes on the other node; its partner notices nothing', async () => {
  const c = await call();
  const since = c.bob.log.length;
  const gone = disconnected(c.alice);
  await step('term-node/0');
  await gone;
  await relay(c.bob, c.alice.session.id, 1, 5);
  const resumed = await session(1, c.alice.session.resume);
  await checkResumed(c, resumed, since);
  await sleep(GRACE_MS);
  assertQuiet(c.bob, since, c.alice.session.id);
  await step('restart-node/0');
});

test('a SIGKILLed node: the client resumes on the other node; nothing is lost or announced', async () => {
  const c = await call();
  const since = c.bob.log.length;
  const gone = disconnected(c.alice);
  await step('kill-node/0');
  await gone;
  await relay(c.bob, c.alice.session.id, 1, 5);
  const resumed = await session(1, c.alice.session.resume);
  await checkResumed(c, resumed, since);
  // The reaper runs after the node TTL: the session lives on node 1 now, so it stays.
  await sleep(NODE_TTL_MS + 2000);
  assertQuiet(c.bob, since, c.alice.session.id);
  await step('restart-node/0');
});

test('a dropped transport: socket.io-client reconnects by itself and resumes', async () => {
  const room = roomId('drop');
  let token = '';
  const alice = openSocket({
    node: 0,
    reconnection: true,
    reconnectionDelay: 100,
    reconnectionDelayMax: 200,
    auth: (cb) => cb({ resume: token }),
  });
  alice.on(SESSION, (s) => {
    token = s.resume;
  });
  const first = await waitFor(alice, SESSION);
  const bob = await connect({ node: 1 });
  await join(alice, room, 'alice');
  await join(bob, room, 'bob');
  await waitFor(alice, '#rtcio:init-offer');
  const since = bob.log.length;
  const reconnected = new Promise((resolve) => alice.io.once('reconnect', resolve));
  alice.io.engine.close();
  await relay(bob, first.id, 1, 3);
  await reconnected;
  const second = await waitFor(alice, SESSION, (s) => s.resumed);
  assert.equal(second.id, first.id);
  await relay(bob, first.id, 4, 2);
  await waitForCount(alice, '#rtcio:message', 5);
  assert.deepEqual(numbers(alice, bob.id), [1, 2, 3, 4, 5]);
  await expectNone(bob, '*', { ms: 500, since });
});

test('tokens: a used, a malformed or an unknown token gets a fresh session, never an error', async () => {
  const first = await session(0);
  first.io.engine.close();
  const resumed = await session(1, first.session.resume);
  assert.equal(resumed.session.resumed, true);
  for (const token of [first.session.resume, 'garbage', `${first.session.id}.${'0'.repeat(32)}`, 42]) {
    const fresh = await session(0, token);
    assert.equal(fresh.session.resumed, false, `token ${token}`);
    assert.notEqual(fresh.session.id, first.session.id);
    assert.equal(fresh.session.id, fresh.id, 'a new session is known by its socket id');
  }
  // Tokens never reach the logs.
  for (const node of [0, 1]) {
    const log = await step(`log/${node}`);
    assert.ok(log.includes(first.session.id), `node ${node} logged the session`);
    assert.ok(!log.includes(first.session.resume.split('.')[1]), `node ${node} logged a token`);
    assert.ok(!log.includes(resumed.session.resume.split('.')[1]), `node ${node} logged a token`);
  }
});

test('not resumed within the grace: the departure is announced once, then the token is dead', async () => {
  const room = roomId('expire');
  const alice = await session(0);
  const bob = await connect({ node: 1 });
  await join(alice, room, 'alice');
  await join(bob, room, 'bob');
  await waitFor(alice, '#rtcio:init-offer');
  const since = bob.log.length;
  alice.io.engine.close();
  await expectNone(bob, 'user-disconnected', { ms: GRACE_MS - 1000, since });
  const left = await waitFor(bob, 'user-disconnected', (u) => u.id === alice.session.id, GRACE_MS + 3000);
  assert.equal(left.id, alice.session.id);
  await sleep(500);
  assert.equal(received(bob, 'user-disconnected').length, 1);
  assert.equal(received(bob, '#rtcio:peer-left').length, 1);
  const late = await session(1, alice.session.resume);
  assert.equal(late.session.resumed, false);
});

test('an explicit goodbye is announced at once, as for everyone', async () => {
  const room = roomId('bye');
  const alice = await session(0);
  const bob = await connect({ node: 1 });
  await join(alice, room, 'alice');
  await join(bob, room, 'bob');
  await waitFor(alice, '#rtcio:init-offer');
  alice.disconnect();
  await waitFor(bob, 'user-disconnected', (u) => u.id === alice.session.id, 1500);
  const late = await session(1, alice.session.resume);
  assert.equal(late.session.resumed, false, 'a closed session does not resume');
});

test('a stock client (no resume) sees exactly the events it always did, at once', async () => {
  const room = roomId('stock');
  const alice = await connect({ node: 0 });
  const bob = await connect({ node: 1 });
  await join(alice, room, 'alice');
  await join(bob, room, 'bob');
  await waitFor(alice, '#rtcio:init-offer');
  const id = alice.id;
  alice.io.engine.close();
  await waitFor(bob, '#rtcio:peer-left', (u) => u.id === id, 1500);
  await waitFor(bob, 'user-disconnected', (u) => u.id === id, 1500);
  assert.deepEqual(received(alice, SESSION), []);
  assert.deepEqual(received(bob, SESSION), []);
});
