"""The CLI: command dispatch, env fallbacks, exit codes and one-line errors, and whole flows over HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from loader import cli
from loader.config import Options
from tests.loader.fakes import FakeEmbedder
from tests.loader.support import create_index, loader_client, outputs_file, paragraphs, stored, write_corpus


@pytest.fixture(autouse=True)
def _fake_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "make_embedder", lambda model, **kwargs: FakeEmbedder())
    for name in ("LOADER_OUTPUTS_FILE", "LOADER_LOCAL", "LOADER_PRUNE", "LOADER_ENDPOINT_URL", "LOADER_JSON"):
        monkeypatch.delenv(name, raising=False)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- parsing -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "command", "extra"),
    [
        ([], "load", {"dir": "data"}),
        (["docs"], "load", {"dir": "docs"}),
        (["--local"], "load", {"dir": "data", "local": True}),
        (["--local", "docs", "--dry-run"], "load", {"dir": "docs", "local": True, "dry_run": True}),
        (["--local", "query", "cats?"], "query", {"question": "cats?", "local": True}),
        (["--outputs-file", "o.json", "status"], "status", {"outputs_file": "o.json"}),
        (["query", "cats?", "--outputs-file", "o.json", "-k", "3"], "query", {"outputs_file": "o.json", "top_k": 3}),
        (["--outputs-file", "query", "data"], "load", {"outputs_file": "query", "dir": "data"}),
        (["delete", "--source", "a.md"], "delete", {"source": "a.md"}),
        (["load", "--no-prune"], "load", {"prune": False}),
    ],
)
def test_commands_and_the_default_load(argv: list[str], command: str, extra: dict[str, Any]) -> None:
    parsed_command, args, _ = cli.parse(argv)
    assert parsed_command == command
    for name, value in extra.items():
        assert getattr(args, name) == value


def test_flags_fall_back_to_environment_variables_then_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOADER_OUTPUTS_FILE", "env-outputs.json")
    monkeypatch.setenv("LOADER_PRUNE", "no")
    monkeypatch.setenv("LOADER_MAX_IN_FLIGHT", "3")
    _, _, options = cli.parse(["load"])
    assert options.outputs_file == "env-outputs.json" and options.origin("outputs_file") == "env:LOADER_OUTPUTS_FILE"
    assert options.prune is False and options.max_in_flight == 3
    assert options.overlap_tokens == 32 and options.origin("overlap_tokens") == "default"
    _, _, options = cli.parse(["load", "--outputs-file", "flag.json", "--prune"])
    assert options.outputs_file == "flag.json" and options.prune is True and options.origin("prune") == "flag"


def test_region_from_aws_region_is_only_a_weak_fallback() -> None:
    options = Options({"region": None}, environ={"AWS_REGION": "eu-west-3"})
    assert options.region is None
    weak = options.weak_env("region")
    assert weak is not None and weak.value == "eu-west-3"
    assert Options({"region": None}, environ={"LOADER_REGION": "ap-south-1"}).region == "ap-south-1"


def test_invalid_environment_values_are_usage_errors(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOADER_PRUNE", "maybe")
    code, _, err = run_cli(capsys, "load")
    assert code == 2 and "LOADER_PRUNE='maybe'" in err


@pytest.mark.parametrize(
    "argv", [["--help"], ["load", "--help"], ["query", "--help"], ["status", "--help"], ["delete", "--help"]]
)
def test_help_everywhere_with_examples(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, _ = run_cli(capsys, *argv)
    assert code == 0
    assert "example" in out and "python -m loader" in out


def test_help_documents_env_vars_prune_and_scores(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_cli(capsys, "load", "--help")
    assert "LOADER_OUTPUTS_FILE" in out and "AWS_REGION" in out and "--no-prune" in out
    assert "index mirrors DIR" in out
    _, out, _ = run_cli(capsys, "query", "--help")
    assert "1 - distance" in out and "--where" in out


# --- errors --------------------------------------------------------------------------------------
def test_no_outputs_file_says_to_deploy(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "load")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "cdk-outputs.json not found" in err and "npx cdk deploy --outputs-file cdk-outputs.json" in err
    assert "--local" in err


def test_truncated_outputs_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "o.json"
    path.write_text('{"S3VectorsDocSearch": {"VectorBucketName": ')
    code, _, err = run_cli(capsys, "status", "--outputs-file", str(path))
    assert code == 1 and "not valid JSON (truncated?)" in err and err.count("\n") == 1


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "query")[0] == 2  # missing question
    assert run_cli(capsys, "load", "--bogus")[0] == 2
    code, _, err = run_cli(capsys, "query", "x", "--top-k", "0")
    assert code == 2 and "--top-k must be at least 1" in err
    code, _, err = run_cli(capsys, "load", "--batch-size", "0")
    assert code == 2 and "--batch-size" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--filter", '{"category": '], "--filter is not valid JSON"),
        (["--filter", '{"category": {"$like": "p%"}}'], "unknown operator '$like'"),
        (["--where", "nonsense"], "expected KEY=VALUE"),
    ],
)
def test_invalid_filters_fail_before_any_request(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], message: str
) -> None:
    # No outputs file and no endpoint: the filter is rejected before either is needed.
    code, _, err = run_cli(capsys, "query", "cats", "--outputs-file", str(tmp_path / "absent.json"), *args)
    assert code == 2 and message in err and "Traceback" not in err


def test_unreachable_endpoint(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run_cli(
        capsys, "status", "--bucket", "b-1", "--index", "i-1", "--endpoint-url", "http://127.0.0.1:9"
    )
    assert code == 1 and "cannot reach http://127.0.0.1:9" in err


@pytest.fixture
def deployed(s3vectors_endpoint: Any, tmp_path: Path) -> dict[str, Any]:
    """An index on the local endpoint, its outputs file, and a small corpus."""
    client = loader_client(s3vectors_endpoint.endpoint_url)
    target = create_index(client)
    root = write_corpus(
        tmp_path / "docs",
        {
            "travel/pets.md": "---\ncategory: pets\n---\n# Pets\n\n## Cats in the cabin\n\n"
            + paragraphs(3, "cats cabin"),
            "baggage/fees.md": "---\ncategory: baggage\n---\n# Fees\n\n## Extra bags\n\n" + paragraphs(3, "bag fees"),
            "notes.bin": "\x00\x01binary",
        },
    )
    outputs = outputs_file(tmp_path / "cdk-outputs.json", target)
    common = ["--outputs-file", str(outputs), "--endpoint-url", s3vectors_endpoint.endpoint_url]
    return {"client": client, "target": target, "root": root, "common": common}


def test_dimension_mismatch_is_refused(
    capsys: pytest.CaptureFixture[str], s3vectors_endpoint: Any, tmp_path: Path
) -> None:
    client = loader_client(s3vectors_endpoint.endpoint_url)
    target = create_index(client, dimension=768)
    outputs = outputs_file(tmp_path / "o.json", target)
    code, _, err = run_cli(
        capsys,
        "load",
        str(write_corpus(tmp_path / "d", {"a.md": "hi"})),
        "--outputs-file",
        str(outputs),
        "--endpoint-url",
        s3vectors_endpoint.endpoint_url,
    )
    assert code == 1 and "stores 768-dimensional vectors but the model" in err and "-c dimension=384" in err
    assert stored(client, target) == {}


def test_filterable_text_key_is_refused(
    capsys: pytest.CaptureFixture[str], s3vectors_endpoint: Any, tmp_path: Path
) -> None:
    client = loader_client(s3vectors_endpoint.endpoint_url)
    target = create_index(client, non_filterable=())
    outputs = outputs_file(tmp_path / "o.json", target)
    code, _, err = run_cli(
        capsys,
        "load",
        str(write_corpus(tmp_path / "d", {"a.md": "hi"})),
        "--outputs-file",
        str(outputs),
        "--endpoint-url",
        s3vectors_endpoint.endpoint_url,
    )
    assert code == 1 and "'text' (the chunk text) is filterable" in err and "fixed when an index is created" in err
    assert err.count("\n") == 1


def test_filtering_on_the_text_key_is_refused(capsys: pytest.CaptureFixture[str], deployed: dict[str, Any]) -> None:
    code, _, err = run_cli(capsys, "query", "cats", *deployed["common"], "--where", "text=cats")
    assert code == 2 and "'text' is non-filterable" in err


def test_assume_role_without_role_outputs(capsys: pytest.CaptureFixture[str], deployed: dict[str, Any]) -> None:
    code, _, err = run_cli(capsys, "status", *deployed["common"], "--assume-role")
    assert code == 1 and "has no WriterRoleArn output" in err


# --- flows ---------------------------------------------------------------------------------------
def test_load_query_status_delete(capsys: pytest.CaptureFixture[str], deployed: dict[str, Any]) -> None:
    common = deployed["common"]
    code, out, err = run_cli(capsys, "load", str(deployed["root"]), *common, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["documents"] == {"read": 2, "skipped": 1, "new": 2, "changed": 0, "unchanged": 0, "deleted": 0}
    assert report["skipped"][0]["path"] == "notes.bin"
    written = report["chunks"]["written"]
    assert written == report["chunks"]["embedded"] > 0 and report["retries"] == 0

    code, out, _ = run_cli(capsys, str(deployed["root"]), *common, "--json")  # `load` is the default
    again = json.loads(out)
    assert code == 0 and again["chunks"] == {"embedded": 0, "written": 0, "deleted": 0, "stale": 0}
    assert again["documents"]["unchanged"] == 2

    code, out, _ = run_cli(capsys, "query", "cats in the cabin", *common, "--top-k", "2", "--json")
    result = json.loads(out)
    assert code == 0 and [r["rank"] for r in result["results"]] == [1, 2]
    assert result["results"][0]["source"] == "travel/pets.md"
    assert result["results"][0]["score"] == pytest.approx(1 - result["results"][0]["distance"], abs=1e-6)

    code, out, _ = run_cli(capsys, "query", "cats in the cabin", *common, "--where", "category=baggage")
    assert code == 0 and "baggage/fees.md" in out and "travel/pets.md" not in out

    code, out, _ = run_cli(capsys, "status", *common, "--json")
    status = json.loads(out)
    assert code == 0 and status["vectors"] == written and status["index"]["dimension"] == 384
    assert status["index"]["non_filterable_metadata_keys"] == ["text"]
    assert "cdk-outputs.json" in status["target"]["origin"]

    code, out, _ = run_cli(capsys, "delete", "--source", "travel/pets.md", *common)
    assert code == 0 and out.startswith("Deleted ")
    code, _, err = run_cli(capsys, "delete", "--source", "travel/pets.md", *common)
    assert code == 1 and "no vectors with source 'travel/pets.md'" in err


def test_human_summary_and_dry_run(capsys: pytest.CaptureFixture[str], deployed: dict[str, Any]) -> None:
    code, out, err = run_cli(capsys, "load", str(deployed["root"]), *deployed["common"], "--dry-run")
    assert code == 0 and out.startswith("Dry run: nothing was embedded")
    assert "new      travel/pets.md" in out and "skipped  notes.bin: unsupported type" in out
    assert stored(deployed["client"], deployed["target"]) == {}
    code, out, err = run_cli(capsys, "load", str(deployed["root"]), *deployed["common"], "--quiet")
    assert code == 0 and "Chunks: " in out and "chunks/s" in out and err == ""


def test_strict_mode_fails_on_an_unreadable_file(capsys: pytest.CaptureFixture[str], deployed: dict[str, Any]) -> None:
    code, _, err = run_cli(capsys, "load", str(deployed["root"]), *deployed["common"], "--strict")
    assert code == 1 and "notes.bin" in err and "Traceback" not in err
    assert stored(deployed["client"], deployed["target"]) == {}


def test_missing_folder(capsys: pytest.CaptureFixture[str], deployed: dict[str, Any], tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "load", str(tmp_path / "nope"), *deployed["common"])
    assert code == 1 and "document folder" in err and "not found" in err


MINIMAL_TEMPLATE = {
    "Resources": {
        "Bucket": {"Type": "AWS::S3Vectors::VectorBucket", "Properties": {"VectorBucketName": "local-docs"}},
        "Index": {
            "Type": "AWS::S3Vectors::Index",
            "Properties": {
                "IndexName": "local-index",
                "DataType": "float32",
                "Dimension": 384,
                "DistanceMetric": "cosine",
                "MetadataConfiguration": {"NonFilterableMetadataKeys": ["text"]},
                "VectorBucketArn": {"Fn::GetAtt": ["Bucket", "VectorBucketArn"]},
            },
        },
    },
    "Outputs": {
        "VectorBucketName": {"Value": "local-docs"},
        "IndexName": {"Value": "local-index"},
        "Region": {"Value": {"Ref": "AWS::Region"}},
    },
}


def test_local_provisions_from_the_template_and_never_touches_cdk_outputs_json(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from s3vectors_local.process import stop_server

    # The detached server runs `python -m s3vectors_local`: keep the repository importable from tmp_path.
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
    monkeypatch.chdir(tmp_path)
    local_dir = tmp_path / ".local-s3vectors"
    monkeypatch.setenv("LOADER_LOCAL_DIR", str(local_dir))
    monkeypatch.setenv("LOADER_TEMPLATE", str(tmp_path / "cdk.out" / "S3VectorsDocSearch.template.json"))
    write_corpus(tmp_path / "data", {"a.md": paragraphs(3, "alpha"), "b.md": paragraphs(2, "beta")})
    try:
        code, _, err = run_cli(capsys, "--local")
        assert code == 1 and "run `npx cdk synth`" in err

        (tmp_path / "cdk.out").mkdir()
        (tmp_path / "cdk.out" / "S3VectorsDocSearch.template.json").write_text(json.dumps(MINIMAL_TEMPLATE))
        code, out, err = run_cli(capsys, "--local", "--json")
        assert code == 0, err
        assert json.loads(out)["documents"]["new"] == 2
        local_outputs = json.loads((local_dir / "cdk-outputs.json").read_text())
        assert local_outputs["S3VectorsDocSearch"]["IndexName"] == "local-index"
        assert not (tmp_path / "cdk-outputs.json").exists()

        code, out, _ = run_cli(capsys, "--local", "--json")  # reuses the running endpoint and its index
        assert code == 0 and json.loads(out)["documents"]["unchanged"] == 2

        # Nothing changed (template, outputs, index): a re-run does not provision again.
        with monkeypatch.context() as m:
            m.setattr("s3vectors_local.provisioning.provision", _not_called)
            code, out, err = run_cli(capsys, "--local", "--json")
            assert code == 0, err
            assert json.loads(out)["documents"]["unchanged"] == 2
        # An index deleted behind the loader's back is provisioned again (and everything re-loaded).
        from s3vectors_local.process import read_endpoint

        info = read_endpoint(local_dir)
        assert info is not None
        client = loader_client(info["endpoint_url"])
        client.delete_index(vectorBucketName="local-docs", indexName="local-index")
        code, out, err = run_cli(capsys, "--local", "--json")
        assert code == 0, err
        assert json.loads(out)["documents"]["new"] == 2
        # So is a deleted outputs file (rewritten).
        (local_dir / "cdk-outputs.json").unlink()
        code, out, err = run_cli(capsys, "--local", "--json")
        assert code == 0 and json.loads(out)["documents"]["unchanged"] == 2
        assert (local_dir / "cdk-outputs.json").is_file()
        code, out, _ = run_cli(capsys, "--local", "query", "alpha rules")
        assert code == 0 and out.startswith("1. a.md#")

        # A re-synthesized template takes effect, as `cdk deploy` would make it: here, a renamed index.
        renamed = json.loads(json.dumps(MINIMAL_TEMPLATE).replace("local-index", "local-index-2"))
        (tmp_path / "cdk.out" / "S3VectorsDocSearch.template.json").write_text(json.dumps(renamed))
        code, out, err = run_cli(capsys, "--local", "--json")
        assert code == 0, err
        assert json.loads(out)["documents"]["new"] == 2
        local_outputs = json.loads((local_dir / "cdk-outputs.json").read_text())
        assert local_outputs["S3VectorsDocSearch"]["IndexName"] == "local-index-2"
    finally:
        stop_server(local_dir)


def _not_called(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("provisioned again although nothing changed")


def test_assume_role_uses_the_writer_role_to_load_and_the_reader_role_to_query(
    capsys: pytest.CaptureFixture[str], deployed: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import boto3

    from loader import client as clients

    assumed: list[tuple[str, str]] = []

    def fake_assume_role(session: Any, role_arn: str, *, purpose: str) -> Any:
        assumed.append((role_arn, purpose))
        return boto3.Session(
            aws_access_key_id="temp",
            aws_secret_access_key="temp",
            aws_session_token="t",
            region_name=session.region_name,
        )

    monkeypatch.setattr(clients, "assume_role", fake_assume_role)
    roles = {
        "WriterRoleArn": "arn:aws:iam::111122223333:role/Writer",
        "ReaderRoleArn": "arn:aws:iam::111122223333:role/Reader",
    }
    outputs = outputs_file(tmp_path / "roles.json", deployed["target"], **roles)
    common = ["--outputs-file", str(outputs), "--endpoint-url", deployed["common"][-1], "--assume-role"]
    assert run_cli(capsys, "load", str(deployed["root"]), *common)[0] == 0
    assert run_cli(capsys, "query", "cats", *common)[0] == 0
    assert assumed == [(roles["WriterRoleArn"], "writer"), (roles["ReaderRoleArn"], "reader")]


def test_assume_role_calls_sts_and_returns_a_session_with_the_temporary_credentials() -> None:
    import datetime as dt

    import boto3
    from botocore.stub import Stubber

    from loader.client import assume_role

    session = boto3.Session(region_name="eu-west-1")
    sts = session.client("sts")
    stubber = Stubber(sts)
    stubber.add_response(
        "assume_role",
        {
            "Credentials": {
                "AccessKeyId": "ASIATEMPORARYKEY01",
                "SecretAccessKey": "secret",
                "SessionToken": "token",
                "Expiration": dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
            }
        },
        {"RoleArn": "arn:aws:iam::111122223333:role/Writer", "RoleSessionName": "s3vectors-loader-writer"},
    )
    stubber.activate()

    class OneClientSession:
        region_name = "eu-west-1"

        def client(self, name: str, **kwargs: Any) -> Any:
            assert name == "sts"
            return sts

    writer = "arn:aws:iam::111122223333:role/Writer"
    assumed = assume_role(OneClientSession(), writer, purpose="writer")
    credentials = assumed.get_credentials()
    assert credentials is not None and credentials.access_key == "ASIATEMPORARYKEY01" and credentials.token == "token"
    assert assumed.region_name == "eu-west-1"
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize("tokens", ["8", "300"])
def test_chunk_tokens_outside_the_model_window_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], deployed: dict[str, Any], tokens: str
) -> None:
    code, _, err = run_cli(capsys, *deployed["common"], "load", str(deployed["root"]), "--chunk-tokens", tokens)
    assert code == 2 and "--chunk-tokens must be from 16 to 256" in err  # FakeEmbedder: 256-token window
    assert stored(deployed["client"], deployed["target"]) == {}


@pytest.mark.parametrize("text", ['{"chunk": NaN}', '{"chunk": {"$gt": Infinity}}', '{"chunk": {"$lt": 1e400}}'])
def test_non_finite_numbers_in_filters_are_refused(capsys: pytest.CaptureFixture[str], text: str) -> None:
    code, _, err = run_cli(capsys, "query", "cats?", "--filter", text)
    assert code == 2 and "error" in err


def test_a_loopback_endpoint_needs_no_real_credentials(
    capsys: pytest.CaptureFixture[str], deployed: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    code, out, err = run_cli(capsys, *deployed["common"], "--json", "load", str(deployed["root"]))
    assert code == 0, err
    assert json.loads(out)["documents"]["new"] == 2


def test_local_defaults_are_relative_to_the_project_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from loader.local import project_path

    (tmp_path / "cdk.json").write_text("{}")
    (tmp_path / "docs" / "deep").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "docs" / "deep")
    assert project_path(".local-s3vectors", explicit=False) == tmp_path / ".local-s3vectors"
    assert project_path("mine", explicit=True) == Path("mine")


def test_plan_command(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run_cli(capsys, "plan", "--docs", "1000", "--avg-words", "500", "--target-hours", "1", "--json")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["corpus"]["documents"] == 1000
    code, out, _ = run_cli(capsys, "plan", "--docs", "1000", "--avg-words", "500")
    assert code == 0 and "per million queries" in out
    root = write_corpus(tmp_path / "docs", {"a.md": paragraphs(3, "alpha")})
    code, out, err = run_cli(capsys, "plan", str(root), "--json")
    assert code == 0, err
    assert json.loads(out)["corpus"]["documents"] == 1
    for argv in (["plan"], ["plan", str(root), "--docs", "3"], ["plan", "--docs", "3"]):
        code, _, err = run_cli(capsys, *argv)
        assert code == 2 and "error" in err


# --- sessions (loader.client): botocore sessions that behave as boto3's ------------------------------
@pytest.fixture
def aws_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Only these AWS config and credentials files: no credentials in the environment, no instance metadata."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_DATA_PATH",
    ):
        monkeypatch.delenv(name, raising=False)
    config, credentials = tmp_path / "aws-config", tmp_path / "aws-credentials"
    config.write_text("[default]\nregion = eu-north-1\n\n[profile dev]\nregion = eu-west-2\n")
    credentials.write_text("[dev]\naws_access_key_id = AKIADEVEXAMPLE\naws_secret_access_key = dev-secret\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return tmp_path


def _key(session: Any) -> str | None:
    credentials = session.get_credentials()
    return None if credentials is None else credentials.access_key


def test_sessions_resolve_profiles_regions_and_credentials_as_boto3_does(
    aws_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    from loader.client import make_session

    cases: list[dict[str, Any]] = [
        {"region": None, "profile": None},
        {"region": None, "profile": "dev"},
        {"region": "ap-south-1", "profile": "dev"},
        {"region": "us-west-2", "profile": None},
    ]
    for case in cases:
        ours = make_session(**case)
        theirs = boto3.Session(region_name=case["region"], profile_name=case["profile"])
        assert (ours.region_name, _key(ours), ours.profile_name) == (
            theirs.region_name,
            _key(theirs),
            theirs.profile_name,
        ), case
    assert make_session(region=None, profile="dev").region_name == "eu-west-2"
    assert _key(make_session(region=None, profile="dev")) == "AKIADEVEXAMPLE"
    monkeypatch.setenv("AWS_PROFILE", "dev")  # read by botocore itself, as through boto3
    assert _key(make_session(region=None)) == "AKIADEVEXAMPLE"
    monkeypatch.delenv("AWS_PROFILE")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENVEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    assert _key(make_session(region=None, local=True)) == "AKIAENVEXAMPLE"  # real credentials win over dummy ones


def test_local_sessions_get_dummy_credentials_only_when_there_are_none(aws_config: Path) -> None:
    from loader.client import make_session, s3vectors_client

    assert _key(make_session(region=None)) is None
    local = make_session(region=None, local=True)
    assert _key(local) == "local" and local.region_name == "us-east-1"
    assert make_session(region="eu-west-3", local=True).region_name == "eu-west-3"
    client = s3vectors_client(local, endpoint_url="http://127.0.0.1:9")
    assert client.meta.region_name == "us-east-1" and client.meta.endpoint_url == "http://127.0.0.1:9"


def test_an_unknown_profile_is_a_one_line_error(capsys: pytest.CaptureFixture[str], aws_config: Path) -> None:
    from loader.client import make_session
    from loader.errors import LoaderError

    with pytest.raises(LoaderError, match="nope"):
        make_session(region="us-east-1", profile="nope")
    code, _, err = run_cli(capsys, "status", "--bucket", "b-1", "--index", "i-1", "--profile", "nope")
    assert code == 1 and "The config profile (nope) could not be found" in err and err.count("\n") == 1


def test_clients_take_a_boto3_session_too(aws_config: Path) -> None:
    import boto3

    from loader.client import cloudformation_client, s3_client, s3vectors_client

    session = boto3.Session(region_name="eu-west-1", aws_access_key_id="k", aws_secret_access_key="s")
    assert s3vectors_client(session, endpoint_url=None).meta.region_name == "eu-west-1"
    assert s3_client(session).meta.service_model.service_name == "s3"
    assert cloudformation_client(session).meta.region_name == "eu-west-1"


def test_model_files_parse_to_the_same_data_in_the_same_order() -> None:
    import botocore.loaders

    from loader.client import _JSONFileLoader

    ours = botocore.loaders.Loader(file_loader=_JSONFileLoader())
    theirs = botocore.loaders.Loader()

    def ordered(value: Any) -> Any:  # dict equality ignores order; compare the key order too
        if isinstance(value, dict):
            return [(k, ordered(v)) for k, v in value.items()]
        if isinstance(value, list):
            return [ordered(v) for v in value]
        return value

    for name in ("endpoints", "partitions", "sdk-default-configuration", "_retry"):
        assert ordered(ours.load_data(name)) == ordered(theirs.load_data(name)), name
    for kind in ("service-2", "endpoint-rule-set-1", "paginators-1"):
        assert ordered(ours.load_service_model("s3vectors", kind)) == ordered(
            theirs.load_service_model("s3vectors", kind)
        ), kind


def test_a_load_imports_neither_boto3_nor_the_endpoint_server() -> None:
    """boto3 (s3transfer) and the local endpoint's server modules cost ~0.1-0.2 s per run; a load needs neither."""
    import subprocess
    import sys

    code = (
        "import sys; from loader import cli, client, local, sync; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 's3transfer', 'werkzeug')))"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_an_in_process_command_leaves_the_garbage_collector_as_it_found_it(
    capsys: pytest.CaptureFixture[str], deployed: dict[str, Any]
) -> None:
    import gc

    assert gc.isenabled() and gc.get_freeze_count() == 0
    code, _, err = run_cli(capsys, "load", str(deployed["root"]), *deployed["common"])
    assert code == 0, err
    assert gc.isenabled() and gc.get_freeze_count() == 0  # start-up objects frozen for the run only
    code, _, _ = run_cli(capsys, "status", "--bucket", "b-1", "--index", "i-1", "--endpoint-url", "http://127.0.0.1:9")
    assert code == 1 and gc.isenabled() and gc.get_freeze_count() == 0
