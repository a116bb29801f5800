// Chaos: an operator's bad day, seeded. Three nodes on one Redis; clients in rooms of three
// spread over the nodes relay to their roommates all along, re-send `join-room` on every
// `connect` and retry it on `unavailable` (as docs/protocol.md advises). Meanwhile, one action
// every few seconds: a node SIGKILLed and restarted, a node drained and restarted, or Redis
// SIGKILLed and restarted empty; and all along, a client now and then drops its connection and
// reconnects (a network blip: a new socket that joins again, also while Redis is down or the
// roster is being rebuilt). Then what users would notice:
//
// - every client's view of its room (user-connected minus user-disconnected) is exactly its
//   real roommates;
// - every pair of sockets was introduced at most once (one #rtcio:init-offer, never glare),
//   and every pair of roommates at the end exactly once;
// - envelopes from one socket to another never arrive out of order;
// - every relay acked `{ok: true}` whose target stayed connected was delivered;
// - a relay to a roommate that stayed connected is never refused `not-in-room` (while the
//   roster is rebuilt the answer is `unavailable`).
//
// The schedule comes from a seed, printed first; SWITCHBOARD_CHAOS_SEED replays one.
// Runs from crates/switchboard/tests/cluster.rs (`chaos`), with short drain times.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';
import { after, test } from 'node:test';
import { io } from 'socket.io-client';

import { httpGet, NODE_TTL_MS, roomId, SERVER_URLS, sleep, step, TRANSPORT, waitUntil } from './lib/harness.mjs';

const SEED = Number(process.env.SWITCHBOARD_CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));
const ROOMS = 12;
const ROOM_SIZE = 3;
/** Each client relays to each roommate this often. */
const RELAY_EVERY_MS = 250;
/** Actions, one after the other, each followed by a pause of PAUSE_MS (± half). */
const ACTIONS = 9;
const PAUSE_MS = 4000;
/** A relay whose target stayed connected this long after it was sent must have arrived. */
const GRACE_MS = 2000;
/** How long an ack may take before a relay or a join counts as unanswered. */
const ACK_TIMEOUT_MS = 5000;
/** Longest a client may take to be back in its room (a drain, a reap: TTL + ticks). */
const SETTLE_MS = 20_000;
/** Relays each client sends each roommate at the end, once everything has settled. */
const FINAL_BURST = 5;
/** One client drops its connection and reconnects about this often. */
const BLIP_EVERY_MS = 500;

/** mulberry32: a small seeded PRNG, so a failing schedule can be replayed. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
/** The schedule, all drawn from the seed up front (jitter elsewhere is not part of it). */
function plan(seed) {
  const random = prng(seed);
  const kinds = ['kill-node', 'drain-node', 'redis-restart'];
  // At least one of each kind, the rest at random (Redis restarts as likely as the other two
  // together: they are what this test is about), in a random order.
  const weighted = [...kinds, 'redis-restart'];
  const chosen = [...kinds, ...Array.from({ length: ACTIONS - kinds.length }, () => weighted[Math.floor(random() * weighted.length)])];
  for (let i = chosen.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [chosen[i], chosen[j]] = [chosen[j], chosen[i]];
  }
  return chosen.map((kind) => ({
    kind,
    pauseMs: Math.round(PAUSE_MS * (0.5 + random())),
    node: Math.floor(random() * 3),
    redisDownMs: 200 + Math.floor(random() * 1500),
  }));
}
const jitter = () => Math.random();

/** Everything every socket saw, by socket id, across clients. */
const world = {
  /** "a|b" (ids sorted) -> #rtcio:init-offers received by either about the other. */
  offers: new Map(),
  /** socket id -> when its connection ended. */
  endedAt: new Map(),
  /** "from>to" -> last seq received. */
  lastSeq: new Map(),
  /** "from>to#seq" of every relay received. */
  got: new Set(),
  reorders: [],
};
const pairKey = (a, b) => (a < b ? `${a}|${b}` : `${b}|${a}`);

