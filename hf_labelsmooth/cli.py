"""Command line: ``hf-labelsmooth <command> ...``. Add a command by writing `add_<name>(subparsers)` + a handler."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence

Handler = Callable[[argparse.Namespace], int]
USER_ERROR = 2  # exit code of a user error (bad input, missing file, no network), as argparse exits on a bad flag


def add_show(subparsers: argparse._SubParsersAction) -> None:
    """``show DIR_OR_REPO [--top 5] [--png out.png]``: top related classes per class, optional heatmap."""
    parser = subparsers.add_parser("show", help="Print the top related classes of a saved class-relation matrix.",
                                   description="Load a class-relation matrix (folder or Hub repo id), print "
                                               "the most related classes of every class, optionally save a heatmap.")
    parser.add_argument("path_or_repo", metavar="DIR_OR_REPO",
                        help="a matrix folder or Hub repo, or a saved model's (its relation_matrix/ is read)")
    parser.add_argument("--top", type=int, default=5, help="related classes per class (default: 5)")
    parser.add_argument("--png", default=None,
                        help="write the heatmap to this file (PNG; .jpg, .svg or .pdf by suffix)")
    parser.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    parser.set_defaults(handler=run_show)


def run_show(args: argparse.Namespace) -> int:
    """Handler of ``show``."""
    from .cli_show import check_local_argument, checkpoint_relations
    from .relations import load_relations
    from .relations.plot import image_format

    if args.top < 1:
        raise ValueError(f"Expected --top >= 1 but got {args.top}.")
    if args.png:
        image_format(args.png)  # a directory, a missing folder or an unknown suffix fails before loading
    local = check_local_argument(args.path_or_repo)  # a local-looking path is never sent to the Hub
    matrix = checkpoint_relations(local) if local is not None else None
    if matrix is None:
        matrix = load_relations(local if local is not None else args.path_or_repo, revision=args.revision)
    print(format_summary(matrix, args.top))
    if args.png:
        if matrix.plot(args.png) is None:
            top_n = getattr(matrix, "top_n", None)  # only a top-N table (RelationTopK) draws no heatmap
            raise ValueError(f"Expected a dense matrix for --png but got a top-{top_n} table (K="
                             f"{matrix.num_classes} is too large to draw). Drop --png.")
        print(f"heatmap written to {printable(args.png)}")
    return 0


def printable(text: object) -> str:
    """`text` safe for a terminal: control characters (escape sequences, newlines, bidi overrides) are escaped."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(text))


def format_summary(matrix, top: int) -> str:
    """Header lines (the metadata fields of the format, `schema.METADATA`) and a line per class with its top related.

    Every name and metadata value comes from a possibly untrusted config.json: all are printed escaped.
    """
    from .relations.card import UNIFORM_NOTE
    from .relations.schema import METADATA

    meta = ", ".join(f"{k}={printable(getattr(matrix, k))}" for k in METADATA if getattr(matrix, k) not in (None, {}))
    lines = [f"class-relation matrix: K={matrix.num_classes}" + (f", {meta}" if meta else ""),
             f"top {min(top, matrix.num_classes - 1)} related classes (row: true class, self excluded):"]
    names = {name: printable(name) for name in matrix.label_names}
    width = max(len(name) for name in names.values())
    uniform = matrix.uniform_rows()
    for name, related, flat in zip(matrix.label_names, matrix.top_related(top), uniform):
        text = "(uniform row)" if flat else ", ".join(f"{names[other]} ({prob:.3f})" for other, prob in related)
        lines.append(f"  {names[name]:<{width}}  {text}")
    if any(uniform):
        lines.append(f"{sum(uniform)} uniform row(s): {UNIFORM_NOTE}.")
    return "\n".join(lines)


def add_timm_train(subparsers: argparse._SubParsersAction) -> None:
    """``timm-train TRAIN_PY [--loss-type NAME ...] [train.py's flags]``: timm's own train.py with a relation loss."""
    from .integrations.timm.launcher import add_launcher_arguments

    parser = subparsers.add_parser(
        "timm-train", help="Run timm's train.py with a relation loss (ols, lspp, lls, ...).", allow_abbrev=False,
        description="Run timm's own train.py (unmodified) with a class-relation loss in place of its criterion. The "
                    "flags below may also follow TRAIN_PY; every other flag goes to train.py. Multi-process: "
                    "torchrun --nproc_per_node N --no-python hf-labelsmooth timm-train TRAIN_PY ...")
    add_launcher_arguments(parser)
    parser.set_defaults(handler=run_timm_train)


def run_timm_train(args: argparse.Namespace) -> int:
    """Handler of ``timm-train``; errors of train.py itself keep their traceback."""
    from .integrations.timm.launcher import LaunchError, LaunchOptions, launch

    options = LaunchOptions(**{k: v for k, v in vars(args).items() if k in LaunchOptions.__dataclass_fields__})
    try:
        launch(args.script, args.script_args, options)
    except ValueError as err:  # raised by train.py or timm: keep the traceback above the one-line message
        if not isinstance(err, LaunchError):
            import traceback

            traceback.print_exc()
        raise
    return 0


def add_extract(subparsers: argparse._SubParsersAction) -> None:
    """``extract MODEL --output_dir DIR (--dataset_name D | --train_file F | ...)``: a matrix from any classifier."""
    from .integrations.extraction.cli_args import add_extract_arguments

    parser = subparsers.add_parser(
        "extract", help="Build a class-relation matrix from any trained classifier's predictions.",
        description="Row c = the classifier's mean predicted distribution over the samples of true class c, saved as "
                    "a relation artifact (config, safetensors, card, heatmap) that --relation_matrix and "
                    "relation_prior read. MODEL: a transformers sequence / image / audio classifier (folder or Hub "
                    "id), or timm:ARCH (with --checkpoint), hf-hub:REPO, local-dir:PATH for timm.")
    add_extract_arguments(parser)
    parser.set_defaults(handler=run_extract)


def run_extract(args: argparse.Namespace) -> int:
    """Handler of ``extract``."""
    from .integrations.extraction import ExtractArguments, extract_relations
    from .relations import load_relations

    options = ExtractArguments(**{k: v for k, v in vars(args).items() if k in ExtractArguments.__dataclass_fields__})
    folder = extract_relations(options)
    print(format_summary(load_relations(folder), 3))
    print(f"relation matrix written to {printable(folder)} (reuse: --relation_matrix {printable(folder)})")
    return 0


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [add_show, add_timm_train, add_extract]


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per entry of `COMMANDS`."""
    parser = argparse.ArgumentParser(prog="hf-labelsmooth", description="Class-relation label smoothing tools.",
                                     epilog="--debug (or HF_LABELSMOOTH_DEBUG=1) shows the traceback of an error.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point (``hf_labelsmooth.cli:main``); returns the exit code (2 on a user error, as argparse, with the
    one-line message on stderr; ``--debug`` or ``HF_LABELSMOOTH_DEBUG=1`` keeps the traceback)."""
    from .exits import debug_requested, hub_cause

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(argv)
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except BrokenPipeError:  # `show ... | head`: the reader has gone, nothing is left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as err:  # user errors become a message; bugs keep their traceback
        user_error = isinstance(err, (OSError, ValueError))  # bad input or an unwritable path
        if debug or not (user_error or type(err).__module__.startswith("huggingface_hub") or hub_cause(err)):
            raise
        own = " ".join(str(err).split())  # the library's own "Expected ..." message names the argument: it comes first
        message = (own if own.startswith("Expected") else None) or hub_cause(err) or own or type(err).__name__
        print(f"hf-labelsmooth {args.command}: error: {printable(message)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
