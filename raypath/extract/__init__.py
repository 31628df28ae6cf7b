"""Feature extraction: manifest -> tiles (CPU tasks, crash-isolated) -> FM actors -> feature store.

Stages, one module each: `plan` (resume: what is missing), `tiles` (+ `isolation`: read each
slide in a child process), `encode` (EncoderActor for `map_batches`), `pipeline` (the Ray Data
graph), `assemble` + `write` (per-slide files on the driver), `failures`, `progress`, `summary`;
`run.run_extraction` ties them together for `raypath extract` and `jobs/extract.py`.
"""
