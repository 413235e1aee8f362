"""The mobile page, the model-card page and the sample images (served only from their folder)."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    make_response,
    render_template,
    send_from_directory,
    url_for,
)
from flask.typing import ResponseReturnValue
from werkzeug.security import safe_join

from contract.answers import DEFAULT_DOMAIN, AnswerSpec, request_domains
from contract.bench_report import BenchReportError, read_bench_report
from contract.card import ModelCard
from contract.photo_check import MESSAGES as PHOTO_MESSAGES
from contract.photo_check import RULE as PHOTO_RULE
from demo_server import explain as occlusion
from demo_server.compression import send_compressible
from demo_server.config import REPO_ROOT
from demo_server.extensions import (
    MODEL_PARAM,
    classifiers,
    default_classifier,
    page_default_classifier,
)
from demo_server.extensions import current_lesion_gate as _lesion_gate
from demo_server.extensions import current_settings as _settings
from demo_server.extensions import page_classifier as _classifier
from demo_server.manifest import ICON_FILES
from demo_server.screening import (
    NOT_A_LESION_MESSAGE,
    TRIAGE_MESSAGES,
    UNSURE_MESSAGE,
    disclaimer,
)
from demo_server.security import CONTENT_SECURITY_POLICY
from demo_server.segmenter import MESSAGES as LESION_MESSAGES
from demo_server.segmenter import current_segmenter as _segmenter

bp = Blueprint("pages", __name__)
SAMPLE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
ATTRIBUTION = "ATTRIBUTION.md"
DOMAIN_NAMES = {"phone": "Phone camera", "dermoscopic": "Dermatoscope"}
# Test figures shown photo only vs photo plus answers: label, scope, key path, interval key.
ANSWER_METRICS = (
    ("Balanced accuracy, overall", "overall", ("balanced_accuracy",), "balanced_accuracy"),
    ("Balanced accuracy, dermoscopic", "dermoscopic", ("balanced_accuracy",), "balanced_accuracy"),
    ("Balanced accuracy, phone", "phone", ("balanced_accuracy",), "balanced_accuracy"),
    (
        "Malignant sensitivity, phone",
        "phone",
        ("malignant", "sensitivity"),
        "malignant_sensitivity",
    ),
    (
        "Malignant specificity, phone",
        "phone",
        ("malignant", "specificity"),
        "malignant_specificity",
    ),
)


@dataclass(frozen=True)
class Sample:
    file_name: str
    caption: str


def caption(stem: str, display_names: Mapping[str, str]) -> str:
    """``mel_phone_PAT_1.jpg`` -> "Melanoma (phone)"; other names are shown as they are."""
    code, _, rest = stem.partition("_")
    if code not in display_names:
        return stem.replace("_", " ")
    kind = rest.split("_")[0]
    return f"{display_names[code]} ({kind})" if kind.isalpha() else display_names[code]


def list_samples(folder: Path, display_names: Mapping[str, str] | None = None) -> list[Sample]:
    """The sample images in `folder` (none if it is missing), sorted by name."""
    if not folder.is_dir():
        return []
    return [
        Sample(path.name, caption(path.stem, display_names or {}))
        for path in sorted(folder.iterdir())
        if path.is_file() and path.suffix.lower() in SAMPLE_SUFFIXES
    ]


def question_domains(answers: AnswerSpec | None) -> dict[str, list[str]]:
    """Question name -> the domains whose model uses it (the page hides the others)."""
    if answers is None:
        return {}
    return {
        name: [domain for domain, model in answers.models.items() if name in model.question_names]
        for name in answers.questions
    }


def model_choices() -> list[dict[str, Any]]:
    """The classifiers a person may pick on the page (none to pick when there is one)."""
    served = classifiers()
    if len(served) < 2:
        return []
    chosen = _classifier().model_id
    return [
        {
            "id": model_id,
            "label": f"{model.metadata.name} {model.metadata.version} "
            f"({model.metadata.file_size / 1e6:.1f} MB)",
            "chosen": model_id == chosen,
        }
        for model_id, model in served.items()
    ]


def chosen_model_query() -> dict[str, str]:
    """``{"model": ID}`` for the page's links when it shows a model other than its default;
    else nothing (plain page URLs keep meaning "the page's default")."""
    model_id = _classifier().model_id
    return {} if model_id == page_default_classifier().model_id else {MODEL_PARAM: model_id}


@bp.context_processor
def _model_choice() -> dict[str, Any]:
    # The API's calls name the page's model whenever it is not the API's default.
    model_id = _classifier().model_id
    api_model = "" if model_id == default_classifier().model_id else model_id
    return {"model_query": chosen_model_query(), "api_model": api_model}


@bp.get("/")
def index() -> ResponseReturnValue:
    meta = _classifier().metadata
    folder = _settings().samples_dir
    samples = list_samples(folder, dict(zip(meta.labels, meta.display_names, strict=True)))
    runtime, unavailable = web_runtime()
    importmap = runtime_importmap(runtime) if runtime else ""
    response = make_response(
        render_template(
            "index.html",
            meta=meta,
            answers=meta.answers,
            question_domains=question_domains(meta.answers),
            domain_names=DOMAIN_NAMES,
            photo_domains=request_domains(meta.answers),
            default_domain=meta.answers.default_domain if meta.answers else DEFAULT_DOMAIN,
            samples=samples,
            has_attribution=(folder / ATTRIBUTION).is_file(),
            not_a_lesion_message=NOT_A_LESION_MESSAGE,
            disclaimer=disclaimer(meta),
            model_choices=model_choices(),
            importmap=importmap,
            ondevice=ondevice_config(runtime, unavailable, samples),
        )
    )
    if importmap:
        response.headers["Content-Security-Policy"] = page_csp(importmap)
    # Cross-origin isolation lets the runtime use its threaded WebAssembly (SharedArrayBuffer);
    # every resource of the page is same-origin, so nothing else changes.
    response.headers["Cross-Origin-Embedder-Policy"] = "require-corp"
    return response


# --------------------------------------------------------------------------------------------
# On-device mode (docs/on_device.md): the page runs the same .tflite files in the browser with
# LiteRT.js, installed by `npm ci --prefix web` and served from its package folder, never from
# a CDN. The page's own modules are static/ondevice.mjs and the modules it imports (PAGE_MODULES);
# the service worker (static/sw.js) keeps them, the runtime and the models for offline use.
# --------------------------------------------------------------------------------------------

WEB_DIR_KEY = "WEB_DIR"  # app config: the folder with package.json and node_modules/
WEB_ENV = "SKINLESION_WEB"  # the same, from the environment
RUNTIME_PACKAGE = "@litertjs/core"
# The runtime's ES modules (paths under node_modules/@litertjs/) and the import names they use.
RUNTIME_MODULES = {
    "@litertjs/core": "core/dist/index.js",
    "@litertjs/wasm-utils": "wasm-utils/dist/index.js",
}
WASM_FOLDER = "core/wasm/"
PAGE_MODULES = (
    "ondevice.mjs",
    "modelfile.mjs",
    "pixels.mjs",
    "screening.mjs",
    "framing.mjs",
    "segmentation.mjs",
    "rounding.mjs",
    "colour.mjs",
    "photocheck.mjs",
    "history.mjs",
)
IMMUTABLE = "public, max-age=31536000, immutable"
CACHE_NAME = "skin-spot-check-v1"  # also in static/sw.js


@dataclass(frozen=True)
class WebRuntime:
    """LiteRT.js as installed under web/node_modules: its version and its folder."""

    version: str
    folder: Path


def web_dir() -> Path:
    """Where LiteRT.js is installed: the app's WEB_DIR, else $SKINLESION_WEB, else ./web when
    it holds package.json (a plain `pip install .` run from the checkout), else the web/ of the
    checkout this package lives in (`pip install -e`)."""
    configured = current_app.config.get(WEB_DIR_KEY) or os.environ.get(WEB_ENV)
    if configured:
        return Path(configured)
    here = Path.cwd() / "web"
    return here if (here / "package.json").is_file() else REPO_ROOT / "web"


def web_runtime() -> tuple[WebRuntime | None, str]:
    """The installed LiteRT.js when it is the version web/package.json pins, else None and why."""
    web = web_dir()
    folder = web / "node_modules" / "@litertjs"
    try:
        wanted = json.loads((web / "package.json").read_text())["dependencies"][RUNTIME_PACKAGE]
        installed = json.loads((folder / "core" / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return None, f"{RUNTIME_PACKAGE} is not installed (npm ci --prefix web)"
    if installed != wanted:
        return None, f"{RUNTIME_PACKAGE} {installed} is installed, web/package.json pins {wanted}"
    missing = [name for name in RUNTIME_MODULES.values() if not (folder / name).is_file()]
    if missing or not (folder / WASM_FOLDER).is_dir():
        return None, f"{RUNTIME_PACKAGE} is incomplete in {folder} (npm ci --prefix web)"
    return WebRuntime(installed, folder), ""


def runtime_importmap(runtime: WebRuntime) -> str:
    """The page's import map: the runtime's bare module names to their served files."""
    imports = {
        name: url_for("pages.ondevice_lib", version=runtime.version, name=path)
        for name, path in RUNTIME_MODULES.items()
    }
    return json.dumps({"imports": imports}, separators=(",", ":"))


def page_csp(importmap: str) -> str:
    """The security policy plus what the on-device page needs: WebAssembly compilation and
    the hash of its one inline script, the import map (which is data, not code)."""
    digest = base64.b64encode(hashlib.sha256(importmap.encode()).digest()).decode()
    extra = f" 'wasm-unsafe-eval' 'sha256-{digest}'"
    directives = [d.strip() for d in CONTENT_SECURITY_POLICY.split(";")]
    if not any(d.startswith("script-src") for d in directives):
        directives.append("script-src 'self'")
    return "; ".join(d + extra if d.startswith("script-src") else d for d in directives)


def native_bench(model_path: Path) -> dict[str, Any] | None:
    """export.bench's XNNPACK figures for this model file (models/bench/bench.json), if any."""
    try:
        report = read_bench_report(model_path.parent / "bench")
    except (OSError, BenchReportError):
        return None
    rows = [
        {"threads": r.threads, "p50_ms": r.p50_ms, "p90_ms": r.p90_ms}
        for r in report.rows
        if r.model == model_path.name and r.backend == "xnnpack"
    ]
    if not rows:
        return None
    machine, runs = report.machine.platform, report.config.runs
    return {"model": model_path.name, "rows": rows, "machine": machine, "runs": runs}


