"""The Flink features job end to end: real Redis (db 15), the job started through its own
command line, real Feast online store. Written once, run on each event-log backend (Redis
Streams; Kafka on the tansu broker) and each Flink target: a local mini-cluster in the
job's process, or a session cluster (JobManager and TaskManager processes) the job is
submitted to through its REST endpoint.

(a) A small simulated flash sale (plus invalid lines) is appended to the log and the job
    runs bounded: every feature of every key read back through Feast equals the view's fold
    over that key's events (parity with the reference); stock and sold-out state equal the
    simulator's final stock; every user and anonymous session got a rescore signal; invalid
    lines were dead-lettered, nothing else.
(b) SIGKILL mid-stream (after a checkpoint, while events keep coming): locally the job's
    process, restarted with ``--restore``; on the cluster the TaskManager's JVM, a new one
    started, and Flink restarts the job from the last checkpoint by itself. Nothing is lost,
    nothing double counted.
Both runs also check the live lake: the landing files the job committed hold every log
entry exactly once (no entry lost, none written twice, even across the kill).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import redis

from flashrec.eventlog.factory import build_event_log
from flashrec.events import Rejection, parse_event
from flashrec.lake_layout import LIVE_SOURCE, days_with_files, finished_files
from flashrec.settings import Settings
from flashrec.simulator import SimulationConfig, SimulationResult, simulate
from flink_jobs import build_java, job_check, job_process, session_cluster
from flink_jobs.job_config import JobConfig
from tests.kafka_broker import TANSU_PRODUCER, free_port

pytestmark = pytest.mark.integration

GROUP = "flink-features"
LAKE_GROUP = "flink-lake"
KAFKA_PARTITIONS = 3


def _small_sale(seed: int) -> SimulationResult:
    """One day with its surge; no restock within the day, so some items end sold out."""
    return simulate(
        SimulationConfig(
            seed=seed,
            n_users=150,
            n_items=50,
            days=1,
            sessions_per_day=150,
            stock_range=(2, 10),
            restock_delay_minutes=(5000.0, 6000.0),
        )
    )


class Deployment:
    """Unique log/key names and a var/ of its own; runs the job like an operator would, on
    one event-log backend and one Flink target (``cluster``: a session cluster, else local).
    """

    def __init__(
        self,
        redis_url: str,
        tmp_path: Path,
        jar: Path,
        backend: str,
        kafka_env: dict[str, str] | None = None,
        cluster=None,
    ) -> None:
        tag = uuid.uuid4().hex[:8]
        self.tmp = tmp_path
        self.backend = backend
        self.cluster = cluster
        self.env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "FLASHREC_VAR_DIR": str(tmp_path / "var"),
            "FLASHREC_EVENTS_STREAM": f"test:ff:{tag}:events",
            "FLASHREC_DEADLETTER_STREAM": f"test:ff:{tag}:deadletter",
            "FLASHREC_RESCORE_STREAM": f"test:ff:{tag}:rescore",
            "FLASHREC_EVENTLOG_BACKEND": backend,
            "FLASHREC_KAFKA_EVENTS_TOPIC": f"test.ff.{tag}.events",
            "FLASHREC_KAFKA_DEADLETTER_TOPIC": f"test.ff.{tag}.deadletter",
            "FLASHREC_KAFKA_PARTITIONS": str(KAFKA_PARTITIONS),
            "FLASHREC_FLINK_JOBMANAGER": cluster.rest if cluster else "local",
            # A session cluster runs job after job: Python workers as processes (thread
            # mode's embedded interpreter cannot start twice in one TaskManager JVM).
            "FLASHREC_FLINK_EXECUTION_MODE": "process" if cluster else "thread",
            **(kafka_env or {}),
            "FLASHREC_FLINK_METRICS_PORT": str(free_port()),
            "FLASHREC_FLINK_REPORTER_PORT": "0",
            "FEAST_USAGE": "False",
        }
        self.keys = {
            "stock_key": f"test:ff:{tag}:stock",
            "soldout_key": f"test:ff:{tag}:soldout",
            "catalog_key": f"test:ff:{tag}:catalog",
        }
        self.settings = Settings.from_env(self.env)
        self.config = JobConfig.from_settings(self.settings, writer="feast", jar=jar, **self.keys)
        self.jar = jar
        self.log = tmp_path / "job.log"
        self.r = redis.Redis.from_url(redis_url, decode_responses=True)
        extra = {"producer_config": TANSU_PRODUCER} if backend == "kafka" else {}
        self.eventlog = build_event_log(self.settings, **extra)

    def start(self, *args: str) -> subprocess.Popen:
        flags = [f"--{k.replace('_', '-')}={v}" for k, v in self.keys.items()]
        argv = ["run", "--writer", "feast", "--jar", str(self.jar), *flags, *args]
        return job_process.spawn(argv, self.log, self.env)

    def wait(self, proc: subprocess.Popen, timeout: float) -> None:
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"job still running after {timeout}s:\n{self.tail()}")
        assert rc == 0, f"job failed ({rc}):\n{self.tail()}"

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-5000:]

    def diagnose(self) -> str:
        """What a failed wait needs besides the job's own log: both groups' positions and,
        on a session cluster, the JobManager's view (job states, exceptions, log)."""
        parts = [self.tail()]
        for group in (GROUP, LAKE_GROUP):
            try:
                parts.append(f"{group}: {self.eventlog.health(group)}")
            except (KeyError, redis.ResponseError) as exc:
                parts.append(f"{group}: {exc!r}")
        if self.cluster is not None:
            parts.append(self.cluster.diagnose())
        return "\n".join(parts)

    def check_features(self, sim: SimulationResult) -> tuple[int, int]:
        from flink_jobs.job_sinks import FeastWriter

        expected = job_check.reference_features(job_check.feature_events(sim.events))
        n_keys, n_values, mismatches = job_check.compare(expected, FeastWriter(self.config).read)
        assert n_keys == sum(len(v) for v in expected.values()) > 0
        assert not mismatches, f"{len(mismatches)} of {n_values} values differ: {mismatches[:5]}"
        return n_keys, n_values

    def check_stock(self, sim: SimulationResult) -> None:
        final = {item: traj[-1][1] for item, traj in sim.stock_trajectory.items()}
        stock = {k: int(v) for k, v in self.r.hgetall(self.keys["stock_key"]).items()}
        assert stock == final
        sold_out = {item for item, level in final.items() if level == 0}
        assert sold_out, "the test sale should sell some items out"
        assert self.r.smembers(self.keys["soldout_key"]) == sold_out

    def check_rescore(self, sim: SimulationResult) -> None:
        entries = [f for _, f in self.r.xrange(self.settings.rescore_stream)]
        users = {f["user_id"] for f in entries if "user_id" in f}
        sessions = {f["session_id"] for f in entries if "session_id" in f}
        assert users == {e.user_id for e in sim.events if getattr(e, "user_id", None)}
        every = {e.session_id for e in sim.events if getattr(e, "session_id", None)}
        known = {e.session_id for e in sim.events if getattr(e, "user_id", None)}
        # a known user's sessions are served the user's list: no signal once known
        assert every - known <= sessions <= every and sessions != every
        shopper_signals = [f for f in entries if "category" not in f]  # not trend signals
        assert all(f["reason"] and f["event_time"] for f in shopper_signals)
        assert all(f["reason"].startswith("trending:") for f in entries if "category" in f)

    def check_lake(self, appended: list[str]) -> int:
        """Every log entry is in exactly one committed live landing file, nothing else."""
        landing = self.settings.landing_dir
        files = [
            f for day in days_with_files(landing, LIVE_SOURCE)
            for f in finished_files(landing, LIVE_SOURCE, day)
        ]  # fmt: skip
        lines = [line for f in files for line in f.read_text().splitlines()]
        missing = Counter(appended) - Counter(lines)
        extra = Counter(lines) - Counter(appended)
        assert not missing and not extra, (
            f"lake: {sum(missing.values())} entries missing, {sum(extra.values())} extra"
        )
        hidden = [p for p in (landing / LIVE_SOURCE).rglob(".*") if p.is_file()]
        assert not hidden, f"in-progress files left after a drained run: {hidden[:3]}"
        return len(files)

    def caught_up(self) -> bool:
        """Both groups acknowledged every log entry: a completed checkpoint covers it all."""
        try:
            return all(
                (h.pending, h.lag) == (0, 0)
                for h in (self.eventlog.health(GROUP), self.eventlog.health(LAKE_GROUP))
            )
        except (KeyError, redis.ResponseError):  # a group not created yet
            return False

    def close(self) -> None:
        self.eventlog.close()
        self.r.close()


