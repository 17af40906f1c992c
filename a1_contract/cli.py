"""``a1-contract``: print a contract variant as JSON (or list the variants)."""

from __future__ import annotations

import argparse
import sys

from a1_contract.variants import DEFAULT_VARIANT, VARIANTS, get_contract


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="a1-contract", description=__doc__)
    parser.add_argument("--variant", default=DEFAULT_VARIANT, choices=sorted(VARIANTS), help="contract variant")
    parser.add_argument("--list", action="store_true", help="list variants with their hashes and exit")
    parser.add_argument("--hash", action="store_true", help="print only the hash")
    args = parser.parse_args(argv)
    if args.list:
        for name in VARIANTS:
            contract = get_contract(name)
            print(f"{name:24s} {contract.hash}  {contract.name}  obs_dim={contract.obs_dim}")
        return 0
    contract = get_contract(args.variant)
    try:
        print(contract.hash if args.hash else contract.to_json())
    except BrokenPipeError:  # `a1-contract | head`: the reader left, nothing is lost
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
