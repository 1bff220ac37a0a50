"""`python -m asn`: the `asnc` command line (as `python -m asn.cli.main`, which ./asnc runs)."""

import sys

from asn.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
