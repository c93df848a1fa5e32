"""The error path and the flags shared by the command lines (``edgepose run |
eval | bench | export | models``, and ``edgepose-bench``, the same as
``edgepose bench``).

Exit codes, the same in every command:

* 0: all good.
* 2: usage error: the command line is wrong (argparse's own errors, options
  that contradict each other, a file, folder or model name that names nothing,
  an output path that cannot be one).
* 1: failed work: a model, card, annotation or image file that exists but
  cannot be used, a runtime failure, a missing runtime, some inputs that
  failed (each reported, the rest processed), an export past its tolerance.
* 130: interrupted (Ctrl-C).

A reader that closes stdout early (``edgepose run DIR --out - | head -1``)
ends the command quietly with 1 (the rest was not written).

A user mistake is reported as one line, ``<prog>: error: <message>``, on
stderr, the message saying what to do; ``--debug`` adds the traceback. An
unexpected exception (a bug) gets a short line asking for ``--debug``.

The same flag means the same thing in every command: ``--backend`` (names
from :data:`edgepose.backends.BACKENDS`; a comma list where a command takes
several), ``--threads`` (an int >= 1; a comma list in ``bench``), ``--quiet``
(no progress bar, no notes on stderr), ``--json PATH`` (``-``: stdout, the
table then goes to stderr), ``--debug``. A renamed flag keeps its old
spelling as a hidden alias (:func:`add_deprecated_alias`) that prints a note
on stderr (not a ``DeprecationWarning``: Python hides those outside
``__main__``, so a command-line user would never see one).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from edgepose._stdio import stdout_redirected

__all__ = ["EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_INTERRUPTED", "UsageError",
           "add_debug_flag", "run_command", "error_line", "check_output_dir",
           "check_output_file", "check_model_arg", "stdout_to_stderr", "one_line",
           "backend_name", "backend_names", "thread_count", "thread_counts",
           "add_backend_flag", "add_threads_flag", "add_quiet_flag", "add_json_flag",
           "add_deprecated_alias"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(ValueError):
    """The command line is wrong (exit 2); the message says how to fix it."""


def add_debug_flag(parser: argparse.ArgumentParser, *, sub: bool = False) -> None:
    """Adds ``--debug`` (tracebacks for errors). ``sub``: a sub-command's parser,
    whose default must not overwrite a ``--debug`` given before the sub-command."""
    parser.add_argument("--debug", action="store_true",
                        default=argparse.SUPPRESS if sub else False,
                        help="print the traceback of an error")


# --- the flags every command spells the same way ------------------------------------

def _split(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
    return items


def _backend_table() -> list[str]:
    from edgepose.backends import BACKENDS  # a plain table; imports no runtime

    return list(BACKENDS)


def backend_name(text: str) -> str:
    """``--backend``: one name of :data:`edgepose.backends.BACKENDS`."""
    known = _backend_table()
    if text not in known:
        hint = " (one backend here; only bench takes a comma list)" if "," in text else ""
        raise argparse.ArgumentTypeError(
            f"unknown backend {text!r}{hint}; available: {', '.join(known)}")
    return text


def backend_names(text: str) -> list[str]:
    """``--backend`` of a command that takes several: a comma list of names."""
    return [backend_name(item) for item in _split(text)]


def thread_count(text: str) -> int:
    """``--threads``: an int >= 1 (the one converter for thread counts)."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {text!r}")
    return n


def thread_counts(text: str) -> list[int | None]:
    """``--threads`` of a command that takes several: ints >= 1 or ``default``
    (the runtime's own, None), comma-separated."""
    out: list[int | None] = []
    for item in _split(text):
        if item == "default":
            out.append(None)
            continue
        try:
            out.append(thread_count(item))
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"expected ints >= 1 or 'default' (the runtime's own), got {item!r}"
            ) from None
    return out


def add_backend_flag(parser: argparse.ArgumentParser, *, many: bool = False,
                     help: str | None = None) -> None:
    """``--backend B`` (``many``: ``B[,B...]``), checked against the backend table."""
    names = ",".join(_backend_table())
    parser.add_argument(
        "--backend", type=backend_names if many else backend_name, default=None,
        metavar=f"{{{names}}}" + ("[,...]" if many else ""),
        help=help or "the runtime (default: chosen by the model file's type)")


def add_threads_flag(parser: argparse.ArgumentParser, *, many: bool = False,
                     help: str | None = None) -> None:
    """``--threads T`` (``many``: ``T[,T...]``), each an int >= 1."""
    parser.add_argument(
        "--threads", type=thread_counts if many else thread_count, default=None,
        metavar="T[,T...]" if many else "T",
        help=help or "inference threads per model (default: the runtime's own)")


def add_quiet_flag(parser: argparse.ArgumentParser, *, help: str | None = None) -> None:
    """``--quiet``: no progress bar and no notes on stderr (errors still)."""
    parser.add_argument("--quiet", action="store_true", default=False,
                        help=help or "no progress bar and no notes on stderr (errors still)")


