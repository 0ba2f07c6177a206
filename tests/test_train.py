"""`zoo train` end to end: run folders, settings files, resume after SIGKILL and Ctrl-C, cached
head features, --image-size, --init-from, zoo eval, torchrun DDP, and bad input."""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from tests.datafiles import write_cifar10, write_mnist
from zoo.channels import sum_first_conv
from zoo.data.augment import augment
from zoo.serving.inference import Classifier
from zoo.training.checkpoint import FILENAME
from zoo.training.config import TrainConfig
from zoo.training.features import backbone_features
from zoo.training.finetune import head_module
from zoo.training.loop import train
from zoo.weights import EXTRA, read_meta

ROOT = Path(__file__).resolve().parent.parent
# Every epoch, in one memory format (as one thread count: `one_thread`), so that separate
# processes compute alike.
LONG = {"epochs": 30, "limit": 100, "batch_size": 10, "patience": 0, "channels_last": True}
LONG_RUN = [
    "train",
    "lenet",
    "--epochs",
    "30",
    "--limit",
    "100",
    "--batch-size",
    "10",
    "--patience",
    "0",
    "--channels-last",
    "-q",
]


@contextmanager
def one_thread():
    """Torch on one thread, as in the child processes: the same numerics everywhere."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def zoo_process(args: list[str], **popen) -> subprocess.Popen:
    """`python -m zoo ARGS` in a child process, on one thread."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "zoo", *args], env=env, cwd=ROOT, text=True, **popen
    )


def where(tmp_path: Path, run: str) -> list[str]:
    return ["--out", str(tmp_path), "--runs-dir", str(tmp_path / "runs"), "--run-name", run]


def same_tensors(a: Path, b: Path) -> bool:
    first, second = load_file(a), load_file(b)
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


@pytest.fixture(scope="module")
def uninterrupted(registry, tmp_path_factory) -> Path:
    """LONG_RUN's weights, trained in one go."""
    path = tmp_path_factory.mktemp("uninterrupted") / "whole.safetensors"
    spec = registry.model("lenet")
    with one_thread():
        train(registry, spec, TrainConfig.for_model(spec, **LONG), path, progress=False)
    return path


def resume(zoo_cli, tmp_path: Path, run: str) -> Path:
    with one_thread():
        result = zoo_cli([*LONG_RUN, *where(tmp_path, run), "--resume"])
    assert result.code == 0, result.err
    return tmp_path / f"{run}.safetensors"


def start_and_stop_mid_way(
    tmp_path: Path, run: str, how: signal.Signals, args: list[str] = LONG_RUN, epoch: int = 1
):
    """Start `args`, send `how` as soon as it has written a checkpoint after `epoch` epochs;
    return the child and the checkpoint."""
    child = zoo_process([*args, *where(tmp_path, run)], stderr=subprocess.PIPE)
    checkpoint = tmp_path / "runs" / run / FILENAME
    deadline = time.monotonic() + 60
    while child.poll() is None and time.monotonic() < deadline:
        with suppress(FileNotFoundError):  # not written yet
            if torch.load(checkpoint, weights_only=True)["epoch"] > epoch:
                break
        time.sleep(0.01)
    child.send_signal(how)
    child.wait(timeout=60)
    saved = torch.load(checkpoint, weights_only=True)
    assert child.returncode != 0, "the run ended before it could be stopped"
    return child, saved


def test_resume_after_sigkill_gives_the_uninterrupted_weights(zoo_cli, tmp_path, uninterrupted):
    child, saved = start_and_stop_mid_way(tmp_path, "killed", signal.SIGKILL)
    assert child.returncode == -signal.SIGKILL and saved["model"] == "lenet"
    assert not (tmp_path / "killed.safetensors").exists()
    assert not [p for p in (tmp_path / "runs" / "killed").iterdir() if p.name.startswith(".")]
    assert same_tensors(resume(zoo_cli, tmp_path, "killed"), uninterrupted)
    history = [json.loads(line) for line in (tmp_path / "runs/killed/metrics.jsonl").open()]
    assert [row["epoch"] for row in history] == list(range(1, LONG["epochs"] + 1))


