// The official Socket.IO JavaScript client against a running Chatty API (driven by
// tests/e2e/test_js_client.py). Prints one JSON object per line on stdout:
//   {"step": "refused", "error": <connect_error message>}   a bad token is refused
//   {"step": "ready", "ack": <ack of message:send>}         connected, sent, waiting
//   {"step": "done", "received": <message:new payload>, "transport": "websocket"}
// or {"step": "failed", "error": "..."} and exit code 1.
//
// Environment: CHATTY_URL, CHATTY_TOKEN, CHATTY_CONVERSATION_ID, CHATTY_BODY (what to send),
// CHATTY_BAD_TOKEN (default "not-a-token"), CHATTY_TIMEOUT_MS (default 15000).
import { io } from "socket.io-client";

const env = process.env;
const url = env.CHATTY_URL;
const timeoutMs = Number(env.CHATTY_TIMEOUT_MS || 15000);

function say(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function fail(error) {
  say({ step: "failed", error: String(error && error.message ? error.message : error) });
  process.exit(1);
}

setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs).unref();

function refusedWith(token) {
  return new Promise((resolve, reject) => {
    const socket = io(url, { auth: { token }, reconnection: false });
    socket.on("connect", () => {
      socket.close();
      reject(new Error("a bad token was accepted"));
    });
    socket.on("connect_error", (err) => {
      socket.close();
      resolve(err.message);
    });
  });
}

function connected(token) {
  return new Promise((resolve, reject) => {
    const socket = io(url, { auth: { token }, reconnection: false });
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", reject);
  });
}

async function main() {
  if (!url || !env.CHATTY_TOKEN || !env.CHATTY_CONVERSATION_ID) {
    throw new Error("CHATTY_URL, CHATTY_TOKEN and CHATTY_CONVERSATION_ID are required");
  }
  say({ step: "refused", error: await refusedWith(env.CHATTY_BAD_TOKEN || "not-a-token") });

  const socket = await connected(env.CHATTY_TOKEN);
  const incoming = new Promise((resolve) => socket.once("message:new", resolve));
  const ack = await socket.timeout(timeoutMs).emitWithAck("message:send", {
    conversation_id: env.CHATTY_CONVERSATION_ID,
    client_msg_id: `js-${Date.now()}-${Math.random().toString(36).slice(2)}`,
    body: env.CHATTY_BODY || "hello from javascript",
  });
  say({ step: "ready", ack });
  const received = await incoming;
  const engine = socket.io.engine;
  if (engine.transport.name !== "websocket") {
    // The client starts on HTTP long-polling and upgrades to a websocket in the background.
    await new Promise((resolve) => {
      engine.once("upgrade", resolve);
      setTimeout(resolve, 5000).unref();
    });
  }
  say({ step: "done", received, transport: engine.transport.name });
  socket.close();
}

main().catch(fail);
