"""Benchmarks of pika-tasks against the bundled emulator, on loopback.

Every scenario runs the same work in several ways in one run (the batch
flow, our client alone, fal's official ``fal-client``) so that figures are
read as ratios between them.  ``python -m bench --help`` lists the options;
``bench/README.md`` describes the method and the latest results.
"""
