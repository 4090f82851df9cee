"""``python -m bench``: run every scenario and write ``bench/results/latest.{json,md}``."""

from bench.cli import main

raise SystemExit(main())
