"""The services run on a read-only root filesystem, as the chart deploys them
(readOnlyRootFilesystem, a /tmp emptyDir, XDG_CACHE_HOME on a cache emptyDir): each is started
as ``alignstream serve`` in a mount namespace where everything but /tmp is read-only (the
checkout and its virtual environment included), and a rule published through ingest grounds an
answer of the real vLLM engine on CPU. A write anywhere else would fail the start or the answer.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from shared import events
from shared.client import AlignstreamClient
from shared.settings import KafkaSettings
from tests.integration.helpers import ServiceProcess
from tests.samples import sample_rule

ROOT = Path(__file__).parents[2]
WRAPPER = Path(__file__).with_name("read_only_root.sh")
SERVICES = ("ingest", "retrieval", "generation", "grading", "gateway")


def read_only_root_available() -> bool:
    probe = subprocess.run([str(WRAPPER), "touch", str(ROOT / ".read-only-probe")],
                           capture_output=True, text=True, check=False)  # fmt: skip
    (ROOT / ".read-only-probe").unlink(missing_ok=True)
    return probe.returncode != 0 and "Read-only file system" in probe.stderr


@pytest.mark.timeout(600)
async def test_every_service_serves_on_a_read_only_root(
    cli_env: dict[str, str],
    prefix: str,
    kafka_settings: KafkaSettings,
    tiny_model: Path,
    tmp_path: Path,
) -> None:
    if not read_only_root_available():
        pytest.skip("needs `unshare --mount` (root) to make the root filesystem read-only")
    cache = tmp_path / "cache"  # the chart's /cache emptyDir
    env = {
        **cli_env,
        "HOME": str(cache),  # as the chart sets them
        "XDG_CACHE_HOME": str(cache),
        "XDG_CONFIG_HOME": str(cache / "config"),
        "VLLM_NO_USAGE_STATS": "1",
        "ALIGNSTREAM_LOG_JSON": "false",
        "ALIGNSTREAM_VLLM_MODEL": str(tiny_model),
        "ALIGNSTREAM_VLLM_DTYPE": "float32",
        "ALIGNSTREAM_VLLM_ENFORCE_EAGER": "true",
        "ALIGNSTREAM_VLLM_GPU_MEMORY_UTILIZATION": "0.3",
        "ALIGNSTREAM_VLLM_MAX_MODEL_LEN": "1024",
        "ALIGNSTREAM_VLLM_MAX_NUM_SEQS": "8",
        "ALIGNSTREAM_GATEWAY_PORT": "0",
        **{f"ALIGNSTREAM_{name.upper()}_GROUP_ID": f"{prefix}.{name}" for name in SERVICES},
    }
    processes = [ServiceProcess(name, env, tmp_path / f"{name}.log", wrapper=[str(WRAPPER)])
                 for name in SERVICES]  # fmt: skip
    for process in processes:
        process.start()
    try:
        await asyncio.gather(*(p.ready(timeout_s=300) for p in processes))
        rule = sample_rule(rule_id="ro-1", version=1, text="Visitors must sign in at the desk.")
        async with AlignstreamClient(kafka_settings) as client:
            await client.publish_rules([events.RuleUpsert(rule=rule)], wait=True)
            question = events.ChatMessage(role=events.Role.USER, content="Must visitors sign in?")
            short = events.GenerationParams(max_tokens=8)
            request = events.ChatRequest(tenant=rule.tenant, params=short, messages=(question,))
            (response,) = (await client.ask([request], timeout_s=120)).values()
    finally:
        for process in processes:
            process.stop()
    assert response.ok, response.error
    assert response.backend == "vllm-engine"
    assert events.RuleRef(rule_id="ro-1", version=1) in response.grounded_in
    assert any(cache.iterdir())  # the caches went where the chart gives them room
