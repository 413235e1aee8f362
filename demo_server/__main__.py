"""``python -m demo_server``: serve the demo with waitress (never Flask's development server);
SIGTERM / SIGINT finish the requests in flight, then exit 0 (demo_server.serving)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from contract.commands import comma_list
from demo_server import create_app
from demo_server.config import (
    DEFAULT_SAMPLES_DIR,
    LESION_GATE_ENV,
    LESION_GATE_FILENAME,
    MODEL_ENV,
    MODEL_FILENAME,
    SEGMENTER_ENV,
    SEGMENTER_FILENAME,
    SMALL_MODEL_ENV,
    SMALL_MODEL_FILENAME,
    ModelLocation,
    ServerConfig,
    locate_lesion_gate,
    locate_model,
    locate_segmenter,
    locate_small_model,
)
from demo_server.extensions import classifiers
from demo_server.model import ModelError
from demo_server.serving import serve, waitress_options


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 1-65535, got {port}")
    return port


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def _probability(text: str) -> float:
    value = _positive(float)(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be at most 1, got {text}")
    return value


def _paths(text: str) -> tuple[Path, ...]:
    return tuple(Path(part) for part in comma_list(text))


def build_parser(
    model: ModelLocation | None = None,
    lesion_gate: ModelLocation | None = None,
    segmenter: ModelLocation | None = None,
    small_model: ModelLocation | None = None,
) -> argparse.ArgumentParser:
    """The CLI; ``model`` / ``lesion_gate`` / ``segmenter`` / ``small_model`` are the default
    files (looked up when not given)."""
    model = locate_model() if model is None else model
    small_model = locate_small_model() if small_model is None else small_model
    lesion_gate = locate_lesion_gate() if lesion_gate is None else lesion_gate
    segmenter = locate_segmenter() if segmenter is None else segmenter
    defaults = ServerConfig()
    parser = argparse.ArgumentParser(
        prog="python -m demo_server",
        description="Phone-like demo server for the skin-lesion screening model.",
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=model.path,
        metavar="PATH",
        help=f"the classifier .tflite (default ${MODEL_ENV}, else ./models/{MODEL_FILENAME} "
        "in the current folder, else the repository checkout's models/ folder; now %(default)s)",
    )
    parser.add_argument(
        "--more-models",
        type=_paths,
        default=(small_model.path,) if small_model.path else (),
        metavar="PATH[,PATH]",
        help="more classifier .tflite files a request may pick with ?model=ID (the file name "
        f"without .tflite); --model stays the default (default ${SMALL_MODEL_ENV}, else "
        f'./models/{SMALL_MODEL_FILENAME} or the checkout\'s, when it exists; "" for none)',
    )
    parser.add_argument(
        "--page-model",
        default=None,
        metavar="ID",
        help="the classifier the page shows when its address names none (the API's default "
        "stays --model); default: the small one when it is served (a phone's first visit "
        'downloads 3.3 MB of classifier instead of 14), else --model; "" for --model',
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=_port, default=8000)
    parser.add_argument(
        "--threads", type=_positive(int), default=4, help="waitress threads = interpreters"
    )
    parser.add_argument("--samples", type=Path, default=DEFAULT_SAMPLES_DIR)
    parser.add_argument(
        "--max-upload-mb", type=_positive(float), default=defaults.max_request_bytes / 2**20
    )
    parser.add_argument(
        "--max-megapixels", type=_positive(float), default=defaults.max_pixels / 1e6
    )
    parser.add_argument(
        "--unsure-below",
        type=_probability,
        default=defaults.unsure_below,
        help="mark results unsure when the top probability is below this",
    )
    parser.add_argument("--explain-grid", type=_positive(int), default=defaults.explain_grid)
    gate = parser.add_mutually_exclusive_group()
    gate.add_argument(
        "--lesion-gate",
        type=Path,
        default=lesion_gate.path,
        metavar="PATH",
        help=f'the "not a skin lesion" gate .tflite (default ${LESION_GATE_ENV}, else '
        f"./models/{LESION_GATE_FILENAME}, else the checkout's models/ one; no gate when none "
        "exists)",
    )
    gate.add_argument(
        "--no-lesion-gate",
        dest="lesion_gate",
        action="store_const",
        const=None,
        help="classify every image, even ones that do not look like a skin lesion",
    )
    segment = parser.add_mutually_exclusive_group()
    segment.add_argument(
        "--lesion-segmenter",
        dest="segmenter",
        type=Path,
        default=segmenter.path,
        metavar="PATH",
        help=f"the lesion segmenter .tflite: outline of the spot, 'no spot' / 'several spots' "
        f"(default ${SEGMENTER_ENV}, else ./models/{SEGMENTER_FILENAME}, else the checkout's "
        "models/ one; none when none exists)",
    )
    segment.add_argument(
        "--no-lesion-segmenter",
        dest="segmenter",
        action="store_const",
        const=None,
        help="do not locate the spot (no outline in the answers)",
    )
    return parser


def _source(path: Path, location: ModelLocation) -> str:
    """Say " (from $VAR)" when ``path`` is the environment variable's default."""
    return f" (from ${location.env_var})" if location.from_env and path == location.path else ""


def page_model(
    asked: str | None, more_models: tuple[Path, ...], small: ModelLocation
) -> str | None:
    """The page's model id: the one asked for ("" for the default), else the small model's
    when it is served (its id is its file name without .tflite), else the default (None)."""
    if asked is not None:
        return asked or None
    return small.path.stem if small.path is not None and small.path in more_models else None


def main(argv: list[str] | None = None) -> None:
    model, lesion_gate, segmenter = locate_model(), locate_lesion_gate(), locate_segmenter()
    small_model = locate_small_model()
    parser = build_parser(model, lesion_gate, segmenter, small_model)
    args = parser.parse_args(argv)
    if args.model is None:
        parser.error(model.not_found_message("--model", "model"))
    if not args.model.is_file():
        parser.error(f"model file not found: {args.model}{_source(args.model, model)}")
    for path in args.more_models:
        if not path.is_file():
            parser.error(f"model file not found: {path}{_source(path, small_model)}")
    if args.lesion_gate is not None and not args.lesion_gate.is_file():
        where = _source(args.lesion_gate, lesion_gate)
        parser.error(f"lesion gate file not found: {args.lesion_gate}{where}")
    if args.segmenter is not None and not args.segmenter.is_file():
        where = _source(args.segmenter, segmenter)
        parser.error(f"lesion segmenter file not found: {args.segmenter}{where}")
    config = ServerConfig(
        model_path=args.model,
        more_model_paths=args.more_models,
        page_model=page_model(args.page_model, args.more_models, small_model),
        samples_dir=args.samples,
        max_request_bytes=int(args.max_upload_mb * 2**20),
        max_pixels=int(args.max_megapixels * 1e6),
        unsure_below=args.unsure_below,
        interpreters=args.threads,
        explain_grid=args.explain_grid,
        lesion_gate_path=args.lesion_gate,
        segmenter_path=args.segmenter,
    )
    try:
        app = create_app(config.flask_config())
    except ModelError as exc:
        parser.error(str(exc))
    gate = f"lesion gate {config.lesion_gate_path.name}" if config.lesion_gate_path else "no gate"
    models = ", ".join(classifiers(app))
    page = f"; the page shows {config.page_model}" if config.page_model else ""
    banner = (
        f"Serving {models} (the first by default{page}; {gate}) on http://{args.host}:{args.port}/"
    )
    serve(app, args.host, args.port, waitress_options(config, args.threads), banner=banner)


if __name__ == "__main__":
    main()
