"""The one trainer, on a toy model whose every number is known: clipping, lr decay, kept weights, divergence,
mid-epoch resume with shuffled batches, and the CLI's overflow case."""

import json
import math
import warnings

import numpy as np
import pytest
from conftest import assert_clean_error, run_cli

from lmbench.errors import LmbenchError
from lmbench.models.base import Model, Param
from lmbench.models.neural.trainer import Callback, Trainable, Trainer, training_params


class Toy(Trainable, Model):
    """Least squares on scalar targets: loss = mean (w·1 − y)², batches shuffled from the model's RNG.
    The validation loss follows a script (one value per epoch), so kept weights and lr decay are predictable."""

    name = "toy"
    param_spec = {**training_params(lr=0.1, optimizer="sgd", lr_decay=0.5, clip=0.0, epochs=4),
                  "batch": Param(3, "examples per batch", low=1)}

    def __init__(self, script=(3.0, 2.0, 2.5, 1.0), **params):
        self.script = list(script)
        super().__init__(**params)

    def prepare(self, train, valid, resuming):
        return np.asarray(train, dtype=np.float64)

    def data_digest(self, data):
        return str(data.sum())

    def initialize(self, data):
        self.weights = {"w": self.rng.normal(size=2)}

    def epoch_batches(self, data):
        order = self.rng.permutation(data.size)
        return [order[i:i + self.params["batch"]] for i in range(0, data.size, self.params["batch"])]

    def epoch_tokens(self, data):
        return int(data.size)

    def train_batch(self, batch):
        y = self.data[batch]
        r = self.weights["w"].sum() - y  # residuals
        g = 2 * r.mean()
        return float((r**2).mean()), int(y.size), {"w": np.full(2, g)}

    def validation_loss(self, data):
        return self.script[self.train_state["epoch"]]

    def fit(self, data):
        self.data = np.asarray(data, dtype=np.float64)
        return Trainer(self).fit(data)


DATA = np.arange(10.0)


def test_clipping_scales_the_step_to_the_clip_norm():
    for clip in (0.0, 0.5):
        model = Toy(clip=clip, epochs=1, lr=0.1)
        model.data = DATA
        model.train_state = {"epoch": 0, "step": 0}
        model.initialize(DATA)
        from lmbench.models.neural.optim import SGD

        model.optimizer = SGD(0.1)
        w0 = model.weights["w"].copy()
        batch = np.array([7, 8, 9])
        g = 2 * (w0.sum() - DATA[batch]).mean()
        norm = math.sqrt(2) * abs(g)
        trainer = Trainer(model)
        trainer.step(batch)
        scale = min(1.0, clip / (norm + 1e-6)) if clip > 0 else 1.0
        assert trainer.grad_norms == [pytest.approx(norm, rel=1e-12)]
        np.testing.assert_allclose(model.weights["w"], w0 - 0.1 * g * scale, rtol=1e-12)
        assert scale < 1.0 or clip == 0.0  # the clipped case really clips


def test_lr_decays_exactly_when_validation_does_not_improve_and_best_weights_are_kept():
    snapshots = []

    class Snap(Callback):
        def on_epoch_end(self, trainer):
            snapshots.append(trainer.model.weights["w"].copy())

    model = Toy(script=(3.0, 2.0, 2.5, 2.0), lr_decay=0.25)  # improves, improves, worse, ties (no improvement)
    model.data = DATA
    Trainer(model, [Snap()]).fit(DATA)
    lrs = [h["lr"] for h in model.train_state["history"]]
    assert lrs == [0.1, 0.1, 0.1 * 0.25, 0.1 * 0.25 * 0.25]
    np.testing.assert_array_equal(model.weights["w"], snapshots[1])  # epoch 2 had the best validation loss
    assert model.fit_info["kept_epoch"] == 2 and model.fit_info["keep"] == "best"
    last = Toy(script=(3.0, 2.0, 2.5, 2.0), lr_decay=0.25, keep="last")
    last.data = DATA
    Trainer(last).fit(DATA)
    np.testing.assert_array_equal(last.weights["w"], snapshots[3])
    # the train loss recorded per epoch is the token-weighted mean of the steps' losses
    assert all("train_loss" in h and h["train_loss"] >= 0 for h in model.train_state["history"])


def _checkpoint(model):
    """What a checkpoint keeps: the training state through JSON, the arrays copied."""
    meta, arrays = model.training_checkpoint()
    arrays = {k: v.copy() for k, v in arrays.items()}
    return json.loads(json.dumps(meta)), {**arrays, **{f"w.{k}": v.copy() for k, v in model.weights.items()}}


def _restore(meta, arrays, **params):
    model = Toy(**params)
    model.weights = {"w": arrays["w.w"].copy()}
    model.restore_training(meta, arrays)
    return model