def test_a_run_stopped_in_its_last_phase_is_finished_by_resume(zoo_cli, tmp_path, uninterrupted):
    """Killed after its last epoch (testing, the post-hoc fit), before the weights file: resume
    finishes it with the uninterrupted weights and reports the whole run's seconds."""
    child = zoo_process([*LONG_RUN, *where(tmp_path, "late")], stderr=subprocess.PIPE)
    checkpoint = tmp_path / "runs" / "late" / FILENAME
    deadline = time.monotonic() + 120
    while child.poll() is None and time.monotonic() < deadline:
        if checkpoint.exists() and torch.load(checkpoint, weights_only=True)["epoch"] > 30:
            break
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL and not (tmp_path / "late.safetensors").exists()
    elapsed = torch.load(checkpoint, weights_only=True)["elapsed"]
    with one_thread():
        result = zoo_cli([*LONG_RUN, *where(tmp_path, "late"), "--resume"])
    assert result.code == 0, result.err
    assert same_tensors(tmp_path / "late.safetensors", uninterrupted)
    whole = float(re.search(r"the whole run ([\d.]+)", result.out).group(1))
    assert whole > elapsed


def test_ctrl_c_saves_mid_epoch_exits_cleanly_and_resumes(zoo_cli, tmp_path, uninterrupted):
    child, saved = start_and_stop_mid_way(tmp_path, "stopped", signal.SIGINT)
    assert saved["model"] == "lenet"
    err = child.stderr.read()
    assert child.returncode == 130, err
    assert err.startswith("interrupted: saved ") and "--resume" in err and "Traceback" not in err
    assert not (tmp_path / "stopped.safetensors").exists()
    assert same_tensors(resume(zoo_cli, tmp_path, "stopped"), uninterrupted)


def test_run_folder_holds_metrics_plots_and_a_safe_checkpoint(zoo_cli, tmp_path):
    result = zoo_cli(
        ["train", "lenet", "--epochs", "2", "--limit", "200", "-q", *where(tmp_path, "r")]
    )
    assert result.code == 0, result.err
    run = tmp_path / "runs" / "r"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    assert [row["epoch"] for row in rows] == [1, 2]
    assert {"loss", "val_accuracy", "train_accuracy", "lr", "images_per_s"} <= rows[0].keys()
    assert rows[1]["loss"] < rows[0]["loss"] and rows[1]["images_per_s"] > 0
    for name in ("curves.png", "test-confusion.png"):
        with Image.open(run / name) as image:
            assert image.format == "PNG" and image.width > 300
    saved = torch.load(run / FILENAME, weights_only=True)
    assert saved["epoch"] == 3 and saved["step"] == 0 and saved["config"]["limit"] == 200
    assert {"state_dict", "optimizer", "schedule", "rng", "history"} <= saved.keys()
    meta = read_meta(tmp_path / "r.safetensors")
    # The record: the most accurate; of equals, the lower loss; of exact equals, the later.
    record = max(range(2), key=lambda i: (rows[i]["val_accuracy"], -rows[i]["val_loss"], i))
    metrics = meta["metrics"]
    assert metrics["record_epoch"] == record + 1 <= metrics["best_epoch"]
    assert metrics["best_val_accuracy"] == rows[metrics["best_epoch"] - 1]["val_accuracy"]
    assert sorted(meta["metrics"]["per_class_accuracy"]) == [str(d) for d in range(10)]


