// Resumable sessions, the few lines an rtc.io-style app adds (switchboard's extension; see
// docs/protocol.md, "Session resume"). Alice opts in; her transport drops; socket.io-client
// reconnects by itself and she continues her session under the same peer id: Bob hears
// nothing, and the relay he sent her meanwhile arrives after the resume.
// Usage: node examples/resume.mjs [http://127.0.0.1:3001]
//
// socket.io-client is resolved from tests/js/node_modules (run `npm ci` there first), or
// from wherever your own project installs it.
import { createRequire } from "node:module";

const require = createRequire(new URL("../tests/js/package.json", import.meta.url));
const { io } = require("socket.io-client");

const url = process.argv[2] ?? "http://127.0.0.1:3001";
const room = `resume-${Date.now()}`;
const timeout = setTimeout(() => {
  console.error("timed out");
  process.exit(1);
}, 10000);

// --- what an app adds -----------------------------------------------------------------------
let resume = ""; // the token of our session ('' = start one)
let selfId = null; // our peer id: use it, not socket.id, wherever the app names itself
const alice = io(url, {
  reconnectionDelay: 100,
  auth: (cb) => cb({ resume }), // a function: every reconnection sends the latest token
});
alice.on("switchboard:session", (session) => {
  resume = session.resume;
  selfId = session.id;
  console.log(`alice: session ${session.id} (resumed: ${session.resumed})`);
});
// Apps re-send join-room on every connect; for a resumed session it only repeats the backfill.
const joined = new Promise((resolve) =>
  alice.on("connect", () => alice.emit("join-room", { roomId: room, name: "alice" }, resolve)),
);
// ---------------------------------------------------------------------------------------------

alice.on("#rtcio:message", ({ source, data }) => console.log(`alice: message from ${source}: ${JSON.stringify(data)}`));
await joined;

const bob = io(url);
bob.onAny((event, payload) => console.log(`bob: ${event} ${JSON.stringify(payload)}`));
await bob.emitWithAck("join-room", { roomId: room, name: "bob" });
const peer = selfId;

// The network blips: Alice's transport closes; socket.io-client reconnects on its own.
alice.io.engine.close();
const ack = await bob.emitWithAck("#rtcio:message", { source: bob.id, target: peer, data: { during: "the gap" } });
console.log(`bob: relay during the gap acked ${JSON.stringify(ack)}`);
await new Promise((resolve) => alice.on("#rtcio:message", ({ data }) => data.during && resolve()));
console.log(`alice: same peer id after the reconnect: ${selfId === peer}`);

clearTimeout(timeout);
alice.disconnect();
bob.disconnect();
