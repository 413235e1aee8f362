// The phone-app side: downsize the photo in the browser, upload it, draw the answer.
"use strict";

const MAX_SIDE = 1024;
const JPEG_QUALITY = 0.9;
const VISIBLE_DROP = 0.02; // smaller occlusion drops than this are noise
const EXPLAIN_NOTES = {
  found: "Red shows where covering the photo lowered the model's score for its top answer most.",
  none: "Covering any single part of the photo barely changed the answer: no region stands out.",
};
const CALIBRATION_NOTES = {
  photo_only: "Calibrated on the photo alone: no answer was used.",
  photo_and_answers: "Calibrated on the photo plus your answers",
};
let current = null; // the blob last sent, reused by "Where did it look?" and new answers

const $ = (id) => document.getElementById(id);

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").classList.toggle("error", Boolean(isError));
}

// Longest side at most MAX_SIDE, re-encoded as JPEG; the browser applies EXIF orientation.
// Formats the browser cannot decode (HEIC on most) go up unchanged: the server decodes them.
async function downsize(blob) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob, { imageOrientation: "from-image" });
  } catch (err) {
    return blob;
  }
  const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(bitmap.width * scale));
  canvas.height = Math.max(1, Math.round(bitmap.height * scale));
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  return new Promise((resolve) => {
    canvas.toBlob((out) => resolve(out || blob), "image/jpeg", JPEG_QUALITY);
  });
}

// The answered questions the chosen domain's model uses (blank = "don't know", not sent).
// Answers stay in the page and in the one request; nothing stores them.
function answerFields() {
  const fields = [];
  const box = $("answer-fields");
  if (!box) return fields;
  for (const input of box.querySelectorAll("[name]")) {
    const label = input.closest(".question");
    if (label && label.hidden) continue;
    if (!input.validity.valid) {
      throw new Error((label ? label.firstChild.textContent.trim() + ": " : "") +
        input.validationMessage);
    }
    if (input.value !== "") fields.push([input.name, input.value]);
  }
  return fields;
}

// Show only the questions the chosen domain's model uses.
function showDomainQuestions() {
  const domain = $("domain").value;
  for (const label of document.querySelectorAll("#answer-fields .question")) {
    label.hidden = !label.dataset.domains.split(" ").includes(domain);
  }
}

async function post(path, blob, fields) {
  const form = new FormData();
  form.append("image", blob, "photo.jpg");
  for (const [name, value] of fields || []) form.append(name, value);
  const response = await fetch(path, { method: "POST", body: form });
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    throw new Error("The server sent an unexpected answer (HTTP " + response.status + ").");
  }
  if (!response.ok) {
    throw new Error(body && body.error ? body.error.message : "HTTP " + response.status);
  }
  return body;
}

function percent(p) {
  return p >= 0.995 ? "99%+" : p < 0.005 ? "<1%" : Math.round(p * 100) + "%";
}

function renderScores(scores) {
  const list = $("scores");
  list.replaceChildren();
  for (const score of scores) {
    const item = document.createElement("li");
    const label = document.createElement("div");
    label.className = "score-label";
    const name = document.createElement("span");
    name.textContent = score.display_name;
    if (score.malignant) {
      const tag = document.createElement("span");
      tag.className = "tag";
      tag.textContent = "(malignant type)";
      name.append(tag);
    }
    const pct = document.createElement("span");
    pct.className = "pct";
    pct.textContent = percent(score.probability);
    label.append(name, pct);
    const bar = document.createElement("div");
    bar.className = score.malignant ? "bar malignant" : "bar";
    bar.setAttribute("role", "img");
    bar.setAttribute("aria-label", score.display_name + ": " + percent(score.probability));
    const fill = document.createElement("span");
    fill.style.width = (score.probability * 100).toFixed(1) + "%";
    bar.append(fill);
    item.append(label, bar);
    list.append(item);
  }
}

