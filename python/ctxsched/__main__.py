import sys

from ctxsched.cli import main

sys.exit(main())
