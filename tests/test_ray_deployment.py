"""The Serve application's options, as `nosetrack serve --ray`, `serve run` and the config files build them
(no cluster: fast). The cluster itself is tested in test_ray_cluster.py."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

pytest.importorskip("ray.serve")
pytest.importorskip("a2wsgi")

import yaml  # Ray's own dependency
from ray.serve.schema import ServeDeploySchema

from nosetrack.cluster import drain
from nosetrack.cluster.deployment import ReplicaDoor, application, build_app, requests_per_replica
from nosetrack.config import Settings
from nosetrack.server.capacity import capacity

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def serve_config(path: Path) -> dict:
    document = yaml.safe_load(path.read_text())
    if document.get("kind") == "RayService":
        return yaml.safe_load(document["spec"]["serveConfigV2"])
    return document


@pytest.mark.parametrize("path", [DEPLOY / "ray" / "serve.yaml", DEPLOY / "kuberay" / "rayservice.yaml"])
def test_the_config_files_are_valid_serve_configs_that_build_nosetrack(path):
    config = ServeDeploySchema(**serve_config(path))
    (app,) = config.applications
    assert app.import_path == "nosetrack.cluster.deployment:build_app"
    deployment = build_app(app.args)._bound_deployment
    settings = deployment.init_args[0]
    autoscaling = deployment._deployment_config.autoscaling_config
    assert (autoscaling.min_replicas, autoscaling.max_replicas) == (
        settings.min_replicas,
        settings.max_replicas,
    )
    assert deployment.ray_actor_options["num_cpus"] == settings.cpus_per_replica


def test_builder_args_are_settings_by_name_as_strings():
    deployment = build_app({"model_instances": "2", "max_queue": "5", "api_keys": "a,b"})._bound_deployment
    settings = deployment.init_args[0]
    assert (settings.model_instances, settings.max_queue, settings.api_keys) == (2, 5, ("a", "b"))
    assert settings.log_file == "", "on Ray the log goes to Ray's logs unless a file is asked for"


def test_builder_refuses_an_unknown_setting_and_names_the_known_ones():
    with pytest.raises(ValueError, match=r"\['replicas'\].*max_replicas"):
        build_app({"replicas": "2"})


def test_a_replica_takes_its_models_queue_spare_threads_and_streams_and_the_proxy_queue_is_bounded():
    settings = Settings(model_instances=2, max_queue=3, max_streams=5)
    deployment = application(settings)._bound_deployment
    assert deployment.max_ongoing_requests == requests_per_replica(settings)
    assert (
        requests_per_replica(settings) == capacity(settings).requests + 5 > settings.model_instances + 3 + 5
    )
    assert deployment.max_queued_requests > 0
    backpressure = deployment._deployment_config.backpressure_config
    assert (backpressure.status_code, backpressure.retry_after_s) == (503, 1.0)


def test_equal_min_and_max_give_a_fixed_count_and_otherwise_autoscale_on_models_and_half_the_streams():
    fixed = application(Settings(min_replicas=3, max_replicas=3))._bound_deployment
    assert fixed.num_replicas == 3 and fixed._deployment_config.autoscaling_config is None
    settings = Settings(min_replicas=1, max_replicas=4, model_instances=2, max_streams=8)
    autoscaling = application(settings)._bound_deployment._deployment_config.autoscaling_config
    assert (autoscaling.min_replicas, autoscaling.max_replicas, autoscaling.target_ongoing_requests) == (
        1,
        4,
        2 + 8 / 2,
    )


def test_serve_ray_flags_become_the_settings_the_replicas_get(monkeypatch):
    from nosetrack import cli
    from nosetrack.cluster import launch

    deployed = {}
    monkeypatch.setattr(
        launch, "serve_on_ray", lambda settings, address: deployed.update(s=settings, a=address)
    )
    monkeypatch.delenv("NOSETRACK_LOG_FILE", raising=False)
    flags = ["serve", "--ray", "--address", "head:6379", "--min-replicas", "2", "--max-replicas", "6"]
    assert cli.main([*flags, "--cpus-per-replica", "0.5", "--model-instances", "1"]) == 0
    settings = deployed["s"]
    assert (settings.min_replicas, settings.max_replicas, settings.cpus_per_replica) == (2, 6, 0.5)
    assert (settings.model_instances, settings.log_file, deployed["a"]) == (1, "", "head:6379")


@pytest.mark.parametrize(("cpus", "models"), [("1", 1), ("0.5", 1), ("4", 4)])
def test_a_replica_runs_one_model_per_cpu_unless_told(cpus, models):
    settings = build_app({"cpus_per_replica": cpus})._bound_deployment.init_args[0]
    assert settings.model_instances == models
    told = build_app({"cpus_per_replica": cpus, "model_instances": "3"})._bound_deployment.init_args[0]
    assert told.model_instances == 3


def test_a_local_cluster_uses_haproxy_off_loopback_where_installed_with_files_and_ports_of_its_own(
    tmp_path, monkeypatch
):
    from nosetrack.cluster import launch

    monkeypatch.setattr(launch, "haproxy_installed", lambda: True)
    door = launch.front_door({}, loopback=False, folder=tmp_path)
    assert door["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
    assert door["RAY_SERVE_HAPROXY_CONFIG_FILE_LOC"].startswith(str(tmp_path))
    assert door["RAY_SERVE_HAPROXY_STATS_PORT"] != "8404"
    assert launch.front_door({}, loopback=True, folder=tmp_path) == {"RAY_SERVE_ENABLE_HA_PROXY": "0"}
    monkeypatch.setattr(launch, "haproxy_installed", lambda: False)
    assert launch.front_door({}, loopback=False, folder=tmp_path) == {"RAY_SERVE_ENABLE_HA_PROXY": "0"}


def test_ray_serve_enable_ha_proxy_decides_the_front_door_when_set(tmp_path):
    from nosetrack.cluster.launch import front_door

    assert (
        front_door({"RAY_SERVE_ENABLE_HA_PROXY": "1"}, loopback=True, folder=tmp_path)[
            "RAY_SERVE_ENABLE_HA_PROXY"
        ]
        == "1"
    )
    off = {"RAY_SERVE_ENABLE_HA_PROXY": "0"}
    assert front_door(off, loopback=False, folder=tmp_path) == off


def test_a_replica_answers_408_to_a_body_not_whole_within_the_body_timeout_and_the_app_sees_it_gone():
    seen = []

    async def app(scope, receive, send):
        seen.append(await receive())
        seen.append(await receive())

    async def receive():
        if not seen:
            return {"type": "http.request", "body": b"part", "more_body": True}
        await asyncio.sleep(10)

    sent = []

    async def send(message):
        sent.append(message)

    asyncio.run(ReplicaDoor(app, body_timeout=0.2)({"type": "http"}, receive, send))
    assert sent[0]["status"] == 408 and b"request_timeout" in sent[1]["body"]
    assert seen[-1] == {"type": "http.disconnect"}


def test_the_drain_watch_sets_stopping_once_ray_marks_the_replica_shutting_down(monkeypatch):
    marked = threading.Event()
    monkeypatch.setattr(drain, "replica_draining_mark", lambda: marked.is_set)
    stopping = threading.Event()
    drain.watch_for_drain(stopping, poll_seconds=0.01)
    assert not stopping.wait(0.1)
    marked.set()
    assert stopping.wait(2)
