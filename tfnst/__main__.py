import sys

from tfnst.cli import main

sys.exit(main())
