// The memory inspector: one tenant's state, its memories (filtered, paged),
// what Recall returns for a question, and forgetting one memory, all through
// the Connect protocol on the page's own origin (the server's HTTP port).
// Credentials live in this module's variables only: never in storage or the URL.
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { AdminService } from "../../src/gen/mlsdm/v1/admin_service_pb.js";
import { CognitiveService } from "../../src/gen/mlsdm/v1/cognitive_service_pb.js";
import { MemoryService } from "../../src/gen/mlsdm/v1/memory_service_pb.js";
import type { Memory } from "../../src/gen/mlsdm/v1/types_pb.js";
import { MemoryKind, Phase } from "../../src/gen/mlsdm/v1/types_pb.js";

const session = { key: "", tenant: "default" };
let pageToken = "";

const withIdentity: Interceptor = (next) => async (req) => {
  if (session.key) req.header.set("authorization", `Bearer ${session.key}`);
  req.header.set("x-mlsdm-tenant", session.tenant);
  return next(req);
};
const transport = createConnectTransport({
  baseUrl: window.location.origin,
  interceptors: [withIdentity],
});
const cognitive = createClient(CognitiveService, transport);
const memory = createClient(MemoryService, transport);
const admin = createClient(AdminService, transport);

function el<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`#${id} missing`);
  return found as T;
}
const value = (id: string) => el<HTMLInputElement>(id).value.trim();

function showError(err: unknown): void {
  const box = el("error");
  const error = ConnectError.from(err);
  const info = error.findDetails(ErrorInfoSchema)[0];
  const reason = info ? ` ${info.reason}` : "";
  box.textContent = `${Code[error.code]}${reason}: ${error.rawMessage}`;
  box.dataset.reason = info?.reason ?? "";
  box.hidden = false;
}

function clearError(): void {
  el("error").hidden = true;
  el("error").textContent = "";
}

async function guarded(work: () => Promise<void>): Promise<void> {
  clearError();
  try {
    await work();
  } catch (err) {
    showError(err);
  }
}

function cell(row: HTMLTableRowElement, text: string, cls = ""): void {
  const td = row.insertCell();
  td.textContent = text;
  if (cls) td.className = cls;
}

function filter() {
  const labels: Record<string, string> = {};
  const label = value("filter-label");
  if (label.includes("=")) {
    const [k, ...rest] = label.split("=");
    labels[k.trim()] = rest.join("=").trim();
  }
  return { speaker: value("filter-speaker"), session: value("filter-session"), labels };
}

async function loadState(): Promise<void> {
  const state = await cognitive.getState({});
  el("state-tenant").textContent = `(${state.tenant})`;
  el("state-phase").textContent = Phase[state.phase] ?? String(state.phase);
  el("state-threshold").textContent = state.moralThreshold.toFixed(3);
  el("state-step").textContent = String(state.step);
  const used = state.store?.used ?? 0n;
  const capacity = state.store?.capacity ?? 0n;
  el("state-store").textContent = `${used} / ${capacity} vectors`;
}

function memoryRow(body: HTMLTableSectionElement, m: Memory): void {
  const row = body.insertRow();
  row.dataset.id = m.id;
  cell(row, m.text, "text");
  cell(row, m.response);
  cell(row, m.speaker);
  cell(row, m.session);
  cell(row, String(m.step));
  cell(row, MemoryKind[m.kind] ?? "");
  const button = document.createElement("button");
  button.type = "button";
  button.className = "forget";
  button.textContent = "Forget";
  button.addEventListener("click", () => void forget(m));
  row.insertCell().append(button);
}

async function listMemories(append: boolean): Promise<void> {
  const body = el<HTMLTableElement>("memories").tBodies[0];
  const reply = await memory.listMemories({
    pageSize: 50,
    pageToken: append ? pageToken : "",
    filter: filter(),
  });
  if (!append) body.replaceChildren();
  for (const m of reply.memories) memoryRow(body, m);
  pageToken = reply.nextPageToken;
  el("more").hidden = !pageToken;
  el("memories-total").textContent = `(${reply.total} in the tenant)`;
}

async function recall(): Promise<void> {
  const body = el<HTMLTableElement>("recall-results").tBodies[0];
  const topK = Number(value("top-k")) || 5;
  const reply = await memory.recall({ query: value("query"), topK, filter: filter() });
  body.replaceChildren();
  for (const item of reply.items) {
    const row = body.insertRow();
    row.dataset.id = item.memory?.id ?? "";
    cell(row, item.score.toFixed(4), "score");
    cell(row, item.memory?.text ?? "", "text");
    cell(row, item.memory?.response ?? "");
    cell(row, item.memory?.speaker ?? "");
  }
}

async function forget(m: Memory): Promise<void> {
  if (!window.confirm(`Forget this memory of ${session.tenant}?\n\n${m.text}`)) return;
  await guarded(async () => {
    await memory.forgetMemory({ id: m.id });
    // Earlier recall results may hold the forgotten memory.
    el<HTMLTableElement>("recall-results").tBodies[0].replaceChildren();
    await Promise.all([listMemories(false), loadState()]);
  });
}

async function listTenants(): Promise<void> {
  const reply = await admin.listTenants({ pageSize: 1000 });
  const names = el("tenant-names");
  names.replaceChildren();
  for (const t of reply.tenants) {
    const option = document.createElement("option");
    option.value = t.tenant;
    names.append(option);
  }
}

function onSubmit(id: string, work: () => Promise<void>): void {
  el<HTMLFormElement>(id).addEventListener("submit", (event) => {
    event.preventDefault();
    void guarded(work);
  });
}

function clearPanels(): void {
  for (const id of ["state-phase", "state-threshold", "state-step", "state-store"]) {
    el(id).textContent = "-";
  }
  el("state-tenant").textContent = "";
  el("memories-total").textContent = "";
  el<HTMLTableElement>("memories").tBodies[0].replaceChildren();
  el<HTMLTableElement>("recall-results").tBodies[0].replaceChildren();
  el("more").hidden = true;
}

onSubmit("login", async () => {
  session.key = el<HTMLInputElement>("key").value;
  session.tenant = value("tenant") || "default";
  // Nothing of the previous tenant stays on screen, whatever this one answers.
  clearPanels();
  await loadState();
  await listMemories(false);
});
onSubmit("filters", () => listMemories(false));
onSubmit("recall-form", recall);
el("more").addEventListener("click", () => void guarded(() => listMemories(true)));
el("list-tenants").addEventListener("click", () => {
  session.key = el<HTMLInputElement>("key").value;
  void guarded(listTenants);
});
document.body.dataset.ready = "true";