def native_benches() -> dict[str, dict[str, Any]]:
    """SHA-256 -> export.bench's figures, for each classifier file served that has them: the
    page shows them beside its own, for the shipped file and for the same file picked from
    the phone's storage."""
    benches = {
        served.metadata.file_sha256: native_bench(served.path)
        for served in classifiers().values()
        if served.path
    }
    return {sha256: bench for sha256, bench in benches.items() if bench}


def _model_entry(kind: str, sha256: str, size: int) -> dict[str, Any]:
    url = url_for("pages.ondevice_model", digest=sha256[:16], kind=kind)
    return {"url": url, "sha256": sha256, "size_bytes": size}


def ondevice_config(
    runtime: WebRuntime | None, unavailable: str, samples: list[Sample]
) -> dict[str, Any]:
    """What the page's on-device mode needs (embedded in the page as JSON)."""
    if runtime is None:
        return {"available": False, "reason": unavailable}
    model, gate, segmenter = _classifier(), _lesion_gate(), _segmenter()
    meta = model.metadata
    static = ["app.css", "app.js", *ICON_FILES, *PAGE_MODULES]
    shell = [
        url_for("pages.index", **chosen_model_query()),
        url_for("manifest.manifest"),
        *(url_for("static", filename=name) for name in static),
        *(
            url_for("pages.ondevice_lib", version=runtime.version, name=path)
            for path in RUNTIME_MODULES.values()
        ),
        *(url_for("pages.sample", name=sample.file_name) for sample in samples),
    ]
    return {
        "available": True,
        "cache": CACHE_NAME,
        "service_worker": url_for("pages.service_worker"),
        "runtime": {
            "package": RUNTIME_PACKAGE,
            "version": runtime.version,
            "module": "@litertjs/core",
            "wasm": url_for("pages.ondevice_lib", version=runtime.version, name=WASM_FOLDER),
        },
        "classifier": _model_entry("classifier", meta.file_sha256, meta.file_size),
        "lesion_gate": _model_entry("lesion_gate", gate.file_sha256, gate.file_size)
        if gate
        else None,
        "lesion_segmenter": _model_entry(
            "lesion_segmenter", segmenter.file_sha256, segmenter.file_size
        )
        if segmenter
        else None,
        "unsure_below": _settings().unsure_below,
        "photo_check": PHOTO_RULE.as_json(),  # contract.photo_check's, read by photocheck.mjs
        # "Where did it look?" on the device: the server's grid, patch and heatmap.
        "explain": {
            "grid": _settings().explain_grid,
            "grey": occlusion.GREY,
            "size": occlusion.HEATMAP_SIZE,
            "rgb": list(occlusion.HEAT_RGB),
            "max_alpha": occlusion.MAX_ALPHA,
        },
        "messages": {
            "triage": TRIAGE_MESSAGES,
            "unsure": UNSURE_MESSAGE,
            "not_a_lesion": NOT_A_LESION_MESSAGE,
            "lesion": LESION_MESSAGES,
            "photo_check": PHOTO_MESSAGES,
            "disclaimer": disclaimer(meta),
        },
        "native_benches": native_benches(),
        "shell": shell,
    }


