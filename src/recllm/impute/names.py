"""The imputers' registry names alone, for the command line's choices: importing the classes (recllm.impute.registry)
loads torch and scikit-learn, which ``recllm --help`` and argument errors should not wait for."""

IMPUTER_NAMES: tuple[str, ...] = ("deletion", "zero", "mean", "knn", "mice", "llm", "miceforest", "great")
