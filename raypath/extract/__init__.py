"""Feature extraction: manifest -> tiles (CPU tasks, crash-isolated) -> FM actors -> feature store.

Stages, one module each: `checks` (bad input, before Ray), `plan` (resume: what is missing),
`tiles` (+ `isolation`: read each slide in a child process), `encode` (EncoderActor for
`map_batches`), `pipeline` (the Ray Data graph), `driver`, `assemble` + `write` (per-slide files on
the driver), `failures`, `progress`, `summary`; `owners` + `claims` + `coordination` let runs share
an output; `run.run_extraction` ties them together for `raypath extract` and `jobs/extract.py`.
"""
