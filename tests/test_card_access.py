"""The model card is read and written only through `contract.card.ModelCard`.

A card handled as a dict anywhere else (`card["triage"]`, `card.get("answers")`, `"answers" in
card`, `json.loads` of a card file) reads its keys by string, with the fallbacks and drift that
the typed card replaced (framing once read the any-kind threshold the server no longer used). This
test walks the stages' sources and names each such access; it runs on snippets first, so that
it is known to find what it looks for.

What counts as a card: a name or attribute called `card`, `cards` or `*_card` (`meta.card`,
`model_card`), a name assigned from a call of a function that returns a card (`packed =
model_card(...)`, `card_of`), a loop variable over cards, and such a call itself. The reports
inside a card (`card.metrics["val"]`, `card.hparams`) are JSON objects keyed by data and are
not counted.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("contract", "train", "export", "demo_server", "pipeline")
THE_CARD_MODULE = Path("contract/card.py")
_CARD_NAME = re.compile(r"(^|_)cards?$")
# read_model_card, model_card, card_of, build_model_card; not models_from_card (its models)
_CARD_CALL = re.compile(r"^(?!.*_from_card$).*(^|_)card(_of)?$")
_DICT_METHODS = {"get", "pop", "setdefault", "update", "items", "keys", "values", "copy"}


def _name_of(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _card_aliases(tree: ast.AST) -> set[str]:
    """Names bound to a card-returning call's result, or looping over cards."""
    aliases: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            if _CARD_CALL.search(_name_of(node.value.func) or ""):
                aliases |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        if isinstance(node, ast.For | ast.comprehension) and isinstance(node.target, ast.Name):
            if _CARD_NAME.search(_name_of(node.iter) or ""):
                aliases.add(node.target.id)
    return aliases


def _is_card(node: ast.AST, aliases: set[str]) -> bool:
    if isinstance(node, ast.Call):
        return bool(_CARD_CALL.search(_name_of(node.func) or ""))
    name = _name_of(node)
    return name is not None and (bool(_CARD_NAME.search(name)) or name in aliases)


def _is_str(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def string_card_access(source: str) -> list[str]:
    """Each place in `source` that reads or writes a card by string key: 'line: code'."""
    tree = ast.parse(source)
    aliases = _card_aliases(tree)
    found = []
    for node in ast.walk(tree):
        hit = False
        if isinstance(node, ast.Subscript):
            hit = _is_card(node.value, aliases) and (
                _is_str(node.slice) or not isinstance(node.slice, ast.Constant | ast.Slice)
            )
        elif isinstance(node, ast.Compare):
            hit = any(isinstance(op, ast.In | ast.NotIn) for op in node.ops) and any(
                _is_card(c, aliases) for c in node.comparators
            )
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in _DICT_METHODS:
                hit = _is_card(func.value, aliases)
            if _name_of(func) in {"load", "loads", "dump", "dumps"}:
                hit = hit or any("card" in ast.unparse(a).lower() for a in node.args)
            card_args = [i for i, a in enumerate(node.args) if _is_card(a, aliases)]
            hit = hit or any(_is_str(a) for a in node.args[min(card_args, default=99) + 1 :])
        if hit:
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


@pytest.mark.parametrize(
    "source",
    [
        'card["triage"]',
        'x = card["input"]["height"]',
        'meta.card.get("disclaimer")',
        'if "answers" not in card: pass',
        'read_model_card(run)["input"]',
        'packed = model_card(data)\nexport = packed["export"]',
        'for c in cards:\n    c["training"]',
        '[c["backbone"] for c in cards]',
        'answers_card["answers"]["triage"].pop("by_domain")',
        'json.loads((run / "model_card.json").read_text())',
        'json.loads(args.card.read_text())',
        'json.dumps(card)',
        '_dig(card, "answers", "metrics")',
        'card[key]',
    ],
)
def test_the_check_finds_a_card_read_as_a_dict(source: str):
    assert string_card_access(source), source


@pytest.mark.parametrize(
    "source",
    [
        "card.triage.thresholds.for_domain(domain)",
        'card.metrics["val"]',
        'card.answers.metrics.get("test")',
        "cards[0].input.height",
        'args.card.name != "model_card.json"',
        'split = read_split(path)\nsplit["val"]',
        'json.loads(path.read_text())["rows"]',
        "replace(card, export=section)",
        'models = models_from_card(card)\nmodels.items()',
    ],
)
def test_the_check_leaves_typed_access_alone(source: str):
    assert string_card_access(source) == [], source


def _sources() -> list[Path]:
    files = [p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))]
    return [p for p in files if p.relative_to(REPO) != THE_CARD_MODULE]


def test_the_check_reads_every_stage():
    read = {p.relative_to(REPO).parts[0] for p in _sources()}
    assert read == set(PACKAGES)
    assert len(_sources()) > 100


def test_no_card_is_read_by_string_outside_contract_card():
    found = {
        str(path.relative_to(REPO)): hits
        for path in _sources()
        if (hits := string_card_access(path.read_text(encoding="utf-8")))
    }
    assert found == {}, "read or write the card through contract.card.ModelCard:\n" + "\n".join(
        f"{path}:{hit}" for path, hits in found.items() for hit in hits
    )
