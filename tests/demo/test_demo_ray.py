"""`raypath demo` starts Ray once for all its stages: each stage's own `connect` joins that instance
(a second start cost the sweep tens of seconds on a loaded machine)."""

from types import SimpleNamespace

import ray

import raypath.cluster
from raypath.demo.config import DemoConfig
from raypath.demo.pipeline import plan_demo, run_demo


def test_the_demo_starts_ray_once_and_every_stage_finds_it_running(tmp_path, monkeypatch):
    started, seen = [], []
    state = {"up": False}

    def start_local(**kwargs):
        started.append(kwargs)
        state["up"] = True

    def stage(name, result=None):
        def run(*args, **kwargs):
            raypath.cluster.connect(None, log_to_driver=False)  # what each real stage does first
            seen.append((name, state["up"]))
            return result
        return run

    monkeypatch.setattr(raypath.cluster, "start_local", start_local)
    monkeypatch.setattr(ray, "is_initialized", lambda: state["up"])
    monkeypatch.setattr(ray, "shutdown", lambda *a, **k: state.update(up=False))
    monkeypatch.setattr(ray, "get_runtime_context", lambda: SimpleNamespace(runtime_env={}))
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2})
    monkeypatch.setattr(ray, "nodes", lambda: [{}])
    monkeypatch.setattr("raypath.slides.synth.write_cohort", lambda *a, **k: None)
    monkeypatch.setattr("raypath.register.run.run_registration", stage("register"))
    monkeypatch.setattr("raypath.extract.run.run_extraction", stage("extract", SimpleNamespace(failed=0)))
    monkeypatch.setattr("raypath.sweep.driver.run_sweep", stage("sweep"))
    monkeypatch.setattr("raypath.compare.run.compare_sweep", stage("compare", []))

    plan = plan_demo(DemoConfig(out=tmp_path / "demo"), source="test")
    assert run_demo(plan) == 0
    assert [name for name, _ in seen] == ["register", "extract", "sweep", "compare"]
    assert all(up for _, up in seen)
    assert len(started) == 1 and started[0]["log_to_driver"] is False