class ChaosClient {
  constructor(node, room, name) {
    this.node = node;
    this.room = room;
    this.name = name;
    this.ids = [];
    this.inRoom = false;
    /** Roommates' socket ids, as this client was told. */
    this.view = new Set();
    /** { from, to, seq, at, answer, answeredAt } per relay sent. */
    this.sent = [];
    this.failures = [];
    this.joinRefusals = 0;
    this.seq = 0;
    const socket = io(SERVER_URLS[node], {
      transports: [TRANSPORT],
      forceNew: true,
      reconnection: true,
      reconnectionDelay: 100,
      reconnectionDelayMax: 1000,
      timeout: ACK_TIMEOUT_MS,
    });
    this.socket = socket;
    socket.on('connect', () => {
      this.ids.push(socket.id);
      this.presence = [`${((Date.now() - chaosStart) / 1000).toFixed(2)} s connected as ${socket.id}`];
      this.join(socket.id);
    });
    socket.on('disconnect', () => {
      const id = this.ids.at(-1);
      if (id && !world.endedAt.has(id)) world.endedAt.set(id, Date.now());
      this.inRoom = false;
      this.view.clear();
    });
    /** Presence events of the current socket, for failure messages. */
    this.presence = [];
    const note = (event, id) => this.presence.push(`${((Date.now() - chaosStart) / 1000).toFixed(2)} s ${event} ${id}`);
    socket.on('user-connected', ({ id }) => { this.view.add(id); note('+', id); });
    socket.on('user-disconnected', ({ id }) => { this.view.delete(id); note('-', id); });
    socket.on('#rtcio:init-offer', ({ source }) => note('offer from', source));
    socket.on('#rtcio:init-offer', ({ source }) => {
      const key = pairKey(source, socket.id);
      world.offers.set(key, (world.offers.get(key) ?? 0) + 1);
    });
    socket.on('#rtcio:message', ({ source, target, data }) => {
      const pair = `${source}>${target}`;
      const last = world.lastSeq.get(pair) ?? -1;
      if (data.seq <= last) world.reorders.push(`${pair}: #${data.seq} after #${last}`);
      world.lastSeq.set(pair, Math.max(last, data.seq));
      world.got.add(`${pair}#${data.seq}`);
    });
  }

  /** Joins the room on the socket `id`, retrying while the answer is `unavailable`. */
  async join(id) {
    for (let attempt = 0; attempt < 200 && this.socket.connected && this.socket.id === id; attempt++) {
      let ack;
      try {
        ack = await this.socket.timeout(ACK_TIMEOUT_MS).emitWithAck('join-room', { roomId: this.room, name: this.name });
      } catch {
        continue; // no answer: the connection ended (the next `connect` joins) or try again
      }
      if (this.socket.id !== id) return;
      if (ack.ok) {
        this.inRoom = true;
        return;
      }
      if (ack.code !== 'unavailable') {
        this.failures.push(`join refused: ${JSON.stringify(ack)}`);
        return;
      }
      this.joinRefusals++;
      await sleep(150 + jitter() * 200);
    }
  }

  /** Sends one relay to each roommate in the view. */
  relayToRoommates() {
    if (!this.socket.connected || !this.inRoom) return;
    const from = this.socket.id;
    for (const to of this.view) {
      const record = { from, to, seq: this.seq++, at: Date.now(), answer: 'none', answeredAt: 0 };
      this.sent.push(record);
      this.socket.timeout(ACK_TIMEOUT_MS)
        .emitWithAck('#rtcio:message', { source: from, target: to, data: { seq: record.seq } })
        .then((ack) => {
          record.answer = ack.ok ? 'ok' : ack.code;
          record.answeredAt = Date.now();
        }, () => {});
    }
  }

  /** A network blip: the connection drops, and the client reconnects at once (new socket). */
  blip() {
    if (!this.socket.connected) return false;
    this.socket.disconnect();
    this.socket.connect();
    return true;
  }

  close() {
    this.socket.disconnect();
  }
}

const clients = [];
/** The load and blip loops run while these are set; a failing test clears them. */
const running = { load: false, chaos: false };
after(() => {
  running.load = false;
  running.chaos = false;
  for (const c of clients) c.close();
});

/** [before, after] the step that SIGKILLed Redis, for each kill. */
const redisKills = [];
/**
 * A relay acked within this long of a Redis SIGKILL may have been accepted by Redis and then
 * died with it, before Redis wrote it to the target node's connection: pub/sub keeps nothing,
 * and `ok` promises acceptance by Redis, not delivery (docs/protocol.md). Counted apart.
 */
const CRASH_WINDOW_MS = 250;

/** When the chaos began (Date.now()), for timings in failure messages. */
let chaosStart = 0;

/** A socket id with its client, node and when it ended, for failure messages. */
function describe(id) {
  const owner = clients.find((c) => c.ids.includes(id));
  const ended = world.endedAt.get(id);
  const at = (t) => `${((t - chaosStart) / 1000).toFixed(2)} s`;
  return `${id} (${owner?.name ?? '?'} on node ${owner?.node ?? '?'}, ${ended ? `ended at ${at(ended)}` : 'connected'})`;
}

/** Saves the nodes' logs (the testkit deletes them with the nodes) for a failing run. */
async function keepLogs() {
  for (const node of [0, 1, 2]) {
    const path = joinPath(tmpdir(), `switchboard-chaos-${SEED}-node-${node}.log`);
    writeFileSync(path, await step(`log/${node}`));
    console.log(`# node ${node}'s log: ${path}`);
  }
}

