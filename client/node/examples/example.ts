// Calls GetState, an accepted Generate and a ProcessEvent with the wrong
// dimension. Usage: MLSDM_ADDR=127.0.0.1:50051 npm run example
import { ConnectError, Code } from "@connectrpc/connect";
import { callHeaders, cognitiveClient, errorInfos, grpcTransport, HEADER_VERSION, Phase } from "../src/index.js";

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
