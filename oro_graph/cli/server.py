"""The serve command: check the address, migrate (with --demo, fill) the database, start uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from oro_graph.cli.common import console, current_settings, fail, open_database
from oro_graph.cli.data import fill_demo


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, help="Server processes sharing the database (and Redis).")
    ] = 1,
    demo: Annotated[
        bool, typer.Option(help="Fill an empty database with the deterministic demo world first.")
    ] = False,
    app: Annotated[
        str,
        typer.Option(
            hidden=True,
            help="The ASGI application factory to serve, as module:function (the benchmarks serve "
            "oro_graph.app:main_app with one route more).",
        ),
    ] = "oro_graph.app:main_app",
) -> None:
    """Run the server: /graphql, the /v1 REST paths, /docs and /health."""
    import os

    import uvicorn

    from oro_graph.observability import log_config

    settings = current_settings()
    problem = _bind_problem(host, port)  # before migrating or filling anything: say it first
    if problem:
        raise fail(problem)
    db = open_database(settings)
    if demo:
        fill_demo(
            db, settings, seed=7, miners=None, validators=None, runs=None, manifest=None, only_if_empty=True
        )
        # A served demo world stays as generated unless the operator asks for the race scheduler.
        os.environ.setdefault("ORO_RACE_SCHEDULER", "false")
    db.dispose()
    if workers > 1 and not settings.redis_url:
        console.print(
            "[yellow]warning:[/yellow] several workers without ORO_REDIS_URL keep rate limits per process"
        )
    os.environ["ORO_WORKERS"] = str(workers)  # the processes learn how many share the database
    if workers > 1:  # each worker keeps its metrics in files there; a scrape of any worker adds them up
        from oro_graph.observability import prepare_multiprocess_dir

        prepare_multiprocess_dir(settings.state_dir)
    if not os.environ.get("ORO_PUBLIC_BASE_URL"):
        os.environ["ORO_PUBLIC_BASE_URL"] = f"http://{host}:{port}"
    console.print(f"serving on http://{host}:{port}  (GraphQL at /graphql, REST docs at /docs)")
    from oro_graph.serving import serve as run_workers

    # With workers > 1 a supervisor hands each connection to the least busy worker (oro_graph/serving.py).
    run_workers(
        app,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
        log_level="info",
        log_config=log_config(settings) or uvicorn.config.LOGGING_CONFIG,
        access_log=False,  # a line per request costs more than the request under load
        # Silent and slow connections are closed (oro_graph/connections.py).
        http="oro_graph.connections:GuardedHttpToolsProtocol",
        timeout_keep_alive=settings.keep_alive_seconds,
    )


def _bind_problem(host: str, port: int) -> str | None:
    """Why the server could not listen on host:port (port taken, unknown address...), or None."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, OverflowError) as exc:
        return f"cannot listen on {host}:{port}: {exc}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is already in use (another server?); pick another: --port N"
            if exc.errno == errno.EACCES:
                return f"not allowed to listen on port {port} (ports below 1024 need privileges); use --port"
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None