def test_config_file_gives_settings_and_flags_win(zoo_cli, tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(
        'epochs = 1\nbatch-size = 16\nlr = 1\noptimizer = "sgd"\nlabel_smoothing = 0.1\n'
        f'schedule = "cosine"\nlimit = 100\nrun-name = "from-file"\nout = "{tmp_path}"\n'
    )
    result = zoo_cli(f"train lenet --config {config} --lr 0.02 -q")
    assert result.code == 0, result.err
    settings = read_meta(tmp_path / "from-file.safetensors")["settings"]
    assert settings["lr"] == 0.02 and settings["optimizer"] == "sgd" and settings["limit"] == 100
    assert settings["batch_size"] == 16 and settings["label_smoothing"] == 0.1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour = 'red'\n", "unknown setting 'colour'; known: amp, augment, balance, batch-size"),
        ("epochs = 'ten'\n", "epochs must be a whole number, not 'ten'"),
        ("epochs = true\n", "epochs must be a whole number, not True"),
        ("lr = 'fast'\n", "--lr must be a positive number, or auto; not 'fast'"),
        ("epochs = [\n", "not a valid TOML file"),
    ],
)
def test_bad_config_file_is_one_line(zoo_cli, tmp_path, text, message):
    (tmp_path / "c.toml").write_text(text)
    result = zoo_cli(f"train lenet --config {tmp_path / 'c.toml'} --out {tmp_path}")
    assert result.code == 1 and message in result.err and result.err.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("--batch-size 0", "error: --batch-size must be at least 1"),
        ("--label-smoothing 1", "error: --label-smoothing must be in [0, 1)"),
        ("--device tpu", "error: unknown device 'tpu'"),
        ("--image-size 28", "error: lenet cannot take 28x28 input"),
        ("--init-from nowhere.pth", "error: nowhere.pth: no such file"),
        ("--strategy middle", "error: model 'lenet' has no fine-tune strategy 'middle'"),
        ("--resume", "error: nothing to resume: "),
    ],
)
def test_bad_settings_are_one_line_and_write_nothing(zoo_cli, tmp_path, args, message):
    where = f"--out {tmp_path / 'w'} --runs-dir {tmp_path / 'runs'}"
    result = zoo_cli(f"train lenet {args} --limit 50 --epochs 1 {where} -q")
    assert result.code == 1 and result.err.startswith(message), result.err
    assert result.err.count("\n") == 1
    assert not list(tmp_path.glob("w/*")) and not (tmp_path / "runs").exists()


def test_resume_with_another_models_checkpoint_is_refused(zoo_cli, tmp_path):
    args = f"--epochs 1 --limit 50 -q --run-name shared --runs-dir {tmp_path} --out {tmp_path}"
    assert zoo_cli(f"train lenet {args}").code == 0
    result = zoo_cli(f"train cifar-cnn {args} --resume")
    assert result.code == 1
    assert result.err.startswith(f"error: {tmp_path / 'shared' / FILENAME} is a checkpoint of")
    assert "'lenet', not of 'cifar-cnn'" in result.err


def test_unwritable_out_fails_before_training(zoo_cli, tmp_path):
    (tmp_path / "file").write_text("a file, not a folder")
    result = zoo_cli(f"train lenet --out {tmp_path / 'file' / 'weights'} -q")
    assert result.code == 1 and result.err.startswith("error: cannot write to ")
    assert result.err.count("\n") == 1


def test_full_disk_is_one_line_and_leaves_no_partial_file(tmp_path):
    def small_disk():  # writes past 200 kB fail with EFBIG, as on a full disk with ENOSPC
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    args = ["train", "lenet", "--epochs", "1", "--limit", "50", "--batch-size", "10", "-q"]
    child = zoo_process(
        [*args, *where(tmp_path, "full")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=small_disk,
    )
    _, err = child.communicate(timeout=120)
    assert child.returncode == 1 and err.startswith("error: cannot write "), err
    assert "last.ckpt: File too large" in err and err.count("\n") == 1
    assert list(tmp_path.rglob("*")) == []  # not even an empty run folder, nor a lock file


def test_a_failed_save_is_one_line_and_resume_writes_the_weights(zoo_cli, tmp_path):
    """Training ends, but the weights file cannot be written (writes past 300 kB fail, as on
    a full disk; the head's checkpoint is small, the whole model's weights are not): one
    line, the checkpoint kept, and `--resume` writes the weights without training again."""

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))

    args = ["train", "lenet", "--strategy", "head", "--epochs", "1", "--limit", "200"]
    args += ["--batch-size", "10", "-q"]
    child = zoo_process(
        [*args, *where(tmp_path, "full")], stderr=subprocess.PIPE, preexec_fn=small_disk
    )
    _, err = child.communicate(timeout=120)
    weights = tmp_path / "full.safetensors"
    assert child.returncode == 1 and err.count("\n") == 1, err
    assert err.startswith(f"error: cannot write {weights}: File too large; ")
    assert "--resume to finish the job" in err and not weights.exists()
    assert not list(tmp_path.glob(".*"))  # no temporary file, no lock left
    checkpoint = torch.load(tmp_path / "runs" / "full" / FILENAME, weights_only=True)
    assert checkpoint["epoch"] == 2  # the first epoch is done: none is left to train
    with one_thread():
        result = zoo_cli([*args, *where(tmp_path, "full"), "--resume"])
    assert result.code == 0, result.err
    assert read_meta(weights)["settings"]["strategy"] == "head"


