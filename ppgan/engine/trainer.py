"""Trainer: PaddleGAN's iteration-based training loop, with exact resumption and data parallelism.

Per iteration: next batch -> `model.setup_input` -> `model.train_iter` -> learning-rate step;
every `log_config.interval` a log line (`Iter: i/total lr: ... <losses> batch_cost reader_cost
ips eta`), every `log_config.visual_interval` sample collages, every `validate.interval` a
validation pass, every `snapshot_config.interval` (and at the end) `iter_N_weight.pdparams`
(the nets) and `iter_N_checkpoint.pdparams` (everything `--resume` needs; only the last kept).

A resumed run repeats an uninterrupted one: the checkpoint holds the nets (with BatchNorm
statistics), the optimizers (keyed by structured parameter names), the learning-rate schedule,
the data position (seed, epoch, batches done), the model's runtime state (syncnet_wt) and the RNG.
Ctrl-C (or SIGTERM) finishes the current iteration, saves a checkpoint and stops; a second one
aborts at once. Under `paddle.distributed.launch` the trainable nets are wrapped in
`paddle.DataParallel`, each rank reads its own shard, and rank 0 alone writes files and logs.
"""
import contextlib
import copy
import datetime
import glob
import logging
import os
import signal
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Set

import numpy as np
import paddle
import paddle.distributed as dist
from paddle.nn.layer.norm import _BatchNormBase

from ..datasets.builder import build_dataloader
from ..metrics import build_metric
from ..models.base_model import unwrap
from ..models.builder import build_model
from ..solver import build_lr_scheduler
from ..utils.config import AttrDict, ConfigError
from ..utils.weights import WeightsError, load_state_dict, load_weights
from .checkpoint import (ResumeError, load_file, portable_optimizer_state, restore_optimizer_state,
                         save_atomic, structured_names)
from .iter_loader import IterLoader, ResumableBatchSampler
from .visual import ScalarLog, save_collages, uint8_frames

logger = logging.getLogger(__name__)

CHECKPOINT_PATTERN = "iter_{}_checkpoint.pdparams"
WEIGHT_PATTERN = "iter_{}_weight.pdparams"


class _InterruptedRead(Exception):
    """The data loader failed while a stop was requested (its workers got the Ctrl-C too)."""


class _Average:
    """Mean of the values added since the last reset (timings over a log interval)."""

    def __init__(self) -> None:
        self.total, self.count = 0.0, 0

    def add(self, value: float) -> None:
        self.total, self.count = self.total + value, self.count + 1

    @property
    def mean(self) -> float:
        return self.total / max(1, self.count)

    def reset(self) -> None:
        self.total, self.count = 0.0, 0


