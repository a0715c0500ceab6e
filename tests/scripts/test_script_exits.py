"""The training scripts end with the library's one-line message (exit 2, as argparse), not a traceback; ``--debug``
or HF_LABELSMOOTH_DEBUG=1 keeps the traceback. Hub failures name their cause in one line before any data is read."""
from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hf_labelsmooth import create_loss
from hf_labelsmooth.integrations.transformers.checkpoint import save_loss_state
from tests.support.launching import image_script_args, run
from tests.support.paths import SCRIPTS
from tests.support.ports import free_port

PROG = "run_image_classification.py"


def script(tmp_path: Path, *extra: str, **env: str):
    """The image script on a data folder that does not exist: every error here must come before it is read."""
    return run([sys.executable, *image_script_args(tmp_path / "no-such-data", tmp_path / "out", *extra)], tmp_path,
               **env)


def one_line(result, start: str) -> None:
    lines = result.error_lines(PROG)
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"{PROG}: error: {start}"), \
        result.stderr[-3000:]
    assert "Traceback" not in result.stderr


def test_a_library_error_is_one_line_and_debug_shows_the_traceback(tmp_path) -> None:
    result = script(tmp_path, "--label_smoothing_factor", "0.1")
    one_line(result, "Expected `label_smoothing_factor` = 0 with LabelSmoothingTrainingArguments but got 0.1")
    for debug in (script(tmp_path, "--label_smoothing_factor", "0.1", "--debug"),
                  script(tmp_path, "--label_smoothing_factor", "0.1", HF_LABELSMOOTH_DEBUG="1")):
        assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr
        assert "ValueError: Expected `label_smoothing_factor` = 0" in debug.stderr


def test_a_soft_label_method_on_class_labels_is_one_line(tmp_path) -> None:
    """soft_kl is ce on class labels: the scripts refuse it (as the timm launcher does) rather than train ce."""
    one_line(script(tmp_path, "--label_smoothing_method", "soft_kl"),
             "Expected --label_smoothing_method in ['ce', ")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("extra,start", [
    (["--label_smoothing_method", "soft_kl"], "Expected --label_smoothing_method in ['ce', "),
    (["--push_to_hub"], "Expected a Hub token for --push_to_hub but got none."),
])
def test_the_token_script_ends_with_the_one_line_message(tmp_path, extra, start) -> None:
    """run_token_classification.py ends as the other scripts do, and checks Hub access before any work."""
    prog = "run_token_classification.py"
    result = run([sys.executable, str(SCRIPTS / prog), "--model_name_or_path", str(tmp_path / "no-such-model"),
                  "--corpus", "generated", "--output_dir", str(tmp_path / "out"), "--do_train", *extra], tmp_path,
                 HF_TOKEN="", HF_HOME=str(tmp_path / "hf"))
    lines = result.error_lines(prog)
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"{prog}: error: {start}"), \
        result.stderr[-3000:]
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


def test_another_methods_checkpoint_is_one_line(tmp_path) -> None:
    checkpoint = tmp_path / "out" / "checkpoint-3"
    checkpoint.mkdir(parents=True)
    save_loss_state(create_loss("lls", num_classes=10), checkpoint)
    one_line(script(tmp_path), f"Expected checkpoint {checkpoint} to come from a 'ols' run but it holds the loss "
                               "state of a 'lls' run.")


class _Refusing(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"error": "Invalid credentials in Authorization header"}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def refusing_hub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_push_without_network_offline_or_token_fails_first_in_one_line(tmp_path, refusing_hub) -> None:
    push = ("--push_to_hub", "--hub_model_id", "me/digits-ols")
    closed = f"http://127.0.0.1:{free_port()}"
    one_line(script(tmp_path, *push, HF_ENDPOINT=closed, HF_TOKEN="hf_x"),
             f"Expected to reach the Hub at {closed} but got no connection")
    one_line(script(tmp_path, *push, HF_HUB_OFFLINE="1", HF_TOKEN="hf_x"),
             "Expected to reach the Hub but got offline mode (HF_HUB_OFFLINE is set)")
    one_line(script(tmp_path, *push, HF_ENDPOINT=refusing_hub, HF_TOKEN="hf_x"),
             f"Expected a Hub token allowed to do this but the Hub at {refusing_hub} answered 401. Run `hf auth "
             "login`")
    one_line(script(tmp_path, *push, HF_ENDPOINT=refusing_hub), "Expected a Hub token for --push_to_hub")


def test_a_hub_dataset_that_cannot_be_reached_is_one_line(tmp_path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    args = image_script_args(tmp_path / "no-such-data", tmp_path / "out")
    args[args.index("--dataset_name") + 1] = "someone/some-data"
    result = run([sys.executable, *args], tmp_path, HF_ENDPOINT=closed)
    one_line(result, f"Expected to reach the Hub at {closed} but got no connection (ConnectionError)")


def _summary(out: Path) -> dict:
    return json.loads((out / "train_results.json").read_text())


@pytest.mark.slow
def test_a_rerun_that_only_uploads_keeps_the_runs_results(tmp_path) -> None:
    from tests.support.hub_server import RecordingHub
    from prepare_demo_data import make_digits_imagefolder

    data = make_digits_imagefolder(tmp_path / "digits", n_train=32, n_val=16)
    args = image_script_args(data, tmp_path / "out", "--do_eval", "--save_strategy", "epoch")
    first = run([sys.executable, *args], tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    results, state = _summary(tmp_path / "out"), (tmp_path / "out" / "trainer_state.json").read_text()
    with RecordingHub() as hub:
        again = run([sys.executable, *args, "--push_to_hub", "--hub_model_id", "me/digits-ols"], tmp_path,
                    HF_ENDPOINT=hub.url, HF_TOKEN="hf_x")
    assert again.returncode == 0, again.stderr[-3000:]
    assert _summary(tmp_path / "out") == results and results["train_runtime"] > 0.01
    assert (tmp_path / "out" / "trainer_state.json").read_text() == state
    uploaded = hub.commits[-1]["files"]
    assert json.loads(uploaded["train_results.json"]) == results
    assert json.loads(uploaded["all_results.json"])["train_loss"] == results["train_loss"]
    assert "relation_matrix/config.json" in uploaded
