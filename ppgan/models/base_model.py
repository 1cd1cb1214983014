"""BaseModel: the contract between the Trainer and a model, as in PaddleGAN.

The Trainer calls `setup_input(batch)` then `train_iter()` each iteration, and
`setup_input` + `test_iter()` (+ `eval_images()` for the image metrics of `validate.metrics`)
over the validation batches followed by `eval_results()` and `on_eval_end(results)`. A model keeps its networks in `nets`, its optimizers in `optimizers`,
the current iteration's losses in `losses` and the images worth a look in `visual_items`.
"""
import contextlib
import logging
from collections import OrderedDict
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple, Union

import numpy as np
import paddle
import paddle.nn as nn

from ..solver import build_optimizer

logger = logging.getLogger(__name__)


def unwrap(net: nn.Layer) -> nn.Layer:
    """The network inside a `paddle.DataParallel` (or the network itself)."""
    return net._layers if isinstance(net, paddle.DataParallel) else net


def to_tensor(value: Union[paddle.Tensor, np.ndarray]) -> paddle.Tensor:
    return value if isinstance(value, paddle.Tensor) else paddle.to_tensor(value)


class BaseModel:
    """Holds nets/optimizers/losses; subclasses implement the per-iteration maths."""

    # True for a model whose validation makes images that PSNR / SSIM can score.
    GENERATES_IMAGES = False

    def __init__(self) -> None:
        self.nets: "OrderedDict[str, nn.Layer]" = OrderedDict()
        self.optimizers: "OrderedDict[str, paddle.optimizer.Optimizer]" = OrderedDict()
        self.losses: "OrderedDict[str, float]" = OrderedDict()
        self.visual_items: "OrderedDict[str, paddle.Tensor]" = OrderedDict()
        # Nets that are never optimised (the lip-sync expert): not wrapped in DataParallel.
        self.frozen_nets: Set[str] = set()
        self.scalers: Dict[str, paddle.amp.GradScaler] = {}
        self.amp_level: Optional[str] = None
        self._optimizer_nets: Dict[str, List[str]] = {}
        self._eval_values: Dict[str, List[float]] = OrderedDict()

    # ------------------------------------------------------------------ the subclass's part
    def setup_input(self, batch: Dict[str, Any]) -> None:
        raise NotImplementedError

    def train_iter(self) -> None:
        raise NotImplementedError

    def test_iter(self) -> None:
        raise NotImplementedError

    def eval_images(self) -> Tuple[paddle.Tensor, paddle.Tensor]:
        """(generated, ground truth) of the last `test_iter`, laid out as `visual_items`, for
        the metrics of `validate.metrics`; only models with GENERATES_IMAGES have them."""
        raise NotImplementedError

    def prepare(self, loaded_nets: Set[str]) -> None:
        """Fetch external weights the run needs that no checkpoint has provided (`loaded_nets`)."""

    def on_eval_end(self, results: Dict[str, float]) -> None:
        """React to the validation averages (over all ranks), e.g. switch a loss weight."""

    def runtime_state(self) -> Dict[str, Any]:
        """State that changes during training outside the nets (saved in checkpoints)."""
        return {}

    def set_runtime_state(self, state: Dict[str, Any]) -> None:
        pass

    def log_values(self) -> Dict[str, float]:
        """What the training log line shows after the learning rate: the losses by default."""
        return dict(self.losses)

    def get_current_losses(self) -> Dict[str, float]:
        return dict(self.losses)

    def get_current_visuals(self) -> Dict[str, paddle.Tensor]:
        return self.visual_items

    # --------------------------------------------------------------------------- optimizers
    def setup_optimizers(self, lr_scheduler, cfg: Dict[str, Any]) -> Dict[str, Any]:
        """One optimizer per entry of the `optimizer` section, over the nets in its `net_names`.

        A section with a `name` key directly is a single optimizer called `optim` (PaddleGAN).
        """
        entries = {"optim": cfg} if "name" in cfg else dict(cfg)
        for opt_name, opt_cfg in entries.items():
            net_names = list(opt_cfg.get("net_names", []))
            unknown = [name for name in net_names if name not in self.nets]
            if not net_names or unknown:
                raise ValueError(f"optimizer.{opt_name}.net_names must list nets of this model "
                                 f"({', '.join(self.nets)}), got {net_names}")
            parameters = [p for name in net_names for p in self.nets[name].parameters()]
            self.optimizers[opt_name] = build_optimizer(opt_cfg, lr_scheduler, parameters)
            self._optimizer_nets[opt_name] = net_names
        return self.optimizers

    def optimizer_for(self, net_name: str) -> Tuple[str, paddle.optimizer.Optimizer]:
        """(name, optimizer) of the optimizer that updates `net_name` (config names may vary)."""
        for opt_name, net_names in self._optimizer_nets.items():
            if net_name in net_names:
                return opt_name, self.optimizers[opt_name]
        raise ValueError(f"no optimizer in the config updates {net_name}; add one whose "
                         f"net_names lists it")

    # -------------------------------------------------------------------------- mixed precision
    def enable_amp(self, level: str) -> None:
        """Mixed precision for `train_iter` (GPU only; loss scaling per optimizer)."""
        self.amp_level = level
        self.scalers = {name: paddle.amp.GradScaler(init_loss_scaling=2.0 ** 15)
                        for name in self.optimizers}
        if level == "O2":
            names = [name for name in self.nets if name not in self.frozen_nets]
            nets, optimizers = paddle.amp.decorate(
                models=[self.nets[name] for name in names],
                optimizers=list(self.optimizers.values()), level="O2", save_dtype="float32")
            self.nets.update(zip(names, nets))
            self.optimizers.update(zip(self.optimizers, optimizers))

    def autocast(self):
        if self.amp_level is None:
            return contextlib.nullcontext()
        return paddle.amp.auto_cast(enable=True, level=self.amp_level)

    def backward_step(self, loss: paddle.Tensor, opt_name: str) -> None:
        """loss.backward() and one step of optimizer `opt_name`, loss-scaled under AMP."""
        optimizer = self.optimizers[opt_name]
        scaler = self.scalers.get(opt_name)
        if scaler is None:
            loss.backward()
            optimizer.step()
            return
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    # ---------------------------------------------------------------------------------- helpers
    def net(self, name: str) -> nn.Layer:
        """Net `name` without its DataParallel wrapper (for state dicts and extra methods)."""
        return unwrap(self.nets[name])

    @staticmethod
    def set_requires_grad(nets: Union[nn.Layer, Iterable[nn.Layer]], requires_grad: bool) -> None:
        """Freeze or unfreeze parameters (frozen ones get no gradient in backward)."""
        for net in [nets] if isinstance(nets, nn.Layer) else nets:
            for param in net.parameters():
                param.trainable = requires_grad

    def accumulate_eval(self, **values: float) -> None:
        for key, value in values.items():
            self._eval_values.setdefault(key, []).append(float(value))

    def eval_results(self) -> Dict[str, float]:
        """This rank's averages since the last call (then cleared)."""
        results = {key: float(np.mean(values)) for key, values in self._eval_values.items()}
        self._eval_values = OrderedDict()
        return results