@bp.get("/ondevice/lib/<version>/<path:name>")
def ondevice_lib(version: str, name: str) -> ResponseReturnValue:
    """The runtime's ES modules and WebAssembly files, from the installed npm package only."""
    runtime, _ = web_runtime()
    if runtime is None or version != runtime.version:
        abort(404)
    in_wasm = name.startswith(WASM_FOLDER) and "/" not in name[len(WASM_FOLDER) :]
    if name not in RUNTIME_MODULES.values() and not (in_wasm and name.endswith((".js", ".wasm"))):
        abort(404)
    mimetype = "application/wasm" if name.endswith(".wasm") else "text/javascript"
    path = safe_join(str(runtime.folder), name)
    if path is None or not Path(path).is_file():
        abort(404)
    response = send_compressible(Path(path), mimetype)
    response.headers["Cache-Control"] = IMMUTABLE  # the version is in the path
    # The threaded runtime starts workers from these scripts: a cross-origin isolated page
    # only runs workers whose scripts say they are isolated too.
    response.headers["Cross-Origin-Embedder-Policy"] = "require-corp"
    return response


@bp.get("/ondevice/models/<digest>/<kind>.tflite")
def ondevice_model(digest: str, kind: str) -> ResponseReturnValue:
    """The classifier, the gate or the segmenter the server runs, byte for byte (the hash is in
    the path)."""
    gate, segmenter, settings = _lesion_gate(), _segmenter(), _settings()
    files = []
    if kind == "classifier":
        files = [(m.path, m.metadata.file_sha256) for m in classifiers().values() if m.path]
    elif kind == "lesion_gate" and gate is not None and settings.lesion_gate_path:
        files = [(settings.lesion_gate_path, gate.file_sha256)]
    elif kind == "lesion_segmenter" and segmenter is not None and settings.segmenter_path:
        files = [(settings.segmenter_path, segmenter.file_sha256)]
    path = next((path for path, sha256 in files if digest == sha256[:16]), None)
    if path is None:
        abort(404)
    response = send_compressible(Path(path).resolve(), "application/octet-stream")
    response.headers["Cache-Control"] = IMMUTABLE
    return response


