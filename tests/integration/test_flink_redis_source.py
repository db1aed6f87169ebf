"""The Java Redis Streams source on a real Flink mini-cluster and a real redis-server.

1. Bounded read: every appended entry arrives exactly once (ids compared), through both
   bounded modes, with two consumers; entries are XACKed by the final checkpoint.
2. Crash recovery: an unbounded job with 1 s checkpoints runs in its own process group,
   is killed with SIGKILL after a checkpoint while events keep coming, and is restarted from
   the latest ``chk-N``. Every event must reach the sink at least once and the per-key
   counts (keyed state, written to Redis as absolute values) must be exact.

This file doubles as the crash test's job script: ``python <this file> <json args>``.
"""

from __future__ import annotations

import json
import os
import signal
import site
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # when run as the job script
    sys.path.insert(0, str(ROOT))

from flink_jobs import build_java  # noqa: E402

pytestmark = pytest.mark.integration

N_KEYS = 20


def _flink_config(extra: dict[str, str] | None = None):
    from pyflink.common import Configuration

    conf = Configuration()
    for key, value in {
        "python.execution-mode": "thread",
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
        "rest.bind-port": "0",  # several mini-clusters may run on this machine at once
        **(extra or {}),
    }.items():
        conf.set_string(key, value)
    return conf


@pytest.fixture(scope="session")
def redis_source_jar(tmp_path_factory) -> Path:
    """Build (or reuse, when up to date) the source's jar once per session."""
    return build_java.build()


# ---------------------------------------------------------------------------------------
# 1. Bounded mode: exact delivery


def test_bounded_read_delivers_every_entry_exactly_once(redis_url, redis_source_jar):
    from pyflink.common import Types, WatermarkStrategy
    from pyflink.datastream import StreamExecutionEnvironment

    from flink_jobs.redis_source import redis_stream_source, split_record

    r = redis.Redis.from_url(redis_url, decode_responses=True)
    tag = uuid.uuid4().hex[:8]
    stream_a, stream_b = f"test:flink:{tag}:a", f"test:flink:{tag}:b"
    pipe = r.pipeline(transaction=False)
    for i in range(3000):
        pipe.xadd(stream_a, {"payload": json.dumps({"n": i, "s": "a"})})
    for i in range(2000):
        pipe.xadd(stream_b, {"payload": json.dumps({"n": i, "s": "b"})})
    ids = pipe.execute()
    ids_a, ids_b = ids[:3000], ids[3000:]
    # Beyond stream a's end id: must not be emitted by the stop_at_id source.
    extra = [r.xadd(stream_a, {"payload": "late"}) for _ in range(5)]
    # An entry in a stream without a "payload" field still comes through (as JSON).
    odd = r.xadd(stream_b, {"event_id": "x1"})

    env = StreamExecutionEnvironment.get_execution_environment(
        _flink_config({"execution.checkpointing.interval": "300 ms"})
    )
    env.set_parallelism(2)
    env.add_jars(redis_source_jar.resolve().as_uri())
    by_end_id = redis_stream_source(
        redis_url,
        stream_a,
        "g",
        consumers=2,
        emit_ids=True,
        stop_at_id=ids_a[-1],
        batch_size=500,
    )
    by_silence = redis_stream_source(
        redis_url,
        stream_b,
        "g",
        consumers=3,
        emit_ids=True,
        stop_after_empty_polls=3,
        block_ms=100,
    )
    a = env.from_source(by_end_id, WatermarkStrategy.no_watermarks(), "a", Types.STRING())
    b = env.from_source(by_silence, WatermarkStrategy.no_watermarks(), "b", Types.STRING())
    started = time.monotonic()
    with a.union(b).execute_and_collect("bounded-redis-source") as results:
        got = [split_record(x) for x in results]
    print(f"bounded job: {len(got)} records in {time.monotonic() - started:.1f}s")

    # Ids are per stream (the same id can exist in both): key records by (stream, id).
    got_keys = [(json.loads(p).get("s", "b"), entry_id) for entry_id, p in got]
    assert len(got_keys) == len(set(got_keys)), "duplicates in a clean bounded run"
    expected = {("a", i) for i in ids_a} | {("b", i) for i in ids_b} | {("b", odd)}
    assert set(got_keys) == expected
    assert not {("a", i) for i in extra} & set(got_keys)
    payloads = {key: p for key, (_, p) in zip(got_keys, got, strict=True)}
    assert json.loads(payloads["a", ids_a[7]]) == {"n": 7, "s": "a"}
    assert json.loads(payloads["b", odd]) == {"event_id": "x1"}
    # The final checkpoint acknowledged everything that was emitted.
    assert r.xpending(stream_b, "g")["pending"] == 0
    assert r.xpending(stream_a, "g")["pending"] == len(extra)  # read past the end, kept
    r.delete(stream_a, stream_b)
    r.close()


