"""`python -m asn`: the `asnc` command line (as `python -m asn.cli.main`, which ./asnc runs)."""

from asn.cli.main import run

if __name__ == "__main__":
    run()