/** What keeps each client from being settled (connected, in its room, exact view). */
function unsettled() {
  const problems = [];
  for (const c of clients) {
    const roommates = clients.filter((o) => o.room === c.room && o !== c).map((o) => o.socket.id).sort();
    const view = [...c.view].sort();
    if (!c.socket.connected || !c.inRoom || JSON.stringify(view) !== JSON.stringify(roommates)) {
      const ghosts = view.filter((id) => !roommates.includes(id)).map(describe);
      const missing = roommates.filter((id) => !view.includes(id)).map(describe);
      problems.push(`${c.name} (node ${c.node}) ${c.socket.id} connected=${c.socket.connected} inRoom=${c.inRoom} ghosts=[${ghosts}] missing=[${missing}] presence: ${c.presence.join('; ')}`);
    }
  }
  return problems;
}

/** Whether socket `id` was still connected at `time`. */
const connectedAt = (id, time) => (world.endedAt.get(id) ?? Infinity) > time;

async function act({ kind, node, redisDownMs: down }) {
  const started = Date.now();
  if (kind === 'kill-node') {
    await step(`restart-node/${node}`);
    return `node ${node} SIGKILLed and restarted (${Date.now() - started} ms)`;
  }
  if (kind === 'drain-node') {
    const { exited_after_ms: exited } = await step(`drain-restart/${node}`);
    return `node ${node} drained (exited after ${exited} ms) and restarted (${Date.now() - started} ms)`;
  }
  const killStart = Date.now();
  await step('kill-redis');
  redisKills.push([killStart, Date.now()]);
  await sleep(down);
  await step('restart-redis');
  return `Redis SIGKILLed, restarted empty ${down} ms later`;
}