def test_the_source_reads_over_tls_with_the_url_redis_py_reads(redis_tls_url, redis_source_jar):
    """``rediss://...?ssl_ca_certs=<pem>``: one URL for both sides of the job. redis-py
    writes the entries, the Java source reads and acknowledges them over TLS."""
    from pyflink.common import Types, WatermarkStrategy
    from pyflink.datastream import StreamExecutionEnvironment

    from flink_jobs.redis_source import redis_stream_source, split_record

    r = redis.Redis.from_url(redis_tls_url, decode_responses=True)
    stream = f"test:flink:tls:{uuid.uuid4().hex[:8]}"
    pipe = r.pipeline(transaction=False)
    for i in range(500):
        pipe.xadd(stream, {"payload": json.dumps({"n": i})})
    ids = pipe.execute()

    env = StreamExecutionEnvironment.get_execution_environment(
        _flink_config({"execution.checkpointing.interval": "300 ms"})
    )
    env.set_parallelism(1)
    env.add_jars(redis_source_jar.resolve().as_uri())
    source = redis_stream_source(
        redis_tls_url, stream, "g", emit_ids=True, stop_after_empty_polls=3, block_ms=100
    )
    tls = env.from_source(source, WatermarkStrategy.no_watermarks(), "tls", Types.STRING())
    with tls.execute_and_collect("redis-source-over-tls") as results:
        got = [split_record(x) for x in results]
    assert sorted(entry_id for entry_id, _ in got) == sorted(ids)
    assert r.xpending(stream, "g")["pending"] == 0  # the XACKs went over TLS too
    r.close()


# ---------------------------------------------------------------------------------------
# 2. Crash recovery: kill -9 after a checkpoint, restore, nothing lost


def _crash_job(args: dict) -> None:
    """The job run (twice) by the crash test, in its own process."""
    from pyflink.common import Types, WatermarkStrategy
    from pyflink.datastream import KeyedProcessFunction, RuntimeContext, StreamExecutionEnvironment
    from pyflink.datastream.state import ValueStateDescriptor

    from flink_jobs.redis_source import redis_stream_source, split_record

    out = args["out"]

    class CountPerKey(KeyedProcessFunction):
        """Counts events per key in keyed state; writes absolute values (idempotent)."""

        def open(self, ctx: RuntimeContext) -> None:
            self.count = ctx.get_state(ValueStateDescriptor("count", Types.LONG()))
            self.r = redis.Redis.from_url(args["redis_url"])

        def process_element(self, value, ctx):
            entry_id, payload = value
            n = (self.count.value() or 0) + 1
            self.count.update(n)
            pipe = self.r.pipeline(transaction=False)
            pipe.sadd(f"{out}:seen", entry_id)
            pipe.hset(f"{out}:counts", ctx.get_current_key(), n)
            pipe.incr(f"{out}:deliveries")
            pipe.execute()
            yield n

    extra = {
        "execution.checkpointing.interval": "1 s",
        "execution.checkpointing.dir": Path(args["checkpoints"]).as_uri(),
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "state.backend.type": "hashmap",
        "restart-strategy.type": "none",
    }
    if args.get("restore_from"):
        extra["execution.state-recovery.path"] = args["restore_from"]
    env = StreamExecutionEnvironment.get_execution_environment(_flink_config(extra))
    env.set_parallelism(2)
    env.add_jars(Path(args["jar"]).resolve().as_uri())
    source = redis_stream_source(
        args["redis_url"], args["stream"], "counter", consumers=2, emit_ids=True
    )
    (
        env.from_source(source, WatermarkStrategy.no_watermarks(), "events", Types.STRING())
        .map(
            lambda rec: (split_record(rec)[0], json.loads(split_record(rec)[1])["key"]),
            output_type=Types.TUPLE([Types.STRING(), Types.STRING()]),
        )
        .key_by(lambda t: t[1], key_type=Types.STRING())
        .process(CountPerKey(), output_type=Types.LONG())
        .filter(lambda _: False)
        .print()
    )
    env.execute("redis-source-crash-test")


