"""recllm.impute: fill the missing cells of mixed-type tables (scikit-learn transformers), classic and LLM-based.

``IMPUTERS`` maps a name to its class: ``deletion``, ``zero``, ``mean``, ``knn``, ``mice``, ``llm``. Every imputer
is ``fit(frame) -> self`` / ``transform(frame) -> filled copy``; observed cells are never changed; ``report_`` says
what the last ``transform`` filled and how.
"""

from recllm.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(("CATEGORICAL", "NUMERIC", "TEXT", "BaseImputer", "ColumnInfo", "ImputationReport", "infer_kinds"),
                    "recllm.impute.base"),
    **dict.fromkeys(("DeletionImputer", "KNNTableImputer", "MeanModeImputer", "MICEImputer", "ZeroImputer"),
                    "recllm.impute.classic"),
    "LLMImputer": "recllm.impute.llm",
    **dict.fromkeys(("IMPUTERS", "make_imputer"), "recllm.impute.registry"),
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
