"""A worker process that parses agent files for ``oro_graph.sourcecheck``: standard library only.

Run as ``python -I _parse_worker.py MEMORY_BYTES CPU_SECONDS``. It limits its own address space
and, before each file, its CPU time (RLIMIT_CPU: the kernel ends it with SIGXCPU past the limit, so a
busy machine does not count against a file, only the parse's own CPU does), then loops:
read a 4-byte big-endian length and that many bytes of UTF-8 source from stdin, parse them with
``ast.parse``, and write a 4-byte length and a JSON answer (``{"ok": true}`` or ``{"error": ...}``)
to stdout. It exits on end of input (its server process is gone) and after a MemoryError or a
RecursionError, so every file after a hostile one starts in a fresh process.
"""

from __future__ import annotations

import ast
import json
import math
import os
import resource
import struct
import sys


def _read_exactly(stream: object, size: int) -> bytes | None:
    data = stream.read(size)  # type: ignore[attr-defined]
    return data if data is not None and len(data) == size else None


def _answer(stream: object, body: dict[str, object]) -> None:
    raw = json.dumps(body).encode()
    stream.write(struct.pack(">I", len(raw)) + raw)  # type: ignore[attr-defined]
    stream.flush()  # type: ignore[attr-defined]


def check(source: str) -> tuple[dict[str, object], bool]:
    """The answer for one file, and whether this process must exit after giving it."""
    try:
        ast.parse(source)
    except SyntaxError as exc:
        return {"error": f"agent file is not valid Python: {exc.msg} at line {exc.lineno}"}, False
    except MemoryError:
        return {"error": "agent file is too complex to parse within the server's memory limit"}, True
    except RecursionError:
        return {"error": "agent file nests expressions too deeply to parse"}, True
    except ValueError as exc:  # e.g. source the tokenizer refuses outright
        return {"error": f"agent file cannot be parsed: {exc}"}, False
    return {"ok": True}, False


def main() -> None:
    memory, cpu_seconds = int(sys.argv[1]), float(sys.argv[2])
    if memory > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    _, cpu_hard = resource.getrlimit(resource.RLIMIT_CPU)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        header = _read_exactly(stdin, 4)
        if header is None:
            return
        (size,) = struct.unpack(">I", header)
        raw = _read_exactly(stdin, size)
        if raw is None:
            return
        used = resource.getrusage(resource.RUSAGE_SELF)
        allowed = math.ceil(used.ru_utime + used.ru_stime + cpu_seconds)
        if cpu_hard == resource.RLIM_INFINITY or allowed <= cpu_hard:
            resource.setrlimit(resource.RLIMIT_CPU, (allowed, cpu_hard))
        try:
            body, leave = check(raw.decode("utf-8"))
        except MemoryError:  # even decoding did not fit
            body, leave = (
                {"error": "agent file is too complex to parse within the server's memory limit"},
                True,
            )
        del raw
        if leave:
            body["leaving"] = True  # the server replaces this process rather than reusing it
        _answer(stdout, body)
        if leave:
            os._exit(0)


if __name__ == "__main__":
    main()
