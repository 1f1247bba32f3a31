"""What the tests share besides fixtures (docs/development.md, "Tests"). ROOT: the checkout."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
