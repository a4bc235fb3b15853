"""``python -m kyo_otel`` is the ``kyo-otel`` command."""

import sys

from kyo_otel.cli import main

sys.exit(main())
