"""ParallelFor over 10,000 no-op iterations on a ``kfpd server`` with its local executor.

Usage::

    .venv/bin/python bench/fanout.py [--items 10000]

Reports wall time (submission to completion), tasks/s (the loop's RUNTIME tasks) and the
server's peak RSS (VmHWM of the server process; launchers run in separate processes).
Target: completes; peak server RSS < 1 GiB.
"""

import argparse
import time

from kfp import dsl
from kfpd_server import kfpd_server


@dsl.component(base_image="python:3.11")
def noop(i: int) -> int:
    return i


@dsl.component(base_image="python:3.11")
def make_items(n: int) -> list:
    return list(range(n))


@dsl.pipeline(name="fanout")
def fanout(n: int = 10000) -> None:
    items = make_items(n=n).set_caching_options(False)
    with dsl.ParallelFor(items.output) as item:
        noop(i=item).set_caching_options(False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=10000)
    args = parser.parse_args()
    import kfp

    with kfpd_server() as server:
        client = kfp.Client(host=server.url)
        started = time.perf_counter()
        result = client.create_run_from_pipeline_func(
            fanout, arguments={"n": args.items}, enable_caching=False
        )
        run = client.wait_for_run_completion(result.run_id, timeout=7200, sleep_duration=1)
        wall = time.perf_counter() - started
        peak = server.peak_rss_mib()
    state = str(run.state)
    print(f"items: {args.items}, state: {state}")
    print(f"wall: {wall:.1f} s, tasks/s: {args.items / wall:.1f}")
    verdict = "met" if peak < 1024 and state == "SUCCEEDED" else "MISSED"
    print(f"peak server RSS: {peak:.0f} MiB (target < 1024 MiB): {verdict}")


if __name__ == "__main__":
    main()