@pytest.fixture(scope="module")
def jar() -> Path:
    return build_java.build(log=lambda _msg: None)


@pytest.fixture(params=["local"])
def flink_target(request):
    """Where the job runs: ``local`` (mini-cluster) unless a test parametrizes it
    indirectly with ``cluster``; then the session's Flink cluster (None for local)."""
    return request.getfixturevalue("flink_cluster") if request.param == "cluster" else None


@pytest.fixture
def deployment(request, redis_url, tmp_path, jar, event_log_backend, flink_target):
    kafka_env = None
    if event_log_backend == "kafka":
        kafka_env = {
            "KAFKA_BOOTSTRAP_SERVERS": request.getfixturevalue("kafka_bootstrap"),
            "FLASHREC_FLINK_CONNECTOR_DIR": str(request.getfixturevalue("kafka_connector_dir")),
        }
    d = Deployment(redis_url, tmp_path, jar, event_log_backend, kafka_env, flink_target)
    yield d
    if flink_target is not None:  # leave the shared cluster free for the next test
        flink_target.cancel_all()
    d.close()


@pytest.mark.parametrize(
    ("flink_target", "parallelism"),
    [("local", 1), ("local", 2), ("cluster", 1)],
    indirect=["flink_target"],
)
def test_bounded_run_matches_the_fold_of_every_key(deployment: Deployment, parallelism: int):
    """Parallelism 2 spreads item and shopper keys over two shards per stage: events cross
    between subtasks and must still land on the one state of each key."""
    d = deployment
    sim = _small_sale(seed=7)
    bad = [line for _, line in sim.landing_lines() if isinstance(parse_event(line), Rejection)]
    bad += ['{"not": "an event"}', "not json"]
    half = len(sim.lines) // 2
    appended = sim.lines[:half] + bad + sim.lines[half:]
    d.eventlog.append(appended)

    started = time.monotonic()
    d.wait(d.start("--bounded", "drain", "--parallelism", str(parallelism)), timeout=240)
    took = time.monotonic() - started
    print(f"bounded run ({d.backend}, {where(d)}): {len(appended)} lines in {took:.1f}s")

    n_keys, n_values = d.check_features(sim)
    d.check_stock(sim)
    d.check_rescore(sim)
    dead = d.eventlog.dead_letters(count=100)
    assert sorted(x.raw for x in dead) == sorted(bad)
    assert int(d.r.hget(d.config.stats_key, "invalid") or 0) >= len(bad)
    health = d.eventlog.health(GROUP)
    assert health.pending == 0 and health.lag == 0
    files = d.check_lake(appended)
    print(f"bounded run: {n_keys} keys, {n_values} values equal to the fold; lake {files} files")


