# Copyright (c) mmvireid contributors. All rights reserved.
import os
import os.path as osp
import shutil
import sys
import warnings

from setuptools import find_packages, setup


def readme():
    with open('README.md', encoding='utf-8') as f:
        return f.read()


def get_version():
    version_file = 'mmvireid/version.py'
    with open(version_file, encoding='utf-8') as f:
        exec(compile(f.read(), version_file, 'exec'))
    return locals()['__version__']


def parse_requirements(fname):
    """Requirements of a file, following ``-r`` includes, comments dropped."""
    reqs = []
    with open(fname) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if not line:
                continue
            if line.startswith('-r '):
                reqs += parse_requirements(
                    osp.join(osp.dirname(fname), line.split(' ', 1)[1]))
            else:
                reqs.append(line)
    return reqs


def add_mim_extension():
    """Link (editable install) or copy ``configs`` and ``tools`` into
    ``mmvireid/.mim`` so ``mim`` and ``mmvireid::`` config bases find them.

    ``pip install -e .`` runs ``setup.py editable_wheel`` (PEP 660) with
    setuptools >= 64, and ``setup.py develop`` before; mmpretrain's setup.py
    only looks for ``develop``, which left editable installs without
    ``.mim``.
    """
    editable = ('develop', 'editable_wheel', '--editable')
    if any(arg in sys.argv for arg in editable):
        mode = 'symlink'
    elif 'sdist' in sys.argv or 'bdist_wheel' in sys.argv:
        mode = 'copy'
    else:
        return
    filenames = ['tools', 'configs', 'model-index.yml']
    repo_path = osp.dirname(__file__)
    mim_path = osp.join(repo_path, 'mmvireid', '.mim')
    os.makedirs(mim_path, exist_ok=True)
    for filename in filenames:
        if not osp.exists(filename):
            continue
        src_path = osp.join(repo_path, filename)
        tar_path = osp.join(mim_path, filename)
        if osp.isfile(tar_path) or osp.islink(tar_path):
            os.remove(tar_path)
        elif osp.isdir(tar_path):
            shutil.rmtree(tar_path)
        if mode == 'symlink':
            try:
                os.symlink(osp.relpath(src_path, osp.dirname(tar_path)),
                           tar_path)
            except OSError:
                mode = 'copy'
                warnings.warn(f'Failed to symlink {src_path}; copying.')
        if mode == 'copy':
            if osp.isfile(src_path):
                shutil.copyfile(src_path, tar_path)
            else:
                shutil.copytree(src_path, tar_path)


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='mmvireid',
        version=get_version(),
        description='OpenMMLab-style toolbox for CLIP-based visible-infrared '
        'person re-identification',
        long_description=readme(),
        long_description_content_type='text/markdown',
        keywords='person re-identification, visible-infrared, CLIP',
        packages=find_packages(exclude=('configs', 'tools', 'demo', 'tests')),
        include_package_data=True,
        python_requires='>=3.8',
        classifiers=[
            'Programming Language :: Python :: 3',
            'Operating System :: OS Independent',
        ],
        license='Apache License 2.0',
        install_requires=parse_requirements('requirements/runtime.txt'),
        extras_require={
            'mim': parse_requirements('requirements/mminstall.txt'),
            'tests': parse_requirements('requirements/tests.txt'),
            'optional': parse_requirements('requirements/optional.txt'),
            'all': parse_requirements('requirements.txt') +
            parse_requirements('requirements/optional.txt'),
        },
        zip_safe=False)