class Trainer:
    """Builds the model, data and optimizers from a config and runs training or evaluation."""

    def __init__(self, cfg: AttrDict):
        self.cfg = cfg
        self.world_size = int(cfg.get("world_size", 1))
        if self.world_size > 1:
            dist.init_parallel_env()  # gloo on the CPU, NCCL on GPUs
        self.rank = dist.get_rank() if self.world_size > 1 else 0
        self.is_train = bool(cfg.get("is_train", True))
        self.output_dir = cfg.output_dir
        self.seed = int(cfg.get("seed", 0))
        self.total_iters = int(cfg.get("total_iters", 0))
        self.current_iter = 0  # the last completed iteration
        self.model = build_model(cfg.model)
        self.max_eval_steps = cfg.model.get("max_eval_steps")
        self.loaded_nets: Set[str] = set()
        self.loader_state: Dict[str, int] = {}
        self.optimizers: Dict[str, Any] = {}
        self.lr_scheduler = None
        self._read_intervals(cfg)
        self.metrics = self._build_metrics(cfg)
        if self.is_train:
            self._build_training()
        self._test_loader = None
        if self.world_size > 1:
            self._wrap_data_parallel()
        self.scalars = ScalarLog(bool(cfg.get("enable_visualdl", False)) and self.rank == 0,
                                 os.path.join(self.output_dir, "visualdl"))
        self._stop_requested = False
        self.stop_signal = signal.SIGINT  # what stopped train() early: the exit status tells it
        self._last_saved: Optional[int] = None

    # ---------------------------------------------------------------------------------- set-up
    def _read_intervals(self, cfg: AttrDict) -> None:
        log_cfg = cfg.get("log_config") or {}
        self.log_interval = int(log_cfg.get("interval", 10))
        # PaddleGAN's configs spell it `visiual_interval`; both spellings work.
        self.visual_interval = log_cfg.get("visual_interval", log_cfg.get("visiual_interval"))
        validate = cfg.get("validate") or {}
        self.validate_interval = validate.get("interval")
        self.save_eval_images = bool(validate.get("save_img", False))
        self.snapshot_interval = (cfg.get("snapshot_config") or {}).get("interval")

    def _build_metrics(self, cfg: AttrDict) -> Dict[str, Any]:
        """`validate.metrics`: {result name: metric config}, scored on each validation pass."""
        metrics = {name: build_metric(dict(metric))
                   for name, metric in ((cfg.get("validate") or {}).get("metrics") or {}).items()}
        if metrics and not self.model.GENERATES_IMAGES:
            raise ConfigError(f"validate.metrics: {type(self.model).__name__} makes no images "
                              "to score; remove the section")
        return metrics

    def _dataset_cfg(self, split: str) -> Dict[str, Any]:
        """The dataset section, with `seed: null` meaning the run's seed (so --seed decides)."""
        section = copy.deepcopy(dict(self.cfg.dataset[split]))
        if "seed" in section and section["seed"] is None:
            section["seed"] = self.seed
        return section

    def _build_training(self) -> None:
        self.train_loader = build_dataloader(self._dataset_cfg("train"), is_train=True)
        self.sampler = ResumableBatchSampler.replace_in(self.train_loader, self.seed)
        self.lr_scheduler = build_lr_scheduler(self.cfg.lr_scheduler, len(self.sampler))
        self.optimizers = self.model.setup_optimizers(self.lr_scheduler, self.cfg.optimizer)
        if self.cfg.get("amp"):
            self.model.enable_amp(self.cfg.get("amp_level", "O1"))

    def _wrap_data_parallel(self) -> None:
        find_unused = bool(self.cfg.get("find_unused_parameters", False))
        for name in list(self.model.nets):
            if name not in self.model.frozen_nets:  # a frozen net has no gradient to reduce
                self.model.nets[name] = paddle.DataParallel(
                    self.model.nets[name], find_unused_parameters=find_unused)

    # -------------------------------------------------------------------------------- training
    def train(self) -> bool:
        """Train up to `total_iters`; False when stopped early by Ctrl-C / SIGTERM (after saving)."""
        self.model.prepare(self.loaded_nets)
        iter_loader = IterLoader(self.train_loader, self.sampler, self.loader_state)
        self._timings = {"batch_cost": _Average(), "reader_cost": _Average()}
        first = self.current_iter
        logger.info("training iterations %d..%d, %d batches of %d per epoch on each of %d rank(s)",
                    first + 1, self.total_iters, len(self.sampler), self.sampler.batch_size,
                    self.world_size)
        with self._graceful_stop():
            while self.current_iter < self.total_iters:
                try:
                    self._train_iteration(iter_loader)
                except _InterruptedRead:
                    return self._stop(iter_loader, first)
                self._after_iteration(iter_loader)
                if self._stop_agreed():
                    return self._stop(iter_loader, first)
        self.scalars.close()
        return True

    def _next_batch(self, iter_loader: IterLoader) -> Any:
        try:
            return next(iter_loader)
        except Exception as err:
            if self._stop_requested:
                raise _InterruptedRead() from err
            raise

    def _train_iteration(self, iter_loader: IterLoader) -> None:
        start = time.perf_counter()
        batch = self._next_batch(iter_loader)
        self._timings["reader_cost"].add(time.perf_counter() - start)
        self.model.setup_input(batch)
        self.model.train_iter()
        self._lr_used = self.lr_scheduler.get_lr()  # what the log shows (PaddleGAN's order)
        self.lr_scheduler.step()  # schedules count iterations (LinearDecay divides by epoch size)
        self.current_iter += 1
        self._timings["batch_cost"].add(time.perf_counter() - start)

    def _after_iteration(self, iter_loader: IterLoader) -> None:
        step, last = self.current_iter, self.current_iter == self.total_iters
        if step % self.log_interval == 0 or last:
            self._log_training()
        if self.visual_interval and step % int(self.visual_interval) == 0 and self.rank == 0:
            save_collages(self.model.get_current_visuals(),
                          os.path.join(self.output_dir, "visual_train"), f"iter_{step}")
        if self.validate_interval and step % int(self.validate_interval) == 0:
            self.test()
        if (self.snapshot_interval and step % int(self.snapshot_interval) == 0) or last:
            self.save(iter_loader)

    def _log_training(self) -> None:
        batch_cost = self._timings["batch_cost"].mean
        reader_cost = self._timings["reader_cost"].mean
        values = self.model.log_values()
        message = f"Iter: {self.current_iter}/{self.total_iters} lr: {self._lr_used:.3e} "
        message += "".join(f"{name}: {value:.3f} " for name, value in values.items())
        eta = datetime.timedelta(seconds=int((self.total_iters - self.current_iter) * batch_cost))
        message += (f"batch_cost: {batch_cost:.5f} sec, reader_cost: {reader_cost:.5f} sec, "
                    f"ips: {self.sampler.batch_size / max(batch_cost, 1e-9):.5f} samples/s, eta: {eta}")
        logger.info(message)
        self.scalars.add("train", {**values, "lr": self._lr_used}, self.current_iter)
        for timing in self._timings.values():
            timing.reset()

    # ------------------------------------------------------------------------------- stopping
    @contextlib.contextmanager
    def _graceful_stop(self) -> Iterator[None]:
        """First Ctrl-C / SIGTERM / SIGHUP: finish the iteration, save, stop. Second: abort now."""
        if threading.current_thread() is not threading.main_thread():
            yield  # signal handlers can only be set from the main thread
            return
        # SIGHUP too (a closed terminal), unless ignored on purpose (`nohup`).
        signals = [sig for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
                   if signal.getsignal(sig) is not signal.SIG_IGN]
        previous = {sig: signal.getsignal(sig) for sig in signals}

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        def on_signal(signum: int, _frame: Any) -> None:
            if self._stop_requested:
                restore()
                raise KeyboardInterrupt
            self._stop_requested = True
            self.stop_signal = signum
            logger.warning("%s: saving a checkpoint after this iteration, then stopping "
                           "(press Ctrl-C again to abort without saving)", signal.Signals(signum).name)

        for sig in signals:
            signal.signal(sig, on_signal)
        try:
            yield
        finally:
            restore()

    def _stop_agreed(self) -> bool:
        """Whether any rank was asked to stop; all ranks must stop after the same iteration."""
        if self.world_size == 1:
            return self._stop_requested
        flag = paddle.to_tensor([1.0 if self._stop_requested else 0.0])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item() > 0)

    def _stop(self, iter_loader: IterLoader, first_iter: int) -> bool:
        # Every rank takes this decision alike (save() holds collectives): no file checks here.
        if self.current_iter > first_iter and self._last_saved != self.current_iter:
            self.save(iter_loader)
        logger.warning("stopped after iteration %d; continue with --resume %s", self.current_iter,
                       os.path.join(self.output_dir, CHECKPOINT_PATTERN.format(self.current_iter)))
        self.scalars.close()
        return False

    # ------------------------------------------------------------------------------ evaluation
    def _get_test_loader(self):
        if self._test_loader is None:
            if "test" not in self.cfg.dataset:
                raise ValueError("the config has no dataset.test section to validate on")
            self._test_loader = build_dataloader(self._dataset_cfg("test"), is_train=False)
        return self._test_loader

    def test(self) -> Dict[str, float]:
        """One validation pass of at most `model.max_eval_steps` batches; returns the averages."""
        loader = self._get_test_loader()
        self.model.prepare(self.loaded_nets)
        if self.world_size > 1:
            self._average_buffers()  # every rank evaluates with the same BatchNorm statistics
        steps = len(loader) if self.max_eval_steps is None else min(int(self.max_eval_steps), len(loader))
        if steps == 0:
            raise ValueError("the validation loader is empty: check dataset.test")
        for metric in self.metrics.values():
            metric.reset()
        for step, batch in zip(range(steps), loader):
            self.model.setup_input(batch)
            self.model.test_iter()
            self._update_metrics()
            if step == 0 and self.save_eval_images and self.rank == 0:
                save_collages(self.model.get_current_visuals(),
                              os.path.join(self.output_dir, "visual_test"), f"iter_{self.current_iter}")
        results = self.model.eval_results()
        results.update((name, metric.accumulate()) for name, metric in self.metrics.items())
        results = self._mean_over_ranks(results)
        logger.info("Eval at iter %d (%d steps of %d samples%s): %s", self.current_iter, steps,
                    self._get_test_loader().batch_sampler.batch_size,
                    f" on each of {self.world_size} ranks" if self.world_size > 1 else "",
                    ", ".join(f"{name}: {value:.4f}" for name, value in results.items()))
        self.model.on_eval_end(results)
        self.scalars.add("eval", results, self.current_iter)
        return results

    def _update_metrics(self) -> None:
        if not self.metrics:
            return
        # uint8 images (every frame of every sample), as PSNR / SSIM are defined on them.
        generated, truth = (uint8_frames(images).reshape(-1, *images.shape[-2:], images.shape[1])
                            for images in self.model.eval_images())
        for metric in self.metrics.values():
            metric.update(generated, truth)

    def _mean_over_ranks(self, results: Dict[str, float]) -> Dict[str, float]:
        if self.world_size == 1 or not results:
            return results
        names = list(results)  # the same names in the same order on every rank
        values = paddle.to_tensor(np.array([results[name] for name in names], dtype=np.float64))
        dist.all_reduce(values)
        return {name: float(value) / self.world_size for name, value in zip(names, values.numpy())}

    # --------------------------------------------------------------------------- distributed
    def _average_buffers(self) -> None:
        """BatchNorm running statistics are per rank (only gradients are all-reduced): average."""
        for name, net in self.model.nets.items():
            if name in self.model.frozen_nets:
                continue
            for tensor in running_statistics(unwrap(net)):
                total = tensor.clone()
                dist.all_reduce(total)
                tensor.set_value(total / self.world_size)

    def _check_replicas(self) -> None:
        """Compare a fingerprint of every rank's trainable parameters (they must be identical)."""
        sums = [stat for name, net in self.model.nets.items() if name not in self.model.frozen_nets
                for param in learned_parameters(unwrap(net))
                for stat in _param_fingerprint(param)]
        gathered = []
        dist.all_gather(gathered, paddle.to_tensor(np.array(sums, dtype=np.float64)))
        difference = max(float(np.abs(t.numpy() - gathered[0].numpy()).max()) for t in gathered)
        if difference == 0.0:
            logger.info("replica check: the trainable parameters of all %d ranks are identical",
                        self.world_size)
        else:
            logger.warning("replica check: the ranks' parameters differ (largest fingerprint "
                           "difference %g)", difference)

    # -------------------------------------------------------------------------------- saving
    def _net_states(self) -> Dict[str, Any]:
        return {name: self.model.net(name).state_dict() for name in self.model.nets}

    def save(self, iter_loader: Optional[IterLoader] = None) -> None:
        """Write iter_N_weight / iter_N_checkpoint (rank 0); other ranks join the collectives."""
        self._last_saved = self.current_iter
        if self.world_size > 1:
            self._average_buffers()
            self._check_replicas()
        if self.rank != 0:
            return
        nets = self._net_states()
        step = self.current_iter
        save_atomic(nets, os.path.join(self.output_dir, WEIGHT_PATTERN.format(step)))
        checkpoint = {**nets, **self._training_state(iter_loader)}
        path = os.path.join(self.output_dir, CHECKPOINT_PATTERN.format(step))
        save_atomic(checkpoint, path)
        self._remove_old_checkpoints(keep=path)
        logger.info("saved %s and %s", path, WEIGHT_PATTERN.format(step))

    def _training_state(self, iter_loader: Optional[IterLoader]) -> Dict[str, Any]:
        names = structured_names({name: self.model.net(name) for name in self.model.nets})
        return {
            "iteration": self.current_iter,
            "optimizers": {name: portable_optimizer_state(opt, names)
                           for name, opt in self.optimizers.items()},
            "lr_scheduler": self.lr_scheduler.state_dict() if self.lr_scheduler else {},
            "loader": iter_loader.state() if iter_loader else dict(self.loader_state),
            "model_state": self.model.runtime_state(),
            "amp_scalers": {name: scaler.state_dict() for name, scaler in self.model.scalers.items()},
            "rng_state": paddle.get_rng_state(),
        }

    def _remove_old_checkpoints(self, keep: str) -> None:
        for path in glob.glob(os.path.join(self.output_dir, CHECKPOINT_PATTERN.format("*"))):
            if os.path.abspath(path) != os.path.abspath(keep):
                os.remove(path)

    # ------------------------------------------------------------------------- resume / load
    def resume(self, path: str) -> None:
        """Continue exactly where the checkpoint at `path` stopped."""
        state = load_file(path)
        missing = [name for name in self.model.nets if name not in state]
        if missing or "iteration" not in state:
            raise ResumeError(f"{path} is not a training checkpoint of this model (no "
                                  f"{', '.join(missing) or 'iteration'}); use --load for weights")
        for name in self.model.nets:
            load_state_dict(self.model.net(name), state[name], f"{path} [{name}]")
        self.loaded_nets = set(self.model.nets)
        self.model.set_runtime_state(state.get("model_state", {}))
        self.current_iter = int(state["iteration"])
        if self.is_train:
            self._resume_training(state, path)
        logger.info("resumed from %s at iteration %d (model state %s)", path, self.current_iter,
                    self.model.runtime_state())

    def _resume_training(self, state: Dict[str, Any], path: str) -> None:
        names = structured_names({name: self.model.net(name) for name in self.model.nets})
        for name, optimizer in self.optimizers.items():
            if name not in state.get("optimizers", {}):
                raise ResumeError(f"{path} has no state for optimizer {name}")
            restore_optimizer_state(optimizer, state["optimizers"][name], names, path)
        if state.get("lr_scheduler"):
            self.lr_scheduler.set_state_dict(state["lr_scheduler"])
        for name, scaler_state in state.get("amp_scalers", {}).items():
            if name in self.model.scalers:
                self.model.scalers[name].load_state_dict(scaler_state)
        self.loader_state = dict(state.get("loader", {}))
        saved_seed = self.loader_state.get("seed", self.seed)
        if saved_seed != self.seed:
            logger.warning("data order continues with the checkpoint's seed %d (not %d)",
                           saved_seed, self.seed)
        self.sampler.seed = int(saved_seed)
        if state.get("rng_state") is not None:
            paddle.set_rng_state(state["rng_state"])

    def load(self, path: str) -> None:
        """Initialise nets from a weights file (trainer output or a flat .pdparams); no state."""
        checkpoint = load_file(path)
        for name in self.model.nets:
            if isinstance(checkpoint.get(name), dict):  # trainer output: the net by its name
                load_state_dict(self.model.net(name), checkpoint[name], f"{path} [{name}]")
            else:
                try:  # a flat file (or other names): the state dict that fits this network
                    load_weights(self.model.net(name), checkpoint)
                except WeightsError:
                    continue
            self.loaded_nets.add(name)
        if not self.loaded_nets:
            raise WeightsError(f"{path} holds weights for none of {', '.join(self.model.nets)}")
        logger.info("loaded %s from %s", ", ".join(sorted(self.loaded_nets)), path)


def running_statistics(net: paddle.nn.Layer) -> List[paddle.Tensor]:
    """BatchNorm running means/variances (Paddle keeps them as non-trainable parameters) and any
    floating-point buffers: the state each rank updates from its own batches."""
    tensors = [tensor for layer in net.sublayers(include_self=True)
               if isinstance(layer, _BatchNormBase) for tensor in (layer._mean, layer._variance)]
    tensors += [b for b in net.buffers() if b.dtype in (paddle.float32, paddle.float64)]
    return tensors


def learned_parameters(net: paddle.nn.Layer) -> List[paddle.Tensor]:
    """Parameters an optimizer updates from all-reduced gradients (so equal on every rank)."""
    statistics = {id(tensor) for tensor in running_statistics(net)}
    return [param for param in net.parameters() if id(param) not in statistics]


def _param_fingerprint(param: paddle.Tensor):
    values = param.numpy().astype(np.float64).ravel()
    # Position-weighted sum too: a permutation of the same values must not look identical.
    return values.sum(), (values * values).sum(), (values * np.sin(np.arange(values.size))).sum()
