# Copyright (c) mmvireid contributors. All rights reserved.
"""The helpers the tools (``tools/*.py``) use, in one import.

The implementations live by concern: :mod:`.errors` (user errors and their
messages), :mod:`.preflight` (checks before anything is built or written),
:mod:`.resume` (``--resume``), :mod:`.launch` (process groups, loaders) and
:mod:`.amp` (``--amp``). Package code imports from those modules directly.
"""
from .amp import AMP_CHOICES, apply_amp, stage_optim_wrapper_cfgs
from .errors import (UserInputError, closest_names, explain_error,
                     run_or_explain)
from .launch import disable_persistent_workers, setup_cpu_distributed
from .preflight import (RUNNER_KEYS, check_cfg_options, check_pretrained_files,
                        check_writable, preflight_config, preflight_datasets,
                        preflight_training, rehearsal_config)
from .resume import (check_auto_resume, check_resume_checkpoint,
                     check_resume_compatible, newest_complete_checkpoint)

__all__ = [
    'preflight_datasets', 'preflight_config', 'check_cfg_options', 'apply_amp',
    'AMP_CHOICES', 'stage_optim_wrapper_cfgs', 'check_resume_checkpoint',
    'check_auto_resume', 'disable_persistent_workers', 'setup_cpu_distributed',
    'explain_error', 'run_or_explain', 'UserInputError', 'closest_names',
    'check_writable', 'preflight_training', 'rehearsal_config',
    'check_resume_compatible', 'check_pretrained_files',
    'newest_complete_checkpoint', 'RUNNER_KEYS'
]
