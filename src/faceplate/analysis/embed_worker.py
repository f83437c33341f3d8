"""The helper process behind :class:`faceplate.analysis.identity.EmbedderProcess` (``python -m`` this module).

dlib holds Python's GIL for the whole of a descriptor (~70-150 ms a face): in the render's process every
other Python thread (effects, compositing, decoding) stands still meanwhile. Here it runs in a process of
its own, with the same code and the same inputs, so its descriptors are the ones an in-process
:class:`~faceplate.analysis.identity.Embedder` gives.

Protocol on stdin / stdout: each message is an 8-byte little-endian length and a pickle. Requests:
``(rgb (H, W, 3) uint8, landmarks (478, 3) float32)``; replies: ``("ready",)`` once the models are loaded,
then ``("ok", descriptor (128,) float32)`` or ``("error", message)`` per request. EOF on stdin ends it.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
from typing import IO, Any

HEADER = struct.Struct("<Q")


def send(stream: IO[bytes], obj: Any) -> None:
    """Write one message (length + pickle) and flush."""
    data = pickle.dumps(obj, protocol=5)
    stream.write(HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def receive(stream: IO[bytes]) -> Any:
    """Read one message; EOFError when the other side has closed."""
    head = stream.read(HEADER.size)
    if len(head) < HEADER.size:
        raise EOFError
    (n,) = HEADER.unpack(head)
    data = stream.read(n)
    if len(data) < n:
        raise EOFError
    return pickle.loads(data)


def serve(inp: IO[bytes], out: IO[bytes]) -> None:
    """Load the Embedder, say ready, answer requests until EOF."""
    from threadpoolctl import threadpool_limits

    from faceplate.analysis.identity import Embedder

    try:
        embed = Embedder()
    except Exception as err:  # e.g. ModelError: reported to the caller, which raises it
        send(out, ("error", str(err)))
        return
    send(out, ("ready",))
    with threadpool_limits(limits=1, user_api="blas"):  # as the render's analysis thread (cpu.single_thread_blas)
        while True:
            try:
                rgb, landmarks = receive(inp)
            except EOFError:
                return
            try:
                send(out, ("ok", embed(rgb, landmarks)))
            except Exception as err:
                send(out, ("error", f"{type(err).__name__}: {err}"))


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the render's to handle; EOF ends this process
    out = os.fdopen(os.dup(1), "wb")  # replies on a copy of stdout; stray prints from libraries go to stderr
    os.dup2(2, 1)
    serve(sys.stdin.buffer, out)


if __name__ == "__main__":
    main()
