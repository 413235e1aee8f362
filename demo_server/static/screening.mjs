// The screening formulas in the browser, read from the model card packed in the .tflite:
// the JavaScript twin of contract/screening.py, contract/triage.py, contract/answers.py and
// contract/questionnaire.py, and of the response demo_server/screening.py words.
//
//   calibration   softmax((log max(p, 1e-6) + strength * r) / T), p being the model output
//   answers       r_c = (z_c - logsumexp(z)) - (b_c - logsumexp(b)), z = x W + b, per domain
//   triage        P(malignant) = sum over the malignant classes; refer when >= threshold, the
//                 stated kind of photo's own threshold, else the one that holds for every kind
//   unsure        no class reaches unsure_below
//
// Every number (T, threshold, questions, W, b, strength) comes from the card; none is written
// here. tests/demo_server/test_ondevice_contract.py runs this module in Node on vectors made
// by the Python contract and fails when either side drifts. Pure: no DOM.
import { pythonRound } from "./rounding.mjs";

export const PROBABILITY_FLOOR = 1e-6;
export const REFER = "see_dermatologist";
export const WATCH = "low_concern";
export const PHOTO_ONLY = "photo_only";
export const PHOTO_AND_ANSWERS = "photo_and_answers";
export const DEFAULT_DOMAIN = "phone"; // the page behaves like the phone client
export const DOMAIN_FIELD = "domain";
export const DOMAINS = ["dermoscopic", "phone"]; // contract.taxonomy.DOMAINS
const NUMBER = "number";
const CHOICE = "choice";
const DECIMAL = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

// An answer that cannot be used; `code` is the API's error code for the same case.
export class AnswerError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

// --- contract.screening ---------------------------------------------------------------------

export function applyTemperature(raw, temperature, logRatios = null, floor = PROBABILITY_FLOOR) {
  const logits = raw.map((p, i) => {
    let value = Math.log(Math.max(p, floor));
    if (logRatios) value += logRatios[i];
    return value / temperature;
  });
  const top = Math.max(...logits);
  const scaled = logits.map((z) => Math.exp(z - top));
  const total = scaled.reduce((a, b) => a + b, 0);
  return scaled.map((s) => s / total);
}

export function malignantProbability(probabilities, labels, malignant) {
  return labels.reduce((sum, code, i) => (malignant.includes(code) ? sum + probabilities[i] : sum), 0);
}

function argmax(values) {
  let best = 0;
  values.forEach((v, i) => {
    if (v > values[best]) best = i;
  });
  return best;
}

// --- contract.triage --------------------------------------------------------------------------

// TriageThresholds.from_card: a card triage section's thresholds, per kind of photo and for any.
export function triageThresholds(section) {
  const triage = section || {};
  const byDomain = {};
  for (const [domain, figures] of Object.entries(triage.by_domain || {})) {
    if (!figures || typeof figures !== "object" || !("own_threshold" in figures)) {
      throw new Error(`triage thresholds: by_domain.${domain} has no own_threshold`);
    }
    byDomain[domain] = Number(figures.own_threshold);
  }
  return { anyDomain: Number(triage.malignant_threshold ?? 0.5), byDomain };
}

// TriageThresholds.own_domain: `domain` when the card has a threshold of its own for it.
export function ownDomain(thresholds, domain) {
  return domain && Object.hasOwn(thresholds.byDomain, domain) ? domain : null;
}

// TriageThresholds.for_domain: the stated kind's own threshold, else the one for any kind.
export function thresholdFor(thresholds, domain) {
  const own = ownDomain(thresholds, domain);
  return own ? thresholds.byDomain[own] : thresholds.anyDomain;
}

// --- contract.questionnaire -----------------------------------------------------------------

// Python's "%g" for the numbers that bins hold.
function g(x) {
  return String(Number(Number(x).toPrecision(6)));
}

function binLabels(bins) {
  const edges = [0, ...bins];
  const labels = bins.map((hi, i) => `${g(edges[i])}-${g(hi - 1)}`);
  return [...labels, `${g(bins[bins.length - 1])}+`];
}

