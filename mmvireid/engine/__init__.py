# Copyright (c) mmvireid contributors. All rights reserved.
from .feature_cache import *  # noqa: F401,F403
from .hooks import *  # noqa: F401,F403
from .optimizers import *  # noqa: F401,F403
from .runner import *  # noqa: F401,F403
from .schedulers import *  # noqa: F401,F403
