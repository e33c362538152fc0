"""Preflight checks that load the model leave TensorFlow as the job's correction step wants it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from model.serving import JOB_TF_THREADS
from streaming.composites import CorrectionSettings
from streaming.options import REPO_ROOT


def test_model_check_sizes_tensorflow_pools_for_the_job(tiny_model_dir: Path) -> None:
    # A LOOPBACK worker shares the launcher's process, and TensorFlow keeps the pools of the
    # first load there: the check's load must ask for the threads the correction step asks for.
    assert CorrectionSettings(model_dir=str(tiny_model_dir)).tf_threads == JOB_TF_THREADS
    code = ("from streaming import preflight; from streaming.composites import _LoadedModel; "
            f"preflight.check_model({str(tiny_model_dir)!r}); _LoadedModel({str(tiny_model_dir)!r}, "
            f"{JOB_TF_THREADS}); import tensorflow as tf; "
            "print(tf.config.threading.get_intra_op_parallelism_threads(), "
            "tf.config.threading.get_inter_op_parallelism_threads())")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.split() == [str(JOB_TF_THREADS), str(JOB_TF_THREADS)]