@pytest.mark.parametrize("flink_target", ["local", "cluster"], indirect=True)
def test_kill_9_mid_stream_and_recover_loses_nothing(deployment: Deployment):
    d = deployment
    sim = _small_sale(seed=11)
    lines = sim.lines
    head = len(lines) // 4
    d.eventlog.append(lines[:head])
    mid = (head + len(lines)) // 2
    killed, feed_done = threading.Event(), threading.Event()

    def feeder() -> None:
        """~200 events/s up to the middle, the rest once the job is dead: the kill lands
        mid-stream whatever the machine's speed, and events arrive while it is down."""
        for start in range(head, len(lines), 20):
            if start >= mid:
                killed.wait(180)
            d.eventlog.append(lines[start : start + 20])
            time.sleep(0.1)
        feed_done.set()

    t0 = time.monotonic()
    job = d.start("--checkpoint-interval-ms", "500")
    checkpoints = d.config.checkpoint_dir
    feeding = threading.Thread(target=feeder, daemon=True)
    try:
        _wait_for(lambda: _delivered(d) > 0, 120, "first events", job, d)
        feeding.start()
        _wait_for(lambda: job_process.latest_checkpoint(checkpoints), 60, "a checkpoint", job, d)
        time.sleep(1.0)  # more events after that checkpoint: they must be replayed
        if d.cluster is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait(30)
        else:
            d.cluster.kill_taskmanager()  # the job's client and the JobManager live on
        killed_at = time.monotonic() - t0
        delivered_at_kill = _delivered(d)
        latest = job_process.latest_checkpoint(checkpoints)
    finally:
        killed.set()
        if d.cluster is None and job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    feeding.join(60)
    assert feed_done.is_set()
    assert 0 < delivered_at_kill < len(lines)

    if d.cluster is None:
        restored = d.start("--restore", "--bounded", "drain")
        d.wait(restored, timeout=240)
        assert f"restored from {latest.resolve().as_uri()}" in d.tail()
    else:
        d.cluster.start_taskmanager()
        (jid,) = [j["jid"] for j in d.cluster.jobs() if j["state"] not in ("CANCELED", "FINISHED")]
        _wait_for(d.caught_up, 240, "the restarted job to catch up", job, d)
        restored_from = d.cluster.restored_checkpoint(jid)
        session_cluster.stop(d.config, jid, drain=True)
        d.wait(job, timeout=120)
        assert restored_from == int(latest.name.removeprefix("chk-")), (restored_from, latest)
    n_keys, n_values = d.check_features(sim)
    d.check_stock(sim)
    d.check_rescore(sim)
    health = d.eventlog.health(GROUP)
    assert health.pending == 0 and health.lag == 0
    files = d.check_lake(lines)
    print(
        f"crash test ({d.backend}, {where(d)}): lake exact in {files} files; {len(lines)} "
        f"events, killed at {killed_at:.1f}s after {delivered_at_kill} delivered, restored "
        f"from {latest.name}; {n_keys} keys / {n_values} values exact; "
        f"total {time.monotonic() - t0:.1f}s"
    )