def _start_job(args: dict, log: Path) -> subprocess.Popen:
    # Thread mode runs the UDFs in an interpreter embedded in the JVM (pemja). It does not see
    # a virtualenv whose python is a symlink (no pyvenv.cfg lookup), so hand it the paths.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [*site.getsitepackages(), str(ROOT), *filter(None, [env.get("PYTHONPATH")])]
    )
    return subprocess.Popen(
        [sys.executable, __file__, json.dumps(args)],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the JVM and workers die with it
    )


def _kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _completed_checkpoints(root: Path) -> list[Path]:
    done = [p.parent for p in root.glob("*/chk-*/_metadata")]
    return sorted(done, key=lambda p: int(p.name.split("-")[1]))


def _latest_checkpoint_number(root: Path) -> int:
    done = _completed_checkpoints(root)
    return int(done[-1].name.split("-")[1]) if done else 0


def _wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            pytest.fail(
                f"job exited ({proc.returncode}) while waiting for {what}:\n"
                + log.read_text(errors="replace")[-4000:]
            )
        time.sleep(0.2)
    pytest.fail(
        f"timed out after {timeout}s waiting for {what}:\n"
        + log.read_text(errors="replace")[-4000:]
    )


def test_kill_9_and_restore_loses_nothing(redis_url, redis_source_jar, tmp_path):
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    tag = uuid.uuid4().hex[:8]
    stream, out = f"test:flink:{tag}:crash", f"test:flink:{tag}:out"
    checkpoints = tmp_path / "checkpoints"
    log = tmp_path / "job.log"
    args = {
        "redis_url": redis_url,
        "stream": stream,
        "out": out,
        "jar": str(redis_source_jar),
        "checkpoints": str(checkpoints),
    }

    sent: list[str] = []
    expected: dict[str, int] = {}
    stop = threading.Event()

    def produce(n: int) -> None:
        pipe = r.pipeline(transaction=False)
        keys = [f"k{(len(sent) + i) % N_KEYS}" for i in range(n)]
        for key in keys:
            pipe.xadd(stream, {"payload": json.dumps({"key": key})})
        sent.extend(pipe.execute())
        for key in keys:
            expected[key] = expected.get(key, 0) + 1

    def producer() -> None:  # ~200 events/s until stopped: events keep coming across the crash
        while not stop.is_set():
            produce(20)
            time.sleep(0.1)

    produce(1000)
    t0 = time.monotonic()
    job = _start_job(args, log)
    feeder = threading.Thread(target=producer, daemon=True)
    try:
        _wait_for(lambda: int(r.get(f"{out}:deliveries") or 0) > 0, 90, "first events", job, log)
        first_events_at = time.monotonic() - t0
        feeder.start()
        _wait_for(
            lambda: _latest_checkpoint_number(checkpoints) >= 1,
            60,
            "a completed checkpoint",
            job,
            log,
        )
        time.sleep(0.7)  # let some events be emitted after the checkpoint (they will replay)
        _kill_group(job)
        crashed_at = time.monotonic() - t0
        seen_before = r.scard(f"{out}:seen")
        latest = _completed_checkpoints(checkpoints)[-1]
        pending_at_crash = r.xpending(stream, "counter")["pending"]

        time.sleep(1.0)  # events arrive while the job is down
        job = _start_job({**args, "restore_from": latest.as_uri()}, log)
        _wait_for(lambda: r.scard(f"{out}:seen") > seen_before, 90, "restored job", job, log)
        restored_at = time.monotonic() - t0
        stop.set()
        feeder.join()
        total = len(sent)

        def caught_up() -> bool:
            return r.scard(f"{out}:seen") == total and r.xpending(stream, "counter")["pending"] == 0

        _wait_for(caught_up, 60, f"all {total} events seen and acknowledged", job, log)
    finally:
        stop.set()
        _kill_group(job)

    seen = r.smembers(f"{out}:seen")
    counts = {k: int(v) for k, v in r.hgetall(f"{out}:counts").items()}
    deliveries = int(r.get(f"{out}:deliveries"))
    print(
        f"crash test: {total} events; first events at {first_events_at:.1f}s, killed at "
        f"{crashed_at:.1f}s after {seen_before} seen ({pending_at_crash} pending), restored "
        f"from {latest.name}, processing again at {restored_at:.1f}s; "
        f"{deliveries - total} re-deliveries; total {time.monotonic() - t0:.1f}s"
    )
    assert seen == set(sent)  # no loss
    assert counts == expected  # state restored + replay after the checkpoint: exact counts
    assert deliveries >= total
    r.delete(stream, f"{out}:seen", f"{out}:counts", f"{out}:deliveries")
    r.close()


if __name__ == "__main__":
    _crash_job(json.loads(sys.argv[1]))
