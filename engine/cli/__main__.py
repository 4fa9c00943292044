"""``python -m engine.cli``: the ``hfd`` command (what torchrun launches for multi-GPU training)."""
import sys

from engine.cli import main

sys.exit(main())
