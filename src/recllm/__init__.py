"""recllm: large language models inside recommender systems.

Three published systems on one shared core -- LLM imputation (arXiv 2407.10078), LLM-TRSR (arXiv 2403.13325)
and LEARN (arXiv 2405.03988) -- beside the baselines they are judged against, under one evaluation harness.
"""

__version__ = "0.1.0"
