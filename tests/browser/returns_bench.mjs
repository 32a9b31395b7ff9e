// The returns-bench page in real headless Chromium: sign in, drop 10 photos, watch their
// results arrive without a reload, relabel one from the review queue, filter, download the CSV.
// Run by tests/browser.rs, which starts `autorma serve` and checks the server side; this
// script prints one JSON line of what it did, and exits non-zero on the first failure.
//
// Environment: BENCH_URL, BENCH_TOKEN, BENCH_PHOTOS (a folder of PNGs and one JPEG stored
// sideways, `return-09.jpg`, 40 x 20 with EXIF orientation 6), BENCH_SCREENSHOTS
// (a folder), CHROMIUM (default /usr/bin/chromium).
import { readFileSync, readdirSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { strict as assert } from "node:assert";
import { chromium } from "playwright-core";

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};
const url = env("BENCH_URL");
const token = env("BENCH_TOKEN");
const photosDir = env("BENCH_PHOTOS");
const shots = env("BENCH_SCREENSHOTS");
mkdirSync(shots, { recursive: true });
const TIMEOUT = 60_000;

const browser = await chromium.launch({
  executablePath: env("CHROMIUM", "/usr/bin/chromium"),
  // No sandbox (CI runs as root); no calls home, which this closed network refuses.
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
try {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  const consoleErrors = [];
  // The first call is refused until the token is given: that 401 is expected.
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().includes("status of 401")) consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  const shot = (name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });

  // The server has a token: the page asks for it.
  await page.goto(url);
  await page.getByTestId("login").waitFor();
  await shot("1-sign-in");
  await page.getByTestId("token-input").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByTestId("model").filter({ hasText: "tiny5" }).waitFor();
  await page.getByTestId("live").filter({ hasText: "live" }).waitFor();
  // Set here, gone if the page reloads.
  await page.evaluate(() => { window.notReloaded = true; });

  // Drop 10 photos on the drop zone, as a person drags them from a folder.
  const files = readdirSync(photosDir).filter((f) => f.endsWith(".png") || f.endsWith(".jpg")).sort()
    .map((name) => ({ name, b64: readFileSync(join(photosDir, name)).toString("base64") }));
  assert.equal(files.length, 10, "the test gives 10 photos");
  const dataTransfer = await page.evaluateHandle((files) => {
    const dt = new DataTransfer();
    for (const f of files) {
      const bytes = Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0));
      dt.items.add(new File([bytes], f.name, { type: f.name.endsWith(".jpg") ? "image/jpeg" : "image/png" }));
    }
    return dt;
  }, files);
  await page.dispatchEvent("[data-testid=drop-zone]", "drop", { dataTransfer });
  const cards = page.getByTestId("card");
  await assert.doesNotReject(cards.nth(9).waitFor(), "10 cards appear");
  assert.equal(await cards.count(), 10);
  await shot("2-dropped");

  // Each card gets its result live (through /v1/events), without a reload.
  await page.waitForFunction(() => {
    const cards = document.querySelectorAll("[data-testid=card]");
    return cards.length === 10 && [...cards].every((c) => c.dataset.decision === "auto" || c.dataset.decision === "review");
  }, null, { timeout: TIMEOUT });
  assert.equal(await page.evaluate(() => window.notReloaded), true, "results arrived without a reload");
  const uploaded = await page.evaluate(() => [...document.querySelectorAll("[data-testid=card]")].map((c) => ({
    name: c.querySelector(".name").textContent, key: c.dataset.key, label: c.dataset.label, decision: c.dataset.decision,
  })));
  const unsure = uploaded.filter((c) => c.decision === "review");
  assert.ok(unsure.length > 0, "some photos go to review");
  await shot("3-classified");

  // The sideways photo is shown upright (20 x 40), from the dropped file and from the server's copy.
  const sideways = uploaded.find((c) => c.name === "return-09.jpg");
  assert.ok(sideways, "the sideways photo has a card");
  const upright = await page.evaluate(async ({ key, token }) => {
    const size = async (src) => {
      const img = new Image();
      img.src = src;
      await img.decode();
      return [img.naturalWidth, img.naturalHeight];
    };
    const card = document.querySelector(`[data-testid=card][data-key="${CSS.escape(key)}"] img`);
    const served = await fetch("/v1/photos/" + key.split("/").map(encodeURIComponent).join("/"),
      { headers: { Authorization: `Bearer ${token}` } });
    return { card: await size(card.src), served: await size(URL.createObjectURL(await served.blob())) };
  }, { key: sideways.key, token });
  assert.deepEqual(upright, { card: [20, 40], served: [20, 40] }, "the sideways photo is shown upright");

  // The review queue holds the unsure ones; relabel one with another class.
  const count = async (id) => Number(await page.getByTestId(id).textContent());
  await page.waitForFunction((n) => Number(document.querySelector("[data-testid=review-count]").textContent) === n,
    unsure.length);
  const items = page.getByTestId("review-item");
  await items.first().waitFor();
  assert.equal(await items.count(), unsure.length);
  const first = items.first();
  const key = await first.getAttribute("data-key");
  const modelLabel = uploaded.find((c) => c.key === key).label;
  const other = first.locator("button.other").first();
  const newLabel = await other.getAttribute("data-label");
  assert.notEqual(newLabel, modelLabel);
  await shot("4-review-queue");
  await other.click();
  await page.locator(`[data-testid=review-item][data-key="${key}"]`).waitFor({ state: "detached" });
  assert.equal(await count("review-count"), unsure.length - 1, "the corrected photo left the queue");
  const corrected = page.locator(`[data-testid=card][data-key="${key}"] .chip`);
  assert.match(await corrected.textContent(), new RegExp(`${newLabel} · corrected`));
  await shot("5-relabelled");

  // All results, filtered by decision.
  await page.getByTestId("tab-results").click();
  await page.waitForFunction(() => Number(document.querySelector("[data-testid=results-count]").textContent) === 10);
  await page.getByTestId("filter-decision").selectOption("review");
  await page.waitForFunction((n) => document.querySelectorAll("[data-testid=result-row]").length === n
    && Number(document.querySelector("[data-testid=results-count]").textContent) === n, unsure.length);
  await shot("6-results-review");
  await page.getByTestId("filter-decision").selectOption("");
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=result-row]").length === 10);

  // The CSV: a header and one row per photo, with the labels the page showed.
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByTestId("download-csv").click()]);
  assert.equal(download.suggestedFilename(), "results.csv");
  const csv = readFileSync(await download.path(), "utf8").trim().split("\n");
  assert.match(csv[0], /^key,etag,label,confidence,decision,/);
  const rows = new Map(csv.slice(1).map((line) => { const [k, , label, , decision] = line.split(","); return [k, { label, decision }]; }));
  assert.equal(rows.size, 10);
  for (const c of uploaded) {
    assert.deepEqual(rows.get(c.key), { label: c.label, decision: c.decision }, `CSV row of ${c.key}`);
  }
  await shot("7-done");

  // A wrong-item return: a photo the model reads with confidence, uploaded again with a claim
  // of the class it gives the least probability; the review queue says it is not what was
  // ordered, with both labels.
  await page.getByTestId("tab-review").click();
  const sure = uploaded.find((c) => c.decision === "auto" && c.name.endsWith(".png"));
  assert.ok(sure, "some PNG is classified with confidence");
  const wrong = await page.evaluate(async ({ key, token }) => {
    const auth = { Authorization: `Bearer ${token}` };
    const path = key.split("/").map(encodeURIComponent).join("/");
    const result = await (await fetch("/v1/results/" + path, { headers: auth })).json();
    const claimed = Object.entries(result.probabilities).sort((a, b) => a[1] - b[1])[0][0];
    const photo = await (await fetch("/v1/photos/" + path, { headers: auth })).blob();
    const answer = await (await fetch(`/v1/uploads?name=wrong-item.png&expected_label=${claimed}&rma_id=R-77`,
      { method: "POST", headers: { ...auth, "Content-Type": "image/png" }, body: photo })).json();
    return { key: answer.uploads[0].key, claimed, seen: result.label };
  }, { key: sure.key, token });
  const flagged = page.locator(`[data-testid=review-item][data-key="${wrong.key}"] [data-testid=wrong-item]`);
  await flagged.waitFor({ state: "visible" });
  const said = await flagged.textContent();
  assert.match(said, /Not what was ordered/);
  assert.match(said, new RegExp(`claimed ${wrong.claimed},\\s*seen ${wrong.seen}`));
  assert.match(said, /RMA R-77/);
  assert.equal(await page.locator("[data-testid=wrong-item]:visible").count(), 1, "only the wrong item is marked");
  await shot("8-wrong-item");

  // The right class but another product: the same photo claimed as its own label and as SKU
  // GREY-1, whose catalogue photo is grey. The queue shows both photos side by side.
  const swapped = await page.evaluate(async ({ key, token, label }) => {
    const auth = { Authorization: `Bearer ${token}` };
    const photo = await (await fetch("/v1/photos/" + key.split("/").map(encodeURIComponent).join("/"), { headers: auth })).blob();
    const answer = await (await fetch(`/v1/uploads?name=wrong-product.png&expected_label=${label}&sku=GREY-1`,
      { method: "POST", headers: { ...auth, "Content-Type": "image/png" }, body: photo })).json();
    return { key: answer.uploads[0].key };
  }, { key: sure.key, token, label: sure.label });
  const item = page.locator(`[data-testid=review-item][data-key="${swapped.key}"]`);
  await item.getByTestId("product-check").waitFor({ state: "visible" });
  assert.match(await item.getByTestId("product-check").textContent(), /Not the ordered product \(SKU GREY-1, similarity -?[0-9.]+\)/);
  assert.ok(await item.getByTestId("wrong-item").isHidden(), "the category was right: no category badge");
  const catalogue = item.getByTestId("catalogue-photo");
  await catalogue.waitFor({ state: "visible" });
  await page.waitForFunction((el) => el.complete && el.naturalWidth > 0, await catalogue.elementHandle());
  const [returned, ordered] = await Promise.all([item.locator("img").first().boundingBox(), catalogue.boundingBox()]);
  assert.ok(Math.abs(returned.y - ordered.y) < 2 && ordered.x > returned.x + returned.width - 2,
    `the two photos side by side: ${JSON.stringify({ returned, ordered })}`);
  await shot("9-wrong-product");

  assert.deepEqual(consoleErrors, [], "no errors in the page's console");
  console.log(JSON.stringify({ uploaded, corrected: { key, label: newLabel }, wrong_item: wrong, wrong_product: swapped }));
} finally {
  await browser.close();
}
