"""Version of the pipeline code, written into every output and dead letter."""

PIPELINE_VERSION = "0.1.0"
