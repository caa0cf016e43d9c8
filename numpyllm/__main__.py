import sys

from numpyllm.cli import main

sys.exit(main())
