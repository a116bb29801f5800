// A long-lived client that behaves like an rtc.io app behind a balancer: it connects through
// nginx (optionally naming its room in the query, for room affinity), joins its room on every (re)connect (a reconnected socket has a new id and no room,
// socketioxide has no connection-state recovery), tracks its roommates from user-connected /
// user-disconnected, and records every relay it sends and receives so a test can tell which
// ones were owed and lost. With `resumable`, it opts in to switchboard's resumable sessions
// (docs/protocol.md): its peer id then survives reconnections.

import { openVia } from './proxy.mjs';

/** How long an ack may take before a relay or a join counts as failed. */
const ACK_TIMEOUT_MS = 5000;

export class AppClient {
  /**
   * `resumable`: opt in to resumable sessions. `roomInQuery`: name the room in the connection
   * query (`?room=`), as clients behind docker/nginx-room-affinity.conf do.
   */
  constructor(address, room, name, { resumable = false, roomInQuery = false } = {}) {
    this.address = address;
    this.room = room;
    this.name = name;
    /** Every peer id this client had, in order (its socket ids, unless resumable). */
    this.ids = [];
    /** Departures (`user-disconnected`, `#rtcio:peer-left`) it heard, by id. */
    this.departures = [];
    /** The resumable session's token, and whether each connection resumed. */
    this.resume = '';
    this.resumed = [];
    /** Milliseconds from each lost connection to the resumed session's event. */
    this.gaps = [];
    this.lostAt = null;
    /** Socket id -> when it disconnected. */
    this.disconnectedAt = new Map();
    /** Whether the current socket is in its room (join acknowledged, not left since). */
    this.inRoom = false;
    /** Current roommates' socket ids. */
    this.peers = new Set();
    /** Relays this client sent: { from, to, seq, at, ok }. */
    this.sent = [];
    /** "from>to#seq" of every relay it received. */
    this.got = new Set();
    /** Things that must never happen (a join refused, reconnection given up). */
    this.failures = [];
    this.seq = 0;

    const socket = openVia(address, {
      reconnection: true,
      reconnectionDelay: 100,
      reconnectionDelayMax: 1000,
      timeout: ACK_TIMEOUT_MS,
      transports: ['polling', 'websocket'],
      ...(resumable && { auth: (cb) => cb({ resume: this.resume }) }),
      ...(roomInQuery && { query: { room } }),
    });
    this.socket = socket;
    socket.log = { push() {} }; // the harness log would grow with every relay: not needed here
    if (resumable) {
      // The session event comes first on every connection, before `connect`'s join.
      socket.on('switchboard:session', ({ id, resume, resumed }) => {
        this.resume = resume;
        this.resumed.push(resumed);
        if (resumed && this.lostAt !== null) this.gaps.push(Date.now() - this.lostAt);
        if (this.ids.at(-1) !== id) this.ids.push(id);
      });
    }
    socket.on('connect', () => {
      if (!resumable) this.ids.push(socket.id);
      this.join();
    });
    socket.on('disconnect', () => {
      this.lostAt = Date.now();
      this.disconnectedAt.set(this.ids.at(-1), Date.now());
      this.inRoom = false;
      this.peers.clear();
    });
    socket.io.on('reconnect_failed', () => this.failures.push('gave up reconnecting'));
    socket.on('user-connected', ({ id }) => this.peers.add(id));
    socket.on('user-disconnected', ({ id }) => {
      this.peers.delete(id);
      this.departures.push(id);
    });
    socket.on('#rtcio:peer-left', ({ id }) => this.departures.push(id));
    socket.on('#rtcio:message', ({ source, target, data }) => this.got.add(`${source}>${target}#${data.seq}`));
  }

  /** The id the others know it by now. */
  get id() {
    return this.ids.at(-1);
  }

  async join() {
    const id = this.socket.id;
    try {
      const ack = await this.socket.timeout(ACK_TIMEOUT_MS).emitWithAck('join-room', { roomId: this.room, name: this.name });
      if (ack.ok && this.socket.id === id) {
        this.inRoom = true;
        for (const peer of ack.peers) this.peers.add(peer.id);
      }
      else if (!ack.ok) this.failures.push(`join refused: ${JSON.stringify(ack)}`);
    } catch (err) {
      // The connection ended before the ack: the next connect joins again.
      if (this.socket.connected && this.socket.id === id) this.failures.push(`join not acknowledged: ${err.message}`);
    }
  }

  async leave() {
    this.inRoom = false;
    this.peers.clear();
    await this.socket.timeout(ACK_TIMEOUT_MS).emitWithAck('leave-room', { roomId: this.room }).catch(() => {});
  }

  /** Sends one relay to each current roommate. */
  relayToPeers() {
    if (!this.socket.connected || !this.inRoom) return;
    const from = this.id;
    for (const to of this.peers) {
      const record = { from, to, seq: this.seq++, at: Date.now(), ok: false };
      this.sent.push(record);
      this.socket.timeout(ACK_TIMEOUT_MS)
        .emitWithAck('#rtcio:message', { source: from, target: to, data: { seq: record.seq } })
        .then((ack) => { record.ok = ack.ok === true; }, () => {});
    }
  }

  close() {
    this.socket.disconnect();
  }
}

/**
 * Relays a test may call lost: acknowledged by the server while both ends stayed connected
 * for `graceMs` after the send, yet never received. `clients` is every client of the test.
 */
export function lostRelays(clients, graceMs) {
  const disconnectedAt = new Map();
  const got = new Set();
  for (const c of clients) {
    for (const [id, at] of c.disconnectedAt) disconnectedAt.set(id, at);
    for (const key of c.got) got.add(key);
  }
  const stayed = (id, until) => (disconnectedAt.get(id) ?? Infinity) > until;
  const owed = clients.flatMap((c) => c.sent).filter((r) => r.ok && stayed(r.from, r.at + graceMs) && stayed(r.to, r.at + graceMs));
  return { owed: owed.length, lost: owed.filter((r) => !got.has(`${r.from}>${r.to}#${r.seq}`)) };
}
