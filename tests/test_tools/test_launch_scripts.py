# Copyright (c) mmvireid contributors. All rights reserved.
"""tools/dist_*.sh and tools/slurm_*.sh run the install's interpreter.

They used to call ``torchrun``, which is not on PATH when the virtual
environment is not activated (exit 127 after the README install). They now
run ``"$PYTHON" -m torch.distributed.run`` (what ``torchrun`` runs) and
``"$PYTHON" -u tools/*.py`` under srun, and refuse an interpreter without
torch with one clear line.

Each script is copied next to a stand-in ``train.py`` / ``test.py`` that
records how it was started, so the launch itself is real (one process,
torch's launcher) and takes seconds.
"""
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPTS = ('dist_train.sh', 'dist_test.sh', 'slurm_train.sh', 'slurm_test.sh')

#: Records argv, interpreter and the launcher's environment.
RECORDER = '''
import json, os, sys
with open(os.environ['RECORD'], 'a') as f:
    f.write(json.dumps(dict(
        script=os.path.basename(__file__), argv=sys.argv[1:],
        executable=sys.executable,
        env={k: os.environ.get(k) for k in (
            'RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_PORT')})) + '\\n')
'''

#: A stand-in srun: records its arguments, then runs its command (from the
#: interpreter on) once.
FAKE_SRUN = '''#!/usr/bin/env bash
echo "$@" > "$SRUN_RECORD"
while [ "$#" -gt 0 ] && [ "$1" != "$PYTHON" ]; do shift; done
exec "$@"
'''


def _read_lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


@pytest.mark.parametrize('name', SCRIPTS)
def test_scripts_need_no_torchrun_on_path(name):
    with open(osp.join(REPO_ROOT, 'tools', name)) as f:
        text = f.read()
    commands = [
        ln for ln in text.splitlines() if not ln.lstrip().startswith('#')
    ]
    assert not any(re.search(r'(^|\s)torchrun(\s|$)', ln) for ln in commands)
    assert not any(re.match(r'\s*python3?\s', ln) for ln in commands)
    if name.startswith('dist_'):
        assert '"$PYTHON" -m torch.distributed.run' in text
    else:
        assert '"$PYTHON" -u "$TOOLS/' in text


@pytest.fixture
def tools_copy(tmp_path):
    """The four scripts next to recording train.py / test.py."""
    tools = tmp_path / 'tools'
    tools.mkdir()
    # the scripts source find_python.sh from their folder
    for name in SCRIPTS + ('find_python.sh', ):
        shutil.copy(osp.join(REPO_ROOT, 'tools', name), tools / name)
    for name in ('train.py', 'test.py'):
        (tools / name).write_text(RECORDER)
    return tools


def _bare_env(tmp_path, **extra):
    """No virtual environment on PATH: only the system folders (where no
    ``torchrun`` of this install is)."""
    env = dict(
        PATH='/usr/bin:/bin',
        HOME=os.environ.get('HOME', str(tmp_path)),
        RECORD=str(tmp_path / 'record.jsonl'),
        OMP_NUM_THREADS='1')
    env.update(extra)
    return env


@pytest.mark.parametrize('script,args,tool', [
    ('dist_train.sh', ['cfg.py', '1', '--work-dir', 'a dir'], 'train.py'),
    ('dist_test.sh', ['cfg.py', 'ckpt.pth', '1', '--out', 'r.json'
                      ], 'test.py'),
])
def test_dist_scripts_launch_with_the_given_interpreter(
        tools_copy, tmp_path, script, args, tool):
    env = _bare_env(tmp_path, PYTHON=sys.executable, PORT='29731')
    proc = subprocess.run(['bash', str(tools_copy / script), *args],
                          env=env,
                          cwd=str(tmp_path),
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    [record] = _read_lines(env['RECORD'])
    assert record['script'] == tool
    positional = args[:1] if tool == 'train.py' else args[:2]
    rest = args[2:] if tool == 'train.py' else args[3:]
    # the arguments arrive intact (also one with a space), after the
    # launcher option
    assert record['argv'] == positional + ['--launcher', 'pytorch'] + rest
    assert osp.realpath(record['executable']) == \
        osp.realpath(sys.executable)
    assert record['env'] == dict(
        RANK='0', WORLD_SIZE='1', LOCAL_RANK='0', MASTER_PORT='29731')


@pytest.mark.parametrize('script', SCRIPTS)
def test_scripts_refuse_an_interpreter_without_torch(tools_copy, tmp_path,
                                                     script):
    missing = str(tmp_path / 'no' / 'python')
    proc = subprocess.run([
        'bash', str(tools_copy / script), 'p', 'j', 'cfg.py', 'x', '1'
    ],
                          env=_bare_env(tmp_path, PYTHON=missing),
                          capture_output=True,
                          text=True,
                          timeout=60)
    assert proc.returncode == 1
    assert (f'ERROR: {tools_copy / script}: the interpreter "{missing}" '
            'cannot import torch; set PYTHON to the python of your '
            'install') in proc.stderr
    assert not osp.exists(tmp_path / 'record.jsonl')


@pytest.mark.parametrize('script,tool,positional', [
    ('slurm_train.sh', 'train.py', ['cfg.py', '--work-dir=w d']),
    ('slurm_test.sh', 'test.py', ['cfg.py', 'ckpt.pth']),
])
def test_slurm_scripts_run_the_given_interpreter(tools_copy, tmp_path, script,
                                                 tool, positional):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'srun').write_text(FAKE_SRUN)
    (bin_dir / 'srun').chmod(0o755)
    env = _bare_env(
        tmp_path,
        PYTHON=sys.executable,
        PATH=f'{bin_dir}:/usr/bin:/bin',
        SRUN_RECORD=str(tmp_path / 'srun.txt'),
        GPUS='2',
        GPUS_PER_NODE='2')
    last = 'w d' if tool == 'train.py' else 'ckpt.pth'
    proc = subprocess.run([
        'bash',
        str(tools_copy / script), 'part', 'job', 'cfg.py', last,
        '--cfg-options', 'a=1'
    ],
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    srun_args = (tmp_path / 'srun.txt').read_text()
    assert srun_args.startswith('-p part --job-name=job --gres=gpu:2 '
                                '--ntasks=2 --ntasks-per-node=2')
    [record] = _read_lines(env['RECORD'])
    assert record['script'] == tool
    assert record['argv'] == positional + [
        '--launcher=slurm', '--cfg-options', 'a=1'
    ]
    assert osp.realpath(record['executable']) == \
        osp.realpath(sys.executable)
