"""``python -m faceplate`` and the ``faceplate`` command: a Ctrl-C while the CLI is still loading exits 130
with one line too (cli.main handles it from then on)."""

import signal
import sys

STARTING = "faceplate: interrupted while starting; nothing was done"


def run() -> None:
    """Load the CLI with Ctrl-C held back (an interrupted C extension import fails oddly), then run it."""
    asked: list[int] = []
    before = signal.signal(signal.SIGINT, lambda sig, frame: asked.append(sig))
    try:
        from faceplate.cli import main
    finally:
        signal.signal(signal.SIGINT, before)
    if asked:
        sys.stderr.write(STARTING + "\n")
        sys.exit(130)
    main()


if __name__ == "__main__":
    run()
