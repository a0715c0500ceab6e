"""Command line: ``hf-labelsmooth <command> ...``. Add a command by writing `add_<name>(subparsers)` + a handler."""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

Handler = Callable[[argparse.Namespace], int]


def add_show(subparsers: argparse._SubParsersAction) -> None:
    """``show DIR_OR_REPO [--top 5] [--png out.png]``: top related classes per class, optional heatmap."""
    parser = subparsers.add_parser("show", help="Print the top related classes of a saved class-relation matrix.",
                                   description="Load a class-relation matrix (folder or Hub repo id), print "
                                               "the most related classes of every class, optionally save a heatmap.")
    parser.add_argument("path_or_repo", metavar="DIR_OR_REPO",
                        help="a matrix folder or Hub repo, or a saved model's (its relation_matrix/ is read)")
    parser.add_argument("--top", type=int, default=5, help="related classes per class (default: 5)")
    parser.add_argument("--png", default=None, help="write the heatmap to this PNG file")
    parser.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    parser.set_defaults(handler=run_show)


def run_show(args: argparse.Namespace) -> int:
    """Handler of ``show``."""
    from .relations import load_relations

    if args.top < 1:
        raise ValueError(f"Expected --top >= 1 but got {args.top}.")
    matrix = load_relations(args.path_or_repo, revision=args.revision)
    print(format_summary(matrix, args.top))
    if args.png:
        if matrix.plot(args.png) is None:
            raise ValueError(f"Expected a dense matrix for --png but got a top-{matrix.top_n} table (K="
                             f"{matrix.num_classes} is too large to draw). Drop --png.")
        print(f"heatmap written to {args.png}")
    return 0


def format_summary(matrix, top: int) -> str:
    """Header lines (method, α, source model, dataset, epochs) and one line per class with its top related classes."""
    from .relations.card import UNIFORM_NOTE

    meta = ", ".join(f"{k}={getattr(matrix, k)}" for k in ("method", "alpha", "source_model", "dataset", "epochs")
                     if getattr(matrix, k) is not None)
    lines = [f"class-relation matrix: K={matrix.num_classes}" + (f", {meta}" if meta else ""),
             f"top {min(top, matrix.num_classes - 1)} related classes (row: true class, self excluded):"]
    width = max(len(name) for name in matrix.label_names)
    uniform = matrix.uniform_rows()
    for name, related, flat in zip(matrix.label_names, matrix.top_related(top), uniform):
        text = "(uniform row)" if flat else ", ".join(f"{other} ({prob:.3f})" for other, prob in related)
        lines.append(f"  {name:<{width}}  {text}")
    if any(uniform):
        lines.append(f"{sum(uniform)} uniform row(s): {UNIFORM_NOTE}.")
    return "\n".join(lines)


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [add_show]


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per entry of `COMMANDS`."""
    parser = argparse.ArgumentParser(prog="hf-labelsmooth", description="Class-relation label smoothing tools.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point (``hf_labelsmooth.cli:main``); returns the exit code (1 on a user error, message on stderr)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except Exception as err:  # user errors become a message; bugs keep their traceback
        user_error = isinstance(err, (FileNotFoundError, ValueError))
        if not user_error and not type(err).__module__.startswith("huggingface_hub"):
            raise
        print(f"hf-labelsmooth {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
