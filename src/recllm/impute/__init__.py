"""recllm.impute: fill the missing cells of mixed-type tables (scikit-learn transformers), classic and LLM-based.

``IMPUTERS`` maps a name to its class: ``deletion``, ``zero``, ``mean``, ``knn``, ``mice``, ``llm``. Every imputer
is ``fit(frame) -> self`` / ``transform(frame) -> filled copy``; observed cells are never changed; ``report_`` says
what the last ``transform`` filled and how.
"""

from recllm.impute.base import CATEGORICAL, NUMERIC, TEXT, BaseImputer, ColumnInfo, ImputationReport, infer_kinds
from recllm.impute.classic import DeletionImputer, KNNTableImputer, MeanModeImputer, MICEImputer, ZeroImputer
from recllm.impute.llm import LLMImputer
from recllm.impute.registry import IMPUTERS, make_imputer

__all__ = [
    "CATEGORICAL", "IMPUTERS", "NUMERIC", "TEXT", "BaseImputer", "ColumnInfo", "DeletionImputer", "ImputationReport",
    "KNNTableImputer", "LLMImputer", "MICEImputer", "MeanModeImputer", "ZeroImputer", "infer_kinds", "make_imputer",
]
