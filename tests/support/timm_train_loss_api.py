"""A training script in the style of newer timm releases, for the launcher tests (not timm's file).

Newer timm selects the loss with ``--loss`` (choices ``timm.loss.LOSS_TYPES``) built by
``timm.loss.create_classification_loss`` or by ``ClassificationTask(criterion_kwargs=...)``. This is the smallest
script that reaches timm the same way: names imported at module load, ``utils.*`` looked up when called.
"""
import argparse
import json

from timm import utils
from timm.data import create_dataset, create_loader
from timm.loss import LOSS_TYPES, create_classification_loss
from timm.models import create_model
from timm.optim import create_optimizer_v2
from timm.task import ClassificationTask

parser = argparse.ArgumentParser()
parser.add_argument("--data-dir", required=True)
parser.add_argument("--output", required=True)
parser.add_argument("--loss", default="ce", choices=LOSS_TYPES)
parser.add_argument("--smoothing", type=float, default=0.1)
parser.add_argument("--via", default="factory", choices=("factory", "kwargs"))
parser.add_argument("--device", default="cpu")
parser.add_argument("--seed", type=int, default=0)


def main() -> None:
    args = parser.parse_args()
    device = utils.init_distributed_device(args)
    utils.random_seed(args.seed, args.rank)
    model = create_model("test_efficientnet_gn", num_classes=10)
    dataset = create_dataset("", root=args.data_dir, split="train", is_training=True)
    loader = create_loader(dataset, input_size=(3, 16, 16), batch_size=32, is_training=True, no_aug=True,
                           num_workers=0, use_prefetcher=False, device=device)
    loss_kwargs = dict(loss_type=args.loss, smoothing=args.smoothing)
    if args.via == "factory":
        task = ClassificationTask(model, criterion=create_classification_loss(**loss_kwargs), device=device)
    else:
        task = ClassificationTask(model, criterion_kwargs=loss_kwargs, device=device)
    optimizer = create_optimizer_v2(task.get_trainable_module(), opt="adamw", lr=0.003, weight_decay=0.05)
    output_dir = utils.get_outdir(args.output, "run")
    for input, target in loader:
        loss = task(input, target)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    groups = [{"weight_decay": g["weight_decay"], "size": sum(p.numel() for p in g["params"])}
              for g in optimizer.param_groups]
    with open(f"{output_dir}/optimizer.json", "w") as f:
        json.dump(groups, f)


if __name__ == "__main__":
    main()