@bp.get("/sw.js")
def service_worker() -> Response:
    """The service worker, served from the root so that it may control the whole page."""
    folder = Path(current_app.static_folder or "")
    response = send_from_directory(folder, "sw.js", mimetype="text/javascript")
    response.headers["Cache-Control"] = "no-cache"
    return response


def metric_summaries(metrics: Any) -> dict[str, dict[str, dict]]:
    """Split -> scope -> report, for the reports in the card's metrics that have the standard
    shape (overall and per-domain summaries); anything else is shown only in the details."""
    if not isinstance(metrics, Mapping):
        return {}
    summaries = {}
    for split, scopes in metrics.items():
        if isinstance(scopes, Mapping):
            rows = {
                scope: report
                for scope, report in scopes.items()
                if isinstance(report, Mapping) and "balanced_accuracy" in report
            }
            if rows:
                summaries[str(split)] = rows
    return summaries


def _dig(value: Any, *keys: str) -> Any:
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _figure(scopes: Any, scope: str, path: tuple[str, ...], interval: str) -> dict | None:
    value = _dig(scopes, scope, *path)
    if not isinstance(value, int | float):
        return None
    ci = _dig(scopes, scope, "ci95", interval)
    return {"value": float(value), "interval": ci if isinstance(ci, list) else None}


def answer_metric_rows(card: ModelCard) -> list[dict[str, Any]]:
    """Test figures photo only beside photo plus answers; none when the answers have no test
    metrics (val figures chose the answers' strength and calibration, so they flatter it)."""
    with_answers = _dig(card.answers and card.answers.metrics, "test")
    if not isinstance(with_answers, Mapping):
        return []
    photo = _dig(card.metrics, "test")
    return [
        {
            "label": label,
            "photo": _figure(photo, scope, path, interval),
            "answers": _figure(with_answers, scope, path, interval),
        }
        for label, scope, path, interval in ANSWER_METRICS
    ]


def _finite(value: Any) -> float | None:
    """A card figure to show, or None (the page shows a dash): the card writes NaN where a
    figure has no value, e.g. referrals per malignant found when none was found."""
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


