"""Errors that modelport reports to users.

Every error a user can cause (a bad file, an unsupported operator, a model that would run code,
a failed verification) is a ``ModelportError``. The CLI prints ``str(error)`` as one line
on stderr and exits with ``error.exit_code``; anything else is a bug and is reported as such.
"""

from __future__ import annotations

import os
from collections.abc import Iterable


class ModelportError(Exception):
    """Base class: a problem with the user's input, reported in one line."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | os.PathLike | None = None) -> None:
        self.path = os.fspath(path) if path is not None else None
        self.problem = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class InvalidModelError(ModelportError):
    """The file is missing, empty, truncated, corrupt or not in the format it claims."""


class UnknownFormatError(InvalidModelError):
    """No importer recognises the file."""


def printable(text: str) -> str:
    """``text`` with every non-printable character escaped, so that a name read from a damaged
    file cannot break a one-line error."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


class UnsupportedOpsError(ModelportError):
    """The model uses operators or layers that have no translation.

    ``ops`` maps each unsupported op type to the names of the layers/nodes that use it, so the
    user sees every problem at once rather than the first one.
    """

    def __init__(
        self,
        ops: dict[str, list[str]],
        *,
        path: str | os.PathLike | None = None,
        kind: str = "operator",
        hint: str | None = None,
    ) -> None:
        self.ops = {k: list(v) for k, v in sorted(ops.items())}
        parts = []
        for op, names in self.ops.items():
            # names come from the file: a damaged one may hold control characters (line breaks)
            shown = ", ".join(printable(repr(n)) for n in names[:3])
            more = f" and {len(names) - 3} more" if len(names) > 3 else ""
            parts.append(f"{printable(op)} ({shown}{more})" if names else printable(op))
        message = f"unsupported {kind}{'s' if len(self.ops) > 1 else ''}: {'; '.join(parts)}"
        if hint:
            message += f"; {hint}"
        super().__init__(message, path=path)


class UnsupportedFeatureError(ModelportError):
    """A layer or operator uses an argument, mode or combination that has no translation (a
    stateful RNN, antialiased down-sampling...): the input's limit, not a bug (exit 2).
    Translators raise it without a path; the importer adds the file and the layer."""


class UnsafeModelError(ModelportError):
    """Loading the model would execute code stored in it (pickles, Lambda layers)."""


class MissingDependencyError(ModelportError):
    """An optional framework needed for this step is not installed."""

    def __init__(self, package: str, extra: str, purpose: str, **kwargs) -> None:
        self.package = package
        self.extra = extra
        how = f"pip install 'modelport[{extra}]'" if extra != "core" else f"pip install {package}"
        super().__init__(
            f"{purpose} needs {package}, which is not installed; install it with: {how}",
            **kwargs,
        )


class OutputExistsError(ModelportError):
    """The output file exists and ``--force`` was not given."""


class ExportError(ModelportError):
    """The converted graph could not be written as valid ONNX."""


class InputSpecError(ModelportError):
    """A ``--input``/``--output``/``--inputs`` option does not fit the model."""


class UnsupportedOptionError(InputSpecError):
    """An option that the source's format cannot honour (refused rather than ignored)."""


class VerificationMismatch(ModelportError):
    """The converted model computes different numbers than the source."""

    exit_code = 1

    def __init__(self, report, *, path: str | os.PathLike | None = None) -> None:
        self.report = report
        failed = [r.name for r in report.outputs if not r.passed]
        super().__init__(
            f"verification failed: {len(failed)} of {len(report.outputs)} outputs differ "
            f"({', '.join(failed)})",
            path=path,
        )


def join_names(names: Iterable[str], limit: int = 5) -> str:
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def first_line(exc: BaseException | str, default: str | None = None, *,
               skip: tuple[str, ...] = ()) -> str:
    """The first non-blank line of an exception's message (or of a text), for one-line errors.

    Lines starting with one of ``skip`` are passed over (e.g. "Traceback"). Without such a
    line: ``default``, or the exception's class name when no default is given.
    """
    for line in str(exc).strip().splitlines():
        line = line.strip()
        if line and not line.startswith(skip):
            return line
    if default is not None:
        return default
    return type(exc).__name__ if isinstance(exc, BaseException) else ""
