"""``python -m nvpkit``: the command line (``nvpkit.cli``)."""
from .cli import main

if __name__ == "__main__":
    main()
