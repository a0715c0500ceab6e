"""Bad input gets a clear error before any state changes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import hf_labelsmooth
from tests.support.factories import make_loss

pytestmark = pytest.mark.usefixtures("device")  # CPU, and CUDA when present

K = 4


def _bad_inputs() -> list[tuple[str, torch.Tensor, torch.Tensor, str]]:
    z, y = torch.randn(3, K), torch.tensor([0, 1, 2])
    nan = z.clone()
    nan[1, 2] = float("nan")
    inf = z.clone()
    inf[2, 0] = float("inf")
    return [
        ("label too large", z, torch.tensor([0, 1, K]), r"Expected labels in \[0, 4\) but got values in \[0, 4\]"),
        ("negative label", z, torch.tensor([-1, 1, 2]), r"Expected labels in \[0, 4\)"),
        ("wrong K", torch.randn(3, K + 1), y,
         r"Expected logits of shape \[batch, num_classes=4\] or \[batch, tokens, num_classes=4\] but got \(3, 5\)"),
        ("soft rows", z, torch.full((3, K), 0.3), "Expected soft targets with non-negative rows summing to 1"),
        ("soft shape", z, torch.full((3, K + 1), 0.2), r"Expected soft targets of shape \(3, 4\)"),
        ("nan", nan, y, r"Expected finite logits but got NaN in batch 0 \(rows \[1\]\)"),
        ("inf", inf, y, r"Expected finite logits but got inf in batch 0 \(rows \[2\]\)"),
        ("label shape", z, torch.tensor([[0, 1, 2]]), r"Expected class ids of shape \(3,\)"),
    ]


@pytest.mark.parametrize("name", hf_labelsmooth.list_losses())
@pytest.mark.parametrize("case", _bad_inputs(), ids=lambda c: c[0])
def test_bad_batch_raises_before_state_changes(name: str, case: tuple) -> None:
    _, z, target, message = case
    loss = make_loss(name, K)
    before = {k: v.clone() for k, v in loss.state_dict().items()}
    with pytest.raises(ValueError, match=message):
        loss(z, target)
    for key, value in loss.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_error_names_the_batch_number() -> None:
    loss = hf_labelsmooth.create_loss("ols", num_classes=K)
    loss(torch.randn(2, K), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="NaN in batch 1"):
        loss(torch.full((2, K), float("nan")), torch.tensor([0, 1]))


@pytest.mark.parametrize("alpha", [-0.1, 1.5, "0.1"])
def test_alpha_outside_unit_interval(alpha: object) -> None:
    with pytest.raises(ValueError, match=r"Expected `alpha` in \[0, 1\] but got"):
        hf_labelsmooth.create_loss("ls", num_classes=K, alpha=alpha)


@pytest.mark.parametrize("k", [1, 0, 2.5, True])
def test_num_classes_below_two(k: object) -> None:
    with pytest.raises(ValueError, match="Expected `num_classes` to be an integer >= 2 but got"):
        hf_labelsmooth.create_loss("ols", num_classes=k)


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="Expected `reduction` in"):
        hf_labelsmooth.create_loss("ls", num_classes=K, reduction="avg")
    with pytest.raises(ValueError, match="Expected `update_every` to be a positive integer"):
        hf_labelsmooth.create_loss("ols", num_classes=K, update_every=0)
    with pytest.raises(ValueError, match="Expected `empty_row` in"):
        hf_labelsmooth.create_loss("ols", num_classes=K, empty_row="zeros")


@pytest.mark.parametrize("name", hf_labelsmooth.list_losses())
def test_one_label_dtype_rule_for_every_loss(name: str) -> None:
    """Class ids of any integer dtype give the int64 result; bool labels are refused with the fix."""
    z, y = torch.randn(3, K), torch.tensor([0, 3, 1])
    torch.manual_seed(0)  # the same random prior matrix for relation_prior
    expected = make_loss(name, K)(z, y)
    for dtype in (torch.int32, torch.int16, torch.int8, torch.uint8):
        torch.manual_seed(0)
        assert torch.equal(make_loss(name, K)(z, y.to(dtype)), expected), dtype
    with pytest.raises(ValueError, match=r"Expected class ids of an integer dtype .* but got torch.bool.*labels.long"):
        make_loss(name, K)(z, torch.tensor([True, False, True]))


@pytest.mark.parametrize("name", hf_labelsmooth.list_losses())
def test_ignore_index_is_named_and_never_a_silent_zero(name: str) -> None:
    z, y = torch.randn(3, K), torch.tensor([0, -100, 1])
    message = r"got -100 \(Hugging Face's ignore index\) in rows \[1\].*not ignored by default.*ignore_index=-100"
    with pytest.raises(ValueError, match=message):
        make_loss(name, K)(z, y)
    with pytest.raises((IndexError, RuntimeError)):  # unchecked: an invalid label, not a row that counts as 0
        make_loss(name, K, check_inputs=False)(z, y)


def test_token_logits_need_token_labels() -> None:
    with pytest.raises(ValueError, match=r"Expected token class ids of shape \(2, 3\) .* but got \(2,\)"):
        hf_labelsmooth.create_loss("ls", num_classes=5)(torch.randn(2, 3, 5), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"Expected logits of shape .* but got \(2, 3, 4, 5\)"):
        hf_labelsmooth.create_loss("ls", num_classes=5)(torch.randn(2, 3, 4, 5), torch.zeros(2, 3, 4).long())


@pytest.mark.parametrize("row", [[1.5, -0.5, 0.0, 0.0], [float("nan"), 1.0, 0.0, 0.0]])
def test_negative_or_nan_soft_targets_name_the_rows(row: list) -> None:
    target = torch.tensor([[0.25] * 4, row, [0.25] * 4])
    with pytest.raises(ValueError, match=r"soft targets .* but got rows \[1\] \(batch 0\)"):
        hf_labelsmooth.create_loss("ls", num_classes=K)(torch.randn(3, K), target)


@pytest.mark.parametrize("alpha", [np.float32(0.1), np.float64(0.1), torch.tensor(0.1), torch.tensor(0.1).double(),
                                   np.int64(0), 0.1])
def test_alpha_of_any_real_numeric_type(alpha: object) -> None:
    loss = hf_labelsmooth.create_loss("ls", num_classes=K, alpha=alpha)
    assert type(loss.alpha) is float and loss.alpha == pytest.approx(float(alpha))


@pytest.mark.parametrize("alpha", [True, np.bool_(False), torch.tensor(True), torch.tensor([0.1, 0.2]), float("nan")])
def test_alpha_bools_and_non_scalars_are_refused(alpha: object) -> None:
    with pytest.raises(ValueError, match=r"Expected `alpha` in \[0, 1\] but got"):
        hf_labelsmooth.create_loss("ls", num_classes=K, alpha=alpha)


@pytest.mark.parametrize("k", [np.int64(5), np.int32(5), torch.tensor(5)])
def test_num_classes_of_any_integer_type(k: object) -> None:
    loss = hf_labelsmooth.create_loss("ols", num_classes=k)
    assert type(loss.num_classes) is int and loss.num_classes == 5
    assert loss(torch.randn(2, 5), torch.tensor([0, 4])).ndim == 0


@pytest.mark.parametrize("k", [np.bool_(True), torch.tensor(True), torch.tensor(5.0), np.float64(5.0)])
def test_num_classes_bools_and_floats_are_refused(k: object) -> None:
    with pytest.raises(ValueError, match="Expected `num_classes` to be an integer >= 2 but got"):
        hf_labelsmooth.create_loss("ols", num_classes=k)
