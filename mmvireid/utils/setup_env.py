# Copyright (c) mmvireid contributors. All rights reserved.
import datetime
import warnings

from mmengine import DefaultScope

from .checkpoint import register_safe_checkpoint_loader


def register_all_modules(init_default_scope: bool = True) -> None:
    """Register all modules of mmvireid into the registries.

    Args:
        init_default_scope (bool): Whether to set the default scope to
            ``'mmvireid'``, so registries resolve unprefixed names here
            first. Defaults to True.
    """
    # Importing the subpackages registers their modules; here, not at the
    # top, because they import mmvireid.utils (a cycle).
    import mmvireid.datasets  # noqa: F401,F403
    import mmvireid.engine  # noqa: F401,F403
    import mmvireid.evaluation  # noqa: F401,F403
    import mmvireid.models  # noqa: F401,F403
    register_safe_checkpoint_loader()

    if not init_default_scope:
        return
    current_scope = DefaultScope.get_current_instance()
    if current_scope is None:
        DefaultScope.get_instance('mmvireid', scope_name='mmvireid')
    elif current_scope.scope_name != 'mmvireid':
        warnings.warn(
            f'The current default scope "{current_scope.scope_name}" is not '
            '"mmvireid", `register_all_modules` will force the current '
            'default scope to be "mmvireid". If this is not expected, please '
            'set `init_default_scope=False`.')
        new_instance_name = f'mmvireid-{datetime.datetime.now()}'
        DefaultScope.get_instance(new_instance_name, scope_name='mmvireid')
