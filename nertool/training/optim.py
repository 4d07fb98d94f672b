"""What a training step changes besides the model: optimiser, schedule, weight averages, seeds."""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

from nertool.config import TrainConfig


class WeightAverage:
    """Exponential moving average of a model's parameters; ``swap()`` puts the averages in place
    for evaluation and saving."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.model = model
        self.decay = decay
        self.tensors = [p.data for p in model.parameters()]
        self.shadow = [t.detach().clone() for t in self.tensors]
        self.steps = 0

    @torch.no_grad()
    def update(self) -> None:
        self.steps += 1
        d = min(self.decay, (1 + self.steps) / (10 + self.steps))  # short warm-up
        torch._foreach_lerp_(self.shadow, [t.detach() for t in self.tensors], 1 - d)

    def swap(self) -> None:
        """Exchange the live weights and the averages (call twice to undo)."""
        with torch.no_grad():
            for live, avg in zip(self.tensors, self.shadow):
                tmp = live.clone()
                live.copy_(avg)
                avg.copy_(tmp)



class CheckpointAverage:
    """The mean of the weights evaluated at the ends of the last ``n`` epochs (checkpoint
    averaging); :meth:`add` keeps the weights in place now, :meth:`swap` exchanges them with the
    mean, as :meth:`WeightAverage.swap` does."""

    def __init__(self, model: torch.nn.Module, n: int):
        self.tensors = [p.data for p in model.parameters()]
        self.n = n
        self.kept: list[list[torch.Tensor]] = []  # oldest first, at most n
        self._other: list[torch.Tensor] | None = None

    @torch.no_grad()
    def add(self) -> None:
        self.kept.append([t.detach().clone() for t in self.tensors])
        del self.kept[: -self.n]

    @torch.no_grad()
    def swap(self) -> None:
        """Put the mean of the kept weights in place; the next call puts the weights back."""
        if self._other is None:
            self._other = [t.clone() for t in self.tensors]
            for i, t in enumerate(self.tensors):
                t.copy_(torch.stack([k[i] for k in self.kept]).mean(0))
        else:
            for t, back in zip(self.tensors, self._other):
                t.copy_(back)
            self._other = None



@dataclass
class Optimisation:
    """What a training step changes besides the model: optimiser, schedule, weight average, and
    the random generator that shuffles batches."""

    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    ema: WeightAverage | None
    rng: random.Random
    avg: CheckpointAverage | None = None

    @classmethod
    def create(cls, model: torch.nn.Module, tc: TrainConfig, rng: random.Random) -> "Optimisation":
        params = [p for p in model.parameters() if p.requires_grad]
        if tc.optimizer == "adam":
            opt: torch.optim.Optimizer = torch.optim.Adam(params, lr=tc.lr, weight_decay=tc.weight_decay)
        elif tc.optimizer == "nadam":
            opt = torch.optim.NAdam(params, lr=tc.lr, weight_decay=tc.weight_decay)
        else:
            opt = torch.optim.SGD(params, lr=tc.lr, momentum=tc.momentum, weight_decay=tc.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0 / (1.0 + tc.lr_decay * e))
        return cls(opt, sched, WeightAverage(model, tc.ema) if tc.ema else None, rng,
                   CheckpointAverage(model, tc.average_last) if tc.average_last > 1 else None)



def seed_everything(seed: int) -> random.Random:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return random.Random(seed)

