import sys

from a1_contract.cli import main

sys.exit(main())
