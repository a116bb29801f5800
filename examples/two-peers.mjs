// Two peers meet in a room through switchboard using nothing but the stock socket.io
// client: the late joiner gets the backfill, the existing peer is asked to offer, and the
// offer is relayed. Usage: node examples/two-peers.mjs [http://127.0.0.1:3001]
//
// socket.io-client is resolved from tests/js/node_modules (run `npm ci` there first), or
// from wherever your own project installs it.
import { createRequire } from "node:module";

const require = createRequire(new URL("../tests/js/package.json", import.meta.url));
const { io } = require("socket.io-client");

const url = process.argv[2] ?? "http://127.0.0.1:3001";
const room = `demo-${Date.now()}`;
const timeout = setTimeout(() => {
  console.error("timed out");
  process.exit(1);
}, 5000);

const alice = io(url);
alice.on("#rtcio:init-offer", ({ source }) => {
  console.log(`alice: asked to offer to ${source}`);
  alice.emit("#rtcio:message", {
    source: alice.id,
    target: source,
    data: { description: { type: "offer", sdp: "v=0\r\n" } },
  });
});
await alice.emitWithAck("join-room", { roomId: room, name: "alice" });
await alice.emitWithAck("media-state", { roomId: room, mic: false, cam: true });

const bob = io(url);
bob.on("user-connected", (peer) => console.log("bob: backfill", peer));
bob.on("media-state", (state) => console.log("bob: media state", state));
const offer = new Promise((resolve) => bob.on("#rtcio:message", resolve));
const ack = await bob.emitWithAck("join-room", { roomId: room, name: "bob" });
console.log("bob: join ack", JSON.stringify(ack));
console.log("bob: got", JSON.stringify(await offer));

alice.close();
bob.close();
clearTimeout(timeout);
