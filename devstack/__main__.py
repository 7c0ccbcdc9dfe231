"""`python -m devstack --state-dir DIR`: run the embedded stack in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from devstack.runner import run_stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    parser.add_argument(
        "--state-dir", type=Path, default=Path(".gxwf"), help="data, logs and stack.json (default .gxwf)"
    )
    # Flags only, no GXWF_* variables: what this command starts must not depend on the environment.
    parser.add_argument("--nats-url", help="use this NATS server instead of starting one")
    parser.add_argument("--mongo-url", help="use this MongoDB-wire server instead of starting one")
    parser.add_argument("--s3-endpoint", help="use this S3 endpoint instead of starting one")
    parser.add_argument("--s3-bucket", default="gxwf", help="bucket created in the embedded S3 (default gxwf)")
    parser.add_argument(
        "--nats-nodes", type=int, default=1, help="NATS servers, as one JetStream cluster when more than 1 (default 1)"
    )
    parser.add_argument("--ready-timeout", type=float, default=60.0, help="seconds per server (default 60)")
    args = parser.parse_args(argv)
    return asyncio.run(
        run_stack(
            args.state_dir,
            nats_url=args.nats_url,
            mongo_url=args.mongo_url,
            s3_endpoint=args.s3_endpoint,
            s3_bucket=args.s3_bucket,
            ready_timeout=args.ready_timeout,
            nats_nodes=args.nats_nodes,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
