"""`python -m loader plan s3://...`: an S3 prefix listed in full, a sample read (moto's in-process S3)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from loader import cli
from loader.errors import LoaderError
from loader.plan import CorpusScan, _reservoir, format_plan, plan_scan, scan_directory, scan_s3
from loader.s3_source import parse_s3_uri

BUCKET = "corpus"
RATES: dict[str, Any] = {"embed_rate_cpu": 10.0, "embed_rate_gpu": 1_000.0}
# What a folder scan counts; an S3 scan adds how much it listed and read.
COUNTS = [f.name for f in fields(CorpusScan) if f.default is MISSING]

FILES: dict[str, bytes] = {
    "travel/pets.md": b"---\ntitle: Pets\ncategory: pets\n---\n# Pets\n\n" + b"Cats travel in the cabin. " * 150,
    "baggage/fees.txt": b"Baggage fees\n\n" + b"A second bag costs 60 EUR on every route. " * 40,
    "refunds.html": b"<html><head><title>Refunds</title></head><body><p>Refunds take a week.</p></body></html>",
    "empty.md": b"",
    "image.png": b"\x89PNG\r\n\x1a\n",
    ".hidden.md": b"# Hidden\n\nnot a document\n",
    "drafts/.old/notes.md": b"# Old\n\nnot a document either\n",
}
OUTSIDE = {"docs/folder/": b"", "docs-old/stale.md": b"# Not under the prefix\n\ntext\n"}


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "LOADER_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    for name in ("LOADER_REGION", "LOADER_PROFILE", "LOADER_JSON"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never wait on instance metadata


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def _put(client: Any, prefix: str, files: dict[str, bytes]) -> None:
    for name, body in files.items():
        client.put_object(Bucket=BUCKET, Key=prefix + name, Body=body)


def _folder(root: Path, files: dict[str, bytes]) -> Path:
    for name, body in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return root


@pytest.fixture
def same_corpus(s3: Any, tmp_path: Path) -> tuple[Any, Path]:
    """The same files in a folder and under s3://corpus/docs/ (plus keys a load would not read)."""
    _put(s3, "docs/", FILES)
    _put(s3, "", OUTSIDE)
    return s3, _folder(tmp_path / "docs", FILES)


def _generated(n: int, seed: int = 7) -> dict[str, bytes]:
    """``n`` similar documents: a few sections of 60-200 words each, from one vocabulary."""
    rng = random.Random(seed)
    vocabulary = ["passenger", "bag", "cabin", "ticket", "refund", "seat", "airport", "delay", "fare", "gate"]
    docs = {}
    for i in range(n):
        sections = [
            f"## Section {j}\n\n" + " ".join(rng.choice(vocabulary) for _ in range(rng.randint(60, 200)))
            for j in range(rng.randint(2, 5))
        ]
        docs[f"topic-{i % 7}/doc-{i:04}.md"] = f"# Document {i}\n\n".encode() + "\n\n".join(sections).encode()
    return docs


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _without_scan(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "scan"}


# --- a prefix read in full is counted exactly like the same folder -----------------------------------


@pytest.mark.parametrize("sample", [0, 3, 1_000])
def test_a_prefix_read_in_full_plans_like_the_same_folder(same_corpus: tuple[Any, Path], sample: int) -> None:
    s3, folder = same_corpus
    local = scan_directory(folder)
    remote = scan_s3(parse_s3_uri(f"s3://{BUCKET}/docs"), s3, sample=sample)
    assert {n: getattr(remote, n) for n in COUNTS} == {n: getattr(local, n) for n in COUNTS}
    assert (local.documents, local.skipped) == (3, 2)  # empty.md and image.png; hidden files are not listed
    assert not remote.sampled
    assert (remote.objects_listed, remote.objects_read) == (5, 3)  # empty.md and image.png were never downloaded
    assert remote.bytes_listed == sum(len(b) for n, b in FILES.items() if "/." not in n and not n.startswith("."))
    assert _without_scan(plan_scan(remote, **RATES).to_dict()) == _without_scan(plan_scan(local, **RATES).to_dict())
    text = format_plan(plan_scan(remote, **RATES))
    assert "(counted by the chunker)" in text and "read in full           5 objects" in text


# --- a sample of a large prefix is extrapolated ------------------------------------------------------


