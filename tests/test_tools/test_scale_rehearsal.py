# Copyright (c) mmvireid contributors. All rights reserved.
"""``tools/analysis_tools/scale_rehearsal.py --small``: every phase of the
rehearsal on small LLCM-layout data, with its numbers."""
import json
import os
import os.path as osp
import subprocess
import sys

from toy_utils import REPO_ROOT

SCRIPT = osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'scale_rehearsal.py')


def test_small_rehearsal_measures_every_phase(tmp_path):
    out = tmp_path / 'rehearsal.json'
    markdown = tmp_path / 'rehearsal.md'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run([
        sys.executable, SCRIPT, '--small', '--layouts', 'llcm', '--iters', '2',
        '--data-dir',
        str(tmp_path / 'data'), '--work-dir',
        str(tmp_path / 'work'), '--out',
        str(out), '--markdown-out',
        str(markdown)
    ],
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out) as f:
        report = json.load(f)
    rows = {(r['phase'], r['what']): r for r in report['rows']}
    # 24 ids: 16 train ids x 3 cameras x 10 images x 2 modalities
    assert rows['data', 'llcm generation']['made']
    assert rows['data', 'llcm generation']['generator']['peak_rss_mib'] > 0
    assert rows['index', 'llcm train']['items'] == 960
    assert rows['index', 'llcm test']['items'] == 480
    for split, items in (('train', 960), ('test', 480)):
        built = rows['image cache build', f'llcm {split}']
        assert built['items'] == items
        # 64 x 32 x 3 bytes per image, plus the manifest and shapes
        assert 64 * 32 * 3 * items / 2**20 < built['size_mib'] < \
            64 * 32 * 3 * items / 2**20 + 1
        assert rows['image cache open', f'llcm {split}']['items'] == items
        real = rows['image cache build', f'llcm {split}, 288x144']
        assert 288 * 144 * 3 * items / 2**20 < real['size_mib']
    train = rows['train', 'llcm clip_vireid_toy_llcm']
    assert [s['stage'] for s in train['stages']] == ['prompt', 'finetune']
    assert [s['iters'] for s in train['stages']] == [2, 2]
    # the prompt stage trains on the feature cache of the whole train set
    assert train['stages'][0]['loader'] == 'FeatureCacheDataset'
    assert train['stages'][0]['loader_items'] == 960
    assert 'val_s' in train['stages'][1]
    evaluation = rows['evaluate', 'llcm both']
    assert evaluation['items'] == 480 and evaluation['img_per_s'] > 0
    symmetric = evaluation['metrics']['symmetric']
    assert symmetric['num_trials'] == 10
    # all 240 images of a modality against one sampled image per folder
    assert symmetric['directions']['vis2ir']['num_query'] == 240
    assert symmetric['directions']['ir2vis']['num_gallery'] == 24
    deen = evaluation['metrics']['deen']
    assert (deen['directions']['vis2ir']['num_query'],
            deen['directions']['vis2ir']['num_gallery']) == (24, 240)
    assert all(r['peak_rss_mib'] > 0 for r in report['rows'])
    with open(markdown) as f:
        table = f.read()
    assert table.startswith('| phase | data | seconds | peak RSS MiB |')
    assert '| train | llcm clip_vireid_toy_llcm |' in table
    assert table.strip() in proc.stdout
