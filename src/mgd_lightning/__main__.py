"""``python -m mgd_lightning``: the same as the ``mgd-lightning`` command."""

from mgd_lightning.cli import console_main

if __name__ == "__main__":
    console_main()
