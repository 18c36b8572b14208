"""``python -m autograd_cnn`` is the ``autograd-cnn`` command."""
from .cli import main

raise SystemExit(main())
