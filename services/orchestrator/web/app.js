// The restore page: choose or drop a photo, see its priors (Analyze), then the restored photo
// (Restore, or RestoreStream for large photos, with progress) beside it.
import { GrpcError, Writer, call, decode, frame, unary } from "/wire.js";

const $ = (id) => document.getElementById(id);
const KINDS = ["unspecified", "noise", "haze", "rain", "blur", "low light"];
const LEVELS = ["not assessed", "bad", "poor", "fair", "good", "excellent"];
const PRIORS = ["unspecified", "quality", "segmentation", "degradation"];
// Above either, the photo goes through RestoreStream (chunked upload, progress events).
const STREAM_BYTES = 2 << 20;
const STREAM_PIXELS = 2_000_000;
const CHUNK_BYTES = 1 << 20;
const TIMEOUT_MS = 300_000;
const MASK_COLOURS = [
  [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180],
  [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212], [0, 128, 128], [220, 190, 255],
  [170, 110, 40], [255, 250, 200], [128, 0, 0], [170, 255, 195],
];

let running = null;
let urls = [];

function setState(state) {
  document.body.dataset.state = state;
}

function showError(error) {
  const box = $("error");
  box.textContent = error instanceof GrpcError ? error.message : `Error: ${error.message ?? error}`;
  box.dataset.code = error instanceof GrpcError ? error.codeName : "CLIENT";
  box.hidden = false;
  setState("error");
}

function progress(fraction, stage) {
  const bar = $("progress");
  bar.hidden = false;
  if (fraction === null) bar.removeAttribute("value");
  else bar.value = fraction;
  $("stage").textContent = stage;
}

function objectUrl(blob) {
  const url = URL.createObjectURL(blob);
  urls.push(url);
  return url;
}

function reset() {
  for (const url of urls) URL.revokeObjectURL(url);
  urls = [];
  $("error").hidden = true;
  $("result").classList.remove("restored");
  $("download").hidden = true;
  $("after").removeAttribute("src");
  $("quality").textContent = "";
  $("regions").textContent = "";
  $("degradations").replaceChildren();
  $("timings").tBodies[0].replaceChildren();
  $("fallbacks").hidden = true;
  const canvas = $("masks");
  canvas.width = canvas.height = 0;
}

function options() {
  return { token: $("token").value.trim(), timeoutMs: TIMEOUT_MS, signal: running?.signal };
}

function restoreRequest(bytes, format) {
  return new Writer()
    .message(1, new Writer().bytes(1, bytes))
    .uint(2, format)
    .finish();
}

// ---- rendering -------------------------------------------------------------------------------

function showPriors(summary, fallbacks) {
  $("quality").textContent = summary.qualityLevel
    ? `${summary.qualityScore.toFixed(2)} / 5 — ${LEVELS[summary.qualityLevel]}`
    : "not assessed";
  const list = $("degradations");
  list.replaceChildren(
    ...summary.degradations.map(({ kind, probability }) => {
      const item = document.createElement("li");
      item.dataset.kind = KINDS[kind] ?? String(kind);
      if (kind === summary.dominantDegradation) item.className = "dominant";
      const name = document.createElement("span");
      name.textContent = KINDS[kind] ?? `kind ${kind}`;
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.style.width = `${Math.round(probability * 100)}%`;
      const value = document.createElement("span");
      value.className = "value";
      value.textContent = probability.toFixed(2);
      item.append(name, bar, value);
      return item;
    }),
  );
  const fallen = $("fallbacks");
  fallen.hidden = fallbacks.length === 0;
  fallen.textContent = `Neutral prior used (service unavailable): ${fallbacks.map((p) => PRIORS[p]).join(", ")}`;
}

function showMasks(masks) {
  const canvas = $("masks");
  if (!masks || masks.count === 0) {
    $("regions").textContent = "no region masks";
    return;
  }
  const { width, height, count, bits, scores } = masks;
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d");
  const image = context.createImageData(width, height);
  const pixels = width * height;
  // Bits are mask-major, row-major, most significant bit first; later masks paint over earlier.
  for (let mask = 0; mask < count; mask++) {
    const [r, g, b] = MASK_COLOURS[mask % MASK_COLOURS.length];
    const base = mask * pixels;
    for (let p = 0; p < pixels; p++) {
      const k = base + p;
      if (bits[k >> 3] & (0x80 >> (k & 7))) {
        const o = p * 4;
        image.data[o] = r;
        image.data[o + 1] = g;
        image.data[o + 2] = b;
        image.data[o + 3] = 255;
      }
    }
  }
  context.putImageData(image, 0, 0);
  const best = scores.length ? Math.max(...scores).toFixed(2) : "–";
  $("regions").textContent = `${count} region mask${count === 1 ? "" : "s"} (${masks.backend}, best score ${best})`;
  canvas.hidden = !$("show-masks").checked;
}

function showTimings(groups) {
  const rows = [];
  for (const [title, timings] of groups) {
    const head = document.createElement("tr");
    const cell = document.createElement("th");
    cell.colSpan = 2;
    cell.textContent = title;
    head.append(cell);
    rows.push(head);
    for (const { stage, milliseconds } of timings) {
      const row = document.createElement("tr");
      row.dataset.stage = stage;
      const name = document.createElement("td");
      name.textContent = stage;
      const time = document.createElement("td");
      time.textContent = `${milliseconds.toFixed(1)} ms`;
      row.append(name, time);
      rows.push(row);
    }
  }
  $("timings").tBodies[0].replaceChildren(...rows);
}

