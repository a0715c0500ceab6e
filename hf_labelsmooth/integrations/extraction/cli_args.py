"""The flags of ``hf-labelsmooth extract`` (named as the training scripts name them), mapped onto `ExtractArguments`."""
from __future__ import annotations

import argparse

DATA_HELP = "the data the model was trained on, as the training scripts take it (exactly one)"


def add_extract_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every flag of `ExtractArguments` to `parser` (defaults from the dataclass)."""
    parser.add_argument("model", metavar="MODEL", help="transformers folder or Hub id; timm:ARCH, hf-hub:REPO or "
                                                       "local-dir:PATH for timm")
    parser.add_argument("--output_dir", required=True, help="the artifact folder to write")
    parser.add_argument("--framework", choices=["auto", "transformers", "timm"], default="auto")
    parser.add_argument("--checkpoint", help="weights of a timm:ARCH model (train.py checkpoint or state dict)")
    parser.add_argument("--in_chans", type=int, default=3, help="input channels of a timm:ARCH model (default 3)")
    data = parser.add_argument_group("data", DATA_HELP)
    data.add_argument("--dataset_name", help="Hub dataset id, or a local image / audio / csv folder")
    data.add_argument("--dataset_config_name")
    data.add_argument("--dataset_from_disk", help="a folder written by Dataset(Dict).save_to_disk")
    data.add_argument("--train_file", help="a csv or json(lines) file")
    data.add_argument("--train_dir", help="an image or audio folder: DIR/<class>/file")
    data.add_argument("--split", default="train", help="split to read (default: train)")
    data.add_argument("--label_column_name", default="label")
    data.add_argument("--text_column_names", help="comma-separated text columns (default: sentence or text)")
    data.add_argument("--image_column_name", default="image")
    data.add_argument("--audio_column_name", default="audio")
    data.add_argument("--max_seq_length", type=int, default=128)
    data.add_argument("--max_length_seconds", type=float, help="cut audio to its first seconds (default: whole)")
    data.add_argument("--max_samples", type=int, help="read a fixed random subset of this many samples")
    data.add_argument("--match_labels_by", choices=["name", "index"], default="name",
                      help="name: the model's id2label must name the dataset's classes (default); index: output i "
                           "is class i")
    add_run_arguments(parser)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The extraction options and how the pass runs."""
    how = parser.add_argument_group("extraction")
    how.add_argument("--correct_only", action="store_true", help="count correctly classified samples only (OLS)")
    how.add_argument("--temperature", type=float, default=1.0, help="softmax temperature (default 1)")
    how.add_argument("--exclude_self", action="store_true",
                     help="zero the diagonal and renormalise each row over the other classes (as LS++)")
    run = parser.add_argument_group("run")
    run.add_argument("--batch_size", type=int, default=32)
    run.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1, mps (default cpu)")
    run.add_argument("--no_progress", dest="progress", action="store_false", help="no progress bar or lines")
    run.add_argument("--cache_dir")
    run.add_argument("--revision", help="Hub revision of the model")
    run.add_argument("--token", help="Hub token (default: the one of `hf auth login`)")
    run.add_argument("--trust_remote_code", action="store_true")
