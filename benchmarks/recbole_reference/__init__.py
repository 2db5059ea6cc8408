"""RecBole's SASRec as a side-by-side reference for recllm's SASRec, on the identical split and protocol.

Three steps, each a module (``make recbole-reference`` runs all three; ``recllm bench learn`` then sets the
saved RecBole scores beside its own SASRec runs, see ``recllm.bench.learn.recbole_ref``):

1. ``export_split`` (recllm's environment): the chronological leave-one-out split of MovieLens-100K written as
   RecBole *benchmark* files (``<name>.train/.valid/.test.inter`` rows of user, item history, next item), so
   RecBole's train/valid/test assignment, histories and targets are ours, tie order included; plus
   ``manifest.json`` (catalogue order and the shared hyper-parameters both sides read).
2. ``run_recbole`` (the ``.venv-recbole`` environment; imports RecBole, never recllm): dumps what RecBole built
   from the files, trains RecBole's SASRec with its own trainer, and saves its test scores over the whole
   catalogue in recllm's item order.
3. ``compare`` (recllm's environment): checks RecBole's view against a freshly made split for every user, ranks
   RecBole's scores with recllm's harness (the same numpy code as for our models), trains our SASRec with the
   same settings and writes ``docs/results/recbole_reference.md``.

This ``__init__`` imports nothing, so ``run_recbole.py`` runs as a plain script in the RecBole environment.
"""
