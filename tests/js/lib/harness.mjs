// Small helpers shared by the end-to-end tests.
//
// The Rust test (crates/switchboard/tests/js_client.rs) starts a real switchboard node and
// tells us where it is through environment variables:
//   SWITCHBOARD_URL        e.g. http://127.0.0.1:40123
//   SWITCHBOARD_TRANSPORT  "websocket" or "polling"
//
// Cluster tests (crates/switchboard/tests/cluster.rs) start several nodes sharing one Redis
// and add:
//   SWITCHBOARD_URLS       every node's URL, comma-separated. Successive sockets alternate
//                          between them (socket 0 on node 0, socket 1 on node 1, ...), so the
//                          peers of a room are split across nodes; `connect({ node: i })`
//                          picks a node.
//   SWITCHBOARD_NODE_IDS   the nodes' --node-id, in the same order
//   SWITCHBOARD_NODE_TTL   their --node-ttl, seconds
//   SWITCHBOARD_STEPS_URL  where to ask the Rust test to act on processes (see `step`)
//
// Every socket made here records everything the server sends it in `socket.log`
// ({ event, args } in arrival order), from the moment it is created. Tests then wait for, or
// assert the absence of, entries in that log; nothing is ever missed because a listener was
// attached too late.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { io } from 'socket.io-client';

export { sleep };

export const SERVER_URL = process.env.SWITCHBOARD_URL ?? 'http://127.0.0.1:3001';
export const TRANSPORT = process.env.SWITCHBOARD_TRANSPORT ?? 'websocket';
/** Every node's URL; one entry (SERVER_URL) unless the test runs against a cluster. */
export const SERVER_URLS = (process.env.SWITCHBOARD_URLS ?? SERVER_URL).split(',').filter(Boolean);
/** The nodes' ids, in the order of SERVER_URLS (empty when not told). */
export const NODE_IDS = (process.env.SWITCHBOARD_NODE_IDS ?? '').split(',').filter(Boolean);
/** The nodes' --node-ttl in milliseconds. */
export const NODE_TTL_MS = Number(process.env.SWITCHBOARD_NODE_TTL ?? '10') * 1000;
const STEPS_URL = process.env.SWITCHBOARD_STEPS_URL;

/** Longest wait for something that should happen. */
export const TIMEOUT_MS = 3000;
/** How long we listen before concluding that something did not happen. */
export const QUIET_MS = 300;

/** Every socket created since the last `closeAll()`. */
const open = [];
/** How many sockets were opened without naming a node (they take turns over SERVER_URLS). */
let opened = 0;

/**
 * A new socket, returned at once (not yet connected), whose incoming events are recorded in
 * `socket.log`. Events emitted before it connects are buffered by socket.io-client and sent
 * the moment the server accepts the connection. Most tests want `connect()` instead.
 *
 * `opts.node` picks the node (an index into SERVER_URLS); without it, successive sockets
 * alternate between the nodes. `socket.node` tells which one it is on. `opts.url` connects
 * elsewhere (a proxy). The other options go to socket.io-client.
 */
export function openSocket(opts = {}) {
  const { node = opened++ % SERVER_URLS.length, url, ...clientOpts } = opts;
  assert.ok(url || (node >= 0 && node < SERVER_URLS.length), `no node ${node}`);
  const socket = io(url ?? SERVER_URLS[node], {
    transports: [TRANSPORT],
    forceNew: true,
    reconnection: false,
    timeout: TIMEOUT_MS,
    ...clientOpts,
  });
  socket.node = node;
  socket.log = [];
  socket.onAny((event, ...args) => socket.log.push({ event, args }));
  open.push(socket);
  return socket;
}

/** A connected socket. `opts` go to socket.io-client (e.g. `{ auth: { token } }`). */
export async function connect(opts = {}) {
  const socket = openSocket(opts);
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', (err) => reject(new Error(`connect_error: ${err.message}`)));
  });
  return socket;
}

