"""`python -m fakekube --port 6443`: the fake API and controller until interrupted, for manual tries."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path

from fakekube.server import FakeKubeServer


def _write(where: Path, text: str) -> None:
    where.write_text(text)


async def _serve(args: argparse.Namespace) -> None:
    async with FakeKubeServer(port=args.port, controller=not args.no_controller, validate=args.validate) as kube:
        if args.kubeconfig:
            _write(Path(args.kubeconfig), json.dumps(kube.kubeconfig()))
        print(json.dumps({"url": kube.url, "kubeconfig": args.kubeconfig or str(kube.kubeconfig_path)}), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fakekube", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--kubeconfig", help="also write a kubeconfig for the server to this file")
    parser.add_argument("--no-controller", action="store_true", help="the API alone: no pods, no scheduling")
    parser.add_argument("--validate", metavar="VERSION", help="check written objects with kubernetes-validate")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
