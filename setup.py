"""metafix: a streaming job that keeps a music catalog clean.

Installs the ``metafix`` command. Also the ``--setup_file`` that Beam runners
(Flink, Dataflow) use to stage the packages and schemas onto workers; the model
is never packaged: workers read it from the path or URL given with --model-dir.
The harness (``harness/``: local broker, fault scenarios, demo, Flink job-server
builder), ``bench/`` and ``tests/`` are never installed.
"""

from setuptools import find_packages, setup

setup(
    name="metafix",
    version="0.1.0",
    description="Detect and correct malformed music catalog metadata in a Beam streaming job",
    python_requires=">=3.11",
    packages=find_packages(include=["streaming", "transforms", "model", "model.*", "schemas"]),
    package_data={"schemas": ["*.avsc", "registry.json"]},
    install_requires=[
        "tensorflow==2.21.0",
        "tf-keras==2.21.0",
        "tensorflow-transform==1.21.0",
        "kafka-python==3.0.12",
        "confluent-kafka==2.16.1",
        "authlib==1.9.6",
        "httpx2==2.16.2",
        "orjson==3.13.0",
        "fastavro==1.13.1",
        "crc32c==2.9.post0",
        "ftfy==6.3.1",
        "python-stdnum==2.2",
        "python-dateutil==2.9.0.post0",
        "langcodes==3.5.1",
        "language_data==1.4.0",
    ],
    entry_points={"console_scripts": ["metafix=streaming.cli:main"]},
)