function shown(value) {
  const text = value.length <= 40 ? value : value.slice(0, 40) + "…";
  return `'${text}'`;
}

// Question.from_json: a question from the card.
export function question(spec) {
  const name = String(spec.name);
  const text = String(spec.text ?? name);
  let q;
  if (spec.kind === CHOICE) {
    q = { name, text, kind: CHOICE, choices: spec.choices.map(String), bins: [] };
  } else if (spec.kind === NUMBER) {
    const bins = spec.bins.map(Number);
    if (!bins.length || bins.some((b, i) => i > 0 && b < bins[i - 1])) {
      throw new Error(`${name}: bins must be ascending`);
    }
    q = {
      name, text, kind: NUMBER, bins, choices: binLabels(bins),
      minimum: Number(spec.minimum ?? 0), maximum: Number(spec.maximum ?? 120),
    };
  } else {
    throw new Error(`${name}: unknown kind '${spec.kind}'`);
  }
  if (q.choices.length < 2) throw new Error(`${name}: fewer than two choices`);
  return q;
}

// Question.index_of: the choice of a person's non-empty answer, strictly.
export function indexOf(q, value) {
  if (q.kind === CHOICE) {
    const index = q.choices.indexOf(value);
    if (index < 0) {
      throw new AnswerError("invalid_answer",
        `${shown(value)} is not a choice for '${q.name}' (${q.text}): send one of ` +
        `${q.choices.join(", ")}, or leave it empty if you do not know.`);
    }
    return index;
  }
  const allowed = `a number from ${g(q.minimum)} to ${g(q.maximum)}, or empty`;
  if (!DECIMAL.test(value)) {
    throw new AnswerError("invalid_answer",
      `'${q.name}' must be ${allowed}; ${shown(value)} is not a number.`);
  }
  const number = Number(value);
  if (!(q.minimum <= number && number <= q.maximum)) {
    throw new AnswerError("invalid_answer",
      `'${q.name}' must be ${allowed}; ${shown(value)} is out of range.`);
  }
  return q.bins.filter((b) => b <= number).length; // searchsorted(bins, number, "right")
}

// one_hot: one feature per choice of each question, 1 for the chosen one.
function oneHot(indices, questions) {
  const features = [];
  for (const q of questions) {
    for (let c = 0; c < q.choices.length; c++) features.push(indices[q.name] === c ? 1 : 0);
  }
  return features;
}

// --- contract.answers -----------------------------------------------------------------------

function logSoftmax(z) {
  const top = Math.max(...z);
  const shifted = z.map((v) => v - top);
  const lse = Math.log(shifted.reduce((a, v) => a + Math.exp(v), 0));
  return shifted.map((v) => v - lse);
}

// DomainModel.from_json, with its checks.
function domainModel(domain, spec, questions, labels) {
  const names = spec.questions.map(String);
  const unknown = names.filter((n) => !(n in questions));
  if (unknown.length) throw new Error(`${domain}: questions ${unknown} are not defined`);
  const asked = names.map((n) => questions[n]);
  const features = spec.features.map(String);
  const classes = spec.classes.map(String);
  if (features.length !== asked.reduce((a, q) => a + q.choices.length, 0)) {
    throw new Error(`${domain}: ${features.length} features do not match its questions`);
  }
  if (new Set(classes).size !== classes.length || classes.some((c) => !labels.includes(c))) {
    throw new Error(`${domain}: classes ${classes} are not distinct model labels`);
  }
  const weights = spec.weights.map((row) => row.map(Number));
  const bias = spec.bias.map(Number);
  if (weights.length !== features.length || weights.some((r) => r.length !== classes.length) ||
      bias.length !== classes.length) {
    throw new Error(`${domain}: weights or bias do not match`);
  }
  return { domain, questions: asked, questionNames: names, classes, labels, weights, bias,
    strength: Number(spec.strength ?? 1.0) };
}

