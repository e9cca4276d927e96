"""``python -m planner``: the same command line as ``planner``."""

from .cli import main

if __name__ == "__main__":
    main()
