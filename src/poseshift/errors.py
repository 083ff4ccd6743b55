"""One-line errors for the ``poseshift`` command.

A failure prints ``error: <file or option>: <problem and what to do>`` and exits non-zero; the
traceback is shown only with ``--debug`` or ``POSESHIFT_DEBUG=1``. :class:`UserError` carries a
message that is already in that form; :func:`format_error` turns any other exception into one
line, adding what the user can do where the type of problem is known.
"""

from __future__ import annotations

import os
import re
import traceback
from pathlib import Path

DEBUG_FLAG = "--debug"
DEBUG_ENV = "POSESHIFT_DEBUG"
DATASETS_HINT = (
    "see the README section 'Datasets (bring your own files)'; `poseshift data check {folder}` "
    "lists every problem in that folder"
)


class UserError(Exception):
    """A problem with the user's input; the message is ``<file or option>: <problem and what to do>``."""


def pop_debug(argv: list[str]) -> tuple[bool, list[str]]:
    """Remove ``--debug`` from ``argv``; True when it was there or ``POSESHIFT_DEBUG`` is set."""
    debug = os.environ.get(DEBUG_ENV, "").lower() not in ("", "0", "false", "no")
    rest = [a for a in argv if a != DEBUG_FLAG]
    return debug or len(rest) != len(argv), rest


def one_line(text: str) -> str:
    """Collapse a multi-line message into one line (lines joined by '; ')."""
    parts = [line.strip() for line in str(text).splitlines() if line.strip()]
    return "; ".join(parts)


# noise in jsonargparse's union-type reports: the "or None" alternative and the value dump
_ARGPARSE_NOISE = (
    "Does not validate against any of the",
    "Subtypes:",
    "Errors:",
    "Given value type:",
    "Given value:",
    "Expected a <class 'NoneType'>",
)


def summarize_parser_message(message: str, where: str | None = None) -> tuple[str | None, str]:
    """(option, problem) from a jsonargparse error report, without its type lists and value dumps."""
    key = re.match(r'\s*Parser key "([^"]+)":', message)
    lines = message.splitlines()
    if key:
        where = f"--{key.group(1)}"
        lines = lines[1:]
    given = next((ln.split("Given value:", 1)[1].strip() for ln in lines if "Given value:" in ln), None)
    kept: list[str] = []
    for line in lines:
        text = line.strip().lstrip("-").strip()
        if not text or text.startswith(_ARGPARSE_NOISE):
            continue
        text = re.sub(r"^Problem with given class_path '([^']+)':$", r"\1:", text)
        kept.append(text)
    problem = " ".join(kept).replace(": ", ": ", 1) if kept else one_line(message)
    problem = re.sub(r"\s+", " ", problem)
    problem = re.sub(r"<class '([\w.]+)'>", r"\1", problem)
    kinds = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}
    problem = re.sub(r"Expected a (int|float|str|bool)\b", lambda m: f"expected {kinds[m.group(1)]}", problem)
    if problem.lower().startswith("expected ") and given is not None and len(given) < 80:
        problem = f"{problem}, got {given!r}"
    unknown = re.match(r"(\S+): (?:Option|Key) '([^']+)' is not (?:accepted|expected)", problem)
    if unknown and where:
        cls, option = unknown.groups()
        where = f"{where}.init_args.{option}" if "." not in where else f"{where}.{option}"
        problem = f"not an option of {cls}; `poseshift fit {where.split('.')[0]}.help {cls}` lists them"
    return where, problem


def _dataset_folder(err: FileNotFoundError) -> str | None:
    """The folder of a missing dataset file, when the error came from a dataset reader."""
    frames = traceback.extract_tb(err.__traceback__)
    readers = [f for f in frames if "data_modules" in Path(f.filename).parts]
    own_hint = ("keypoints.py", "detectors.py", "deepmimic.py", "evolved.py", "evolve.py")
    if not readers or any(Path(f.filename).name in own_hint for f in readers):
        return None  # predict inputs, the embedded clips and evolved files are not dataset folders
    path = err.filename or str(err).split(":", 1)[0]
    path = Path(path)
    return str(path if path.suffix == "" and not path.exists() else path.parent)


def format_error(err: BaseException, where: str | None = None) -> str:
    """``error: <where>: <problem>`` on one line for any exception."""
    if isinstance(err, UserError):
        return f"error: {one_line(str(err))}"
    message = one_line(str(err)) or type(err).__name__
    if type(err).__name__ == "ArgumentError" or "Does not validate against any of the" in str(err):
        option, problem = summarize_parser_message(str(err), where)
        return f"error: {option}: {problem}" if option else f"error: {problem}"
    if isinstance(err, FileNotFoundError):
        folder = _dataset_folder(err)
        if folder is not None:
            return f"error: {message}; " + DATASETS_HINT.format(folder=folder)
        return f"error: {message}"
    # ValueError covers data_modules' DataFormatError (the library never imports data_modules)
    if isinstance(err, ValueError | KeyError | OSError):
        prefix = f"{where}: " if where else ""
        text = message.strip("'\"") if isinstance(err, KeyError) else message
        return f"error: {prefix}{text}"
    if type(err).__name__ == "MisconfigurationException":
        return f"error: {where or '--trainer'}: {message}"
    # an unexpected failure (a bug, or a case without a message of its own): say what it was
    return f"error: {type(err).__name__}: {message} (rerun with --debug for the traceback)"