/** Tries to connect and expects the server to refuse: resolves with the `connect_error`. */
export function connectRefused(opts = {}) {
  const socket = openSocket(opts);
  return new Promise((resolve, reject) => {
    socket.once('connect', () => reject(new Error('the server accepted the connection')));
    socket.once('connect_error', (err) => resolve(err));
  });
}

/** Several connected sockets at once. */
export function connectMany(count, opts = {}) {
  return Promise.all(Array.from({ length: count }, () => connect(opts)));
}

/** A room id nobody else uses, so tests never see each other's rooms. */
export function roomId(label = 'room') {
  return `${label}-${randomBytes(6).toString('hex')}`;
}

/** Emits an event and resolves with the server's ack (fails after TIMEOUT_MS). */
export async function ask(socket, event, ...args) {
  try {
    return await socket.timeout(TIMEOUT_MS).emitWithAck(event, ...args);
  } catch (err) {
    const sent = JSON.stringify(args).slice(0, 200);
    throw new Error(`no ack for "${event}" ${sent} on socket ${socket.id} within ${TIMEOUT_MS} ms (${err.message})`);
  }
}

/** Joins a room and checks that the server admitted the socket; resolves with the ack. */
export async function join(socket, room, name = 'anon') {
  const ack = await ask(socket, 'join-room', { roomId: room, name });
  assert.equal(ack.ok, true, `join-room ${room} refused: ${JSON.stringify(ack)}`);
  return ack;
}

/** The payloads (first arguments) of every `event` the socket received so far, in order. */
export function received(socket, event) {
  return socket.log.filter((e) => e.event === event).map((e) => e.args[0]);
}

/**
 * Asserts that peers who joined one room at the same moment each met every other peer exactly
 * once, with exactly one #rtcio:init-offer per pair and never one in both directions (glare).
 * Each pair is introduced once: the later joiner learns the earlier from its backfill, the
 * earlier hears user-connected + init-offer live. Waits (bounded) until every offer is in.
 */
export async function expectEachPairMetOnce(peers) {
  const pairs = (peers.length * (peers.length - 1)) / 2;
  const offers = () => peers.reduce((n, p) => n + received(p, '#rtcio:init-offer').length, 0);
  for (let i = 0; i < 100 && offers() < pairs; i++) await sleep(30);
  await sleep(QUIET_MS);

  assert.equal(offers(), pairs, 'one #rtcio:init-offer per pair');
  for (const peer of peers) {
    const met = received(peer, 'user-connected').map((u) => u.id);
    const others = peers.filter((p) => p !== peer).map((p) => p.id);
    assert.deepEqual([...met].sort(), [...others].sort(), `${peer.id} met each other peer once`);
    for (const { source } of received(peer, '#rtcio:init-offer')) {
      const offeredBack = received(peers.find((p) => p.id === source), '#rtcio:init-offer')
        .some((o) => o.source === peer.id);
      assert.equal(offeredBack, false, `${peer.id} and ${source} would both offer (glare)`);
    }
  }
}

/**
 * Resolves with the payload of the first `event` (received before or after this call) that
 * satisfies `predicate`; rejects after `timeoutMs`.
 */
export function waitFor(socket, event, predicate = () => true, timeoutMs = TIMEOUT_MS) {
  const matches = (e) => e.event === event && predicate(e.args[0]);
  const earlier = socket.log.find(matches);
  if (earlier) return Promise.resolve(earlier.args[0]);
  return new Promise((resolve, reject) => {
    const listener = (name, ...args) => {
      if (!matches({ event: name, args })) return;
      clearTimeout(timer);
      socket.offAny(listener);
      resolve(args[0]);
    };
    const timer = setTimeout(() => {
      socket.offAny(listener);
      const seen = socket.log.map((e) => e.event).join(', ') || 'nothing';
      reject(new Error(`timed out after ${timeoutMs} ms waiting for "${event}" (got: ${seen})`));
    }, timeoutMs);
    socket.onAny(listener);
  });
}

