"""Data-parallel training of one model on Ray Train: settings, the driver side (`trainer.fit`) and the
helpers a training loop calls inside each worker (`worker`)."""