def test_resume_mid_epoch_and_after_a_finished_keep_best_run_is_bit_for_bit():
    straight = Toy(script=(3.0, 2.0, 2.5, 1.5, 9.0, 0.5), epochs=6)
    straight.data = DATA
    Trainer(straight).fit(DATA)
    # stop mid-epoch 2 (batches are shuffled from the RNG: the resumed run must redraw the same order)
    part = Toy(script=(3.0, 2.0, 2.5, 1.5, 9.0, 0.5), epochs=6, max_steps=6)
    part.data = DATA
    Trainer(part).fit(DATA)
    assert part.train_state["batch"] == 2 and part.train_state["epoch"] == 1
    resumed = _restore(*_checkpoint(part), script=(3.0, 2.0, 2.5, 1.5, 9.0, 0.5), epochs=6)
    resumed.data = DATA
    Trainer(resumed).fit(DATA)
    # finish after 3 epochs with keep=best (weights = epoch 2's), then go on to 6 from the last weights
    short = Toy(script=(3.0, 2.0, 2.5, 1.5, 9.0, 0.5), epochs=3)
    short.data = DATA
    Trainer(short).fit(DATA)
    longer = _restore(*_checkpoint(short), script=(3.0, 2.0, 2.5, 1.5, 9.0, 0.5), epochs=6)
    longer.data = DATA
    Trainer(longer).fit(DATA)
    for other in (resumed, longer):
        np.testing.assert_array_equal(other.weights["w"], straight.weights["w"])
        assert other.train_state["history"] == straight.train_state["history"]
        assert other.train_state["step"] == straight.train_state["step"]


def test_divergence_is_one_clear_error_without_numpy_warnings():
    class Diverging(Toy):
        def train_batch(self, batch):
            loss, n, grads = super().train_batch(batch)
            if self.train_state["step"] == 2:
                big = np.array([1e308, 1e308])
                grads = {"w": big * 10.0}  # overflows to inf: a non-finite gradient norm
            return loss, n, grads

    model = Diverging()
    model.data = DATA
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any RuntimeWarning would fail the test
        with pytest.raises(LmbenchError, match=r"diverged: gradient norm is inf at epoch 1, step 3"):
            Trainer(model).fit(DATA)
    nan_loss = Toy()
    nan_loss.data = DATA
    nan_loss.train_batch = lambda batch: (float("nan"), 3, {"w": np.zeros(2)})
    with pytest.raises(LmbenchError, match=r"diverged: loss is nan at epoch 1, step 1"):
        Trainer(nan_loss).fit(DATA)


def test_a_huge_finite_validation_loss_is_recorded_not_an_overflow():
    model = Toy(script=(1e6, 2e6, 3e6, 4e6))
    model.data = DATA
    Trainer(model).fit(DATA)
    assert model.train_state["history"][0]["valid_ppl"] == math.inf


def test_cli_huge_learning_rate_without_clipping_ends_in_one_line(tmp_path):
    r = run_cli("train", "rnn", "--corpus", "synthetic:grammar?sentences=300", "--out", tmp_path / "m",
                "-p", "lr=1e6", "-p", "clip=0", "-p", "emb=8", "-p", "hidden=8", "-p", "bptt=8", "-p", "epochs=2")
    if r.returncode == 0:  # (a run that survives is fine too: what must never happen is a traceback)
        assert "Traceback" not in r.stderr
    else:
        assert_clean_error(r, "diverged")


class ScheduledToy(Toy):
    """The toy with the trainer's optional per-step schedule (warm-up, then linear decay to 0)."""

    param_spec = {**training_params(lr=0.1, optimizer="sgd", lr_decay=0.5, clip=0.0, epochs=2, warmup=2,
                                    schedule="linear"),
                  "batch": Param(3, "examples per batch", low=1)}


def _step_lrs(model):
    lrs = []

    class Record(Callback):
        def on_step(self, trainer, loss, tokens):
            lrs.append(trainer.lr)

    model.data = DATA
    Trainer(model, [Record()]).fit(DATA)
    return lrs


def test_per_step_schedule_warms_up_then_decays_and_is_off_by_default():
    # 10 examples in batches of 3: 4 steps per epoch, 2 epochs = 8 steps; warm-up 0.05, 0.1; then linear
    # from 0.1 at step 2 to lr_final·lr = 0 at step 8 (validation improves every epoch: no plateau decay).
    lrs = _step_lrs(ScheduledToy(script=(3.0, 2.0), lr_final=0.0))
    np.testing.assert_allclose(lrs, [0.05, 0.1, 0.1, 0.1 * 5 / 6, 0.1 * 4 / 6, 0.1 * 3 / 6, 0.1 * 2 / 6,
                                     0.1 / 6], rtol=1e-12)
    # a plateau (epoch 2 worse than epoch 1) multiplies the schedule from then on by lr_decay
    lrs = _step_lrs(ScheduledToy(script=(3.0, 4.0, 5.0), epochs=3, lr_final=0.0, schedule="constant"))
    np.testing.assert_allclose(lrs, [0.05, 0.1] + [0.1] * 6 + [0.05] * 4, rtol=1e-12)
    # the models that do not declare a schedule have none: constant lr, no schedule parameters
    assert _step_lrs(Toy(script=(3.0, 2.0), epochs=2)) == [0.1] * 8
    assert "warmup" not in Toy.param_spec and "schedule" not in Toy.param_spec


def test_scheduled_run_resumes_mid_epoch_bit_for_bit():
    script = (3.0, 2.0, 2.5)
    straight = ScheduledToy(script=script, epochs=3)
    _step_lrs(straight)
    part = ScheduledToy(script=script, epochs=3, max_steps=6)
    _step_lrs(part)
    meta, arrays = _checkpoint(part)
    resumed = ScheduledToy(script=script, epochs=3)
    resumed.weights = {"w": arrays["w.w"].copy()}
    resumed.restore_training(meta, arrays)
    _step_lrs(resumed)
    np.testing.assert_array_equal(resumed.weights["w"], straight.weights["w"])
    assert resumed.train_state["history"] == straight.train_state["history"]
