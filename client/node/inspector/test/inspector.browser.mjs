// Drives the memory inspector in a real headless Chromium (the distribution's
// package, /usr/bin/chromium, through playwright-core): load, open a tenant,
// list with a filter, recall, forget with the confirmation, and the error a
// forbidden tenant shows. Started by tests/http/test_inspector.py, which owns
// the server; prints one JSON line of what it saw, exits non-zero on failure.
//   BASE_URL, KEY, TENANT, FORBIDDEN_TENANT, FORGET_TEXT, QUERY, SPEAKER, OUT_DIR
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const env = process.env;
const out = env.OUT_DIR;
const profile = mkdtempSync(join(tmpdir(), "mlsdm-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
  viewport: { width: 1280, height: 900 },
});
const seen = {};
try {
  const page = context.pages()[0] ?? (await context.newPage());
  const pageErrors = [];
  page.on("pageerror", (err) => pageErrors.push(String(err)));
  await page.goto(`${env.BASE_URL}/ui/`);
  await page.waitForSelector("body[data-ready=true]");

  // Open the tenant: its state and its memories.
  await page.fill("#key", env.KEY);
  await page.fill("#tenant", env.TENANT);
  await page.click("#open");
  await page.waitForFunction(() => document.querySelector("#state-phase").textContent !== "-");
  await page.waitForSelector("#memories tbody tr");
  seen.phase = await page.textContent("#state-phase");
  seen.threshold = await page.textContent("#state-threshold");
  seen.store = await page.textContent("#state-store");
  seen.listed = await page.$$eval("#memories tbody tr td.text", (tds) => tds.map((t) => t.textContent));

  // A filter narrows the list.
  await page.fill("#filter-speaker", env.SPEAKER);
  await page.click("#list");
  await page.waitForFunction(
    (n) => document.querySelectorAll("#memories tbody tr").length < n,
    seen.listed.length,
  );
  seen.filtered = await page.$$eval("#memories tbody tr td.text", (tds) => tds.map((t) => t.textContent));
  await page.fill("#filter-speaker", "");
  await page.click("#list");
  await page.waitForFunction(
    (n) => document.querySelectorAll("#memories tbody tr").length === n,
    seen.listed.length,
  );

  // Recall: results with their scores.
  await page.fill("#query", env.QUERY);
  await page.click("#recall");
  await page.waitForSelector("#recall-results tbody tr");
  seen.recalled = await page.$$eval("#recall-results tbody tr", (rows) =>
    rows.map((r) => ({ score: Number(r.cells[0].textContent), text: r.cells[1].textContent })),
  );

  // Forget one memory: the confirmation is shown and accepted.
  page.once("dialog", async (dialog) => {
    seen.confirmation = dialog.message();
    await dialog.accept();
  });
  const row = page.locator("#memories tbody tr", { hasText: env.FORGET_TEXT });
  await row.locator("button.forget").click();
  await page.waitForFunction(
    (n) => document.querySelectorAll("#memories tbody tr").length === n - 1,
    seen.listed.length,
  );
  seen.afterForget = await page.$$eval("#memories tbody tr td.text", (tds) => tds.map((t) => t.textContent));
  await page.screenshot({ path: join(out, "inspector.png"), fullPage: true });

  // A tenant the key is not bound to: the error, with its ErrorInfo reason.
  await page.fill("#tenant", env.FORBIDDEN_TENANT);
  await page.click("#open");
  await page.waitForSelector("#error:not([hidden])");
  seen.error = await page.textContent("#error");
  seen.errorReason = await page.getAttribute("#error", "data-reason");
  seen.phaseAfterError = await page.textContent("#state-phase");
  seen.rowsAfterError = await page.$$eval("#memories tbody tr", (rows) => rows.length);
  await page.screenshot({ path: join(out, "inspector-forbidden.png"), fullPage: true });
  seen.pageErrors = pageErrors;
  console.log(JSON.stringify(seen));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
