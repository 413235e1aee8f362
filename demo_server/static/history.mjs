// A spot's history, kept only on this phone: each saved check (date, result, a small thumbnail
// of the photo, the outline's share of the frame) goes into this browser's IndexedDB under the
// spot's name. Nothing here sends a request: export is a file made in the page, and "delete
// everything" deletes the database.
const DB_NAME = "skin-spot-history";
const STORE = "checks";
export const THUMB_SIDE = 160; // px, the longest side of the kept thumbnail
export const THUMB_QUALITY = 0.7;

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function open() {
  const req = indexedDB.open(DB_NAME, 1);
  req.onupgradeneeded = () => {
    const store = req.result.createObjectStore(STORE, { keyPath: "id", autoIncrement: true });
    store.createIndex("spot", "spot");
  };
  return request(req);
}

async function withStore(mode, use) {
  const db = await open();
  try {
    const tx = db.transaction(STORE, mode);
    const done = new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
    const result = await use(tx.objectStore(STORE));
    await done;
    return result;
  } finally {
    db.close();
  }
}

// A thumbnail (a small JPEG Blob: app.js's downsize) as a data: URL, kept with the check.
export function dataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

// What a check keeps of an answer (the API's or the device's): the verdict, the advice, the
// top class, P(malignant), the photo check's reasons and the spot's share of the frame.
export function summary(result) {
  const lesion = result.lesion || null;
  return {
    verdict: result.verdict,
    triage: result.triage ? result.triage.level : null,
    advice: result.triage ? result.triage.message : result.message || null,
    top: result.top ? result.top.display_name : null,
    p_malignant: result.p_malignant ?? null,
    retake: result.photo_check ? result.photo_check.reasons : [],
    area_fraction: lesion && lesion.verdict === "one" ? lesion.area_fraction : null,
    mode: result.mode || null,
    model: result.model ? `${result.model.name} ${result.model.version}` : null,
  };
}

// Save one check of a spot; resolves to its id.
export function save(spot, result, thumb, date = new Date()) {
  const entry = { spot, date: date.toISOString(), thumbnail: thumb, ...summary(result) };
  return withStore("readwrite", (store) => request(store.add(entry)));
}

// Every saved check, oldest first.
export async function all() {
  const checks = await withStore("readonly", (store) => request(store.getAll()));
  return checks.sort((a, b) => a.date.localeCompare(b.date) || a.id - b.id);
}

// The spots' names, the one checked last first.
export async function spots() {
  const names = (await all()).reverse().map((check) => check.spot);
  return [...new Set(names)];
}

// A spot's checks, oldest first.
export async function checksOf(spot) {
  return (await all()).filter((check) => check.spot === spot);
}

// Everything, as a JSON file's text (the page offers it as a download made here).
export async function exportJson() {
  return JSON.stringify({ exported: new Date().toISOString(), checks: await all() }, null, 2);
}

export function deleteAll() {
  return withStore("readwrite", (store) => request(store.clear()));
}