def test_a_second_train_of_the_same_run_is_refused_while_the_first_runs(zoo_cli, tmp_path):
    first = zoo_process([*LONG_RUN, *where(tmp_path, "shared")], stderr=subprocess.PIPE)
    checkpoint = tmp_path / "runs" / "shared" / FILENAME
    deadline = time.monotonic() + 60
    while not checkpoint.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        quick = ["train", "lenet", "--epochs", "1", "--limit", "50", "--batch-size", "10", "-q"]
        second = zoo_cli([*quick, *where(tmp_path, "shared")])
        assert first.poll() is None, "the first run ended before the second started"
        assert second.code == 1 and second.err.count("\n") == 1, second.err
        assert second.err.startswith(f"error: {tmp_path / 'shared.safetensors'} is in use by ")
        assert f"another zoo train (pid {first.pid}); wait for it" in second.err
        saved = torch.load(checkpoint, weights_only=True)  # still the first run's
        assert saved["config"]["epochs"] == LONG["epochs"]
    finally:
        first.kill()  # kill -9: the kernel lets go of its locks
        first.wait(timeout=60)
    with one_thread():
        assert zoo_cli([*quick, *where(tmp_path, "shared")]).code == 0
    assert not list(tmp_path.glob(".*")) and not list((tmp_path / "runs").glob(".*"))


def test_vgg16_head_trains_on_cached_features_and_saves_the_whole_model(
    zoo_cli, registry, tmp_path
):
    write_mnist(tmp_path / "data", train=40, test=20)
    result = zoo_cli(
        f"train vgg16 -d mnist --data-dir {tmp_path / 'data'} --epochs 2 --batch-size 8 "
        f"--image-size 40 -q {' '.join(where(tmp_path, 'v'))}"
    )
    assert result.code == 0, result.err
    spec = registry.model("vgg16")
    torch.manual_seed(0)
    fresh = registry.build(spec, num_classes=10)
    assert sum_first_conv(fresh) == "features.0"  # MNIST is grey: its filters are summed
    saved = load_file(tmp_path / "v.safetensors")
    saved = {k: v for k, v in saved.items() if not k.startswith(EXTRA)}  # not the detector
    assert saved.keys() == fresh.state_dict().keys()
    for key, value in fresh.state_dict().items():  # the frozen features are unchanged
        assert torch.equal(saved[key], value) == key.startswith("features."), key
    classifier = Classifier.load(registry, tmp_path / "v.safetensors")
    assert classifier.input.size == 40
    assert classifier.probabilities([torch.zeros(1, 28, 28, dtype=torch.uint8)]).shape == (1, 10)
    rows = [json.loads(line) for line in (tmp_path / "runs/v/metrics.jsonl").open()]
    assert rows[1]["loss"] < rows[0]["loss"]


def test_backbone_features_reproduce_the_model_and_refuse_a_head_that_is_not_last(registry):
    model = registry.build(registry.model("vgg16"), num_classes=10).eval()
    x = torch.randn(3, 3, 32, 32)
    head = head_module(model, registry.model("vgg16"))
    features = backbone_features(model, head, [x[:2], x[2:]])
    assert features.shape == (3, 4608)
    with torch.no_grad():
        assert torch.allclose(head(features), model(x), atol=1e-5)
    wrapped = torch.nn.Sequential(model, torch.nn.Softmax(1))
    assert backbone_features(wrapped, head, [x]) is None