test(`chaos under relay load (seed ${SEED})`, async () => {
  console.log(`# chaos seed ${SEED} (replay with SWITCHBOARD_CHAOS_SEED=${SEED})`);
  assert.equal(SERVER_URLS.length, 3, 'this file runs against three nodes');
  for (let r = 0; r < ROOMS; r++) {
    const room = roomId('chaos');
    for (let k = 0; k < ROOM_SIZE; k++) clients.push(new ChaosClient((r + k) % 3, room, `r${r}c${k}`));
  }
  const settled = async (what, timeoutMs) => {
    const deadline = Date.now() + timeoutMs;
    while (unsettled().length > 0 && Date.now() < deadline) await sleep(50);
    if (unsettled().length > 0) await keepLogs();
    assert.deepEqual(unsettled(), [], `${what} within ${timeoutMs} ms`);
  };
  await settled('every client joined its room and sees its roommates', SETTLE_MS);

  running.load = true;
  const load = (async () => {
    while (running.load) {
      for (const c of clients) c.relayToRoommates();
      await sleep(RELAY_EVERY_MS * (0.75 + jitter() * 0.5));
    }
  })();

  running.chaos = true;
  let blips = 0;
  const blipping = (async () => {
    while (running.chaos) {
      await sleep(BLIP_EVERY_MS * (0.5 + jitter()));
      if (running.chaos && clients[Math.floor(jitter() * clients.length)].blip()) blips++;
    }
  })();
  chaosStart = Date.now();
  for (const action of plan(SEED)) {
    await sleep(action.pauseMs);
    console.log(`# ${((Date.now() - chaosStart) / 1000).toFixed(1)} s: ${await act(action)}`);
  }
  running.chaos = false;
  await blipping;
  assert.deepEqual(await step('alive'), [true, true, true], 'every node runs again');
  await waitUntil(async () => {
    const health = await Promise.all([0, 1, 2].map((node) => httpGet(node, '/health')));
    return health.every(({ body }) => body.redis === 'up');
  }, 'every node reports its Redis link up and the roster whole', SETTLE_MS, 100);

  // Once every node is back and (after a crash) its ghosts reaped, everybody is in its room
  // with exactly its roommates in view.
  const settleStart = Date.now();
  await settled('every client is back in its room and sees exactly its roommates', SETTLE_MS + NODE_TTL_MS);
  console.log(`# settled ${Date.now() - settleStart} ms after the last action`);
  running.load = false;
  await load;

  // A last burst between roommates, after the dust settled: all of it is delivered.
  const burstFrom = new Map(clients.map((c) => [c, c.sent.length]));
  for (let i = 0; i < FINAL_BURST; i++) {
    for (const c of clients) c.relayToRoommates();
    await sleep(20);
  }
  await sleep(GRACE_MS);

  const failures = clients.flatMap((c) => c.failures.map((f) => `${c.name}: ${f}`));
  assert.deepEqual(failures, [], 'no join was refused for anything but unavailable');

  // Views: exactly the real roommates (no ghost, nobody missing).
  for (const c of clients) {
    const roommates = clients.filter((o) => o.room === c.room && o !== c).map((o) => o.socket.id).sort();
    assert.deepEqual([...c.view].sort(), roommates, `${c.name} (${c.socket.id}) sees exactly its roommates`);
  }

  // Introductions: at most once per pair ever, exactly once per pair of roommates now.
  const duplicated = [...world.offers].filter(([, n]) => n > 1);
  assert.deepEqual(duplicated, [], 'a pair got more than one #rtcio:init-offer');
  let introductions = 0;
  for (const c of clients) {
    for (const o of clients) {
      if (o.room !== c.room || o.name <= c.name) continue;
      const key = pairKey(c.socket.id, o.socket.id);
      assert.equal(world.offers.get(key) ?? 0, 1, `${c.name} and ${o.name} (${key}) were introduced once`);
      introductions++;
    }
  }

  // Order per pair.
  assert.deepEqual(world.reorders.slice(0, 10), [], `${world.reorders.length} relays arrived out of order`);

  // Every relay acked ok reached its target, if the target stayed connected GRACE_MS after.
  const sent = clients.flatMap((c) => c.sent);
  const owed = sent.filter((r) => r.answer === 'ok' && connectedAt(r.to, r.at + GRACE_MS));
  const missed = owed.filter((r) => !world.got.has(`${r.from}>${r.to}#${r.seq}`));
  const inCrash = (r) => redisKills.some(([before, after]) => r.answeredAt >= before - CRASH_WINDOW_MS && r.answeredAt <= after + CRASH_WINDOW_MS);
  const lost = missed.filter((r) => !inCrash(r));
  const diedWithRedis = missed.length - lost.length;
  const answers = {};
  for (const r of sent) answers[r.answer] = (answers[r.answer] ?? 0) + 1;
  const burst = clients.flatMap((c) => c.sent.slice(burstFrom.get(c)));
  const burstDelivered = burst.filter((r) => r.answer === 'ok' && world.got.has(`${r.from}>${r.to}#${r.seq}`)).length;
  // A roommate that stayed connected is never called "not in room".
  const wrongRefusals = sent.filter((r) => r.answer === 'not-in-room' && connectedAt(r.to, r.answeredAt + 1000));
  const joinRefusals = clients.reduce((n, c) => n + c.joinRefusals, 0);
  const reconnects = clients.reduce((n, c) => n + c.ids.length - 1, 0);
  const [failed, skipped] = await Promise.all([0, 1, 2].map(metricsOf)).then((all) => [
    all.reduce((n, m) => n + m.failed, 0),
    all.reduce((n, m) => n + m.skipped, 0),
  ]);
  console.log(`# seed ${SEED}: ${sent.length} relays sent: ${JSON.stringify(answers)}; ${owed.length} owed, ${lost.length} lost, ${diedWithRedis} accepted by Redis as it was killed and not delivered; `
    + `${introductions} introductions checked, ${world.offers.size} pairs introduced; ${joinRefusals} joins refused unavailable; `
    + `${reconnects} reconnects (${blips} blips); final burst ${burstDelivered}/${burst.length}; wrong not-in-room ${wrongRefusals.length}; `
    + `bus publishes failed ${failed}, skipped ${skipped} (since the last restart of each node)`);
  // How long joins waited for the roster after each Redis restart (the nodes' logs, ANSI
  // colours stripped).
  const logs = await Promise.all([0, 1, 2].map((node) => step(`log/${node}`)));
  const waits = logs.flatMap((log) => [...log.replace(/\x1b\[[0-9;]*m/g, '')
    .matchAll(/joins admitted.*?waited_ms=(\d+)/g)].map((m) => Number(m[1])));
  console.log(`# joins waited for the roster ${waits.length} times: max ${Math.max(0, ...waits)} ms, `
    + `median ${waits.sort((a, b) => a - b)[Math.floor(waits.length / 2)] ?? 0} ms`);
  if (lost.length > 0 || wrongRefusals.length > 0 || world.reorders.length > 0) await keepLogs();
  assert.deepEqual(lost.slice(0, 10), [], `${lost.length} relays acked ok were never delivered`);
  assert.deepEqual(wrongRefusals.slice(0, 10), [], `${wrongRefusals.length} relays to a connected roommate refused not-in-room`);
  assert.equal(burstDelivered, burst.length, 'the final burst was delivered in full');
  assert.ok(sent.length > 5000, `the load ran (${sent.length} relays)`);
  for (const c of clients) c.close();
});

/** The bus counters a node's /metrics reports. */
async function metricsOf(node) {
  const text = await fetch(`${SERVER_URLS[node]}/metrics`, { signal: AbortSignal.timeout(5000) }).then((r) => r.text());
  const counter = (name) => Number(text.match(new RegExp(`^${name} (\\S+)$`, 'm'))?.[1] ?? 0);
  return { failed: counter('switchboard_bus_publishes_failed_total'), skipped: counter('switchboard_bus_publishes_skipped_total') };
}
