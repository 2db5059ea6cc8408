"""GReaT's budget in ``recllm bench impute``: the one rule the run, the ``--plan`` and the report use.

The rule (:func:`great_budget`, described by :meth:`GReaTBudget.describe`):

- training: as many optimizer steps as the LLM imputer's fine-tune may take on the same table -- the same rows
  (with ``--llm-fit shared`` the same union-masked table), the same batch size and its most epochs
  (``DEFAULT_SFT``), i.e. ceil(rows / batch) x epochs steps -- with GReaT's own full fine-tuning and learning rate;
- filling: be-great's own ``impute``, each incomplete row sampled at most :data:`GREAT_MAX_TRIES` times (its
  ``max_retries``; be-great's default is 15: a row is re-sampled while a numeric answer does not parse), each
  sample stopped once every column has a value; a cell GReaT leaves unusable (a row it gave up on, an unknown
  category) gets the column statistic, counted in the report;
- settings: GReaT fills only :data:`GREAT_SETTINGS` (every seed, both data sets). be-great samples one row at a
  time (its ``k`` is unused by ``impute``), so filling costs a sampled row per incomplete row: over both data
  sets and 3 seeds, every setting would be about 25,500 incomplete rows, MCAR 20% alone about 5,200.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["GREAT_MAX_TRIES", "GREAT_SETTINGS", "GReaTBudget", "great_budget"]

GREAT_MAX_TRIES = 3  # samples of one incomplete row before GReaT gives up on it (be-great's max_retries)
GREAT_SETTINGS: tuple[tuple[str, float], ...] = (("mcar", 0.2),)  # where GReaT runs in the full benchmark


@dataclass(frozen=True)
class GReaTBudget:
    """GReaTImputer's budget: ``epochs`` over the rows in batches of ``batch_size`` (``max_steps`` > 0 caps the
    optimizer steps instead), at most ``max_retries`` samples per incomplete row, run at ``settings``."""

    epochs: int
    batch_size: int
    max_steps: int
    max_retries: int
    settings: tuple[tuple[str, float], ...]

    def imputer_params(self) -> dict[str, int]:
        """The :class:`~recllm.impute.peers.GReaTImputer` parameters of this budget."""
        return {"epochs": self.epochs, "batch_size": self.batch_size, "max_steps": self.max_steps,
                "max_retries": self.max_retries}

    def as_dict(self) -> dict[str, Any]:
        """The budget as a run key part."""
        return {**asdict(self), "settings": [list(s) for s in self.settings]}

    def steps(self, rows: int) -> int:
        """Optimizer steps of a fine-tune on a table of ``rows`` rows."""
        per_epoch = self.epochs * math.ceil(rows / self.batch_size)
        return min(per_epoch, self.max_steps) if self.max_steps else per_epoch

    def describe(self) -> str:
        """The rule, as the report's set-up line states it."""
        train = (f"{self.max_steps} optimizer steps of {self.batch_size} rows (set by hand)" if self.max_steps else
                 f"{self.epochs} epoch(s) in batches of {self.batch_size} rows, i.e. as many optimizer steps as the "
                 "LLM imputer's fine-tune may take on the same table")
        return (f"{train}, full fine-tuning at GReaT's own lr; each incomplete row sampled at most "
                f"{self.max_retries} times (be-great's max_retries; its default is 15), each sample stopped once "
                "every column has a value; a cell it leaves unusable gets the column statistic")


def great_budget(config: Any) -> GReaTBudget:
    """GReaT's budget for a :class:`~recllm.bench.impute.run.BenchConfig`: the LLM imputer's batch size and most
    epochs (``config.great_epochs`` / ``great_max_steps`` override them), :data:`GREAT_MAX_TRIES` samples per row,
    and the settings of ``config`` GReaT runs at (``config.great_settings``, default :data:`GREAT_SETTINGS`)."""
    from recllm.impute.llm import DEFAULT_SFT

    wanted = config.great_settings if config.great_settings is not None else GREAT_SETTINGS
    settings = tuple(s for s in config.settings if tuple(s) in {tuple(w) for w in wanted})
    return GReaTBudget(epochs=config.great_epochs or config.max_epochs(), batch_size=DEFAULT_SFT.batch_size,
                       max_steps=config.great_max_steps, max_retries=GREAT_MAX_TRIES, settings=settings)