// DomainModel.log_ratios for one feature vector, over all labels (0 for uncovered classes).
export function logRatios(model, features) {
  const z = model.bias.map((b, c) =>
    features.reduce((sum, x, f) => sum + x * model.weights[f][c], 0) + b);
  const prior = logSoftmax(model.bias);
  const r = logSoftmax(z).map((v, c) => v - prior[c]);
  return model.labels.map((code) => {
    const c = model.classes.indexOf(code);
    return c < 0 ? 0 : r[c];
  });
}

// answer_spec: the card's `answers` section checked once, or null when it has none.
export function answerSpec(card, labels) {
  const section = card.answers;
  if (section === undefined || section === null) return null;
  let spec;
  try {
    const questions = {};
    for (const q of section.questions.map(question)) questions[q.name] = q;
    const models = {};
    for (const [domain, m] of Object.entries(section.models)) {
      models[domain] = domainModel(domain, m, questions, labels);
    }
    spec = {
      questions, models, labels,
      temperature: Number(section.calibration.temperature),
      thresholds: triageThresholds(section.triage),
      photoReferralStands: section.triage.photo_referral_stands ?? false,
    };
    if (typeof spec.photoReferralStands !== "boolean") {
      throw new Error("triage.photo_referral_stands must be true or false");
    }
  } catch (err) {
    throw new Error(`answers: ${err.message}`);
  }
  if (!Object.keys(spec.models).length) throw new Error("answers: no models");
  if (!(spec.temperature > 0)) {
    throw new Error(`answers: temperature must be positive, got ${spec.temperature}`);
  }
  spec.defaultDomain = DEFAULT_DOMAIN in spec.models ? DEFAULT_DOMAIN : Object.keys(spec.models)[0];
  return spec;
}

// AnswerSpec.read: validate a form's answers ({name: value}; empty = unanswered). The page
// sends only the card's questions; any other answered name is refused like an unknown question.
export function readAnswers(spec, form) {
  const indices = {};
  for (const [name, raw] of Object.entries(form)) {
    if (name === DOMAIN_FIELD || raw === undefined || raw === null || raw === "") continue;
    if (!(name in spec.questions)) {
      throw new AnswerError("unknown_question",
        `This model does not ask '${name}'; its questions are ` +
        `${Object.keys(spec.questions).join(", ")}.`);
    }
  }
  for (const name of Object.keys(spec.questions)) {
    const value = form[name];
    if (value === undefined || value === null || value === "") continue;
    indices[name] = indexOf(spec.questions[name], String(value));
  }
  return { domain: statedDomain(form, Object.keys(spec.models), spec.defaultDomain), indices };
}

// contract.answers.stated_domain: the kind of photo a form states, else `fallback`; an
// AnswerError when it is not one of `domains`.
export function statedDomain(form, domains, fallback = null) {
  const domain = (form || {})[DOMAIN_FIELD];
  if (domain && !domains.includes(domain)) {
    throw new AnswerError("unknown_domain",
      `Unknown ${DOMAIN_FIELD} ${shown(domain)}: send one of ${domains.join(", ")}, or leave ` +
      `it empty${fallback ? ` for ${fallback}` : ""}.`);
  }
  return domain || fallback;
}

// AnswerSpec.effect: the domain model's strength * r (null when it uses none of the answers).
export function answerEffect(spec, given) {
  const model = spec.models[given.domain];
  const asked = {};
  const used = {};
  for (const name of model.questionNames) {
    if (name in given.indices) {
      asked[name] = given.indices[name];
      used[name] = spec.questions[name].choices[given.indices[name]];
    }
  }
  let ratios = null;
  if (Object.keys(used).length) {
    ratios = logRatios(model, oneHot(asked, model.questions)).map((r) => model.strength * r);
  }
  const notUsed = Object.keys(given.indices).filter((n) => !model.questionNames.includes(n));
  return {
    json: {
      domain: given.domain,
      answered: Object.keys(used).length,
      questions: model.questions.length,
      used,
      not_used: notUsed,
    },
    logRatios: ratios,
  };
}

