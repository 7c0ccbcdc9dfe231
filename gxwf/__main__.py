import sys

from gxwf.cli import main

sys.exit(main())
