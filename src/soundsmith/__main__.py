import sys

from soundsmith.cli.main import main

sys.exit(main())