# A kind's threshold whose card says where it was chosen (`DomainTriage.chosen_on`) other than
# val: `python -m train.crossfit`'s out-of-fold predictions.
OUT_OF_FOLD = "out of fold"


def triage_expectations(card: ModelCard) -> list[dict[str, Any]]:
    """Per kind of photo, what the triage promises and costs, photo only and with answers: the
    kind's own threshold, its sensitivity's 95% lower bound and sensitivity where it was chosen
    (val, or out-of-fold predictions over train+val), and the "see a dermatologist" answers per
    malignant lesion found there."""
    sections = (("photo only", card), ("photo plus answers", card.answers))
    return [
        {
            "inputs": label,
            "domain": DOMAIN_NAMES.get(domain, domain),
            "threshold": _finite(figures.own_threshold),
            "lower_bound": _finite(figures.sensitivity_lower_bound_95),
            "sensitivity": _finite(figures.sensitivity_at_own_threshold),
            "referrals": _finite(figures.referrals_per_malignant_found),
            "chosen_on": "val" if figures.chosen_on is None else OUT_OF_FOLD,
        }
        for label, section in sections
        if section is not None
        for domain, figures in (section.triage.by_domain or {}).items()
    ]


def referrals_on_test(
    card: ModelCard, malignant_labels: Sequence[str]
) -> list[dict[str, Any]]:
    """Per kind of photo, photo only and with answers: what the threshold in use did on the test
    split (people used neither to train nor to choose it), with "see a dermatologist" answers
    per malignant spot found, from the card's sensitivity, specificity and class counts. Every
    card that was evaluated on test has these, whatever rule chose its threshold. The malignant
    classes are the model file's own (`ModelMetadata.malignant_labels`), as in triage."""
    sections = (
        ("photo only", _dig(card.metrics, "test")),
        ("photo plus answers", _dig(card.answers and card.answers.metrics, "test")),
    )
    rows = []
    for label, scopes in sections:
        for domain in DOMAIN_NAMES:
            report = _dig(scopes, domain)
            matrix = _dig(report, "confusion_matrix")
            sensitivity = _finite(_dig(report, "malignant", "sensitivity"))
            specificity = _finite(_dig(report, "malignant", "specificity"))
            labels, rows_true = _dig(matrix, "labels"), _dig(matrix, "rows_true_cols_pred")
            if (
                sensitivity is None
                or specificity is None
                or not isinstance(labels, list)
                or not isinstance(rows_true, list)
                or len(labels) != len(rows_true)
            ):
                continue
            counts = dict(zip(labels, map(sum, rows_true), strict=True))
            malignant = sum(counts.get(code, 0) for code in malignant_labels)
            found = sensitivity * malignant
            referred = found + (1 - specificity) * (sum(counts.values()) - malignant)
            interval = _dig(report, "ci95", "malignant_sensitivity")
            rows.append(
                {
                    "inputs": label,
                    "domain": DOMAIN_NAMES[domain],
                    "threshold": _finite(_dig(report, "malignant", "threshold")),
                    "sensitivity": sensitivity,
                    "interval": interval if isinstance(interval, list) else None,
                    "malignant": malignant,
                    "referrals": referred / found if found else None,
                }
            )
    return rows


@bp.get("/model")
def model_card() -> ResponseReturnValue:
    meta = _classifier().metadata
    card = meta.card
    summaries = metric_summaries(card.metrics if card else None)
    return render_template(
        "model.html",
        meta=meta,
        card=card,
        answers=meta.answers,
        answer_rows=answer_metric_rows(card) if card else [],
        triage_rows=triage_expectations(card) if card else [],
        test_triage_rows=referrals_on_test(card, meta.malignant_labels) if card else [],
        metric_summaries=summaries,
        metric_intervals=any(
            "ci95" in report for scopes in summaries.values() for report in scopes.values()
        ),
        unsure_below=_settings().unsure_below,
        triage_messages=TRIAGE_MESSAGES,
        domain_names=DOMAIN_NAMES,
        gate=_lesion_gate(),
        not_a_lesion_message=NOT_A_LESION_MESSAGE,
        disclaimer=disclaimer(meta),
    )


@bp.get("/samples/<name>")
def sample(name: str) -> ResponseReturnValue:
    """Only the listed sample images and their attribution file; nothing else on disk."""
    folder = _settings().samples_dir
    if name == ATTRIBUTION and (folder / ATTRIBUTION).is_file():
        return send_from_directory(folder, name, mimetype="text/plain")
    if name not in {s.file_name for s in list_samples(folder)}:
        abort(404)
    return send_from_directory(folder, name, max_age=3600)