async function showResult(response, bytes, name, analysis) {
  const type = response.image.mediaType || "image/png";
  const blob = new Blob([bytes], { type });
  const url = objectUrl(blob);
  const after = $("after");
  after.src = url;
  await after.decode();
  $("result").classList.add("restored");
  showPriors(response.priors, response.fallbacks);
  showTimings([
    ["Analyze (priors)", analysis.timings],
    [`${document.body.dataset.call}`, response.timings],
  ]);
  const link = $("download");
  const extension = type.split("/")[1]?.replace("jpeg", "jpg") ?? "png";
  link.href = url;
  link.download = `${name.replace(/\.[^.]*$/, "")}-restored.${extension}`;
  link.hidden = false;
}

// ---- calls -----------------------------------------------------------------------------------

async function restoreUnary(bytes, format) {
  progress(null, "restoring…");
  const response = await unary("Restore", restoreRequest(bytes, format), "ClearAirRestoreResponse", options());
  return { response, data: response.image.data };
}

async function restoreStream(bytes, format) {
  const header = new Writer()
    .uint(1, format)
    .uint(3, bytes.length)
    .uint(4, CHUNK_BYTES)
    .finish();
  const messages = [new Writer().bytes(1, header).finish()];
  for (let at = 0; at < bytes.length; at += CHUNK_BYTES) {
    messages.push(new Writer().bytes(2, bytes.subarray(at, at + CHUNK_BYTES)).finish());
  }
  progress(0, "uploading…");
  let result = null;
  const chunks = [];
  let received = 0;
  for await (const message of call("RestoreStream", frame(messages), options())) {
    const event = decode("RestoreStreamResponse", message);
    if (event.progress) {
      progress(event.progress.fraction, `${event.progress.stage}: ${event.progress.message}`);
    } else if (event.result) {
      result = event.result;
      progress(0.95, "downloading the result…");
    } else if (event.chunk) {
      chunks.push(event.chunk);
      received += event.chunk.length;
      if (result?.totalBytes) progress(0.95 + 0.05 * (received / result.totalBytes), "downloading the result…");
    }
  }
  if (!result) throw new GrpcError(13, "the stream ended without a result");
  if (received !== result.totalBytes) {
    throw new GrpcError(15, `received ${received} of ${result.totalBytes} result bytes`);
  }
  return { response: result.response, data: new Blob(chunks) };
}

async function pixelsOf(blob) {
  try {
    const bitmap = await createImageBitmap(blob);
    const pixels = bitmap.width * bitmap.height;
    bitmap.close();
    return pixels;
  } catch {
    return 0; // a format the browser cannot decode (TIFF): the server still can
  }
}

async function run(blob, name) {
  running?.abort();
  const controller = new AbortController();
  running = controller;
  reset();
  setState("working");
  $("result").hidden = false;
  const before = $("before");
  before.src = objectUrl(blob);
  before.decode().catch(() => {});
  try {
    const bytes = new Uint8Array(await blob.arrayBuffer());
    const format = Number($("format").value);
    progress(null, "analysing (priors)…");
    const analysis = await unary(
      "Analyze",
      new Writer().message(1, new Writer().bytes(1, bytes)).uint(2, 1).finish(),
      "AnalyzeResponse",
      options(),
    );
    showPriors(analysis.priors, analysis.fallbacks);
    showMasks(analysis.masks);
    showTimings([["Analyze (priors)", analysis.timings]]);
    const stream = $("stream").checked || bytes.length > STREAM_BYTES || (await pixelsOf(blob)) > STREAM_PIXELS;
    document.body.dataset.call = stream ? "RestoreStream" : "Restore";
    const { response, data } = stream ? await restoreStream(bytes, format) : await restoreUnary(bytes, format);
    if (controller.signal.aborted) return;
    await showResult(response, data, name, analysis);
    progress(1, `restored ${response.width}×${response.height}`);
    setState("done");
  } catch (error) {
    if (!controller.signal.aborted) {
      $("progress").hidden = true;
      $("stage").textContent = "";
      showError(error);
    }
  }
}

// ---- wiring ----------------------------------------------------------------------------------

$("file").addEventListener("change", (event) => {
  const [file] = event.target.files;
  if (file) run(file, file.name);
});

const drop = $("drop");
drop.addEventListener("dragover", (event) => {
  event.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  const [file] = event.dataTransfer.files;
  if (file) run(file, file.name);
});
drop.addEventListener("keydown", (event) => {
  if (event.key === "Enter" || event.key === " ") $("file").click();
});

for (const button of document.querySelectorAll("[data-sample]")) {
  button.addEventListener("click", async () => {
    const name = button.dataset.sample;
    setState("working");
    try {
      const response = await fetch(`/samples/${name}.png`);
      if (!response.ok) throw new Error(`sample ${name}: HTTP ${response.status}`);
      run(await response.blob(), `${name}.png`);
    } catch (error) {
      showError(error);
    }
  });
}

$("split").addEventListener("input", (event) => {
  const split = `${event.target.value}%`;
  $("after").style.clipPath = `inset(0 0 0 ${split})`;
  $("masks").style.clipPath = `inset(0 ${100 - event.target.value}% 0 0)`;
  $("viewer").style.setProperty("--split", split);
});

$("show-masks").addEventListener("change", (event) => {
  $("masks").hidden = !event.target.checked;
});

const token = $("token");
token.value = sessionStorage.getItem("clearair-token") ?? "";
token.addEventListener("change", () => sessionStorage.setItem("clearair-token", token.value.trim()));