def where(d: Deployment) -> str:
    return "session cluster" if d.cluster else "mini-cluster"


@pytest.mark.parametrize("event_log_backend", ["redis"])  # the state backend: one log is enough
def test_idle_sessions_expire_from_state_on_rocksdb(deployment: Deployment):
    """The production state backend (RocksDB, incremental checkpoints) with a 3 s session
    TTL: a session idle longer than that starts again from an empty state, while its
    shopper (TTL 30 days) keeps counting; the job serves its metrics meanwhile."""
    import urllib.request

    from flink_jobs.job_sinks import FeastWriter

    d = deployment
    env = {**d.env, "FLASHREC_FLINK_STATE_BACKEND": "rocksdb", "FLASHREC_FLINK_SESSION_TTL_S": "3"}
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in d.keys.items()]
    argv = ["run", "--writer", "feast", "--jar", str(d.jar), "--checkpoint-interval-ms", "500"]
    job = job_process.spawn([*argv, *flags], d.log, env)
    readers: list[FeastWriter] = []

    def views(n: int, start: int) -> None:
        now = time.time()
        d.eventlog.append(
            [
                f'{{"event_id":"ttl-{start + i}","event_time":"{_iso(now)}","event_type":"view",'
                f'"user_id":"u-ttl","session_id":"s-ttl","item_id":"item-{start + i:05d}"}}'
                for i in range(n)
            ]
        )

    def counts() -> tuple[int, int]:
        """(session events, user views); (-1, -1) until the job has registered its views."""
        try:
            reader = readers[0] if readers else readers.append(FeastWriter(d.config)) or readers[0]
            session = reader.read("session_activity", ["s-ttl"])[0].get("session_events") or 0
            user = reader.read("user_activity", ["u-ttl"])[0].get("user_views_1h") or 0
        except Exception:  # noqa: BLE001 - not applied yet: the registry is re-read next time
            readers.clear()
            return -1, -1
        return int(session), int(user)

    try:
        views(3, 0)
        _wait_for(lambda: counts() == (3, 3), 180, "the first three views", job, d)
        time.sleep(5.0)  # idle past the session TTL
        views(1, 3)
        _wait_for(lambda: counts()[1] == 4, 60, "the fourth view", job, d)
        assert counts() == (1, 4), "the session restarted from an empty state, the user did not"
        port = env["FLASHREC_FLINK_METRICS_PORT"]
        _wait_for(
            lambda: job_process.latest_checkpoint(d.config.checkpoint_dir),
            60,
            "a checkpoint",
            job,
            d,
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        for name in (
            'flashrec_flink_consumer_lag{group="flink-features"}',
            "flashrec_flink_checkpoint_age_seconds",
            "flashrec_flink_checkpoint_size_bytes",
            'flashrec_flink_flush_seconds_count{stage="shoppers"}',
            "flashrec_flink_events_total 4.0",
        ):
            assert name in text, name
        latest = job_process.latest_checkpoint(d.config.checkpoint_dir)
        assert any(latest.parent.joinpath("shared").iterdir()), "incremental: shared SST files"
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait(30)


def _iso(t: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, tz=UTC).isoformat()


def _delivered(d: Deployment) -> int:
    """Entries delivered to the job's consumer group so far (0 before it exists; Kafka:
    committed by a checkpoint so far)."""
    try:
        info = d.eventlog.health(GROUP)
    except (KeyError, redis.ResponseError):
        return 0
    return d.eventlog.length() - (info.lag or 0)


def _wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen, d: Deployment):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            pytest.fail(f"job exited ({proc.returncode}) waiting for {what}:\n{d.diagnose()}")
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout}s waiting for {what}:\n{d.diagnose()}")