def test_a_sample_estimates_a_homogeneous_corpus(s3: Any) -> None:
    _put(s3, "big/", _generated(300))
    _put(s3, "big/", {f"scans/page-{i}.png": b"\x89PNG\r\n\x1a\n" for i in range(10)})
    location = parse_s3_uri(f"s3://{BUCKET}/big/")
    exact = scan_s3(location, s3, sample=0)
    estimate = scan_s3(location, s3, sample=50)
    assert (exact.documents, exact.skipped, exact.objects_read, exact.sampled) == (300, 10, 300, False)
    assert estimate.sampled and (estimate.objects_listed, estimate.objects_read) == (310, 50)
    assert (estimate.documents, estimate.skipped) == (300, 10)  # by object count (the .png ones: listed, not read)
    assert estimate.bytes_listed == exact.bytes_listed and estimate.bytes_read is not None
    assert estimate.bytes_read < exact.bytes_read  # type: ignore[operator]
    for name in ("chunks", "words", "tokens", "chunk_tokens", "text_bytes", "filterable_metadata_bytes", "key_bytes"):
        assert getattr(estimate, name) == pytest.approx(getattr(exact, name), rel=0.15), name
    assert scan_s3(location, s3, sample=50) == estimate  # seeded: the same listing, the same sample
    result = plan_scan(estimate, **RATES)
    assert result.corpus.chunks_measured and result.to_dict()["scan"]["sampled"] is True
    text = format_plan(result)
    assert "(counted in a sample, extrapolated)" in text
    assert "estimated from a sample of 50 of 310 objects" in text


def test_reservoir_is_a_bounded_uniform_sample() -> None:
    sample = _reservoir(iter(range(20_000)), 200, random.Random(1))
    assert len(sample) == len(set(sample)) == 200
    assert sum(sample) / 200 == pytest.approx(10_000, rel=0.1)  # not just the first 200
    assert _reservoir(range(5), 200, random.Random(1)) == [0, 1, 2, 3, 4]


class _DeniedReads:
    """A client that may list the prefix but not read its objects (GetObject: AccessDenied)."""

    def get_paginator(self, name: str) -> Any:
        class Paginator:
            def paginate(self, **kwargs: Any) -> list[dict[str, Any]]:
                return [{"Contents": [{"Key": "docs/a.md", "Size": 10}, {"Key": "docs/b.txt", "Size": 20}]}]

        return Paginator()

    def get_object(self, **kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject")


def test_reads_all_denied_is_an_error_not_an_empty_corpus() -> None:
    with pytest.raises(LoaderError, match="s3:GetObject"):
        scan_s3(parse_s3_uri("s3://corpus/docs/"), _DeniedReads())


# --- the command line -------------------------------------------------------------------------------


def test_cli_plans_a_prefix_as_json(same_corpus: tuple[Any, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _, folder = same_corpus
    code, out, err = _run(capsys, "plan", f"s3://{BUCKET}/docs/", "--json")
    assert code == 0, err
    remote = json.loads(out)
    assert remote["scan"]["objects_listed"] == 5 and remote["scan"]["objects_read"] == 3
    assert remote["scan"]["sampled"] is False and remote["corpus"]["chunks_measured"] is True
    code, out, err = _run(capsys, "plan", str(folder), "--json")
    assert code == 0, err
    local = json.loads(out)
    assert local["scan"]["objects_listed"] is None
    assert _without_scan(remote) == _without_scan(local)

    code, out, err = _run(capsys, "--region", "us-east-1", "plan", f"s3://{BUCKET}/docs/", "--sample", "2")
    assert code == 0, err
    assert "estimated from a sample of 2 of 5 objects" in out and "counted in a sample, extrapolated" in out
    code, out, err = _run(capsys, "plan", f"s3://{BUCKET}/docs/", "--sample", "all", "--json", "--region", "us-east-1")
    assert code == 0, err
    assert json.loads(out)["scan"]["objects_read"] == 3


def test_cli_missing_bucket_is_one_line(s3: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "plan", "s3://no-such-bucket/docs/")
    assert code == 1 and out == ""
    assert err.count("\n") == 1
    assert err.startswith("error: cannot list s3://no-such-bucket/docs/: no such bucket")


def test_cli_without_credentials_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    code, _, err = _run(capsys, "plan", f"s3://{BUCKET}/docs/")
    assert code == 1 and err.count("\n") == 1
    assert "no AWS credentials found" in err and "--profile" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["plan", "s3://corpus/docs/", "--sample", "-1"],
        ["plan", "s3://corpus/docs/", "--sample", "some"],
        ["plan", "data", "--sample", "10"],  # a folder is always read in full
        ["plan", "s3:///docs/"],
    ],
)
def test_cli_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, *argv)
    assert code == 2 and "error" in err
