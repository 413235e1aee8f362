"""contract.commands: the one comma-list parser and the one way a command reports a failure."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from contract.commands import CommandError, comma_list, comma_separated, reported
from contract.jsonclass import JsonFormatError
from contract.model_file import ModelFileError
from contract.run_folder import RunFolderError


def test_a_comma_list_drops_blanks_and_spaces():
    assert comma_list(" a, b,,c ,") == ["a", "b", "c"]
    assert comma_list("") == []


def test_a_typed_list_reads_each_item_and_refuses_a_bad_or_empty_one():
    assert comma_separated(int, "1,2,4")("1, 2,4") == [1, 2, 4]
    assert comma_separated(Path, "A,B")("a,b") == [Path("a"), Path("b")]
    for bad in ("1,x", "", ","):
        with pytest.raises(argparse.ArgumentTypeError, match="such as 1,2,4"):
            comma_separated(int, "1,2,4")(bad)


def test_argparse_turns_a_bad_list_into_a_usage_message(capsys):
    parser = argparse.ArgumentParser(prog="python -m demo")
    parser.add_argument("--threads", type=comma_separated(int, "1,2,4"))
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["--threads", "1,two"])
    assert exit_.value.code == 2
    assert "--threads: expected a list such as 1,2,4, got '1,two'" in capsys.readouterr().err


def test_a_command_error_is_one_line_and_status_2_anything_else_a_traceback(capsys):
    @reported("demo")
    def main(error: Exception | None) -> int:
        if error is not None:
            raise error
        return 0

    assert main(None) == 0
    assert main(CommandError("no such run")) == 2
    assert capsys.readouterr().err == "python -m demo: error: no such run\n"
    with pytest.raises(KeyError):
        main(KeyError("a bug"))



def test_the_contract_s_own_input_errors_are_command_errors():
    for error in (RunFolderError, ModelFileError, JsonFormatError):
        assert issubclass(error, CommandError) and issubclass(error, ValueError)


def test_no_command_reports_an_error_line_of_its_own():
    """Each command's failures go through `reported`, so their form and status are one rule."""
    repo = Path(__file__).resolve().parents[2]
    own = [
        str(path.relative_to(repo))
        for stage in ("train", "export", "demo_server", "pipeline")
        for path in sorted((repo / stage).rglob("*.py"))
        if re.search(r"python -m [\w.{}]+: error:", path.read_text(encoding="utf-8"))
    ]
    assert own == []