/** Waits until the socket has received `count` events named `event`; resolves with them. */
export async function waitForCount(socket, event, count, timeoutMs = TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  while (received(socket, event).length < count) {
    if (Date.now() > deadline) {
      assert.fail(`expected ${count} "${event}" events, got ${received(socket, event).length}`);
    }
    await sleep(10);
  }
  return received(socket, event);
}

/** The `error` event the server sends about a refused event (resolves with its payload). */
export function waitForError(socket, code) {
  return waitFor(socket, 'error', (e) => e.code === code);
}

/**
 * Listens for `ms` and then asserts that the socket never received `event` (any event when
 * `event` is "*"). Pass `since` (a `socket.log.length` taken earlier) to ignore older events.
 */
export async function expectNone(socket, event, { ms = QUIET_MS, since = 0 } = {}) {
  await sleep(ms);
  const unexpected = socket.log
    .slice(since)
    .filter((e) => event === '*' || e.event === event);
  assert.deepEqual(unexpected, [], `unexpected "${event}" events`);
}

/**
 * Asserts that a refused event left the socket usable: it is still connected and a
 * following valid event (joining `room`, by default a fresh one) is accepted.
 */
export async function assertStillWorks(socket, room = roomId('after-refusal')) {
  assert.equal(socket.connected, true, 'the socket was disconnected');
  const ack = await ask(socket, 'join-room', { roomId: room, name: 'x' });
  assert.equal(ack.ok, true, `a valid event after the refusal failed: ${JSON.stringify(ack)}`);
}

/** A promise that resolves when the socket's connection ends. */
export function disconnected(socket) {
  if (socket.disconnected) return Promise.resolve();
  return new Promise((resolve) => socket.once('disconnect', () => resolve()));
}

/**
 * Closes every socket created since the last call. Fails if any of them received an event
 * with other than exactly one argument (the contract: one plain object, never an ack
 * request, which socket.io-client would hand over as an extra function argument).
 */
export function closeAll() {
  const sockets = open.splice(0);
  for (const socket of sockets) socket.disconnect();
  const badShapes = sockets
    .flatMap((s) => (Array.isArray(s.log) ? s.log : [])) // AppClient keeps no log
    .filter((e) => e.args.length !== 1)
    .map((e) => `${e.event} with ${e.args.length} arguments`);
  assert.deepEqual(badShapes, [], 'every server event must carry exactly one argument');
}

/**
 * Resolves once `check()` (sync or async) returns a truthy value, with that value; fails
 * after `timeoutMs`, naming `what`.
 */
export async function waitUntil(check, what, timeoutMs = TIMEOUT_MS, intervalMs = 50) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await sleep(intervalMs);
  }
}

/** GETs `path` on node `node` and resolves with { status, body } (body parsed as JSON). */
export async function httpGet(node, path) {
  const response = await fetch(`${SERVER_URLS[node]}${path}`, { signal: AbortSignal.timeout(TIMEOUT_MS) });
  const text = await response.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: response.status, body };
}

/**
 * Asks the Rust test that started the servers to do something to them, and resolves with its
 * JSON answer once done. Steps (crates/switchboard-testkit/src/cluster.rs):
 * `kill-node/<i>` (SIGKILL), `restart-node/<i>` (SIGKILL if running, then start again with the
 * same id and port), `term-node/<i>` (SIGTERM), `kill-redis`, `restart-redis`, `pause-redis`
 * and `resume-redis` (SIGSTOP/SIGCONT), `alive` ([bool]
 * per node), `log/<i>`, and `redis` with the command's arguments: `step('redis', 'HLEN', key)`.
 */
export async function step(name, ...args) {
  assert.ok(STEPS_URL, 'SWITCHBOARD_STEPS_URL is not set: run this file through cargo');
  const response = await fetch(`${STEPS_URL}/${name}`, {
    method: 'POST',
    body: args.join('\n'),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await response.text();
  assert.equal(response.status, 200, `step ${name} failed: ${text}`);
  return JSON.parse(text);
}
