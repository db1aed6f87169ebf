"""The stream job's choices that need no service: backend, target, drain, jars."""

from __future__ import annotations

from pathlib import Path

import pytest

from flashrec.settings import Settings
from flink_jobs import drain, event_sources, kafka_jars, session_cluster
from flink_jobs.features_job import _parser, config_from_args, flink_configuration
from flink_jobs.job_config import JobConfig


def _config(tmp_path: Path, **env: str) -> JobConfig:
    settings = Settings.from_env({"FLASHREC_VAR_DIR": str(tmp_path), **env})
    return JobConfig.from_settings(settings)


def test_backend_and_target_come_from_the_settings(tmp_path):
    local = _config(tmp_path)
    assert (local.backend, local.on_cluster) == ("redis", False)
    assert local.connector_dir == tmp_path / "flink" / "jars"
    kafka = _config(
        tmp_path, FLASHREC_EVENTLOG_BACKEND="kafka", FLASHREC_FLINK_JOBMANAGER="jm:8081"
    )
    assert (kafka.backend, kafka.on_cluster) == ("kafka", True)
    with pytest.raises(ValueError, match="idle"):
        kafka.with_(bounded="idle")


def test_flink_configuration_differs_only_where_the_target_needs_it(tmp_path):
    local = flink_configuration(_config(tmp_path))
    cluster = flink_configuration(_config(tmp_path, FLASHREC_FLINK_JOBMANAGER="jm:8081"))
    assert local["rest.bind-port"] == "0" and "python.pythonpath" not in local
    assert "rest.bind-port" not in cluster and cluster["python.pythonpath"]
    assert "pipeline.jars" not in local  # added to the environment, appended to the CLI's
    same = {k for k in local if k in cluster and local[k] == cluster[k]}
    assert {"execution.checkpointing.interval", "execution.checkpointing.dir"} <= same
    assert cluster["restart-strategy.type"] == "exponential-delay"  # waits for a new TM
    restored = _config(tmp_path).with_(restore_from="file:///chk-3")
    assert flink_configuration(restored)["execution.state-recovery.path"] == "file:///chk-3"


def test_the_cluster_client_is_flinks_cli_passing_the_run_on(tmp_path):
    config = _config(tmp_path, FLASHREC_FLINK_JOBMANAGER="127.0.0.1:8081")
    cmd = session_cluster.submit_command(config, ["--bounded", "drain"])
    assert cmd[0].endswith("/bin/flink") and cmd[1:4] == ["run", "-m", "127.0.0.1:8081"]
    assert cmd[-4:] == ["run", "--bounded", "drain", "--submitted"]
    args = _parser().parse_args(["run", "--bounded", "drain", "--submitted"])
    assert config_from_args(args, config.settings).submitted


def test_only_a_restored_kafka_drain_needs_the_watcher(tmp_path):
    kafka = _config(tmp_path, FLASHREC_EVENTLOG_BACKEND="kafka").with_(bounded="drain")
    assert not drain.needed(kafka)
    assert drain.needed(kafka.with_(restore_from="file:///chk-1"))
    assert not drain.needed(_config(tmp_path).with_(bounded="drain", restore_from="x"))
    # an unbounded or restored Kafka run gets no stopping offsets (no broker is asked)
    assert event_sources.bounds(kafka.with_(bounded="none")) == event_sources.Bounds()
    assert event_sources.bounds(kafka.with_(restore_from="x")) == event_sources.Bounds()


def test_caught_up_means_every_partition_committed_past_its_target():
    targets = {0: 10, 1: 0, 2: 5}
    assert drain.caught_up(targets, {0: 10, 2: 7})  # empty partition 1 needs nothing
    assert not drain.caught_up(targets, {0: 10, 2: 4})
    assert not drain.caught_up(targets, {0: -1, 2: 5})  # no commit yet


def test_redis_bounds_keep_an_explicit_stop_id(tmp_path):
    config = _config(tmp_path).with_(bounded="drain", stop_at_id="5-0")
    assert event_sources.bounds(config) == event_sources.Bounds(redis_stop_at="5-0")
    idle = _config(tmp_path).with_(bounded="idle", idle_polls=7)
    assert event_sources.bounds(idle).redis_idle_polls == 7


def test_connector_jars_are_checked_against_their_digests(tmp_path):
    assert not kafka_jars.present(tmp_path)
    for path in kafka_jars.jar_paths(tmp_path):
        path.write_bytes(b"not the jar")
    assert not kafka_jars.present(tmp_path)
    assert [p.name for p in kafka_jars.jar_paths(tmp_path)] == sorted(kafka_jars.JARS)
