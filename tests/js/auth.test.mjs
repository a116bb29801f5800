// JWT authentication of handshakes and room-scoped tokens.
//
// Runs against: switchboard --jwt-secret test-secret (SWITCHBOARD_JWT_SECRET holds the secret).
// Tokens are HS256 JWTs minted here with node:crypto: `{ exp, rooms? }`. Also run against two
// nodes sharing one Redis (crates/switchboard/tests/cluster.rs).

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { afterEach, test } from 'node:test';

import {
  ask,
  assertStillWorks,
  closeAll,
  connect,
  connectRefused,
  expectNone,
  join,
  roomId,
  waitFor,
  waitForError,
} from './lib/harness.mjs';

afterEach(closeAll);

const SECRET = process.env.SWITCHBOARD_JWT_SECRET ?? 'test-secret';
const HOUR = 3600;
const now = () => Math.floor(Date.now() / 1000);

const base64url = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** An HS256 JWT over `claims`, signed with `secret`. */
function mint(claims, { secret = SECRET, header = { alg: 'HS256', typ: 'JWT' } } = {}) {
  const unsigned = `${base64url(header)}.${base64url(claims)}`;
  const signature = createHmac('sha256', secret).update(unsigned).digest('base64url');
  return `${unsigned}.${signature}`;
}

/** A token valid for an hour; `rooms` limits which rooms it may join. */
function validToken(rooms) {
  return mint(rooms ? { exp: now() + HOUR, rooms } : { exp: now() + HOUR });
}

/** A connected socket carrying `token`. */
function connectWith(token) {
  return connect({ auth: { token } });
}

// A valid token whose claims were edited after signing.
function tamperedToken() {
  const [header, , signature] = mint({ exp: now() + HOUR, rooms: ['a'] }).split('.');
  return `${header}.${base64url({ exp: now() + HOUR })}.${signature}`;
}

// [what the client presents, socket.io-client options]
const refusedHandshakes = [
  ['no auth payload at all', {}],
  ['an auth payload without a token', { auth: {} }],
  ['a token that is not a string', { auth: { token: 42 } }],
  ['a token that is not a JWT', { auth: { token: 'not-a-jwt' } }],
  ['a token signed with another secret', { auth: { token: mint({ exp: now() + HOUR }, { secret: 'wrong' }) } }],
  ['an expired token', { auth: { token: mint({ exp: now() - HOUR }) } }],
  ['a token without exp', { auth: { token: mint({ rooms: ['a'] }) } }],
  ['an unsigned token (alg "none")', { auth: { token: `${base64url({ alg: 'none', typ: 'JWT' })}.${base64url({ exp: now() + HOUR })}.` } }],
  ['a token edited after signing', { auth: { token: tamperedToken() } }],
];

for (const [what, opts] of refusedHandshakes) {
  test(`a handshake with ${what} is refused with connect_error "unauthorized"`, async () => {
    const err = await connectRefused(opts);
    assert.equal(err.message, 'unauthorized');
  });
}

test('a valid token without a rooms claim connects and may join any room', async () => {
  const [alice, bob] = [await connectWith(validToken()), await connectWith(validToken())];
  const room = roomId();
  await join(alice, room, 'alice');
  await join(bob, room, 'bob');
  await join(bob, roomId(), 'bob');
  assert.deepEqual(await waitFor(alice, '#rtcio:init-offer'), { source: bob.id });

  assert.deepEqual(await ask(alice, '#rtcio:message', { target: bob.id, data: { mid: '0' } }), { ok: true });
  assert.deepEqual((await waitFor(bob, '#rtcio:message')).data, { mid: '0' });
});

test('a token with a rooms claim may join those rooms and is refused with unauthorized elsewhere', async () => {
  const [allowed, alsoAllowed, forbidden] = [roomId('allowed'), roomId('allowed'), roomId('forbidden')];
  const member = await connectWith(validToken());
  await join(member, forbidden, 'member');
  const scoped = await connectWith(validToken([allowed, alsoAllowed]));

  await join(scoped, allowed, 'scoped');
  const ack = await ask(scoped, 'join-room', { roomId: forbidden, name: 'scoped' });
  assert.equal(ack.ok, false);
  assert.equal(ack.code, 'unauthorized');
  const error = await waitForError(scoped, 'unauthorized');
  assert.deepEqual(error, { code: 'unauthorized', message: ack.message, event: 'join-room' });

  // The forbidden room never heard of it; the socket is still connected and keeps its rights.
  await expectNone(member, '*');
  await assertStillWorks(scoped, alsoAllowed);
});

test('a token with an empty rooms claim may join no room', async () => {
  const socket = await connectWith(validToken([]));
  const ack = await ask(socket, 'join-room', { roomId: roomId(), name: 'nobody' });
  assert.equal(ack.code, 'unauthorized');
  assert.equal(socket.connected, true);
});

test('a resumable session resumes only with a JWT of the same subject', async () => {
  const as = (sub, resume) => connect({ auth: { token: mint({ exp: now() + HOUR, sub }), resume } });
  const alice = await as('alice', '');
  const first = await waitFor(alice, 'switchboard:session');
  alice.io.engine.close();
  const mallory = await as('mallory', first.resume);
  const stolen = await waitFor(mallory, 'switchboard:session');
  assert.equal(stolen.resumed, false, 'another subject gets a fresh session');
  assert.notEqual(stolen.id, first.id);
  const back = await as('alice', first.resume);
  const resumed = await waitFor(back, 'switchboard:session');
  assert.equal(resumed.resumed, true, 'the same subject resumes (the failed try did not use the token up)');
  assert.equal(resumed.id, first.id);
});
