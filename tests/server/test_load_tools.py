"""grpcurl and ghz, as platform teams run them: through reflection, or a descriptor set."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from go_tools import go_tool
from mlsdm_testkit import ServerThread, console_script, server_process

GHZ_CALLS = 200


def _run(*args: str, timeout: float = 120) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{args[0]} exited {done.returncode}:\n{done.stderr}{done.stdout}"
    return done.stdout


def test_grpcurl_describes_a_method_through_reflection(server: ServerThread) -> None:
    grpcurl = go_tool("grpcurl")
    out = _run(
        grpcurl, "-plaintext", server.address, "describe", "mlsdm.v1.CognitiveService.GetState"
    )
    assert "mlsdm.v1.CognitiveService.GetState is a method" in out
    assert (
        "rpc GetState ( .mlsdm.v1.GetStateRequest ) returns ( .mlsdm.v1.GetStateResponse )" in out
    )
    # The comments travel with the descriptors.
    assert "Needs the `read` role" in out
    # Describing everything resolves every listed service, the reflection ones too.
    everything = _run(grpcurl, "-plaintext", server.address, "describe")
    for service in ("grpc.reflection.v1.ServerReflection", "mlsdm.v1.AdminService"):
        assert f"{service} is a service" in everything


def test_grpcurl_prints_the_error_details(server: ServerThread) -> None:
    done = subprocess.run(
        [
            go_tool("grpcurl"),
            "-plaintext",
            "-d",
            '{"vector": [0.5, 0.5], "moral_value": 0.9}',
            server.address,
            "mlsdm.v1.CognitiveService/ProcessEvent",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    # Reflection serves google.rpc's error details, so they are decoded, not raw bytes.
    assert "is not recognized" not in done.stderr, done.stderr
    assert '"reason": "DIMENSION_MISMATCH"' in done.stderr, done.stderr


def _ghz(*args: str) -> dict[str, object]:
    report = json.loads(_run(go_tool("ghz"), "--format", "json", "--timeout", "20s", *args))
    assert isinstance(report, dict)
    return report


def test_ghz_through_reflection(server: ServerThread) -> None:
    report = _ghz(
        "--insecure",
        "--call",
        "mlsdm.v1.CognitiveService.GetState",
        "--metadata",
        '{"x-mlsdm-tenant": "ghz-reflection"}',
        "-n",
        str(GHZ_CALLS),
        "-c",
        "4",
        server.address,
    )
    assert report["count"] == GHZ_CALLS
    assert report["statusCodeDistribution"] == {"OK": GHZ_CALLS}, report.get("errorDistribution")


def test_ghz_with_the_shipped_descriptor_set(tmp_path: Path) -> None:
    protoset = tmp_path / "mlsdm.protoset"
    with protoset.open("wb") as sink:
        subprocess.run([*console_script(), "protoset"], stdout=sink, check=True, timeout=120)
    # Reflection off: only the descriptor set can describe the calls.
    with server_process("server.reflection=false") as proc:
        report = _ghz(
            "--insecure",
            "--protoset",
            str(protoset),
            "--call",
            "mlsdm.v1.CognitiveService.Generate",
            "--data",
            '{"prompt": "What grows by the south wall?", "moral_value": 0.9}',
            "--metadata",
            '{"x-mlsdm-tenant": "ghz-protoset"}',
            "-n",
            "20",
            "-c",
            "2",
            proc.address,
        )
        assert report["statusCodeDistribution"] == {"OK": 20}, report.get("errorDistribution")
        assert proc.terminate() == 0
