"""Owned randomness: every random draw of a job (or of a study member) comes from a torch.Generator
seeded from the spec, never from the process-wide RNG, which the threads of a worker share.

A job's draws, and where they come from (`seed` is training.seed, `member` the run's index in a
study, 0 for a plain job):
  split             numpy default_rng(seed)                                  (data.split_indices)
  initial weights   torch.Generator().manual_seed(seed), PyTorch's default init distributions drawn
                    in construction order (the same weights as seeding the global RNG once gave)
  batch order       epoch_generator(seed, epoch): SeedSequence([seed, epoch])  (engine.py)
  loss sample       torch.Generator().manual_seed(seed)                      (engine.loss_sample)
  dropout masks     one generator per run, SeedSequence(seed, spawn_key=(DROPOUT_STREAM, member)),
                    on the training device; its state is the checkpoint's `rng` tensor

So members of a study share the split, the initial weights and the batch order (all functions of the
seed alone) and differ in their dropout masks (a function of the member index too). A plain job is
member 0: a study of one member is that job, and member k's single-job twin is
`train(config, data, reporter, member=k)`. The spawn key is appended after numpy pads the entropy,
so the dropout streams never coincide with an epoch's order stream.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

# Tags the dropout stream in the seed's spawn key ("drop" in ASCII); any constant not used by another
# stream would do.
DROPOUT_STREAM = 0x64726F70


def init_generator(seed: int) -> torch.Generator:
    """The generator the initial weights are drawn from (on the CPU, whatever the training device)."""
    return torch.Generator().manual_seed(seed)


def dropout_seed(seed: int, member: int = 0) -> int:
    return int(np.random.SeedSequence(seed, spawn_key=(DROPOUT_STREAM, member)).generate_state(1, np.uint64)[0])


def dropout_generator(seed: int, member: int = 0, device: torch.device | str = "cpu") -> torch.Generator:
    """The generator of a run's dropout masks: a function of (seed, member) only."""
    return torch.Generator(device=device).manual_seed(dropout_seed(seed, member))


def restore_generator(generator: torch.Generator, state: torch.Tensor) -> bool:
    """Continue a checkpointed stream. A checkpoint written on another kind of device holds a state of
    another size (the CPU's Mersenne Twister, CUDA's seed and offset): that stream cannot continue,
    the generator keeps its seeded state and False is returned."""
    if state.numel() != generator.get_state().numel():
        return False
    generator.set_state(state)
    return True


@torch.no_grad()
def initialize(net: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default initialization of nn.Linear and nn.Conv2d (kaiming_uniform_(a=sqrt(5)) for
    the weight, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the bias), drawn from `generator` in module
    order, which is construction order for regtrain's networks; batch norm resets without randomness."""
    for module in net.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
            if module.bias is not None:
                fan_in, _ = nn.init._calculate_fan_in_and_fan_out(module.weight)
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                nn.init.uniform_(module.bias, -bound, bound, generator=generator)
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            module.reset_parameters()
