"""The learn benchmark's epoch caps and early-stopping patience: one place, light to import (the command line
shows them). The full cap and the patience were chosen on ML-100K validation curves only, 3 seeds
(docs/results/learn-patience.md, ``recllm bench learn-patience``); the earlier 50 epochs and patience 10 stopped
SASRec-CE and LEARN early."""

DEFAULT_PATIENCE = 50
FULL_EPOCHS = 200
QUICK_EPOCHS = 5
