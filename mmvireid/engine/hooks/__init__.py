# Copyright (c) mmvireid contributors. All rights reserved.
from .stage_switch_hook import StageSwitchHook

__all__ = ['StageSwitchHook']