// What a form's answers do, as POST /api/v1/classify reads them: the effect (its `json` and
// `logRatios`, null when the domain's model uses none), or null for a card without answers;
// refuse_answers: such a card turns any answered question into an error.
export function answersFor(spec, form) {
  if (!spec) {
    const answered = Object.entries(form || {})
      .filter(([name, value]) => name !== DOMAIN_FIELD && value !== "" && value != null)
      .map(([name]) => name);
    if (answered.length) {
      throw new AnswerError("answers_not_supported",
        "This model does not take answers (its model card has no answers section); " +
        `leave out ${answered.join(", ")}.`);
    }
    return null;
  }
  return answerEffect(spec, readAnswers(spec, form || {}));
}

// --- the card's numbers, and the response as demo_server/screening.py words it ----------

// Everything the formulas need from a classifier's card (see modelfile.readClassifier).
export function screeningSpec(meta) {
  const card = meta.card || {};
  return {
    labels: meta.labels,
    displayNames: meta.displayNames,
    malignant: meta.malignantLabels,
    temperature: Number((card.calibration || {}).temperature ?? 1.0),
    thresholds: triageThresholds(card.triage),
    answers: answerSpec(card, meta.labels),
  };
}

// Python's round(x, 6) for the JSON (the unrounded numbers are kept in `raw`).
const round6 = (x) => pythonRound(x, 6);

// The kind of photo a request states, checked as POST /api/v1/classify checks it (null: none).
export function requestDomain(spec, form) {
  return statedDomain(form, spec.answers ? Object.keys(spec.answers.models) : DOMAINS);
}

// contract.screening.screen + demo_server.screening.screening_json: the response fields for one
// image's raw probabilities; `effect` is answerEffect's result or null; `messages` the
// server's wording ({triage: {level: text}, unsure}); `domain` the stated kind of photo or null.
export function screen(spec, raw, unsureBelow, messages, effect = null, domain = null) {
  const ratios = effect ? effect.logRatios : null;
  if (ratios && !spec.answers) throw new Error("log ratios given for a card without answers");
  // contract.screening.standing_thresholds: with answers, the photo's own referral may stand.
  const photoRefers = Boolean(ratios && spec.answers.photoReferralStands &&
    screen(spec, raw, unsureBelow, messages, null, domain).triage.level === REFER);
  const temperature = ratios ? spec.answers.temperature : spec.temperature;
  const thresholds = ratios ? spec.answers.thresholds : spec.thresholds;
  const threshold = thresholdFor(thresholds, domain);
  const thresholdDomain = ownDomain(thresholds, domain);
  const probabilities = applyTemperature(raw, temperature, ratios);
  const pMalignant = malignantProbability(probabilities, spec.labels, spec.malignant);
  const topIndex = argmax(probabilities);
  const answersRefer = pMalignant >= threshold;
  const level = answersRefer || photoRefers ? REFER : WATCH;
  const unsure = probabilities[topIndex] < unsureBelow;
  const scores = spec.labels.map((code, i) => ({
    code,
    display_name: spec.displayNames[i],
    probability: round6(probabilities[i]),
    malignant: spec.malignant.includes(code),
  }));
  const calibration = { temperature };
  if (spec.answers) {
    calibration.threshold = threshold;
    calibration.source = ratios ? PHOTO_AND_ANSWERS : PHOTO_ONLY;
  }
  const body = {
    scores: [...scores].sort((a, b) => b.probability - a.probability),
    top: scores[topIndex],
    p_malignant: round6(pMalignant),
    triage: { level, message: messages.triage[level], threshold,
      threshold_domain: thresholdDomain, referred_by_photo: photoRefers && !answersRefer },
    unsure,
    unsure_below: unsureBelow,
    unsure_message: unsure ? messages.unsure : null,
    calibration,
    raw: { probabilities, p_malignant: pMalignant, top_index: topIndex },
  };
  if (effect) body.answers = effect.json;
  return body;
}
