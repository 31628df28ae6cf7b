"""The registration job (`raypath register`, `jobs/register.py`): one Ray task per specimen, spread
over the cluster, each specimen's result stored atomically, resumable, with a failures manifest."""
