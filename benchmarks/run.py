"""Run the speed benchmarks; the same options as ``gatedrnn bench`` (see gatedrnn/bench.py).

Example::

    python benchmarks/run.py --grid training --backend auto,reference --repeats 7
"""

import os
import sys

try:
    from gatedrnn.bench import main
except ImportError:  # a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from gatedrnn.bench import main

if __name__ == "__main__":
    sys.exit(main())
