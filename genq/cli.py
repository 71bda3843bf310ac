"""The ``genq`` command: database, models, keys, and the API and worker processes."""

from __future__ import annotations

import argparse
import os
import sys

from genq.settings import get_settings


def _db(args: argparse.Namespace) -> int:
    import migrations

    url = get_settings().database_url
    target = args.revision or ("head" if args.action == "upgrade" else "base")
    if args.action == "upgrade":
        migrations.upgrade(url, target)
    else:
        migrations.downgrade(url, target)
    print(f"database {args.action}d to {target}")
    return 0


def _make_tiny(args: argparse.Namespace) -> int:
    from pipelines.tiny import make_tiny, make_tiny_mlm

    if args.family == "dllm":
        path = make_tiny_mlm(args.directory)
    else:
        path = make_tiny(args.directory, args.family)
    print(path)
    return 0


def _create_key(args: argparse.Namespace) -> int:
    from storage.db import session_factory
    from storage.keys import create_key

    with session_factory(get_settings().database_url)() as session:
        token = create_key(session, args.owner, name=args.name, is_admin=args.admin)
    print(token)
    print("(shown once: store it now)", file=sys.stderr)
    return 0


def _api(args: argparse.Namespace) -> int:
    argv = [
        "gunicorn",
        "--bind",
        args.bind,
        "--workers",
        str(args.workers),
        "--threads",
        str(args.threads),
        "--worker-class",
        "gthread",
        "--access-logfile",
        "-" if args.access_log else "/dev/null",
        "api:create_app()",
    ]
    os.execvp(sys.executable, [sys.executable, "-m", *argv])


def _worker(args: argparse.Namespace) -> int:
    from genq.broker import CONTROL_QUEUE

    settings = get_settings()
    queues = args.queues or f"{settings.queue},{CONTROL_QUEUE},{settings.webhook_queue}"
    argv = [
        "celery",
        "-A",
        "workers.celery",
        "worker",
        "--loglevel",
        args.loglevel,
        "--pool",
        "prefork",
        "--concurrency",
        str(args.concurrency),
        "--queues",
        queues,
        "--hostname",
        args.hostname,
    ]
    if args.beat:
        argv += ["--beat", "--schedule", args.schedule]
    os.execvp(sys.executable, [sys.executable, "-m", *argv])


def _demo(args: argparse.Namespace) -> int:
    from genq.demo import main as demo_main

    return demo_main(jobs=args.jobs, workdir=args.workdir)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genq", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="apply or roll back database migrations")
    db.add_argument("action", choices=["upgrade", "downgrade"])
    db.add_argument("revision", nargs="?")
    db.set_defaults(func=_db)

    models = sub.add_parser("models", help="model utilities")
    msub = models.add_subparsers(dest="models_command", required=True)
    tiny = msub.add_parser("make-tiny", help="build a tiny random-weight checkpoint")
    tiny.add_argument("directory")
    tiny.add_argument("--family", default="sd", choices=["sd", "sdxl", "sd3", "dllm"])
    tiny.set_defaults(func=_make_tiny)

    keys = sub.add_parser("keys", help="API keys")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    create = ksub.add_parser("create", help="create a key and print it (once)")
    create.add_argument("--owner", required=True)
    create.add_argument("--name", default="")
    create.add_argument("--admin", action="store_true")
    create.set_defaults(func=_create_key)

    api = sub.add_parser("api", help="serve the HTTP API with gunicorn")
    api.add_argument("--bind", default="127.0.0.1:8000")
    api.add_argument("--workers", type=int, default=2)
    api.add_argument("--threads", type=int, default=8)
    api.add_argument("--access-log", action="store_true")
    api.set_defaults(func=_api)

    worker = sub.add_parser("worker", help="run a Celery worker (one process per device)")
    worker.add_argument("--concurrency", type=int, default=1)
    worker.add_argument("--queues", default="")
    worker.add_argument("--hostname", default="genq@%h")
    worker.add_argument("--loglevel", default="INFO")
    worker.add_argument("--beat", action="store_true", help="also run the periodic reconciler")
    worker.add_argument("--schedule", default=".genq/celerybeat-schedule")
    worker.set_defaults(func=_worker)

    demo = sub.add_parser("demo", help="run jobs end to end on embedded defaults")
    demo.add_argument("--jobs", type=int, default=8)
    demo.add_argument("--workdir", default=".genq-demo")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    from genq.settings import SettingsError
    from pipelines.registry import RegistryError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except (SettingsError, RegistryError, ValueError) as exc:
        print(f"genq: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
