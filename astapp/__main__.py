import sys

from astapp.cli import main

sys.exit(main())
