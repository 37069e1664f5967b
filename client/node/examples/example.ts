// Calls GetState, an accepted Generate, a ProcessEvent with the wrong
// dimension, then the memory calls. Usage: MLSDM_ADDR=127.0.0.1:50051 npm run example
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ConnectError, Code } from "@connectrpc/connect";
import {
  allMemories,
  callHeaders,
  cognitiveClient,
  errorInfos,
  grpcTransport,
  HEADER_VERSION,
  memoryClient,
  Phase,
} from "../src/index.js";

const client = cognitiveClient(grpcTransport(process.env.MLSDM_ADDR ?? "127.0.0.1:50051"));
const headers = callHeaders("example-node", "normal");

let version = "";
const state = await client.getState({}, {
  headers,
  timeoutMs: 10_000,
  onTrailer: (t) => { version = t.get(HEADER_VERSION) ?? ""; },
});
console.log(`server ${version}, tenant ${state.tenant}, step ${state.step}, phase ${Phase[state.phase]}, dim ${state.dim}`);

const gen = await client.generate(
  { prompt: "Explain how a library organises its books by subject.", moralValue: 0.9 },
  { headers, timeoutMs: 10_000 },
);
console.log(`accepted=${gen.accepted} response=${JSON.stringify(gen.response)}`);

try {
  await client.processEvent({ vector: [1, 2, 3], moralValue: 0.9 }, { headers, timeoutMs: 10_000 });
} catch (err) {
  const info = errorInfos(err)[0];
  console.log(`ProcessEvent: code=${Code[ConnectError.from(err).code]} reason=${info?.reason} metadata=${JSON.stringify(info?.metadata)}`);
}

// The memory calls: remember two turns, recall one (Recall stores nothing),
// walk the session's memories, forget the recalled one.
const memory = memoryClient(grpcTransport(process.env.MLSDM_ADDR ?? "127.0.0.1:50051"));
const said = new Date(Date.UTC(2023, 4, 8, 13, 56));
const stored = await memory.remember({
  memories: [
    { text: "Caroline: I went to the support group yesterday.", speaker: "Caroline", occurredAt: timestampFromDate(said), session: "conv-1" },
    { text: "Melanie: I painted a sunrise last week.", speaker: "Melanie", occurredAt: timestampFromDate(said), session: "conv-1" },
  ],
}, { headers, timeoutMs: 10_000 });
console.log(`remembered ${stored.storedCount}`);
const hits = await memory.recall({ query: "When did Caroline go to the support group?", topK: 1 }, { headers, timeoutMs: 10_000 });
for (const { memory: m } of hits.items) {
  console.log(`recalled ${m?.id} (${m?.speaker}, ${m?.occurredAt ? timestampDate(m.occurredAt).toISOString() : "?"}): ${JSON.stringify(m?.text)}`);
}
for await (const m of allMemories(memory, { session: "conv-1" }, 100, { headers, timeoutMs: 10_000 })) {
  console.log(`listed ${m.id}: ${JSON.stringify(m.text)}`);
}
const recalled = hits.items[0]?.memory?.id;
if (recalled) {
  await memory.forgetMemory({ id: recalled }, { headers, timeoutMs: 10_000 });
  try {
    await memory.getMemory({ id: recalled }, { headers, timeoutMs: 10_000 });
  } catch (err) {
    console.log(`GetMemory after forget: code=${Code[ConnectError.from(err).code]} reason=${errorInfos(err)[0]?.reason}`);
  }
}
