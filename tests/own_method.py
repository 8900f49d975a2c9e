"""A method defined outside ltlab, in one file: SAM with its radius halved every `halve_every` epochs.

tests/test_own_method.py names it by import path (``optimizer.name=own_method:HalvedSAM``) and runs it
through train -> compare -j 2 -> report -> figures, with no other file of ltlab touched.
"""
import torch

from ltlab.optim import SAM


class HalvedSAM(SAM):
    """SAM whose rho halves every `halve_every` epochs (a toy method)."""

    def __init__(self, params, base_optimizer=torch.optim.SGD, rho: float = 0.05, halve_every: int = 1,
                 **kwargs):
        if halve_every < 1:
            raise ValueError(f"halve_every={halve_every}: must be >= 1")
        super().__init__(params, base_optimizer, rho=rho, **kwargs)
        self.halve_every = halve_every

    def epoch_factor(self, epoch: int, reweight_epoch: int | None) -> float:
        return 0.5 ** (epoch // self.halve_every)