function renderCalibration(result) {
  const note = $("calibration-note");
  const source = result.calibration && result.calibration.source;
  note.hidden = !source;
  if (!source) return;
  let text = CALIBRATION_NOTES[source] || source;
  if (source === "photo_and_answers" && result.answers) {
    text += " (" + result.answers.answered + " of " + result.answers.questions + " answered).";
  }
  note.textContent = text;
}

function renderTiming(result) {
  $("timing").textContent =
    "Model " + result.model.name + " " + result.model.version + " · " +
    Math.round(result.timing_ms.total) + " ms on the server";
}

function showResult() {
  $("result").hidden = false;
  $("result").scrollIntoView({ behavior: "smooth", block: "start" });
}

// The lesion gate turned the photo away: say so, and show no classes, percentages or triage.
function renderNotALesion(result) {
  $("not-lesion-message").textContent = result.message;
  $("not-lesion").hidden = false;
  $("diagnosis").hidden = true;
  renderTiming(result);
  showResult();
  setStatus("Done — this does not look like a skin-lesion photo.");
}

function render(result) {
  if (result.verdict === "not_a_lesion") {
    renderNotALesion(result);
    return;
  }
  $("not-lesion").hidden = true;
  $("diagnosis").hidden = false;
  const refer = result.triage.level === "see_dermatologist";
  $("triage").className = "card triage " + (refer ? "refer" : "watch");
  $("triage-message").textContent = result.triage.message;
  $("p-malignant").textContent = percent(result.p_malignant);
  $("unsure").hidden = !result.unsure;
  $("unsure-message").textContent = result.unsure_message || "";
  renderScores(result.scores);
  renderCalibration(result);
  renderTiming(result);
  showResult();
  setStatus(result.unsure ? "Done — the model is unsure." : "Done.");
}

async function check(blob) {
  setStatus("Preparing the photo…");
  $("result").hidden = true;
  $("heatmap").hidden = true;
  $("explain-note").hidden = true;
  $("explain").disabled = false;
  try {
    current = await downsize(blob);
    const photo = $("photo");
    if (photo.src.startsWith("blob:")) URL.revokeObjectURL(photo.src);
    photo.src = URL.createObjectURL(current);
    await classify();
  } catch (err) {
    setStatus(err.message, true);
  }
}

async function classify() {
  setStatus("Checking…");
  render(await post("api/v1/classify", current, answerFields()));
}

// A changed answer re-checks the photo already shown (the heatmap does not use answers).
async function recheck() {
  if (!current || $("result").hidden) return;
  try {
    await classify();
  } catch (err) {
    setStatus(err.message, true);
  }
}

async function explain() {
  if (!current) return;
  $("explain").disabled = true;
  setStatus("Looking where the model looked…");
  try {
    const result = await post("api/v1/explain", current);
    if (result.verdict === "not_a_lesion") {
      renderNotALesion(result);
      return;
    }
    const found = result.max_drop >= VISIBLE_DROP;
    $("heatmap").src = result.heatmap_png;
    $("heatmap").hidden = !found;
    $("explain-note").textContent = found ? EXPLAIN_NOTES.found : EXPLAIN_NOTES.none;
    $("explain-note").hidden = false;
    setStatus("Done.");
  } catch (err) {
    $("explain").disabled = false;
    setStatus(err.message, true);
  }
}

async function trySample(button) {
  setStatus("Loading the sample…");
  try {
    const response = await fetch(button.dataset.src);
    if (!response.ok) throw new Error("The sample could not be loaded.");
    await check(await response.blob());
  } catch (err) {
    setStatus(err.message, true);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const id of ["camera", "gallery"]) {
    $(id).addEventListener("change", (event) => {
      const file = event.target.files && event.target.files[0];
      if (file) check(file);
      event.target.value = "";
    });
  }
  for (const button of document.querySelectorAll(".sample")) {
    button.addEventListener("click", () => trySample(button));
  }
  $("explain").addEventListener("click", explain);
  if ($("answer-fields")) {
    $("domain").addEventListener("change", showDomainQuestions);
    showDomainQuestions();
    $("answer-fields").addEventListener("change", recheck);
  }
});
