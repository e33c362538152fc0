"""Field logic: pure functions over catalog records.

Where ``make`` has compiled these modules from exactly the sources here, the
compiled ones are imported in their place (``transforms/native.py``).
"""

from pathlib import Path

from transforms import native

__path__[:0] = native.compiled_path(Path(__file__).resolve().parent)
