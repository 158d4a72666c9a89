import sys

from kfpd.launcher.main import main

sys.exit(main())
