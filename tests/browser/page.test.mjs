// The restore page in a real browser (Debian's headless Chromium, driven by playwright-core):
// upload a photo, wait for the result, check the restored image is shown with its priors,
// download it, restore a sample through RestoreStream, and see a bad file's error as the server
// words it. Screenshots go to $OUT.
//
// Environment: WEB_URL (the mesh's web front), CHROMIUM (the browser), FIXTURES (the sample
// photos), OUT (where screenshots and the download go).
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const url = process.env.WEB_URL ?? "http://127.0.0.1:8080/";
const out = process.env.OUT ?? "out/browser";
const fixtures = process.env.FIXTURES ?? "tests/fixtures/samples";
mkdirSync(out, { recursive: true });

const step = (text) => console.log(`    ${text}`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  // Root in a container or CI machine has no user namespace sandbox.
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 1100, height: 1000 }, acceptDownloads: true });
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console error: ${message.text()}`);
  });

  step(`open ${url}`);
  await page.goto(url);
  assert.match(await page.title(), /ClearAIR/);
  assert.equal(await page.getAttribute("body", "data-state"), "idle");

  const finished = async (what) => {
    await page.waitForSelector("body[data-state=done], body[data-state=error]", { timeout: 180_000 });
    const state = await page.getAttribute("body", "data-state");
    if (state !== "done") {
      throw new Error(`${what}: the page shows an error: ${await page.textContent("#error")}`);
    }
  };

  // 1. Upload a photo through the file input: Analyze, then Restore.
  step("upload noisy-coffee.png");
  await page.setInputFiles("#file", join(fixtures, "noisy-coffee.png"));
  await finished("upload");
  assert.equal(await page.getAttribute("body", "data-call"), "Restore");
  const after = await page.$eval("#after", (img) => ({ w: img.naturalWidth, h: img.naturalHeight, src: img.src }));
  assert.deepEqual([after.w, after.h], [256, 256], "the restored image is shown");
  assert.match(after.src, /^blob:/);
  assert.match(await page.textContent("#quality"), /^\d\.\d\d \/ 5 — (bad|poor|fair|good|excellent)$/);
  const kinds = await page.$$eval("#degradations li", (items) => items.map((li) => li.dataset.kind));
  assert.deepEqual(kinds, ["noise", "haze", "rain", "blur", "low light"]);
  const stages = await page.$$eval("#timings tr", (rows) => rows.map((row) => row.dataset.stage));
  for (const stage of ["decode", "restoration", "encode", "total"]) {
    assert.ok(stages.includes(stage), `timing of ${stage} in ${stages}`);
  }
  assert.match(await page.textContent("#regions"), /^\d+ region masks? \(/);
  const masks = await page.$eval("#masks", (canvas) => {
    const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let painted = 0;
    for (let i = 3; i < pixels.length; i += 4) if (pixels[i]) painted++;
    return { w: canvas.width, h: canvas.height, painted, hidden: canvas.hidden };
  });
  assert.deepEqual([masks.w, masks.h], [256, 256], "a mask overlay of the photo's size");
  assert.ok(masks.painted > 0, "the overlay paints the regions");
  assert.ok(masks.hidden, "masks are off until asked for");

  // 2. The controls: masks on, the before | after split moved.
  await page.check("#show-masks");
  assert.equal(await page.$eval("#masks", (canvas) => canvas.hidden), false);
  await page.$eval("#split", (input) => {
    input.value = "35";
    input.dispatchEvent(new Event("input"));
  });
  assert.equal(await page.$eval("#after", (img) => img.style.clipPath), "inset(0px 0px 0px 35%)");
  await page.screenshot({ path: join(out, "restore-page.png"), fullPage: true });
  await page.screenshot({ path: join(out, "restore-page.jpg"), type: "jpeg", quality: 80, fullPage: true });
  step(`screenshot ${join(out, "restore-page.png")}`);

  // 3. Download the result.
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download")]);
  assert.equal(download.suggestedFilename(), "noisy-coffee-restored.png");
  const saved = join(out, download.suggestedFilename());
  await download.saveAs(saved);
  const png = readFileSync(saved);
  assert.deepEqual([...png.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10], "a PNG");
  step(`downloaded ${saved} (${statSync(saved).size} bytes)`);

  // 4. A sample through RestoreStream, with progress.
  step("sample hazy-building through RestoreStream");
  await page.click("#options summary");
  await page.check("#stream");
  await page.click("[data-sample=hazy-building]");
  await finished("stream");
  assert.equal(await page.getAttribute("body", "data-call"), "RestoreStream");
  assert.equal(await page.$eval("#progress", (bar) => bar.value), 1);
  assert.match(await page.textContent("#stage"), /^restored 256×256$/);
  assert.equal(await page.$eval("#after", (img) => img.naturalWidth), 256);
  assert.equal(await page.getAttribute("#download", "download"), "hazy-building-restored.png");

  // 5. A file that is no image: the server's own words.
  step("a broken file");
  await page.setInputFiles("#file", { name: "broken.png", mimeType: "image/png", buffer: Buffer.from("not an image at all") });
  await page.waitForSelector("body[data-state=error]", { timeout: 60_000 });
  assert.equal(await page.getAttribute("#error", "data-code"), "INVALID_ARGUMENT");
  const error = await page.textContent("#error");
  assert.match(error, /^INVALID_ARGUMENT: /);
  assert.match(error, /image/i);
  await page.screenshot({ path: join(out, "restore-page-error.png") });
  step(`error shown: ${error}`);

  assert.deepEqual(problems, [], "no script errors on the page");
  await context.close();
} catch (error) {
  failed = true;
  console.error(error);
} finally {
  await browser.close();
}
if (failed) process.exit(1);
console.log("    the restore page works in Chromium");
