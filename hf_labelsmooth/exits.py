"""Scripts and the CLI end with the library's one-line message (exit code 2, as argparse), not a traceback.

An error is the user's to fix when hf_labelsmooth (or the calling script) raised it on purpose (a `ValueError`,
`OSError` or `ImportError` raised in its own code: every such message names the fix), or when the Hub cannot be
reached or refuses the token (`hub_cause` names the cause in one line). Anything else is a bug and keeps its
traceback. ``--debug`` on the command line or ``HF_LABELSMOOTH_DEBUG=1`` keeps the traceback of every error.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable, NoReturn, Sequence, TypeVar

__all__ = ["DEBUG_ENV", "exit_with_message", "hub_cause", "run_main", "user_message"]

DEBUG_ENV = "HF_LABELSMOOTH_DEBUG"
_PACKAGE = Path(__file__).resolve().parent
_ON_PURPOSE = (ValueError, OSError, ImportError)
T = TypeVar("T")


def debug_requested(argv: list[str] | None = None) -> bool:
    """``HF_LABELSMOOTH_DEBUG`` set (not 0/false), or ``--debug`` in `argv` (taken out of it)."""
    if argv is not None and "--debug" in argv:
        argv.remove("--debug")
        return True
    return os.environ.get(DEBUG_ENV, "").lower() not in ("", "0", "false", "no")


def _chain(err: BaseException) -> list[BaseException]:
    """`err` and the errors it was raised from or during, outermost first."""
    seen: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def hub_cause(err: BaseException) -> str | None:
    """One line naming why the Hub failed (offline mode, no network, a refused token), else None.

    The chain of `err` is searched: transformers and datasets re-raise the Hub's errors as their own (datasets as a
    builtin ``ConnectionError("Couldn't reach ... on the Hub")``)."""
    for link in _chain(err):
        name, module = type(link).__name__, type(link).__module__
        status = getattr(getattr(link, "response", None), "status_code", None)
        if name == "OfflineModeIsEnabled" or (name == "LocalEntryNotFoundError" and os.environ.get("HF_HUB_OFFLINE")):
            return ("Expected to reach the Hub but got offline mode (HF_HUB_OFFLINE is set). Unset HF_HUB_OFFLINE, "
                    "or use local folders and drop --push_to_hub.")
        if name == "LocalTokenNotFoundError":
            return ("Expected a Hub token for --push_to_hub but got none. Run `hf auth login` (or pass --hub_token / "
                    "set HF_TOKEN).")
        network_library = module.split(".")[0] in ("httpx", "httpcore", "requests", "urllib3")
        if (network_library and any(word in name for word in ("Connect", "Timeout", "NameResolution", "Network"))) \
                or (isinstance(link, (ConnectionError, TimeoutError)) and not isinstance(link, BrokenPipeError)):
            return (f"Expected to reach the Hub at {_endpoint()} but got no connection ({name}). Check the network, "
                    "or set HF_ENDPOINT to a Hub you can reach (HF_HUB_OFFLINE=1 to use local files only).")
        if status in (401, 403):
            return (f"Expected a Hub token allowed to do this but the Hub at {_endpoint()} answered {status}. Run "
                    "`hf auth login` (or pass --hub_token / set HF_TOKEN) with a token that has write access.")
    return None


def _raised_here(err: BaseException, roots: Sequence[Path]) -> bool:
    """Whether the innermost frame of `err`'s traceback is in one of `roots` (code of this library or the script)."""
    tb = err.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    filename = Path(tb.tb_frame.f_code.co_filename).resolve()
    return any(root == filename or root in filename.parents for root in roots)


def user_message(err: BaseException, roots: Sequence[Path] = ()) -> str | None:
    """The one-line message to print for `err`, or None when it is a bug (its traceback is kept)."""
    cause = hub_cause(err)
    if cause is not None:
        return cause
    if isinstance(err, _ON_PURPOSE) and _raised_here(err, [_PACKAGE, *roots]):
        return " ".join(str(err).split())
    return None


def exit_with_message(prog: str, message: str) -> NoReturn:
    """Print ``prog: error: message`` on stderr (control characters escaped) and exit with code 2."""
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in message)
    print(f"{prog}: error: {text}", file=sys.stderr)
    sys.exit(2)


def run_main(main: Callable[[], T], prog: str | None = None, script: str | None = None) -> T:
    """Run a script's `main`; an error the user can fix ends the process with its one-line message (exit 2).

    Args:
        main: The script's entry point (reads ``sys.argv``; ``--debug`` is taken out of it first).
        prog: The name printed before the message (default: the script's file name).
        script: The script's ``__file__``: errors raised in its folder count as raised on purpose.
    """
    debug = debug_requested(sys.argv)
    roots = [Path(script).resolve().parent] if script else []
    try:
        return main()
    except Exception as err:
        message = None if debug else user_message(err, roots)
        if message is None:
            raise
        exit_with_message(prog or os.path.basename(sys.argv[0]), message)
