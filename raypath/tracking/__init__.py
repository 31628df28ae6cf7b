"""MLflow tracking for every stage: the SQLite store, model-training experiments, the run ledger and
its tags, the inputs a run records, and the runs of `raypath train`, `compare` and `evaluate-fm`.

Above training in the package graph (it records what training produced) and below the stages that
call it (sweep, compare, evaluate-fm, finetune).
"""
