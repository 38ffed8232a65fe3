import sys

from hf_linear.hub.server import main

sys.exit(main())