def add_json_flag(parser: argparse.ArgumentParser, what: str, *,
                  help: str | None = None) -> None:
    """``--json PATH``: where the machine-readable result goes, ``-`` for stdout."""
    parser.add_argument("--json", metavar="PATH", default=None,
                        help=help or f"write {what} as JSON to PATH ('-': stdout; the table "
                                     "then goes to stderr)")


def add_deprecated_alias(parser: argparse.ArgumentParser, old: str, new: str) -> None:
    """Adds ``old`` as a hidden spelling of the option ``new`` (added before):
    it does what ``new`` does and prints ``<prog>: note: <old> is deprecated``
    on stderr."""
    target = parser._option_string_actions[new]

    class _Alias(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            sys.stderr.write(f"{parser.prog}: note: {old} is deprecated, use {new} (the old "
                             "spelling still works, for now)\n")
            target(parser, namespace, values, new)

    parser.add_argument(old, action=_Alias, dest=target.dest, nargs=target.nargs,
                        type=target.type, metavar=target.metavar, default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS)


def one_line(text: str) -> str:
    """``text`` with its lines joined: an error report is a single line."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def error_line(prog: str, message: str) -> None:
    """Prints ``<prog>: error: <message>`` as one line on stderr."""
    sys.stderr.write(f"{prog}: error: {one_line(message)}\n")
    sys.stderr.flush()


def _message(exc: BaseException) -> str:
    text = one_line(str(exc))
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        text = f"{exc.filename}: {exc.strerror}"  # "[Errno 2] ..." reads worse
    return text or type(exc).__name__


def _exit_code(exc: BaseException) -> int | None:
    """The exit code of an expected error, None for a bug."""
    if isinstance(exc, UsageError):
        return EXIT_USAGE
    if isinstance(exc, FileNotFoundError):
        from edgepose.registry import ModelNotFoundError

        # a path or name on the command line names nothing; a registry model with
        # no copy reachable (offline, no mirror) is a failure to fetch it
        return EXIT_FAILED if isinstance(exc, ModelNotFoundError) else EXIT_USAGE
    if isinstance(exc, (ValueError, OSError, ImportError, RuntimeError)):
        return EXIT_FAILED
    return None


def run_command(body: Callable[[list[str]], int], argv: Sequence[str] | None,
                prog: str) -> int:
    """Runs ``body(argv)`` and turns what it raises into one line and an exit code.

    argparse's ``SystemExit`` (2 for bad arguments, 0 for ``--help``) passes
    through. With ``--debug`` in ``argv`` the traceback is printed first.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        return body(argv)
    except BrokenPipeError:
        _stdout_to_devnull()
        return EXIT_FAILED
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        error_line(prog, "interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the one place that reports every error
        if debug:
            traceback.print_exc()
        code = _exit_code(exc)
        if code is None:
            error_line(prog, f"unexpected {type(exc).__name__}: {_message(exc)} (probably a bug "
                       "in edgepose; run with --debug for the traceback and report it)")
            return EXIT_FAILED
        error_line(prog, _message(exc))
        return code


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Sends everything written to stdout to stderr for the duration: Python's
    ``sys.stdout`` and file descriptor 1 (what C/C++ libraries such as NNCF,
    OpenVINO or torch print), restored afterwards. For a command whose stdout
    carries JSON, around the work that may print."""
    with stdout_redirected(sys.stderr):
        yield


def _stdout_to_devnull() -> None:
    """After a broken pipe: points fd 1 at /dev/null so that the interpreter's
    final flush of stdout does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real fd (captured stdout)
        pass


def check_output_dir(path: str | Path, flag: str) -> Path:
    """``path`` as an output folder: an existing folder, or one that can be made
    (no existing file at it or above it). Raises :class:`UsageError`."""
    path = Path(path)
    for part in (path, *path.parents):
        if part.exists() and not part.is_dir():
            where = "is" if part == path else f"is below {part}, which is"
            raise UsageError(f"{flag} {path} {where} a file, not a folder: name a folder "
                             "(it is created if missing).")
    return path


def check_output_file(path: str | Path, flag: str) -> Path:
    """``path`` as an output file: not a folder, its parent a folder or makeable.
    Raises :class:`UsageError`."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a folder: name a file to write.")
    for part in path.parents:
        if part.exists() and not part.is_dir():
            raise UsageError(f"{flag} {path} is below {part}, which is a file, not a folder: "
                             "name a file in a folder.")
    return path


def check_model_arg(value: str | None, flag: str) -> None:
    """A model argument must be an existing file or a known registry name
    (an unknown name or a missing file is a usage error)."""
    if value is None or Path(value).exists():
        return
    from edgepose import registry

    if registry.looks_like_name(value):
        try:
            registry.ModelStore.from_env().registry.get(value)
        except ValueError as exc:
            raise UsageError(f"{flag}: {exc}") from None
        return
    raise UsageError(f"{flag} {value} does not exist: pass a model file (.onnx, .tflite, .xml) "
                     "or a registry name (edgepose models list).")
