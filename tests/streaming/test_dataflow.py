"""The Dataflow job, described offline: DataflowRunner's dry run on the streaming graph.

With ``--dry_run=True`` DataflowRunner translates the pipeline as for a submission (Runner
v2's portable pipeline, the worker environment with its staged files, the job type and
options) and returns before it creates an API client, so nothing reaches Google Cloud and
no credentials are needed. The options come through dataflow/launch.py, the Flex
Template's entry point, spelled as the template's parameters.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.internal import pickler
from apache_beam.options.pipeline_options import DebugOptions, GoogleCloudOptions, SetupOptions
from apache_beam.portability import common_urns
from apache_beam.portability.api import beam_runner_api_pb2
from apache_beam.runners.dataflow.internal import apiclient

from dataflow import launch
from streaming.kafka_clients import KafkaSecurity
from streaming.options import REPO_ROOT, MetafixOptions, stream_config
from streaming.pipeline import build_pipeline

PASSWORD_SECRET = "projects/dummy/secrets/kafka-password/versions/latest"
DATAFLOW_OPTIONS = [
    "--runner=DataflowRunner",
    "--dry_run=True",
    "--project=dummy",
    "--region=us-central1",
    "--temp_location=gs://dummy/tmp",
    f"--setup_file={REPO_ROOT / 'setup.py'}",
    "--job_name=metafix-stream",
]
TEMPLATE_PARAMETERS = [
    "--bootstrap_servers=broker-1:9092,broker-2:9092",
    "--input_topic=catalog.updates",
    "--output_topic=catalog.corrected",
    "--dead_letter_topic=catalog.dead-letters",
    "--review_topic=catalog.review",
    "--audit_topic=catalog.audit",
    "--model_dir=gs://dummy/metafix/model/export",
    "--group_id=metafix-prod",
    "--batch_size=256",
    "--security_protocol=SASL_SSL",
    "--sasl_mechanism=PLAIN",
    "--sasl_plain_username=metafix",
    f"--sasl_plain_password_secret={PASSWORD_SECRET}",
]

# Dataflow's --update matches the running job's steps by name: renaming one of these needs
# a --transform_name_mapping entry (README, Deploying).
KEY_STEPS = {
    "ReadEvents", "ReadEvents/ReadPartitions",
    "CorrectCatalog", "CorrectCatalog/DecodeEvents", "CorrectCatalog/ScoreAndCorrect",
    "EncodeOutputs", "WriteOutputs",
}
LABEL = re.compile(r"^[A-Z][A-Za-z0-9]*$")


@pytest.fixture(scope="module")
def job() -> apiclient.Job:
    options = launch.pipeline_options([*DATAFLOW_OPTIONS, *TEMPLATE_PARAMETERS])
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, stream_config(options))
    return pipeline.run().job


def test_the_job_is_a_streaming_runner_v2_job(job: apiclient.Job) -> None:
    assert job.proto.type_ == apiclient.dataflow.JobType.JOB_TYPE_STREAMING
    assert job.proto.name == "metafix-stream"
    experiments = set(job.options.view_as(DebugOptions).experiments)
    assert {"use_runner_v2", "enable_streaming_engine"} <= experiments
    pcollections = job.proto_pipeline.components.pcollections.values()
    assert any(pc.is_bounded == beam_runner_api_pb2.IsBounded.UNBOUNDED for pc in pcollections)
    cloud = job.options.view_as(GoogleCloudOptions)
    assert (cloud.project, cloud.region) == ("dummy", "us-central1")


def test_steps_have_stable_explicit_labels(job: apiclient.Job) -> None:
    names = {t.unique_name for t in job.proto_pipeline.components.transforms.values()}
    assert KEY_STEPS <= names
    # The steps and their parts carry CamelCase labels, never ones Beam derives from code.
    ours = [n for n in names if n.count("/") <= 1 and not n.startswith("ref_")]
    assert [n for n in ours if not all(LABEL.match(part) for part in n.split("/"))] == []


def test_template_parameters_reach_the_job_as_metafix_options(job: apiclient.Job) -> None:
    config = stream_config(job.options)
    assert config.kafka.bootstrap_servers == "broker-1:9092,broker-2:9092"
    assert (config.input_topic, config.output_topic, config.dead_letter_topic) == (
        "catalog.updates", "catalog.corrected", "catalog.dead-letters")
    assert (config.review_topic, config.audit_topic) == ("catalog.review", "catalog.audit")
    assert config.model_dir == "gs://dummy/metafix/model/export"
    assert (config.group_id, config.batch_size) == ("metafix-prod", 256)


def test_every_template_parameter_is_a_metafix_flag() -> None:
    names = launch.parameter_names()
    assert len(set(names)) == len(names)
    known = MetafixOptions([]).get_all_options(retain_unknown_options=False)
    for name in names:
        # The parameter, passed as Beam passes template parameters, sets exactly that option.
        value = "gs://b/x" if name in ("model_dir", "archive_dir") else "1"
        parsed = MetafixOptions([f"--{name}={value}"])
        assert name in known and getattr(parsed, name) in (value, 1, 1.0), name


def test_template_requires_what_the_stream_requires_and_accepts_real_values() -> None:
    parameters = json.loads(launch.METADATA_FILE.read_text(encoding="utf-8"))["parameters"]
    required = {p["name"] for p in parameters if not p.get("isOptional", False)}
    assert required == {"bootstrap_servers", "input_topic", "output_topic", "dead_letter_topic", "model_dir"}
    values = dict(arg[2:].split("=", 1) for arg in TEMPLATE_PARAMETERS)
    for p in parameters:
        if p["name"] in values:
            assert all(re.fullmatch(rx, values[p["name"]]) for rx in p.get("regexes", [])), p["name"]


def test_workers_get_the_package_with_its_schemas_and_never_the_model(job: apiclient.Job, tmp_path: Path) -> None:
    assert job.options.view_as(SetupOptions).setup_file == str(REPO_ROOT / "setup.py")
    (environment,) = job.proto_pipeline.components.environments.values()
    image = beam_runner_api_pb2.DockerPayload.FromString(environment.payload).container_image
    assert image.endswith(f"beam_python{sys.version_info.major}.{sys.version_info.minor}_sdk:{beam.__version__}")
    staged = {}
    for dependency in environment.dependencies:
        role = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(dependency.role_payload)
        staged[role.staged_name] = beam_runner_api_pb2.ArtifactFilePayload.FromString(dependency.type_payload).path
    sdist = Path(staged["workflow.tar.gz"])

    with tarfile.open(sdist) as archive:
        in_sdist = {Path(*Path(name).parts[1:]).as_posix() for name in archive.getnames()}
    schemas = {p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "schemas").glob("*.avsc")}
    assert schemas and schemas <= in_sdist
    assert {"streaming/pipeline.py", "streaming/composites.py", "model/serving.py"} <= in_sdist
    assert not [n for n in in_sdist if n.startswith("model/export") or n.endswith((".pb", "LATEST"))]

    # Workers pip-install the sdist: the wheel it builds carries the schemas as package data.
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(sdist)],
        capture_output=True, text=True,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = tmp_path.glob("metafix-*.whl")
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    assert schemas | {"schemas/registry.json"} <= in_wheel
    assert not [n for n in in_wheel if n.endswith((".pb", "LATEST"))]


def kafka_securities(job: apiclient.Job) -> list[KafkaSecurity]:
    """The Kafka settings the workers unpickle: those of every step that makes a Kafka client."""
    found = []
    for transform in job.proto_pipeline.components.transforms.values():
        if transform.spec.urn != common_urns.primitives.PAR_DO.urn:
            continue
        payload = beam_runner_api_pb2.ParDoPayload.FromString(transform.spec.payload)
        fn = pickler.loads(payload.do_fn.payload)[0]
        config = getattr(fn, "_config", None)
        if isinstance(getattr(config, "security", None), KafkaSecurity):
            found.append(config.security)
    return found


def test_the_sasl_password_reaches_the_workers_as_a_secret_name_only(job: apiclient.Job) -> None:
    securities = kafka_securities(job)
    # The partition lister, the partition reader and the writer.
    assert len(securities) >= 3
    for security in securities:
        assert security.security_protocol == "SASL_SSL" and security.sasl_plain_username == "metafix"
        # No password travels: each worker reads the secret when its setup() makes a client.
        assert security.sasl_plain_password is None
        assert security.sasl_plain_password_secret == PASSWORD_SECRET
    assert stream_config(job.options).kafka.security.sasl_plain_password_secret == PASSWORD_SECRET
