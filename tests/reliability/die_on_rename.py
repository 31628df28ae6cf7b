"""`raypath extract`, except that the process SIGKILLs itself at the Nth feature-file rename.

Issue 8, case 4: a job dying between writing a feature file and renaming it into place.
Usage: python die_on_rename.py N <raypath extract arguments...>
"""

import os
import signal
import sys

from store_hooks import install

from raypath.cli import main

if __name__ == "__main__":
    install(at=int(sys.argv[1]), action=lambda: os.kill(os.getpid(), signal.SIGKILL))
    sys.exit(main(["extract", *sys.argv[2:]]))