def test_init_from_safetensors_and_pth_and_mismatch(zoo_cli, tmp_path, lenet_weights):
    state = load_file(lenet_weights)
    torch.save({"state_dict": state}, tmp_path / "lenet.pth")
    for source in (lenet_weights, tmp_path / "lenet.pth"):
        result = zoo_cli(
            f"train lenet --init-from {source} --lr 1e-9 --epochs 1 --limit 20 "
            f"--out {tmp_path} --run-name again -q"
        )
        assert result.code == 0, result.err
        again = load_file(tmp_path / "again.safetensors")
        model = [k for k in state if not k.startswith(EXTRA)]  # not the detector: fitted anew
        assert all(torch.allclose(again[k], state[k], atol=1e-6) for k in model)
    save_file({"conv1.weight": torch.zeros(6, 3, 5, 5)}, tmp_path / "other.safetensors")
    result = zoo_cli(f"train lenet --init-from {tmp_path / 'other.safetensors'} --out {tmp_path}")
    assert result.code == 1 and "does not fit the model: missing conv1.bias" in result.err


def test_init_from_a_pickle_with_code_is_refused(zoo_cli, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"conv1.weight": Evil()}, tmp_path / "evil.pth")
    result = zoo_cli(f"train lenet --init-from {tmp_path / 'evil.pth'} --out {tmp_path}")
    assert result.code == 1 and "cannot load it safely (weights_only)" in result.err
    assert not marker.exists()


def test_zoo_eval_reports_accuracy_per_class_and_confusion(zoo_cli, lenet_weights):
    result = zoo_cli(f"eval {lenet_weights} --json")
    report = json.loads(result.out)
    meta = read_meta(lenet_weights)
    assert report["accuracy"] == pytest.approx(meta["metrics"]["test_accuracy"])
    assert report["images"] == sum(map(sum, report["confusion"])) == 359
    assert len(report["per_class"]) == 10 and min(report["per_class"]) > 0.3
    text = zoo_cli(f"eval {lenet_weights}").out
    assert f"accuracy {report['accuracy']:.2%}" in text and "true \\ predicted" in text


def test_zoo_eval_refuses_a_dataset_with_other_classes(zoo_cli, tmp_path, lenet_weights):
    write_cifar10(tmp_path)
    result = zoo_cli(f"eval {lenet_weights} -d cifar10 --data-dir {tmp_path}")
    assert result.code == 1 and "knows classes 0, 1, 2, 3, 4 (+5) but cifar10 has" in result.err


def test_amp_and_augment_train(zoo_cli, tmp_path):
    result = zoo_cli(f"train lenet --amp --augment --epochs 2 --limit 100 --out {tmp_path} -q")
    assert result.code == 0, result.err
    settings = read_meta(tmp_path / "lenet-digits.safetensors")["settings"]
    assert settings["amp"] and settings["augment"]


def test_augment_shifts_within_the_padding_and_flips_only_when_allowed():
    x = torch.arange(2 * 16 * 16, dtype=torch.float).view(2, 1, 16, 16).repeat(64, 1, 1, 1)
    out = augment(x, torch.Generator().manual_seed(0), flip=False)
    assert out.shape == x.shape and torch.equal(
        out, augment(x, torch.Generator().manual_seed(0), False)
    )
    inner = out[:, :, 2:-2, 2:-2]  # a shift of at most 2 keeps the centre inside the image
    rows = inner[:, 0, :, 1:] - inner[:, 0, :, :-1]
    assert torch.all(rows == 1)  # never mirrored: values still rise left to right
    flipped = augment(x, torch.Generator().manual_seed(0), flip=True)[:, 0, 2:-2, 2:-2]
    steps = (flipped[:, :, 1:] - flipped[:, :, :-1])[:, 0, 0]
    assert set(steps.tolist()) == {1.0, -1.0}


