"""Export a fixed-iteration stylization graph as a TF-Serving SavedModel.

    python -m tools.export_savedmodel --out saved_models/tfnst_stylize --iterations 100 --max-size 512

The same as `tfnst export`; the graph itself is built by `tfnst.export`.
"""

import sys

from tfnst.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
