import sys

from hf_linear.hub.server.cli import main

sys.exit(main())
