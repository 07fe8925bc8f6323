import sys

from robot_rl.commands import main

sys.exit(main())