def test_torchrun_trains_with_two_cpu_processes(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
    ]
    args = [
        "-m",
        "zoo",
        "train",
        "lenet",
        "--epochs",
        "12",
        "--patience",
        "2",  # every process stops with rank 0, which alone evaluates
        "--lr",
        "auto",  # the processes agree on one rate
        "--device",
        "cpu",
        *where(tmp_path, "ddp"),
    ]
    result = subprocess.run(
        [*command, *args, "-q"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("test accuracy") == 1  # rank 0 alone reports and writes
    meta = read_meta(tmp_path / "ddp.safetensors")
    assert meta["metrics"]["test_accuracy"] >= 0.9
    rows = [json.loads(line) for line in (tmp_path / "runs/ddp/metrics.jsonl").open()]
    metrics = meta["metrics"]
    assert metrics["record_val_accuracy"] == max(row["val_accuracy"] for row in rows)
    assert len(rows) == metrics["epochs_trained"] <= 12
    losses = [row["val_loss"] for row in rows]
    progress = max(metrics["record_epoch"], losses.index(min(losses)) + 1)
    assert len(rows) == 12 or rows[-1]["epoch"] - progress == 2
    assert meta["settings"]["lr"] == meta["lr_find"]["suggestion"]
    assert meta["lr_find"]["processes"] == 2


def test_a_failed_train_after_ctrl_c_keeps_the_run_and_resume_works(
    zoo_cli, tmp_path, uninterrupted
):
    child, _ = start_and_stop_mid_way(tmp_path, "wipe", signal.SIGINT)
    assert child.returncode == 130
    run = tmp_path / "runs" / "wipe"
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    save_file({"conv1.weight": torch.zeros(6, 3, 5, 5)}, tmp_path / "other.safetensors")
    for typo in [
        "--strategy hed",
        f"--init-from {tmp_path / 'other.safetensors'}",
        "--image-size 8",
        "--dataset digts",
    ]:
        result = zoo_cli([*LONG_RUN, *where(tmp_path, "wipe"), *typo.split()])
        assert result.code == 1 and result.err.startswith("error: "), result.err
        assert {p.name: p.read_bytes() for p in run.iterdir()} == before, typo
    result = zoo_cli(f"train lenet -d digts --out {tmp_path} --runs-dir {tmp_path / 'runs'}")
    assert result.code == 1 and not (tmp_path / "runs" / "lenet-digts").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.safetensors", "runs"]
    assert same_tensors(resume(zoo_cli, tmp_path, "wipe"), uninterrupted)


def test_a_new_run_replaces_the_old_one_at_its_first_checkpoint(zoo_cli, tmp_path):
    args = f"--limit 50 --batch-size 10 -q {' '.join(where(tmp_path, 'again'))}"
    assert zoo_cli(f"train lenet --epochs 2 {args}").code == 0
    assert zoo_cli(f"train lenet --epochs 1 {args}").code == 0
    history = [json.loads(line) for line in (tmp_path / "runs/again/metrics.jsonl").open()]
    assert [row["epoch"] for row in history] == [1]
    assert torch.load(tmp_path / "runs/again" / FILENAME, weights_only=True)["epoch"] == 2


def test_resume_refuses_options_that_change_the_run(zoo_cli, tmp_path):
    args = f"--limit 50 --batch-size 10 -q {' '.join(where(tmp_path, 'fixed'))}"
    assert zoo_cli(f"train lenet --epochs 1 --lr 0.003 {args}").code == 0
    result = zoo_cli(f"train lenet --resume --lr 0.1 --epochs 2 {args}")
    assert result.code == 1 and result.err.count("\n") == 1
    assert result.err.startswith(
        "error: --resume continues the run with its own settings, but --epochs 2 (the run has 1), "
        "--lr 0.1 (the run has 0.003) asks for others; drop them, or start a new run"
    )
    for same in ("--epochs 1 --lr 0.003", "--device cpu --workers 0"):
        result = zoo_cli(f"train lenet --resume {same} {args}")
        assert result.code == 0, result.err


def torchvision_state_dict(builder, path: Path) -> Path:
    """torchvision's whole ImageNet classifier's state dict (random values), saved as
    torchvision's own .pth files are."""
    from torch import nn

    with torch.device("meta"):
        model = builder()
    state = {k: torch.zeros(v.shape) for k, v in model.state_dict().items()}
    for key, tensor in state.items():
        if key.endswith("weight") and tensor.ndim > 1 and key.startswith(("features", "layer")):
            nn.init.normal_(tensor, std=0.01)
    torch.save(state, path)
    return path


@pytest.mark.parametrize(
    ("model", "head", "options"),
    [("resnet18", "fc", "--image-size 32"), ("vgg16", "classifier", "")],
)
def test_init_from_a_torchvision_imagenet_state_dict_starts_a_new_head(
    zoo_cli, tmp_path, model, head, options
):
    from torchvision import models

    source = torchvision_state_dict(getattr(models, model), tmp_path / f"{model}-imagenet.pth")
    result = zoo_cli(
        f"train {model} --init-from {source} {options} --lr 1e-9 --epochs 1 --limit 20 "
        f"--batch-size 10 --out {tmp_path} --run-name moved -q"
    )
    assert result.code == 0, result.err
    assert result.err.startswith(f"warning: --init-from {source}: skipped {head}.")
    assert "starts anew" in result.err and "Traceback" not in result.err
    expected, moved = (
        torch.load(source, weights_only=True),
        load_file(tmp_path / "moved.safetensors"),
    )
    body = [k for k in expected if not k.startswith(f"{head}.") and "num_batches" not in k]
    first = next(k for k in body if expected[k].ndim == 4)  # digits are grey: summed filters
    expected[first] = expected[first].sum(1, keepdim=True)
    assert all(moved[k].shape == expected[k].shape for k in body)
    assert body and all(torch.allclose(moved[k], expected[k], atol=1e-6) for k in body)


def test_init_from_zoo_weights_moves_to_another_class_count(zoo_cli, tmp_path, lenet_weights):
    from tests.datafiles import write_image_folder

    folder = write_image_folder(tmp_path / "shapes", ["a", "b", "c"], per_class=8)
    result = zoo_cli(
        f"train lenet -d folder:{folder} --init-from {lenet_weights} --lr 1e-9 --epochs 1 "
        f"--batch-size 8 --out {tmp_path} --run-name three -q"
    )
    assert result.code == 0, result.err
    assert "skipped fc3.weight, fc3.bias (the head for 3 classes starts anew)" in result.err
    before, after = load_file(lenet_weights), load_file(tmp_path / "three.safetensors")
    assert after["fc3.weight"].shape == (3, 84)
    body = [k for k in after if "fc3" not in k and not k.startswith("zoo.")]  # not zoo's extras
    assert body and all(torch.allclose(after[k], before[k], atol=1e-6) for k in body)


@pytest.mark.parametrize(
    ("model", "options"),
    [
        ("lenet", "--epochs 3"),
        ("cifar-cnn", "--epochs 3"),
        ("vgg16", ""),  # a random frozen backbone, whose head alone learns, on all of digits
        ("resnet18", "--image-size 32 --limit 300 --epochs 3"),  # 224 px takes minutes
    ],
)
def test_every_builtin_learns_on_digits_with_its_defaults(zoo_cli, tmp_path, model, options):
    result = zoo_cli(f"train {model} {options} --out {tmp_path} -q")
    assert result.code == 0, result.err
    meta = read_meta(tmp_path / f"{model}-digits.safetensors")
    assert meta["metrics"]["test_accuracy"] > 0.3, meta["metrics"]["test_accuracy"]  # chance 0.1


def test_posthoc_on_cached_backbone_features_fits_what_the_whole_model_fits(registry):
    """A frozen backbone's cached features stand in for the whole model in the post-hoc fit:
    the same detector, temperature and test calibration as running every image through it."""
    from zoo.data.digits import load_digits
    from zoo.data.splits import hold_out
    from zoo.trust import posthoc
    from zoo.trust.metrics import image_batches

    spec = registry.model("vgg16")
    torch.manual_seed(0)
    model = registry.build(spec, num_classes=10).eval()
    data, *held = hold_out(load_digits().limit(200))
    head = head_module(model, spec)
    cached = tuple(
        backbone_features(model, head, image_batches(images, spec.input, torch.device("cpu")))
        for images in (data.train_images, held[0], data.test_images)
    )
    cpu = torch.device("cpu")
    whole = posthoc.fit_posthoc(model, spec, spec.input, data, tuple(held), cpu)
    via_head = posthoc.fit_posthoc(
        model, spec, spec.input, data, tuple(held), cpu, backbone_features=cached
    )
    assert whole.tensors.keys() == via_head.tensors.keys() and whole.tensors
    for key, value in whole.tensors.items():
        assert torch.allclose(value, via_head.tensors[key], rtol=1e-4, atol=1e-5), key
    assert whole.meta["calibration"] == pytest.approx(via_head.meta["calibration"], rel=1e-4)
