"""The architecture's promises: torch alone runs the math, a new method is one file (facts in its MethodSpec), no
two modules import each other, and the file layer knows nothing above it."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

import hf_labelsmooth
from hf_labelsmooth.losses import RelationLoss, register_loss
from hf_labelsmooth.losses.functional import cross_entropy, mix, relation_targets
from hf_labelsmooth.losses.registry import MethodCard, MethodSpec, _LOSSES

OPTIONAL = ["transformers", "timm", "datasets", "accelerate", "evaluate", "matplotlib", "sklearn", "soundfile"]
BLOCKER = textwrap.dedent(f"""
    import importlib.abc, sys
    BLOCKED = {OPTIONAL!r}
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{{name}} is blocked: torch-only install")
    sys.meta_path.insert(0, Block())
""")


def _run_blocked(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    script = tmp_path / "blocked.py"
    script.write_text(BLOCKER + textwrap.dedent(code))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)


def test_math_and_artifact_work_with_torch_alone(tmp_path) -> None:
    result = _run_blocked(f"""
        import torch, hf_labelsmooth as h
        for name in h.list_losses():
            kw = {{"matrix": torch.full((4, 4), 0.25)}} if h.get_loss_class(name).requires_matrix else {{}}
            z = torch.randn(3, 4, requires_grad=True)
            h.create_loss(name, num_classes=4, **kw)(z, torch.tensor([0, 1, 3])).backward()
            assert torch.isfinite(z.grad).all(), name
        loss = h.create_loss("lls", num_classes=4)
        with torch.no_grad():
            loss.logits.normal_()
        h.save_relations(loss, list("abcd"), {str(tmp_path / "m")!r})
        back = h.load_relations({str(tmp_path / "m")!r})
        assert torch.allclose(back.matrix, loss.relation_matrix())
        assert not any(m.split(".")[0] in {OPTIONAL!r} for m in sys.modules)
        print("ok")
    """, tmp_path)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["README.md", "config.json",
                                                                 "relation_matrix.safetensors"]  # no heatmap
    assert "## Heatmap" not in (tmp_path / "m" / "README.md").read_text()


def test_integrations_say_which_extra_is_missing(tmp_path) -> None:
    result = _run_blocked("""
        import hf_labelsmooth
        hf_labelsmooth.LabelSmoothingTrainer
    """, tmp_path)
    assert result.returncode != 0 and "pip install 'hf_labelsmooth[transformers]'" in result.stderr


def test_timm_launcher_says_which_extra_is_missing(tmp_path) -> None:
    result = _run_blocked("""
        from hf_labelsmooth.cli import main
        main(["timm-train", "--loss-type", "ols", "train.py", "--data-dir", "d"])
    """, tmp_path)
    assert result.returncode != 0 and "pip install 'hf_labelsmooth[timm]'" in result.stderr


class ToyTempered(RelationLoss):
    """A new method in one class: a learnable K×K matrix and plain CE against its targets."""

    def __init__(self, num_classes: int, alpha: float | None = None, **kwargs) -> None:
        super().__init__(num_classes, alpha, **kwargs)
        self.logits = nn.Parameter(torch.zeros(num_classes, num_classes))

    def compute(self, logits: Tensor, target: Tensor, labels: Tensor | None) -> Tensor:
        rows = self.logits.float().softmax(-1)
        t = mix(target, relation_targets(target, labels, lambda c: rows[c]), self.alpha)
        return cross_entropy(t, logits.log_softmax(-1))

    def relation_matrix(self) -> Tensor:
        return self.logits.detach().float().softmax(-1)


TOY_SPEC = MethodSpec(name="toy_tempered", default_alpha=0.2, requires_optimizer=True, relation_weight_decay=0.0,
                      learns_relations=True, logits_kind="softmax",
                      card=MethodCard(title="Toy tempered smoothing", description="A toy method for the registry test.",
                                      bibtex="@misc{toy, title={Toy}}"))


@pytest.fixture
def toy():
    register_loss(TOY_SPEC)(ToyTempered)
    yield "toy_tempered"
    _LOSSES.pop("toy_tempered")


def test_a_registered_loss_reaches_every_integration_with_no_other_edit(toy, tmp_path) -> None:
    pytest.importorskip("transformers")
    pytest.importorskip("timm")
    from tests.support.trainer_digits import train_digits

    from hf_labelsmooth.integrations.timm import create_classification_loss, list_classification_loss_types
    from hf_labelsmooth.integrations.timm.launcher import LaunchError, LaunchOptions
    from hf_labelsmooth.integrations.timm.script_args import with_default_smoothing
    from hf_labelsmooth.relations import ClassRelationMatrix

    assert toy in hf_labelsmooth.list_losses(learns_relations=True)
    assert isinstance(create_classification_loss(toy, num_classes=10), ToyTempered) and toy in \
        list_classification_loss_types()
    LaunchOptions(loss_type=toy).check()  # hf-labelsmooth timm-train --loss-type toy_tempered
    assert with_default_smoothing(["--data-dir", "d"], toy)[:2] == ["--smoothing", "0"]
    with pytest.raises(LaunchError):  # the class says it has no sparse rows: the flag is refused
        LaunchOptions(loss_type=toy, relation_top_n=4).check()
    trainer = train_digits(str(tmp_path / "run"), toy, n_train=64, num_train_epochs=1, relation_lr=0.5)
    group = trainer.relation_optimizer.optimizer.param_groups[-1]
    assert group["params"][0] is trainer.relation_loss.logits and group["weight_decay"] == 0.0
    assert trainer.relation_loss.logits.abs().max() > 1e-4  # trained by its optimizer
    assert "relation_entropy" in [h for h in trainer.state.log_history if "loss" in h][-1]
    trainer.save_model(str(tmp_path / "final"))
    saved = ClassRelationMatrix.from_pretrained(tmp_path / "final")
    assert saved.method == toy and saved.alpha == 0.2 and saved.logits_kind == "softmax"
    assert torch.equal(saved.logits, trainer.relation_loss.logits.detach())
    card = (tmp_path / "final" / "relation_matrix" / "README.md").read_text()
    assert "Toy tempered smoothing" in card and "@misc{toy" in card


PACKAGE = Path(hf_labelsmooth.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the package (a package is its __init__.py)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imported(node: ast.Import | ast.ImportFrom, package: str, modules: dict[str, Path]) -> set[str]:
    """The package's modules an import statement loads: `from . import x` is module x when x is one."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
            base = ".".join(anchor + ([base] if base else []))
        subs = [f"{base}.{alias.name}" for alias in node.names]
        names = [s for s in subs if s in modules] + ([base] if any(s not in modules for s in subs) else [])
    found = set()
    for name in names:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name:
            found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere (top level, in functions, under TYPE_CHECKING)."""
    modules, graph = _modules(), {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges |= _imported(node, package, modules)
        graph[name] = edges - {name}
    return graph


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module `start` imports, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        new = graph.get(todo.pop(), set()) - seen
        seen |= new
        todo += new
    return seen


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other (directly or not), each sorted."""
    reach = {name: reachable(graph, name) for name in graph}
    groups = {tuple(sorted({n} | {m for m in reach[n] if n in reach[m]})) for n in graph if n in reach[n]}
    return sorted(list(group) for group in groups)


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(graph) == [["a", "b", "c"]] and import_cycles({"a": {"b"}, "b": set()}) == []
    assert "hf_labelsmooth.relations.artifact" in import_graph()["hf_labelsmooth.relations.save"]


def test_no_two_modules_import_each_other() -> None:
    assert import_cycles(import_graph()) == []


def test_the_file_layer_knows_nothing_above_it() -> None:
    """hf_labelsmooth._io imports no other part of the package, and its errors name no command-line flag."""
    graph = import_graph()
    layer = {name for name in graph if name.startswith("hf_labelsmooth._io")}
    assert layer and all(graph[name] <= layer for name in layer), {n: graph[n] - layer for n in layer}
    errors = []  # the text of every raise statement of the layer
    for path in (PACKAGE / "_io").glob("*.py"):
        raised = [n for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(n, ast.Raise)]
        errors += [n.value for r in raised for n in ast.walk(r)
                   if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    assert len(errors) > 10 and not [e for e in errors if re.search(r"--[a-z]|relation|label_smoothing|Trainer", e)]
