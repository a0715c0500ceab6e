"""The extraction pass: batches of the split through the classifier into a `RelationExtractor`, then the artifact."""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Iterator

import torch

from ...relations import save_relations
from ...relations.extract import RelationExtractor
from .arguments import ExtractArguments
from .data import class_names, describe_data, label_ids, load_split, output_order, with_unseen_classes
from .models import Classifier, load_classifier


def extract_relations(args: ExtractArguments) -> Path:
    """Build the class-relation matrix of `args.model` over `args`'s data and save it to `args.output_dir`.

    Row c of the matrix is the model's mean predicted distribution over the split's samples of class c
    (`hf_labelsmooth.relations.extract`); the artifact is usable at once as ``--relation_matrix`` or as the
    ``matrix`` of ``relation_prior``.

    Returns:
        The artifact folder.

    Raises:
        ValueError: Bad options, data or model (each with the fix), before any batch runs where possible.
    """
    split = load_split(args)
    data_names = class_names(split, args.label_column_name)
    classifier = load_classifier(args, split.column_names)
    is_class_label = hasattr(split.features[args.label_column_name], "names")
    names = with_unseen_classes(data_names, classifier.label_names, args.match_labels_by)
    order = output_order(names, classifier.label_names, classifier.num_labels, args.match_labels_by, args.model)
    extractor = RelationExtractor(len(names), args.options, names)
    start = time.time()
    for batch in batches(split, args.batch_size, args.progress):
        logits = classifier.logits({k: v.to(args.device) for k, v in classifier.inputs(batch).items()})
        ids = label_ids(batch[args.label_column_name], data_names, names, is_class_label)
        targets = torch.tensor(ids, device=logits.device)
        extractor.update(logits[:, order], targets)
    return save_relations(extractor, names, args.output_dir, source_model=args.model, dataset=describe_data(args),
                          extraction={**extractor.summary(), **record(args, classifier, time.time() - start)})


def record(args: ExtractArguments, classifier: Classifier, seconds: float) -> dict[str, Any]:
    """What the config records of the extraction besides the options and counts (`RelationExtractor.summary`)."""
    return {"split": args.split, "framework": classifier.framework, "label_column": args.label_column_name,
            "matched_labels_by": args.match_labels_by if classifier.label_names else "index (model has no names)",
            "seconds": round(seconds, 3)}


def batches(split: Any, batch_size: int, progress: bool) -> Iterator[dict[str, list]]:
    """The split's rows in order, `batch_size` at a time (dicts of column lists), with progress on stderr: a bar on a
    terminal, and a line per 10 % when there are 10 batches or more."""
    from tqdm.auto import tqdm

    total = len(split)
    steps = -(-total // batch_size)
    bar = tqdm(total=total, unit="sample", desc="extract", disable=not (progress and sys.stderr.isatty()))
    reported, start = 0, time.time()
    for step in range(steps):
        batch = split[step * batch_size:(step + 1) * batch_size]
        yield batch
        done = min(total, (step + 1) * batch_size)
        bar.update(done - bar.n)
        if progress and steps >= 10 and done * 10 // total > reported:
            reported = done * 10 // total
            bar.write(f"extract: {10 * reported}% ({done}/{total} samples, {time.time() - start:.0f}s)",
                      file=sys.stderr)
    bar.close()
