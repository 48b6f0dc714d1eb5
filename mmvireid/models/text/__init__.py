# Copyright (c) mmvireid contributors. All rights reserved.
from .clip_text_encoder import CLIPTextEncoder
from .prompt_learner import IDPromptLearner

__all__ = ['CLIPTextEncoder', 'IDPromptLearner']
