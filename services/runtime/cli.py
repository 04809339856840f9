"""The ``supportdesk`` command."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys

from services.kit.logging import configure_logging

SERVICES = ("ticketing", "routing", "notify", "gateway")


def _up(_: argparse.Namespace) -> int:
    from services.runtime.up import UpSettings, up

    settings = UpSettings()
    configure_logging("supervisor", settings.log_level)
    return up(settings)


def _migrate(_: argparse.Namespace) -> int:
    from services.runtime.migrate import migrate_all
    from services.runtime.up import UpSettings

    settings = UpSettings()
    configure_logging("migrate", settings.log_level)
    if not settings.database_url:
        print("supportdesk migrate: set DATABASE_URL", file=sys.stderr)
        return 2
    for schema, versions in asyncio.run(migrate_all(settings.database_url)).items():
        print(f"{schema}: {', '.join(versions) if versions else 'up to date'}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    importlib.import_module(f"services.{args.service}.__main__").main()
    return 0


def _token(args: argparse.Namespace) -> int:
    from services.gateway.settings import GatewaySettings
    from services.gateway.tokens import load_or_create_local_secret, mint_local_token

    settings = GatewaySettings()
    secret = load_or_create_local_secret(settings.data_dir.resolve() / "secrets" / "local-jwt.key")
    print(
        mint_local_token(
            secret,
            role=args.role,
            subject=args.sub,
            ttl_s=args.ttl,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
    )
    return 0


def _probe(args: argparse.Namespace) -> int:
    from services.runtime.probe import probe

    return 0 if probe(grpc_address=args.grpc, http_url=args.http, timeout_s=args.timeout) else 1


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="supportdesk", description="Support backend for a digital wallet.")
    commands = root.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "up",
        help="run the whole backend here (embedded NATS and Postgres unless NATS_URL / DATABASE_URL are set)",
    ).set_defaults(run=_up)
    commands.add_parser("migrate", help="apply database migrations (DATABASE_URL)").set_defaults(run=_migrate)
    serve = commands.add_parser("serve", help="run one service in the foreground (as in a container)")
    serve.add_argument("service", choices=SERVICES)
    serve.set_defaults(run=_serve)
    token = commands.add_parser("token", help="mint a development token for local mode")
    token.add_argument("--role", required=True, choices=("customer", "agent", "supervisor", "admin"))
    token.add_argument("--sub", required=True, help="the caller's id, e.g. c-1 or a-1")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    token.set_defaults(run=_token)
    check = commands.add_parser("probe", help="exit 0 if a service answers healthy (for container health checks)")
    target = check.add_mutually_exclusive_group(required=True)
    target.add_argument("--grpc", metavar="HOST:PORT", help="gRPC health check of a service")
    target.add_argument("--http", metavar="URL", help="HTTP GET that must answer 200, e.g. the gateway's /readyz")
    check.add_argument("--timeout", type=float, default=2.0)
    check.set_defaults(run=_probe)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code: int = args.run(args)
    return code


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
