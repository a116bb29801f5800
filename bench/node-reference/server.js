// The rtc.io signaling protocol on Node socket.io 4.8: the baseline switchboard is measured
// against. It behaves like the Node rtc.io-server teams run today (it trusts clients: relays
// go to any target, `source` is forwarded as written, payloads are not validated), so the
// comparison is with that server, not with a strawman.
//
// Single process: room state in memory. With REDIS_URL: @socket.io/redis-adapter carries
// emits between processes, and room membership + media state live in one Redis hash per room
// (field = socket id, value = JSON {name, mic, cam}), as the rtc.io docs recommend.
//
// Env: HOST (default 127.0.0.1), PORT (default 3001), REDIS_URL (optional).

import { createServer } from "node:http";
import { Server } from "socket.io";

const host = process.env.HOST ?? "127.0.0.1";
const port = Number(process.env.PORT ?? 3001);
const redisUrl = process.env.REDIS_URL;

/** Socket.io room that addresses everyone in call room `roomId` (apart from socket-id rooms). */
const callRoom = (roomId) => `call:${roomId}`;

/** Room state kept in this process. Every method is synchronous, so a join is atomic. */
class MemoryRooms {
  constructor() {
    this.rooms = new Map(); // roomId -> Map(socketId -> {name, mic, cam})
  }
  async join(roomId, id, name) {
    let room = this.rooms.get(roomId);
    if (!room) this.rooms.set(roomId, (room = new Map()));
    const before = [...room.entries()].map(([peer, m]) => ({ id: peer, ...m }));
    room.set(id, { name });
    return before;
  }
  async leave(roomId, id) {
    const room = this.rooms.get(roomId);
    if (!room) return;
    room.delete(id);
    if (room.size === 0) this.rooms.delete(roomId);
  }
  async setMedia(roomId, id, mic, cam) {
    const member = this.rooms.get(roomId)?.get(id);
    if (member) Object.assign(member, { mic, cam });
  }
}

/** Room state in Redis: snapshot + admission in one MULTI, media state as hash fields. */
class RedisRooms {
  constructor(client) {
    this.client = client;
  }
  key(roomId) {
    return `rtcio:room:${roomId}`;
  }
  async join(roomId, id, name) {
    const [before] = await this.client
      .multi()
      .hGetAll(this.key(roomId))
      .hSet(this.key(roomId), id, JSON.stringify({ name }))
      .exec();
    return Object.entries(before ?? {})
      .filter(([peer]) => peer !== id)
      .map(([peer, json]) => ({ id: peer, ...JSON.parse(json) }));
  }
  async leave(roomId, id) {
    await this.client.hDel(this.key(roomId), id);
  }
  async setMedia(roomId, id, mic, cam) {
    const json = await this.client.hGet(this.key(roomId), id);
    if (json) {
      const member = { ...JSON.parse(json), mic, cam };
      await this.client.hSet(this.key(roomId), id, JSON.stringify(member));
    }
  }
}

const httpServer = createServer((req, res) => {
  if (req.url === "/health") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ status: "ok", sockets: io.engine.clientsCount }));
    return;
  }
  res.writeHead(404).end();
});
const io = new Server(httpServer, { cors: { origin: "*" } });

let rooms = new MemoryRooms();
if (redisUrl) {
  const { createClient } = await import("redis");
  const { createAdapter } = await import("@socket.io/redis-adapter");
  const pub = createClient({ url: redisUrl });
  const sub = pub.duplicate();
  const state = pub.duplicate();
  for (const c of [pub, sub, state]) c.on("error", (e) => console.error("redis:", e.message));
  await Promise.all([pub.connect(), sub.connect(), state.connect()]);
  io.adapter(createAdapter(pub, sub));
  rooms = new RedisRooms(state);
}

const reply = (ack, value) => {
  if (typeof ack === "function") ack(value);
};

io.on("connection", (socket) => {
  // Call rooms this socket joined, so the disconnect announcement reaches them.
  const joined = new Set();

  socket.on("join-room", async (payload, ack) => {
    const { roomId, name = "" } = payload ?? {};
    if (joined.has(roomId)) {
      // Already in: change nothing, tell nobody.
      reply(ack, { ok: true, roomId, self: socket.id, peers: [] });
      return;
    }
    joined.add(roomId);
    socket.join(callRoom(roomId));
    const peers = await rooms.join(roomId, socket.id, name);
    for (const peer of peers) {
      socket.emit("user-connected", { id: peer.id, name: peer.name });
      if (peer.mic !== undefined) {
        socket.emit("media-state", { id: peer.id, roomId, mic: peer.mic, cam: peer.cam });
      }
    }
    for (const peer of peers) {
      io.to(peer.id).emit("user-connected", { id: socket.id, name });
      io.to(peer.id).emit("#rtcio:init-offer", { source: socket.id });
    }
    reply(ack, { ok: true, roomId, self: socket.id, peers });
  });

  socket.on("leave-room", async (payload, ack) => {
    const { roomId } = payload ?? {};
    if (joined.delete(roomId)) {
      socket.leave(callRoom(roomId));
      await rooms.leave(roomId, socket.id);
      socket.to(callRoom(roomId)).emit("user-disconnected", { id: socket.id });
    }
    reply(ack, { ok: true });
  });

  socket.on("media-state", async (payload, ack) => {
    const { roomId, mic, cam } = payload ?? {};
    await rooms.setMedia(roomId, socket.id, mic, cam);
    socket.to(callRoom(roomId)).emit("media-state", { id: socket.id, roomId, mic, cam });
    reply(ack, { ok: true });
  });

  socket.on("stopScreenShare", (payload, ack) => {
    const roomId = payload?.roomId;
    socket.to(callRoom(roomId)).emit("stopScreenShare", { ...payload, id: socket.id });
    reply(ack, { ok: true });
  });

  socket.on("#rtcio:message", (envelope, ack) => {
    if (envelope && typeof envelope.target === "string") {
      socket.to(envelope.target).emit("#rtcio:message", envelope);
    }
    reply(ack, { ok: true });
  });

  socket.on("disconnecting", () => {
    for (const roomId of joined) {
      socket.to(callRoom(roomId)).emit("#rtcio:peer-left", { id: socket.id });
      socket.to(callRoom(roomId)).emit("user-disconnected", { id: socket.id });
      rooms.leave(roomId, socket.id).catch((e) => console.error("leave:", e.message));
    }
  });
});

httpServer.listen(port, host, () => {
  console.log(`node-reference listening on http://${host}:${port}${redisUrl ? " (redis)" : ""}`);
});
