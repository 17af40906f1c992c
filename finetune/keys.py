"""CurveZMQ key pairs for the fine-tuning transport.

Run ``python -m finetune keys --out DIR --name NAME`` (or ``python -m finetune.keys ...``): writes
``DIR/NAME.key`` (public; give it to the other side) and ``DIR/NAME.key_secret`` (mode 0600; never leaves
this machine). The learner needs its own secret file plus a directory holding the public ``*.key`` of every
actor it accepts; an actor needs its own secret file plus the learner's public file. See PROTOCOL.md.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import zmq
import zmq.auth

from a1_common.cli import ArgumentParser, run_main


def generate(directory: Path, name: str, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Create ``directory/name.key`` and ``directory/name.key_secret`` (0600); returns (public, secret)."""
    if not zmq.has("curve"):
        raise RuntimeError("this libzmq was built without CURVE (libsodium); cannot create keys")
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"key name {name!r} must be a plain file name")
    directory = Path(directory)
    public, secret = directory / f"{name}.key", directory / f"{name}.key_secret"
    if not overwrite and (public.exists() or secret.exists()):
        raise FileExistsError(f"{public} or {secret} already exists; refusing to overwrite a key")
    directory.mkdir(parents=True, exist_ok=True)
    old_umask = os.umask(0o077)  # the secret file must never exist world-readable, not even briefly
    try:
        public_str, secret_str = zmq.auth.create_certificates(directory, name)
    finally:
        os.umask(old_umask)
    os.chmod(secret_str, 0o600)
    os.chmod(public_str, 0o644)
    return Path(public_str), Path(secret_str)


def _main(argv: list[str] | None = None) -> int:
    """CLI: ``keys --out DIR --name NAME [--force]``."""
    parser = ArgumentParser(prog="python -m finetune keys", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for NAME.key and NAME.key_secret")
    parser.add_argument("--name", required=True, help="key name, e.g. 'learner' or the actor id")
    parser.add_argument("--force", action="store_true", help="overwrite an existing key pair")
    args = parser.parse_args(argv)
    try:
        public, secret = generate(args.out, args.name, overwrite=args.force)
    except (FileExistsError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"public: {public}\nsecret: {secret} (0600, keep it on this machine)")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(_main, argv, "python -m finetune keys")


if __name__ == "__main__":
    sys.exit(main())
