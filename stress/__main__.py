import sys

from stress.chaos import main

sys.exit(main())
